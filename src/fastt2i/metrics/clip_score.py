"""CLIP score (Hessel et al. 2021, as used for text-to-image): 100 * max(cos(image, text), 0), averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastt2i.errors import DataError


def clip_score_per_sample(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Per-pair CLIP scores 100 * max(cos, 0) in float64.

    Args:
        image_emb: image embeddings [N, D] (normalised or not).
        text_emb: text embeddings [N, D] of the matching prompts.
    Returns:
        [N] scores in [0, 100].
    """
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise DataError(
            f"clip score: image and text embeddings must both be [N, D], got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}"
        )
    cos = F.cosine_similarity(image_emb.to(torch.float64), text_emb.to(torch.float64).to(image_emb.device), dim=1)
    return 100.0 * cos.clamp_min(0)


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> float:
    """Mean CLIP score over N image-prompt pairs (see `clip_score_per_sample`)."""
    return float(clip_score_per_sample(image_emb, text_emb).mean())


class ClipScoreAccumulator:
    """Running mean and standard deviation of CLIP scores over batches."""

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0

    def update(self, image_emb: torch.Tensor, text_emb: torch.Tensor) -> None:
        """Add a batch of matching embeddings [B, D] and [B, D]."""
        s = clip_score_per_sample(image_emb, text_emb).cpu()
        self.n += s.numel()
        self.total += float(s.sum())
        self.total_sq += float((s * s).sum())

    @property
    def mean(self) -> float:
        if self.n == 0:
            raise DataError("clip score needs at least one image-prompt pair")
        return self.total / self.n

    @property
    def std(self) -> float:
        m = self.mean
        return max(self.total_sq / self.n - m * m, 0.0) ** 0.5
