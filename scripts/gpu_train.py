"""Train the emoji64 models on one GPU within a time budget and write their exports (issue: bundled models).

    python scripts/gpu_train.py --data emoji64.npz --out runs/gpu --minutes 10
    python scripts/gpu_train.py --data emoji64.npz --out runs/gpu --split vqgan=1.5,paella=3.5,stylegan-t=5 \
        --preset stylegan-t=emoji64 --set stylegan-t:train.batch_size=128 --set paella:train.batch_size=128
    python scripts/gpu_train.py --data toy.npz --out /tmp/gpu --minutes 0.5 --tiny     # the CPU check (tiny presets)
    python scripts/gpu_train.py --data emoji64.npz --data-for upsampler=emoji256 --split gigagan=4,upsampler=6 \
        --out runs/gpu --set upsampler:crop=0 --set upsampler:train.batch_size=64      # the 64 -> 256 px upsampler

Each family in the split runs as `fastt2i train FAMILY --preset P` in its own process, from the dataset held in
memory on the training device (`train.in_memory=true`, no loader workers), bf16 autocast (`--precision`), for its
share of the minutes; then it gets SIGTERM (the trainer finishes the step and saves its state) and its newest state is
exported with `fastt2i export FAMILY`. Paella trains on the VQGAN this script just trained (vqgan must come first in
the split). The summary (kimg reached, seconds, export directories) is printed and written to OUT/summary.json.
Rerunning continues each run from its state (the runs resume) with a new budget.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_SPLIT = "vqgan=1.5,paella=3,gigagan=2.5,stylegan-t=3"  # minutes of a 10-minute budget
DEFAULT_PRESET = {"upsampler": "emoji"}  # families whose emoji preset is not called emoji64


def parse_pairs(text: str, what: str) -> dict[str, str]:
    out = {}
    for item in (x.strip() for x in text.split(",") if x.strip()):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--{what}: {item!r} is not FAMILY=VALUE")
        out[key.strip()] = value.strip()
    return out


def fastt2i(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastt2i", *args]


def train_for(family: str, seconds: float, argv: list[str], log: Path) -> dict:
    """Run `fastt2i train` for `seconds`, then SIGTERM it and wait for its state; returns what it reached."""
    t0 = time.perf_counter()
    stopped = "finished"
    with log.open("a") as f:
        proc = subprocess.Popen(fastt2i("train", family, *argv), stdout=f, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the trainer saves its state after the current step
            proc.wait()
            stopped = "budget"
    if stopped == "finished" and proc.returncode != 0:
        stopped = f"failed (exit {proc.returncode}; see {log})"
    return {"seconds": round(time.perf_counter() - t0, 1), "stopped": stopped}


def last_kimg(run_dir: Path) -> float | None:
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    return rows[-1].get("kimg") if rows else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the emoji64 .npz (or any dataset fastt2i reads)")
    ap.add_argument("--data-for", default="", metavar="FAMILY=PATH,...",
                    help="another dataset for some families (the upsampler trains on `fastt2i data emoji --size 256`)")
    ap.add_argument("--out", required=True, type=Path, help="root of the run directories and exports")
    ap.add_argument("--minutes", type=float, default=10.0, help="total budget; the split's shares scale to it")
    ap.add_argument("--split", default=DEFAULT_SPLIT, help="FAMILY=MINUTES,... in training order")
    ap.add_argument("--preset", default="", help="FAMILY=PRESET,... (default: emoji64; --tiny: tiny)")
    ap.add_argument("--set", action="append", default=[], metavar="FAMILY:KEY=VALUE", help="a config override")
    ap.add_argument("--precision", default="bf16", choices=["no", "bf16", "fp16"])
    ap.add_argument("--tiny", action="store_true", help="tiny presets (the CPU check of this script)")
    args = ap.parse_args(argv)
    split = {k: float(v) for k, v in parse_pairs(args.split, "split").items()}
    if "paella" in split and "vqgan" in split and list(split).index("paella") < list(split).index("vqgan"):
        raise SystemExit("--split: vqgan must come before paella (Paella trains on the VQGAN trained here)")
    presets = {**{f: ("tiny" if args.tiny else DEFAULT_PRESET.get(f, "emoji64")) for f in split},
               **parse_pairs(args.preset, "preset")}
    data_for = parse_pairs(args.data_for, "data-for")
    overrides: dict[str, list[str]] = {}
    for item in args.set:
        family, sep, kv = item.partition(":")
        if not sep or "=" not in kv:
            raise SystemExit(f"--set {item!r} is not FAMILY:KEY=VALUE")
        overrides.setdefault(family, []).append(kv)
    scale = args.minutes / sum(split.values())
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for family, minutes in split.items():
        run = args.out / family
        sets = ["train.in_memory=true", "train.num_workers=0", f"train.mixed_precision={args.precision}",
                *overrides.get(family, [])]
        if family == "paella" and "vqgan" in split:
            sets.append(f"vqgan={args.out / 'vqgan' / 'export'}")
        data = data_for.get(family, args.data)
        argv_train = ["--preset", presets[family], "--data", data, "--run-dir", str(run), "--kimg", "1000000",
                      "--no-progress"] + [x for s in sets for x in ("--set", s)]
        print(f"{family}: {minutes * scale:.2f} min, preset {presets[family]}", flush=True)
        result = train_for(family, minutes * scale * 60, argv_train, args.out / f"{family}.log")
        export = run / "export"
        done = subprocess.run(fastt2i("export", family, "--run-dir", str(run), "--out", str(export), "--overwrite"),
                              capture_output=True, text=True)
        result.update(kimg=last_kimg(run), export=str(export) if done.returncode == 0 else None,
                      export_error=done.stderr.strip()[-500:] if done.returncode else None)
        summary[family] = result
        print(f"  {json.dumps(result)}", flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0 if all(r["export"] and not r["stopped"].startswith("failed") for r in summary.values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
