"""GigaGAN discriminator: MS-I/O prediction count without repeated work, text dependence at every scale, baseline
path, save/load, and a tiny forward+backward."""

from __future__ import annotations

import pytest
import torch

from fastt2i.errors import ConfigError
from fastt2i.models.gigagan.discriminator import (
    GigaGANDiscriminator,
    GigaGANDiscriminatorConfig,
    ScaleLogits,
    ResidualDownBlock,
    _Head,
    image_pyramid,
    minibatch_std,
)

TINY = dict(resolution=16, pyramid_levels=3, channels=(8, 16, 16), text_dim=12, cond_dim=16, text_heads=2,
            head_layers=1, mbstd_group=2)
B = 4


def make(**kw) -> GigaGANDiscriminator:
    torch.manual_seed(0)
    return GigaGANDiscriminator(GigaGANDiscriminatorConfig(**{**TINY, **kw}))


def batch(seed: int = 0, res: int = 16, levels: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, res, res, generator=g) * 2 - 1
    tokens = torch.randn(B, 5, 12, generator=g)
    mask = torch.ones(B, 5, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 1:] = False
    tokens = tokens * mask[..., None]
    pooled = torch.randn(B, 12, generator=g)
    return image_pyramid(x, levels), tokens, mask, pooled


@pytest.mark.parametrize("levels,res,channels", [(3, 16, (8, 16, 16)), (4, 32, (8, 8, 16, 16))])
def test_multiscale_predictions_are_all_distinct_pairs_computed_once(levels, res, channels):
    D = make(pyramid_levels=levels, resolution=res, channels=channels)
    rows: dict[str, list[int]] = {}

    def hook(name):
        def fn(module, args, output):
            rows.setdefault(name, []).append(args[0].shape[0])
        return fn

    for k, level in enumerate(D.levels):
        for b, blk in enumerate(level.blocks):
            assert isinstance(blk, ResidualDownBlock)
            blk.register_forward_hook(hook(f"block{k}.{b}"))
    for j, head in D.heads.items():
        assert isinstance(head, _Head)
        head.conv.register_forward_hook(hook(f"head{j}"))  # the text-independent part: once per judged pyramid
    for i, rgb in enumerate(D.from_rgb):
        rgb.register_forward_hook(hook(f"rgb{i}"))

    out = D(*batch(res=res, levels=levels))
    n = levels * (levels + 1) // 2
    assert len(out) == n and all(isinstance(o, ScaleLogits) for o in out)
    pairs = [(o.i, o.j) for o in out]
    assert sorted(pairs) == sorted((i, j) for i in range(levels) for j in range(i, levels))
    assert pairs == D.pairs
    # Each trunk block and head runs once per forward, on exactly the (k+1) paths through level k: no repeated work.
    for k in range(levels):
        assert rows[f"rgb{k}"] == [B]
        assert rows[f"block{k}.0"] == [(k + 1) * B]
        assert rows[f"head{k}"] == [(k + 1) * B]
    assert sum(r[0] for name, r in rows.items() if name.startswith("head")) == n * B
    # All predictions are numerically different computations (gigagan-pytorch 0.3.0 had 22 with 13 distinct).
    stacked = torch.stack([o.logits for o in out])  # [n,B]
    assert torch.isfinite(stacked).all()
    assert len({tuple(row.tolist()) for row in stacked}) == n


def test_prediction_ij_depends_only_on_image_i():
    D = make()
    pyr, tokens, mask, pooled = batch()
    base = D(pyr, tokens, mask, pooled)
    for i in range(3):
        pyr2 = list(pyr)
        pyr2[i] = pyr2[i] + 0.5 * torch.randn_like(pyr2[i])
        out = D(pyr2, tokens, mask, pooled)
        for a, b in zip(base, out, strict=True):
            changed = not torch.allclose(a.logits, b.logits)
            assert changed == (a.i == i), (a.i, a.j, i)


@pytest.mark.parametrize("conditioning", ["both", "projection", "modulated"])
def test_every_logit_at_every_scale_depends_on_the_caption(conditioning):
    D = make(conditioning=conditioning)
    pyr, tokens, mask, pooled = batch()
    _, tokens2, mask2, pooled2 = batch(seed=1)
    a = D(pyr, tokens, mask, pooled)
    b = D(pyr, tokens2, mask2, pooled2)
    assert len(a) == 6
    for x, y in zip(a, b, strict=True):
        assert ((x.logits - y.logits).abs() > 1e-6).all(), (x.i, x.j)
    # The token sequence matters too (D's own attention layers), not only the pooled vector.
    c = D(pyr, torch.randn_like(tokens) * mask[..., None], mask, pooled)
    for x, y in zip(a, c, strict=True):
        assert ((x.logits - y.logits).abs() > 1e-6).all(), (x.i, x.j)


