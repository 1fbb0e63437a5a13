"""`fastt2i train FAMILY`: a run config from a preset plus overrides; print it (--dry-run) or train (resumable)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fastt2i.config import apply_overrides
from fastt2i.errors import ConfigError
from fastt2i.training import dry_run
from fastt2i.training.presets import FAMILIES, get_family, run_preset

EXAMPLES = """examples:
  fastt2i train gigagan --preset emoji64 --data emoji64.npz --run-dir runs/gigagan-emoji64 --kimg 300
  fastt2i train gigagan --preset ablation-1-stylegan2 --data emoji64.npz --dry-run
  fastt2i train emoji-clip --data emoji64.npz --run-dir runs/emoji-clip --kimg 600
  fastt2i train emoji-net --data emoji64.npz --run-dir runs/emoji-net --dry-run
  fastt2i train emoji-clip --preset tiny --data emoji64.npz --set lr=1e-3 --set train.ema_kimg=1
  fastt2i train stylegan-t --preset emoji64 --data emoji64.npz --mode text-encoder --set grow_from=runs/sgt-emoji64

Rerunning the same command resumes from the newest state in the run directory; SIGINT/SIGTERM save a state first.
Scale out with `torchrun --nproc_per_node N $(which fastt2i) train ...` or `accelerate launch`.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (resumable)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model family from a preset plus overrides.")
    p.add_argument("family", choices=sorted(FAMILIES), help="what to train")
    p.add_argument("--preset", default="default", help="named run config (see --list-presets)")
    p.add_argument("--list-presets", action="store_true", help="print the family's presets and exit")
    p.add_argument("--data", help="dataset: folder, manifest (.jsonl/.csv/.parquet), WebDataset shards or .npz")
    p.add_argument("--run-dir", help="run directory (config.json, state/, samples/, tb/, export/)")
    p.add_argument("--kimg", type=float, help="training length in thousands of images shown")
    p.add_argument("--batch-size", type=int, help="global batch size (images per step over all processes)")
    p.add_argument("--seed", type=int, help="base seed")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], help="autocast precision (Accelerate)")
    p.add_argument("--mode", help="training phase of a family that has one (= --set mode=...; stylegan-t: full, "
                                  "text-encoder, grow)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, dotted for nested ones (e.g. train.ema_kimg=5, lr=1e-3)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(func=run)


def resolve_config(family: str, args: argparse.Namespace) -> Any:
    """The run config of FAMILY's `--preset`, then the named flags (--data, --kimg, ...), then each `--set`."""
    cfg = run_preset(family, args.preset)
    sets: dict[str, Any] = {}
    for flag, key in [("data", "train.data"), ("run_dir", "train.run_dir"), ("kimg", "train.kimg"),
                      ("batch_size", "train.batch_size"), ("seed", "train.seed"),
                      ("mixed_precision", "train.mixed_precision"), ("mode", "mode")]:
        if getattr(args, flag) is not None:
            sets[key] = getattr(args, flag)
    cfg = apply_overrides(cfg, sets) if sets else cfg
    return apply_overrides(cfg, args.set) if args.set else cfg


def run(args: argparse.Namespace) -> int:
    family = get_family(args.family)
    if args.list_presets:
        print("\n".join(sorted(family.presets)))
        return 0
    cfg = resolve_config(args.family, args)
    if args.dry_run:
        return dry_run(cfg)
    if not cfg.train.data:
        raise ConfigError("no dataset: pass --data PATH (folder, manifest, shards or .npz)")
    result = family.trainer_class(cfg, progress=not args.no_progress).run()
    if not result.finished:
        print(f"training stopped ({result.reason}); rerun the same command to resume", file=sys.stderr)
        return 1
    return 0
