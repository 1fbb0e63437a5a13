"""Time per image of `generate --upscale` (base model -> GigaGAN upsampler) beside the base model alone, one table.

    python benchmarks/upscale_speed.py --upsampler runs/upsampler-emoji256 --threads 1
    python benchmarks/upscale_speed.py --random-upsampler --bases gigagan-emoji64 --batches 1,16 --repeats 5

For each base model and batch size: the median wall time (over --repeats, after one warm-up) of the base model's
`generate`, of the upsampler's `upscale` on its output, and of the chained `UpscaledPipeline.generate`, per image, and
the chain's time as a multiple of the base's (measured in the same run: the machine is shared, ratios travel better
than milliseconds). `--random-upsampler` times the `emoji` preset with random weights (the cost does not depend on
the weights) when no trained export is at hand. `--dtype bf16` runs both networks under autocast.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fastt2i.inference import UpscaledPipeline, UpsamplerPipeline, load_pipeline, load_upsampler
from fastt2i.models.gigagan import UPSAMPLER_PRESETS, GigaGANUpsampler
from fastt2i.text.registry import load_encoder


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upsampler", default=None, help="an upsampler (bundled name, export or run directory)")
    ap.add_argument("--random-upsampler", action="store_true", help="the emoji preset with random weights")
    ap.add_argument("--bases", default="gigagan-emoji64,stylegan-t-emoji64,paella-emoji64")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.random_upsampler:
        torch.manual_seed(0)
        cfg = UPSAMPLER_PRESETS.build("emoji")
        up = UpsamplerPipeline(GigaGANUpsampler(cfg).eval(), load_encoder(cfg.text_encoder), dtype=args.dtype).eval()
        what = "emoji preset, random weights"
    else:
        up = load_upsampler(args.upsampler, dtype=args.dtype)
        what = args.upsampler or "the bundled upsampler"
    batches = [int(b) for b in args.batches.split(",")]
    print(f"upsampler: {what} ({up.input_resolution} -> {up.resolution} px); {args.threads} thread(s), {args.dtype}, "
          f"median of {args.repeats}\n")
    print("| base | batch | base ms/img | upsampler ms/img | chained ms/img | chained / base |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.bases.split(","):
        base = load_pipeline(name, dtype=args.dtype)
        chain = UpscaledPipeline(base, up)
        for b in batches:
            prompts, seeds = ["red heart"] * b, list(range(b))
            low = base.generate(prompts, seeds)
            t_base = median_seconds(lambda: base.generate(prompts, seeds), args.repeats)
            t_up = median_seconds(lambda: up.upscale(low, prompts, seeds), args.repeats)
            t_chain = median_seconds(lambda: chain.generate(prompts, seeds), args.repeats)
            print(f"| {name} | {b} | {t_base / b * 1e3:.1f} | {t_up / b * 1e3:.1f} | {t_chain / b * 1e3:.1f} | "
                  f"{t_chain / t_base:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
