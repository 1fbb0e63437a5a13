"""Caption batches for trainers: a frozen text encoder with an in-memory per-caption cache, padded to the batch."""

from __future__ import annotations

from typing import Any

import torch

from fastt2i.errors import ConfigError
from fastt2i.text.registry import load_text_encoder

Text = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # tokens [B,L,D], mask [B,L] bool, pooled [B,P]


class TextBatcher:
    """Frozen text encoder with an in-memory cache per caption: captions -> (tokens, mask, pooled) on a device.

    Rows are stored trimmed to their real length and rounded to fp16 (as CaptionTable does), so a caption gives the
    same values whichever batch first encoded it: a resumed run sees the same text as an uninterrupted one.

    The cache is one zero-padded table on the device (a row per caption, fp16: the values are fp16-rounded anyway,
    so the fp32 batch is exact) and a batch is one gather from it: no per-caption Python loop and no host-to-device
    copy of the text per step. The table widens to the longest caption seen; a batch is cut to its own longest.

    Args:
        spec: text encoder spec (fastt2i.text), loaded on first use.
        device: where batches go.
        dims: (token width, pooled width) the models expect; a ConfigError names a mismatch.
    """

    def __init__(self, spec: str, device: torch.device, dims: tuple[int, int] | None = None):
        self.spec, self.device, self.dims = spec, torch.device(device), dims
        self.index: dict[str, int] = {}  # caption -> row of the tables
        self._tokens: torch.Tensor | None = None  # [N_cap,L_max,D] fp16, zero past each caption's length
        self._pooled: torch.Tensor | None = None  # [N_cap,P] fp16
        self._lengths: list[int] = []  # real tokens per caption (host copy: the batch width without a sync)
        self._lengths_dev: torch.Tensor | None = None  # [N_cap] long (tables have spare rows: capacity doubles)
        self._encoder: Any = None

    def encoder(self) -> Any:
        if self._encoder is None:
            with torch.inference_mode(False):  # normal parameters, even when first needed while sampling
                self._encoder = load_text_encoder(self.spec, device=self.device)
        return self._encoder

    def __len__(self) -> int:
        return len(self.index)

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> Text:
        missing = sorted({c for c in captions if c not in self.index})
        if missing:
            # the cache must hold normal tensors even when filled under inference_mode (sampling, evaluation)
            with torch.inference_mode(False):
                for i in range(0, len(missing), 256):
                    self._add(missing[i:i + 256])
        rows = [self.index[c] for c in captions]
        length = max(self._lengths[r] for r in rows)
        idx = torch.tensor(rows, device=self.device)  # [B]
        tokens = self._tokens.narrow(1, 0, length).index_select(0, idx).float()  # [B,L,D]
        mask = torch.arange(length, device=self.device) < self._lengths_dev.index_select(0, idx)[:, None]  # [B,L]
        pooled = self._pooled.index_select(0, idx).float()  # [B,P]
        return tokens, mask, pooled

    def _add(self, chunk: list[str]) -> None:
        """Encode `chunk` (captions not cached yet) and append their rows to the tables (capacity doubles)."""
        emb = self.encoder().encode(chunk)
        got = (emb.tokens.shape[-1], emb.pooled.shape[-1])
        if self.dims is not None and got != self.dims:
            raise ConfigError(f"text encoder {self.spec!r} gives tokens/pooled of width {got[0]}/{got[1]}, but the "
                              f"models expect {self.dims[0]}/{self.dims[1]} (set generator.text_dim/pooled_dim "
                              "and discriminator.text_dim to match)")
        lengths = [int(n) for n in emb.mask.sum(dim=1).tolist()]  # a caption's first n positions are its tokens
        width = max(lengths)
        tokens = emb.tokens[:, :width].float().half().to(self.device)  # [n,L,D], rounded as the rows always were
        keep = torch.arange(width, device=self.device) < torch.tensor(lengths, device=self.device)[:, None]  # [n,L]
        tokens = torch.where(keep[..., None], tokens, torch.zeros((), dtype=tokens.dtype, device=self.device))
        pooled = emb.pooled.float().half().to(self.device)  # [n,P]
        start, n = len(self.index), len(chunk)
        self._reserve(start + n, width, tokens.shape[-1], pooled.shape[-1])
        self._tokens[start:start + n, :width] = tokens
        self._pooled[start:start + n] = pooled
        self._lengths_dev[start:start + n] = torch.tensor(lengths, device=self.device)
        self._lengths += lengths
        for c in chunk:
            self.index[c] = len(self.index)

    def _reserve(self, rows: int, width: int, dim: int, pooled_dim: int) -> None:
        """Make the tables hold at least `rows` captions of up to `width` tokens (zero-filled, amortised growth)."""
        have_rows = 0 if self._tokens is None else self._tokens.shape[0]
        have_width = 0 if self._tokens is None else self._tokens.shape[1]
        if rows <= have_rows and width <= have_width:
            return
        new_rows = max(rows, 2 * have_rows, 64)
        new_width = max(width, have_width)
        tokens = torch.zeros(new_rows, new_width, dim, dtype=torch.float16, device=self.device)
        pooled = torch.zeros(new_rows, pooled_dim, dtype=torch.float16, device=self.device)
        lengths = torch.zeros(new_rows, dtype=torch.long, device=self.device)
        n = len(self.index)
        if self._tokens is not None:
            tokens[:n, :have_width] = self._tokens[:n]
            pooled[:n] = self._pooled[:n]
            lengths[:n] = self._lengths_dev[:n]
        self._tokens, self._pooled, self._lengths_dev = tokens, pooled, lengths
