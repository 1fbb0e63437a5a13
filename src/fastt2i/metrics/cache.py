"""On-disk cache of real-image feature statistics, keyed by dataset identity, split, resolution and extractor."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from fastt2i.errors import DataError
from fastt2i.metrics.stats import FeatureStats

CACHE_VERSION = 1


def cache_root() -> Path:
    """`$FASTT2I_CACHE` if set, else `~/.cache/fastt2i`."""
    env = os.environ.get("FASTT2I_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fastt2i"


def stats_dir(root: str | Path | None = None) -> Path:
    """Where statistics files live: `<cache_root>/stats`."""
    return (Path(root) if root is not None else cache_root()) / "stats"


def dataset_fingerprint(path: str | Path, content_hash: bool = False) -> dict[str, Any]:
    """Identity of a dataset on disk: resolved path plus size/mtime of its files (or a sha256 of their bytes).

    A directory is walked recursively (names, sizes, mtimes), so adding, removing or touching a file invalidates
    the cached statistics. `content_hash=True` hashes contents instead of mtimes (stable across copies, slower).

    Args:
        path: a dataset file (npz, parquet, tar shard, ...) or directory.
        content_hash: hash file contents rather than trusting mtimes.
    """
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise DataError(f"dataset path {p} does not exist")
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    total = 0
    for f in files:
        st = f.stat()
        total += st.st_size
        rel = f.relative_to(p) if p.is_dir() else f.name
        if content_hash:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            h.update(f"{rel}:{st.st_size}\n".encode())
        else:
            h.update(f"{rel}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return {"path": str(p), "files": len(files), "bytes": total,
            ("content_sha256" if content_hash else "stat_sha256"): h.hexdigest()[:16]}


def stats_key_hash(key: Mapping[str, Any]) -> str:
    """Stable hash of a JSON-able key (sorted keys), 24 hex characters."""
    blob = json.dumps({"version": CACHE_VERSION, **key}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_stats(key: Mapping[str, Any], stats: FeatureStats, root: str | Path | None = None) -> Path:
    """Write `<hash>.safetensors` (n, mean, m2, optional features) and a `<hash>.json` sidecar with the key, atomically."""
    from safetensors.torch import save

    d = stats_dir(root)
    h = stats_key_hash(key)
    path = d / f"{h}.safetensors"
    _atomic_write_bytes(path, save(stats.state_dict(), metadata={"key": json.dumps(dict(key), sort_keys=True, default=str)}))
    side = {"key": dict(key), "n": stats.n, "dim": stats.dim, "features": stats.has_features, "version": CACHE_VERSION}
    _atomic_write_bytes(d / f"{h}.json", (json.dumps(side, indent=2, sort_keys=True, default=str) + "\n").encode())
    return path


def load_stats(key: Mapping[str, Any], root: str | Path | None = None) -> FeatureStats | None:
    """The cached statistics for `key`, or None when absent or unreadable (a corrupt file is treated as a miss)."""
    from safetensors.torch import load_file

    path = stats_dir(root) / f"{stats_key_hash(key)}.safetensors"
    if not path.is_file():
        return None
    try:
        return FeatureStats.from_state_dict(load_file(str(path)))
    except Exception:
        return None


def cached_stats(
    key: Mapping[str, Any], compute: Callable[[], FeatureStats], root: str | Path | None = None
) -> tuple[FeatureStats, bool]:
    """Load the statistics for `key` or compute and save them. Returns (stats, was_cached).

    Args:
        key: JSON-able identity: dataset fingerprint, split, resolution, extractor identity, sample count, ...
        compute: builds the statistics on a miss.
        root: cache root (default `cache_root()`).
    """
    hit = load_stats(key, root)
    if hit is not None:
        return hit, True
    stats = compute()
    save_stats(key, stats, root)
    return stats, False
