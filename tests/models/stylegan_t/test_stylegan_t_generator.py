"""StyleGAN-T generator: second-order styles, w = [MLP(z), t], truncation, editing, determinism, save/load, presets."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from fastt2i.config import from_dict, to_dict
from fastt2i.editing.common import generator_of
from fastt2i.editing.interpolation import prompt_interpolation
from fastt2i.editing.mixing import style_mixing_grid
from fastt2i.errors import ConfigError
from fastt2i.models.gigagan.truncation import conditional_w_mean, truncate, truncated_ws
from fastt2i.models.stylegan_t import (
    STYLEGAN_T_PRESETS,
    FourierInput,
    SecondOrderModulatedConv2d,
    StyleGANTGenerator,
    StyleGANTGeneratorConfig,
    SynthesisLayer,
)
from fastt2i.nn.modulated import ModulatedConv2d
from fastt2i.noise import seed_noise
from fastt2i.serialization import load_pretrained

# Generator parameters of the official configs (autonomousvision/stylegan-t): counted from the parameter shapes of
# networks/generator.py (Generator -> MappingNetwork MLP [64, 64, 64]; SynthesisNetwork from 8 px (base_mult=3):
# SynthesisInput (C*C weight + affine w_dim->4), per block conv0 (up) + num_res_blocks x (SynthesisLayer,
# residual SynthesisLayer with GroupNorm + gamma), each with a StyleSplit affine w_dim->3*C_in, a 3x3 weight, bias
# and noise strength, and a ToRGBLayer per block (skip architecture)) with train.py's `--cfg` synthesis kwargs
# (lite: channel_base 32768, channel_max 512, num_res_blocks 2; full: 65536, 2048, 3), z_dim 64 and CLIP ViT-L/14
# text features (768) so w_dim = 832. Excluded: the CLIP text encoder held in G.mapping.clip (123,650,305
# parameters, frozen unless --train-mode text_encoder), which fastt2i keeps outside the generator. full-512 +
# CLIP = 1.144B; the paper reports ~1B for the generator.
OFFICIAL_G_PARAMS = {
    "lite": 74_556_835,  # 64 px
    "lite-512": 87_044_859,
    "full": 975_556_011,  # 64 px
    "full-512": 1_020_497_609,
}


def _text(cfg: StyleGANTGeneratorConfig, batch: int, length: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, length, cfg.text_dim, generator=g)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, 3:] = False
    tokens[~mask] = 0
    return tokens, mask, torch.randn(batch, cfg.pooled_width, generator=g)


def _perturb(g: StyleGANTGenerator, scale: float = 0.05, seed: int = 1) -> StyleGANTGenerator:
    """Small seeded noise on every parameter, so zero-initialised ones (noise strengths, the Fourier input's affine
    weight, layer scales near 0) take part in the checks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
        for m in g.modules():
            if isinstance(m, SynthesisLayer) and m.residual:
                m.gamma.fill_(0.3)
    return g


@pytest.fixture(scope="module")
def _built_g() -> StyleGANTGenerator:
    torch.manual_seed(0)
    return StyleGANTGenerator(STYLEGAN_T_PRESETS.build("tiny"))


@pytest.fixture
def tiny_g(_built_g) -> StyleGANTGenerator:
    """A fresh copy per test: tests change w_avg, noise strengths and train/eval mode freely."""
    return copy.deepcopy(_built_g)


def _affine(lin, w: torch.Tensor) -> torch.Tensor:
    """An EqualLinear by hand: w @ (weight * lr_mul / sqrt(in))^T + bias * lr_mul."""
    return w @ (lin.weight * lin.lr_mul / math.sqrt(lin.in_features)).t() + lin.bias * lin.lr_mul


