"""Paella editing tests: inpainting/outpainting keep known tokens, img2img, variations, interpolation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from paellafx import images, tiny_pipeline  # noqa: E402

from fastt2i.editing.paella import (  # noqa: E402
    img2img,
    inpaint,
    interpolate,
    lerp_condition,
    load_image,
    load_mask,
    mask_to_tokens,
    outpaint,
    variations,
)
from fastt2i.errors import ConfigError  # noqa: E402
from fastt2i.models.paella.conditioning import PaellaCondition, null_condition  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(token_hw=8, clip=True)


KW = dict(steps=3, cfg=3.0)


def test_mask_to_tokens_marks_any_masked_pixel():
    m = torch.zeros(32, 32)
    m[0, 0] = 1.0  # one pixel in token (0, 0)
    m[20:28, 8:12] = 1.0  # tokens rows 5-6, col 2
    tok = mask_to_tokens(m, (8, 8))
    assert tok.shape == (1, 8, 8) and tok.dtype == torch.bool
    assert tok[0, 0, 0] and tok[0, 5, 2] and tok[0, 6, 2] and tok.sum() == 3
    assert mask_to_tokens(torch.ones(1, 3, 64, 64), (8, 8)).all()  # resized from another size


def test_inpainting_leaves_known_tokens_unchanged(pipe):
    img = images(1, 32, seed=1)
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:24, 8:24] = 1.0  # the centre 4x4 tokens are regenerated
    out, tokens, regen = inpaint(pipe, img, mask, "a red heart", [0, 1, 2], return_tokens=True, **KW)
    known = pipe.tokenize(img)[0]
    assert regen.sum() == 16 and regen[2:6, 2:6].all()
    assert out.shape == (3, 3, 32, 32)
    for s in range(3):
        assert torch.equal(tokens[s][~regen], known[~regen])
    assert any(not torch.equal(tokens[s][regen], known[regen]) for s in range(3))  # the hole was resampled
    assert not torch.equal(tokens[0], tokens[1])
    for mode in ("confidence",):
        t2 = inpaint(pipe, img, mask, "a red heart", [5], mode=mode, return_tokens=True, **KW)[1]
        assert torch.equal(t2[0][~regen], known[~regen])


def test_outpaint_keeps_the_original_region(pipe):
    img = images(1, 32, seed=2)
    known = pipe.tokenize(img)[0]  # [8,8]
    out, tokens, keep = outpaint(pipe, img, "a blue star", [0, 1], pad=(16, 0, 16, 0), return_tokens=True, **KW)
    assert out.shape == (2, 3, 32, 64) and tokens.shape == (2, 8, 16)
    assert torch.equal(tokens[:, :, 4:12], known.expand(2, -1, -1))
    assert keep[:, 4:12].all() and not keep[:, :4].any() and not keep[:, 12:].any()
    # scale mode: shrunk image centred in a canvas of the same size; the centre tokens are the shrunk image's
    out2, tok2, keep2 = outpaint(pipe, img, "a blue star", [3], scale=0.5, return_tokens=True, **KW)
    small = pipe.tokenize(torch.nn.functional.interpolate(img, size=(16, 16), mode="area"))[0]
    assert out2.shape == (1, 3, 32, 32) and keep2.sum() == 16
    assert torch.equal(tok2[0, 2:6, 2:6], small)
    with pytest.raises(ConfigError):
        outpaint(pipe, img, "x", [0], pad=(2, 0, 0, 0))  # not a multiple of 4 px
    with pytest.raises(ConfigError):
        outpaint(pipe, img, "x", [0], pad=(4, 0, 0, 0))  # 9 tokens wide: not divisible by the denoiser's 4
    with pytest.raises(ConfigError):
        outpaint(pipe, img, "x", [0])


def test_img2img_at_t_start_zero_returns_the_input_tokens(pipe):
    img = images(1, 32, seed=3)
    known = pipe.tokenize(img)
    out, tokens = img2img(pipe, img, "a cat", [0, 1], t_start=0.0, return_tokens=True, **KW)
    assert torch.equal(tokens, known.expand(2, -1, -1))
    torch.testing.assert_close(out, pipe.decode(known).expand(2, -1, -1, -1))

def test_img2img_starts_from_the_noised_input_at_t_start(pipe, monkeypatch):
    img = images(1, 32, seed=3)
    known = pipe.tokenize(img)  # [1,8,8]
    calls = []
    real = pipe.guided_logits

    def spy(tokens, t, cond, uncond, w, **kw):
        calls.append((tokens.clone(), t.clone()))
        return real(tokens, t, cond, uncond, w, **kw)

    monkeypatch.setattr(pipe, "guided_logits", spy)
    seeds = list(range(16))
    part = img2img(pipe, img, "a cat", seeds, t_start=0.25, return_tokens=True, **KW)[1]
    # the sampler runs from t_start down: 0.25, 1/6, 1/12 (one batched CFG forward of 2 x 16 each)
    assert [round(float(t[0]), 4) for _, t in calls] == [0.25, 0.1667, 0.0833]
    first = calls[0][0]  # the tokens of the first step: the input noised to t = 0.25
    kept = (first == known).float().mean().item()
    assert 0.65 < kept < 0.85, kept  # ~ 1 - 0.25 (+ 0.25/K chance matches)
    calls.clear()
    one = img2img(pipe, img, "a cat", [2], t_start=0.25, return_tokens=True, **KW)[1]
    assert torch.equal(one[0], part[2])  # seed 2 gives the same result at batch 1 and 16
    assert torch.equal(calls[0][0][0], first[2])


def test_variations_use_the_image_embedding(pipe):
    a = images(1, 32, seed=4)
    b = images(1, 32, seed=5)
    ta = variations(pipe, a, [0, 1], return_tokens=True, **KW)[1]
    tb = variations(pipe, b, [0, 1], return_tokens=True, **KW)[1]
    assert ta.shape == (2, 8, 8)
    assert not torch.equal(ta, tb)  # same seeds, different images: the conditioning is the image
    cond = pipe.condition(None, image_embeddings=pipe.encode_images(a), use_clip_text=False)
    assert cond.mask[:, -4:].all() and not cond.mask[:, :-4].any()
    no_clip = tiny_pipeline(token_hw=8, clip=False)
    with pytest.raises(ConfigError):
        variations(no_clip, a, [0])


def test_interpolation_end_points_and_lerp(pipe):
    frames, tokens = interpolate(pipe, "a red heart", "a blue star", num=3, seed=4, return_tokens=True, **KW)
    assert frames.shape == (3, 3, 32, 32)
    ends = pipe.condition(["a red heart", "a blue star"])
    a = PaellaCondition(ends.tokens[:1], ends.mask[:1])
    b = PaellaCondition(ends.tokens[1:], ends.mask[1:])
    want_a = pipe.sample_tokens(a, null_condition(a), [4], **KW)
    want_b = pipe.sample_tokens(b, null_condition(b), [4], **KW)
    assert torch.equal(tokens[0], want_a[0]) and torch.equal(tokens[2], want_b[0])
    mid = lerp_condition(a, b, 0.25)
    torch.testing.assert_close(mid.tokens, 0.75 * a.tokens + 0.25 * b.tokens)
    assert torch.equal(mid.mask, a.mask | b.mask)
    with pytest.raises(ConfigError):
        interpolate(pipe, "a", "b", num=1)


def test_load_image_and_mask(tmp_path):
    from PIL import Image

    Image.new("RGBA", (20, 20), (255, 0, 0, 255)).save(tmp_path / "img.png")
    Image.new("L", (20, 20), 255).save(tmp_path / "mask.png")
    x = load_image(tmp_path / "img.png", resolution=32)
    assert x.shape == (1, 3, 32, 32)
    torch.testing.assert_close(x[0, :, 5, 5], torch.tensor([1.0, -1.0, -1.0]))
    m = load_mask(tmp_path / "mask.png", (32, 32))
    assert m.shape == (1, 1, 32, 32) and m.min() == 1.0
