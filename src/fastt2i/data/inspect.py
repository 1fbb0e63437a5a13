"""Dataset inspection: count, original-size histogram, caption-length statistics, conversion/skip counts, a grid."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import torch
from tqdm import tqdm

from fastt2i.data.stats import SIZE, DataStats
from fastt2i.utils.images import save_grid


def iter_items(ds: Any, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Every item (good samples and skip markers) of a dataset once, in order, at most `limit` items."""
    if getattr(ds, "is_iterable", False):
        src: Any = iter(ds.configure(infinite=False, shuffle=False))
    else:
        src = (ds[i] for i in range(len(ds)))
    for n, it in enumerate(src):
        if limit is not None and n >= limit:
            return
        yield it


def _describe(values: list[int]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "mean": 0, "max": 0}
    return {"min": min(values), "median": statistics.median(values), "mean": round(statistics.fmean(values), 2),
            "max": max(values)}


def inspect_dataset(ds: Any, *, limit: int | None = None, grid: str | Path | None = None, grid_n: int = 32,
                    progress: bool = True) -> dict[str, Any]:
    """Read a dataset once and summarise it.

    Args:
        ds: from `open_dataset`.
        limit: read at most this many items.
        grid: write a captioned sample grid PNG of the first `grid_n` good samples here.
        progress: show a tqdm bar.

    Returns:
        {"count", "stats" (DataStats), "sizes" (Counter of "WxH"), "words", "chars" (min/median/mean/max), "grid"}.
    """
    stats = DataStats()
    sizes: Counter = Counter()
    words, chars = [], []
    imgs: list[torch.Tensor] = []
    caps: list[str] = []
    total = None if getattr(ds, "is_iterable", False) else len(ds)
    if total is not None and limit is not None:
        total = min(total, limit)
    for it in tqdm(iter_items(ds, limit), total=total, desc="inspect", unit="img", disable=not progress):
        if not stats.update(it):
            continue
        w, h = it[SIZE]
        sizes[f"{w}x{h}"] += 1
        words.append(len(it["caption"].split()))
        chars.append(len(it["caption"]))
        if len(imgs) < grid_n:
            imgs.append(it["image"])
            caps.append(it["caption"])
    out_grid = None
    if grid and imgs:
        out_grid = save_grid(torch.stack(imgs), grid, captions=caps)
    return {"count": stats.ok, "read": stats.read, "stats": stats, "sizes": sizes, "words": _describe(words),
            "chars": _describe(chars), "grid": out_grid}


def format_report(info: dict[str, Any], name: str = "", top: int = 10) -> str:
    """Human-readable text for `fastt2i data inspect`."""
    st: DataStats = info["stats"]
    lines = [f"dataset: {name}" if name else "dataset:",
             f"samples: {info['count']} usable of {info['read']} read"]
    sizes: Counter = info["sizes"]
    if sizes:
        lines.append(f"original sizes ({len(sizes)} distinct, top {min(top, len(sizes))}):")
        for s, n in sizes.most_common(top):
            lines.append(f"  {s:>11}  {n}")
    for what in ("words", "chars"):
        d = info[what]
        lines.append(f"caption {what}: min {d['min']}  median {d['median']}  mean {d['mean']}  max {d['max']}")
    lines.append("converted: " + (", ".join(f"{k} {v}" for k, v in sorted(st.converted.items())) or "none"))
    sk = ", ".join(f"{k} {v}" + (f" (e.g. {', '.join(st.examples.get(k, []))})" if st.examples.get(k) else "")
                   for k, v in sorted(st.skipped.items()))
    lines.append("skipped: " + (sk or "none"))
    if info.get("grid"):
        lines.append(f"grid: {info['grid']}")
    return "\n".join(lines)
