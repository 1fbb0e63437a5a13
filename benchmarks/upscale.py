"""Upsampler quality on a 256 px validation split: bicubic, Lanczos and (with --model) an upsampler, in one table.

    python benchmarks/upscale.py --data /root/data/emoji256
    python benchmarks/upscale.py --data /root/data/emoji256 --grid docs/upscale-grid.png --references
    python benchmarks/upscale.py --data /root/data/emoji256 --model runs/upsampler/export --num 500
    python benchmarks/upscale.py --model noise=runs/up-noise --model no-noise=runs/up-nonoise   # an ablation pair

The ground truth is the `val` split held out exactly as training holds it out: `fastt2i.data.open_dataset` with the
same `val_fraction` (0.05) and `split_by` ("key") defaults as `TrainConfig`. Each image's 64 px input is made with
`fastt2i.data.transforms.downsample_antialiased` (the function the upsampler trainer uses); every method upscales it
4x. Columns (definitions in `fastt2i.metrics.upscale` and docs/metrics.md): patchfd_emojinet (FD of emoji-net features
of 4 random 64 px crops per image, the same crops of output and truth), fd64_emojinet (FD of the whole images
downsampled to 64 px), PSNR and SSIM against the ground truth (images in [0, 1]), lrpsnr (output downsampled back to
64 px against the input).

`--references` adds rows that anchor the numbers: bicubic from 32 px and from 16 px (less detail than bicubic
from the 64 px input) and the crop-noise floor (patch FD between two crop draws of the ground truth itself).
`--grid PATH` writes a side-by-side PNG: rows = the 64 px input (nearest-neighbour enlarged), each method, the
ground truth; columns = the first `--grid-n` validation images.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from fastt2i.data.transforms import downsample_antialiased
from fastt2i.metrics.emoji import EmojiNetFeatures
from fastt2i.metrics.stats import FeatureStats, frechet_distance_stats
from fastt2i.metrics.upscale import (
    BASELINES, CROP_SIZE, CROPS_PER_IMAGE, UpscaleFn, crop_positions, evaluate_upscalers, load_hr_split, take_crops,
)
from fastt2i.training.config import TrainConfig

from fastt2i.inference import load_upsampler as load_upsampler_pipeline

UpscaleFactory = Callable[[], UpscaleFn]  # a fresh upscale_fn per pass (its seeds count from 0)


def load_upsampler(path: str, device: torch.device) -> UpscaleFactory:
    """The `--model` hook: an upsampler export -> a factory of `upscale_fn(lr [B,3,64,64] in [-1,1], captions) ->
    [B,3,256,256]`, the export loaded once.

    Each upscale_fn gives the i-th image it is handed seed i (counted over its calls), so its outputs do not depend
    on the batch size.
    """
    pipe = load_upsampler_pipeline(path, device=device).eval()

    def make() -> UpscaleFn:
        count = 0

        def upscale(lr: torch.Tensor, captions: list[str]) -> torch.Tensor:
            nonlocal count
            seeds = list(range(count, count + lr.shape[0]))
            count += lr.shape[0]
            return pipe.upscale(lr, captions, seeds)

        return upscale

    return make


def bicubic_from(side: int, scale: int = 4) -> UpscaleFn:
    """A reference "model" with less detail than bicubic: the input downsampled further to `side` px, then bicubic
    up to the output size (what an upsampler that only used a `side`-px view of its input would get)."""
    def fn(lr: torch.Tensor, captions: list[str]) -> torch.Tensor:
        small = downsample_antialiased(lr, side)
        return F.interpolate(small, size=(lr.shape[-2] * scale, lr.shape[-1] * scale), mode="bicubic",
                             align_corners=False).clamp(-1, 1)
    return fn


@torch.no_grad()
def crop_noise_floor(hr: torch.Tensor, device: torch.device, batch_size: int = 32, seeds: tuple[int, int] = (0, 1)
                     ) -> float:
    """patch FD between two crop draws (seeds) of the ground truth itself: how far apart two samples of the same
    distribution are at this N, the scale against which a model's patchfd differences mean something."""
    net = EmojiNetFeatures().to(device)
    stats = [FeatureStats(net.dim), FeatureStats(net.dim)]
    for s in range(0, hr.shape[0], batch_size):
        x = (hr[s:s + batch_size].float() / 127.5 - 1).to(device)
        for st, seed in zip(stats, seeds):
            pos = crop_positions(x.shape[0], x.shape[-2], x.shape[-1], start=s, seed=seed)
            st.update(net(take_crops(x, pos)))
    return frechet_distance_stats(*stats)


