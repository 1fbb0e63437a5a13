"""Helpers for the training-core tests: run the toy trainer in a subprocess, build a tiny npz dataset."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TOY = HERE / "toy_trainer.py"


def toy_env() -> dict[str, str]:
    """Environment for toy subprocesses: one thread each, no stray distributed settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def toy_cmd(*args: object) -> list[str]:
    """The command line running the toy trainer script with `args`."""
    return [sys.executable, str(TOY), *map(str, args)]


def write_npz(path: Path, n: int = 48, size: int = 12, seed: int = 0) -> Path:
    """An emoji64-like .npz: images uint8 [N,size,size,3], captions str [N]."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    captions = np.array([f"toy image {i}" for i in range(n)])
    np.savez(path, images=images, captions=captions)
    return path
