"""Mode-seeking loss (MSGAN eq. 3): value, gradient direction, pairing of rows, bad input."""

from __future__ import annotations

import pytest
import torch

from fastt2i.errors import ConfigError
from fastt2i.losses.diversity import (check_mode_seeking, mode_seeking_loss, pair_conditions,
                                     paired_mode_seeking_loss, paired_rows)


def test_value_is_inverse_ratio_of_image_to_latent_distance():
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    za, zb = torch.zeros(2, 8), torch.ones(2, 8)
    # mean|a - b| = 0.5, mean|za - zb| = 1: 1 / 0.5 = 2 per pair
    assert mode_seeking_loss(a, b, za, zb, eps=0.0).item() == pytest.approx(2.0)
    # the same images from twice as distant latents: the ratio halves, the loss doubles
    assert mode_seeking_loss(a, b, za, 2 * zb, eps=0.0).item() == pytest.approx(4.0)
    assert torch.isfinite(mode_seeking_loss(a, a, za, zb))  # equal images: finite thanks to eps


def test_gradient_pushes_the_two_images_apart():
    a = torch.zeros(1, 3, 4, 4, requires_grad=True)
    b = torch.full((1, 3, 4, 4), 0.1)
    mode_seeking_loss(a, b, torch.zeros(1, 4), torch.ones(1, 4)).backward()
    # a < b everywhere: lowering the loss means moving a further below b
    assert (a.grad > 0).all()


def test_paired_rows_repeats_the_first_half_and_keeps_an_odd_row():
    assert paired_rows(6).tolist() == [0, 1, 2, 0, 1, 2]
    assert paired_rows(5).tolist() == [0, 1, 0, 1, 4]
    with pytest.raises(ConfigError, match=">= 2 rows"):
        paired_rows(1)


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="pair shapes differ"):
        mode_seeking_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5), torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="same number"):
        mode_seeking_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ConfigError, match="finite number >= 0"):
        check_mode_seeking(-1.0, 8)
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        check_mode_seeking(1.0, 1)
    with pytest.raises(ConfigError, match="full training only"):
        check_mode_seeking(1.0, 8, allowed=False)
    check_mode_seeking(0.0, 1, allowed=False)  # off: nothing to check


def test_pooling_ignores_texture_and_keeps_layout():
    torch.manual_seed(0)
    texture = torch.randn(2, 3, 64, 64).sign() * 0.5  # +-0.5 pixel noise: no 16 px structure
    za, zb = torch.zeros(2, 8), torch.ones(2, 8)
    full = mode_seeking_loss(torch.zeros_like(texture), texture, za, zb)
    pooled = mode_seeking_loss(torch.zeros_like(texture), texture, za, zb, pool=16)
    assert full.item() == pytest.approx(2.0, rel=1e-3) and pooled.item() > 5 * full.item()
    shifted = torch.full_like(texture, 0.5)  # a colour change survives pooling unchanged
    assert mode_seeking_loss(torch.zeros_like(texture), shifted, za, zb, pool=16).item() == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(ConfigError, match="pool must be >= 0"):
        mode_seeking_loss(texture, texture, za, zb, pool=-1)


def test_embedding_space_uses_cosine_distance():
    za, zb = torch.zeros(2, 8), torch.ones(2, 8)
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    orthogonal = torch.tensor([[0.0, 3.0], [1.0, 0.0]])
    assert mode_seeking_loss(e, orthogonal, za, zb, eps=0.0).item() == pytest.approx(1.0)  # 1 - cos = 1
    assert mode_seeking_loss(e, -e, za, zb, eps=0.0).item() == pytest.approx(0.5)  # opposite: 1 - cos = 2
    with pytest.raises(ConfigError, match="mode_seeking_space must be one of"):
        check_mode_seeking(1.0, 8, space="lpips")


def test_pair_conditions_and_the_paired_loss_use_the_same_layout():
    text = (torch.arange(4.0)[:, None], torch.ones(4, 1, dtype=torch.bool))
    captions, (tokens, mask) = pair_conditions(["a", "b", "c", "d"], text)
    assert captions == ["a", "b", "a", "b"] and tokens.flatten().tolist() == [0, 1, 0, 1] and mask.all()
    x, z = torch.randn(4, 3, 8, 8), torch.randn(4, 5)
    assert torch.equal(paired_mode_seeking_loss(x, z), mode_seeking_loss(x[:2], x[2:], z[:2], z[2:]))
