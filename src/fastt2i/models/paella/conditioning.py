"""Paella conditioning: text tokens + pooled CLIP text/image vectors -> one token sequence, per-sample dropout.

Layout of the sequence (fixed for a given text length L, so conditional and unconditional batches concatenate):

    [ text tokens (L) | CLIP text (num_clip_tokens) | CLIP image (num_clip_tokens) ]     (CLIP parts only if clip_dim)

A part that is dropped (or not given) is zeroed AND masked out (mask False), so attention ignores it; with every part
dropped the model sees no conditioning at all: that is the unconditional input of classifier-free guidance (the
official code feeds the embedding of an empty caption instead; masking gives a prompt-independent null condition).

Dropout probabilities (`ConditionDropout` defaults) come from the official v3 trainer
(dome272/Paella `src_distributed/train.py`): the ByT5 text is replaced by an empty caption with probability 0.05,
the CLIP text embedding with 0.9 and the CLIP image embedding is left out with 0.9. The official code draws them once
per batch; here they are drawn per sample.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, NamedTuple

import torch
from torch import nn

from fastt2i.errors import ConfigError


class PaellaCondition(NamedTuple):
    """The denoiser's conditioning input: ``tokens [B,L',c_cond]`` and ``mask [B,L'] bool`` (True = attend)."""

    tokens: torch.Tensor
    mask: torch.Tensor


def null_condition(cond: PaellaCondition) -> PaellaCondition:
    """The unconditional counterpart of `cond` (same shape): every token zeroed and masked out."""
    return PaellaCondition(torch.zeros_like(cond.tokens), torch.zeros_like(cond.mask))


def cat_conditions(*conds: PaellaCondition) -> PaellaCondition:
    """Concatenate conditions along the batch, padding the shorter sequences with masked zero tokens."""
    length = max(c.tokens.shape[1] for c in conds)

    def pad(c: PaellaCondition) -> PaellaCondition:
        extra = length - c.tokens.shape[1]
        if extra == 0:
            return c
        t = torch.nn.functional.pad(c.tokens, (0, 0, 0, extra))
        m = torch.nn.functional.pad(c.mask, (0, extra), value=False)
        return PaellaCondition(t, m)

    padded = [pad(c) for c in conds]
    return PaellaCondition(torch.cat([c.tokens for c in padded]), torch.cat([c.mask for c in padded]))


@dataclasses.dataclass(frozen=True)
class ConditionDropout:
    """Per-sample probabilities of dropping each conditioning part during training (official v3 values).

    Args:
        text: drop the text-encoder tokens (0.05).
        clip_text: drop the pooled CLIP text vector (0.9).
        clip_image: drop the pooled CLIP image vector (0.9).
    """

    text: float = 0.05
    clip_text: float = 0.9
    clip_image: float = 0.9

    def __post_init__(self) -> None:
        for name in ("text", "clip_text", "clip_image"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ConfigError(f"dropout probability {name} must be in [0, 1], got {p}")


def sample_dropout(
    batch: int,
    probs: ConditionDropout | Mapping[str, float] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Independent per-sample drop flags: {"drop_text", "drop_clip_text", "drop_clip_image"} -> [B] bool.

    Args:
        batch: number of samples B.
        probs: a `ConditionDropout` or a mapping with keys text / clip_text / clip_image (default: the paper's).
        generator: optional torch.Generator (on `device`) for reproducible draws.
        device: where the flags live (default: the generator's device, else CPU).
    """
    if probs is None:
        probs = ConditionDropout()
    elif not isinstance(probs, ConditionDropout):
        unknown = set(probs) - {"text", "clip_text", "clip_image"}
        if unknown:
            raise ConfigError(f"unknown dropout key(s) {sorted(unknown)}; valid: text, clip_text, clip_image")
        probs = ConditionDropout(**probs)
    if device is None:
        device = generator.device if generator is not None else "cpu"
    u = torch.rand(3, batch, generator=generator, device=device)  # [3,B]
    return {
        "drop_text": u[0] < probs.text,
        "drop_clip_text": u[1] < probs.clip_text,
        "drop_clip_image": u[2] < probs.clip_image,
    }


class PaellaConditioner(nn.Module):
    """Maps text tokens and pooled CLIP vectors to `c_cond`-wide conditioning tokens (official `gen_c_embeddings`).

    Text tokens go through one linear layer; each CLIP vector through a linear layer to `num_clip_tokens` tokens;
    the sequence is layer-normalised (no affine). Dropped or absent parts are zeroed and masked out per sample.

    Args:
        text_dim: width D of the text encoder's tokens.
        clip_dim: width E of the CLIP vectors; 0 = no CLIP inputs (passing one is then an error).
        c_cond: output width.
        num_clip_tokens: tokens per CLIP vector.
    """

    def __init__(self, text_dim: int, clip_dim: int, c_cond: int, num_clip_tokens: int = 4):
        super().__init__()
        self.text_dim, self.clip_dim, self.c_cond, self.num_clip_tokens = text_dim, clip_dim, c_cond, num_clip_tokens
        self.text_mapper = nn.Linear(text_dim, c_cond)
        if clip_dim > 0:
            self.clip_text_mapper = nn.Linear(clip_dim, c_cond * num_clip_tokens)
            self.clip_image_mapper = nn.Linear(clip_dim, c_cond * num_clip_tokens)
        self.norm = nn.LayerNorm(c_cond, elementwise_affine=False, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: mappers N(0, 0.02), zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _clip(self, mapper: nn.Module, vec: torch.Tensor | None, batch: int, name: str,
              ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.num_clip_tokens
        if vec is None:
            return ref.new_zeros(batch, n, self.c_cond), torch.zeros(batch, n, dtype=torch.bool, device=ref.device)
        if vec.ndim != 2 or vec.shape != (batch, self.clip_dim):
            raise ConfigError(f"{name} must be [B={batch}, clip_dim={self.clip_dim}], got {tuple(vec.shape)}")
        tok = mapper(vec.to(ref.dtype)).view(batch, n, self.c_cond)  # [B,n,c]
        return tok, torch.ones(batch, n, dtype=torch.bool, device=ref.device)

    def forward(
        self,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        clip_text: torch.Tensor | None = None,
        clip_image: torch.Tensor | None = None,
        drop_text: torch.Tensor | None = None,
        drop_clip_text: torch.Tensor | None = None,
        drop_clip_image: torch.Tensor | None = None,
    ) -> PaellaCondition:
        """Build the conditioning sequence.

        Args:
            text_tokens: [B,L,D] text-encoder tokens.
            text_mask: [B,L] bool, True for real tokens (None = all real).
            clip_text: [B,E] pooled CLIP text vectors, or None (absent: zeroed and masked).
            clip_image: [B,E] pooled CLIP image vectors, or None.
            drop_text / drop_clip_text / drop_clip_image: [B] bool per-sample drop flags (None = keep).

        Returns:
            PaellaCondition(tokens [B,L+2n,c_cond] (L without CLIP), mask [B,L+2n] bool).
        """
        if text_tokens.ndim != 3 or text_tokens.shape[-1] != self.text_dim:
            raise ConfigError(f"text_tokens must be [B,L,text_dim={self.text_dim}], got {tuple(text_tokens.shape)}")
        B, L, _ = text_tokens.shape
        dev = text_tokens.device
        if text_mask is None:
            text_mask = torch.ones(B, L, dtype=torch.bool, device=dev)
        if text_mask.shape != (B, L):
            raise ConfigError(f"text_mask must be [B,L]={B, L}, got {tuple(text_mask.shape)}")
        if self.clip_dim == 0 and (clip_text is not None or clip_image is not None):
            raise ConfigError("this model has no CLIP conditioning (clip_dim=0) but CLIP vectors were given")
        seq = [self.text_mapper(text_tokens)]  # [B,L,c]
        masks = [text_mask.bool()]
        drops = [drop_text]
        if self.clip_dim > 0:
            for mapper, vec, drop, name in ((self.clip_text_mapper, clip_text, drop_clip_text, "clip_text"),
                                            (self.clip_image_mapper, clip_image, drop_clip_image, "clip_image")):
                tok, m = self._clip(mapper, vec, B, name, seq[0])
                seq.append(tok)
                masks.append(m)
                drops.append(drop)
        out_masks = []
        for m, drop in zip(masks, drops):
            if drop is not None:
                if drop.shape != (B,):
                    raise ConfigError(f"drop flags must be [B]={B} bool, got {tuple(drop.shape)}")
                m = m & ~drop.to(dev, torch.bool)[:, None]
            out_masks.append(m)
        mask = torch.cat(out_masks, dim=1)  # [B,L']
        tokens = self.norm(torch.cat(seq, dim=1)) * mask[..., None]  # [B,L',c], zero where masked
        return PaellaCondition(tokens, mask)
