"""`fastt2i models`: the bundled text-to-image models, with their headline metrics (from each bundle's card.json)."""

from __future__ import annotations

import argparse
import json

HEADLINE = ("fd_emojinet_646", "subacc_emojinet_646", "retrieval_emojiclipeval_646", "stylecover_emojinet_610")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the bundled models and their metrics",
                       description="The text-to-image models shipped with fastt2i (usable as --model NAME), their "
                                   "family, resolution, size and headline metrics on emoji64's 646 validation "
                                   "prompts (docs/metrics.md); the default of `fastt2i generate` is marked.")
    p.add_argument("--json", action="store_true", help="print each model's whole card as JSON lines")
    p.set_defaults(func=run)


def _fmt(value) -> str:
    if isinstance(value, dict):
        return "/".join(f"{v:.2f}" for k, v in value.items() if k.startswith("top"))
    return "–" if value is None else f"{value:#.3g}"  # (#: 8.00, not 8)


def run(args: argparse.Namespace) -> int:
    from fastt2i.inference.loader import bundle_card, bundled_models

    cards = [bundle_card(name) for name in bundled_models()]
    if args.json:
        for c in cards:
            print(json.dumps(c))
        return 0
    if not cards:
        print("no bundled text-to-image models are installed")
        return 0
    head = ["model", "family", "px", "MB", *(h.rsplit("_", 1)[0] for h in HEADLINE)]
    rows = [[c["name"] + (" (default)" if c["default"] else ""), str(c["class"]), str(c["resolution"]),
             f"{c['size_mb']:.1f}", *(_fmt((c.get("metrics") or {}).get(h)) for h in HEADLINE)] for c in cards]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    print("metrics: full validation captions, N = 646 (docs/metrics.md); `fastt2i models --json` for every field")
    return 0
