"""Per-seed noise (row i from a CPU generator seeded with seeds[i]: same at any batch size), seed checks and lists."""

from __future__ import annotations

import operator
import re
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from fastt2i.errors import ConfigError

MAX_SEED = 2**63 - 1
MAX_SEEDS = 1_000_000


def seed_noise(
    seeds: Sequence[int],
    shape: tuple[int, ...],
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard normal noise [N, *shape], row i drawn on CPU from ``torch.Generator().manual_seed(seeds[i])``.

    Args:
        seeds: one integer in [0, 2**63-1] per row (int, NumPy integer, integer tensor: `check_seed`).
        shape: shape of one row, e.g. (z_dim,) or (C, H, W).
        device: where the result goes (drawing always happens on CPU, so results match across devices).
        dtype: result dtype (drawn in float32 then cast).
    """
    seeds = check_seeds(seeds)
    if not seeds:
        raise ConfigError("seed_noise needs at least one seed")
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ConfigError(f"noise shape must not have negative sizes, got {shape}")
    rows = [torch.randn(shape, generator=torch.Generator(device="cpu").manual_seed(s), dtype=torch.float32)
            for s in seeds]
    out = torch.stack(rows)  # [N, *shape]
    return out.to(device=device, dtype=dtype or torch.float32)


def check_seed(seed: Any) -> int:
    """`seed` as a plain int: any integral type (int, NumPy integers, 0-d integer arrays and tensors) in
    [0, 2**63-1]; bools, floats, strings and out-of-range values raise ConfigError."""
    if isinstance(seed, (bool, np.bool_)) or getattr(seed, "dtype", None) in (torch.bool, np.bool_):
        value = None
    else:
        try:
            value = operator.index(seed)  # exact integers only: 1.0, np.float64 and '3' refuse
        except TypeError:
            value = None
    if value is None or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"seeds must be integers in [0, 2**63-1], got {seed!r}")
    return int(value)


def check_seeds(seeds: Iterable[Any]) -> list[int]:
    """Seeds as a list of plain ints (`check_seed` on each), e.g. for storing in configs, JSON or metrics records."""
    return [check_seed(s) for s in seeds]


_PART = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """Parse a seed list such as ``"0-7,10,12-13"`` (inclusive ranges, order kept) into integers.

    Args:
        text: comma-separated non-negative integers or ``a-b`` ranges with a <= b.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("empty seed list: give seeds like '0-7,10,12-13'")
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = _PART.match(part)
        if not m:
            raise ConfigError(f"bad seed {part!r} in {text!r}: use non-negative integers and ranges like '0-7,10'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ConfigError(f"bad seed range {part!r} in {text!r}: the end is below the start")
        if hi > MAX_SEED:
            raise ConfigError(f"seed {hi} in {text!r} is above 2**63-1")
        if len(seeds) + hi - lo + 1 > MAX_SEEDS:
            raise ConfigError(f"seed list {text!r} has more than {MAX_SEEDS:,} seeds")
        seeds.extend(range(lo, hi + 1))
    return seeds
