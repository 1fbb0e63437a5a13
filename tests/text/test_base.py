"""TextEmbedding container semantics (to, select, cat, trim, validation) and masked_mean."""

import pytest
import torch

from fastt2i.errors import DataError
from fastt2i.text import TextEmbedding, masked_mean
from fastt2i.text.base import check_texts


def _emb(lengths, L=None, D=4, P=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = L or max(lengths)
    mask = torch.arange(L)[None] < torch.tensor(lengths)[:, None]
    tokens = torch.randn(len(lengths), L, D, generator=g) * mask[..., None]
    return TextEmbedding(tokens=tokens, mask=mask, pooled=torch.randn(len(lengths), P, generator=g))


def test_select_and_getitem_keep_batch_dim():
    e = _emb([3, 1, 2])
    one = e[1]
    assert one.tokens.shape == (1, 3, 4) and one.mask.tolist() == [[True, False, False]]
    assert torch.equal(one.pooled, e.pooled[1:2])
    sub = e.select([2, 0])
    assert torch.equal(sub.tokens, e.tokens[[2, 0]]) and len(sub) == 2
    assert e.select(torch.tensor([True, False, True])).batch_size == 2
    assert e[-1].lengths.tolist() == [2]
    assert e[0:2].lengths.tolist() == [3, 1]


def test_cat_pads_to_longest_and_trim():
    a, b = _emb([2, 1], seed=1), _emb([5], seed=2)
    c = TextEmbedding.cat([a, b])
    assert c.tokens.shape == (3, 5, 4) and c.lengths.tolist() == [2, 1, 5]
    assert torch.equal(c.tokens[:2, :2], a.tokens) and c.tokens[:2, 2:].abs().sum() == 0
    assert not c.mask[:2, 2:].any()
    assert c.select([0, 1]).trim().equal(a)
    with pytest.raises(ValueError):
        TextEmbedding.cat([])


def test_to_casts_floats_only():
    e = _emb([2, 2]).to(torch.float16)
    assert e.tokens.dtype == torch.float16 and e.pooled.dtype == torch.float16 and e.mask.dtype == torch.bool
    e2 = e.to("cpu", dtype=torch.float64)
    assert e2.dtype == torch.float64 and e2.device.type == "cpu"


def test_validation_errors():
    with pytest.raises(ValueError, match="bool"):
        TextEmbedding(tokens=torch.zeros(1, 2, 3), mask=torch.ones(1, 2), pooled=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="disagree"):
        TextEmbedding(tokens=torch.zeros(1, 2, 3), mask=torch.ones(1, 3, dtype=torch.bool), pooled=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="tokens"):
        TextEmbedding(tokens=torch.zeros(2, 3), mask=torch.ones(2, dtype=torch.bool), pooled=torch.zeros(2, 3))


def test_masked_mean_ignores_padding():
    tokens = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [0.0], [0.0]]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mean(tokens, mask).flatten().tolist() == [2.0, 2.0]


def test_check_texts():
    assert check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(DataError, match="single string"):
        check_texts("a cat")
    with pytest.raises(DataError, match="int"):
        check_texts(["a", 3])
