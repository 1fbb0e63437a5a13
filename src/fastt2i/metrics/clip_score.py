"""CLIP score (Hessel et al. 2021, as used for text-to-image): 100 * max(cos(image, text), 0), averaged; and caption
retrieval (rank every distinct prompt for each image: is its own prompt in the top k?)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def caption_retrieval(image_emb: torch.Tensor, prompts: Sequence[str], encode_text: Callable[[list[str]], torch.Tensor],
                      ks: Sequence[int] = (1, 5), chunk: int = 1024) -> dict[str, float]:
    """Caption retrieval: for each image, rank the distinct prompts of the whole set by cosine similarity; top-k =
    the fraction of images whose own prompt is among the k best (ties count against it).

    Args:
        image_emb: [N,D] image embeddings.
        prompts: the N prompts (image i was made for prompts[i]).
        encode_text: prompts -> [P,D] text embeddings in the same space.
        ks: the k of each top-k.
    Returns:
        {"top1": ..., "top5": ...} (one entry per k) and "candidates": the number of distinct prompts ranked.
    """
    if image_emb.ndim != 2 or image_emb.shape[0] != len(prompts) or not prompts:
        raise DataError(f"caption retrieval needs [N,D] image embeddings for N prompts, got "
                        f"{tuple(image_emb.shape)} for {len(prompts)}")
    distinct = list(dict.fromkeys(prompts))
    index = {p: i for i, p in enumerate(distinct)}
    text = torch.cat([encode_text(distinct[i:i + chunk]).float() for i in range(0, len(distinct), chunk)])  # [P,D]
    text = F.normalize(text, dim=-1).to(image_emb.device)
    own = torch.tensor([index[p] for p in prompts], device=image_emb.device)  # [N]
    hits = {k: 0 for k in ks}
    for i in range(0, len(prompts), chunk):
        sim = F.normalize(image_emb[i:i + chunk].float(), dim=-1) @ text.t()  # [n,P]
        mine = sim.gather(1, own[i:i + chunk, None])  # [n,1]
        rank = (sim >= mine).sum(dim=1) - 1  # [n] prompts at least as close, excluding its own
        for k in ks:
            hits[k] += int((rank < k).sum())
    out = {f"top{k}": hits[k] / len(prompts) for k in ks}
    out["candidates"] = float(len(distinct))
    return out
