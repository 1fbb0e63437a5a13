"""Fast paths of the generator give the paper's maths: fused vs non-fused modulated convs, channels-last, the weight
cache, bf16 autocast, and the padded L2 attention."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator
from fastt2i.nn.attention import _attend, attention_logits
from fastt2i.nn.modulated import UNFUSED_LIMIT, ModulatedConv2d, StyledConv, ToRGB, modulated_convs, set_conv_form


def _reference(conv: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """StyleGAN2 eq. 1-3 with GigaGAN's kernel mix, written out sample by sample (in float64 on a float64 copy)."""
    if conv.weight.dtype != torch.float64:
        conv = copy.deepcopy(conv).double()
    x, w = x.double(), w.double()
    s = conv.affine(w)  # [B,I]
    p = conv.selector(w).softmax(-1) if conv.selector is not None else torch.ones(w.shape[0], 1, dtype=w.dtype)
    if conv.up:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    outs = []
    for b in range(x.shape[0]):
        k = torch.einsum("n,noikl->oikl", p[b], conv.weight) / math.sqrt(conv.in_channels * conv.kernel_size ** 2)
        k = k * s[b][None, :, None, None]
        if conv.demodulate:
            k = k / (k.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        outs.append(F.conv2d(x[b:b + 1], k, padding=conv.kernel_size // 2))
    return torch.cat(outs)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("num_kernels", [1, 3])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("kernel_size", [3, 1])
def test_fused_and_unfused_forms_compute_the_same_modulated_conv(up, num_kernels, demodulate, kernel_size):
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, kernel_size, style_dim=8, demodulate=demodulate, up=up, num_kernels=num_kernels)
    x, w = torch.randn(3, 6, 5, 5), torch.randn(3, 8) * 2
    ref = _reference(conv, x, w)
    fused, unfused = conv(x, w, fused=True), conv(x, w, fused=False)
    assert fused.shape == unfused.shape == ((3, 5, 10, 10) if up else (3, 5, 5, 5))
    assert _rel(fused, ref) < 1e-5 and _rel(unfused, ref) < 1e-5
    assert _rel(unfused, fused) < 1e-5
    # channels-last and NCHW inputs give the same result
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for form in (True, False):
        assert _rel(conv(x_cl, w, fused=form), ref) < 1e-5


@pytest.mark.parametrize("fused", [True, False])
def test_gradients_agree_between_the_forms(fused):
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 6, 3, style_dim=8, up=True, num_kernels=2)
    x, w = torch.randn(2, 4, 4, 4, requires_grad=True), torch.randn(2, 8, requires_grad=True)
    ref_conv = copy.deepcopy(conv).double()
    (conv(x, w, fused=fused) ** 2).sum().backward()
    x2, w2 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    (_reference(ref_conv, x2, w2) ** 2).sum().backward()
    torch.testing.assert_close(x.grad.double(), x2.grad, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(w.grad.double(), w2.grad, atol=1e-4, rtol=1e-4)
    for (name, a), b in zip(conv.named_parameters(), ref_conv.parameters(), strict=True):
        assert b.grad is not None, name
        torch.testing.assert_close(a.grad.double(), b.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_styled_conv_epilogue_is_the_same_with_and_without_grad_and_in_either_form():
    torch.manual_seed(0)
    layer = StyledConv(4, 6, 8, resolution=8, up=True, num_kernels=3)
    with torch.no_grad():
        layer.noise_strength.fill_(0.7)
        layer.bias.normal_()
    x, w = torch.randn(2, 4, 4, 4), torch.randn(2, 8)
    # reference: conv, then noise, bias, lrelu * sqrt(2) written out
    y = layer.conv(x, w, fused=True)
    ref = F.leaky_relu(y + 0.7 * layer.noise_const[None, None] + layer.bias[None, :, None, None], 0.2) * math.sqrt(2)
    for form in (True, False, None):
        layer.conv.fused = form
        with_grad = layer(x, w, "const")
        with torch.no_grad():
            without = layer(x, w, "const")
        with torch.inference_mode():
            inference = layer(x, w, "const")
        for out in (with_grad, without, inference):
            assert _rel(out, ref) < 1e-5
        # random noise: the same draws from the same generator, with or without grad
        noise = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
        ref_random = F.leaky_relu(y + 0.7 * noise + layer.bias[None, :, None, None], 0.2) * math.sqrt(2)
        assert _rel(layer(x, w, "random", torch.Generator().manual_seed(5)), ref_random) < 1e-5
        with torch.no_grad():
            assert _rel(layer(x, w, "random", torch.Generator().manual_seed(5)), ref_random) < 1e-5
    torgb = ToRGB(6, 8)
    with torch.no_grad():
        torgb.bias.normal_()
    feats = torch.randn(2, 6, 8, 8)
    assert _rel(torgb(feats, w), _reference(torgb.conv, feats, w) + torgb.bias[None, :, None, None]) < 1e-5


def test_auto_form_depends_on_size_never_on_batch():
    x = lambda b, r: torch.zeros(b, 8, r, r)  # noqa: E731
    single = ModulatedConv2d(8, 8, 3, 4, num_kernels=1)
    assert not single.use_fused(x(1, 4)) and not single.use_fused(x(32, 64))  # one kernel: always non-fused
    assert ModulatedConv2d(8, 3, 1, 4, demodulate=False).use_fused(x(32, 64))  # 1x1 (toRGB): batched matmul
    bank = ModulatedConv2d(8, 8, 3, 4, num_kernels=4)
    small = int(math.sqrt(UNFUSED_LIMIT // 3))
    assert not bank.use_fused(x(32, small)) and bank.use_fused(x(32, 4 * small))
    up_bank = ModulatedConv2d(8, 8, 3, 4, num_kernels=4, up=True)
    assert up_bank.use_fused(x(2, 2 * small)) == bank.use_fused(x(2, 4 * small))  # output resolution counts
    for b in (1, 3, 32):
        assert bank.use_fused(x(b, 16)) == bank.use_fused(x(1, 16))
    bank.fused = False
    assert not bank.use_fused(x(32, 64))
    with pytest.raises(ConfigError):
        ModulatedConv2d(8, 8, 3, 4, fused="yes")
    with pytest.raises(ConfigError):
        set_conv_form(bank, "fast")


def test_generator_gives_the_same_images_in_every_form():
    torch.manual_seed(0)
    g = GigaGANGenerator(GIGAGAN_PRESETS.build("tiny")).eval()
    cfg = g.config
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(3, cfg.z_dim, generator=gen)
    text = (torch.randn(3, 4, cfg.text_dim, generator=gen), torch.ones(3, 4, dtype=torch.bool),
            torch.randn(3, cfg.pooled_width, generator=gen))
    with torch.no_grad():
        assert all(m.fused is None for m in modulated_convs(g))
        auto = g(z, text)
        set_conv_form(g, True)
        assert all(m.fused is True for m in modulated_convs(g))
        fused = g(z, text)
        set_conv_form(g, False)
        unfused = g(z, text)
    for a, b, c in zip(auto, fused, unfused, strict=True):
        assert a.is_contiguous() and a.dtype == torch.float32
        assert _rel(b, a) < 1e-5 and _rel(c, a) < 1e-5


def test_weight_cache_follows_weight_updates():
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 4, 3, style_dim=8, num_kernels=2)
    x, w = torch.randn(2, 4, 6, 6), torch.randn(2, 8)
    with torch.inference_mode():
        before = conv(x, w, fused=False)
    with torch.no_grad():
        cached = conv(x, w, fused=False)
        conv.weight.mul_(2).add_(0.1)  # an in-place update (optimizer step, load_state_dict, EMA copy)
        after = conv(x, w, fused=False)
    torch.testing.assert_close(cached, before)
    fresh = copy.deepcopy(conv)
    fresh._derived.clear()
    with torch.no_grad():
        torch.testing.assert_close(after, fresh(x, w, fused=False))
        assert not torch.allclose(after, before)
    # a frozen conv used under grad (e.g. optimising an input through it) after inference-mode calls
    conv.requires_grad_(False)
    xg = x.clone().requires_grad_()
    conv(xg, w, fused=False).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_bf16_autocast_is_close_to_fp32_and_keeps_styles_fp32():
    torch.manual_seed(0)
    conv = ModulatedConv2d(16, 16, 3, style_dim=8, num_kernels=2)
    x, w = torch.randn(4, 16, 8, 8), torch.randn(4, 8)
    ref = conv(x, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s, p = conv.styles(w)
        assert s.dtype == p.dtype == torch.float32
        assert conv.demodulation(s, p).dtype == torch.float32
        for form in (True, False):
            out = conv(x, w, fused=form)
            assert out.dtype == torch.bfloat16
            assert _rel(out.float(), ref) < 3e-2


@pytest.mark.parametrize("kind", ["l2", "dot"])
@pytest.mark.parametrize("masked", [False, True])
def test_padded_sdpa_equals_softmax_of_the_logits(kind, masked):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    mask = torch.tensor([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool) if masked else None
    logits = attention_logits(q, k, kind)  # [2,3,7,5]
    if masked:
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    ref = logits.softmax(-1) @ v
    out = _attend(q, k, v, kind, mask)
    assert out.shape == (2, 3, 7, 8)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
