"""Kernel two-sample metrics on features: KID (cubic polynomial kernel, unbiased, subsets) and CMMD (Gaussian RBF MMD)."""

from __future__ import annotations

import torch

from fastt2i.errors import DataError


def _check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DataError(f"{what}: expected features [N, D] and [M, D], got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise DataError(f"{what}: needs at least 2 samples on each side, got {x.shape[0]} and {y.shape[0]}")


def polynomial_mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None,
                             coef0: float = 1.0) -> float:
    """Unbiased MMD^2 with the polynomial kernel k(a, b) = (gamma a.b + coef0)^degree (gamma defaults to 1/D).

    Args:
        x: features [m, D]; y: features [n, D] (float64 recommended).
    """
    _check_pair(x, y, "polynomial_mmd2_unbiased")
    d = x.shape[1]
    g = 1.0 / d if gamma is None else gamma
    m, n = x.shape[0], y.shape[0]
    k_xx = (x @ x.T * g + coef0) ** degree  # [m,m]
    k_yy = (y @ y.T * g + coef0) ** degree  # [n,n]
    k_xy = (x @ y.T * g + coef0) ** degree  # [m,n]
    sum_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    sum_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(sum_xx + sum_yy - 2 * k_xy.mean())


def kernel_inception_distance(
    fake: torch.Tensor,
    real: torch.Tensor,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over random subsets.

    Each subset draws `subset_size` rows (without replacement) from each side (capped by the smaller set, as in
    the reference implementations); returns the mean and standard deviation over subsets. The estimator is unbiased
    for independent samples; comparing a set with itself gives slightly negative values (subsets share points).

    Args:
        fake: generated features [N, D].
        real: real features [M, D].
        num_subsets: number of random subsets.
        subset_size: rows per subset and side.
        seed: seed of the subset sampler (results are deterministic for a given seed).
    """
    _check_pair(fake, real, "kernel_inception_distance")
    m = min(subset_size, fake.shape[0], real.shape[0])
    gen = torch.Generator().manual_seed(seed)
    x_all = fake.to(torch.float64)
    y_all = real.to(torch.float64)
    vals = []
    for _ in range(num_subsets):
        ix = torch.randperm(x_all.shape[0], generator=gen)[:m]
        iy = torch.randperm(y_all.shape[0], generator=gen)[:m]
        vals.append(polynomial_mmd2_unbiased(x_all[ix.to(x_all.device)], y_all[iy.to(y_all.device)]))
    t = torch.tensor(vals, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std(unbiased=False)) if len(vals) > 1 else 0.0,
            "subset_size": m, "num_subsets": num_subsets}


def _rbf_kernel_sum(x: torch.Tensor, y: torch.Tensor, gamma: float, block: int, skip_diag: bool) -> torch.Tensor:
    """Sum over all pairs of exp(-gamma |x_i - y_j|^2), computed in row blocks (fits 10k x 10k in memory)."""
    x_sq = (x * x).sum(1)  # [m]
    y_sq = (y * y).sum(1)  # [n]
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for s in range(0, x.shape[0], block):
        xb = x[s : s + block]  # [b,D]
        d2 = (x_sq[s : s + block, None] + y_sq[None, :] - 2 * xb @ y.T).clamp_min(0)  # [b,n]
        k = torch.exp(-gamma * d2)
        total = total + k.sum()
        if skip_diag:
            total = total - k.diagonal(offset=s).sum()
    return total


def cmmd(
    fake: torch.Tensor,
    real: torch.Tensor,
    sigma: float = 10.0,
    scale: float = 1000.0,
    unbiased: bool = False,
    block: int = 2048,
) -> float:
    """CMMD (Jayasumana et al. 2024): scale * MMD^2 with a Gaussian RBF kernel over (L2-normalised) CLIP embeddings.

    The default is the paper's reference estimator (google-research/cmmd `distance.py`): the biased V-statistic
    mean(K_xx) + mean(K_yy) - 2 mean(K_xy), diagonals included, with k(a, b) = exp(-|a - b|^2 / (2 sigma^2)),
    sigma = 10 and scale = 1000. It is exactly 0 for identical sets. `unbiased=True` drops the diagonals
    (U-statistic), which can be slightly negative for two samples of one distribution.

    Args:
        fake: generated embeddings [N, D]; real: real embeddings [M, D] (normalise them first, as the paper does).
        sigma: RBF bandwidth.
        scale: multiplier of the MMD^2 (1000 in the paper).
        unbiased: use the unbiased estimator instead of the paper's.
        block: rows per block of the kernel computation.
    """
    _check_pair(fake, real, "cmmd")
    x = fake.to(torch.float64)
    y = real.to(torch.float64).to(x.device)
    gamma = 1.0 / (2 * sigma**2)
    m, n = x.shape[0], y.shape[0]
    if unbiased:
        k_xx = _rbf_kernel_sum(x, x, gamma, block, True) / (m * (m - 1))
        k_yy = _rbf_kernel_sum(y, y, gamma, block, True) / (n * (n - 1))
    else:
        k_xx = _rbf_kernel_sum(x, x, gamma, block, False) / (m * m)
        k_yy = _rbf_kernel_sum(y, y, gamma, block, False) / (n * n)
    k_xy = _rbf_kernel_sum(x, y, gamma, block, False) / (m * n)
    return float(scale * (k_xx + k_yy - 2 * k_xy))
