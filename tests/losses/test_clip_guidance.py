"""StyleGAN-T losses: hinge D/G losses against hand values, the spherical distance against the arccos formula, and
CLIP guidance (gradients to the images, fp32 under autocast, resizing, refusal of emoji-net and no-grad encoders)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.losses.clip_guidance import clip_guidance_loss, spherical_distance
from fastt2i.losses.gan import d_hinge, g_hinge
from fastt2i.models.emoji import EmojiNet, EmojiNetConfig
from fastt2i.models.image_text import load_clip_model


def test_hinge_losses_match_hand_values():
    real = torch.tensor([[2.0, 0.5], [-1.0, 1.0]])  # [B,T]: relu(1 - r) = [[0, .5], [2, 0]] -> mean .625
    fake = torch.tensor([[-2.0, 0.0], [0.5, -0.5]])  # relu(1 + f) = [[0, 1], [1.5, .5]] -> mean .75
    assert d_hinge(real, fake).item() == pytest.approx(0.625 + 0.75)
    assert g_hinge(fake).item() == pytest.approx(0.5)  # -mean(f) = -(-2 + 0 + .5 - .5) / 4
    assert d_hinge(torch.full((3,), 5.0), torch.full((3,), -5.0)).item() == 0.0  # both margins met
    assert d_hinge(real.half(), fake.half()).dtype == torch.float32


def test_spherical_distance_is_the_squared_angle():
    e = torch.eye(3)
    assert spherical_distance(e[0], e[1]).item() == pytest.approx((math.pi / 2) ** 2)  # orthogonal: (pi/2)^2
    assert spherical_distance(e[0], -e[0]).item() == pytest.approx(math.pi ** 2)
    assert spherical_distance(e[0], 3 * e[0]).item() == pytest.approx(0.0, abs=1e-12)  # norms do not matter
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    ref = (F.normalize(x, dim=-1) * F.normalize(y, dim=-1)).sum(-1).arccos().square()  # official formula
    torch.testing.assert_close(spherical_distance(x, y), ref)
    # finite gradient at distance 0 (arccos' is infinite there)
    z = torch.randn(4, 5, generator=g).requires_grad_(True)
    spherical_distance(z, z.detach()).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_clip_guidance_pulls_images_towards_their_captions():
    clip = load_clip_model("emoji-clip")
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(3, 3, 32, 32, generator=g) * 2 - 1).requires_grad_(True)  # resized to 64 by the loss
    text = torch.randn(3, 384, generator=g)
    loss = clip_guidance_loss(clip, images, text)
    with torch.no_grad():
        feats = clip.encode_image(F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False))
    assert loss.dtype == torch.float32 and loss.ndim == 0
    torch.testing.assert_close(loss, spherical_distance(feats, text).mean())
    loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert clip_guidance_loss(clip, images.detach(), clip.encode_image(images.detach())).item() == pytest.approx(
        0.0, abs=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert clip_guidance_loss(clip, images, text).dtype == torch.float32
    big = torch.rand(3, 3, 96, 96, generator=g) * 2 - 1  # official: a random 64 px crop of larger images
    a = clip_guidance_loss(clip, big, text, crop=64, generator=torch.Generator().manual_seed(1))
    b = clip_guidance_loss(clip, big, text, crop=64, generator=torch.Generator().manual_seed(1))
    assert a.item() == b.item()
    with pytest.raises(ValueError, match="text_emb"):
        clip_guidance_loss(clip, images, text[:2])


def test_clip_guidance_refuses_emoji_net_and_encoders_without_gradient():
    net = EmojiNet(EmojiNetConfig(resolution=16, channels=(8, 16), blocks=1, subcategories=("a",), styles=("x",)))
    net.encode_image = net.features  # even disguised as an image-text model
    with pytest.raises(ConfigError, match="emoji-net") as e:
        clip_guidance_loss(net, torch.zeros(1, 3, 16, 16), torch.randn(1, 16))
    assert "\n" not in str(e.value)

    class NoGrad(nn.Module):  # like a metric feature extractor: encode_image under no_grad
        @torch.no_grad()
        def encode_image(self, x):
            return x.flatten(1)[:, :4] * 2

    with pytest.raises(ConfigError, match="no gradient"):
        clip_guidance_loss(NoGrad(), torch.zeros(1, 3, 4, 4, requires_grad=True), torch.randn(1, 4))
    with pytest.raises(ConfigError, match="encode_image"):
        clip_guidance_loss(nn.Identity(), torch.zeros(1, 3, 4, 4), torch.randn(1, 4))
