"""Where the time goes: torch-profiler tables (top ops by self CPU time) of the emoji64 hot paths, fp32 and bf16.

    python benchmarks/profile_ops.py                                   # every case, 2 threads, top 12 ops
    python benchmarks/profile_ops.py --cases gfwd32,gigagan-step --rows 20 --out /tmp/profile.md

Cases (the same configurations as `generator_speed.py` and `train_step.py`, random weights, seeded):

- ``gfwd32``: the `gigagan-emoji64` generator preset, one forward at batch 32 under `torch.inference_mode` (text
  embeddings precomputed, psi = 1), as `GigaGANPipeline` runs it (`dtype="bf16"`: weights and activations in bf16).
- ``gigagan-step``: one full GigaGAN `emoji64` training step at batch 32 with every loss on and R1 off (the "all
  losses, no R1" case of `train_step.py`).
- ``paella-step``: one Paella `emoji64` training step at batch 32 with the token cache warm.
- ``vqgan-step``: one VQGAN `emoji64` step with every loss on (L1, codebook, perceptual, PatchGAN G and D).

Each case runs in this process after `--warmup` untimed calls; one call is profiled (`torch.profiler`, CPU
activities). The table lists the ops with the largest self CPU time, their share of the profiled call's total self
time, the call count and the input dtypes seen (so that a bf16 run shows which kernels really ran in bf16). Profiler
overhead inflates small ops; read shares, not milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generator_speed import _build  # noqa: E402  (the same generator and inputs)
from train_step import _cases, _trainer_class  # noqa: E402  (the same run configurations)

from fastt2i.training.trainer import step_seconds  # noqa: E402

CASES = ("gfwd32", "gigagan-step", "paella-step", "vqgan-step")
STEP_CASE = {"gigagan-step": ("gigagan", "all losses, no R1"), "paella-step": ("paella", "token cache"),
             "vqgan-step": ("vqgan", "all losses")}


def _table(prof: Any, rows: int) -> tuple[list[tuple[str, float, float, int]], float]:
    """((op, self ms, share of the total self time, calls) of the `rows` costliest ops, total self ms)."""
    self_us: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for ev in prof.events():
        if ev.name.startswith("##"):  # our own record_function marker
            continue
        self_us[ev.name] += ev.self_cpu_time_total
        calls[ev.name] += 1
    total = sum(self_us.values()) or 1.0
    top = sorted(self_us, key=self_us.get, reverse=True)[:rows]
    return [(name, self_us[name] / 1e3, self_us[name] / total, calls[name]) for name in top], total / 1e3


def _op_dtypes(prof: Any) -> dict[str, str]:
    """op name -> the floating dtypes of its tensor inputs (from record_shapes' input types)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for ev in prof.events():
        for t in getattr(ev, "input_dtypes", None) or []:  # e.g. "float", "c10::BFloat16"
            if t in ("float", "double"):
                seen[ev.name].add("fp32")
            elif "BFloat16" in t:
                seen[ev.name].add("bf16")
            elif "Half" in t:
                seen[ev.name].add("fp16")
    return {k: "+".join(sorted(v)) for k, v in seen.items()}


def profile_generator(precision: str, warmup: int) -> Any:
    """One emoji64 generator forward at batch 32 as `generator_speed.py` times it (the default per-layer conv form,
    constant noise, 16 text tokens; bf16 = `torch.autocast("cpu", bfloat16)`, as `GigaGANPipeline(dtype="bf16")`)."""
    G, inputs = _build("emoji64", [32], 16)
    z, text = inputs[32]
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        for _ in range(warmup):
            G(z, text, noise_mode="const")
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof, record_function("##call"):
            G(z, text, noise_mode="const")
    return prof


def profile_step(case: str, precision: str, warmup: int) -> Any:
    family, name = STEP_CASE[case]
    box: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg, prepare = _cases(family, precision, Path(tmp))[name]

        def hook(trainer: Any) -> None:
            if prepare is not None:
                prepare(trainer)
            step = trainer.train_step

            def profiled(batch: dict, s: int) -> Any:
                if s != warmup:
                    return step(batch, s)
                with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof, record_function("##call"):
                    out = step(batch, s)
                box["prof"] = prof
                return out

            trainer.train_step = profiled

        step_seconds(_trainer_class(family), cfg, steps=1, warmup=warmup, captions=family != "vqgan", prepare=hook)
    return box["prof"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rows", type=int, default=12)
    p.add_argument("--out", help="also write the markdown here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads; top {args.rows} ops by self CPU time "
             "of one profiled call", ""]
    for case in args.cases.split(","):
        if case not in CASES:
            p.error(f"unknown case {case!r}; choose from {', '.join(CASES)}")
        for precision in args.precisions.split(","):
            prof = profile_generator(precision, args.warmup) if case == "gfwd32" else \
                profile_step(case, precision, args.warmup)
            top, total_ms = _table(prof, args.rows)
            kinds = _op_dtypes(prof)
            lines += [f"### {case}, {precision} (profiled call: {total_ms:.0f} ms self CPU in total)", "",
                      "| op | self ms | share | calls | input dtypes |", "| --- | ---: | ---: | ---: | --- |"]
            lines += [f"| `{name}` | {ms:.1f} | {share:.1%} | {n} | {kinds.get(name, '')} |"
                      for name, ms, share, n in top]
            lines.append("")
            print("\n".join(lines[-(len(top) + 4):]), flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