# ------------------------------------------------------------------------------------------------------- shapes
def test_shapes_backward_and_layout(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.train()
    assert cfg.resolutions == (8, 16) and cfg.w_dim == cfg.z_dim + 32
    # block 8: Fourier input + 2 res-block layers; block 16: conv0 + 2; + the last toRGB's style
    assert cfg.num_ws == 3 + 3 + 1 == g.num_ws
    out = g(torch.randn(4, cfg.z_dim), _text(cfg, 4))
    assert isinstance(out, list) and len(out) == 1 and out[0].shape == (4, 3, 16, 16)
    assert torch.isfinite(out[0]).all() and out[0].std() > 0
    out[0].square().mean().backward()
    grads = {n: p.grad for n, p in g.named_parameters()}
    missing = [n for n, gr in grads.items() if gr is None]
    assert not missing, missing  # (the Fourier input's zero-initialised affine weight included)
    assert all(torch.isfinite(gr).all() for gr in grads.values())
    blocks = g.synthesis.blocks
    assert isinstance(blocks[0].input, FourierInput) and blocks[0].conv0 is None and blocks[1].conv0.conv.up
    layers = [m for m in g.synthesis.modules() if isinstance(m, SynthesisLayer)]
    assert [m.residual for m in layers] == [False, True, False, False, True]
    assert all(m.gamma.abs().max() <= 1e-5 for m in layers if m.residual)  # layer scale init


def test_tiny_forward_backward_reaches_every_parameter(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.train()
    g.zero_grad(set_to_none=True)
    z, text = torch.randn(4, cfg.z_dim), _text(cfg, 4)
    g(z, text, noise_mode="random")[0].square().mean().backward()
    # (its speed is measured in benchmarks, not asserted: the preset docstrings give the cost)
    missing = [n for n, p in g.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert not missing, missing


def test_const_input_zero_res_blocks_and_no_clamp():
    cfg = dataclasses.replace(STYLEGAN_T_PRESETS.build("tiny"), input_type="const", start_resolution=4,
                              channels=(32, 32, 16), res_blocks=(1, 0, 1), conv_clamp=None, use_noise=False)
    assert cfg.resolutions == (4, 8, 16) and cfg.num_ws == 2 + 1 + 3 + 1
    g = StyleGANTGenerator(cfg)
    assert g.synthesis.blocks[0].const.shape == (32, 4, 4)
    out = g(torch.randn(2, cfg.z_dim), _text(cfg, 2))
    assert out[0].shape == (2, 3, 16, 16)
    out[0].mean().backward()
    assert all(p.grad is not None for p in g.parameters())


# ------------------------------------------------------------------------------------- second-order styles
def test_every_modulated_layer_has_a_second_order_style(tiny_g):
    g = _perturb(tiny_g)
    convs = [m for m in g.modules() if isinstance(m, SecondOrderModulatedConv2d)]
    assert len(convs) == 5 + 2  # the 5 synthesis convs and the 2 toRGBs
    w = torch.randn(3, g.w_dim)
    for conv in convs:
        a1, a2, a3 = conv.affines
        assert all(a.bias is not None and a.in_features == g.w_dim for a in (a1, a2, a3))
        s, p = conv.styles(w)
        torch.testing.assert_close(s, _affine(a1, w) * _affine(a2, w) + _affine(a3, w))  # s = A1 A2 + A3
        torch.testing.assert_close(p, torch.ones(3, 1))
    # official init: all three affine biases start at 1 (so s starts near 2)
    fresh = StyleGANTGenerator(STYLEGAN_T_PRESETS.build("tiny"))
    for conv in (m for m in fresh.modules() if isinstance(m, SecondOrderModulatedConv2d)):
        for a in conv.affines:
            torch.testing.assert_close(a.bias * a.lr_mul, torch.ones_like(a.bias))


def test_modulated_conv_applies_the_second_order_style():
    torch.manual_seed(0)
    conv = SecondOrderModulatedConv2d(6, 5, 3, 10)
    x, w = torch.randn(2, 6, 7, 7), torch.randn(2, 10)
    s = _affine(conv.affine, w) * _affine(conv.affine2, w) + _affine(conv.affine3, w)  # [2,6]
    weight = conv.weight[0] / math.sqrt(6 * 9)  # [5,6,3,3]
    expected = []
    for i in range(2):  # StyleGAN2 eq. 1-3 per sample
        k = weight * s[i][None, :, None, None]
        k = k * (k.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).rsqrt()
        expected.append(F.conv2d(x[i:i + 1], k, padding=1))
    torch.testing.assert_close(conv(x, w), torch.cat(expected), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(conv(x, w, fused=True), torch.cat(expected), atol=1e-5, rtol=1e-4)


def test_upsampling_conv_is_a_transposed_conv_and_the_1331_filter():
    torch.manual_seed(0)
    conv = SecondOrderModulatedConv2d(6, 5, 3, 10, up=True)
    x, w = torch.randn(2, 6, 8, 8), torch.randn(2, 10)
    y, d = conv.modulated(x, w)
    assert y.shape == (2, 5, 16, 16)
    s, _ = conv.styles(w)
    u = torch.zeros(2, 6, 16, 16)
    u[..., ::2, ::2] = x * s[:, :, None, None]  # zero-inserted modulated input
    t = F.conv2d(F.pad(u, (2, 1, 2, 1)), conv.weight[0] / math.sqrt(6 * 9))  # [2,5,17,17], correlation
    f = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4
    blur = (f[:, None] * f[None, :]).expand(5, 1, 4, 4)
    expected = F.conv2d(F.pad(t, (1, 1, 1, 1)), blur, groups=5)  # [2,5,16,16], zero padding (official upfirdn2d)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-4)
    k = (conv.weight[0] / math.sqrt(54))[None] * s[:, None, :, None, None]  # [2,5,6,3,3]
    torch.testing.assert_close(d, k.square().sum(dim=(2, 3, 4)).add(1e-8).rsqrt())
    # in the interior it is the bilinear upsampling + conv of `ModulatedConv2d` (only the border differs)
    y_bilinear, _ = ModulatedConv2d.modulated(conv, x, w, fused=False)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], y_bilinear[..., 2:-2, 2:-2], atol=1e-5, rtol=1e-4)


def test_residual_layer_order_and_layer_scale():
    cfg = STYLEGAN_T_PRESETS.build("tiny")
    torch.manual_seed(0)
    layer = SynthesisLayer(cfg, 32, 32, 8, residual=True, gain=math.sqrt(0.5))
    x = torch.randn(2, 32, 8, 8).contiguous(memory_format=torch.channels_last) * 3 + 1
    w = torch.randn(2, cfg.w_dim)
    h = F.group_norm(x, cfg.group_norm_groups(32), layer.norm.weight, layer.norm.bias)
    with torch.no_grad():
        layer.gamma.zero_()
    torch.testing.assert_close(layer(x, w, "none"), h * math.sqrt(2))  # (0 * conv(GN x) + GN x) * sqrt 2
    with torch.no_grad():
        layer.gamma.fill_(0.5)
        layer.noise_strength.fill_(0.2)
    plain = copy.deepcopy(layer)
    plain.residual = False  # the same conv branch without the skip and the norm
    branch = plain(h, w, "const")
    torch.testing.assert_close(layer(x, w, "const"), (0.5 * branch + h) * math.sqrt(2))


# ------------------------------------------------------------------------------------------ mapping
def test_mapping_is_mlp_z_concat_text_and_official_truncation(tiny_g):
    cfg = tiny_g.config
    g = _perturb(tiny_g).eval()
    t_local, t_mask, t_global = g.text_condition(*_text(cfg, 4))
    z = torch.randn(4, cfg.z_dim)
    ws = g.mapping(z, t_global)
    assert ws.shape == (4, cfg.num_ws, cfg.w_dim)
    x = z * (z.square().mean(-1, keepdim=True) + 1e-8).rsqrt()
    l0, l1 = g.mapping.layers
    assert l0.lr_mul == l1.lr_mul == 0.01 and len(g.mapping.layers) == cfg.mapping_layers
    x = F.leaky_relu(_affine(l0, x), 0.2) * math.sqrt(2)
    x = _affine(l1, x)  # the last layer is linear
    torch.testing.assert_close(ws, torch.cat([x, t_global], 1)[:, None].expand(-1, cfg.num_ws, -1))
    # official truncation: only the z part moves towards its average; the text part is untouched
    with torch.no_grad():
        g.mapping.w_avg.copy_(torch.randn(cfg.w_dim))
    zd = cfg.z_dim
    half = g.mapping(z, t_global, truncation_psi=0.5)
    torch.testing.assert_close(half[..., :zd], g.w_avg[:zd] + 0.5 * (ws[..., :zd] - g.w_avg[:zd]))
    torch.testing.assert_close(half[..., zd:], ws[..., zd:])
    assert not torch.allclose(half[..., :zd], ws[..., :zd])
    zero = g.mapping(z, t_global, truncation_psi=0.0)
    torch.testing.assert_close(zero[..., :zd], g.w_avg[:zd].expand(4, cfg.num_ws, -1))
    torch.testing.assert_close(zero[..., zd:], ws[..., zd:])
    cut = g.mapping(z, t_global, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], half[:, :2])
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
    # w_avg: EMA of whole w's (its z part is the official x_avg)
    before = g.w_avg.clone()
    g.mapping(z, t_global, update_w_avg=True)
    w_mean = ws[:, 0].mean(0)
    torch.testing.assert_close(g.w_avg, w_mean + cfg.w_avg_beta * (before - w_mean))
    assert g.w_avg.shape == (cfg.w_dim,)


def test_text_condition_pools_normalises_and_passes_tokens(tiny_g):
    cfg = tiny_g.config
    g = _perturb(tiny_g).eval()
    tokens, mask, pooled = _text(cfg, 2)
    t_local, t_mask, t_global = g.text_condition(tokens, mask, pooled)
    assert t_local is tokens and t_mask is mask
    torch.testing.assert_close(t_global, pooled / pooled.norm(dim=-1, keepdim=True))
    z = torch.randn(2, cfg.z_dim)
    base = g(z, (tokens, mask, pooled))[0]
    torch.testing.assert_close(g(z, (torch.randn_like(tokens), mask, pooled))[0], base)  # only pooled conditions
    assert not torch.allclose(g(z, (tokens, mask, pooled.flip(0)))[0], base)
    raw = StyleGANTGenerator(dataclasses.replace(cfg, normalize_text=False))
    assert torch.equal(raw.text_condition(tokens, mask, pooled)[2], pooled)
    scaled = StyleGANTGenerator(dataclasses.replace(cfg, text_scale=cfg.pooled_width ** 0.5))
    t = scaled.text_condition(tokens, mask, pooled)[2]
    torch.testing.assert_close(t, t_global * cfg.pooled_width ** 0.5)
    torch.testing.assert_close(t.square().mean(dim=-1), torch.ones(2))  # unit second moment, like normalised z
    with pytest.raises(ConfigError, match="text_scale"):
        dataclasses.replace(cfg, text_scale=0.0)


def test_every_style_index_reaches_the_image(tiny_g):
    cfg = tiny_g.config
    g = _perturb(tiny_g).eval()
    t_local, t_mask, t_global = g.text_condition(*_text(cfg, 2))
    ws = g.mapping(torch.randn(2, cfg.z_dim), t_global)
    base = g.synthesis(ws, t_local, t_mask)[0]
    for k in range(cfg.num_ws):
        other = ws.clone()
        other[:, k] += torch.randn(2, cfg.w_dim)
        assert not torch.allclose(g.synthesis(other, t_local, t_mask)[0], base), k


# ------------------------------------------------------------------------------------------ editing
def test_gigagan_text_conditioned_truncation_runs(tiny_g):
    cfg = tiny_g.config
    g = _perturb(tiny_g).eval()
    with torch.no_grad():
        g.mapping.w_avg.copy_(torch.randn(cfg.w_dim))
    t_local, t_mask, t_global = g.text_condition(*_text(cfg, 3))
    w_c = conditional_w_mean(g, t_global, n=32)
    assert w_c.shape == (3, cfg.w_dim)
    torch.testing.assert_close(w_c[:, cfg.z_dim:], t_global)  # the text part of the conditional mean is t itself
    z = torch.randn(3, cfg.z_dim)
    torch.testing.assert_close(truncated_ws(g, z, t_global, psi=1.0), g.mapping(z, t_global))
    ws = truncated_ws(g, z, t_global, psi=0.6, n=32)
    assert ws.shape == (3, cfg.num_ws, cfg.w_dim)
    torch.testing.assert_close(ws, truncate(g.mapping(z, t_global), w_c, g.w_avg, 0.6))
    img = g.synthesis(ws, t_local, t_mask, noise_mode="const")[0]
    assert img.shape == (3, 3, 16, 16) and torch.isfinite(img).all()


def test_style_mixing_and_prompt_interpolation_run(tiny_g):
    cfg = tiny_g.config
    g = _perturb(tiny_g).eval()
    assert generator_of(g) is g
    tokens, mask, pooled = _text(cfg, 2)
    a, b = (tokens[:1], mask[:1], pooled[:1]), (tokens[1:], mask[1:], pooled[1:])
    grid = style_mixing_grid(g, a, row_seeds=[1, 2], col_seeds=[3, 4, 5], cutoff=3, truncation_psi=0.8)
    assert grid.shape == (3, 4, 3, 16, 16) and torch.isfinite(grid).all()
    assert not torch.allclose(grid[1, 1], grid[0, 1])  # the mix differs from its column source
    # the mixed image is the synthesis of the mixed ws
    _, _, t = g.text_condition(*a)
    ws = truncated_ws(g, seed_noise([1, 3], (cfg.z_dim,)), t.expand(2, -1), 0.8)
    mixed = ws[1:].clone()
    mixed[:, :3] = ws[:1, :3]
    img = g.synthesis(mixed, a[0], a[1], noise_mode="const")[0].clamp(-1, 1)
    torch.testing.assert_close(grid[1, 1], img[0], atol=1e-4, rtol=1e-4)
    frames = prompt_interpolation(g, a, b, seed=7, steps=3)
    assert frames.shape == (3, 3, 16, 16) and torch.isfinite(frames).all()


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_image_at_batch_1_and_8(tiny_g):
    cfg = tiny_g.config
    g = _perturb(tiny_g).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, SynthesisLayer):
                m.noise_strength.fill_(0.3)  # make the noise inputs matter
    seeds = list(range(10, 18))
    z = seed_noise(seeds, (cfg.z_dim,))
    tokens, mask, pooled = _text(cfg, 8)
    with torch.no_grad():
        full = g(z, (tokens, mask, pooled), noise_mode="const")[0]
        for i in (0, 5):
            one = g(z[i:i + 1], (tokens[i:i + 1], mask[i:i + 1], pooled[i:i + 1]), noise_mode="const")[0]
            torch.testing.assert_close(one[0], full[i], atol=1e-4, rtol=1e-4)  # float reordering only
        torch.testing.assert_close(g(z, (tokens, mask, pooled))[0], full)  # eval default: constant noise
        assert not torch.allclose(g(z, (tokens, mask, pooled), noise_mode="none")[0], full)
        gen = torch.Generator().manual_seed(3)
        r1 = g(z, (tokens, mask, pooled), noise_mode="random", generator=gen)[0]
        r2 = g(z, (tokens, mask, pooled), noise_mode="random", generator=gen)[0]
        assert not torch.allclose(r1, r2)
    g.train()
    with torch.no_grad():
        assert not torch.allclose(g(z, (tokens, mask, pooled))[0], g(z, (tokens, mask, pooled))[0])


