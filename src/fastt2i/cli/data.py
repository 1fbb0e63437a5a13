"""`fastt2i data`: build the emoji set and inspect image-text datasets (folder, manifest, shards, npz)."""

from __future__ import annotations

import argparse
import json

EMOJI_EPILOG = """examples:
  fastt2i data emoji --size 64 --out data/emoji64        # 12,067 images: google, twitter, openmoji (npm pack)
  fastt2i data emoji --size 256 --out data/emoji256      # SVG styles only: openmoji, twitter (@twemoji/svg), fluent
  fastt2i data emoji --size 64 --out e64 --from ~/npm    # offline: ~/npm/<google|twitter|openmoji>/package

Writes WebDataset shards (key.png, key.txt, key.json), summary.json (counts, packages, licences) and grid.png.
Packages are fetched with `npm pack` into ~/.cache/fastt2i/npm ($FASTT2I_CACHE) unless --from is given."""

INSPECT_EPILOG = """examples:
  fastt2i data inspect photos/                          # folder of images + same-stem .txt captions
  fastt2i data inspect meta.parquet --caption-field text
  fastt2i data inspect 'shards/part-{000..009}.tar' --limit 1000 --grid grid.png
  fastt2i data inspect emoji64.npz --grid emoji.png"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build and inspect image-text datasets",
                       description="Build the emoji dataset or inspect any supported dataset.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Run `fastt2i data emoji --help` or `fastt2i data inspect --help` for examples.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")

    e = dsub.add_parser("emoji", help="build the emoji image-text set as WebDataset shards",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EMOJI_EPILOG)
    e.add_argument("--size", type=int, default=64, help="image side in pixels: 64, 128, 256 (default 64)")
    e.add_argument("--out", required=True, help="output folder (created; written to a temp folder then renamed)")
    e.add_argument("--from", dest="from_dir", default=None, metavar="NPM_DIR",
                   help="folder of unpacked npm packages DIR/<name>/package instead of running npm pack")
    e.add_argument("--samples-per-shard", type=int, default=2000, help="records per .tar (default 2000)")
    e.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPU count)")
    e.add_argument("--force", action="store_true", help="replace --out if it exists")
    e.set_defaults(func=_emoji)

    i = dsub.add_parser("inspect", help="count, size histogram, caption stats, bad-file counts, sample grid",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=INSPECT_EPILOG)
    i.add_argument("path", help="folder, manifest (.jsonl/.csv/.parquet), shards (.tar, folder, {a..b} pattern), .npz")
    i.add_argument("--caption-field", default=None, help="manifest column / json field / npz key of the caption")
    i.add_argument("--image-field", default=None, help="manifest column holding image paths")
    i.add_argument("--format", default="auto", choices=["auto", "folder", "manifest", "shards", "npz"])
    i.add_argument("--grid", default=None, metavar="OUT.png", help="write a captioned sample grid here")
    i.add_argument("--limit", type=int, default=None, metavar="N", help="read at most N items")
    i.add_argument("--resolution", type=int, default=64, help="side of the grid tiles in pixels (default 64)")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(func=_inspect)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _emoji(args: argparse.Namespace) -> int:
    from fastt2i.data.emoji import build_emoji

    s = build_emoji(args.size, args.out, from_dir=args.from_dir, samples_per_shard=args.samples_per_shard,
                    workers=args.workers, force=args.force)
    per = ", ".join(f"{k} {v:,}" for k, v in s["styles"].items())
    print(f"wrote {s['total']:,} samples ({per}) at {args.size}px to {args.out} in {s['seconds']}s "
          f"({len(s['shards'])} shards, summary.json, grid.png)")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from fastt2i.data.inspect import format_report, inspect_dataset
    from fastt2i.data.open import open_dataset

    ds = open_dataset(args.path, caption_field=args.caption_field, image_field=args.image_field, format=args.format,
                      resolution=args.resolution, split="all")
    info = inspect_dataset(ds, limit=args.limit, grid=args.grid)
    if args.json:
        st = info["stats"]
        print(json.dumps({"path": args.path, "count": info["count"], "read": info["read"],
                          "sizes": dict(info["sizes"]), "words": info["words"], "chars": info["chars"],
                          **{k: v for k, v in st.to_dict().items() if k in ("converted", "skipped")},
                          "grid": str(info["grid"]) if info["grid"] else None}, indent=2))
    else:
        print(format_report(info, args.path))
    return 0
