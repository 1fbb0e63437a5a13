"""Style mixing grid (coarse styles from rows, fine from columns) and prompt mixing (text + ws per layer range)."""

from __future__ import annotations

import copy

import pytest
import torch

from fastt2i.editing import prompt_mixing, style_mixing_grid, synthesize_with_layer_texts
from fastt2i.errors import ConfigError
from fastt2i.nn.attention import CrossAttention

ATOL = 1e-4


def test_style_mixing_grid_layout_and_sources(pipe):
    g = pipe.generator
    rows, cols = [0, 1], [5, 6, 7]
    grid = style_mixing_grid(pipe, "a red heart", rows, cols, cutoff=4)
    assert grid.shape == (3, 4, 3, 16, 16)
    assert torch.equal(grid[0, 0], torch.ones(3, 16, 16))  # blank corner
    torch.testing.assert_close(grid[1:, 0], pipe.generate(["a red heart"], rows), atol=ATOL, rtol=0)
    torch.testing.assert_close(grid[0, 1:], pipe.generate(["a red heart"], cols), atol=ATOL, rtol=0)
    inner = grid[1:, 1:]
    # a mid cutoff uses both sources: each mix differs from its row source and from its column source
    assert ((inner - grid[1:, :1]).flatten(2).abs().amax(2) > 1e-2).all()
    assert ((inner - grid[:1, 1:]).flatten(2).abs().amax(2) > 1e-2).all()
    # all styles from the rows -> the row images; none -> the column images
    all_rows = style_mixing_grid(pipe, "a red heart", rows, cols, cutoff=g.num_ws)
    torch.testing.assert_close(all_rows[1:, 1:], grid[1:, :1].expand(2, 3, -1, -1, -1), atol=ATOL, rtol=0)
    all_cols = style_mixing_grid(pipe, "a red heart", rows, cols, cutoff=0)
    torch.testing.assert_close(all_cols[1:, 1:], grid[:1, 1:].expand(2, 3, -1, -1, -1), atol=ATOL, rtol=0)
    # the mix with cutoff k is the synthesis of [row ws[:k], column ws[k:]]
    e = pipe.encode(["a red heart"])
    t_local, t_mask, t_global = g.text_condition(e.tokens, e.mask, e.pooled)
    ws = g.mapping(pipe.latents([1, 6]), t_global.expand(2, -1))
    mixed = torch.cat([ws[:1, :4], ws[1:, 4:]], dim=1)
    ref = g.synthesis(mixed, t_local, t_mask, noise_mode="const")[0].clamp(-1, 1)
    torch.testing.assert_close(grid[2, 2], ref[0], atol=ATOL, rtol=0)
    with pytest.raises(ConfigError):
        style_mixing_grid(pipe, "a red heart", rows, cols, cutoff=g.num_ws + 1)
    with pytest.raises(ConfigError):
        style_mixing_grid(g, "a string needs a pipeline", rows, cols, cutoff=2)


def test_layer_text_synthesis_matches_plain_synthesis(pipe):
    g = pipe.generator
    e = pipe.encode(["a smiling cat face"])
    t_local, t_mask, t_global = g.text_condition(e.tokens, e.mask, e.pooled)
    ws = g.mapping(pipe.latents([4]), t_global)
    ref = g.synthesis(ws, t_local, t_mask, noise_mode="const")
    out = synthesize_with_layer_texts(g, ws, [(t_local, t_mask)] * g.num_ws)
    assert len(out) == len(ref)
    for a, b in zip(out, ref, strict=True):
        assert torch.equal(a, b)


def test_prompt_mixing_uses_each_prompts_text_and_styles(pipe):
    pipe = copy.deepcopy(pipe)  # hooks go on a private copy of the session's pipeline
    g = pipe.generator
    a, b = "a red heart", "a blue star with a long caption"
    plain = pipe.generate([a, b], [3, 3])
    whole = prompt_mixing(pipe, [(a, 0, None)], seed=3)
    torch.testing.assert_close(whole, plain[:1], atol=ATOL, rtol=0)
    # record the text every cross-attention block attends to
    seen: list[torch.Tensor] = []
    for m in g.synthesis.modules():
        if isinstance(m, CrossAttention):
            m.register_forward_hook(lambda mod, args, out: seen.append(args[1]))
    mixed = prompt_mixing(pipe, [(a, 0, 4), (b, 4, None)], seed=3)
    texts = {}
    for p in (a, b):
        e = pipe.encode([p])
        texts[p] = g.text_condition(e.tokens, e.mask, e.pooled)[0]
    # tiny: cross-attention at 8 px (styles 2, 3 -> prompt a) and 16 px (styles 5, 6 -> prompt b)
    assert len(seen) == 4
    for ctx, p in zip(seen, [a, a, b, b]):
        assert torch.equal(ctx, texts[p])
    assert mixed.shape == (1, 3, 16, 16)
    assert (mixed - plain[:1]).abs().max() > 1e-2 and (mixed - plain[1:]).abs().max() > 1e-2
    for bad in ([(a, 0, 4)], [(a, 0, 5), (b, 4, None)], [(a, 0, 0), (b, 0, None)], [(a, 0)]):
        with pytest.raises(ConfigError):
            prompt_mixing(pipe, bad, seed=3)