def test_save_pretrained_round_trip_is_exact(tiny_g, tmp_path):
    g = _perturb(tiny_g).eval()
    with torch.no_grad():
        g.mapping.w_avg.copy_(torch.randn(g.config.w_dim))
    g.save_pretrained(tmp_path / "g", text_encoder=g.config.text_encoder)
    g2 = StyleGANTGenerator.from_pretrained(tmp_path / "g")
    assert g2.config == g.config
    for (n, a), (_, b) in zip(g.state_dict().items(), g2.state_dict().items(), strict=True):
        assert torch.equal(a, b), n
    z = torch.randn(2, g.config.z_dim)
    text = _text(g.config, 2)
    with torch.no_grad():
        assert torch.equal(g(z, text, truncation_psi=0.7)[0], g2(z, text, truncation_psi=0.7)[0])
    assert isinstance(load_pretrained(tmp_path / "g"), StyleGANTGenerator)


def test_one_optimizer_step_stays_finite(tiny_g):
    cfg = tiny_g.config
    g = tiny_g.train()
    opt = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.0, 0.99))
    z, text = torch.randn(4, cfg.z_dim), _text(cfg, 4)
    target = torch.rand(4, 3, 16, 16) * 2 - 1
    losses = []
    for _ in range(2):
        loss = (g(z, text, update_w_avg=True)[0] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert all(torch.isfinite(p).all() for p in g.parameters()) and torch.isfinite(g.w_avg).all()
    with torch.no_grad():
        assert torch.isfinite(g.eval()(z, text)[0]).all()


def test_bad_inputs_give_config_errors(tiny_g):
    cfg = tiny_g.config
    tokens, mask, pooled = _text(cfg, 2)
    z = torch.randn(2, cfg.z_dim)
    with pytest.raises(ConfigError):
        tiny_g(torch.randn(2, cfg.z_dim + 1), (tokens, mask, pooled))
    with pytest.raises(ConfigError):
        tiny_g(torch.randn(3, cfg.z_dim), (tokens, mask, pooled))
    with pytest.raises(ConfigError):
        tiny_g(z, (tokens[..., :-1], mask, pooled))
    with pytest.raises(ConfigError):
        tiny_g(z, (tokens, mask.long(), pooled))
    with pytest.raises(ConfigError):
        tiny_g(z, (tokens, mask, pooled[:, :-1]))
    with pytest.raises(ConfigError):
        tiny_g(z, tokens)
    with pytest.raises(ConfigError):
        tiny_g.synthesis(torch.randn(2, cfg.num_ws - 1, cfg.w_dim), tokens, mask)
    with pytest.raises(ConfigError):
        tiny_g.synthesis(torch.randn(2, cfg.num_ws, cfg.w_dim), tokens, mask, noise_mode="fixed")
    with pytest.raises(ConfigError):
        StyleGANTGenerator(STYLEGAN_T_PRESETS)  # not a config
    for bad in (dict(resolution=48), dict(resolution=4), dict(start_resolution=6), dict(channels=(8,)),
                dict(res_blocks=(1, 2, 3)), dict(input_type="sine"), dict(input_bandwidth=8.0), dict(conv_clamp=0.0),
                dict(layer_scale_init=-1.0), dict(w_avg_beta=1.0), dict(mapping_lr_mul=0.0)):
        with pytest.raises(ConfigError):
            dataclasses.replace(STYLEGAN_T_PRESETS.build("tiny"), **bad)


# ------------------------------------------------------------------------------------------ presets
def _meta_count(cfg: StyleGANTGeneratorConfig) -> int:
    with torch.device("meta"):
        g = StyleGANTGenerator(cfg)
    assert next(g.parameters()).device.type == "meta"
    return sum(p.numel() for p in g.parameters())


@pytest.mark.parametrize("name", sorted(OFFICIAL_G_PARAMS))
def test_official_presets_have_the_official_parameter_counts(name):
    cfg = STYLEGAN_T_PRESETS.build(name)
    n = _meta_count(cfg)
    official = OFFICIAL_G_PARAMS[name]
    print(f"stylegan-t {name}: {n / 1e6:.2f}M parameters (official {official / 1e6:.2f}M)")
    assert abs(n - official) / official < 0.02
    assert cfg.z_dim == 64 and cfg.w_dim == 64 + 768 and cfg.text_encoder == "clip" and cfg.mapping_layers == 2
    assert cfg.resolution == (512 if name.endswith("512") else 64)


@pytest.mark.parametrize("name", STYLEGAN_T_PRESETS.names())
def test_every_preset_builds_and_round_trips_as_json(name):
    cfg = STYLEGAN_T_PRESETS.build(name)
    assert from_dict(StyleGANTGeneratorConfig, to_dict(cfg)) == cfg
    n = _meta_count(cfg)
    print(f"stylegan-t {name}: {n / 1e6:.2f}M parameters, num_ws {cfg.num_ws}")
    assert n > 0


def test_emoji64_runs_at_batch_1():
    torch.manual_seed(0)
    cfg = STYLEGAN_T_PRESETS.build("emoji64")
    assert cfg.resolution == 64 and cfg.text_dim == 384 and cfg.text_encoder == "minilm"
    g = StyleGANTGenerator(cfg).eval()
    with torch.no_grad():
        out = g(torch.randn(1, cfg.z_dim), _text(cfg, 1))
    assert out[0].shape == (1, 3, 64, 64) and torch.isfinite(out[0]).all()
