"""LPIPS-style perceptual loss: zero for identical images, positive otherwise, emoji-clip feature maps, loader rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.losses.perceptual import EmojiCLIPFeatureMaps, PerceptualLoss, load_perceptual_network, unit_normalize
from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig, EmojiNet, EmojiNetConfig


def tiny_clip() -> EmojiCLIP:
    torch.manual_seed(0)
    return EmojiCLIP(EmojiCLIPConfig(resolution=16, channels=(8, 16, 16), blocks=1, embed_dim=384))


def images(b: int = 2, r: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, r, r, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_feature_maps_of_each_stage():
    fm = EmojiCLIPFeatureMaps(tiny_clip())
    maps = fm.feature_maps(images())
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 8, 8), (8, 8, 8), (16, 4, 4), (16, 2, 2)]
    assert not any(p.requires_grad for p in fm.parameters())
    resized = EmojiCLIPFeatureMaps(tiny_clip(), resolution=32).feature_maps(images())
    assert resized[0].shape[-1] == 16


def test_zero_for_identical_positive_otherwise_and_gradient():
    loss = PerceptualLoss(EmojiCLIPFeatureMaps(tiny_clip()))
    x = images(3)
    assert float(loss(x, x.clone())) == 0.0
    y = images(3, seed=1).requires_grad_(True)
    per = loss(x, y, reduction="none")
    assert per.shape == (3,) and bool((per > 0).all())
    loss(x, y).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    # closer images are closer perceptually
    assert float(loss(x, x + 0.01 * (y.detach() - x))) < float(loss(x, y.detach()))


def test_matches_formula_and_layer_weights():
    class Two(nn.Module):
        def feature_maps(self, images):
            return [images, images[:, :2, ::2, ::2] * 3]

    x, y = images(2), images(2, seed=4)
    lpips = PerceptualLoss(Two(), layer_weights=(1.0, 0.5))
    expect = ((unit_normalize(x) - unit_normalize(y)) ** 2).sum(1).mean((1, 2))
    a, b = x[:, :2, ::2, ::2], y[:, :2, ::2, ::2]
    expect = expect + 0.5 * ((unit_normalize(a) - unit_normalize(b)) ** 2).sum(1).mean((1, 2))
    torch.testing.assert_close(lpips(x, y, reduction="none"), expect)
    with pytest.raises(ConfigError):
        PerceptualLoss(Two(), layer_weights=(1.0,))(x, y)
    with pytest.raises(ConfigError):
        PerceptualLoss(nn.Linear(2, 2))


def test_loader_accepts_emoji_clip_refuses_emoji_net(tmp_path):
    clip_dir = tiny_clip().save_pretrained(tmp_path / "clip")
    net = load_perceptual_network(str(clip_dir))
    assert isinstance(net, EmojiCLIPFeatureMaps)
    assert len(net.feature_maps(images())) == 4
    with pytest.raises(ConfigError, match="emoji-net"):
        load_perceptual_network("emoji-net")
    cfg = EmojiNetConfig(resolution=16, channels=(8, 16), blocks=1, subcategories=("a", "b"), styles=("x",))
    net_dir = EmojiNet(cfg).save_pretrained(tmp_path / "net")
    with pytest.raises(ConfigError, match="emoji-net"):
        load_perceptual_network(str(net_dir))
    with pytest.raises(ConfigError, match="neither"):
        load_perceptual_network(str(tmp_path / "missing"))
