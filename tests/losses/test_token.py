"""Paella token objective: renoising statistics (no mask id), t sampling, loss weights and the weighted CE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError
from fastt2i.losses.token import paella_loss, renoise_tokens, sample_t, token_loss_weights


def test_renoise_replaces_fraction_t_with_uniform_codebook_tokens():
    g = torch.Generator().manual_seed(0)
    K = 16
    tokens = torch.randint(0, K, (4, 64, 64), generator=g)
    t = torch.tensor([0.0, 0.25, 0.6, 1.0])
    noised, replaced = renoise_tokens(tokens, t, K, generator=g)
    assert noised.dtype == torch.long and noised.shape == tokens.shape
    # never a mask id: every value is a codebook index
    assert int(noised.min()) >= 0 and int(noised.max()) < K
    frac = replaced.float().mean(dim=(1, 2))
    n = 64 * 64
    for f, p in zip(frac.tolist(), t.tolist()):
        assert abs(f - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1e-9  # within 4 sigma of Binomial(n, t)/n
    assert torch.equal(noised[0], tokens[0]) and bool(replaced[3].all())
    # tokens outside `replaced` are untouched; drawn ones are uniform over [0, K)
    assert torch.equal(noised[~replaced], tokens[~replaced])
    counts = torch.bincount(noised[3].flatten(), minlength=K).float()
    assert counts.min() > 0.75 * n / K and counts.max() < 1.25 * n / K
    # a drawn token equals the original with probability 1/K: the changed fraction is t (1 - 1/K)
    changed = (noised[2] != tokens[2]).float().mean()
    assert abs(float(changed) - 0.6 * (1 - 1 / K)) < 0.03


def test_renoise_is_reproducible_and_accepts_float_t():
    tokens = torch.randint(0, 8, (2, 5, 5))
    a = renoise_tokens(tokens, 0.5, 8, generator=torch.Generator().manual_seed(3))
    b = renoise_tokens(tokens, torch.full((2,), 0.5), 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ConfigError):
        renoise_tokens(tokens.float(), 0.5, 8)
    with pytest.raises(ConfigError):
        renoise_tokens(tokens, torch.rand(3), 8)


def test_sample_t_range_and_clamp():
    t = sample_t(10_000, torch.Generator().manual_seed(0))
    assert t.shape == (10_000,) and float(t.min()) >= 0.001 and float(t.max()) <= 1.0
    assert abs(float(t.mean()) - 0.5) < 0.02
    assert float(sample_t(1000, torch.Generator().manual_seed(0), min_t=0.9).min()) >= 0.9 - 1e-6


def test_loss_weights_formula():
    t = torch.tensor([0.0, 0.5, 1.0])
    replaced = torch.tensor([[[True, False]], [[False, False]], [[True, False]]])  # [3,1,2]
    w = token_loss_weights(t, replaced, eta=0.3)
    expected = torch.tensor([[[1.0, 0.3]], [[1.0 - 0.5 * 0.7, 1.0 - 0.5 * 0.7]], [[1.0, 1.0]]])
    assert torch.allclose(w, expected)
    assert torch.allclose(token_loss_weights(t, replaced, eta=1.0), torch.ones(3, 1, 2))


def test_paella_loss_is_weighted_ce_normalised_per_image():
    g = torch.Generator().manual_seed(1)
    B, K, h, w = 3, 7, 4, 5
    logits = torch.randn(B, K, h, w, generator=g)
    target = torch.randint(0, K, (B, h, w), generator=g)
    t = torch.tensor([0.1, 0.5, 0.9])
    replaced = torch.rand(B, h, w, generator=g) < t[:, None, None]
    loss = paella_loss(logits, target, t, replaced, label_smoothing=0.1, eta=0.3)
    per = []
    for b in range(B):
        ce = F.cross_entropy(logits[b:b + 1], target[b:b + 1], label_smoothing=0.1, reduction="none")[0]
        wt = torch.where(replaced[b], 1.0, 1 - (1 - t[b]) * 0.7)
        per.append((ce * wt).sum() / wt.sum())
    assert torch.allclose(loss, torch.stack(per).mean(), atol=1e-6)
    # per-image normalisation: an image's loss does not depend on the other images in the batch
    single = paella_loss(logits[:1], target[:1], t[:1], replaced[:1])
    assert torch.allclose(single, per[0], atol=1e-6)
    # a perfect, confident prediction has loss -> smoothing floor only, far below a random one
    perfect = F.one_hot(target, K).permute(0, 3, 1, 2).float() * 50
    assert float(paella_loss(perfect, target, t, replaced, label_smoothing=0.0)) < 1e-6
    with pytest.raises(ConfigError):
        paella_loss(logits[:, :, :3], target, t, replaced)
