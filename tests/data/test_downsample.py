"""downsample_antialiased: the one function that makes an upsampler's low-resolution inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fastt2i.data.transforms import downsample_antialiased
from fastt2i.errors import ConfigError, DataError


def smooth_images(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    """[n,3,size,size] in [-0.6, 0.6]: bilinear-upsampled noise (kept inside [-1,1] so the clamp never acts)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 8, size // 8, generator=g) * 1.2 - 0.6
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def test_matches_pil_bicubic_resize():
    """The same filter as PIL's Image.resize(BICUBIC) (antialiased Keys cubic), channel by channel."""
    x = smooth_images(1, 64) + 0.3 * (torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) - 0.5)
    y = downsample_antialiased(x, 16)
    for c in range(3):
        ref = np.asarray(Image.fromarray(x[0, c].numpy(), mode="F").resize((16, 16), Image.BICUBIC))
        np.testing.assert_allclose(y[0, c].numpy(), ref.clip(-1, 1), atol=1e-4)


def test_antialiasing_removes_a_checkerboard():
    """A 1-pixel checkerboard averages to grey at 1/4 size; point sampling (no antialias) would keep full contrast."""
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    board = (((yy + xx) % 2) * 2 - 1).float().expand(1, 3, 64, 64).contiguous()
    y = downsample_antialiased(board, 16)
    aliased = F.interpolate(board, size=(16, 16), mode="nearest")
    assert float(aliased.abs().min()) == 1.0
    assert float(y.abs().max()) < 0.05


def test_shapes_dtype_range_and_constants():
    x = smooth_images(3, 64).double()
    y = downsample_antialiased(x, (16, 32))
    assert y.shape == (3, 3, 16, 32) and y.dtype == torch.float64
    assert downsample_antialiased(x, 64) is x  # already that size
    hard = torch.where(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.5, 1.0, -1.0)
    z = downsample_antialiased(hard, 16)
    assert float(z.max()) <= 1.0 and float(z.min()) >= -1.0
    const = torch.full((1, 3, 64, 64), 0.25)
    torch.testing.assert_close(downsample_antialiased(const, 16), torch.full((1, 3, 16, 16), 0.25))


def test_clear_errors():
    with pytest.raises(ConfigError, match="no larger than the input"):
        downsample_antialiased(torch.zeros(1, 3, 16, 16), 32)
    with pytest.raises(DataError, match=r"float images \[B,C,H,W\]"):
        downsample_antialiased(torch.zeros(3, 16, 16), 8)
    with pytest.raises(DataError, match="uint8"):
        downsample_antialiased(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), 8)
