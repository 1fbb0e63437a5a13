"""`fastt2i train FAMILY`: build a run config from a preset plus overrides, print it (--dry-run) or train (resumable)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Callable

from fastt2i.config import apply_overrides
from fastt2i.errors import ConfigError


@dataclass(frozen=True)
class Family:
    """What `fastt2i train NAME` needs: named presets (run configs) and the trainer class that runs one."""

    help: str
    presets: dict[str, Callable[[], Any]]
    trainer: Callable[[], type]


def _emoji_families() -> dict[str, Family]:
    from fastt2i.models.emoji import EmojiCLIPConfig, EmojiNetConfig
    from fastt2i.training.config import TrainConfig
    from fastt2i.training.emoji import EmojiCLIPRunConfig, EmojiNetRunConfig

    def clip_tiny() -> EmojiCLIPRunConfig:
        return EmojiCLIPRunConfig(
            model=EmojiCLIPConfig(resolution=32, channels=(8, 16), blocks=1),
            train=TrainConfig(run_dir="runs/emoji-clip-tiny", batch_size=16, kimg=0.064, snapshot_kimg=0.032,
                              sample_kimg=0, eval_kimg=0, num_workers=0, resolution=32, log_every=1, ema_kimg=0.01),
            warmup_kimg=0.016)

    def net_tiny() -> EmojiNetRunConfig:
        base = EmojiNetRunConfig()
        return dataclasses.replace(
            base, model=dataclasses.replace(base.model, resolution=32, channels=(8, 16), blocks=1),
            train=TrainConfig(run_dir="runs/emoji-net-tiny", batch_size=16, kimg=0.064, snapshot_kimg=0.032,
                              sample_kimg=0, eval_kimg=0, num_workers=0, resolution=32, log_every=1, ema_kimg=0.01,
                              caption_field="subcategories"),
            warmup_kimg=0.016)

    def trainer(name: str) -> Callable[[], type]:
        def get() -> type:
            from fastt2i.training import emoji

            return getattr(emoji, name)

        return get

    return {
        "emoji-clip": Family("image tower in MiniLM's text space (CLIP score and CLIP roles on emoji data)",
                             {"default": EmojiCLIPRunConfig, "tiny": clip_tiny}, trainer("EmojiCLIPTrainer")),
        "emoji-net": Family("emoji subcategory/style classifier (FD/KID/precision-recall features only)",
                            {"default": EmojiNetRunConfig, "tiny": net_tiny}, trainer("EmojiNetTrainer")),
    }


def families() -> dict[str, Family]:
    """Every trainable family by the name typed after `fastt2i train`."""
    return _emoji_families()


EXAMPLES = """examples:
  fastt2i train emoji-clip --data emoji64.npz --run-dir runs/emoji-clip --kimg 600
  fastt2i train emoji-net --data emoji64.npz --run-dir runs/emoji-net --dry-run
  fastt2i train emoji-clip --preset tiny --data emoji64.npz --set lr=1e-3 --set train.ema_kimg=1

Rerunning the same command resumes from the newest state in the run directory; SIGINT/SIGTERM save a state first.
Scale out with `torchrun --nproc_per_node N $(which fastt2i) train ...` or `accelerate launch`.
"""


def register(sub: argparse._SubParsersAction) -> None:
    fams = families()
    p = sub.add_parser("train", help="train a model (resumable)", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model family from a preset plus overrides.")
    p.add_argument("family", choices=sorted(fams), help="what to train")
    p.add_argument("--preset", default="default", help="named run config (see --list-presets)")
    p.add_argument("--list-presets", action="store_true", help="print the family's presets and exit")
    p.add_argument("--data", help="dataset: folder, manifest (.jsonl/.csv/.parquet), WebDataset shards or .npz")
    p.add_argument("--run-dir", help="run directory (config.json, state/, samples/, tb/, export/)")
    p.add_argument("--kimg", type=float, help="training length in thousands of images shown")
    p.add_argument("--batch-size", type=int, help="global batch size (images per step over all processes)")
    p.add_argument("--seed", type=int, help="base seed")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], help="autocast precision (Accelerate)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, dotted for nested ones (e.g. train.ema_kimg=5, lr=1e-3)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.set_defaults(func=run)


def resolve_config(family: Family, args: argparse.Namespace) -> Any:
    if args.preset not in family.presets:
        raise ConfigError(f"unknown preset {args.preset!r}; choose one of: {', '.join(sorted(family.presets))}")
    cfg = family.presets[args.preset]()
    sets: dict[str, Any] = {}
    for flag, key in [("data", "train.data"), ("run_dir", "train.run_dir"), ("kimg", "train.kimg"),
                      ("batch_size", "train.batch_size"), ("seed", "train.seed"),
                      ("mixed_precision", "train.mixed_precision")]:
        if getattr(args, flag) is not None:
            sets[key] = getattr(args, flag)
    cfg = apply_overrides(cfg, sets) if sets else cfg
    return apply_overrides(cfg, args.set) if args.set else cfg


def run(args: argparse.Namespace) -> int:
    family = families()[args.family]
    if args.list_presets:
        print("\n".join(sorted(family.presets)))
        return 0
    cfg = resolve_config(family, args)
    from fastt2i.training import dry_run

    if args.dry_run:
        return dry_run(cfg)
    if not cfg.train.data:
        raise ConfigError("no dataset: pass --data PATH (folder, manifest, shards or .npz)")
    result = family.trainer()(cfg, progress=not args.no_progress).run()
    if not result.finished:
        print(f"training stopped ({result.reason}); rerun the same command to resume", file=sys.stderr)
        return 1
    return 0
