"""GigaGAN generator forward speed on CPU: fused vs non-fused modulated convs, fp32 vs bf16 autocast; prints tables.

    python benchmarks/generator_speed.py                       # emoji64, batch 1 and 32, 2 threads
    python benchmarks/generator_speed.py --baseline-src /tmp/base/src    # also time an older checkout's src/
    python benchmarks/generator_speed.py --layers               # per-layer fused vs non-fused (sets the auto rule)
    python benchmarks/generator_speed.py --threads 1 --clock cpu  # steadier on a machine shared with other jobs
    python benchmarks/generator_speed.py --omp-passive          # 2 threads on a shared machine: no OpenMP spinning

(`git archive 718a537 src | tar -x -C /tmp/base` makes such a baseline `src/`.)

Each source tree runs in its own worker process (one model, seeded); the cases are timed round-robin, one forward per
case per round, so that load from other processes hits every case alike; the table gives medians over `--repeats`
rounds and ratios against the "fused" form (every modulated conv as one grouped conv with per-sample kernels: the
form this code had for kernel banks) at the same batch and dtype. Forms: fused, unfused (StyleGAN2's non-fused form
everywhere: shared-weight convs, style and kernel selection on the activations), auto (the per-layer choice of
`ModulatedConv2d.use_fused`, the default).

GFLOP/s counts the model's FLOPs (torch.utils.flop_counter.FlopCounterMode over the fused form: the useful work; the
non-fused form of an N-kernel bank executes N times its convolution FLOPs, shown as "executed GFLOP"), against the
fp32 and bf16 matmul peaks measured in the same run (a 2048 x 2048 matmul loop, round-robin with the cases).
Peak memory: growth of the resident-set high-water mark (resource.getrusage ru_maxrss) over one forward in a fresh
process per case, after the model and inputs exist (activations, oneDNN scratch and the allocator's slack).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

FORMS = ("fused", "unfused", "auto")
DTYPES = ("fp32", "bf16")


# --------------------------------------------------------------------------------------------------------- worker
def _build(preset: str, batches: list[int], text_len: int):
    import torch

    from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator

    cfg = GIGAGAN_PRESETS.build(preset)
    torch.manual_seed(0)
    G = GigaGANGenerator(cfg).eval()
    g = torch.Generator().manual_seed(1)
    inputs = {}
    for b in batches:
        mask = torch.ones(b, text_len, dtype=torch.bool)
        inputs[b] = (torch.randn(b, cfg.z_dim, generator=g),
                     (torch.randn(b, text_len, cfg.text_dim, generator=g), mask,
                      torch.randn(b, cfg.pooled_width, generator=g)))
    return G, inputs


def _set_form(G, form: str) -> None:
    if form == "baseline":
        return
    from fastt2i.nn.modulated import set_conv_form

    set_conv_form(G, {"fused": True, "unfused": False, "auto": None}[form])


def _ctx(dtype: str):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()


CLOCK = time.perf_counter


def _forward(G, inputs, dtype: str) -> float:
    import torch

    z, text = inputs
    t0 = CLOCK()
    with torch.inference_mode(), _ctx(dtype):
        G(z, text, noise_mode="const")
    return CLOCK() - t0


def _matmul_peak(dtype: str, n: int = 2048, reps: int = 4) -> float:
    import torch

    a = torch.randn(n, n).to(torch.bfloat16 if dtype == "bf16" else torch.float32)
    a @ a
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ a
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def _flops(G, inputs, dtype: str) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    z, text = inputs
    counter = FlopCounterMode(display=False)
    # grad recording on (FlopCounterMode's module tracker needs it); attention through the math backend, whose
    # matmuls the counter sees (it has no formula for the CPU flash kernel)
    with counter, _ctx(dtype), sdpa_kernel([SDPBackend.MATH]):
        G(z, text, noise_mode="const")
    return int(counter.get_total_flops())


def worker(args: argparse.Namespace) -> None:
    """Serve "time FORM DTYPE BATCH", "peak DTYPE", "flops FORM DTYPE BATCH", "mem FORM DTYPE BATCH" on stdin."""
    if args.src:
        sys.path.insert(0, args.src)
    import torch

    torch.set_num_threads(args.threads)
    G, inputs = _build(args.preset, [int(b) for b in args.batches.split(",")], args.text_len)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "quit":
            break
        if cmd == "peak":
            out = _matmul_peak(rest[0])
        elif cmd == "mem":  # a fresh process per case: the high-water mark before and after one forward
            import resource

            form, dtype, b = rest[0], rest[1], int(rest[2])
            _set_form(G, form)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            _forward(G, inputs[b], dtype)
            out = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # MiB (ru_maxrss is KiB)
        else:
            form, dtype, b = rest[0], rest[1], int(rest[2])
            _set_form(G, form)
            out = _flops(G, inputs[b], dtype) if cmd == "flops" else _forward(G, inputs[b], dtype)
        print(json.dumps(out), flush=True)


class Worker:
    def __init__(self, args: argparse.Namespace, src: str | None):
        cmd = [sys.executable, __file__, "--worker", "--preset", args.preset, "--threads", str(args.threads),
               "--clock", args.clock,
               "--batches", args.batches, "--text-len", str(args.text_len)]
        if src:
            cmd += ["--src", src]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        if args.omp_passive:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"worker {cmd} failed to start")

    def ask(self, *words) -> float:
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker died on {words}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()


# --------------------------------------------------------------------------------------------------------- layers
def layers(args: argparse.Namespace) -> None:
    """Per ModulatedConv2d of the preset (its real input shape): fused vs non-fused time, interleaved medians."""
    import torch

    torch.set_num_threads(args.threads)
    G, inputs = _build(args.preset, [int(b) for b in args.batches.split(",")], args.text_len)
    from fastt2i.nn.modulated import ModulatedConv2d

    shapes: dict[str, tuple] = {}

    def hook(name):
        def f(mod, a):
            shapes.setdefault(name, (a[0].shape, a[0].dtype))
        return f

    mods = dict(G.named_modules())
    convs = [n for n, m in mods.items() if isinstance(m, ModulatedConv2d)]
    # StyledConv / ToRGB call their conv's `modulated` (not its forward): hook the parent, whose input x is the same
    handles = [mods[n.rsplit(".", 1)[0]].register_forward_pre_hook(hook(n)) for n in convs]
    with torch.inference_mode():
        G(*inputs[max(inputs)], noise_mode="const")
    for h in handles:
        h.remove()
    print("| layer | in -> out | res (out) | kernels | batch | dtype | fused ms | unfused ms | unfused/fused | auto |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |")
    for name, (shape, _) in shapes.items():
        m = mods[name]
        if m.kernel_size == 1:
            continue
        for b in inputs:
            for dtype in DTYPES:
                g = torch.Generator().manual_seed(0)
                x = torch.randn(b, *shape[1:], generator=g).contiguous(memory_format=torch.channels_last)
                w = torch.randn(b, m.affine.in_features, generator=g)
                times = {True: [], False: []}
                with torch.inference_mode(), _ctx(dtype):
                    if dtype == "bf16":
                        x = x.to(torch.bfloat16)
                    for fused in (True, False):
                        m(x, w, fused=fused)
                    for _ in range(args.repeats):
                        for fused in (True, False):
                            t0 = CLOCK()
                            m(x, w, fused=fused)
                            times[fused].append(CLOCK() - t0)
                    auto = "fused" if m.use_fused(x) else "unfused"
                f, u = statistics.median(times[True]) * 1e3, statistics.median(times[False]) * 1e3
                res = shape[2] * (2 if m.up else 1)
                print(f"| {name.replace('synthesis.', '')} | {m.in_channels} -> {m.out_channels} | {res} | "
                      f"{m.num_kernels} | {b} | {dtype} | {f:.2f} | {u:.2f} | {u / f:.2f} | {auto} |", flush=True)


# --------------------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="emoji64", help="GigaGAN generator preset")
    ap.add_argument("--batches", default="1,32", help="batch sizes")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds (medians over these)")
    ap.add_argument("--text-len", type=int, default=16, help="text tokens per prompt")
    ap.add_argument("--forms", default=",".join(FORMS), help="forms to time: fused, unfused, auto")
    ap.add_argument("--baseline-src", help="also time the generator of this src/ directory (its own defaults)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-case peak-memory processes")
    ap.add_argument("--layers", action="store_true", help="per-layer fused vs non-fused table instead")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall (perf_counter) or cpu (process CPU time: steadier on a shared machine, use with "
                         "--threads 1)")
    ap.add_argument("--omp-passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE in the workers: on a machine shared with other jobs, spinning OpenMP "
                         "threads inflate wall times 2x or more")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.worker:
        return worker(args)
    if args.layers:
        return layers(args)

    workers = {"current": Worker(args, None)}
    if args.baseline_src:
        workers["baseline"] = Worker(args, str(Path(args.baseline_src).resolve()))
    batches = [int(b) for b in args.batches.split(",")]
    cases = [("current", form, dtype, b) for b in batches for dtype in DTYPES for form in args.forms.split(",")]
    if args.baseline_src:
        cases += [("baseline", "baseline", dtype, b) for b in batches for dtype in DTYPES]
    cur = workers["current"]
    model_flops = {b: cur.ask("flops", "fused", "fp32", b) for b in batches}
    executed = {c: workers[c[0]].ask("flops", c[1], c[2], c[3]) for c in cases if c[0] == "current"}
    for c in cases:  # warm-up (oneDNN primitive creation, allocator)
        workers[c[0]].ask("time", *c[1:])
    times: dict[tuple, list[float]] = {c: [] for c in cases}
    peaks: dict[str, list[float]] = {d: [] for d in DTYPES}
    for r in range(args.repeats):
        for d in DTYPES:
            peaks[d].append(cur.ask("peak", d))
        order = cases if r % 2 == 0 else cases[::-1]
        for c in order:
            times[c].append(workers[c[0]].ask("time", *c[1:]))
    for w in workers.values():
        w.close()
    memory = {}
    if not args.no_memory:
        for c in cases:
            w = Worker(args, None if c[0] == "current" else str(Path(args.baseline_src).resolve()))
            memory[c] = w.ask("mem", *c[1:])
            w.close()

    peak = {d: statistics.median(v) for d, v in peaks.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.preset}, {args.threads} threads ({args.clock} clock{', OMP passive' if args.omp_passive else ''}), "
          f"medians of {args.repeats} interleaved rounds; matmul 2048^3 peak: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 "
          f"{peak['bf16']:.0f} GFLOP/s (same run); load average at the end {load:.1f} on {os.cpu_count()} CPUs")
    print("\n| code | form | dtype | batch | ms | speed-up vs fused | model GFLOP | executed GFLOP | GFLOP/s | "
          "% of fp32 peak | % of bf16 peak | peak mem MiB |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in cases:
        src, form, dtype, b = c
        ms = statistics.median(times[c]) * 1e3
        ref = ("current", "fused", dtype, b)
        speed = statistics.median(times[ref]) * 1e3 / ms if ref in times else float("nan")
        gf = model_flops[b] / 1e9
        rate = gf / (ms / 1e3)
        ex = f"{executed[c] / 1e9:.2f}" if c in executed else "-"
        mem = f"{memory[c]:.0f}" if c in memory else "-"
        print(f"| {src} | {form} | {dtype} | {b} | {ms:.1f} | {speed:.2f}x | {gf:.2f} | {ex} | {rate:.0f} | "
              f"{100 * rate / peak['fp32']:.0f}% | {100 * rate / peak['bf16']:.1f}% | {mem} |")


if __name__ == "__main__":
    main()
