"""FeatureStats streaming accumulation and the Fréchet distance against closed forms and scipy."""

import numpy as np
import pytest
import torch

from fastt2i.errors import DataError
from fastt2i.metrics.stats import FeatureStats, frechet_distance, frechet_distance_stats


def _stats(x: torch.Tensor, batch: int = 7, **kw) -> FeatureStats:
    st = FeatureStats(x.shape[1], **kw)
    for s in range(0, x.shape[0], batch):
        st.update(x[s : s + batch])
    return st


def test_streaming_equals_one_shot():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(203, 12, generator=g, dtype=torch.float64) * 3 + 5
    st = _stats(x.float(), batch=17, store_features=True)
    ref = x.float().double()
    assert st.n == 203
    torch.testing.assert_close(st.mean, ref.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st.cov.numpy(), np.cov(ref.numpy(), rowvar=False), rtol=1e-10, atol=1e-12)
    one = _stats(x.float(), batch=1000)
    torch.testing.assert_close(st.cov, one.cov, rtol=1e-10, atol=1e-12)
    assert torch.equal(st.features, x.float())


def test_max_features_and_state_dict_round_trip():
    x = torch.randn(50, 4)
    st = _stats(x, batch=8, store_features=True, max_features=20)
    assert st.features.shape == (20, 4) and st.n == 50
    back = FeatureStats.from_state_dict(st.state_dict())
    assert back.n == 50 and torch.equal(back.features, st.features)
    torch.testing.assert_close(back.cov, st.cov)


def test_fd_with_itself_is_zero():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 32, generator=g) @ torch.randn(32, 32, generator=g)
    st = _stats(x, batch=64)
    fd = frechet_distance_stats(st, st)
    assert fd <= 1e-6 * float(torch.trace(st.cov))


def test_fd_closed_form_diagonal():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    v1, v2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = float(((mu1 - mu2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum())  # 5 + (1 + 1 + 4)
    assert frechet_distance(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(11.0)


def test_fd_closed_form_commuting():
    # Same eigenvectors, different eigenvalues: tr sqrt(S1 S2) = sum sqrt(l1 l2).
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    l1 = torch.tensor([0.5, 1, 2, 3, 4, 5], dtype=torch.float64)
    l2 = torch.tensor([2, 2, 1, 0.1, 4, 9], dtype=torch.float64)
    s1, s2 = q @ torch.diag(l1) @ q.T, q @ torch.diag(l2) @ q.T
    mu = torch.zeros(6, dtype=torch.float64)
    expected = float(((l1.sqrt() - l2.sqrt()) ** 2).sum())
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-9)


def test_fd_general_matches_scipy():
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(3)
    a = torch.randn(400, 10, generator=g, dtype=torch.float64) @ torch.randn(10, 10, generator=g, dtype=torch.float64)
    b = torch.randn(300, 10, generator=g, dtype=torch.float64) @ torch.randn(10, 10, generator=g, dtype=torch.float64) + 0.3
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    got = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), torch.from_numpy(mu2), torch.from_numpy(s2))
    assert got == pytest.approx(ref, rel=1e-8)


def test_fd_singular_covariance_is_finite():
    # Fewer samples than dimensions: singular covariances must not produce NaN or negative values.
    g = torch.Generator().manual_seed(4)
    a, b = _stats(torch.randn(10, 64, generator=g)), _stats(torch.randn(10, 64, generator=g) + 1)
    fd = frechet_distance_stats(a, b)
    assert np.isfinite(fd) and fd > 60  # the mean shift alone contributes ~64


def test_bad_inputs_raise_clear_errors():
    st = FeatureStats(4)
    with pytest.raises(DataError, match=r"\[B, 4\]"):
        st.update(torch.zeros(3, 5))
    with pytest.raises(DataError, match="at least 2"):
        _ = st.cov
    with pytest.raises(DataError, match="NaN"):
        st.update(torch.full((2, 4), float("nan")))
    with pytest.raises(DataError, match="store_features"):
        _ = _stats(torch.randn(5, 4)).features
    with pytest.raises(DataError, match="shapes"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
