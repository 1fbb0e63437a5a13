"""Per-seed noise is independent of batch composition; seed lists parse with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastt2i.errors import ConfigError
from fastt2i.noise import check_seeds, parse_seeds, seed_noise


def test_seed_gives_the_same_row_at_any_batch_size():
    alone = seed_noise([5], (4, 3, 3))
    batch = seed_noise(list(range(8)), (4, 3, 3))
    assert alone.shape == (1, 4, 3, 3) and batch.shape == (8, 4, 3, 3)
    assert torch.equal(alone[0], batch[5])
    assert torch.equal(seed_noise([9, 5, 5], (4, 3, 3))[1], alone[0])
    assert not torch.equal(batch[0], batch[1])
    assert torch.equal(alone[0], torch.randn((4, 3, 3), generator=torch.Generator().manual_seed(5)))


def test_device_and_dtype():
    x = seed_noise([1, 2], (16,), device="cpu", dtype=torch.float64)
    assert x.dtype == torch.float64 and x.device.type == "cpu"
    assert torch.equal(x.float(), seed_noise([1, 2], (16,)))
    if torch.cuda.is_available():  # drawn on CPU, so identical on the GPU
        assert torch.equal(seed_noise([1, 2], (16,), device="cuda").cpu(), seed_noise([1, 2], (16,)))


@pytest.mark.parametrize("bad", [[], [-1], [True], [1.5], [2**63], [np.bool_(True)], [np.float64(1.0)],
                                 [np.uint64(2**63)], [np.int64(-1)], [torch.tensor(True)], [torch.tensor(1.0)], ["3"],
                                 [None]])
def test_bad_seeds(bad):
    with pytest.raises(ConfigError):
        seed_noise(bad, (2,))
    if bad:
        with pytest.raises(ConfigError, match="seeds must be integers"):
            check_seeds(bad)


def test_numpy_and_torch_integer_seeds_are_accepted_as_plain_ints():
    seeds = [np.int64(5), np.uint8(3), np.int32(0), torch.tensor(7), np.array(9), 2**63 - 1]
    assert torch.equal(seed_noise(seeds, (4,)), seed_noise([5, 3, 0, 7, 9, 2**63 - 1], (4,)))
    assert torch.equal(seed_noise(np.arange(3), (4,)), seed_noise([0, 1, 2], (4,)))
    checked = check_seeds(seeds)
    assert checked == [5, 3, 0, 7, 9, 2**63 - 1] and all(type(s) is int for s in checked)


def test_parse_seeds():
    assert parse_seeds("0-7,10,12-13") == [0, 1, 2, 3, 4, 5, 6, 7, 10, 12, 13]
    assert parse_seeds(" 3 , 1-2 ") == [3, 1, 2]
    assert parse_seeds("42") == [42]
    assert parse_seeds("5-5") == [5]


@pytest.mark.parametrize("text,msg", [("", "empty seed list"), ("1,,2", "bad seed ''"), ("a", "bad seed 'a'"),
                                      ("7-3", "end is below the start"), ("-3", "bad seed '-3'"),
                                      ("0-99999999", "more than"), ("1.5", "bad seed '1.5'")])
def test_parse_seeds_errors(text, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_seeds(text)