def label(text: str, width: int, height: int, background: int = 225) -> Image.Image:
    tile = Image.new("RGB", (width, height), (background,) * 3)
    ImageDraw.Draw(tile).text((8, height // 2 - 10), text, fill=(0, 0, 0), font=ImageFont.load_default(size=18))
    return tile


@torch.no_grad()
def save_comparison(path: str | Path, hr: torch.Tensor, captions: list[str], methods: dict[str, UpscaleFn],
                    scale: int = 4, device: str | torch.device = "cpu", pad: int = 4, background: int = 225) -> Path:
    """Write the side-by-side grid: rows input / each method / ground truth, one column per image of `hr`.

    Args:
        hr: uint8 [N,3,H,W] ground truth.
    """
    x = (hr.float() / 127.5 - 1).to(device)  # [N,3,H,W]
    n, _, h, w = x.shape
    lr = downsample_antialiased(x, (h // scale, w // scale))  # [N,3,h/s,w/s]
    rows = {"input 64px": F.interpolate(lr, scale_factor=scale, mode="nearest")}
    for name, fn in methods.items():
        rows[name] = fn(lr, captions).clamp(-1, 1)
    rows["ground truth"] = x
    label_w = 140
    grid = Image.new("RGB", (label_w + n * (w + pad) + pad, len(rows) * (h + pad) + pad), (background,) * 3)
    for r, (name, imgs) in enumerate(rows.items()):
        y = pad + r * (h + pad)
        grid.paste(label(name, label_w, h, background), (0, y))
        arr = ((imgs.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for c in range(n):
            grid.paste(Image.fromarray(np.ascontiguousarray(arr[c])), (label_w + pad + c * (w + pad), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, optimize=True)
    return path


def main() -> None:
    defaults = TrainConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/root/data/emoji256", help="the 256 px dataset (fastt2i data emoji --size 256)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    ap.add_argument("--split-by", default=defaults.split_by, choices=["key", "emoji"])
    ap.add_argument("--resolution", type=int, default=256, help="ground-truth side in pixels (default 256)")
    ap.add_argument("--scale", type=int, default=4, help="upscaling factor (default 4: 64 px -> 256 px)")
    ap.add_argument("--num", type=int, default=None, help="at most this many validation images (default: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default=None, help="default: cuda if available")
    ap.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH",
                    help="an upsampler (bundled name, export or run directory) to score beside the baselines; "
                         "repeatable, NAME labels its row")
    ap.add_argument("--grid", default=None, metavar="PNG", help="write the side-by-side comparison here")
    ap.add_argument("--grid-n", type=int, default=6, help="images (columns) in the grid")
    ap.add_argument("--seed", type=int, default=0, help="seed of the patch-FD crops")
    ap.add_argument("--references", action="store_true",
                    help="add reference rows: bicubic from 32 px and from 16 px, and the crop-noise floor (patch FD of "
                         "two crop draws of the ground truth)")
    args = ap.parse_args()
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    t0 = time.perf_counter()
    hr, captions, _ = load_hr_split(args.data, args.split, args.resolution, val_fraction=args.val_fraction,
                                 split_by=args.split_by, num=args.num)
    t_load = time.perf_counter() - t0
    factories: dict[str, UpscaleFactory] = {name: (lambda fn=fn: fn) for name, fn in BASELINES.items()}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        name, path = (name, path) if sep else (Path(spec).name or spec, spec)
        factories[name] = load_upsampler(path, dev)
    methods = {name: make() for name, make in factories.items()}
    if args.grid:  # evenly spaced over the split (it is in shard order: style, then code point)
        idx = np.linspace(0, hr.shape[0] - 1, min(args.grid_n, hr.shape[0])).round().astype(int).tolist()
        grid = save_comparison(args.grid, hr[idx], [captions[i] for i in idx],
                               {name: make() for name, make in factories.items()}, args.scale, dev)
        print(f"grid: {grid} (validation images {idx})")
    if args.references:
        lo = args.resolution // args.scale
        methods.update({f"bicubic from {lo // 2} px": bicubic_from(lo // 2, args.scale),
                        f"bicubic from {lo // 4} px": bicubic_from(lo // 4, args.scale)})

    t0 = time.perf_counter()
    res = evaluate_upscalers(methods, hr, captions, scale=args.scale, batch_size=args.batch_size, device=dev,
                             seed=args.seed)
    t_eval = time.perf_counter() - t0
    n, lo = hr.shape[0], args.resolution // args.scale
    print(f"\n{args.data} split {args.split} (val_fraction {args.val_fraction}, split_by {args.split_by}): {n} images "
          f"at {args.resolution} px, inputs {lo} px (downsample_antialiased); patch FD: {CROPS_PER_IMAGE} crops of "
          f"{CROP_SIZE} px per image, seed {args.seed}; {dev}; loaded in {t_load:.0f} s, scored in {t_eval:.0f} s\n")
    cols = list(next(iter(res.values())))
    print("| method | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, r in res.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.4f}" if c == "ssim" else f"{r[c]:.2f}" for c in cols) + " |")
    if args.references:
        floor = crop_noise_floor(hr, dev, args.batch_size, (args.seed, args.seed + 1))
        print(f"\ncrop-noise floor: patchfd_emojinet between crop seeds {args.seed} and {args.seed + 1} of the ground "
              f"truth itself = {floor:.2f}")


if __name__ == "__main__":
    main()
