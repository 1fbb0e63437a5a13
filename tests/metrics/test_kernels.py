"""KID (unbiased polynomial MMD over subsets) and CMMD (RBF MMD, paper estimator) on known cases."""

import pytest
import torch

from fastt2i.errors import DataError
from fastt2i.metrics.kernels import cmmd, kernel_inception_distance, polynomial_mmd2_unbiased


def _naive_poly_mmd(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return float(xx + yy - 2 * xy)


def test_polynomial_mmd_matches_naive_loops():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(_naive_poly_mmd(x, y), rel=1e-10)


def test_kid_near_zero_for_same_distribution():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(600, 32, generator=g), torch.randn(600, 32, generator=g)
    kid = kernel_inception_distance(a, b, num_subsets=20, subset_size=200, seed=0)
    assert abs(kid["mean"]) < 3 * kid["std"] + 1e-4
    assert kid["subset_size"] == 200 and kid["num_subsets"] == 20


def test_kid_positive_for_shifted_distribution_and_deterministic():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(300, 32, generator=g), torch.randn(300, 32, generator=g) + 0.5
    kid = kernel_inception_distance(a, b, num_subsets=10, subset_size=100, seed=0)
    assert kid["mean"] > 5 * kid["std"] > 0
    assert kernel_inception_distance(a, b, num_subsets=10, subset_size=100, seed=0) == kid


def test_kid_caps_subset_size():
    a, b = torch.randn(30, 4), torch.randn(50, 4)
    assert kernel_inception_distance(a, b, num_subsets=3, subset_size=1000)["subset_size"] == 30


def _naive_cmmd(x, y, sigma=10.0, scale=1000.0):
    k = lambda a, b: torch.exp(-torch.cdist(a, b) ** 2 / (2 * sigma**2)).mean()  # noqa: E731
    return float(scale * (k(x, x) + k(y, y) - 2 * k(x, y)))


def test_cmmd_identical_zero_and_matches_reference_formula():
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(40, 8, generator=g, dtype=torch.float64), dim=1) * 5
    y = torch.nn.functional.normalize(torch.randn(30, 8, generator=g, dtype=torch.float64) + 1, dim=1) * 5
    assert cmmd(x, x) == 0.0
    got = cmmd(x, y, block=7)  # blocks that do not divide the row count
    assert got > 0
    assert got == pytest.approx(_naive_cmmd(x, y), rel=1e-9)


def test_cmmd_unbiased_variant():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(20, 5, generator=g, dtype=torch.float64), torch.randn(25, 5, generator=g, dtype=torch.float64) + 2
    gamma = 1 / 200
    kxx = torch.exp(-gamma * torch.cdist(x, x) ** 2)
    kyy = torch.exp(-gamma * torch.cdist(y, y) ** 2)
    kxy = torch.exp(-gamma * torch.cdist(x, y) ** 2)
    ref = 1000 * ((kxx.sum() - 20) / (20 * 19) + (kyy.sum() - 25) / (25 * 24) - 2 * kxy.mean())
    assert cmmd(x, y, unbiased=True, block=6) == pytest.approx(float(ref), rel=1e-9)


def test_kernel_metrics_reject_bad_shapes():
    with pytest.raises(DataError):
        kernel_inception_distance(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(DataError, match="at least 2"):
        cmmd(torch.randn(1, 3), torch.randn(5, 3))