def test_padded_tokens_are_ignored():
    D = make()
    pyr, tokens, mask, pooled = batch()
    noisy = torch.where(mask[..., None], tokens, torch.randn_like(tokens) * 10)
    for x, y in zip(D(pyr, tokens, mask, pooled), D(pyr, noisy, mask, pooled), strict=True):
        torch.testing.assert_close(x.logits, y.logits, rtol=1e-5, atol=1e-5)


def test_single_scale_baseline():
    D = make(multiscale=False)
    assert len(D.from_rgb) == 1 and list(D.heads) == ["2"]
    pyr, tokens, mask, pooled = batch()
    out = D(pyr, tokens, mask, pooled)
    assert [(o.i, o.j) for o in out] == [(0, 2)] == D.pairs
    # Only the finest image is used; a plain tensor works as input.
    out2 = D([pyr[0], torch.zeros_like(pyr[1]), torch.zeros_like(pyr[2])], tokens, mask, pooled)
    out3 = D(pyr[0], tokens, mask, pooled)
    torch.testing.assert_close(out[0].logits, out2[0].logits)
    torch.testing.assert_close(out[0].logits, out3[0].logits)
    _, tokens2, mask2, pooled2 = batch(seed=1)
    assert ((D(pyr, tokens2, mask2, pooled2)[0].logits - out[0].logits).abs() > 1e-6).all()
    # Minibatch-std is in the head: a sample's logit depends on the rest of its group.
    pyr_b = [p.clone() for p in pyr]
    pyr_b[0][2] = -pyr_b[0][2]  # same mbstd group as sample 0 (groups are strided: {0,2}, {1,3})
    assert not torch.allclose(D(pyr_b, tokens, mask, pooled)[0].logits[0], out[0].logits[0])


def test_minibatch_std_never_mixes_paths():
    x = torch.randn(3 * 4, 8, 2, 2)
    y = minibatch_std(x, paths=3, group=4, channels=1)
    x2 = x.clone()
    x2[4:8] *= 5  # change path 1 only
    y2 = minibatch_std(x2, paths=3, group=4, channels=1)
    assert y.shape == (12, 9, 2, 2)
    torch.testing.assert_close(y[:4], y2[:4])
    torch.testing.assert_close(y[8:], y2[8:])
    assert not torch.allclose(y[4:8, 8], y2[4:8, 8])
    # One group of 4 per path: the std feature is the std over the 4 samples, averaged over channels/pixels.
    ref = x[:4].var(dim=0, unbiased=False).add(1e-8).sqrt().mean()
    torch.testing.assert_close(y[0, 8, 0, 0], ref)


def test_attention_and_tiny_forward_backward_are_finite():
    D = make(attention=True, attention_resolutions=(8, 4), blocks=2)
    assert any(level.attn is not None for level in D.levels)
    pyr, tokens, mask, pooled = batch()
    pyr = [p.requires_grad_() for p in pyr]
    out = D(pyr, tokens, mask, pooled)
    loss = torch.stack([o.logits for o in out]).square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pyr)


def test_save_load_round_trip_is_exact(tmp_path):
    D = make(attention=True)
    D.save_pretrained(tmp_path / "d", text_encoder="minilm")
    D2 = GigaGANDiscriminator.from_pretrained(tmp_path / "d")
    assert D2.config == D.config
    D.eval()
    args = batch()
    for a, b in zip(D(*args), D2(*args), strict=True):
        assert torch.equal(a.logits, b.logits)
    for k, v in D.state_dict().items():
        assert torch.equal(v, D2.state_dict()[k]), k


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ConfigError, match="channels"):
        GigaGANDiscriminatorConfig(resolution=16, pyramid_levels=3, channels=(8, 16))
    with pytest.raises(ConfigError, match="below 4"):
        GigaGANDiscriminatorConfig(resolution=16, pyramid_levels=4, channels=(8, 8, 8, 8))
    with pytest.raises(ConfigError, match="conditioning"):
        GigaGANDiscriminatorConfig(**{**TINY, "conditioning": "concat"})
    D = make()
    pyr, tokens, mask, pooled = batch()
    with pytest.raises(ValueError, match="pyramid"):
        D(pyr[:2], tokens, mask, pooled)
    with pytest.raises(ValueError, match="level 1"):
        D([pyr[0], pyr[0], pyr[2]], tokens, mask, pooled)
    with pytest.raises(ValueError, match="text tokens"):
        D(pyr, tokens[..., :5], mask, pooled)
    with pytest.raises(ValueError, match="mask"):
        D(pyr, tokens, mask.float(), pooled)


