"""Metric results as JSON lines in `run_dir/metrics.jsonl` (append, one record per metric and evaluation)."""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from fastt2i.errors import ConfigError, DataError
from fastt2i.utils.paths import check_output_dir

METRICS_FILE = "metrics.jsonl"


def now_iso() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # torch / numpy scalars
        return _jsonable(v.item())
    if isinstance(v, Path):
        return str(v)
    return v


def check_metrics_destination(run_dir: str | Path, flag: str = "run_dir") -> Path:
    """Refuse (ConfigError), before anything is computed, a `run_dir` whose metrics.jsonl cannot be appended to.

    Refused: `run_dir` (or an ancestor) is a file; `run_dir/metrics.jsonl` is a directory or cannot be opened for
    appending; no file can be created in `run_dir` (or in its nearest existing ancestor). Nothing is created or changed.

    Args:
        run_dir: the run directory.
        flag: what to call it in the message (e.g. "--run-dir").
    Returns:
        The path of the metrics file.
    """
    d = check_output_dir(run_dir, flag=flag)
    path = d / METRICS_FILE
    if path.is_dir():
        raise ConfigError(f"{flag} {run_dir}: {path} is a directory, not the metrics file")
    if path.is_file():
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as e:
            raise ConfigError(f"{flag} {run_dir}: cannot write to {path} ({e.strerror or e})") from None
    return path


def append_metrics(run_dir: str | Path, records: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> Path:
    """Append records (each a dict with at least `metric` and `value`) as JSON lines to `run_dir/metrics.jsonl`.

    Each line is written with one `write` call in append mode and fsynced, so concurrent appenders and crashes
    never leave half records between whole lines. A missing `time` is filled in.

    Args:
        run_dir: the run directory (created if missing).
        records: one record or an iterable of records.
    Returns:
        The path of the metrics file.
    """
    recs = [records] if isinstance(records, Mapping) else list(records)
    path = Path(run_dir).expanduser() / METRICS_FILE
    lines = []
    for r in recs:
        if "metric" not in r or "value" not in r:
            raise DataError(f"a metrics record needs 'metric' and 'value', got keys {sorted(r)}")
        rec = {"time": now_iso(), **_jsonable(dict(r))}
        lines.append(json.dumps(rec, sort_keys=False) + "\n")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        return path
    except OSError as e:  # a file where the run directory should be, metrics.jsonl a directory, no permission, ...
        error = e
    check_metrics_destination(run_dir)  # raises the precise reason when it is one of those
    raise ConfigError(f"cannot append metrics to {path}: {error.strerror or error}")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of `run_dir/metrics.jsonl` (empty list when the file does not exist)."""
    path = Path(run_dir).expanduser() / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
