"""Paella token predictor and conditioner: shapes, init facts, attention over cond tokens, dropout, presets."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.models import load_pretrained
from fastt2i.models.paella.conditioning import (
    ConditionDropout,
    PaellaConditioner,
    cat_conditions,
    null_condition,
    sample_dropout,
)
from fastt2i.models.paella.config import PaellaConfig
from fastt2i.models.paella.denoiser import PaellaDenoiser, TimestepBlock, count_parameters
from fastt2i.models.paella.presets import PAELLA_PRESETS


@pytest.fixture(autouse=True)
def _no_grad():
    """Every test here is forward-only."""
    with torch.no_grad():
        yield


def small(**kw) -> PaellaConfig:
    """Tiny preset with CLIP tokens (8-d) and attention at the coarse level."""
    return dataclasses.replace(PAELLA_PRESETS.build("tiny"), clip_dim=8, **kw)


def inputs(cfg: PaellaConfig, B: int = 2, L: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.token_shape
    tokens = torch.randint(0, cfg.codebook_size, (B, h, w), generator=g)
    text = torch.randn(B, L, cfg.text_dim, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, 3:] = False
    clip = torch.randn(B, cfg.clip_dim, generator=g) if cfg.clip_dim else None
    return tokens, text, mask, clip


def wake(model: PaellaDenoiser, film: bool = False) -> PaellaDenoiser:
    """Give the zero-initialised output conv (and optionally the FiLM mappers) random weights."""
    torch.manual_seed(1)
    nn.init.normal_(model.clf[1].weight, std=0.5)
    if film:
        for m in model.modules():
            if isinstance(m, TimestepBlock):
                nn.init.normal_(m.mapper.weight, std=0.5)
    return model


def test_shapes_and_conditioning_layout():
    cfg = small()
    torch.manual_seed(0)
    model = PaellaDenoiser(cfg).eval()
    tokens, text, mask, clip = inputs(cfg)
    cond = model.conditioner(text, mask, clip, clip)
    assert cond.tokens.shape == (2, 5 + 8, cfg.c_cond) and cond.mask.shape == (2, 13)
    assert cond.mask[0].tolist() == [True] * 3 + [False] * 2 + [True] * 8
    assert float(cond.tokens[0, 3:5].abs().sum()) == 0  # padding tokens are zero
    logits = model(tokens, torch.tensor([0.2, 0.9]), *cond)
    assert logits.shape == (2, cfg.codebook_size, *cfg.token_shape)
    # any grid divisible by patch_size * 2^(levels-1) works (the network is convolutional)
    assert model(torch.zeros(1, 8, 12, dtype=torch.long), torch.tensor([0.5]), cond.tokens[:1]).shape == (1, 64, 8, 12)
    with pytest.raises(ConfigError):
        model(torch.zeros(1, 6, 6, dtype=torch.long), torch.tensor([0.5]), cond.tokens[:1])
    with pytest.raises(ConfigError):
        model(tokens, torch.tensor([0.5]), *cond)


def test_init_facts_zero_logits_tied_projection_and_film_identity():
    cfg = small()
    torch.manual_seed(0)
    model = PaellaDenoiser(cfg).eval()
    # the output projection starts as the token embedding
    assert torch.equal(model.out_proj.weight[:, :, 0, 0], model.token_embedding.weight)
    assert model.out_proj.weight.data_ptr() != model.token_embedding.weight.data_ptr()  # a copy, not tied storage
    tokens, text, mask, clip = inputs(cfg)
    cond = model.conditioner(text, mask, clip, clip)
    # the zero-initialised clf conv makes every logit exactly 0 at init (a uniform prediction)
    assert float(model(tokens, torch.tensor([0.3, 0.7]), *cond).abs().max()) == 0
    # zero-initialised FiLM: even with a live output conv, t has no effect at init ...
    wake(model)
    a = model(tokens, torch.tensor([0.1, 0.1]), *cond)
    b = model(tokens, torch.tensor([0.9, 0.9]), *cond)
    assert torch.allclose(a, b) and float(a.abs().max()) > 0
    # ... and it does once the FiLM mappers are non-zero
    wake(model, film=True)
    a = model(tokens, torch.tensor([0.1, 0.1]), *cond)
    b = model(tokens, torch.tensor([0.9, 0.9]), *cond)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("attention", [True, False])
def test_cond_reaches_logits_only_through_attention(attention):
    cfg = small(level_attention=(False, attention))
    torch.manual_seed(0)
    model = wake(PaellaDenoiser(cfg).eval())
    tokens, text, mask, clip = inputs(cfg)
    t = torch.tensor([0.5, 0.5])
    a = model(tokens, t, *model.conditioner(text, mask, clip, clip))
    b = model(tokens, t, *model.conditioner(text + 1.0, mask, -clip, clip))
    assert torch.allclose(a, b) != attention


def test_keys_include_image_and_cond_tokens_and_masked_tokens_are_ignored():
    cfg = small()
    torch.manual_seed(0)
    model = wake(PaellaDenoiser(cfg).eval())
    tokens, text, mask, clip = inputs(cfg)
    t = torch.tensor([0.5, 0.5])
    cond = model.conditioner(text, mask, clip, clip)
    ref = model(tokens, t, *cond)
    # changing a masked (padding) position of the cond sequence changes nothing
    junk = cond.tokens.clone()
    junk[0, 3:5] = 7.0
    assert torch.allclose(model(tokens, t, junk, cond.mask), ref, atol=1e-6)
    # unconditional (every cond token masked) still works thanks to the image tokens among the keys
    unc = model(tokens, t, *null_condition(cond))
    assert torch.isfinite(unc).all() and not torch.allclose(unc, ref)
    # without self-attention an all-masked sample gets no attention update (finite, no NaN)
    m2 = wake(PaellaDenoiser(small(self_attn=False)).eval())
    assert torch.isfinite(m2(tokens, t, *null_condition(m2.conditioner(text, mask, clip, clip)))).all()
    # batch of [cond; uncond] equals the two separate forwards (what classifier-free guidance relies on)
    both = model(tokens.repeat(2, 1, 1), t.repeat(2), *cat_conditions(cond, null_condition(cond)))
    assert torch.allclose(both[:2], ref, atol=1e-5) and torch.allclose(both[2:], unc, atol=1e-5)


def test_conditioner_per_sample_dropout():
    torch.manual_seed(0)
    cond_net = PaellaConditioner(text_dim=6, clip_dim=4, c_cond=8, num_clip_tokens=2)
    text, ct, ci = torch.randn(3, 4, 6), torch.randn(3, 4), torch.randn(3, 4)
    full = cond_net(text, None, ct, ci)
    drop = cond_net(text, None, ct, ci, drop_text=torch.tensor([True, False, False]),
                    drop_clip_text=torch.tensor([False, True, False]),
                    drop_clip_image=torch.tensor([False, False, True]))
    # dropped parts are zeroed and masked for that sample only; the rest is untouched
    assert drop.mask[0].tolist() == [False] * 4 + [True] * 4
    assert drop.mask[1].tolist() == [True] * 4 + [False] * 2 + [True] * 2
    assert drop.mask[2].tolist() == [True] * 6 + [False] * 2
    assert float(drop.tokens[0, :4].abs().sum()) == 0 and torch.equal(drop.tokens[0, 4:], full.tokens[0, 4:])
    assert float(drop.tokens[1, 4:6].abs().sum()) == 0 and float(drop.tokens[2, 6:].abs().sum()) == 0
    # absent CLIP vectors = dropped CLIP parts (same layout, so batches concatenate)
    none = cond_net(text, None, None, None)
    assert none.tokens.shape == full.tokens.shape and none.mask[:, 4:].sum() == 0
    with pytest.raises(ConfigError):
        PaellaConditioner(6, 0, 8)(text, None, ct, None)
    with pytest.raises(ConfigError):
        cond_net(text, None, torch.randn(3, 5), None)


def test_sample_dropout_is_per_sample_with_paper_defaults():
    assert ConditionDropout() == ConditionDropout(text=0.05, clip_text=0.9, clip_image=0.9)
    flags = sample_dropout(20_000, generator=torch.Generator().manual_seed(0))
    assert set(flags) == {"drop_text", "drop_clip_text", "drop_clip_image"}
    rates = {k: float(v.float().mean()) for k, v in flags.items()}
    assert abs(rates["drop_text"] - 0.05) < 0.01 and abs(rates["drop_clip_text"] - 0.9) < 0.01
    assert abs(rates["drop_clip_image"] - 0.9) < 0.01
    # per sample, independent across parts (not one draw per batch)
    small_batch = sample_dropout(64, {"text": 0.5, "clip_text": 0.5, "clip_image": 0.5},
                                 generator=torch.Generator().manual_seed(1))
    assert 0 < int(small_batch["drop_text"].sum()) < 64
    assert not torch.equal(small_batch["drop_text"], small_batch["drop_clip_text"])
    with pytest.raises(ConfigError):
        sample_dropout(4, {"txt": 0.1})
    with pytest.raises(ConfigError):
        ConditionDropout(text=1.5)


def test_save_load_round_trip(tmp_path):
    cfg = small()
    torch.manual_seed(0)
    model = wake(PaellaDenoiser(cfg), film=True).eval()
    model.save_pretrained(tmp_path / "den", text_encoder=cfg.text_encoder)
    loaded = load_pretrained(tmp_path / "den")
    assert isinstance(loaded, PaellaDenoiser) and loaded.config == cfg
    tokens, text, mask, clip = inputs(cfg)
    t = torch.tensor([0.3, 0.6])
    with torch.no_grad():
        a = model(tokens, t, *model.conditioner(text, mask, clip, clip))
        b = loaded(tokens, t, *loaded.conditioner(text, mask, clip, clip))
    assert torch.equal(a, b)


def test_config_validation():
    with pytest.raises(ConfigError):
        PaellaConfig(c_in=32, c_out=16)
    with pytest.raises(ConfigError):
        PaellaConfig(token_shape=(6, 6))
    with pytest.raises(ConfigError):
        PaellaConfig(blocks=(1, 2))


def test_presets_and_paper_parameter_count():
    assert set(PAELLA_PRESETS.names()) >= {"tiny", "emoji64", "paper"}
    n = count_parameters(PAELLA_PRESETS.build("paper"))
    print(f"paella paper preset: {n:,} parameters ({n / 1e6:.2f}M)")
    assert abs(n - 1_008e6) / 1_008e6 < 0.02
    emoji = PAELLA_PRESETS.build("emoji64")
    assert emoji.token_shape == (16, 16) and emoji.text_dim == 384 and emoji.clip_dim == 384
    assert count_parameters(emoji) < 20e6
