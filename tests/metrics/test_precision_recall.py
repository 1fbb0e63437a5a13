"""Improved precision/recall: k-NN radii and manifold coverage on identical, disjoint and partial sets."""

import torch

from fastt2i.metrics.precision_recall import knn_radii, precision_recall


def test_knn_radii_match_brute_force_and_blocking():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(57, 6, generator=g, dtype=torch.float64)
    d = torch.cdist(x, x) ** 2
    ref = d.sort(dim=1).values[:, 3]  # index 0 is the point itself
    torch.testing.assert_close(knn_radii(x, k=3, block=10), ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(knn_radii(x, k=3, block=1000), ref, rtol=1e-9, atol=1e-9)


def test_identical_sets_are_near_one():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    pr = precision_recall(x, x.clone(), k=3, block=64)
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0


def test_disjoint_far_apart_sets_are_near_zero():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g) + 100
    pr = precision_recall(a, b)
    assert pr["precision"] == 0.0 and pr["recall"] == 0.0


def test_mode_dropping_lowers_recall_not_precision():
    # Real: two clusters. Fake: only one of them -> precision high, recall about one half.
    g = torch.Generator().manual_seed(3)
    real = torch.cat([torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 50])
    fake = torch.randn(200, 8, generator=g)
    pr = precision_recall(fake, real, dtype=torch.float64)
    assert pr["precision"] > 0.9
    assert 0.4 < pr["recall"] < 0.55
