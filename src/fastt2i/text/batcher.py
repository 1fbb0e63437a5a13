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

    Args:
        spec: text encoder spec (fastt2i.text), loaded on first use.
        device: where batches go.
    """

    def __init__(self, spec: str, device: torch.device, dims: tuple[int, int] | None = None):
        self.spec, self.device, self.dims = spec, device, dims
        self.rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._encoder: Any = None

    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = load_text_encoder(self.spec, device=self.device)
        return self._encoder

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> Text:
        missing = sorted({c for c in captions if c not in self.rows})
        for i in range(0, len(missing), 256):
            chunk = missing[i:i + 256]
            emb = self.encoder().encode(chunk)
            got = (emb.tokens.shape[-1], emb.pooled.shape[-1])
            if self.dims is not None and got != self.dims:
                raise ConfigError(f"text encoder {self.spec!r} gives tokens/pooled of width {got[0]}/{got[1]}, but the "
                                  f"models expect {self.dims[0]}/{self.dims[1]} (set generator.text_dim/pooled_dim "
                                  "and discriminator.text_dim to match)")
            for j, c in enumerate(chunk):
                n = int(emb.mask[j].sum())
                self.rows[c] = (emb.tokens[j, :n].float().cpu().half().float(),
                                emb.pooled[j].float().cpu().half().float())
        length = max(self.rows[c][0].shape[0] for c in captions)
        dim = self.rows[captions[0]][0].shape[1]
        tokens = torch.zeros(len(captions), length, dim)  # [B,L,D]
        mask = torch.zeros(len(captions), length, dtype=torch.bool)  # [B,L]
        for i, c in enumerate(captions):
            t = self.rows[c][0]
            tokens[i, :len(t)] = t
            mask[i, :len(t)] = True
        pooled = torch.stack([self.rows[c][1] for c in captions])  # [B,P]
        return tokens.to(self.device), mask.to(self.device), pooled.to(self.device)
