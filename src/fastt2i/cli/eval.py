"""`fastt2i eval`: metrics of a model's samples (or of a reference source) against a dataset's real images."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

EXAMPLES = """examples:
  fastt2i eval --model runs/gigagan-emoji --data emoji64.npz --metrics fd_emojinet,clipscore_emojiclip --num 10000
  fastt2i eval --model reference:blur16 --data emoji64.npz --metrics fd_emojinet,kid_emojinet,pr_emojinet --num 646
  fastt2i eval --model reference:shuffled --data emoji64.npz --metrics clipscore_emojiclip --num 646
  fastt2i eval --model M --data D --metrics fd_inception --extractor inception=pt_inception-2015-12-05-6726825d.pth
  fastt2i eval --model gigagan-emoji64 --data emoji64.npz --metrics subacc_emojinet,stylecover_emojinet --prompts short

Prompts are the captions of --prompt-split (default val), cycled up to --num; real statistics come from --real-split
(default train) and are cached on disk. Results append to RUN_DIR/metrics.jsonl when --run-dir (or a run dir model).
References: data (the prompt split's own images), noise, blur16 (down to 16 px and back), shuffled (mismatched captions).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model with metrics", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Compute FD/KID/precision-recall/CLIP score/CMMD and prompt-following accuracy "
                                   "(subacc, styleacc, stylecover) of generated images.")
    p.add_argument("--model", required=True, help="export dir, run dir, or reference:data|noise|blur16|shuffled")
    p.add_argument("--data", required=True, help="dataset with the real images and the prompts")
    p.add_argument("--metrics", default="fd_emojinet,kid_emojinet,pr_emojinet,clipscore_emojiclip",
                   help="comma-separated metric names (see fastt2i.metrics.METRICS)")
    p.add_argument("--num", type=int, default=10_000, help="generated images (part of the metric name)")
    p.add_argument("--batch-size", type=int, default=250, help="images per generation / feature batch")
    p.add_argument("--resolution", type=int, default=64, help="resolution the real images are read at")
    p.add_argument("--prompt-split", default="val", choices=["train", "val", "all"])
    p.add_argument("--real-split", default="train", choices=["train", "val", "all"])
    p.add_argument("--split-by", default="key", choices=["key", "emoji"], help="hash split by sample or by emoji")
    p.add_argument("--caption-field", help="caption field of the dataset (default: the format's)")
    p.add_argument("--extractor", action="append", default=[], metavar="ROLE=PATH",
                   help="feature network weights for a role (inception, clip, dinov2, emojinet, emojiclip)")
    p.add_argument("--run-dir", help="append the results to RUN_DIR/metrics.jsonl")
    p.add_argument("--seed", type=int, default=0, help="first sample seed (image i uses seed+i)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"],
                   help="compute dtype of a GigaGAN synthesis network or a Paella denoiser (bf16: autocast, "
                        "weights stay fp32; the metric networks always run in fp32; default fp32)")
    p.add_argument("--prompts", default="full", choices=["full", "short"],
                   help="the prompt split's captions as they are, or each caption's name alone ('red heart': what a "
                        "user types); recorded as prompt_form")
    p.add_argument("--label-field", default="subcategories",
                   help="dataset field with each prompt's subcategory, the target of subacc (default subcategories)")
    p.set_defaults(func=run)


def _show(value) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    return "n/a (nothing to score)" if value is None else f"{value:.6g}"


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    results = run_eval(args)
    for name, value in results.items():
        print(f"{name}\t{_show(value)}")
    print(f"({args.num} samples, {time.perf_counter() - t0:.1f} s)")
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed arguments of `fastt2i eval ARGV` (for scripts such as benchmarks/metric_references.py)."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["eval", *argv])


def run_eval(args: argparse.Namespace) -> dict:
    """Evaluate as `fastt2i eval` does and return {metric name: value}."""
    from fastt2i.errors import ConfigError
    from fastt2i.evaluation import evaluate_source
    from fastt2i.metrics.results import check_metrics_destination

    paths = {}
    for item in args.extractor:
        if "=" not in item:
            raise ConfigError(f"--extractor {item!r} is not ROLE=PATH")
        role, path = item.split("=", 1)
        paths[role] = path
    run_dir = results_dir(args)
    if run_dir is not None:  # before anything is computed, so the results are never lost to a bad destination
        check_metrics_destination(run_dir, flag="--run-dir" if args.run_dir else "--model (a run directory)")
    return evaluate_source(
        args.model, args.data, metrics=args.metrics, num=args.num, batch_size=args.batch_size,
        resolution=args.resolution, prompt_split=args.prompt_split, real_split=args.real_split,
        split_by=args.split_by, caption_field=args.caption_field, extractor_paths=paths, run_dir=run_dir,
        seed=args.seed, device=args.device, dtype=getattr(args, "dtype", "fp32"),
        prompt_form=getattr(args, "prompts", "full"), label_field=getattr(args, "label_field", "subcategories"))


def results_dir(args: argparse.Namespace) -> str | None:
    """Where the results go: --run-dir, else --model itself when it is a run directory (with export/), else None."""
    if args.run_dir:
        return args.run_dir
    model = str(args.model)
    if not model.startswith("reference:") and (Path(model).expanduser() / "export").is_dir():
        return model
    return None