def test_short_text_conditioned_adversarial_training_stays_finite():
    """D steps with logistic + matching-aware + lazy R1 against learnable 'generated' images: no NaN (gigagan-pytorch's
    text-conditioned training turned to NaN in a few steps)."""
    from fastt2i.losses.gan import d_logistic, g_nonsaturating, r1_penalty
    from fastt2i.losses.matching import d_matching_loss, mismatch_index, mismatch_text

    D = make()
    pyr, tokens, mask, pooled = batch()
    fake = torch.nn.Parameter(torch.randn(B, 3, 16, 16) * 0.5)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    opt_g = torch.optim.Adam([fake], lr=2e-2, betas=(0.0, 0.99))
    gen = torch.Generator().manual_seed(0)
    for step in range(6):
        fake_pyr = image_pyramid(fake.tanh(), 3)
        idx = mismatch_index(B, gen)
        wrong = mismatch_text(idx, tokens, mask, pooled)
        loss_d = d_logistic(D(pyr, tokens, mask, pooled), D([f.detach() for f in fake_pyr], tokens, mask, pooled))
        loss_d = loss_d + d_matching_loss(D(pyr, *wrong), D([f.detach() for f in fake_pyr], *wrong))
        if step % 2 == 0:  # lazy R1, every 2 steps, scaled by 2
            real = [p.detach().requires_grad_() for p in pyr]
            loss_d = loss_d + 2 * 0.5 * r1_penalty(real, D(real, tokens, mask, pooled)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = g_nonsaturating(D(image_pyramid(fake.tanh(), 3), tokens, mask, pooled))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        assert torch.isfinite(loss_d) and torch.isfinite(loss_g), step
    assert all(torch.isfinite(p).all() for p in D.parameters())


def test_judge_shares_the_trunk_across_texts_and_equals_separate_forwards():
    D = make()
    pyr, tokens, mask, pooled = batch()
    wrong = (tokens.flip(0), mask.flip(0), pooled.flip(0))
    calls = []
    D.levels[0].register_forward_hook(lambda m, a, o: calls.append("trunk"))
    both = D.judge(pyr, [(tokens, mask, pooled), wrong])
    assert calls == ["trunk"]  # one trunk pass for two texts
    for got, text in zip(both, [(tokens, mask, pooled), wrong], strict=True):
        ref = D(pyr, *text)
        assert [(o.i, o.j) for o in got] == [(o.i, o.j) for o in ref]
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a.logits, b.logits)
    assert not torch.allclose(both[0][-1].logits, both[1][-1].logits)  # the text still matters


def test_judge_many_equals_separate_forwards_of_every_image_set_and_text():
    D = make()
    pyr, tokens, mask, pooled = batch()
    fake, _, _, _ = batch(seed=3)
    idx = torch.tensor([1, 0, 3, 2])
    t = D.text_descriptor(tokens, mask, pooled)
    # t_D is per-sample: the mismatched descriptor is the matched one re-indexed (no second text pass)
    wrong = (tokens[idx], mask[idx], pooled[idx])
    torch.testing.assert_close(t[idx], D.text_descriptor(*wrong))
    calls = []
    D.levels[0].register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    got = D.judge_many([pyr, fake], [t, t[idx]])
    assert calls == [2 * B]  # both image sets in one trunk pass
    for s, images in enumerate([pyr, fake]):
        for k, text in enumerate([(tokens, mask, pooled), wrong]):
            ref = D(images, *text)
            assert [(o.i, o.j) for o in got[s][k]] == D.pairs
            for a, b in zip(got[s][k], ref, strict=True):
                assert a.logits.dtype == torch.float32
                torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    # minibatch-std groups never mix the sets: other fake images leave the real logits alone
    other = D.judge_many([pyr, [x.flip(0) * 0.5 for x in fake]], [t])
    for a, b in zip(other[0][0], got[0][0], strict=True):
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="text descriptors"):
        D.judge_many([pyr], [pooled])
