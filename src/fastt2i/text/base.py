"""The text-encoder contract: `TextEmbedding` (tokens, mask, pooled) and the frozen-by-default `TextEncoder` base."""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from typing import Any, Sequence

import torch
from torch import nn

from fastt2i.errors import ConfigError, DataError

# Bump when the meaning of the stored tensors changes (zeroed padding, trimming, pooling); part of every identity.
EMBEDDING_FORMAT = "v1"


@dataclasses.dataclass(frozen=True)
class TextEmbedding:
    """What every text encoder returns for a batch of B texts.

    Conventions: padding is on the right, `mask[b, :n_b]` is True for the n_b real tokens and False after them,
    `tokens` is exactly zero where `mask` is False, and L is the longest real length in the batch (no all-padding
    columns when produced by an encoder).

    Args:
        tokens: float [B, L, D] per-token features (the encoder's last hidden state).
        mask: bool [B, L], True for real tokens.
        pooled: float [B, P] one vector per text (what each encoder pools is documented on the encoder).
    """

    tokens: torch.Tensor  # [B, L, D]
    mask: torch.Tensor  # [B, L] bool
    pooled: torch.Tensor  # [B, P]

    def __post_init__(self) -> None:
        t, m, p = self.tokens, self.mask, self.pooled
        if t.ndim != 3 or m.ndim != 2 or p.ndim != 2:
            raise ValueError(
                f"TextEmbedding wants tokens [B,L,D], mask [B,L], pooled [B,P]; got {tuple(t.shape)}, "
                f"{tuple(m.shape)}, {tuple(p.shape)}"
            )
        if m.dtype != torch.bool:
            raise ValueError(f"TextEmbedding.mask must be bool, got {m.dtype}")
        if tuple(m.shape) != tuple(t.shape[:2]) or p.shape[0] != t.shape[0]:
            raise ValueError(
                f"TextEmbedding shapes disagree: tokens {tuple(t.shape)}, mask {tuple(m.shape)}, pooled {tuple(p.shape)}"
            )

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def length(self) -> int:
        """L, the padded token length."""
        return self.tokens.shape[1]

    @property
    def lengths(self) -> torch.Tensor:
        """int64 [B], the number of real tokens of each text."""
        return self.mask.sum(dim=1)

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    @property
    def dtype(self) -> torch.dtype:
        return self.tokens.dtype

    def __len__(self) -> int:
        return self.batch_size

    # ----------------------------------------------------------------------------------------------- transforms
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None, **kw: Any) -> TextEmbedding:
        """Move to `device` and/or cast the float tensors to `dtype` (the mask stays bool).

        Args:
            device: target device (or a dtype, as a convenience: `emb.to(torch.float16)`).
            dtype: floating dtype for `tokens` and `pooled`.
        """
        if isinstance(device, torch.dtype):
            device, dtype = None, device
        return TextEmbedding(
            tokens=self.tokens.to(device=device, dtype=dtype, **kw),
            mask=self.mask.to(device=device, **kw),
            pooled=self.pooled.to(device=device, dtype=dtype, **kw),
        )

    def select(self, idx: int | slice | Sequence[int] | torch.Tensor) -> TextEmbedding:
        """Rows `idx` of the batch (an int keeps the batch dimension: [1, L, D]); L is unchanged.

        Args:
            idx: an int, a slice, a list of ints, or an int64 / bool tensor over the batch.
        """
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        elif not isinstance(idx, slice):
            idx = torch.as_tensor(idx, device=self.tokens.device)
            if idx.dtype != torch.bool:
                idx = idx.long()
        return TextEmbedding(tokens=self.tokens[idx], mask=self.mask[idx], pooled=self.pooled[idx])

    __getitem__ = select

    def trim(self) -> TextEmbedding:
        """Drop trailing columns where no row has a real token (L becomes the longest real length)."""
        n = int(self.lengths.max()) if self.batch_size else 0
        if n == self.length:
            return self
        return TextEmbedding(tokens=self.tokens[:, :n], mask=self.mask[:, :n], pooled=self.pooled)

    @classmethod
    def cat(cls, items: Sequence[TextEmbedding]) -> TextEmbedding:
        """Concatenate along the batch, zero-padding tokens (mask False) to the longest L.

        Args:
            items: embeddings with the same D, P, device and dtype.
        """
        items = list(items)
        if not items:
            raise ValueError("TextEmbedding.cat needs at least one embedding")
        if len(items) == 1:
            return items[0]
        L = max(e.length for e in items)
        toks, masks = [], []
        for e in items:
            pad = L - e.length
            toks.append(nn.functional.pad(e.tokens, (0, 0, 0, pad)) if pad else e.tokens)  # [b, L, D]
            masks.append(nn.functional.pad(e.mask, (0, pad), value=False) if pad else e.mask)  # [b, L]
        return cls(
            tokens=torch.cat(toks, dim=0), mask=torch.cat(masks, dim=0), pooled=torch.cat([e.pooled for e in items], 0)
        )

    def equal(self, other: TextEmbedding) -> bool:
        """Bit-exact equality of all three tensors (shapes included)."""
        return (
            torch.equal(self.tokens, other.tokens)
            and torch.equal(self.mask, other.mask)
            and torch.equal(self.pooled, other.pooled)
        )


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of tokens [B, L, D] over the True entries of mask [B, L] -> [B, D] (zero for empty rows)."""
    m = mask.to(tokens.dtype).unsqueeze(-1)  # [B, L, 1]
    return (tokens * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)  # [B, D]


def check_texts(texts: Any) -> list[str]:
    """Validate `texts` (a list/tuple of str) and return it as a list; a bare string is a clear error."""
    if isinstance(texts, str):
        raise DataError("encode() takes a list of strings, got a single string; wrap it: encode([text])")
    try:
        texts = list(texts)
    except TypeError:
        raise DataError(f"encode() takes a list of strings, got {type(texts).__name__}") from None
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise DataError(f"encode() takes a list of strings; found {bad[0]} among the items")
    return texts


def check_prompts(prompts: Any) -> list[str]:
    """Prompts for a pipeline: one string or a non-empty sequence of strings -> list (a clear ConfigError otherwise)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ConfigError("give at least one prompt")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise ConfigError(f"prompts must be strings, got {type(bad[0]).__name__}")
    return prompts


