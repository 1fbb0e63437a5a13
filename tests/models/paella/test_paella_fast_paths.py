"""The fast paths of the Paella models, sampler and pipeline compute what the plain formulations compute.

Each test pins one behavioural change of the speed work (issue "a cheap kimg on CPU"): attention without a host sync,
the GRN / MixingBlock / quantizer rewrites, the sampler's up-front per-row uniforms and two-level inverse CDF,
guidance mixed before the linear output projection, one prompt encoding per call, and bf16 sampling. (bf16 training
steps are checked in tests/training.)
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "inference"))
from paellafx import CLIP_DIM, ToyCLIP, tiny_parts, tiny_pipeline  # noqa: E402

from fastt2i.inference.paella import PaellaPipeline  # noqa: E402
from fastt2i.models.paella.conditioning import null_condition  # noqa: E402
from fastt2i.models.paella.denoiser import (  # noqa: E402
    AttnBlock,
    GlobalResponseNorm,
    PaellaDenoiser,
    _attention,
)
from fastt2i.models.paella.presets import PAELLA_PRESETS  # noqa: E402
from fastt2i.models.paella.quantizer import VectorQuantizer  # noqa: E402
from fastt2i.models.paella.schedule import (  # noqa: E402
    RenoiseScheduler,
    _inverse_cdf,
    cfg_logits,
    uniforms,
)
from fastt2i.models.paella.vqgan import MixingBlock  # noqa: E402

PROMPTS = ["a red heart", "a smiling cat face", "x"]


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(token_hw=8, clip=True)


# ---------------------------------------------------------------------------------------------------- denoiser
def reference_attention(block: AttnBlock, x, cond, cond_mask):
    """AttnBlock.forward as it was at 718a537 (with its `bool(empty.any())` host sync), for comparison."""
    B, C, H, W = x.shape
    h = block.norm(x).flatten(2).transpose(1, 2)
    kv = block.kv_mapper(cond)
    mask = cond_mask
    if block.self_attn:
        kv = torch.cat([h, kv], dim=1)
        if mask is not None:
            mask = torch.cat([mask.new_ones(B, H * W), mask], dim=1)
    q = block.to_q(h).view(B, H * W, block.num_heads, -1).transpose(1, 2)
    k = block.to_k(kv).view(B, kv.shape[1], block.num_heads, -1).transpose(1, 2)
    v = block.to_v(kv).view(B, kv.shape[1], block.num_heads, -1).transpose(1, 2)
    empty = None
    if mask is not None:
        empty = ~mask.any(dim=1)
        mask = (mask | empty[:, None])[:, None, None, :]
    out = _attention(q, k, v, mask, 0.0)  # the block's attention kernel (the same with or without the sync)
    out = block.to_out(out.transpose(1, 2).reshape(B, H * W, C))
    if empty is not None and bool(empty.any()):
        out = out * (~empty)[:, None, None].to(out.dtype)
    return x + out.transpose(1, 2).reshape(B, C, H, W)


class NoHostSync:
    """Make any tensor -> Python bool / number conversion raise (each is a device sync on an accelerator)."""

    def __init__(self, monkeypatch):
        def refuse(*_a, **_k):
            raise AssertionError("host sync: a tensor was converted to a Python value inside the forward")

        for name in ("__bool__", "item", "tolist", "__int__", "__float__"):
            monkeypatch.setattr(torch.Tensor, name, refuse)


@pytest.mark.parametrize("self_attn", [True, False])
def test_attention_has_no_host_sync_and_matches_the_old_block_exactly(self_attn, monkeypatch):
    torch.manual_seed(0)
    block = AttnBlock(16, 8, num_heads=2, self_attn=self_attn).eval()
    x = torch.randn(3, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    cond = torch.randn(3, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False], [False] * 5])  # row 2: nothing to attend
    with torch.no_grad():
        want = [reference_attention(block, x, cond, m) for m in (mask, None)]
        NoHostSync(monkeypatch)
        got = [block(x, cond, m) for m in (mask, None)]
    for g, w in zip(got, want):
        assert torch.equal(g, w)
    if not self_attn:  # the row without keys gets no update
        assert torch.equal(got[0][2], x[2])


def test_sampling_attention_kernel_matches_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 7, 8, generator=g), torch.randn(2, 3, 7, 8,
                                                                                                        generator=g)
    mask = torch.rand(2, 1, 1, 7, generator=g) > 0.3
    mask[..., 0] = True  # every row attends to something (the image tokens, in the denoiser)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    with torch.no_grad():
        torch.testing.assert_close(_attention(q, k, v, mask, 0.0), want, rtol=1e-6, atol=1e-6)
        got16 = _attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask, 0.0)
    assert got16.dtype == torch.bfloat16
    torch.testing.assert_close(got16.float(), want, rtol=2e-2, atol=2e-2)
    q.requires_grad_()
    torch.testing.assert_close(_attention(q, k, v, mask, 0.0), want)  # with gradients: SDPA itself


def test_denoiser_forward_has_no_host_sync(monkeypatch):
    cfg = dataclasses.replace(PAELLA_PRESETS.build("tiny"), clip_dim=CLIP_DIM)
    torch.manual_seed(0)
    model = PaellaDenoiser(cfg).eval()
    tokens = torch.randint(0, cfg.codebook_size, (2, 4, 4))
    with torch.no_grad():
        cond = model.conditioner(torch.randn(2, 3, cfg.text_dim), None, torch.randn(2, CLIP_DIM), None)
        NoHostSync(monkeypatch)
        logits = model(tokens, torch.tensor([0.3, 0.8]), *cond)
    assert logits.shape == (2, cfg.codebook_size, 4, 4)


def test_global_response_norm_matches_the_torch_norm_formula_and_has_finite_gradients():
    torch.manual_seed(0)
    grn = GlobalResponseNorm(6)
    with torch.no_grad():
        grn.gamma.normal_()
        grn.beta.normal_()
    x = torch.randn(2, 3, 5, 6)
    x[1, :, :, 2] = 0  # an all-zero channel: torch.norm's gradient there is 0, not NaN
    x.requires_grad_()
    gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
    want = grn.gamma * (x * (gx / (gx.mean(dim=-1, keepdim=True) + 1e-6))) + grn.beta + x
    got = grn(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    (g_want,) = torch.autograd.grad(want.square().sum(), x)
    (g_got,) = torch.autograd.grad(got.square().sum(), x)
    assert torch.isfinite(g_got).all()
    torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5)


def test_guidance_on_features_equals_guidance_on_logits(pipe):
    cond, uncond = pipe.conditions(PROMPTS)
    x = torch.randint(0, pipe.codebook_size, (3, 8, 8), generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1.0, 0.5, 0.1])
    with torch.no_grad():
        want = cfg_logits(pipe.model_fn, x, t, cond, uncond, 8.0)  # mix the two forwards' logits
        got = pipe.guided_logits(x, t, cond, uncond, 8.0)  # mix the features, project once
        buffered = pipe.guided_logits(x, t, cond, uncond, 8.0, out=torch.empty(3, 8, 8, pipe.codebook_size))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
    assert torch.equal(buffered, got)


# ---------------------------------------------------------------------------------------------------- VQGAN
def reference_mixing(block: MixingBlock, x):
    """MixingBlock.forward as it was at 718a537 (modulations applied to the feature maps)."""
    def ln(v):
        return F.layer_norm(v.permute(0, 2, 3, 1), v.shape[1:2], eps=1e-6).permute(0, 3, 1, 2)

    g = block.gammas
    h = ln(x) * (1 + g[0]) + g[1]
    x = x + block.depthwise(h) * g[2]
    h = ln(x) * (1 + g[3]) + g[4]
    h = block.mlp(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return x + h * g[5]


def test_mixing_block_with_folded_modulations_matches_the_plain_one():
    torch.manual_seed(0)
    block = MixingBlock(8, 16)
    with torch.no_grad():
        block.gammas.normal_()
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    want, got = reference_mixing(block, x), block(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    gw = torch.autograd.grad(want.square().sum(), [x, *block.parameters()])
    gg = torch.autograd.grad(got.square().sum(), [x, *block.parameters()])
    for a, b in zip(gg, gw):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_quantizer_nearest_is_the_euclidean_argmin_in_fp32_even_under_autocast():
    torch.manual_seed(0)
    vq = VectorQuantizer(300, 4)
    z = torch.randn(5000, 4)
    want = torch.cdist(z.double(), vq.codebook.double()).argmin(dim=1)
    assert torch.equal(vq.nearest(z), want)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(vq.nearest(z), want)
        out = vq(z[:64].T.reshape(1, 4, 8, 8).contiguous())
    assert out.loss.dtype == torch.float32 and out.quantized.dtype == torch.float32
    assert vq.codebook.dtype == torch.float32


# ---------------------------------------------------------------------------------------------------- sampler
def test_inverse_cdf_two_level_search_equals_the_flat_cumulative_sum():
    g = torch.Generator().manual_seed(0)
    probs = (torch.randn(4000, 1024, generator=g) * 3).softmax(-1)
    u = torch.rand(4000, generator=g)
    cdf = probs.cumsum(-1)
    flat = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).squeeze(-1).clamp(max=1023)
    idx, total = _inverse_cdf(probs, u)
    assert torch.equal(idx, flat)
    torch.testing.assert_close(total, torch.ones(4000))
    # unnormalised weights draw the same classes as their normalised probabilities
    assert torch.equal(_inverse_cdf(probs * 7.0, u)[0], idx)


@pytest.mark.parametrize("mode,temperature", [("renoise", (0.7, 0.3)), ("confidence", (0.7, 0.3)),
                                               ("renoise", 0.0)])
def test_draw_uniforms_gives_the_per_step_generator_draws(mode, temperature):
    B, K, h, w, S = 3, 64, 4, 4, 5
    sched = RenoiseScheduler(S, temperature=temperature, mode=mode)
    rand = sched.draw_uniforms([torch.Generator().manual_seed(s) for s in (0, 1, 2)], B, (h, w))
    assert [r.shape for r in rand] == [(B, sched.step_draws(i), h, w) for i in range(S)]
    gens = [torch.Generator().manual_seed(s) for s in (0, 1, 2)]
    logits = torch.randn(S, B, K, h, w, generator=torch.Generator().manual_seed(9))
    init = torch.randint(0, K, (B, h, w), generator=torch.Generator().manual_seed(8))
    x_lazy = x_pre = init
    for i in range(S):
        x_lazy = sched.step(logits[i], i, x_lazy, init, generator=gens)  # draws row by row, step by step
        x_pre = sched.step(logits[i], i, x_pre, init, randoms=rand[i])  # all drawn up front
        assert torch.equal(x_pre, x_lazy)
    # the draws of one run: the 12-step paper sampler samples 12 times and renoises 11 times
    assert sum(RenoiseScheduler(12).step_draws(i) for i in range(12)) == 23


@pytest.mark.parametrize("kw", [dict(steps=4, cfg=3.0), dict(steps=3, cfg=2.0, mode="confidence"),
                                dict(steps=3, cfg=4.0, temperature=0.0)])
def test_per_seed_tokens_are_the_same_at_batch_1_and_3(pipe, kw):
    _, three = pipe.generate(PROMPTS, [10, 11, 12], return_tokens=True, **kw)
    for i, seed in enumerate((10, 11, 12)):
        _, one = pipe.generate([PROMPTS[i]], [seed], return_tokens=True, **kw)
        assert torch.equal(one[0], three[i])
    assert not torch.equal(three[0], three[1])


def test_uniforms_with_one_generator_per_row_are_batch_invariant():
    a = uniforms((3, 7, 2, 2), [torch.Generator().manual_seed(s) for s in (4, 5, 6)])
    b = uniforms((1, 7, 2, 2), [torch.Generator().manual_seed(5)])
    assert torch.equal(a[1:2], b)


# ---------------------------------------------------------------------------------------------------- pipeline
def two_encode_generate(pipe, prompts, seeds, **kw):
    """What generate did at 718a537: the prompts encoded for cond, and again for the unconditional branch."""
    cond = pipe.condition(prompts)
    uncond = pipe.condition(prompts, unconditional=True)
    tokens = pipe.sample_tokens(cond, uncond, seeds, **kw)
    return pipe.decode(tokens), tokens


def test_one_encoding_gives_exactly_what_two_encodings_gave(pipe, monkeypatch):
    cond = pipe.condition(PROMPTS, image_embeddings=torch.randn(3, CLIP_DIM))
    unc = pipe.condition(PROMPTS, image_embeddings=torch.randn(3, CLIP_DIM), unconditional=True)
    null = null_condition(cond)
    assert torch.equal(null.tokens, unc.tokens) and torch.equal(null.mask, unc.mask)
    calls = {"text": 0, "clip": 0}
    enc, clip = pipe.text_encoder.encode, pipe.clip_model.encode_text

    def count(key, fn):
        def wrapped(*a, **k):
            calls[key] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(pipe.text_encoder, "encode", count("text", enc))  # the toy CLIP's encode_text uses it too
    monkeypatch.setattr(pipe.clip_model, "encode_text", count("clip", clip))
    kw = dict(steps=4, cfg=5.0)
    want_img, want_tok = two_encode_generate(pipe, PROMPTS, [0, 1, 2], **kw)
    assert calls == {"text": 4, "clip": 2}
    calls.update(text=0, clip=0)
    img, tok = pipe.generate(PROMPTS, [0, 1, 2], return_tokens=True, **kw)
    assert calls == {"text": 2, "clip": 1}  # half: the unconditional branch encodes nothing
    assert torch.equal(tok, want_tok) and torch.equal(img, want_img)


class SharedTextCLIP(ToyCLIP):
    """A CLIP stand-in whose text side is the pipeline's text encoder's normalised pooled vector (as emoji-clip)."""

    def __init__(self, text_encoder):
        super().__init__(text_encoder)
        self.config = type("Cfg", (), {"text_encoder": "t5-tiny-random"})()
        self.txt = nn.Identity()

    def encode_text(self, texts):
        return F.normalize(self.text_encoder.encode(list(texts)).pooled.float(), dim=-1)


def test_clip_text_reuses_the_pooled_text_when_the_clip_model_shares_the_encoder(monkeypatch):
    vq, den, enc, _ = tiny_parts(token_hw=8, clip=False)
    den = PaellaDenoiser(dataclasses.replace(den.config, clip_dim=enc.pooled_dim)).eval()
    clip = SharedTextCLIP(enc).eval()
    pipe = PaellaPipeline(vq, den, enc, clip, clip_model_spec="toy")
    want = clip.encode_text(PROMPTS)
    monkeypatch.setattr(clip, "encode_text", lambda texts: pytest.fail("the prompts were encoded a second time"))
    text = pipe.encode_text(PROMPTS)
    assert torch.equal(pipe.clip_text(PROMPTS, text), want)
    mask = pipe.condition(PROMPTS).mask  # [B, L + 4 CLIP text + 4 CLIP image]
    assert mask[:, -8:-4].all() and not mask[:, -4:].any()


def test_generate_runs_under_inference_mode_and_returns_ordinary_tensors(pipe, monkeypatch):
    seen = []
    real = pipe.guided_logits

    def spy(*a, **k):
        seen.append(torch.is_inference_mode_enabled())
        return real(*a, **k)

    monkeypatch.setattr(pipe, "guided_logits", spy)
    img, tok = pipe.generate(PROMPTS[:1], [0], steps=2, return_tokens=True)
    assert seen == [True, True]
    assert not img.is_inference() and not tok.is_inference()
    assert not pipe.decode(tok).is_inference()


def test_bf16_sampling_gives_the_same_shapes_and_mostly_the_same_argmax_tokens(pipe):
    kw = dict(cfg=1.0, temperature=0.0, return_tokens=True)
    seeds = list(range(8))
    prompts = PROMPTS + ["a dog", "sun", "moon", "a b c", "q"]
    img32, tok32 = pipe.generate(prompts, seeds, steps=1, **kw)
    img16, tok16 = pipe.generate(prompts, seeds, steps=1, dtype="bf16", **kw)
    assert img16.shape == img32.shape and tok16.shape == tok32.shape == (8, 8, 8)
    assert img16.dtype == torch.float32 and tok16.dtype == torch.long
    same = (tok16 == tok32).float().mean().item()
    print(f"bf16 vs fp32 argmax tokens of one guided forward: {100 * same:.1f}% equal")
    assert same > 0.9  # 98.4% here (random tiny model with perturbed weights: many near-ties)
    _, full = pipe.generate(prompts, seeds, steps=4, cfg=4.0, dtype="bf16", return_tokens=True)
    assert full.shape == (8, 8, 8) and int(full.min()) >= 0 and int(full.max()) < pipe.codebook_size
    # the pipeline-wide default and the per-call argument are the same thing
    pipe16 = PaellaPipeline(pipe.vqgan, pipe.denoiser, pipe.text_encoder, pipe.clip_model, clip_model_spec="toy",
                            dtype="bf16")
    assert torch.equal(pipe16.generate(prompts, seeds, steps=1, **kw)[1], tok16)
