"""CLIP score formula (100 * max(cos, 0)) and its running accumulator."""

import pytest
import torch

from fastt2i.errors import DataError
from fastt2i.metrics.clip_score import ClipScoreAccumulator, clip_score, clip_score_per_sample


def test_formula_and_range():
    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 3.0]])
    txt = torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])
    s = clip_score_per_sample(img, txt)
    torch.testing.assert_close(s, torch.tensor([100.0, 0.0, 0.0, 100 / 2**0.5], dtype=torch.float64))
    assert clip_score(img, txt) == pytest.approx(float(s.mean()))
    g = torch.Generator().manual_seed(0)
    r = clip_score_per_sample(torch.randn(100, 8, generator=g), torch.randn(100, 8, generator=g))
    assert (r >= 0).all() and (r <= 100).all() and (r == 0).any()


def test_accumulator_matches_one_shot():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g)
    acc = ClipScoreAccumulator()
    for s in range(0, 50, 8):
        acc.update(a[s : s + 8], b[s : s + 8])
    full = clip_score_per_sample(a, b)
    assert acc.n == 50
    assert acc.mean == pytest.approx(float(full.mean()))
    assert acc.std == pytest.approx(float(full.std(unbiased=False)), rel=1e-6)


def test_shape_mismatch():
    with pytest.raises(DataError):
        clip_score(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(DataError):
        _ = ClipScoreAccumulator().mean


def test_caption_retrieval_ranks_distinct_prompts_with_ties_against():
    from fastt2i.metrics import caption_retrieval

    words = ["cat", "dog", "sun", "car"]
    table = {w: torch.eye(4)[i] for i, w in enumerate(words)}

    def encode(prompts):
        return torch.stack([table[p] for p in prompts])

    # image 0 is exactly "cat"; image 1 (for "dog") is closest to "sun", then "dog"; image 2 ("sun") ties sun/dog
    images = torch.stack([table["cat"], 0.9 * table["sun"] + 0.5 * table["dog"], table["sun"] + table["dog"],
                          table["cat"]])
    prompts = ["cat", "dog", "sun", "cat"]  # a repeated prompt is one candidate
    got = caption_retrieval(images, prompts, encode, ks=(1, 2))
    assert got == {"top1": 0.5, "top2": 1.0, "candidates": 3.0}
