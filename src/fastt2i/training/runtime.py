"""Run-time helpers of the trainer: NaN/inf checks over a window of losses, seeding, the Accelerate object, dry runs."""

from __future__ import annotations

import functools
import math
import os
import random
import sys
from typing import Any, Mapping, TextIO

import numpy as np
import torch

from fastt2i.config import to_json
from fastt2i.errors import ConfigError, Fastt2iError


class NonFiniteLossError(Fastt2iError):
    """A loss term became NaN or infinite; the run stops without saving over the last good state."""


def check_finite(losses: Mapping[str, Any]) -> None:
    """Raise NonFiniteLossError naming every non-finite term of `losses` (floats or 0-d tensors)."""
    bad = []
    for name, value in losses.items():
        v = float(value.detach().float().mean()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            bad.append(f"{name}={v}")
    if bad:
        raise NonFiniteLossError(f"non-finite loss term(s): {', '.join(bad)}")


class LossWindow:
    """The loss terms of the steps since the last log, summed where they live: device tensors stay on the device.

    Reading a loss on the host every step (`.cpu()`, `.item()`, `float()`) stalls an accelerator's queue and, on CPU,
    costs a few dozen small ops a step; the window is read once per log step and before every save instead. The
    tradeoff: a non-finite device term is detected up to `log_every - 1` steps late (the sums stay NaN/inf once a
    term was), so a NaN run trains a few useless steps before it stops, but it still stops before any state is
    saved over the last good one, and `read` still names the step where it happened (a running count of the steps
    whose sums were still finite). Python-float terms are already on the host and checked at once.

    Args:
        device: where the sums live; world_size: processes whose sums `read` averages (one all-reduce).
    """

    def __init__(self, device: torch.device, world_size: int = 1):
        self.device, self.world_size = device, world_size
        self.dtype = torch.float32 if device.type == "mps" else torch.float64  # float64 sums: the old host sums
        self.reset()

    def reset(self) -> None:
        self.names: list[str] = []  # device terms, in order of first appearance
        self.sums: torch.Tensor | None = None  # [len(names)]
        self.finite_steps: torch.Tensor | None = None  # 0-d: steps whose running sums were all still finite
        self.host: dict[str, float] = {}
        self.first_step: int | None = None
        self.n = 0

    def add(self, losses: Mapping[str, Any], step: int) -> str | None:
        """Add one step's terms; returns the non-finite Python-float terms as 'name=value, ...' (None if none)."""
        if self.first_step is None:
            self.first_step = step
        self.n += 1
        names, vals, bad = [], [], []
        for k, v in losses.items():
            if isinstance(v, torch.Tensor):
                v = v.detach()
                names.append(k)
                vals.append((v if v.ndim == 0 else v.float().mean()).to(self.device))
            else:
                f = float(np.float32(v))  # logged as fp32, like the device terms
                self.host[k] = self.host.get(k, 0.0) + f
                if not math.isfinite(f):
                    bad.append(f"{k}={f}")
        if vals:
            vec = torch.stack(vals).to(self.dtype)  # [T]
            if self.sums is None:
                self.names, self.sums = names, vec
            elif names == self.names:
                self.sums += vec
            else:  # the terms changed between steps: a term missing in a step adds 0 for it
                new = [k for k in names if k not in self.names]
                if new:
                    self.names = self.names + new
                    self.sums = torch.cat([self.sums, self.sums.new_zeros(len(new))])
                index = {k: i for i, k in enumerate(self.names)}
                self.sums.index_add_(0, torch.tensor([index[k] for k in names], device=self.device), vec)
            ok = torch.isfinite(self.sums).all()  # once a sum is NaN/inf it stays so: the count stops there
            self.finite_steps = ok.long() if self.finite_steps is None else self.finite_steps + ok
        return ", ".join(bad) or None

    def read(self, reduce: bool = True) -> tuple[dict[str, float], str | None, int | None]:
        """(mean of every term over the window's steps and, with `reduce`, over processes; the non-finite terms as
        'name=value, ...' or None; the first step at which one was non-finite or None). One host sync; with `reduce`
        and several processes one all-reduce, which every process must reach at the same step."""
        if self.n == 0:
            return {}, None, None
        host = list(self.host)
        parts = [] if self.sums is None else [self.sums]
        if host:
            parts.append(torch.tensor([self.host[k] for k in host], dtype=self.dtype, device=self.device))
        vec = torch.cat(parts) if parts else torch.zeros(0, dtype=self.dtype, device=self.device)
        multi = reduce and self.world_size > 1
        if multi:
            vec = vec.clone()
            torch.distributed.all_reduce(vec)
            vec /= self.world_size
        values = vec.cpu().tolist()  # the one host sync of the window
        means = {k: v / self.n for k, v in zip(self.names + host, values)}
        bad = [f"{k}={v}" for k, v in means.items() if not math.isfinite(v)]
        if not bad:
            return means, None, None
        finite = self.finite_steps if self.finite_steps is not None else torch.tensor(self.n, device=self.device)
        if multi:  # the earliest step on any process (every process is in this branch: the sums are shared)
            finite = finite.clone()
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return means, ", ".join(bad), self.first_step + int(finite)


def dry_run(config: Any, file: TextIO | None = None) -> int:
    """Print the resolved config as JSON (what `run()` would write to run_dir/config.json); returns exit code 0."""
    print(to_json(config), file=file or sys.stdout)
    return 0


def step_seed(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed derived from (seed, step, rank); independent streams for neighbouring values."""
    a, b = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint32)
    return (int(a) << 31) ^ int(b)


@functools.lru_cache(maxsize=1)
def _has_accelerator_rng() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return bool(torch.cuda.is_available() or (mps is not None and mps.is_available())
                or (xpu is not None and xpu.is_available()))


def seed_everything(seed: int) -> None:
    """Seed Python `random`, NumPy's global RNG and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if _has_accelerator_rng():
        torch.manual_seed(seed)
    else:  # CPU only: skips the lazy per-backend seeding calls (about 1 ms each step)
        torch.random.default_generator.manual_seed(seed)


def make_accelerator(mixed_precision: str = "no", **kwargs: Any) -> Any:
    """An `accelerate.Accelerator`; under torchrun/`accelerate launch` without a GPU it runs multi-CPU over gloo.

    Accelerate only treats a multi-process launch on a CPU-only machine as distributed when `cpu=True` is passed,
    so that is set when WORLD_SIZE > 1 and CUDA is absent (checked with torch 2.13 / accelerate 1.15).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    kwargs.setdefault("cpu", world > 1 and not torch.cuda.is_available())
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", mixed_precision) != mixed_precision:
        # Accelerate keeps one precision per process; a later trainer (tests, notebooks, a CLI after an fp32 run)
        # may ask for another. Reset the precision state only: the process group (PartialState) stays.
        AcceleratorState._reset_state(reset_partial_state=False)
    try:
        return Accelerator(mixed_precision=mixed_precision, **kwargs)
    except (ValueError, RuntimeError) as e:
        raise ConfigError(f"cannot set up Accelerate (mixed_precision={mixed_precision!r}): {str(e).splitlines()[0]}") from e
