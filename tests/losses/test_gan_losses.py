"""GAN losses: logistic/non-saturating formulas, R1 closed form, matching-aware mismatches, vision-aided D, CLIP loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastt2i.errors import DataError
from fastt2i.losses.gan import d_logistic, g_nonsaturating, r1_penalty, stack_logits
from fastt2i.losses.matching import d_matching_loss, mismatch_index, mismatch_text, try_mismatch_index
from fastt2i.losses.vision_aided import VisionAidedDiscriminator, generator_clip_loss
from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig
from fastt2i.models.gigagan.discriminator import ScaleLogits


def test_logistic_losses_match_softplus_formulas():
    g = torch.Generator().manual_seed(0)
    real = [torch.randn(5, generator=g) for _ in range(3)]
    fake = [torch.randn(5, generator=g) for _ in range(3)]
    exp_d = sum(F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(real, fake))
    exp_g = sum(F.softplus(-f).mean() for f in fake)
    torch.testing.assert_close(d_logistic(real, fake), exp_d)
    torch.testing.assert_close(g_nonsaturating(fake), exp_g)
    torch.testing.assert_close(d_logistic(real, fake, scale_reduction="mean"), exp_d / 3)
    torch.testing.assert_close(g_nonsaturating(fake, "mean"), exp_g / 3)
    # Same results from ScaleLogits lists and a [P,B] tensor; a single [B] tensor is one prediction.
    wrapped = [ScaleLogits(0, k, f) for k, f in enumerate(fake)]
    torch.testing.assert_close(g_nonsaturating(wrapped), exp_g)
    torch.testing.assert_close(g_nonsaturating(torch.stack(fake)), exp_g)
    torch.testing.assert_close(g_nonsaturating(fake[0]), F.softplus(-fake[0]).mean())
    # log(1 + e^-x) written out, and the known value at 0.
    x = torch.tensor([0.0, 2.0, -3.0])
    torch.testing.assert_close(g_nonsaturating(x), torch.log1p(torch.exp(-x)).mean())
    torch.testing.assert_close(d_logistic(torch.zeros(4), torch.zeros(4)), torch.tensor(2 * math.log(2.0)))
    with pytest.raises(ValueError):
        stack_logits([])
    with pytest.raises(Exception, match="scale_reduction"):
        g_nonsaturating(x, "max")


def test_r1_of_a_linear_multiscale_d_equals_the_closed_form():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 3, 8, 8, generator=g).requires_grad_()
    x1 = torch.randn(3, 3, 4, 4, generator=g).requires_grad_()
    w0, v, w1 = torch.randn(3, 8, 8, generator=g), torch.randn(3, 8, 8, generator=g), torch.randn(3, 4, 4, generator=g)
    logits = [(x0 * w0).sum((1, 2, 3)), (x1 * w1).sum((1, 2, 3)) + (x0 * v).sum((1, 2, 3))]  # D_00, D_01-like
    pen = r1_penalty([x0, x1], logits)
    expected = (w0 + v).square().sum() + w1.square().sum()
    assert pen.shape == (3,)
    torch.testing.assert_close(pen, expected.expand(3))
    # Single image input, and the penalty is differentiable (create_graph) for the D update.
    w = torch.randn(3, 8, 8, requires_grad=True)
    pen1 = r1_penalty(x0, (x0 * w).sum((1, 2, 3)))
    torch.testing.assert_close(pen1, w.detach().square().sum().expand(3))
    pen1.sum().backward()
    torch.testing.assert_close(w.grad, 2 * 3 * w.detach())
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(torch.randn(2, 3, 4, 4), torch.zeros(2))


def test_r1_through_the_gigagan_discriminator():
    from fastt2i.models.gigagan.discriminator import GigaGANDiscriminator, GigaGANDiscriminatorConfig, image_pyramid

    torch.manual_seed(0)
    D = GigaGANDiscriminator(GigaGANDiscriminatorConfig(resolution=16, pyramid_levels=3, channels=(8, 8, 8),
                                                         text_dim=6, cond_dim=8, text_heads=2, head_layers=1))
    pyr = [p.detach().requires_grad_() for p in image_pyramid(torch.rand(4, 3, 16, 16) * 2 - 1, 3)]
    tokens, mask, pooled = torch.randn(4, 3, 6), torch.ones(4, 3, dtype=torch.bool), torch.randn(4, 6)
    pen = r1_penalty(pyr, D(pyr, tokens, mask, pooled))
    assert pen.shape == (4,) and torch.isfinite(pen).all() and (pen > 0).all()
    pen.mean().backward()
    assert all(p.grad is not None for p in D.from_rgb.parameters())


@pytest.mark.parametrize("size", range(2, 10))
def test_mismatch_index_is_a_derangement(size):
    for seed in range(20):
        idx = mismatch_index(size, torch.Generator().manual_seed(seed))
        assert sorted(idx.tolist()) == list(range(size))
        assert (idx != torch.arange(size)).all()
    a = mismatch_index(size, torch.Generator().manual_seed(3))
    assert torch.equal(a, mismatch_index(size, torch.Generator().manual_seed(3)))


def test_mismatch_index_never_pairs_identical_captions():
    caps = ["a cat", "a dog", "a cat", "a cat", "a sun", "a dog", "a cat", "a moon"]  # largest group 4 = B/2
    for seed in range(50):
        idx = mismatch_index(len(caps), torch.Generator().manual_seed(seed), keys=caps)
        assert sorted(idx.tolist()) == list(range(len(caps)))  # still a permutation
        assert all(caps[i] != caps[j] for i, j in enumerate(idx.tolist()))
    # More than half identical: no permutation exists; every sample still gets a different caption.
    caps = ["x", "x", "x", "y", "x"]
    for seed in range(20):
        idx = mismatch_index(5, torch.Generator().manual_seed(seed), keys=[hash(c) for c in caps])
        assert all(caps[i] != caps[j] for i, j in enumerate(idx.tolist()))
    with pytest.raises(DataError, match="batch of 1"):
        mismatch_index(1)
    with pytest.raises(DataError, match="identical"):
        mismatch_index(3, keys=["s", "s", "s"])
    assert try_mismatch_index(3, keys=["s", "s", "s"]) is None and try_mismatch_index(1) is None
    with pytest.raises(DataError, match="keys"):
        mismatch_index(3, keys=["a", "b"])


def test_matching_term_only_sees_mismatched_pairs():
    """A recording D: every (image, caption) pair the matching term receives is a mismatch, and the loss is eq. 8."""
    caps = ["red heart", "blue heart", "red heart", "smile", "smile", "cat"]
    b = len(caps)
    caption_ids = torch.tensor([caps.index(c) for c in caps], dtype=torch.float32)  # identical strings share an id
    tokens = caption_ids[:, None, None].expand(b, 2, 3).clone()  # [B,L,D] carries the caption's identity
    mask = torch.ones(b, 2, dtype=torch.bool)
    pooled = caption_ids[:, None].expand(b, 3).clone()
    images = torch.arange(b, dtype=torch.float32)  # image n belongs with caption n
    seen = []

    def recording_d(image_index, tok, msk, pool):
        seen.extend(zip(image_index.long().tolist(), pool[:, 0].long().tolist()))
        return pool[:, 0] - image_index  # any differentiable-looking logit

    for seed in range(30):
        idx = mismatch_index(b, torch.Generator().manual_seed(seed), keys=caps)
        tok2, m2, p2 = mismatch_text(idx, tokens, mask, pooled)
        real_mis = recording_d(images, tok2, m2, p2)
        fake_mis = recording_d(images, tok2, m2, p2)
        loss = d_matching_loss(real_mis, fake_mis)
        torch.testing.assert_close(loss, 2 * F.softplus(real_mis).mean())
        assert torch.equal(tok2[:, 0, 0], p2[:, 0]) and torch.equal(m2, mask)
    assert len(seen) == 2 * 30 * b
    for image, caption_id in seen:
        assert caps[caption_id] != caps[image]  # never its own caption, never an identical string
    torch.testing.assert_close(d_matching_loss([torch.zeros(3)] * 2), 2 * torch.log(torch.tensor(2.0)))


def _tiny_clip() -> EmojiCLIP:
    torch.manual_seed(0)
    return EmojiCLIP(EmojiCLIPConfig(resolution=16, channels=(8, 16), blocks=1, embed_dim=12))


def test_vision_aided_d_trains_heads_not_backbone_and_passes_gradient_to_g():
    clip = _tiny_clip()
    backbone_before = {k: v.clone() for k, v in clip.state_dict().items()}
    vd = VisionAidedDiscriminator(clip, text_dim=6, hidden=16)
    assert not any(k.startswith("backbone") for k in vd.state_dict())
    assert {id(p) for p in vd.parameters()}.isdisjoint({id(p) for p in clip.parameters()})
    assert all(not p.requires_grad for p in clip.parameters())
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    fake = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_()
    text = torch.randn(4, 6)
    opt = torch.optim.Adam(vd.parameters(), lr=1e-2)
    loss_d = d_logistic(vd(real, text), vd(fake.detach(), text))
    loss_d.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in vd.parameters())
    assert all(p.grad is None for p in clip.parameters())
    opt.step()
    vd.train()
    assert not clip.training
    for k, v in clip.state_dict().items():
        assert torch.equal(v, backbone_before[k]), k
    # G side: the generated image gets a gradient through the frozen backbone.
    g_nonsaturating(vd(fake, text)).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    # The text matters (projection conditioning).
    assert not torch.allclose(vd(real, text), vd(real, torch.randn(4, 6)))
    with pytest.raises(ValueError, match="pooled"):
        vd(real, text[:2])


def test_vision_aided_state_dict_round_trip():
    clip = _tiny_clip()
    vd = VisionAidedDiscriminator(clip, text_dim=6, hidden=16)
    vd2 = VisionAidedDiscriminator(clip, text_dim=6, hidden=16, feature_dim=12)
    vd2.load_state_dict(vd.state_dict())
    x, t = torch.rand(2, 3, 16, 16) * 2 - 1, torch.randn(2, 6)
    assert torch.equal(vd(x, t), vd2(x, t))
    vd.double()
    assert next(clip.parameters()).dtype == torch.float64  # the unregistered backbone follows the wrapper


def test_generator_clip_loss_matches_eq9_and_reaches_the_images():
    clip = _tiny_clip()
    images = (torch.rand(3, 3, 16, 16) * 2 - 1).requires_grad_()
    text = F.normalize(torch.randn(3, 12), dim=-1)
    loss = generator_clip_loss(clip, images, text)
    with torch.no_grad():
        img = clip.encode_image(images)
        logits = clip.logit_scale.exp() * img @ text.t()
        expected = -(logits.diag() - logits.logsumexp(dim=1)).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
