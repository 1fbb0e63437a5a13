"""Benchmark the on-disk text-embedding cache: encode every emoji64 caption with minilm uncached / filling / cached.

Usage:
    python benchmarks/text_cache.py [../shared/data/emoji64.npz] [--repeats 3] [--read-repeats 3] [--batch-size 256] [--limit N]

Prints one row per pass with the median (and min/max) wall time over repeats, captions per second, and the speed-up
of the second cached pass over the uncached one. Each repeat of the filling pass starts from an empty cache directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _passes(encoder, captions: list[str], batch_size: int) -> int:
    n = 0
    for s in range(0, len(captions), batch_size):
        n += encoder.encode(captions[s : s + batch_size]).batch_size
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("npz", nargs="?", default="../shared/data/emoji64.npz", help="emoji64.npz with a `captions` array")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per pass (median reported)")
    ap.add_argument("--read-repeats", type=int, default=3, help="second (cached) passes per repeat (cheap)")
    ap.add_argument("--batch-size", type=int, default=256, help="captions per encode() call")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N captions (0: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    ap.add_argument("--cache-dir", default=None, help="where to put the cache (default: a temporary directory)")
    args = ap.parse_args(argv)

    from fastt2i.text import CachedTextEncoder, load_text_encoder

    path = Path(args.npz)
    if not path.is_file():
        print(f"error: no such file {path}", file=sys.stderr)
        return 2
    captions = [str(c) for c in np.load(path, allow_pickle=False)["captions"]]
    if args.limit:
        captions = captions[: args.limit]
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    encoder = load_text_encoder("minilm")
    lengths = [len(encoder.tokenizer(c)["input_ids"]) for c in captions[:2000]]
    print(
        f"{len(captions)} captions ({len(set(captions))} unique), minilm max_length={encoder.max_length}, "
        f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
        f"mean tokens/caption {np.mean(lengths):.1f} (first 2000)"
    )
    root = Path(args.cache_dir) if args.cache_dir else Path(tempfile.mkdtemp(prefix="fastt2i-text-bench-"))
    times: dict[str, list[float]] = {"uncached": [], "cached, first pass (fill)": [], "cached, second pass": []}
    try:
        _passes(encoder, captions[: args.batch_size], args.batch_size)  # warm-up
        for r in range(args.repeats):
            t0 = time.perf_counter()
            _passes(encoder, captions, args.batch_size)
            times["uncached"].append(time.perf_counter() - t0)

            cache_dir = root / f"r{r}"
            shutil.rmtree(cache_dir, ignore_errors=True)
            cached = CachedTextEncoder(encoder, cache_dir)
            t0 = time.perf_counter()
            _passes(cached, captions, args.batch_size)
            times["cached, first pass (fill)"].append(time.perf_counter() - t0)
            assert cached.stats["hits"] == 0 or len(set(captions)) < len(captions)

            for _ in range(args.read_repeats):
                cached = CachedTextEncoder(encoder, cache_dir)  # fresh wrapper, as a new process would be
                t0 = time.perf_counter()
                _passes(cached, captions, args.batch_size)
                times["cached, second pass"].append(time.perf_counter() - t0)
                assert cached.stats["encoder_calls"] == 0, cached.stats
            print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                  flush=True)
        size = sum(f.stat().st_size for f in (root / "r0").rglob("*.safetensors"))
        files = sum(1 for _ in (root / "r0").rglob("*.safetensors"))
    finally:
        if not args.cache_dir:
            shutil.rmtree(root, ignore_errors=True)

    base = statistics.median(times["uncached"])
    print()
    print(f"| pass | median s | min s | max s | captions/s | vs uncached |")
    print(f"| --- | ---: | ---: | ---: | ---: | ---: |")
    for k, v in times.items():
        med = statistics.median(v)
        print(f"| {k} | {med:.2f} | {min(v):.2f} | {max(v):.2f} | {len(captions) / med:,.0f} | {base / med:.1f}x |")
    print()
    print(f"cache: {files} files, {size / 2**20:.1f} MiB ({size / max(files, 1) / 1024:.1f} KiB per caption)")
    print(f"speed-up of the second cached pass over uncached: {base / statistics.median(times['cached, second pass']):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
