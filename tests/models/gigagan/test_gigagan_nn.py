"""GigaGAN building blocks: equalized layers, L2 attention with tied Q/K, masked cross-attention, adaptive kernels."""

from __future__ import annotations

import math

import pytest
import torch
from einops import rearrange

from fastt2i.errors import ConfigError
from fastt2i.nn.attention import (
    CrossAttention,
    MaskedSelfAttention,
    SelfAttention,
    TransformerBlock,
    attention_logits,
    attention_parameters,
    split_decay_parameters,
)
from fastt2i.nn.equalized import EqualConv2d, EqualLinear
from fastt2i.nn.modulated import ModulatedConv2d, StyledConv, ToRGB


def test_equal_linear_runtime_scale_and_lr_mul():
    torch.manual_seed(0)
    lin = EqualLinear(64, 8, lr_mul=0.01, bias_init=1.0)
    # stored weights are N(0, 1/lr_mul^2); the effective weight is N(0, 1/in)
    assert lin.weight.std().item() == pytest.approx(100, rel=0.2)
    assert lin.effective_weight().std().item() == pytest.approx(1 / math.sqrt(64), rel=0.2)
    x = torch.randn(3, 64)
    ref = x @ (lin.weight * 0.01 / 8).T + lin.bias * 0.01
    torch.testing.assert_close(lin(x), ref)
    assert torch.allclose(lin.bias * 0.01, torch.ones(8))
    act = EqualLinear(64, 8, activation="lrelu")
    y = x @ act.effective_weight().T
    torch.testing.assert_close(act(x), torch.nn.functional.leaky_relu(y, 0.2) * math.sqrt(2))
    with pytest.raises(ConfigError):
        EqualLinear(4, 4, activation="gelu")


def test_equal_conv_keeps_unit_variance_and_same_padding():
    torch.manual_seed(0)
    conv = EqualConv2d(32, 32, 3, bias=False)
    x = torch.randn(8, 32, 16, 16)
    y = conv(x)
    assert y.shape == x.shape
    assert y.std().item() == pytest.approx(1.0, rel=0.15)
    assert EqualConv2d(4, 4, 3, stride=2)(torch.randn(1, 4, 8, 8)).shape == (1, 4, 4, 4)


def _brute_l2(q, k):
    return -((q[:, :, :, None, :] - k[:, :, None, :, :]) ** 2).sum(-1) / math.sqrt(q.shape[-1])


def test_self_attention_logits_are_negative_squared_l2_with_tied_qk():
    torch.manual_seed(0)
    attn = SelfAttention(16, heads=2, dim_head=8, kind="l2")
    assert attn.tied_qk and attn.to_k is None and attn._key_proj().weight is attn.to_q.weight
    x = torch.randn(2, 16, 3, 3)
    logits = attn.logits(x)  # [2,2,9,9]
    tokens = attn.norm(rearrange(x, "b c h w -> b (h w) c"))
    q = rearrange(attn.to_q(tokens), "b n (h d) -> b h n d", h=2)
    torch.testing.assert_close(logits, _brute_l2(q, q), atol=1e-4, rtol=1e-4)  # K = Q: same projection
    assert (logits <= 1e-5).all()
    torch.testing.assert_close(torch.diagonal(logits, dim1=-2, dim2=-1), torch.zeros(2, 2, 9), atol=1e-4, rtol=0)
    # forward = x + out(softmax(logits) v)
    v = rearrange(attn.to_v(tokens), "b n (h d) -> b h n d", h=2)
    ref = rearrange(x, "b c h w -> b (h w) c") + attn.to_out(rearrange(logits.softmax(-1) @ v, "b h n d -> b n (h d)"))
    torch.testing.assert_close(attn(x), rearrange(ref, "b (h w) c -> b c h w", h=3), atol=1e-5, rtol=1e-5)


