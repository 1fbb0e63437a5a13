"""Training state files: atomic `torch.save` of plain state dicts, `weights_only=True` loads, newest-N pruning."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from fastt2i.errors import DataError

STATE_DIR = "state"
_NAME = re.compile(r"^state-(\d{8,})\.pt$")


def state_path(run_dir: str | Path, step: int) -> Path:
    """``run_dir/state/state-<step:08d>.pt``."""
    return Path(run_dir) / STATE_DIR / f"state-{step:08d}.pt"


def list_states(run_dir: str | Path) -> list[Path]:
    """Complete state files of a run, oldest first (temporary ``.state-*.tmp*`` files are ignored)."""
    d = Path(run_dir) / STATE_DIR
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def latest_state(run_dir: str | Path) -> Path | None:
    """The newest complete state file of a run, or None."""
    states = list_states(run_dir)
    return states[-1] if states else None


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover  (platforms without directory fds)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, write: Any) -> Path:
    """Call ``write(fileobj)`` on a temp file beside `path`, fsync it, then ``os.replace`` it onto `path`.

    A crash at any point leaves either the old file or the new one, never a partial file under `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def save_state(state: dict[str, Any], path: str | Path) -> Path:
    """Atomically `torch.save` a dict of plain state dicts and plain values (tensors, numbers, str, lists, dicts)."""
    return atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_state(path: str | Path, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a training state with ``torch.load(weights_only=True)``; a clear DataError if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training state {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle/zip errors of many kinds)
        raise DataError(f"cannot load training state {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    if not isinstance(state, dict):
        raise DataError(f"training state {path} holds a {type(state).__name__}, expected a dict")
    return state


def prune_states(run_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` state files (keep=0 keeps all); also removes stale temp files. Returns deleted."""
    d = Path(run_dir) / STATE_DIR
    deleted: list[Path] = []
    if keep > 0:
        for p in list_states(run_dir)[:-keep]:
            p.unlink(missing_ok=True)
            deleted.append(p)
    if d.is_dir():
        for p in d.glob(".state-*.tmp*"):
            if not p.name.endswith(f".tmp{os.getpid()}"):
                p.unlink(missing_ok=True)
                deleted.append(p)
    return deleted
