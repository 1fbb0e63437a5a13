"""The three families side by side on the same prompts, seeds and references (docs/families.md).

    python benchmarks/families.py --data ../shared/data/emoji64.npz --out docs/families.md
    python benchmarks/families.py --models gigagan-emoji64,stylegan-t-emoji64 --repeats 5 --threads 1

For each model (default: every bundled text-to-image model, `fastt2i models`) on emoji64's 646 validation prompts
(seed i for prompt i; the protocol and references of docs/metrics.md):
  fd             fd_emojinet_646 on the full captions, and on their short form (the name alone: what a user types)
  subacc         subacc_emojinet_646 (emoji-net's subcategory head against the prompt's), full and short prompts
  retrieval      retrieval_emojiclipeval_646 top-5 (rank the 646 captions for each image with the evaluation-only
                 emoji-clip-eval; skipped when it is not bundled), full captions
  clipscore      clipscore_emojiclipeval_646 (the evaluation-only network; emoji-clip when it is not bundled)
  stylecover     stylecover_emojinet_610 (8 seeds per style-free name: the share of names drawn in >= 2 styles)
  training       kimg and hours from the bundle's card.json
  params         parameters of the network(s) that generate (text encoder excluded)
  time / image   median seconds per image of `pipeline.generate` at batch 1 and 32 (fp32, --threads torch threads),
                 the models timed round-robin in one process so that machine load hits them alike; ratios are
                 against the first model
The references (data, blur16, shuffled) come first, from the same evaluation code.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from fastt2i.assets import ROOT as ASSETS
from fastt2i.evaluation import evaluate_source
from fastt2i.inference import bundle_card, bundled_models, load_pipeline

EVAL_NET = "emojiclipeval" if (ASSETS / "emoji-clip-eval" / "model.safetensors").is_file() else None
CLIP = EVAL_NET or "emojiclip"


def metrics_of(model: Any, data: str, short: bool) -> dict[str, Any]:
    names = ["fd_emojinet", "subacc_emojinet"]
    if not short:
        names += [f"clipscore_{CLIP}"] + ([f"retrieval_{EVAL_NET}"] if EVAL_NET else []) + ["stylecover_emojinet"]
    if isinstance(model, str) and model.startswith("reference:") and model != "reference:data":
        names = [n for n in names if not n.startswith("stylecover")]
    res = evaluate_source(model, data, metrics=",".join(names), num=646, prompt_form="short" if short else "full",
                          progress=False)
    return {k.rsplit("_", 1)[0]: v for k, v in res.items()}


def card_row(metrics: dict[str, Any]) -> dict[str, Any]:
    """A card.json's metric records ("fd_emojinet_646", "fd_emojinet_646_short", ...) in `metrics_of`'s keys."""
    out = {}
    for key, value in metrics.items():
        short = key.endswith("_short")
        base = key[: -len("_short")] if short else key
        out[base.rsplit("_", 1)[0] + ("_short" if short else "")] = value
    return out


def params_of(pipe: Any) -> int:
    nets = [getattr(pipe, n, None) for n in ("generator", "G", "denoiser", "vqgan")]
    seen: set[int] = set()
    total = 0
    for net in nets:
        if isinstance(net, torch.nn.Module):
            for p in net.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
    return total


def time_per_image(pipes: dict[str, Any], batch: int, repeats: int) -> dict[str, float]:
    prompts = ["red heart", "grinning face", "sushi", "cat face"]
    times: dict[str, list[float]] = {n: [] for n in pipes}
    for pipe in pipes.values():  # warm-up (text cache, oneDNN kernels)
        pipe.generate([prompts[i % 4] for i in range(batch)], list(range(batch)))
    for r in range(repeats):
        for name, pipe in pipes.items():
            p = [prompts[(i + r) % 4] for i in range(batch)]
            t0 = time.perf_counter()
            with torch.inference_mode():
                pipe.generate(p, list(range(r * batch, (r + 1) * batch)))
            times[name].append((time.perf_counter() - t0) / batch)
    return {n: statistics.median(v) for n, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--models", default="", help="comma-separated bundled names or export paths (default: all bundled)")
    ap.add_argument("--repeats", type=int, default=5, help="timing rounds per batch size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="families.md")
    ap.add_argument("--from-cards", action="store_true",
                    help="take each bundle's metrics from its card.json (written by scripts/card_metrics.py with the "
                         "same evaluation code and protocol) instead of recomputing them; the references and "
                         "the timings are still measured here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()] or bundled_models()
    rows = []
    for ref in ("reference:data", "reference:blur16", "reference:shuffled"):
        row = {"model": ref, **metrics_of(ref, args.data, False)}
        row.update({f"{k}_short": v for k, v in metrics_of(ref, args.data, True).items()})
        rows.append(row)
        print(json.dumps(row), flush=True)
    pipes = {m: load_pipeline(m).eval() for m in models}
    for m, pipe in pipes.items():
        card = bundle_card(m) if m in bundled_models() else {}
        row = {"model": m, "family": card.get("family") or card.get("class"), "kimg": card.get("kimg"),
               "hours": card.get("hours"), "params": params_of(pipe)}
        if args.from_cards:
            if not card.get("metrics"):
                raise SystemExit(f"--from-cards: {m} has no card.json metrics")
            row.update(card_row(card["metrics"]))
        else:
            row.update(metrics_of(pipe, args.data, False))
            row.update({f"{k}_short": v for k, v in metrics_of(pipe, args.data, True).items()})
        rows.append(row)
        print(json.dumps(row), flush=True)
    speed = {b: time_per_image(pipes, b, args.repeats) for b in (1, 32)}

    def f(v: Any, d: str = ".3g") -> str:
        if v is None:
            return "–"
        return format(v, d)

    head = ("| source | fd (full / short) | subacc (full / short) | retrieval top-5 | "
            f"clipscore_{CLIP} | stylecover | kimg | hours | params | ms/image b1 | ms/image b32 | x first b1 / b32 |")
    lines = [head, "| --- |" + " ---: |" * (head.count("|") - 2)]
    first = models[0] if models else None
    for r in rows:
        m = r["model"]
        ret = r.get(f"retrieval_{EVAL_NET}") if EVAL_NET else None
        cells = [m, f"{f(r.get('fd_emojinet'))} / {f(r.get('fd_emojinet_short'))}",
                 f"{f(r.get('subacc_emojinet'))} / {f(r.get('subacc_emojinet_short'))}",
                 f(ret["top5"] if ret else None), f(r.get(f"clipscore_{CLIP}")), f(r.get("stylecover_emojinet")),
                 f(r.get("kimg"), "g"), f(r.get("hours"), "g"),
                 f"{r['params'] / 1e6:.2f}M" if r.get("params") else "–"]
        if m in pipes:
            b1, b32 = speed[1][m] * 1e3, speed[32][m] * 1e3
            cells += [f"{b1:.1f}", f"{b32:.1f}",
                      f"{speed[1][m] / speed[1][first]:.2f} / {speed[32][m] / speed[32][first]:.2f}"]
        else:
            cells += ["–", "–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
