"""Paella sampler tests: timesteps, argmax limit, renoising with the initial tokens, confidence mode, batched CFG."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.models.paella.schedule import RenoiseScheduler, cfg_logits, sample_tokens, uniforms

K, H, W = 32, 6, 6


class ToyModel(nn.Module):
    """Token embedding + conv + conditioning bias: enough to make the logits depend on tokens, t and cond."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(K, 8)
        self.conv = nn.Conv2d(8, K, 3, padding=1)
        self.cond = nn.Linear(4, K)

    def forward(self, tokens, t, cond):
        x = self.emb(tokens).permute(0, 3, 1, 2)  # [B,8,h,w]
        c, m = cond  # [B,L,4], [B,L]
        pooled = (c * m[..., None]).sum(1)  # [B,4]
        return self.conv(x) * (1 + t[:, None, None, None]) + self.cond(pooled)[:, :, None, None]


def test_timesteps_linear_from_one_to_zero():
    s = RenoiseScheduler(num_steps=12)
    assert len(s) == 12 and s.timesteps.shape == (13,)
    torch.testing.assert_close(s.timesteps, torch.linspace(1, 0, 13))
    assert s.timesteps[0] == 1.0 and s.timesteps[-1] == 0.0
    torch.testing.assert_close(s.temperatures, torch.linspace(0.7, 0.3, 12))
    s.set_timesteps(4, t_start=0.6)
    torch.testing.assert_close(s.timesteps, torch.tensor([0.6, 0.45, 0.3, 0.15, 0.0]))
    s.set_timesteps(5, t_start=0.0)
    assert len(s) == 0  # nothing noised: nothing to do
    with pytest.raises(ConfigError):
        s.set_timesteps(0)
    with pytest.raises(ConfigError):
        RenoiseScheduler(mode="mask")
    with pytest.raises(ConfigError):
        RenoiseScheduler(temperature=(1.0, 0.5, 0.2))


def test_one_step_zero_temperature_is_argmax_of_one_forward():
    model = ToyModel()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, K, (3, H, W), generator=g)
    cond = (torch.randn(3, 5, 4, generator=g), torch.ones(3, 5, dtype=torch.bool))
    s = RenoiseScheduler(num_steps=1, temperature=0.0)
    t = s.timesteps[0].expand(3)
    logits = cfg_logits(model, x, t, cond, None, 1.0)
    out = s.step(logits, 0, x, x, generator=g)
    assert torch.equal(out, model(x, t, cond).argmax(1))
    # a vanishing (not zero) temperature gives the same tokens through the multinomial path
    s2 = RenoiseScheduler(num_steps=1, temperature=1e-4)
    assert torch.equal(s2.step(logits, 0, x, x, generator=g), out)


def test_sample_tokens_matches_distribution():
    probs = torch.tensor([0.1, 0.6, 0.3])[None, :, None, None].expand(1, 3, 200, 100)  # [1,3,200,100]
    u = uniforms((1, 200, 100), torch.Generator().manual_seed(0))
    idx = sample_tokens(probs, u)
    freq = torch.bincount(idx.flatten(), minlength=3).float() / idx.numel()
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.6, 0.3]), atol=0.01, rtol=0)


def test_renoise_uses_initial_tokens_with_probability_t_next():
    B, h, w = 4, 32, 32
    g = torch.Generator().manual_seed(0)
    init = torch.randint(0, K, (B, h, w), generator=g)
    # logits that put all mass on token (init + 1) % K: every sampled token differs from its initial token
    target = (init + 1) % K
    logits = torch.full((B, K, h, w), -1e4).scatter_(1, target[:, None], 0.0)
    s = RenoiseScheduler(num_steps=4, temperature=1.0, mode="renoise")  # t = 1, .75, .5, .25, 0
    out = s.step(logits, 1, init, init, generator=g)  # t_next = 0.5
    back = out == init
    assert torch.equal(out[~back], target[~back])  # every position is either the initial or the sampled token
    assert abs(back.float().mean().item() - 0.5) < 0.04
    out_last = s.step(logits, 3, init, init, generator=g)  # last step: no renoising
    assert torch.equal(out_last, target)


