"""Training state files: atomic `torch.save` of plain state dicts, `weights_only=True` loads, newest-N pruning that
moves unreadable states aside, and the run-directory lock."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from fastt2i.errors import DataError, Fastt2iError

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no flock, runs go unlocked)
    fcntl = None  # type: ignore[assignment]

STATE_DIR = "state"
CORRUPT_DIR = "corrupt"
LOCK_FILE = ".lock"
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
    if path.stat().st_size == 0:
        raise DataError(f"cannot load training state {path}: the file is empty (its write was cut short)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle/zip errors of many kinds)
        if not state_readable(path):  # torch's own text for these ("Weights only load failed ...") misleads
            reason = "not a complete torch.save file (truncated or overwritten)"
        else:
            reason = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
        raise DataError(f"cannot load training state {path}: {reason}") from e
    if not isinstance(state, dict):
        raise DataError(f"training state {path} holds a {type(state).__name__}, expected a dict")
    return state


def state_readable(path: str | Path) -> bool:
    """A cheap check that a state file is whole: its zip directory (at the end of the file) reads and names a pickle.

    Truncated files fail it; damage inside a whole file shows only when `load_state` reads it.
    """
    try:
        with zipfile.ZipFile(path) as z:
            return any(name.endswith("data.pkl") for name in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def move_aside(path: str | Path) -> Path | None:
    """Move an unreadable state file into ``state/corrupt/`` (never over another file); returns its new path.

    None if `path` no longer exists.
    """
    path = Path(path)
    d = path.parent / CORRUPT_DIR
    d.mkdir(exist_ok=True)
    target, n = d / path.name, 1
    while target.exists():
        target, n = d / f"{path.name}.{n}", n + 1
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    return target


def prune_states(run_dir: str | Path, keep: int, *, keep_path: str | Path | None = None,
                 warn: Callable[[str], None] | None = None) -> list[Path]:
    """Delete all but the newest `keep` readable state files (keep=0 keeps all); also removes stale temp files.

    Newest first, states are checked with `state_readable` until `keep` good ones are found; unreadable ones among
    them are moved to ``state/corrupt/`` (not counted, not deleted). Older states are deleted.

    Args:
        run_dir: the run directory.
        keep: how many readable states to keep (0 = all, no checks).
        keep_path: a state never deleted nor checked (the one just written).
        warn: called with a one-line message for each state moved aside.
    Returns:
        The deleted paths.
    """
    d = Path(run_dir) / STATE_DIR
    keep_path = Path(keep_path) if keep_path is not None else None
    deleted: list[Path] = []
    if keep > 0:
        kept = 0
        for p in reversed(list_states(run_dir)):  # newest first
            if p == keep_path:
                kept += 1
            elif kept >= keep:
                p.unlink(missing_ok=True)
                deleted.append(p)
            elif state_readable(p):
                kept += 1
            elif (moved := move_aside(p)) is not None and warn is not None:
                warn(f"warning: training state {p} is unreadable; moved it to {moved}")
    if d.is_dir():
        for p in d.glob(".state-*.tmp*"):
            if not p.name.endswith(f".tmp{os.getpid()}"):
                p.unlink(missing_ok=True)
                deleted.append(p)
    return deleted


class RunDirBusyError(Fastt2iError):
    """Another process is training in the same run directory."""


_HELD_LOCKS: set[int] = set()  # lock fds of this process


def _drop_locks_in_child() -> None:
    """In a forked child (a data-loader worker), close the copies of the lock fds: closing a copy keeps the parent's
    lock, and the lock then dies with the parent instead of lingering while the workers notice it is gone."""
    for fd in _HELD_LOCKS:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_locks_in_child)


class RunDirLock:
    """An exclusive `flock` on ``run_dir/.lock``, which holds the owner's PID; one trainer per run directory.

    The kernel drops the lock when the process dies (even by SIGKILL), so a lock file left behind is never stale.

    Args:
        run_dir: the run directory (must exist).
    """

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunDirLock:
        """Take the lock without waiting; RunDirBusyError naming the holder's PID if another process has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunDirBusyError(
                    f"run dir {self.path.parent} is in use by another training process (PID {holder}); wait for it "
                    "to end or stop it, or use another --run-dir"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _HELD_LOCKS.add(fd)
        return self

    def release(self) -> None:
        """Drop the lock (the file stays; it only matters while locked)."""
        if self._fd is None:
            return
        _HELD_LOCKS.discard(self._fd)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
