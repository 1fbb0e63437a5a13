"""Text-conditioned truncation (GigaGAN sec. 5): the conditional mean, the lerp formula, psi=0 / psi=1, cutoff."""

from __future__ import annotations

import pytest
import torch

from fastt2i.editing import conditional_w_mean, truncate, truncated_ws
from fastt2i.errors import ConfigError


def _text(pipe, prompts):
    e = pipe.encode(prompts)
    return pipe.generator.text_condition(e.tokens, e.mask, e.pooled)


def test_conditional_mean_is_the_average_mapping_and_batch_independent(pipe):
    g = pipe.generator
    _, _, t_global = _text(pipe, ["a red heart", "a blue star"])
    mean = conditional_w_mean(g, t_global, n=64, seed=3)
    assert mean.shape == (2, g.w_dim)
    z = torch.randn(64, g.z_dim, generator=torch.Generator().manual_seed(3))
    manual = g.mapping(z, t_global[1:].expand(64, -1))[:, 0].mean(0)
    torch.testing.assert_close(mean[1], manual, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conditional_w_mean(g, t_global[1:], n=64, seed=3)[0], mean[1], atol=1e-5, rtol=1e-5)
    # the two prompts have different means (the mean is text-conditioned)
    assert (mean[0] - mean[1]).abs().max() > 1e-3
    with pytest.raises(ConfigError):
        conditional_w_mean(g, t_global, n=0)


def test_truncate_psi0_is_the_conditional_mean_psi1_identity_and_formula():
    g = torch.Generator().manual_seed(0)
    ws = torch.randn(3, 5, 8, generator=g)
    w_c, w_u = torch.randn(3, 8, generator=g), torch.randn(8, generator=g)
    assert torch.equal(truncate(ws, w_c, w_u, 0.0), w_c[:, None].expand(3, 5, 8))  # exactly the conditional mean
    assert torch.equal(truncate(ws, w_c, w_u, 1.0), ws)
    psi = 0.7
    expected = w_c[:, None] + psi * ((w_u + psi * (ws - w_u)) - w_c[:, None])
    torch.testing.assert_close(truncate(ws, w_c, w_u, psi), expected)
    cut = truncate(ws, w_c, w_u, psi, cutoff=2)
    assert torch.equal(cut[:, 2:], ws[:, 2:])
    torch.testing.assert_close(cut[:, :2], expected[:, :2])
    # the input is not modified
    assert not torch.equal(truncate(ws, w_c, w_u, 0.5), ws)
    for bad in [dict(psi=float("nan")), dict(psi=0.5, cutoff=6)]:
        with pytest.raises(ConfigError):
            truncate(ws, w_c, w_u, **bad)
    with pytest.raises(ConfigError):
        truncate(ws, w_c[:, :4], w_u, 0.5)


def test_pipeline_truncation_psi0_renders_the_conditional_mean(pipe):
    g = pipe.generator
    images = pipe.generate(["a red heart"], [0, 1, 2], truncation_psi=0.0)
    # every seed collapses onto the prompt's mean image
    torch.testing.assert_close(images[0], images[2], atol=1e-4, rtol=0)
    t_local, t_mask, t_global = _text(pipe, ["a red heart"])
    w_c = conditional_w_mean(g, t_global, n=pipe.truncation_samples)
    ref = g.synthesis(w_c[:, None].expand(1, g.num_ws, -1), t_local, t_mask, noise_mode="const")[0].clamp(-1, 1)
    torch.testing.assert_close(images[:1], ref, atol=1e-4, rtol=0)
    # psi=1 leaves mapping's ws untouched; psi=0.5 lies strictly between
    z = pipe.latents([0])
    ws = g.mapping(z, t_global)
    assert torch.equal(truncated_ws(g, z, t_global, 1.0), ws)
    half = truncated_ws(g, z, t_global, 0.5, n=pipe.truncation_samples)
    assert 0 < (half - ws).abs().max() and 0 < (half - w_c[:, None]).abs().max()
