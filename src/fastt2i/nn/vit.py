"""A small ViT image tower (Dosovitskiy et al. 2021): patch embedding, class token, pre-norm transformer blocks."""

from __future__ import annotations

import torch
import torch.nn as nn


class ViTTower(nn.Module):
    """[B,3,R,R] -> the class token's final features [B,width] (`forward`), or every block's tokens (`tokens`).

    Pre-norm blocks (`nn.TransformerEncoderLayer`, norm_first, GELU, MLP 4x, no dropout; attention through torch's
    fused SDPA), learned position embeddings, a final LayerNorm.

    Args:
        resolution: input size (a multiple of `patch`).
        patch: patch size.
        width: token width.
        depth: transformer blocks.
        heads: attention heads (width must divide by it).
    """

    def __init__(self, resolution: int = 64, patch: int = 8, width: int = 192, depth: int = 6, heads: int = 3):
        super().__init__()
        if resolution % patch or width % heads or depth < 1:
            raise ValueError(f"ViTTower needs resolution % patch == 0, width % heads == 0 and depth >= 1; got "
                             f"{resolution}, {patch}, {width}, {heads}, {depth}")
        self.grid = resolution // patch
        self.patch_embed = nn.Conv2d(3, width, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, self.grid * self.grid + 1, width) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out_channels = width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B,3,R,R] -> patch tokens with the class token first and position embeddings added [B,1+N,width]."""
        t = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B,N,W]
        return torch.cat([self.cls_token.expand(t.shape[0], -1, -1).to(t.dtype), t], dim=1) + self.pos_embed

    def tokens(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[B,3,R,R] -> [patch embedding, block 1, ..., block depth] tokens, each [B,1+N,width] (class token first)."""
        out = [self.embed(x)]
        for blk in self.blocks:
            out.append(blk(out[-1]))  # [B,1+N,W]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x)  # [B,1+N,W]
        for blk in self.blocks:
            t = blk(t)  # [B,1+N,W]
        return self.norm(t[:, 0])  # [B,W]
