"""Run logging for the main process: TensorBoard scalars and image grids, log.jsonl, samples/*.png, a kimg progress bar;
on resume, the killed run's records past the resumed step are dropped so that no step is logged twice."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fastt2i.training.state import atomic_write_bytes
from fastt2i.utils.images import make_grid

LOG_FILES = ("log.jsonl", "metrics.jsonl")


def drop_records_after(path: str | Path, step: int) -> int:
    """Atomically rewrite a JSON-lines file without the records whose numeric "step" is past `step`.

    Other lines are kept as they are, except a last line cut short by a kill mid-write (no newline, not JSON).

    Args:
        path: the file (nothing happens if it does not exist).
        step: the last step to keep (the step of the state a run resumes from).
    Returns:
        The number of lines dropped.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            if line.endswith("\n"):
                kept.append(line)
            continue
        s = rec.get("step") if isinstance(rec, dict) else None
        if isinstance(s, (int, float)) and not isinstance(s, bool) and s > step:
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        atomic_write_bytes(path, lambda f: f.write("".join(kept).encode("utf-8")))
    return len(lines) - len(kept)


class RunLogger:
    """Writes what a run reports; every method is a no-op when `enabled` is False (non-main processes).

    Args:
        run_dir: the run directory (writes tb/, log.jsonl, metrics.jsonl, samples/).
        total_kimg: training length, for the progress bar.
        start_kimg: kimg already done (resume).
        enabled: False on processes other than the main one.
        tensorboard: also write TensorBoard event files.
        progress: show a tqdm bar (kimg, kimg/s, ETA).
        resume_step: the step the run starts from; log.jsonl / metrics.jsonl records and TensorBoard events past it
            (a killed run's tail) are dropped. None keeps everything.
    """

    def __init__(
        self,
        run_dir: str | Path,
        total_kimg: float,
        start_kimg: float = 0.0,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        progress: bool = True,
        resume_step: int | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.dropped = 0  # records dropped past resume_step
        self._tb = None
        self._bar = None
        self._t0 = time.perf_counter()
        self._last_t = self._t0
        self._last_kimg = start_kimg
        if not enabled:
            return
        if resume_step is not None:
            self.dropped = sum(drop_records_after(self.run_dir / name, resume_step) for name in LOG_FILES)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1  # TensorBoard hides older events from here on
            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)
        if progress:
            self._bar = tqdm(
                total=round(total_kimg, 3),
                initial=round(start_kimg, 3),
                unit="kimg",
                dynamic_ncols=True,
                file=sys.stderr,
                bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} kimg [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]",
            )

    def advance(self, kimg: float) -> None:
        """Move the progress bar to `kimg` done."""
        if self._bar is not None:
            target = min(round(kimg, 6), self._bar.total)
            self._bar.update(target - self._bar.n)

    def scalars(self, step: int, kimg: float, values: dict[str, float]) -> dict[str, float]:
        """Log `values` plus throughput at `step`; returns what was written (also one line of log.jsonl)."""
        if not self.enabled:
            return {}
        now = time.perf_counter()
        dt = max(now - self._last_t, 1e-9)
        rec = {"step": step, "kimg": round(kimg, 6), "kimg_per_s": (kimg - self._last_kimg) / dt,
               "time_s": now - self._t0, **{k: float(v) for k, v in values.items()}}
        self._last_t, self._last_kimg = now, kimg
        if self._tb is not None:
            for k, v in rec.items():
                if k not in ("step",) and math.isfinite(v):
                    self._tb.add_scalar(k if "/" in k else f"train/{k}", v, step)
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self._bar is not None:
            shown = {k: f"{v:.3g}" for k, v in list(values.items())[:4]}
            self._bar.set_postfix(shown, refresh=False)
        return rec

    def metrics(self, step: int, kimg: float, values: dict[str, Any]) -> None:
        """Append evaluation results to metrics.jsonl and TensorBoard (numbers only go to TensorBoard)."""
        if not self.enabled:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "kimg": round(kimg, 6), **values}) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"metrics/{k}", v, step)

    def images(self, step: int, kimg: float, images: torch.Tensor) -> Path | None:
        """Save a [N,3,H,W] grid in [-1,1] as samples/samples-<nimg>.png and to TensorBoard; returns the PNG path."""
        if not self.enabled:
            return None
        if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3):
            raise ValueError(f"sample_grid() must return [N,3,H,W] in [-1,1], got {getattr(images, 'shape', images)}")
        grid = make_grid(images)
        path = self.run_dir / "samples" / f"samples-{round(kimg * 1000):09d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        if self._tb is not None:
            self._tb.add_image("samples", np.asarray(grid), step, dataformats="HWC")
        return path

    def message(self, text: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
