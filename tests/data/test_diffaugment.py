"""DiffAugment: the three ops against their definitions, per-sample seeded parameters, gradients, policy errors."""

from __future__ import annotations

import pytest
import torch

from fastt2i.data.augment import (
    DEFAULT_POLICY,
    POLICIES,
    diff_augment,
    parse_policy,
    rand_color,
    rand_cutout,
    rand_translation,
)
from fastt2i.errors import ConfigError


def images(b: int = 8, res: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, res, res, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_default_policy_changes_images_reproducibly_per_seed():
    x = images()
    out = diff_augment(x, generator=gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype and not torch.allclose(out, x)
    assert torch.equal(diff_augment(x, generator=gen(0)), out)
    assert not torch.equal(diff_augment(x, generator=gen(1)), out)
    assert DEFAULT_POLICY == "color,translation,cutout"
    assert torch.equal(diff_augment(x, ""), x)  # empty policy: identity


def test_color_matches_brightness_saturation_contrast_with_per_sample_factors():
    x = images(4)
    g = gen(5)
    u = torch.rand(4, 1, 1, 1, generator=g), torch.rand(4, 1, 1, 1, generator=g), torch.rand(4, 1, 1, 1, generator=g)
    ref = x + (u[0] - 0.5)
    m = ref.mean(dim=1, keepdim=True)
    ref = (ref - m) * (u[1] * 2) + m
    m = ref.mean(dim=(1, 2, 3), keepdim=True)
    ref = (ref - m) * (u[2] + 0.5) + m
    torch.testing.assert_close(rand_color(x, gen(5)), ref)
    flat = torch.zeros(8, 3, 4, 4)  # a constant image: only the brightness shift remains, different per sample
    shifts = rand_color(flat, gen(0)).mean(dim=(1, 2, 3))
    assert len(set(shifts.tolist())) == 8 and shifts.abs().max() <= 0.5


def test_translation_shifts_each_sample_by_its_own_offset_with_zero_padding():
    x = images(8, 16)
    out = rand_translation(x, generator=gen(3))
    shifts = set()
    for i in range(8):  # find the (dy, dx) in [-2, 2]^2 (1/8 of 16) that explains sample i
        found = None
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.zeros_like(x[i])
                src = x[i][:, max(dy, 0):16 + min(dy, 0), max(dx, 0):16 + min(dx, 0)]
                ref[:, max(-dy, 0):16 + min(-dy, 0), max(-dx, 0):16 + min(-dx, 0)] = src  # out[p] = x[p + d]
                if torch.equal(out[i], ref):
                    found = (dy, dx)
        assert found is not None
        shifts.add(found)
    assert len(shifts) > 1


def test_cutout_zeroes_one_half_size_square_per_sample():
    x = images(8, 16).abs() + 0.1  # no zeros of its own
    out = rand_cutout(x, generator=gen(2))
    holes = out == 0
    assert torch.equal(out[~holes], x[~holes])
    sizes = holes[:, 0].flatten(1).sum(dim=1)
    assert (sizes <= 64).all() and (sizes > 0).all()  # an 8x8 square (1/2 of 16), clipped at the border
    for i in range(8):
        rows, cols = holes[i, 0].any(dim=1).nonzero(), holes[i, 0].any(dim=0).nonzero()
        assert holes[i, 0, rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one rectangle
        assert holes[i].all(dim=0).eq(holes[i, 0]).all()  # the same pixels in every channel
    assert len({tuple(h[0].nonzero()[0].tolist()) for h in holes}) > 1
    assert (rand_cutout(x, ratio=0.2, generator=gen(2)) == 0)[:, 0].flatten(1).sum(dim=1).max() <= 9  # 3x3


def test_gradient_flows_through_every_op():
    x = images().requires_grad_(True)
    diff_augment(x, generator=gen(0)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    for op in POLICIES:
        y = images().requires_grad_(True)
        diff_augment(y, op, generator=gen(0)).sum().backward()
        assert y.grad.abs().sum() > 0, op


def test_bad_policy_is_one_clear_line():
    with pytest.raises(ConfigError, match="valid names: color, translation, cutout") as e:
        diff_augment(images(), "color,flip")
    assert "'flip'" in str(e.value) and "\n" not in str(e.value)
    assert parse_policy(" color , cutout ") == ("color", "cutout")
    with pytest.raises(ConfigError):
        parse_policy(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        diff_augment(torch.zeros(3, 8, 8))
