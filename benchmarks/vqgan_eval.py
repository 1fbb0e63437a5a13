"""Reconstruction quality and codebook usage of Paella VQGAN exports on a dataset's validation split.

    python benchmarks/vqgan_eval.py runs/vqgan-emoji64/export --data ../shared/data/emoji64.npz
    python benchmarks/vqgan_eval.py runs/a/export runs/b/export --num 600 --references

Prints one Markdown row per export: PSNR (dB, images in [-1,1]), L1, FD of emoji-net features of the reconstructions
against the originals (`fd_emojinet_recon`, 0 = indistinguishable to emoji-net), codebook perplexity and % of codes
used over the split, and the encode+decode time per image. `--references` adds rows that anchor the numbers: the
images blurred to 16 px and back (what an f=4 model with no detail would score) and 32 px and back.
"""

from __future__ import annotations

import argparse
import time

import torch

from fastt2i.metrics.sources import blur, split_samples
from fastt2i.metrics.stats import FeatureStats, frechet_distance_stats
from fastt2i.training.vqgan import evaluate_reconstruction, load_fd_network, psnr


@torch.no_grad()
def reference_row(kind: int, args: argparse.Namespace, fd_net: torch.nn.Module) -> dict[str, float]:
    """PSNR / L1 / FD of the split's images blurred to `kind` px and back."""
    stats = (FeatureStats(fd_net.dim), FeatureStats(fd_net.dim))
    p = l1 = 0.0
    n = 0
    for b in split_samples(args.data, args.split, args.resolution, split_by=args.split_by, batch_size=args.batch_size):
        x = b["image"][: args.num - n].float()
        if not len(x):
            break
        y = blur(x, kind)
        p += float(psnr(y, x).sum())
        l1 += float((y - x).abs().flatten(1).mean(1).sum())
        stats[0].update(fd_net(y))
        stats[1].update(fd_net(x))
        n += len(x)
        if n >= args.num:
            break
    return {"psnr": p / n, "l1": l1 / n, "fd": frechet_distance_stats(*stats), "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exports", nargs="*", help="VQGAN export directories (run_dir/export)")
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--split", default="val")
    ap.add_argument("--split-by", default="key", choices=["key", "emoji"])
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--num", type=int, default=10_000, help="at most this many images")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--fd-net", default="emoji-net", help="'emoji-net' (bundled) or an emoji-net export")
    ap.add_argument("--references", action="store_true", help="add blur16 / blur32 reference rows")
    args = ap.parse_args()
    if not args.exports and not args.references:
        ap.error("give at least one export directory (or --references)")
    from fastt2i.models import load_pretrained
    from fastt2i.models.paella import VQGAN

    fd_net = load_fd_network(args.fd_net)
    s = args.split
    print(f"split {s!r} of {args.data} at {args.resolution} px, FD on {args.fd_net} features")
    print("| model | codes | PSNR dB | L1 | FD recon | perplexity | % codes used | ms/image | N |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in args.exports:
        vq = load_pretrained(path)
        if not isinstance(vq, VQGAN):
            raise SystemExit(f"{path} holds a {type(vq).__name__}, not a Paella VQGAN")
        t0 = time.perf_counter()
        r = evaluate_reconstruction(vq, args.data, resolution=args.resolution, num=args.num,
                                    batch_size=args.batch_size, split=s, split_by=args.split_by, fd_net=None)
        ms = (time.perf_counter() - t0) * 1000 / r[f"num_{s}"]  # tokenize + decode (+ data), no FD
        r = evaluate_reconstruction(vq, args.data, resolution=args.resolution, num=args.num,
                                    batch_size=args.batch_size, split=s, split_by=args.split_by, fd_net=fd_net)
        print(f"| {path} | {vq.codebook_size} | {r[f'psnr_{s}']:.2f} | {r[f'l1_{s}']:.4f} | "
              f"{r[f'fd_emojinet_recon_{s}']:.2f} | {r[f'codebook_perplexity_{s}']:.1f} | "
              f"{r[f'codebook_used_pct_{s}']:.1f} | {ms:.2f} | {r[f'num_{s}']} |")
    if args.references:
        for kind in (16, 32):
            r = reference_row(kind, args, fd_net)
            print(f"| reference: blur{kind} | - | {r['psnr']:.2f} | {r['l1']:.4f} | {r['fd']:.2f} | - | - | - | "
                  f"{r['n']} |")


if __name__ == "__main__":
    main()
