"""Paella sampler settings compared: FD (emoji-net) and emoji-clip score per step count, renoise vs confidence, speed.

    python benchmarks/paella_sampling.py runs/paella-emoji64/export --data ../shared/data/emoji64.npz --num 1000
    python benchmarks/paella_sampling.py --random-tiny --data ../shared/data/emoji64.npz --num 64   # plumbing check

For every step count in --steps (default 4,8,12,16,24) and every mode in --modes (renoise = the paper's: random
tokens back with probability t_next; confidence = the least confident fraction t_next of tokens back), generates
--num images for the validation prompts (seed i for prompt i, as `fastt2i eval` does) and prints one Markdown row:
`fd_emojinet` (Frechet distance of emoji-net features against the train split; lower is better),
`clipscore_emojiclip` (emoji-clip text-image cosine x 100; higher is better), and the median wall time of sampling
8 images with that setting (--repeats runs, after one warm-up; all settings timed back to back before the
quality runs) and its ratio to the paper's 12-step renoise sampler. `--random-tiny` builds a random 64 px bundle
(t5-tiny-random text, 64 codes) so the script runs without a trained model: its quality numbers mean nothing;
`--random-preset emoji64 --no-quality` times the emoji64 sizes with random weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch


class Sampler:
    """`generate(prompts, seeds)` for `evaluate_source`, with fixed sampler settings."""

    def __init__(self, pipe, **kw):
        self.pipe, self.kw = pipe, kw

    def to(self, device):
        self.pipe.to(device)
        return self

    def eval(self):
        self.pipe.eval()
        return self

    @torch.no_grad()
    def generate(self, prompts, seeds):
        return self.pipe.generate(prompts, seeds, **self.kw)


def random_preset_pipeline(name: str):
    """A random PaellaPipeline with the VQGAN and denoiser presets `name` (e.g. emoji64: MiniLM text, emoji-clip)."""
    from fastt2i.inference.paella import PaellaPipeline
    from fastt2i.models.paella import PAELLA_PRESETS, VQGAN_PRESETS, PaellaDenoiser
    from fastt2i.models.paella.vqgan import VQGAN
    from fastt2i.text import load_text_encoder
    from fastt2i.models.image_text import load_clip_model

    torch.manual_seed(0)
    cfg = PAELLA_PRESETS.build(name)
    clip = load_clip_model("emoji-clip") if cfg.clip_dim else None
    return PaellaPipeline(VQGAN(VQGAN_PRESETS.build(name)), PaellaDenoiser(cfg), load_text_encoder(cfg.text_encoder),
                          clip, clip_model_spec="emoji-clip" if clip is not None else None).eval()


def random_tiny_pipeline(resolution: int = 64):
    """A random PaellaPipeline at `resolution` px: tiny VQGAN (64 codes), the tiny denoiser preset."""
    from fastt2i.inference.paella import PaellaPipeline
    from fastt2i.models.paella.denoiser import PaellaDenoiser
    from fastt2i.models.paella.presets import PAELLA_PRESETS
    from fastt2i.models.paella.vqgan import VQGAN, VQGANConfig
    from fastt2i.text import load_text_encoder

    torch.manual_seed(0)
    vq = VQGAN(VQGANConfig(resolution=resolution, channels=(16, 32), encoder_blocks=(1, 1), decoder_blocks=(1, 1),
                           codebook_size=64))
    cfg = dataclasses.replace(PAELLA_PRESETS.build("tiny"), token_shape=(resolution // 4, resolution // 4))
    den = PaellaDenoiser(cfg)
    with torch.no_grad():  # break the zero-init output so samples are not constant
        for p in den.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return PaellaPipeline(vq, den, load_text_encoder("t5-tiny-random")).eval()


def time_sampling(pipe, prompts, repeats: int, **kw) -> float:
    """Median seconds to generate len(prompts) images (one warm-up run first)."""
    seeds = list(range(len(prompts)))
    pipe.generate(prompts, seeds, **kw)
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        pipe.generate(prompts, seeds, **kw)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", help="Paella bundle directory (or a run directory with export/)")
    ap.add_argument("--random-tiny", action="store_true", help="use a random tiny 64 px bundle instead")
    ap.add_argument("--random-preset", default=None, metavar="NAME",
                    help="use random weights with the VQGAN + denoiser presets NAME (e.g. emoji64): for timings")
    ap.add_argument("--data", default="../shared/data/emoji64.npz")
    ap.add_argument("--num", type=int, default=1000, help="generated images per setting")
    ap.add_argument("--steps", default="4,8,12,16,24", help="comma-separated step counts")
    ap.add_argument("--modes", default="renoise,confidence", help="comma-separated sampler modes")
    ap.add_argument("--cfg", type=float, default=None, help="guidance weight (default: the sampler's 8)")
    ap.add_argument("--temperature", default="0.7,0.3", help="T0,T1 (default 0.7,0.3)")
    ap.add_argument("--metrics", default="fd_emojinet,clipscore_emojiclip")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (median) of 8 images")
    ap.add_argument("--no-quality", action="store_true", help="only time the sampler")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    if sum(map(bool, (args.bundle, args.random_tiny, args.random_preset))) != 1:
        ap.error("give one of: a bundle directory, --random-tiny, --random-preset NAME")

    from fastt2i.inference.paella import PaellaPipeline
    from fastt2i.evaluation import evaluate_source
    from fastt2i.models.paella.schedule import DEFAULT_CFG

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.random_tiny:
        pipe = random_tiny_pipeline()
    elif args.random_preset:
        pipe = random_preset_pipeline(args.random_preset)
    else:
        pipe = PaellaPipeline.from_pretrained(args.bundle, device=device)
    pipe = pipe.to(device)
    temps = [float(v) for v in args.temperature.split(",")]
    temperature = (temps[0], temps[-1])
    cfg = DEFAULT_CFG if args.cfg is None else args.cfg
    steps_list = [int(s) for s in args.steps.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    metrics = [m.strip() for m in args.metrics.split(",")]
    prompts8 = ["a red heart", "a smiling cat face", "a green apple", "a blue star", "a yellow sun", "a pizza slice",
                "a rocket", "a dog face"]
    label = args.bundle or ("random-tiny" if args.random_tiny else f"random {args.random_preset}")
    print(f"Paella sampling: {label}, {pipe.resolution} px, cfg {cfg}, temperature {temperature}, device {device}, "
          f"{torch.get_num_threads()} threads")
    cols = ["steps", "mode"] + ([] if args.no_quality else metrics) + ["s / 8 images", "x 12-step renoise"]
    settings = [(steps, mode) for steps in steps_list for mode in modes]
    kws = {k: dict(steps=k[0], cfg=cfg, temperature=temperature, mode=k[1]) for k in settings}
    # timings first, back to back (so they share one machine state), each relative to the paper's 12-step sampler
    secs = {k: time_sampling(pipe, prompts8, args.repeats, **kws[k]) for k in settings}
    base = secs.get((12, "renoise")) or time_sampling(pipe, prompts8, args.repeats, **dict(kws[settings[0]], steps=12,
                                                                                             mode="renoise"))
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for k in settings:
        row = [str(k[0]), k[1]]
        if not args.no_quality:
            res = evaluate_source(Sampler(pipe, **kws[k]), args.data, metrics=metrics, num=args.num,
                                  batch_size=args.batch_size, resolution=pipe.resolution, device=device,
                                  progress=False)
            for m in metrics:
                val = next((v for name, v in res.items() if name.startswith(m)), float("nan"))
                row.append(f"{val:.2f}")
        row += [f"{secs[k]:.3f}", f"{secs[k] / base:.2f}"]
        print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
