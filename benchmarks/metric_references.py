"""Reference points of the metrics on emoji64 (docs/metrics.md): what a number means before any model exists.

    python benchmarks/metric_references.py --data ../shared/data/emoji64.npz --out /tmp/refs.md
    python benchmarks/metric_references.py --table prompt-following --out /tmp/prompt-refs.md

Cases (real side: the training split; prompts: the validation split):
  data      the validation images themselves  -> the floor a perfect model approaches
  blur16    validation images down to 16 px and back -> a crude "blurry model"
  noise     Gaussian noise images
  shuffled  validation images with other validation captions -> CLIP score of a model that ignores the prompt
Protocols: N = the whole validation split (646 images, one per caption; what model evaluations use) and N = 10k
(validation prompts cycled; the images of `data`/`blur16` then repeat, which raises FD a little).

`--table prompt-following` gives the prompt-following references instead (N = 646; prompts as captions and as their
short form, the name alone): subacc / styleacc (emoji-net's heads against the prompt's subcategory / named style),
caption retrieval top-1 / top-5 and CLIP score with emoji-clip and with the evaluation-only emoji-clip-eval (when
bundled), and stylecover (the data's own answer: how many names exist in >= 2 styles).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fastt2i.assets import ROOT as ASSETS
from fastt2i.cli.eval import parse, run_eval

FEATURES = "fd_emojinet,kid_emojinet,pr_emojinet"
CLIP = "clipscore_emojiclip,cmmd_emojiclip"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--out", default="metric_references.md", help="where to write the markdown table")
    ap.add_argument("--nums", default="646,10000")
    ap.add_argument("--table", default="distribution", choices=["distribution", "prompt-following"])
    args = ap.parse_args()
    if args.table == "prompt-following":
        prompt_following(args)
        return
    rows = []
    for num in [int(n) for n in args.nums.split(",")]:
        for kind in ["data", "blur16", "noise", "shuffled"]:
            metrics = CLIP.split(",")[0] if kind == "shuffled" else f"{FEATURES},{CLIP}"
            t0 = time.perf_counter()
            res = run_eval(parse(["--model", f"reference:{kind}", "--data", args.data, "--metrics", metrics,
                                  "--num", str(num)]))
            secs = time.perf_counter() - t0
            rows.append({"case": kind, "num": num, "seconds": secs, **res})
            print(json.dumps(rows[-1]), flush=True)

    def val(row, prefix, sub=None):
        for k, v in row.items():
            if k.startswith(prefix):
                return f"{(v[sub] if sub else v):.4g}"
        return "–"

    lines = ["| case | N | fd_emojinet | kid_emojinet | precision | recall | clipscore_emojiclip | cmmd_emojiclip | s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['num']} | {val(r, 'fd_')} | {val(r, 'kid_', 'mean')} | "
                     f"{val(r, 'pr_', 'precision')} | {val(r, 'pr_', 'recall')} | {val(r, 'clipscore_')} | "
                     f"{val(r, 'cmmd_')} | {r['seconds']:.0f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def prompt_following(args: argparse.Namespace) -> None:
    """The prompt-following reference table (see the module docstring)."""
    nets = ["emojiclip"] + (["emojiclipeval"] if (ASSETS / "emoji-clip-eval" / "model.safetensors").is_file() else [])
    per_net = [f"{k}_{n}" for n in nets for k in ("retrieval", "clipscore")]
    rows = []
    for form in ("full", "short"):
        for kind in ("data", "blur16", "noise", "shuffled"):
            metrics = ["subacc_emojinet", "styleacc_emojinet", *per_net]
            if kind == "data" and form == "full":
                metrics.append("stylecover_emojinet")
            t0 = time.perf_counter()
            res = run_eval(parse(["--model", f"reference:{kind}", "--data", args.data, "--metrics", ",".join(metrics),
                                  "--num", "646", "--prompts", form]))
            rows.append({"case": kind, "prompts": form, "seconds": time.perf_counter() - t0, **res})
            print(json.dumps(rows[-1]), flush=True)

    def val(row, prefix, sub=None):
        for k, v in row.items():
            if k.startswith(prefix) and v is not None:
                return f"{(v[sub] if sub else v):.3g}"
        return "–"

    head = ["case", "prompts", "subacc", "styleacc"]
    for n in nets:
        head += [f"retrieval top-1 ({n})", f"top-5 ({n})", f"clipscore_{n}"]
    head += ["stylecover", "s"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for r in rows:
        cells = [r["case"], r["prompts"], val(r, "subacc_"), val(r, "styleacc_")]
        for n in nets:
            cells += [val(r, f"retrieval_{n}_", "top1"), val(r, f"retrieval_{n}_", "top5"), val(r, f"clipscore_{n}_")]
        cells += [val(r, "stylecover_"), f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
