"""Reference points of the metrics on emoji64 (docs/metrics.md): what a number means before any model exists.

    python benchmarks/metric_references.py --data ../shared/data/emoji64.npz --out /tmp/refs.md

Cases (real side: the training split; prompts: the validation split):
  data      the validation images themselves  -> the floor a perfect model approaches
  blur16    validation images down to 16 px and back -> a crude "blurry model"
  noise     Gaussian noise images
  shuffled  validation images with other validation captions -> CLIP score of a model that ignores the prompt
Protocols: N = the whole validation split (646 images, one per caption; what model evaluations use) and N = 10k
(validation prompts cycled; the images of `data`/`blur16` then repeat, which raises FD a little).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fastt2i.cli.eval import parse, run_eval

FEATURES = "fd_emojinet,kid_emojinet,pr_emojinet"
CLIP = "clipscore_emojiclip,cmmd_emojiclip"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--out", default="metric_references.md", help="where to write the markdown table")
    ap.add_argument("--nums", default="646,10000")
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