def test_confidence_mode_renoises_least_confident():
    B, h, w = 2, 4, 5
    init = torch.zeros(B, h, w, dtype=torch.long)  # token 0 can never be sampled below: it marks renoised positions
    g = torch.Generator().manual_seed(0)
    conf = torch.randperm(B * h * w, generator=g).float().reshape(B, h, w)  # distinct, shuffled confidences
    logits = torch.zeros(B, K, h, w)
    logits[:, 0] = -1e4
    logits[:, 1] = conf / 4.0  # token 1 is the argmax; p(token 1) grows with `conf` (K-2 alternatives at logit 0)
    s = RenoiseScheduler(num_steps=4, temperature=0.0, mode="confidence")
    out = s.step(logits, 1, init, init)  # t_next = 0.5 -> 10 of 20 tokens per image renoised
    for b in range(B):
        renoised = (out[b] == 0).flatten()
        assert renoised.sum() == 10
        lowest = conf[b].flatten().argsort()[:10]
        assert renoised[lowest].all()
        assert (out[b].flatten()[~renoised] == 1).all()


def test_keep_mask_keeps_known_tokens_in_both_modes():
    B, h, w = 2, 8, 8
    g = torch.Generator().manual_seed(3)
    init = torch.randint(0, K, (B, h, w), generator=g)
    known = torch.randint(0, K, (B, h, w), generator=g)
    keep = torch.zeros(h, w, dtype=torch.bool)
    keep[:, :4] = True
    logits = torch.randn(B, K, h, w, generator=g)
    for mode in ("renoise", "confidence"):
        s = RenoiseScheduler(num_steps=3, temperature=(1.0, 0.5), mode=mode)
        x = torch.where(keep, known, init)
        for i in range(len(s)):
            x = s.step(logits, i, x, init, generator=g, keep_mask=keep, known=known)
            assert torch.equal(x[:, keep], known[:, keep])
        if mode == "confidence":  # t_next = 2/3 at step 0: round(2/3 * 32 free tokens) = 21 renoised, none kept ones
            sentinel = torch.full_like(init, -1)
            y = s.step(logits, 0, x, sentinel, keep_mask=keep, known=known)
            assert (y == -1).sum(dim=(1, 2)).tolist() == [21, 21]
            assert not (y[:, keep] == -1).any()


def test_per_row_generators_make_rows_batch_invariant():
    B, h, w = 3, 5, 5
    logits = torch.randn(B, K, h, w, generator=torch.Generator().manual_seed(0))
    init = torch.randint(0, K, (B, h, w), generator=torch.Generator().manual_seed(1))
    s = RenoiseScheduler(num_steps=3, temperature=1.0)
    gens = [torch.Generator().manual_seed(10 + b) for b in range(B)]
    full = s.step(logits, 0, init, init, generator=gens)
    single = s.step(logits[2:], 0, init[2:], init[2:], generator=[torch.Generator().manual_seed(12)])
    assert torch.equal(full[2:], single)
    with pytest.raises(ConfigError):
        s.step(logits, 0, init, init, generator=gens[:2])


def test_batched_cfg_equals_two_forwards():
    model = ToyModel()
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, K, (3, H, W), generator=g)
    t = torch.rand(3, generator=g)
    cond = (torch.randn(3, 5, 4, generator=g), torch.ones(3, 5, dtype=torch.bool))
    uncond = (torch.zeros(3, 5, 4), torch.zeros(3, 5, dtype=torch.bool))
    calls = []

    def fn(tok, tt, c):
        calls.append(tok.shape[0])
        return model(tok, tt, c)

    w = 3.5
    got = cfg_logits(fn, x, t, cond, uncond, w)
    assert calls == [6]  # one batched forward of [cond; uncond]
    want = model(x, t, cond) * w + model(x, t, uncond) * (1 - w)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cfg_logits(model, x, t, cond, uncond, 0.0), model(x, t, uncond))


def test_full_loop_runs_and_is_deterministic():
    model = ToyModel()
    cond = (torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0)), torch.ones(2, 3, dtype=torch.bool))
    uncond = (torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool))

    def run(mode):
        gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
        init = torch.stack([torch.randint(0, K, (H, W), generator=g) for g in gens])
        s = RenoiseScheduler(num_steps=5, mode=mode)
        x = init.clone()
        for i in range(len(s)):
            t = s.timesteps[i].expand(2)
            x = s.step(cfg_logits(model, x, t, cond, uncond, 4.0), i, x, init, generator=gens)
        return x

    for mode in ("renoise", "confidence"):
        a, b = run(mode), run(mode)
        assert torch.equal(a, b) and a.dtype == torch.long and a.min() >= 0 and a.max() < K
