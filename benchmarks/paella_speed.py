"""Paella speed, old revision vs this checkout: emoji64 training steps (token predictor, VQGAN) and guided sampling.

    python benchmarks/paella_speed.py                       # old = 718a537, 2 threads, 5 rounds
    python benchmarks/paella_speed.py --old HEAD~3 --rounds 7 --threads 2 --cases paella-train,sample
    python benchmarks/paella_speed.py --old-src /tmp/base/src --profile sample --precisions bf16   # top ops

Cases (all with random weights, seeded the same in both trees; nothing is read outside the repository):

- ``paella-train``: one `PaellaTrainer.train_step` of the emoji64 run preset at batch 32 (random emoji64 VQGAN
  export, emoji-clip, MiniLM; `token_cache` warm and captions pre-encoded, as after the first epoch).
- ``vqgan-train``: one `VQGANTrainer.train_step` of the emoji64 run preset at batch 32 (L1 + codebook).
- ``sample``: `PaellaPipeline.generate` of 8 images (8 prompts, seeds 0-7), 12 steps, CFG 8, temperature
  0.7 -> 0.3, with the emoji64 VQGAN + denoiser, MiniLM and emoji-clip; prompt encoding and decoding included.

Precisions: ``fp32``, and ``bf16`` = `train.mixed_precision=bf16` for the trainers; for sampling,
``generate(dtype="bf16")`` here and, for a revision without that argument, `generate` inside
``torch.autocast("cpu", bfloat16)``.

The old tree is `git archive`d into a temporary directory (the repository is not touched). Each measurement is a
fresh worker process (``PYTHONPATH`` = that tree's ``src``), run with ``--threads`` intra-op threads after
``--warmup`` untimed calls; a worker reports the median of ``--steps`` timed calls. Old and new workers alternate,
round after round, so both see the same machine load; the table shows the median over rounds of those medians and
the ratio old / new (> 1: this checkout is faster), plus the range of the per-round ratios. Timings on a shared
machine are noisy: read the ratios, not the seconds; with other jobs on the cores, ``--threads 1 --clock cpu``
(process CPU time) is far steadier than wall time with two threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("paella-train", "vqgan-train", "sample")
PRECISIONS = ("fp32", "bf16")
PROMPTS8 = ("a red heart", "a smiling cat face", "a green apple", "a blue star", "a yellow sun", "a pizza slice",
            "a rocket", "a dog face")


# ---------------------------------------------------------------------------------------------------- worker side
def _paella_train(precision: str, tmp: Path):
    import dataclasses

    import torch
    from fastt2i.models.paella import VQGAN_PRESETS
    from fastt2i.models.paella.vqgan import VQGAN
    from fastt2i.training.presets import families

    torch.manual_seed(0)
    VQGAN(VQGAN_PRESETS.build("emoji64")).eval().save_pretrained(tmp / "vqgan")
    cfg = families()["paella"].presets["emoji64"]()
    mp = "bf16" if precision == "bf16" else "no"
    cfg = dataclasses.replace(cfg, vqgan=str(tmp / "vqgan"),
                              train=dataclasses.replace(cfg.train, run_dir=str(tmp / "run"), mixed_precision=mp))
    trainer = families()["paella"].trainer_class(cfg, tensorboard=False, progress=False)
    trainer.setup()
    g = torch.Generator().manual_seed(0)
    b = cfg.train.batch_size
    batch = {"image": torch.rand(b, 3, 64, 64, generator=g) * 2 - 1,
             "caption": [f"emoji {i % 7}" for i in range(b)], "key": [f"k{i}" for i in range(b)]}
    trainer.text(batch["caption"])  # the text cache makes caption encoding free in real runs
    return _stepper(trainer, batch)


def _vqgan_train(precision: str, tmp: Path):
    import dataclasses

    import torch
    from fastt2i.training.presets import families

    cfg = families()["vqgan"].presets["emoji64"]()
    mp = "bf16" if precision == "bf16" else "no"
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=str(tmp / "run"), mixed_precision=mp))
    torch.manual_seed(0)
    trainer = families()["vqgan"].trainer_class(cfg, tensorboard=False, progress=False)
    trainer.setup()
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.rand(cfg.train.batch_size, 3, 64, 64, generator=g) * 2 - 1}
    return _stepper(trainer, batch)


def _stepper(trainer, batch: dict):
    """A no-argument call running one `train_step` on `batch`, with the step counter advancing."""
    step = [0]

    def call():
        trainer.train_step(batch, step[0])
        step[0] += 1

    return call


def _sample(precision: str, tmp: Path):
    import inspect

    import torch
    from fastt2i.inference.paella import PaellaPipeline
    from fastt2i.models.image_text import load_clip_model
    from fastt2i.models.paella import PAELLA_PRESETS, VQGAN_PRESETS, PaellaDenoiser
    from fastt2i.models.paella.vqgan import VQGAN
    from fastt2i.text import load_text_encoder

    torch.manual_seed(0)
    cfg = PAELLA_PRESETS.build("emoji64")
    den = PaellaDenoiser(cfg)
    with torch.no_grad():  # wake the zero-initialised output conv and FiLM so the samples are not uniform noise
        for p in den.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    pipe = PaellaPipeline(VQGAN(VQGAN_PRESETS.build("emoji64")), den, load_text_encoder(cfg.text_encoder),
                          load_clip_model("emoji-clip"), clip_model_spec="emoji-clip").eval()
    kw = dict(steps=12, cfg=8.0, temperature=(0.7, 0.3))
    native = "dtype" in inspect.signature(pipe.generate).parameters
    if precision == "bf16" and native:
        kw["dtype"] = "bf16"
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" and not native else None
    prompts, seeds = list(PROMPTS8), list(range(8))

    def call():
        if ctx is None:
            pipe.generate(prompts, seeds, **kw)
        else:
            with ctx():
                pipe.generate(prompts, seeds, **kw)

    return call


BUILDERS = {"paella-train": _paella_train, "vqgan-train": _vqgan_train, "sample": _sample}


def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        call = BUILDERS[args.worker](args.precision, Path(tmp))
        for _ in range(args.warmup):
            call()
        times = []
        for _ in range(args.steps):
            t0 = clock()
            call()
            times.append(clock() - t0)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                call()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows,
                                            max_name_column_width=44), file=sys.stderr)
    print(json.dumps({"median": statistics.median(times), "times": times}))


# ---------------------------------------------------------------------------------------------------- driver side
def old_tree(rev: str, dest: Path) -> Path:
    """`git archive REV src` unpacked under dest; returns the src directory."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
    archive = dest / "src.tar"
    archive.write_bytes(data)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def run_worker(src: Path, case: str, precision: str, args: argparse.Namespace, profile: bool = False) -> float:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--precision", precision,
           "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--clock", args.clock]
    if profile:
        cmd += ["--profile", case, "--profile-rows", str(args.profile_rows)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if res.returncode != 0:
        raise SystemExit(f"worker {case}/{precision} ({src}) failed:\n{res.stderr[-3000:]}")
    if profile:
        lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("USDT") and "Loading weights" not in ln]
        print(f"\n#### {case} {precision} ({'new' if src == ROOT / 'src' else 'old'})\n```\n" + "\n".join(lines)
              + "\n```", flush=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["median"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="718a537", help="old revision (git archive'd; default 718a537)")
    ap.add_argument("--old-src", default=None, help="an old checkout's src/ directory instead of --old")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--precisions", default=",".join(PRECISIONS), help="comma-separated subset of fp32,bf16")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads per worker (default 2)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating old/new rounds per row (median over rounds)")
    ap.add_argument("--steps", type=int, default=3, help="timed calls per worker (its median is one sample)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per worker first")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall (perf_counter) or cpu (process CPU time of the worker: steadier on a shared machine, "
                         "use with --threads 1)")
    ap.add_argument("--profile", default=None, metavar="CASE",
                    help="instead of timing, print torch.profiler's top ops of CASE for old and new")
    ap.add_argument("--profile-rows", type=int, default=15)
    ap.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    bad = [c for c in cases if c not in CASES] + [p for p in precisions if p not in PRECISIONS]
    if bad:
        ap.error(f"unknown case/precision {bad}; cases: {CASES}, precisions: {PRECISIONS}")
    new_src = ROOT / "src"
    with tempfile.TemporaryDirectory() as tmp:
        old_src = Path(args.old_src) if args.old_src else old_tree(args.old, Path(tmp))
        old_label = args.old_src or args.old
        if args.profile:
            for p in precisions:
                for src in (old_src, new_src):
                    run_worker(src, args.profile, p, args, profile=True)
            return
        print(f"Paella speed: old = {old_label}, new = this checkout; {args.threads} threads, {args.rounds} rounds "
              f"x {args.steps} timed calls (after {args.warmup} warm-up) per worker; {args.clock} seconds per call\n")
        print("| case | precision | old s | new s | speed-up old/new | per-round range |")
        print("|---|---|---|---|---|---|")
        results: dict[tuple[str, str], tuple[float, float]] = {}
        for case in cases:
            for p in precisions:
                olds, news = [], []
                for r in range(args.rounds):
                    order = (old_src, new_src) if r % 2 == 0 else (new_src, old_src)  # alternate who goes first
                    for src in order:
                        (olds if src == old_src else news).append(run_worker(src, case, p, args))
                o, n = statistics.median(olds), statistics.median(news)
                ratios = [a / b for a, b in zip(olds, news)]
                results[(case, p)] = (o, n)
                print(f"| {case} | {p} | {o:.3f} | {n:.3f} | **{o / n:.2f}x** | {min(ratios):.2f}-{max(ratios):.2f}x |",
                      flush=True)
        for case in cases:
            if (case, "fp32") in results and (case, "bf16") in results:
                print(f"\n{case}: new bf16 vs old fp32: {results[(case, 'fp32')][0] / results[(case, 'bf16')][1]:.2f}x",
                      end="")
        print()


if __name__ == "__main__":
    main()
