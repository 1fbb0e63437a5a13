"""GigaGAN upsampler (sec. 3.6): presets (paper = 359.1M on `meta`), the U-Net's shapes, skips and conditioning."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError
from fastt2i.models.gigagan import UPSAMPLER_PRESETS, GigaGANUpsampler, GigaGANUpsamplerConfig
from fastt2i.nn.modulated import upsample_images


def _text(batch: int, dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 4, dtype=torch.bool)
    return torch.randn(batch, 4, dim, generator=g), mask, torch.randn(batch, dim, generator=g)


def _tiny(**kw) -> GigaGANUpsampler:
    torch.manual_seed(0)
    return GigaGANUpsampler(dataclasses.replace(UPSAMPLER_PRESETS.build("tiny"), **kw)).eval()


def test_paper_preset_has_the_papers_parameter_count():
    cfg = UPSAMPLER_PRESETS.build("paper")
    with torch.device("meta"):
        up = GigaGANUpsampler(cfg)
    n = sum(p.numel() for p in up.parameters())
    print(f"gigagan upsampler paper params: {n / 1e6:.1f}M (paper: 359.1M)")
    assert abs(n / 359.1e6 - 1) <= 0.05
    assert (cfg.input_resolution, cfg.output_resolution) == (128, 1024)
    assert (cfg.down_blocks, len(up.up)) == (3, 6)  # "3 downsampling, 6 upsampling residual blocks"


def test_emoji_preset_is_64_to_256():
    cfg = UPSAMPLER_PRESETS.build("emoji")
    up = GigaGANUpsampler(cfg).eval()
    with torch.no_grad():
        out = up(torch.zeros(1, 3, 64, 64), torch.zeros(1, cfg.z_dim), _text(1, cfg.text_dim))
    assert [tuple(x.shape) for x in out] == [(1, 3, 256, 256), (1, 3, 128, 128), (1, 3, 64, 64)]
    assert (len(up.down), len(up.up)) == (3, 5)  # 64 -> 8 px, then 8 -> 256 px


def test_input_skip_carries_the_input_when_the_residuals_are_zero():
    """With every toRGB zeroed, the output is the input upsampled along the skip path (input_skip) or zero (off)."""
    for skip in (True, False):
        up = _tiny(input_skip=skip)
        for t in up.torgb:
            torch.nn.init.zeros_(t.bias)
            t.conv.weight.data.zero_()
        lr = torch.rand(2, 3, 16, 16) * 2 - 1
        out = up(lr, torch.randn(2, up.z_dim), _text(2, 32))
        expected = upsample_images(lr) if skip else torch.zeros(2, 3, 32, 32)
        torch.testing.assert_close(out[0], expected)
        torch.testing.assert_close(out[1], lr if skip else torch.zeros_like(lr))


def test_bicubic_skip_with_zero_rgb_starts_as_bicubic_interpolation():
    up = _tiny(skip_filter="bicubic", zero_rgb_init=True)
    lr = torch.rand(2, 3, 16, 16) * 2 - 1
    out = up(lr, torch.randn(2, up.z_dim), _text(2, 32))
    torch.testing.assert_close(out[0], F.interpolate(lr, size=(32, 32), mode="bicubic", align_corners=False))
    torch.testing.assert_close(out[1], lr)
    loss = out[0].square().mean()
    loss.backward()
    assert all(t.conv.weight.grad.abs().sum() > 0 for t in up.torgb)  # the zero toRGB weights still learn
    with pytest.raises(ConfigError, match="skip_filter"):
        dataclasses.replace(UPSAMPLER_PRESETS.build("tiny"), skip_filter="lanczos")


def test_output_depends_on_input_text_and_z():
    up = _tiny()
    for p in up.parameters():  # wake the zero-initialised noise strengths and biases
        p.data.add_(torch.randn_like(p) * 0.05)
    lr, z, text = torch.rand(2, 3, 16, 16), torch.randn(2, up.z_dim), _text(2, 32)
    base = up(lr, z, text)[0]
    assert not torch.allclose(base, up(torch.rand(2, 3, 16, 16), z, text)[0])
    assert not torch.allclose(base, up(lr, torch.randn(2, up.z_dim), text)[0])
    assert not torch.allclose(base, up(lr, z, _text(2, 32, seed=1))[0])
    torch.testing.assert_close(base, up(lr, z, text)[0])  # eval mode: const noise, deterministic


def test_wrong_inputs_give_clear_errors():
    up = _tiny()
    with pytest.raises(ConfigError, match=r"low-resolution input must be \[B,3,16,16\]"):
        up(torch.rand(2, 3, 32, 32), torch.randn(2, up.z_dim), _text(2, 32))
    with pytest.raises(ConfigError, match="batch sizes differ"):
        up(torch.rand(2, 3, 16, 16), torch.randn(3, up.z_dim), _text(2, 32))


@pytest.mark.parametrize("kw, match", [
    (dict(output_resolution=48), "power of two"),
    (dict(output_resolution=16), "at least twice"),
    (dict(down_blocks=3), "bottleneck >= 4 px"),
    (dict(channels=(32, 16)), "one per decoder resolution"),
    (dict(attention_resolutions=(64,)), "not among the decoder resolutions"),
    (dict(pyramid_levels=3), "pyramid_levels must be in 1..2"),
])
def test_bad_configs_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        dataclasses.replace(UPSAMPLER_PRESETS.build("tiny"), **kw)


def test_config_round_trips_through_json(tmp_path):
    up = _tiny()
    up.save_pretrained(tmp_path / "up", text_encoder="t5-tiny-random")
    back = GigaGANUpsampler.from_pretrained(tmp_path / "up")
    assert back.config == up.config and isinstance(back.config, GigaGANUpsamplerConfig)