def short_hash(*parts: str | bytes, n: int = 16) -> str:
    """Hex sha256 of the given parts (joined with NUL), truncated to n characters."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:n]


class TextEncoder(nn.Module, metaclass=abc.ABCMeta):
    """Base of all text encoders: `encode(list[str]) -> TextEmbedding`.

    Frozen by default: parameters have `requires_grad=False`, the module stays in eval mode even when a parent calls
    `.train()`, and `encode` runs under `torch.no_grad()` (not inference mode, so outputs can feed modules that are
    being trained). With `trainable=True` gradients flow into the encoder and `.train()` / `.eval()` toggle dropout.

    Subclasses set `name`, `dim`, `pooled_dim`, `max_length` and implement `_encode(texts)` (returning right-padded
    outputs; the base zeroes padded tokens and trims all-padding columns) and `_weights_id()` (a string that pins
    weights, tokenizer and settings other than max_length / dtype, which the base adds).

    Args:
        trainable: let gradients flow into the encoder (default False: frozen).
    """

    name: str = "text-encoder"
    dim: int = 0  # token width D
    pooled_dim: int = 0  # pooled width P
    max_length: int = 0  # longest token sequence kept (longer texts are truncated)

    def __init__(self, trainable: bool = False):
        super().__init__()
        self._trainable = bool(trainable)
        self._weights_id_cache: str | None = None

    # ------------------------------------------------------------------------------------------- freezing
    @property
    def trainable(self) -> bool:
        return self._trainable

    def set_trainable(self, trainable: bool) -> TextEncoder:
        """Freeze (eval, no grad) or unfreeze (train mode, grad) the encoder; returns self."""
        self._trainable = bool(trainable)
        self.requires_grad_(self._trainable)
        nn.Module.train(self, self._trainable)
        return self

    def train(self, mode: bool = True) -> TextEncoder:
        """Like nn.Module.train, except that a frozen encoder always stays in eval mode."""
        return nn.Module.train(self, mode and self._trainable)

    def _finish_init(self) -> None:
        """Subclasses call this after building their modules to apply the frozen/trainable state."""
        self.set_trainable(self._trainable)

    # ------------------------------------------------------------------------------------------- identity
    @abc.abstractmethod
    def _weights_id(self) -> str:
        """A hash of the weights and tokenizer (part of `identity`)."""

    @property
    def param_dtype(self) -> torch.dtype:
        p = next(iter(self.parameters()), None)
        return p.dtype if p is not None else torch.float32

    @property
    def device(self) -> torch.device:
        p = next(iter(self.parameters()), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def identity(self) -> str:
        """Uniquely names weights + tokenizer + settings (max_length, dtype, output format); the cache key."""
        if self._weights_id_cache is None:
            self._weights_id_cache = self._weights_id()
        dtype = str(self.param_dtype).replace("torch.", "")
        return f"{self.name}|{self._weights_id_cache}|max_length={self.max_length}|{dtype}|{EMBEDDING_FORMAT}"

    # ------------------------------------------------------------------------------------------- encoding
    @abc.abstractmethod
    def _encode(self, texts: list[str]) -> TextEmbedding:
        """Encode a non-empty list of strings (called by `encode`, which checks inputs and handles grad mode)."""

    def encode(self, texts: Sequence[str]) -> TextEmbedding:
        """Encode a batch of texts.

        Args:
            texts: B strings (may be empty strings; longer texts are truncated to `max_length` tokens).

        Returns:
            TextEmbedding with tokens [B, L, dim], mask [B, L], pooled [B, pooled_dim] on the encoder's device,
            padded tokens zeroed, L = longest real length in the batch.
        """
        texts = check_texts(texts)
        if not texts:
            dev, dt = self.device, self.param_dtype
            return TextEmbedding(
                tokens=torch.zeros(0, 0, self.dim, device=dev, dtype=dt),
                mask=torch.zeros(0, 0, dtype=torch.bool, device=dev),
                pooled=torch.zeros(0, self.pooled_dim, device=dev, dtype=dt),
            )
        with torch.set_grad_enabled(self._trainable and torch.is_grad_enabled()):
            out = self._encode(texts)
            mask = out.mask
            tokens = out.tokens.masked_fill(~mask.unsqueeze(-1), 0.0)  # [B, L, D], zero at padding
            return TextEmbedding(tokens=tokens, mask=mask, pooled=out.pooled).trim()

    def forward(self, texts: Sequence[str]) -> TextEmbedding:
        return self.encode(texts)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, dim={self.dim}, pooled_dim={self.pooled_dim}, max_length={self.max_length}, trainable={self._trainable}"


def unpack_text(text: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A `TextEmbedding` or a (tokens, mask, pooled) triple -> (tokens, mask, pooled): what the networks take."""
    if isinstance(text, (tuple, list)) and len(text) == 3:
        return text[0], text[1], text[2]
    if all(hasattr(text, a) for a in ("tokens", "mask", "pooled")):
        return text.tokens, text.mask, text.pooled
    raise ConfigError(f"text must be a TextEmbedding or a (tokens, mask, pooled) triple, got {type(text).__name__}")
