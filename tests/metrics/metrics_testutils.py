"""Test helpers for the metrics tests: a tiny deterministic feature extractor with a call counter, image streams."""

from __future__ import annotations

import torch

from fastt2i.metrics.extractors import FeatureExtractor


class PooledPixels(FeatureExtractor):
    """Test extractor: 4x4 average-pooled pixels (48-d) through a fixed random projection; counts its calls.

    Has an optional fake text tower (hash of the prompt -> fixed embedding) for CLIP-score plumbing tests.
    """

    def __init__(self, dim: int = 16, name: str = "pooled", seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(48, dim, generator=g))
        self.dim = dim
        self.name = name
        self.calls = 0
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.images_seen += images.shape[0]
        x = torch.nn.functional.adaptive_avg_pool2d(images.float(), 4).flatten(1)  # [N,48]
        return x @ self.proj  # [N,dim]


class PooledPixelsWithText(PooledPixels):
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        out = []
        for p in prompts:
            g = torch.Generator().manual_seed(sum(map(ord, p)))
            out.append(torch.randn(self.dim, generator=g))
        return torch.stack(out)


def image_batches(n: int, batch: int, seed: int, shift: float = 0.0, size: int = 16, prompts: bool = False):
    """A list of [B,3,size,size] batches in [-1,1] (optionally with prompts), deterministic by seed."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, batch):
        b = min(batch, n - s)
        x = (torch.rand(b, 3, size, size, generator=g) * 2 - 1) * 0.8 + shift
        x = x.clamp(-1, 1)
        out.append((x, [f"prompt {s + i}" for i in range(b)]) if prompts else x)
    return out


def _register_test_metrics() -> None:
    """fd_/kid_/pr_pooled for the test extractor, through the same registration point the emoji networks will use."""
    from fastt2i.metrics.registry import METRICS, register_feature_metrics

    if "fd_pooled" not in METRICS:
        register_feature_metrics("pooled")


_register_test_metrics()
