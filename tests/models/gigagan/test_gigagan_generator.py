"""GigaGAN generator: text path, mapping (w_avg, truncation), multi-scale synthesis, determinism, save/load."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from fastt2i.errors import ConfigError
from fastt2i.noise import seed_noise
from fastt2i.models import load_pretrained
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator, GigaGANGeneratorConfig
from fastt2i.nn.attention import CrossAttention, SelfAttention
from fastt2i.nn.modulated import ModulatedConv2d, StyledConv


def _text(cfg: GigaGANGeneratorConfig, batch: int, length: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, length, cfg.text_dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, 3:] = False
    tokens[~mask] = 0
    return tokens, mask, torch.randn(batch, cfg.pooled_width, generator=g)


@pytest.fixture(scope="module")
def _built_g() -> GigaGANGenerator:
    torch.manual_seed(0)
    return GigaGANGenerator(GIGAGAN_PRESETS.build("tiny"))


@pytest.fixture
def tiny_g(_built_g) -> GigaGANGenerator:
    """A fresh copy per test: tests change w_avg, noise strengths and train/eval mode freely."""
    return copy.deepcopy(_built_g)


def test_pyramid_levels_shapes_and_backward(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.train()
    z = torch.randn(4, cfg.z_dim)
    out = g(z, _text(cfg, 4))
    assert [tuple(o.shape) for o in out] == [(4, 3, 16, 16), (4, 3, 8, 8), (4, 3, 4, 4)]
    sum(o.square().mean() for o in out).backward()
    grads = {n: p.grad for n, p in g.named_parameters()}
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads.values()), \
        [n for n, gr in grads.items() if gr is None]
    # the blocks the config asks for are there
    mods = list(g.synthesis.modules())
    assert any(isinstance(m, SelfAttention) and m.kind == "l2" and m.tied_qk for m in mods)
    assert any(isinstance(m, CrossAttention) for m in mods)
    assert all(m.num_kernels == 2 for m in mods if isinstance(m, ModulatedConv2d) and m.demodulate)


def test_single_output_without_multiscale_and_dot_attention():
    cfg = dataclasses.replace(GIGAGAN_PRESETS.build("tiny"), multiscale=False, attention_type="dot")
    g = GigaGANGenerator(cfg).eval()
    out = g(torch.randn(2, cfg.z_dim), _text(cfg, 2))
    assert [tuple(o.shape) for o in out] == [(2, 3, 16, 16)]
    kinds = {m.kind for m in g.modules() if isinstance(m, (SelfAttention, CrossAttention))}
    assert kinds == {"dot"}


def test_mapping_ws_truncation_and_w_avg(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.eval()
    t_local, t_mask, t_global = g.text_condition(*_text(cfg, 4))
    assert t_local.shape == (4, 5, cfg.text_width) and t_global.shape == (4, cfg.text_width)
    z = torch.randn(4, cfg.z_dim)
    ws = g.mapping(z, t_global)
    assert ws.shape == (4, cfg.num_ws, cfg.w_dim) and cfg.num_ws == (1 + 2 + 2) + 3  # convs + one toRGB per res
    with torch.no_grad():
        g.mapping.w_avg.copy_(torch.randn(cfg.w_dim))
    w0 = g.mapping(z, t_global, truncation_psi=0.0)
    torch.testing.assert_close(w0, g.w_avg.expand(4, cfg.num_ws, -1))
    half = g.mapping(z, t_global, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(half[:, :2], g.w_avg + 0.5 * (ws[:, :2] - g.w_avg))
    torch.testing.assert_close(half[:, 2:], ws[:, 2:])
    before = g.w_avg.clone()
    g.mapping(z, t_global, update_w_avg=True)
    expected = ws[:, 0].mean(0) + cfg.w_avg_beta * (before - ws[:, 0].mean(0))
    torch.testing.assert_close(g.w_avg, expected)


def test_text_conditions_the_image_and_padding_is_ignored(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.eval()
    z = torch.randn(2, cfg.z_dim)
    tokens, mask, pooled = _text(cfg, 2)
    base = g(z, (tokens, mask, pooled))[0]
    padded = tokens.clone()
    padded[0, 3:] = torch.randn(2, cfg.text_dim)
    torch.testing.assert_close(g(z, (padded, mask, pooled))[0], base)
    other = tokens.clone()
    other[0, 0] = torch.randn(cfg.text_dim)
    assert not torch.allclose(g(z, (other, mask, pooled))[0][0], base[0])  # through cross-attention / T
    assert not torch.allclose(g(z, (tokens, mask, pooled.flip(0)))[0], base)


def test_per_layer_styles_reach_their_layers(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.eval()
    t_local, t_mask, t_global = g.text_condition(*_text(cfg, 2))
    ws = g.mapping(torch.randn(2, cfg.z_dim), t_global)
    out = g.synthesis(ws, t_local, t_mask)
    mixed = ws.clone()
    mixed[:, -1] = torch.randn(2, cfg.w_dim)  # the last toRGB's style: only the finest level changes
    out2 = g.synthesis(mixed, t_local, t_mask)
    assert not torch.allclose(out2[0], out[0])
    torch.testing.assert_close(out2[1], out[1])
    torch.testing.assert_close(out2[2], out[2])


def test_same_seed_same_image_at_batch_1_and_8(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.eval()
    strengths = [m.noise_strength for m in g.modules() if isinstance(m, StyledConv)]
    with torch.no_grad():
        for s in strengths:
            s.fill_(0.3)  # make the noise inputs matter (they start at 0)
    seeds = list(range(10, 18))
    z = seed_noise(seeds, (cfg.z_dim,))
    tokens, mask, pooled = _text(cfg, 8)
    with torch.no_grad():
        full = g(z, (tokens, mask, pooled))
        for i in (0, 5):
            one = g(seed_noise([seeds[i]], (cfg.z_dim,)), (tokens[i:i + 1], mask[i:i + 1], pooled[i:i + 1]))
            for a, b in zip(one, full, strict=True):
                torch.testing.assert_close(a[0], b[i], atol=1e-4, rtol=1e-4)  # float reordering only
        torch.testing.assert_close(g(z, (tokens, mask, pooled))[0], full[0])  # eval: constant noise
    g.train()
    with torch.no_grad():
        assert not torch.allclose(g(z, (tokens, mask, pooled))[0], g(z, (tokens, mask, pooled))[0])


def test_save_pretrained_round_trip_is_exact(tiny_g, tmp_path):
    g = tiny_g.eval()
    with torch.no_grad():
        g.mapping.w_avg.copy_(torch.randn(g.config.w_dim))
    g.save_pretrained(tmp_path / "g", text_encoder=g.config.text_encoder)
    g2 = GigaGANGenerator.from_pretrained(tmp_path / "g")
    assert g2.config == g.config
    for (n, a), (_, b) in zip(g.state_dict().items(), g2.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    z = torch.randn(2, g.config.z_dim)
    text = _text(g.config, 2)
    with torch.no_grad():
        for a, b in zip(g(z, text, truncation_psi=0.7), g2(z, text, truncation_psi=0.7), strict=True):
            assert torch.equal(a, b)
    assert isinstance(load_pretrained(tmp_path / "g"), GigaGANGenerator)


def test_bad_inputs_give_config_errors(tiny_g):
    cfg = tiny_g.config
    tokens, mask, pooled = _text(cfg, 2)
    with pytest.raises(ConfigError):
        tiny_g(torch.randn(2, cfg.z_dim + 1), (tokens, mask, pooled))
    with pytest.raises(ConfigError):
        tiny_g(torch.randn(3, cfg.z_dim), (tokens, mask, pooled))
    with pytest.raises(ConfigError):
        tiny_g(torch.randn(2, cfg.z_dim), (tokens[..., :-1], mask, pooled))
    with pytest.raises(ConfigError):
        tiny_g(torch.randn(2, cfg.z_dim), (tokens, mask.long(), pooled))
    with pytest.raises(ConfigError):
        tiny_g(torch.randn(2, cfg.z_dim), tokens)
    with pytest.raises(ConfigError):
        tiny_g.synthesis(torch.randn(2, cfg.num_ws - 1, cfg.w_dim), tokens[..., :cfg.text_width], mask)
    with pytest.raises(ConfigError):
        GigaGANGeneratorConfig(resolution=48)
    with pytest.raises(ConfigError):
        GigaGANGeneratorConfig(resolution=16, channels=(8, 8))
    with pytest.raises(ConfigError):
        GigaGANGeneratorConfig(resolution=16, attention_resolutions=(32,), pyramid_levels=3)
    with pytest.raises(ConfigError):
        GigaGANGeneratorConfig(resolution=16, pyramid_levels=4)