def test_dot_attention_differs_and_has_separate_key():
    torch.manual_seed(0)
    l2 = SelfAttention(16, heads=2, dim_head=8, kind="l2")
    dot = SelfAttention(16, heads=2, dim_head=8, kind="dot")
    assert not dot.tied_qk and dot.to_k is not None
    dot.load_state_dict({**l2.state_dict(), "to_k.weight": l2.to_q.weight.detach().clone()})  # same weights
    x = torch.randn(2, 5, 16)
    ld, ll = dot.logits(x), l2.logits(x)
    assert not torch.allclose(ld, ll, atol=1e-2)
    assert not torch.allclose(dot(x), l2(x), atol=1e-3)
    q = rearrange(dot.to_q(dot.norm(x)), "b n (h d) -> b h n d", h=2)
    torch.testing.assert_close(ld, q @ q.transpose(-1, -2) / math.sqrt(8), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError):
        SelfAttention(16, kind="cosine")


def test_self_attention_style_token_changes_output():
    torch.manual_seed(0)
    attn = SelfAttention(16, heads=2, dim_head=8, style_dim=6)
    x = torch.randn(2, 16, 2, 2)
    w1, w2 = torch.randn(2, 6), torch.randn(2, 6)
    assert attn.logits(x, w1).shape == (2, 2, 4, 5)  # 4 pixels + 1 style token
    assert not torch.allclose(attn(x, w1), attn(x, w2))
    with pytest.raises(ConfigError):
        attn(x)


def test_cross_attention_ignores_padded_tokens_and_empty_rows_give_no_nan():
    torch.manual_seed(0)
    cross = CrossAttention(16, 12, heads=2, dim_head=8, kind="l2")
    x = torch.randn(3, 16, 2, 2, requires_grad=True)
    ctx = torch.randn(3, 5, 12, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    y = cross(x, ctx, mask)
    changed = ctx.detach().clone()
    changed[0, 3:] = 1e3 * torch.randn(2, 12)
    changed[1, 1:] = -50.0
    changed[2] = 7.0
    y2 = cross(x, changed, mask)
    torch.testing.assert_close(y, y2)  # exactly the same: padded tokens get zero weight
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[2], x[2])  # no real token: nothing added
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(ctx.grad).all()
    assert ctx.grad[0, 3:].abs().max() == 0
    # the real tokens do matter
    real = ctx.detach().clone()
    real[0, 0] = torch.randn(12)  # (a constant shift would be removed by the context LayerNorm)
    assert not torch.allclose(cross(x, real, mask)[0], y[0])
    # the logits are -squared L2 between text keys and image queries
    tokens = cross.norm(rearrange(x, "b c h w -> b (h w) c"))
    q = rearrange(cross.to_q(tokens), "b n (h d) -> b h n d", h=2)
    k = rearrange(cross.to_k(cross.norm_context(ctx)), "b m (h d) -> b h m d", h=2)
    torch.testing.assert_close(cross.logits(x, ctx), _brute_l2(q, k), atol=1e-4, rtol=1e-4)


def test_masked_self_attention_and_transformer_block():
    torch.manual_seed(0)
    block = TransformerBlock(16, heads=2, dim_head=8)
    assert isinstance(block.attn, MaskedSelfAttention) and block.attn.to_k is None
    x = torch.randn(2, 4, 16)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    y = block(x, mask)
    x2 = x.clone()
    x2[0, 2:] = 100.0
    torch.testing.assert_close(block(x2, mask)[0, :2], y[0, :2])
    assert attention_logits(torch.zeros(1, 1, 2, 4), torch.ones(1, 1, 3, 4), "l2").shape == (1, 1, 2, 3)


