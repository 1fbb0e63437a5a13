"""Improved precision and recall (Kynkäänniemi et al. 2019): k-NN hypersphere manifolds in feature space, batched."""

from __future__ import annotations

import torch

from fastt2i.errors import DataError


def _sq_dists(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances [A, B] via |a|^2 + |b|^2 - 2 a.b (clamped at 0)."""
    a_sq = (a * a).sum(1, keepdim=True)  # [A,1]
    return (a_sq + b_sq[None, :] - 2 * a @ b.T).clamp_min(0)  # [A,B]


def knn_radii(feats: torch.Tensor, k: int = 3, block: int = 1024) -> torch.Tensor:
    """Squared distance of each row to its k-th nearest neighbour in the same set (itself excluded).

    Args:
        feats: features [N, D].
        k: neighbourhood size (3 in the paper).
        block: rows per distance block; memory is block x N.
    Returns:
        [N] squared radii.
    """
    n = feats.shape[0]
    if n <= k:
        raise DataError(f"precision/recall with k={k} needs more than {k} samples per set, got {n}")
    sq = (feats * feats).sum(1)  # [N]
    out = []
    for s in range(0, n, block):
        d = _sq_dists(feats[s : s + block], feats, sq)  # [b,N]
        # k+1 smallest includes the point itself (distance ~0), so index k is the k-th true neighbour.
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(out)


def manifold_coverage(query: torch.Tensor, ref: torch.Tensor, ref_radii: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """Fraction of `query` rows that fall inside at least one hypersphere (ref_j, radius_j) of the reference set."""
    ref_sq = (ref * ref).sum(1)  # [M]
    inside = 0
    for s in range(0, query.shape[0], block):
        d = _sq_dists(query[s : s + block], ref, ref_sq)  # [b,M]
        inside += int((d <= ref_radii[None, :]).any(dim=1).sum())
    return torch.tensor(inside / query.shape[0], dtype=torch.float64)


def precision_recall(
    fake: torch.Tensor,
    real: torch.Tensor,
    k: int = 3,
    block: int = 1024,
    dtype: torch.dtype = torch.float32,
) -> dict[str, float]:
    """Improved precision (fake samples inside the real manifold) and recall (real samples inside the fake manifold).

    Each manifold is the union of balls around its samples with radius = distance to the k-th nearest neighbour.
    Distances are computed in row blocks so 10k x 10k (or 50k x 50k) never holds the full matrix: memory is
    block x max(N, M) values. The float32 default matches the reference implementation; pass float64 for exactness.

    Args:
        fake: generated features [N, D].
        real: real features [M, D].
        k: neighbourhood size.
        block: rows per distance block.
        dtype: dtype of the distance computations.
    """
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise DataError(f"precision_recall: expected [N, D] and [M, D], got {tuple(fake.shape)} and {tuple(real.shape)}")
    x = fake.to(dtype)
    y = real.to(dtype).to(x.device)
    real_r = knn_radii(y, k, block)
    fake_r = knn_radii(x, k, block)
    return {
        "precision": float(manifold_coverage(x, y, real_r, block)),
        "recall": float(manifold_coverage(y, x, fake_r, block)),
        "k": k,
    }
