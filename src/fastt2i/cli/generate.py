"""`fastt2i generate`: a grid of prompts x seeds from a GigaGAN export (default: the bundled gigagan-emoji64)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = "gigagan-emoji64"

EXAMPLES = """examples:
  fastt2i generate "a red heart" "a smiling cat face" --seeds 0-7 -o grid.png
  fastt2i generate --model runs/gigagan-emoji/export "a blue star" --seeds 0-15 --truncation 0.7 -o stars.png
  fastt2i generate --model runs/gigagan-emoji "a green apple" --seeds 3,5,42 --individual samples/

Rows are prompts, columns are seeds; seed N gives the same image at any batch size. --truncation uses the
text-conditioned truncation of GigaGAN sec. 5 (1 = off, 0 = the prompt's mean image).
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate images from prompts", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Generate a grid of images (rows = prompts, columns = seeds) with a GigaGAN model.")
    add_model_args(p)
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="one or more prompts (one grid row each)")
    p.add_argument("--seeds", default="0-7", help="seeds like 0-7,10 (one grid column each; default 0-7)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="truncation psi (1 = none, 0 = the text-conditioned mean; default 1)")
    p.add_argument("-o", "--output", default="grid.png", help="output PNG (default grid.png)")
    p.add_argument("--individual", metavar="DIR", help="also write each image as DIR/PROMPT-SLUG_sSEED.png")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    p.set_defaults(func=run)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model / --text-encoder / --device, shared with `fastt2i edit`."""
    p.add_argument("--model", help=f"export or run directory (default: the bundled {DEFAULT_MODEL})")
    p.add_argument("--text-encoder", metavar="SPEC",
                   help="override the text encoder recorded in the export (e.g. clip:/models/clip-vit-large-patch14)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")


def load_pipeline(args: argparse.Namespace):
    """The GigaGANPipeline named by --model (or the bundled default), on --device."""
    import torch

    from fastt2i.assets import ROOT
    from fastt2i.errors import AssetNotFoundError
    from fastt2i.inference.gigagan import GigaGANPipeline

    if args.model:
        path = Path(args.model).expanduser()
    else:
        path = ROOT / DEFAULT_MODEL
        if not (path / "model.safetensors").is_file():
            raise AssetNotFoundError(f"the bundled default model {DEFAULT_MODEL} is not shipped yet; "
                                     "pass --model DIR (an export or run directory)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return GigaGANPipeline.from_pretrained(path, device=device, text_encoder=args.text_encoder)


def run(args: argparse.Namespace) -> int:
    import re

    import torch

    from fastt2i.errors import ConfigError
    from fastt2i.inference.noise import parse_seeds
    from fastt2i.utils.images import save_grid

    seeds = parse_seeds(args.seeds)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    n = len(args.prompts) * len(seeds)
    if n > 10_000:
        raise ConfigError(f"{n} images is too many for one grid (prompts x seeds <= 10,000)")
    pipe = load_pipeline(args)
    pairs = [(p, s) for p in args.prompts for s in seeds]  # row-major: prompt rows, seed columns
    chunks = []
    for i in range(0, n, args.batch_size):
        part = pairs[i: i + args.batch_size]
        chunks.append(pipe.generate([p for p, _ in part], [s for _, s in part], truncation_psi=args.truncation).cpu())
    images = torch.cat(chunks)  # [n,3,H,W]
    out = save_grid(images, args.output, nrow=len(seeds))
    if args.individual:
        from fastt2i.utils.images import make_grid

        d = Path(args.individual)
        d.mkdir(parents=True, exist_ok=True)
        for (prompt, seed), img in zip(pairs, images):
            slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "prompt"
            make_grid(img[None], nrow=1, pad=0).save(d / f"{slug}_s{seed}.png")
    print(f"wrote {out} ({len(args.prompts)} prompts x {len(seeds)} seeds, {pipe.resolution} px)")
    return 0
