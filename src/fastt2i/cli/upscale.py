"""`fastt2i upscale`: one pass of the GigaGAN upsampler (sec. 3.6) over image files, conditioned on a prompt."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  fastt2i upscale heart64.png "red heart" -o heart256.png
  fastt2i upscale a.png b.png "sushi" --upsampler runs/upsampler-emoji256 --seed 3 -o out.png
  fastt2i generate "red heart" --seeds 0-3 --upscale -o hearts256.png     (base model, then the upsampler)

Each input is resized to the upsampler's input size first (antialiased down, bicubic up; RGBA is composited on
white). With several inputs, -o gets a grid (one column per input) unless --individual DIR is given.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="super-resolve images with the text-conditioned upsampler", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Upscale images with a GigaGAN upsampler, conditioned on a prompt.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="input image files")
    p.add_argument("prompt", help="the text the upsampler is conditioned on (one for all images)")
    p.add_argument("--upsampler", metavar="NAME|PATH",
                   help="a bundled upsampler's name, an export or a run directory (default: the bundled one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the upsampler's z (default 0; image i uses seed+i)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="truncation of the upsampler's w")
    p.add_argument("-o", "--output", default="upscaled.png", help="output image (checked before any work)")
    p.add_argument("--individual", metavar="DIR", help="also write each output as DIR/<input stem>.png")
    p.add_argument("--text-encoder", metavar="SPEC", help="override the text encoder recorded in the export")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="compute dtype of the U-Net")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from fastt2i.editing.paella import load_image
    from fastt2i.errors import ConfigError
    from fastt2i.inference import load_upsampler
    from fastt2i.utils.images import make_grid, save_grid
    from fastt2i.utils.paths import check_output_dir, check_output_file

    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    output = check_output_file(args.output, flag="-o/--output")
    individual = check_output_dir(args.individual, flag="--individual") if args.individual else None
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    up = load_upsampler(args.upsampler, device=device, text_encoder=args.text_encoder, dtype=args.dtype)
    r = up.input_resolution
    images = torch.cat([up.prepare(load_image(p)) for p in args.images])  # [N,3,r,r], each resized on its own
    seeds = [args.seed + i for i in range(len(args.images))]
    out = up.upscale(images, [args.prompt], seeds, truncation_psi=args.truncation).cpu()  # [N,3,R,R]
    if len(out) == 1:
        make_grid(out, nrow=1, pad=0).save(output)
    else:
        save_grid(out, output, nrow=len(args.images))
    if individual is not None:
        for path, img in zip(args.images, out):
            make_grid(img[None], nrow=1, pad=0).save(Path(individual) / f"{Path(path).stem}.png")
    print(f"wrote {output} ({len(args.images)} image(s), {r} -> {up.resolution} px)")
    return 0