def test_attention_parameters_lists_projection_weights_once():
    attn = SelfAttention(16, heads=2, dim_head=8, style_dim=4)
    cross = CrossAttention(16, 8, heads=2, dim_head=8)
    model = torch.nn.ModuleList([attn, cross, EqualLinear(3, 3)])
    params = attention_parameters(model)
    ids = {id(p) for p in params}
    assert len(params) == len(ids) == 4 + 4  # tied Q/K once; q,v,out,style + q,k,v,out
    assert id(attn.to_q.weight) in ids and id(attn.norm.weight) not in ids and id(attn.to_out.bias) not in ids
    decay, rest = split_decay_parameters(model)
    assert len(decay) + len(rest) == len(list(model.parameters()))


def test_single_kernel_modconv_equals_stylegan2_modulated_conv():
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, style_dim=8, num_kernels=1)
    assert conv.selector is None
    x, w = torch.randn(3, 6, 7, 7), torch.randn(3, 8)
    # StyleGAN2 eq. 1-3 written out for each sample
    s = conv.affine(w)
    weight = conv.weight[0] / math.sqrt(6 * 9)
    outs = []
    for b in range(3):
        k = weight * s[b][None, :, None, None]
        k = k / (k.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        outs.append(torch.nn.functional.conv2d(x[b: b + 1], k, padding=1))
    ref = torch.cat(outs)
    torch.testing.assert_close(conv(x, w), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conv(x, w, fused=True), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("up", [False, True])
def test_adaptive_kernels_softmax_mixture_and_fused_equals_unfused(up):
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, style_dim=8, num_kernels=4, up=up)
    w1, w2 = torch.randn(3, 8), torch.randn(3, 8)
    p1, p2 = conv.kernel_weights(w1), conv.kernel_weights(w2)
    assert p1.shape == (3, 4) and (p1 > 0).all()
    torch.testing.assert_close(p1.sum(-1), torch.ones(3))
    assert not torch.allclose(p1, p2)
    # K = sum_i p_i K_i, then modulated/demodulated
    kernels = conv.sample_kernels(w1)
    mixed = torch.einsum("bn,noikl->boikl", p1, conv.weight) / math.sqrt(6 * 9) * conv.affine(w1)[:, None, :, None, None]
    mixed = mixed / (mixed.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8).sqrt()
    torch.testing.assert_close(kernels, mixed, atol=1e-5, rtol=1e-5)
    x = torch.randn(3, 6, 5, 5)
    fused, unfused = conv(x, w1, fused=True), conv(x, w1, fused=False)
    assert fused.shape == ((3, 5, 10, 10) if up else (3, 5, 5, 5))
    torch.testing.assert_close(fused, unfused, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(conv(x, w2), fused)


@pytest.mark.parametrize("num_kernels", [1, 4])
def test_demodulated_output_has_unit_variance(num_kernels):
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, style_dim=16, num_kernels=num_kernels)
    x = torch.randn(8, 64, 16, 16)
    y = conv(x, torch.randn(8, 16) * 3)
    assert y.std().item() == pytest.approx(1.0, abs=0.1)
    nodemod = ModulatedConv2d(64, 64, 3, style_dim=16, demodulate=False)
    assert abs(nodemod(x, torch.randn(8, 16) * 3).std().item() - 1.0) > 0.1


def test_styled_conv_noise_modes_and_torgb():
    torch.manual_seed(0)
    layer = StyledConv(4, 6, 8, resolution=8, up=True, num_kernels=2)
    with torch.no_grad():
        layer.noise_strength.fill_(0.5)
    x, w = torch.randn(2, 4, 4, 4), torch.randn(2, 8)
    assert layer(x, w, "const").shape == (2, 6, 8, 8)
    torch.testing.assert_close(layer(x, w, "const"), layer(x, w, "const"))
    assert not torch.allclose(layer(x, w, "random"), layer(x, w, "random"))
    assert not torch.allclose(layer(x, w, "none"), layer(x, w, "const"))
    with pytest.raises(ConfigError):
        layer(x, w, "fresh")
    assert ToRGB(6, 8)(torch.randn(2, 6, 8, 8), w).shape == (2, 3, 8, 8)
