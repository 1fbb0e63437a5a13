"""The metrics of a bundle's card.json, computed in one go (issue 13's set, the protocol of docs/metrics.md).

    python scripts/card_metrics.py stylegan-t-emoji64 --data ../shared/data/emoji64.npz --out /tmp/metrics.json
    python scripts/card_metrics.py ~/runs/paella-emoji64/export --data emoji64.npz --sampler steps=12,cfg=4

On the 646 validation prompts (seed i for prompt i; truncation 1 for the GANs): full captions: fd_emojinet,
clipscore_emojiclip (trained against: labelled so), subacc_emojinet, styleacc_emojinet, and, when emoji-clip-eval is
bundled, retrieval_emojiclipeval and clipscore_emojiclipeval; stylecover_emojinet (style-free names x 8 seeds);
short prompts (the name alone): the same less styleacc and stylecover, with a `_short` suffix. Prints and writes
{"metrics": {...}} in the card.json layout (`fastt2i models` reads it). `--sampler` passes Paella sampler
settings (steps, cfg, temperature=T0:T1, mode), or a GAN's truncation (psi), to `generate`; `--metrics` restricts
the set.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import torch

from fastt2i.assets import ROOT as ASSETS
from fastt2i.evaluation import evaluate_source
from fastt2i.inference import load_pipeline

EVAL_NET = "emojiclipeval" if (ASSETS / "emoji-clip-eval" / "model.safetensors").is_file() else None
FULL = ["fd_emojinet", "clipscore_emojiclip", "subacc_emojinet", "styleacc_emojinet", "stylecover_emojinet"] + (
    [f"retrieval_{EVAL_NET}", f"clipscore_{EVAL_NET}"] if EVAL_NET else [])
SHORT = ["fd_emojinet", "subacc_emojinet"] + ([f"retrieval_{EVAL_NET}", f"clipscore_{EVAL_NET}"] if EVAL_NET else [])


def parse_sampler(text: str) -> dict[str, Any]:
    """"steps=12,cfg=4,temperature=0.7:0.3,mode=renoise" -> generate() keyword arguments."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if key == "steps":
            out[key] = int(value)
        elif key == "cfg":
            out[key] = float(value)
        elif key == "temperature":
            vals = [float(v) for v in value.split(":")]
            out[key] = (vals[0], vals[-1])
        elif key == "mode":
            out[key] = value
        elif key == "psi":  # the GANs' (text-conditioned) truncation
            out["truncation_psi"] = float(value)
        else:
            raise SystemExit(f"--sampler: unknown setting {key!r} (steps, cfg, temperature, mode; GANs: psi)")
    return out


def card_metrics(model: str, data: str, sampler: dict[str, Any], only: set[str] | None = None,
                 num: int = 646) -> dict[str, Any]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = load_pipeline(model, device=device).eval()
    source = functools.partial(pipe.generate, **sampler) if sampler else pipe  # evaluate_source takes a callable
    out: dict[str, Any] = {}
    for form, names, suffix in (("full", FULL, ""), ("short", SHORT, "_short")):
        names = [n for n in names if only is None or n in only]
        if not names:
            continue
        res = evaluate_source(source, data, metrics=",".join(names), num=num, prompt_form=form, device=device,
                              progress=False)
        out.update({k + suffix: v for k, v in res.items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="bundled name, export or run directory")
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--sampler", default="",
                    help="Paella: steps=12,cfg=8,temperature=0.7:0.3,mode=renoise; GANs: psi=0.7")
    ap.add_argument("--metrics", default="", help="comma-separated subset of the metric names")
    ap.add_argument("--num", type=int, default=646)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write {'metrics': ...} here as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = {m.strip() for m in args.metrics.split(",") if m.strip()} or None
    metrics = card_metrics(args.model, args.data, parse_sampler(args.sampler), only, args.num)
    text = json.dumps({"metrics": metrics, **({"sampler": args.sampler} if args.sampler else {})}, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
