"""GigaGAN Table 1 ablation on one dataset: train each row for the same budget, then FD and CLIP score; prints a table.

    python benchmarks/gigagan_ablation.py --data ../shared/data/emoji64.npz --kimg 20 --rows 1,8 --out ~/runs/ablation

Rows (presets `ablation-N-*` of `fastt2i train gigagan`): 1 StyleGAN2 baseline, 2 +attention, 3 +matching-aware loss,
4 +adaptive kernels, 5 +depth, 6 +CLIP loss, 7 +multi-scale training, 8 +vision-aided D. Each run is an ordinary
resumable run directory (rerun the script to continue); metrics use the N = --num protocol of docs/metrics.md
(validation prompts, emoji-net FD, emoji-clip CLIP score) so they compare with its reference rows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fastt2i.cli import main as cli
from fastt2i.training.presets import families
from fastt2i.evaluation import evaluate_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--out", default="runs/gigagan-ablation", help="parent of the run directories")
    ap.add_argument("--rows", default="1,2,3,4,5,6,7,8", help="comma-separated Table 1 rows")
    ap.add_argument("--kimg", type=float, default=20.0, help="the same training budget for every row")
    ap.add_argument("--num", type=int, default=646, help="generated images per evaluation")
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every row (KEY=VALUE)")
    args = ap.parse_args()
    presets = {int(name.split("-")[1]): name for name in families()["gigagan"].presets if name.startswith("ablation-")}
    rows = []
    for r in [int(x) for x in args.rows.split(",")]:
        preset, run_dir = presets[r], Path(args.out).expanduser() / presets[r]
        t0 = time.perf_counter()
        overrides = [x for s in ["train.sample_kimg=0", "train.eval_kimg=0", *args.set] for x in ("--set", s)]
        rc = cli(["train", "gigagan", "--preset", preset, "--data", args.data, "--run-dir", str(run_dir),
                  "--kimg", str(args.kimg), "--no-progress", *overrides])
        train_s = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"{preset}: training failed (exit {rc})")
        t0 = time.perf_counter()
        res = evaluate_source(str(run_dir), args.data, metrics="fd_emojinet,clipscore_emojiclip", num=args.num,
                              run_dir=run_dir, progress=False)
        rows.append({"row": r, "preset": preset, "kimg": args.kimg, "train_s": train_s,
                     "eval_s": time.perf_counter() - t0, **res})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| row | preset | kimg | fd_emojinet_{args.num} | clipscore_emojiclip_{args.num} | train s | eval s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for x in rows:
        fd = next(v for k, v in x.items() if k.startswith("fd_"))
        cs = next(v for k, v in x.items() if k.startswith("clipscore_"))
        print(f"| {x['row']} | {x['preset']} | {x['kimg']:g} | {fd:.2f} | {cs:.2f} | {x['train_s']:.0f} | {x['eval_s']:.0f} |")


if __name__ == "__main__":
    main()
