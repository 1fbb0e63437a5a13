"""Benchmark make_loader: images/s of the in-memory path against streaming (decode per batch), workers 0 and 2.

Usage:
    python benchmarks/loader_speed.py [--n 2000] [--resolution 64] [--workers 0 2] [--repeats 5] [--images 4096]
        [--emoji ../shared/data/emoji64.npz] [--folder 0] [--batch-size 32]

Datasets: a synthetic npz of `--n` uint8 RGB images at `--resolution` (written to a temporary folder), optionally a
synthetic folder of `--folder` PNGs (80 x 64, so every image is resized and cropped), and `--emoji` if the file
exists. Each repeat opens the dataset afresh (so the in-memory store is rebuilt), times `make_loader` + the first
batch ("setup", which holds the decoding pass or the worker start-up), then `--images` images more ("img/s",
steady state, hflip on, shuffled). The table shows medians over repeats and the ratio to streaming with the same
number of workers. Repeats go round-robin over the cells (a busy spell of a shared machine then hits every cell);
before timing, the in-memory path is checked to give the streaming batches bit for bit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastt2i.data import make_loader, open_dataset


def synthetic_npz(path: Path, n: int, resolution: int) -> Path:
    """n smooth-ish random RGB images (uint8 [n,R,R,3]) with captions, in the emoji64 layout."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)  # upsampled, so it is not pure noise
    images = np.repeat(np.repeat(small, resolution // 8, axis=1), resolution // 8, axis=2)
    images = np.ascontiguousarray(images[:, :resolution, :resolution])
    np.savez(path, images=images, captions=np.array([f"synthetic image {i}" for i in range(n)]))
    return path


def synthetic_folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(root / f"{i:05d}.png")
        (root / f"{i:05d}.txt").write_text(f"synthetic image {i}")
    return root


def run_once(path: Path, resolution: int, *, in_memory: bool, workers: int, batch_size: int,
             images: int) -> tuple[float, float]:
    """(setup seconds, steady images/s) of one fresh dataset + loader."""
    ds = open_dataset(path, resolution=resolution, hflip=True)
    t0 = time.perf_counter()
    it = make_loader(ds, batch_size, seed=0, num_workers=workers, in_memory=in_memory)
    next(it)
    t1 = time.perf_counter()
    n = 0
    while n < images:
        n += len(next(it)["key"])
    t2 = time.perf_counter()
    it.close()
    return t1 - t0, n / (t2 - t1)


def check_equal(path: Path, resolution: int, batch_size: int, batches: int = 8) -> None:
    ds = open_dataset(path, resolution=resolution, hflip=True)
    a, b = make_loader(ds, batch_size, seed=0, in_memory=False), make_loader(ds, batch_size, seed=0, in_memory=True)
    for _ in range(batches):
        x, y = next(a), next(b)
        if not (torch.equal(x["image"], y["image"]) and x["key"] == y["key"] and x["caption"] == y["caption"]):
            raise SystemExit(f"{path}: in-memory batches differ from streaming ones")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="images in the synthetic npz")
    ap.add_argument("--resolution", type=int, default=64, help="side of the synthetic images and of the loader")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers values to compare")
    ap.add_argument("--repeats", type=int, default=5, help="fresh loaders per cell (median reported)")
    ap.add_argument("--images", type=int, default=4096, help="images timed per repeat after the first batch")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--emoji", default="../shared/data/emoji64.npz", help="emoji64.npz to measure too (if it exists)")
    ap.add_argument("--folder", type=int, default=0, help="also a synthetic folder of this many 80x64 PNGs")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="loader_speed_"))
    sets = [(f"synthetic npz {args.n} x {args.resolution}px", synthetic_npz(tmp / "synth.npz", args.n, args.resolution),
             args.resolution)]
    if args.folder:
        sets.append((f"synthetic folder {args.folder} PNG 80x64 -> 64px", synthetic_folder(tmp / "folder", args.folder),
                     64))
    if args.emoji and Path(args.emoji).is_file():
        sets.append(("emoji64.npz (12,067 x 64px)", Path(args.emoji), 64))
    print(f"batch {args.batch_size}, hflip on, {args.images} images timed per repeat, median of {args.repeats} "
          f"repeats, torch threads {torch.get_num_threads()}, {sys.platform}\n")
    print("| dataset | path | workers | setup s (median) | img/s (median) | min-max img/s | x streaming |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, path, res in sets:
        check_equal(path, res, args.batch_size)
        cells = [(workers, in_memory) for workers in args.workers for in_memory in (False, True)]
        runs: dict[tuple[int, bool], list[tuple[float, float]]] = {c: [] for c in cells}
        for _ in range(args.repeats):  # round-robin over the cells, so a busy spell of the machine hits all of them
            for workers, in_memory in cells:
                runs[workers, in_memory].append(run_once(path, res, in_memory=in_memory, workers=workers,
                                                         batch_size=args.batch_size, images=args.images))
        for workers, in_memory in cells:
            setup = statistics.median(r[0] for r in runs[workers, in_memory])
            rates = [r[1] for r in runs[workers, in_memory]]
            ratio = statistics.median(rates) / statistics.median(r[1] for r in runs[workers, False])
            print(f"| {name} | {'in memory' if in_memory else 'streaming'} | {workers} | {setup:.2f} | "
                  f"{statistics.median(rates):,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | {ratio:.1f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
