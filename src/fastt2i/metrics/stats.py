"""Streaming feature statistics (mean, covariance, optional raw features) and the Fréchet distance between Gaussians."""

from __future__ import annotations

import torch

from fastt2i.errors import DataError


class FeatureStats:
    """Accumulates features batch by batch: float64 mean and centred scatter (Chan et al. merge), optional raw features.

    Merging per-batch moments with Chan's parallel update is numerically better than raw sums of x x^T and gives the
    same mean/covariance as a one-shot computation (up to float64 rounding).

    Args:
        dim: feature dimension D.
        store_features: keep the raw features (float32, on CPU) for metrics that need samples (KID, precision/recall, CMMD).
        max_features: stop storing raw features after this many rows (moments keep accumulating); None = no limit.

    The float64 moments live on the device of the first batch (so a GPU evaluation accumulates on the GPU);
    stored features always go to CPU memory.
    """

    def __init__(self, dim: int, store_features: bool = False, max_features: int | None = None):
        if dim <= 0:
            raise DataError(f"FeatureStats needs a positive feature dimension, got {dim}")
        self.dim = int(dim)
        self.store_features = store_features
        self.max_features = max_features
        self.n = 0
        self._mean = torch.zeros(dim, dtype=torch.float64)  # [D]
        self._m2 = torch.zeros(dim, dim, dtype=torch.float64)  # [D,D] sum of centred outer products
        self._chunks: list[torch.Tensor] = []
        self._stored = 0

    def update(self, feats: torch.Tensor) -> None:
        """Add a batch of features [B, D] (any float dtype, any device)."""
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise DataError(f"FeatureStats expected features [B, {self.dim}], got {tuple(feats.shape)}")
        if feats.shape[0] == 0:
            return
        if self.n == 0:
            self._mean = self._mean.to(feats.device)
            self._m2 = self._m2.to(feats.device)
        x = feats.detach().to(device=self._mean.device, dtype=torch.float64)  # [B,D]
        if not torch.isfinite(x).all():
            raise DataError("features contain NaN or Inf (did the generator or extractor diverge?)")
        nb = x.shape[0]
        mean_b = x.mean(0)  # [D]
        xc = x - mean_b
        m2_b = xc.T @ xc  # [D,D]
        n = self.n
        delta = mean_b - self._mean  # [D]
        tot = n + nb
        self._mean = self._mean + delta * (nb / tot)
        self._m2 = self._m2 + m2_b + torch.outer(delta, delta) * (n * nb / tot)
        self.n = tot
        if self.store_features:
            room = nb if self.max_features is None else max(0, self.max_features - self._stored)
            if room > 0:
                keep = feats.detach()[:room].to(device="cpu", dtype=torch.float32)
                self._chunks.append(keep)
                self._stored += keep.shape[0]

    @property
    def mean(self) -> torch.Tensor:
        """float64 [D]."""
        self._need(1)
        return self._mean.clone()

    @property
    def cov(self) -> torch.Tensor:
        """Unbiased (n-1) float64 covariance [D, D], as numpy.cov(rowvar=False)."""
        self._need(2)
        return self._m2 / (self.n - 1)

    @property
    def features(self) -> torch.Tensor:
        """The stored raw features, float32 [N, D]."""
        if not self.store_features:
            raise DataError("these FeatureStats were built without store_features=True; raw features are not available")
        self._need(1)
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks)]
        return self._chunks[0]

    @property
    def has_features(self) -> bool:
        return self.store_features and self._stored > 0

    def _need(self, k: int) -> None:
        if self.n < k:
            raise DataError(f"feature statistics need at least {k} samples, got {self.n}")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors for safetensors: n, mean, m2 and (if stored) features."""
        out = {
            "n": torch.tensor([self.n], dtype=torch.int64),
            "mean": self._mean.cpu().contiguous(),
            "m2": self._m2.cpu().contiguous(),
        }
        if self.has_features:
            out["features"] = self.features.contiguous()
        return out

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "FeatureStats":
        """Inverse of `state_dict`."""
        mean = sd["mean"].to(torch.float64)
        st = cls(mean.shape[0], store_features="features" in sd)
        st.n = int(sd["n"].item())
        st._mean = mean
        st._m2 = sd["m2"].to(torch.float64)
        if "features" in sd:
            st._chunks = [sd["features"].to(torch.float32)]
            st._stored = st._chunks[0].shape[0]
        return st

    def __repr__(self) -> str:
        return f"FeatureStats(dim={self.dim}, n={self.n}, stored={self._stored})"


def _sqrtm_psd(mat: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD square root via eigh; tiny negative eigenvalues from rounding are clamped to 0."""
    evals, evecs = torch.linalg.eigh((mat + mat.T) / 2)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    d = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)), with tr(sqrt(S1 S2)) computed as the sum of the square
    roots of the eigenvalues of the symmetric PSD matrix sqrt(S1) S2 sqrt(S1) (same spectrum as S1 S2), which stays
    stable for singular covariances (fewer samples than dimensions) where scipy's sqrtm can return complex noise.

    Args:
        mu1, mu2: means [D].
        sigma1, sigma2: covariances [D, D].
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    s1, s2 = sigma1.to(torch.float64), sigma2.to(torch.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0], mu1.shape[0]):
        raise DataError(
            f"frechet_distance: shapes do not match: mu {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
            f"sigma {tuple(s1.shape)} vs {tuple(s2.shape)}"
        )
    s2 = s2.to(s1.device)
    mu1 = mu1.to(s1.device)
    mu2 = mu2.to(s1.device)
    root1 = _sqrtm_psd(s1)  # [D,D]
    mid = root1 @ s2 @ root1  # [D,D] symmetric PSD
    tr_covmean = torch.linalg.eigvalsh((mid + mid.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    fd = diff.dot(diff) + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean
    return float(fd.clamp_min(0))


def frechet_distance_stats(a: FeatureStats, b: FeatureStats) -> float:
    """`frechet_distance` between two accumulated `FeatureStats`."""
    if a.dim != b.dim:
        raise DataError(f"cannot compare features of dimension {a.dim} and {b.dim}")
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)
