"""One full training step of the emoji64 run presets (batch 32, every loss on), fp32 and bf16, old vs new code.

    python benchmarks/train_step.py --against 718a537                      # the table of the "Speed" issue
    python benchmarks/train_step.py --against 718a537 --repeats 2 --steps 2 --families vqgan --precision fp32
    python benchmarks/train_step.py --repeats 3                            # the working tree only

For each family in --families, each precision in --precision (fp32 = `mixed_precision="no"`, bf16 =
`mixed_precision="bf16"`, HF Accelerate's autocast) and each case below, a fresh process builds the family's `emoji64`
run preset at batch 32 through its revision's own API (`training.presets.run_preset`, or the older
`cli.train.families()`) and runs --warmup + --steps `train_step` calls on random images and captions inside that
revision's `fastt2i.training.trainer.step_seconds` (text encoding stays outside the timer, as the text cache makes it
free in real runs). With `--against REV` the old revision is checked out in a temporary `git worktree` (removed at the
end) and each repeat of a case starts one process per revision (PYTHONPATH=<checkout>/src; they never share one),
lets both set up, then steps them in lockstep: one process runs a step while the other waits, the order alternating
step by step and repeat by repeat (new, old / old, new / ...), so that both see the same machine load. Each repeat
gives one median per case and revision; the table shows the median of those over the repeats, old / new of the two
(the speed-up), the range of the per-repeat (paired) old / new ratios, and the fastest single step of each side.
Cases:

    gigagan  all losses, no R1   D+G step: multi-scale logistic, matching-aware D, CLIP loss, vision-aided D and G
                                 (emoji-clip), style mixing; R1 off (r1_gamma=0)
             all losses, R1      the same with R1 on every step (r1_every=1): the cost of an R1 step
             all losses, amortised   ((r1_every-1) * no-R1 + R1) / r1_every with the preset's r1_every (16)
    paella   tokenise each step  denoiser step with emoji-clip text/image conditioning and the VQGAN encoder in the
                                 step (token_cache off: the first epoch, or any run without the cache)
             token cache         the preset as it trains after its first epoch (token_cache on, tokens cached)
    stylegan-t  preset (CLIP guidance)  D+G step: hinge D heads on the frozen emoji-clip taps (real and fake, DiffAugment,
                                 D-input blur), G adversarial + CLIP guidance with emoji-clip
             no CLIP guidance    the same with clip_guidance_weight=0 (the cost of the third emoji-clip pass)
    vqgan    all losses          L1 + codebook + emoji-clip perceptual (perceptual_weight=1) + PatchGAN G and D
                                 steps (gan_weight=0.1, GAN phase forced on)
             preset (L1)         the emoji64 preset as it is: L1 + codebook only

Paella's frozen VQGAN is a randomly initialised emoji64 VQGAN (VQGAN_PRESETS["emoji64"], seed 0) that each
process builds and exports with its own revision's code, so either revision can load it. A case a revision
cannot run (a missing option, bf16 failing) is reported as "n/a" with the reason below the table. Times are
wall-clock ms per step on CPU with --threads torch threads; on a shared machine only the ratios measured in the same
run mean much.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("gigagan", "stylegan-t", "paella", "vqgan")
PRECISIONS = {"fp32": "no", "bf16": "bf16"}
CASES = {  # family -> the cases a worker measures (the amortised GigaGAN row is computed from the first two)
    "gigagan": ("all losses, no R1", "all losses, R1"),
    "paella": ("tokenise each step", "token cache"),
    "vqgan": ("all losses", "preset (L1)"),
    "stylegan-t": ("preset (CLIP guidance)", "no CLIP guidance"),
}
AMORTISED = "all losses, amortised"
BATCH = 32
MARK = "@@train_step@@ "  # marks the worker's protocol lines on its stdout


# ==================================================================================================== worker side
# Runs inside a subprocess whose PYTHONPATH points at one revision's src/; only that revision's fastt2i is imported.


def _preset(family: str, name: str = "emoji64") -> Any:
    """The run preset through the revision's own API: `training.presets.run_preset`, else the older closures in
    `cli.train.families()`."""
    try:
        from fastt2i.training.presets import run_preset
    except ImportError:
        from fastt2i.cli.train import families

        fam = families()[family]
        presets = fam.presets if hasattr(fam, "presets") else fam["presets"]
        return presets[name]()
    return run_preset(family, name)


def _trainer_class(family: str) -> type:
    if family == "gigagan":
        from fastt2i.training.gigagan import GigaGANTrainer

        return GigaGANTrainer
    if family == "paella":
        from fastt2i.training.paella import PaellaTrainer

        return PaellaTrainer
    if family == "stylegan-t":
        from fastt2i.training.stylegan_t import StyleGANTTrainer

        return StyleGANTTrainer
    from fastt2i.training.vqgan import VQGANTrainer

    return VQGANTrainer


def _gated(trainer: Any, seen: dict[str, Any]) -> None:
    """Wrap `trainer.train_step`: before each step say `ready` and wait for the driver's `go` (so the other
    revision's process is idle while this one is timed), then time the step alone and report it."""
    import time

    import torch

    step = trainer.train_step
    cuda = torch.cuda.is_available()

    def gated(batch: dict, s: int) -> Any:
        _emit("ready", s=s)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("the driver went away")
        t0 = time.perf_counter()
        out = step(batch, s)
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter() - t0
        seen.setdefault("times", []).append(t)
        if isinstance(out, dict):
            seen["losses"] = sorted(k for k in out if k.startswith("loss/"))
        _emit("time", s=s, t=t)
        return out

    trainer.train_step = gated


def _time(family: str, cfg: Any, steps: int, warmup: int, prepare: Any, seen: dict[str, Any]) -> list[float]:
    """The revision's own `fastt2i.training.trainer.step_seconds` (trainer, random batches, captions encoded outside
    the timer) with each step gated and timed by `_gated`; the timed steps' seconds."""
    from fastt2i.training.trainer import step_seconds

    def hook(trainer: Any) -> None:
        if prepare is not None:
            prepare(trainer)
        _gated(trainer, seen)

    step_seconds(_trainer_class(family), cfg, steps=steps, warmup=warmup, captions=family != "vqgan", prepare=hook)
    return seen["times"][warmup:]


def _emit(kind: str, **payload: Any) -> None:
    print(MARK + json.dumps({"kind": kind, **payload}), flush=True)


def _with_train(cfg: Any, **train: Any) -> Any:
    import dataclasses

    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))


def _random_vqgan_export(root: Path) -> str:
    """A randomly initialised emoji64 VQGAN (seed 0) exported with this revision's `save_pretrained`."""
    import torch

    from fastt2i.models.paella import VQGAN_PRESETS
    from fastt2i.models.paella.vqgan import VQGAN

    torch.manual_seed(0)
    path = root / "vqgan-emoji64-random"
    VQGAN(VQGAN_PRESETS.build("emoji64")).save_pretrained(path)
    return str(path)


def _cases(family: str, precision: str, tmp: Path) -> dict[str, tuple[Any, Any]]:
    """case name -> (run config, prepare hook or None) for one family at one precision."""
    import dataclasses

    base = _with_train(_preset(family), mixed_precision=PRECISIONS[precision], batch_size=BATCH, num_workers=0)
    if family == "gigagan":
        on = dataclasses.replace(base, matching_aware=True, clip_loss_weight=base.clip_loss_weight or 0.2,
                                 vision_aided_weight=base.vision_aided_weight or 0.5)
        return {"all losses, no R1": (dataclasses.replace(on, r1_gamma=0.0), None),
                "all losses, R1": (dataclasses.replace(on, r1_gamma=on.r1_gamma or 0.2, r1_every=1), None)}
    if family == "paella":
        cfg = dataclasses.replace(base, vqgan=_random_vqgan_export(tmp))
        if not cfg.clip_model:
            raise RuntimeError("the paella emoji64 preset has no CLIP conditioning")

        def keyed(trainer: Any) -> None:  # the same 32 keys every step: cached from the first (warm-up) step on
            step = trainer.train_step
            trainer.train_step = lambda batch, s: step({**batch, "key": [f"k{i}" for i in range(BATCH)]}, s)

        cases: dict[str, tuple[Any, Any]] = {}
        if hasattr(cfg, "token_cache"):
            cases["tokenise each step"] = (dataclasses.replace(cfg, token_cache=False), None)
            cases["token cache"] = (dataclasses.replace(cfg, token_cache=True), keyed)
        else:  # no cache in this revision: every step tokenises
            cases["tokenise each step"] = (cfg, None)
        return cases
    if family == "stylegan-t":
        return {"preset (CLIP guidance)": (base, None),
                "no CLIP guidance": (dataclasses.replace(base, clip_guidance_weight=0.0), None)}
    # vqgan: force the GAN phase (gan_start_kimg=0, and cur_nimg past it as the revision's own helper does)
    full = dataclasses.replace(base, perceptual_weight=base.perceptual_weight or 1.0,
                               gan_weight=base.gan_weight or 0.1, gan_start_kimg=0.0)

    def gan_on(trainer: Any) -> None:
        trainer.cur_nimg = int(full.gan_start_kimg * 1000)

    return {"all losses": (full, gan_on), "preset (L1)": (base, None)}


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time one case of one family at one precision with the fastt2i on sys.path, step by step as the driver says."""
    import torch

    torch.set_num_threads(args.threads)
    import fastt2i

    result: dict[str, Any] = {"fastt2i": str(Path(fastt2i.__file__).resolve().parent), "torch": torch.__version__,
                              "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.family == "gigagan":
                result["r1_every"] = int(_preset("gigagan").r1_every)
            cases = _cases(args.family, args.precision, Path(tmp))
            if args.case not in cases:
                return {**result, "error": "case not supported by this revision"}
            cfg, prepare = cases[args.case]
            seen: dict[str, Any] = {}
            result["times"] = _time(args.family, cfg, args.steps, args.warmup, prepare, seen)
            result["losses"] = seen.get("losses", [])
            # the process's resident-set high-water mark (Linux: KiB): model, optimizer, activations of a step
            result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        except Exception as e:  # reported as n/a with its first line
            first = str(e).splitlines()[0] if str(e) else ""
            return {**result, "error": f"{type(e).__name__}: {first}", "trace": traceback.format_exc()[-2000:]}
    return result


# ==================================================================================================== driver side


def _git(*cmd: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *cmd], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _label(checkout: Path, dirty_check: bool) -> str:
    """`<short hash>` of a checkout, `+ working tree` when it has uncommitted changes to tracked files."""
    try:
        rev = _git("rev-parse", "--short", "HEAD", cwd=checkout)
        dirty = dirty_check and bool(_git("status", "--porcelain", "--untracked-files=no", cwd=checkout))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return str(checkout)
    return f"{rev} + working tree" if dirty else rev


@contextlib.contextmanager
def old_checkout(rev: str):
    """A detached `git worktree` of REV in a temporary directory (or REV itself if it is a checkout directory)."""
    if Path(rev).is_dir() and (Path(rev) / "src" / "fastt2i").is_dir():
        yield Path(rev).resolve()
        return
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = Path(tempfile.mkdtemp(prefix=f"fastt2i-train-step-{commit[:7]}-"))
    path.rmdir()
    _git("worktree", "add", "--detach", str(path), commit)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=REPO, capture_output=True)


class Worker:
    """One measurement process: this script's `--worker` with PYTHONPATH=<checkout>/src, driven over stdin/stdout."""

    def __init__(self, src: Path, family: str, precision: str, case: str, args: argparse.Namespace):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(src)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(args.threads)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--family", family, "--case", case,
               "--precision", precision, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads)]
        self.expected = (src / "fastt2i").resolve()
        self.cwd = tempfile.TemporaryDirectory()  # nothing lands in either checkout
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, cwd=self.cwd.name, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1)
        self.watchdog = threading.Timer(args.timeout, self.proc.kill)
        self.watchdog.start()
        self.result: dict[str, Any] | None = None

    def message(self) -> dict[str, Any]:
        """The next protocol message ({"kind": "ready" | "time" | "result", ...}); a "result" with an error if the
        process ended without one."""
        for line in self.proc.stdout:
            if line.startswith(MARK):
                msg = json.loads(line[len(MARK):])
                if msg["kind"] == "result":
                    self.finish(msg["result"])
                return msg
        self.proc.wait()
        self.stderr.seek(0)
        tail = self.stderr.read().strip().splitlines()[-1:] or ["no output"]
        killed = not self.watchdog.is_alive() and self.proc.returncode < 0
        self.finish({"error": "timed out" if killed else f"worker exited {self.proc.returncode}: {tail[0]}"})
        return {"kind": "result", "result": self.result}

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, result: dict[str, Any]) -> None:
        if "fastt2i" in result and Path(result["fastt2i"]) != self.expected:
            result = {"error": f"the worker imported {result['fastt2i']}, not {self.expected} (is fastt2i "
                               "installed non-editable?)"}
        self.result = result

    def close(self) -> dict[str, Any]:
        """Wait for the process to end (a worker still waiting for `go` exits when its stdin closes)."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        while self.result is None:
            self.message()
        self.proc.wait()
        self.watchdog.cancel()
        self.stderr.close()
        self.cwd.cleanup()
        return self.result


def run_pair(srcs: dict[str, Path], order: list[str], family: str, precision: str, case: str,
             args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """One repeat of one case: a fresh process per revision, set up side by side, then stepped in lockstep (one
    process steps while the other waits; the order alternates step by step, starting with `order`)."""
    workers = {side: Worker(srcs[side], family, precision, case, args) for side in order}
    try:
        live = list(order)
        k = 0
        while True:
            live = [side for side in live if workers[side].message()["kind"] == "ready"]  # both idle now
            if not live:
                break
            for side in live if k % 2 == 0 else live[::-1]:
                workers[side].go()
                if workers[side].message()["kind"] != "time":
                    live.remove(side)
            k += 1
    finally:
        out = {side: w.close() for side, w in workers.items()}
    return out


def _case_stat(res: dict[str, Any], case: str, stat: Any = statistics.median) -> float | None:
    c = res.get("cases", {}).get(case, {})
    return stat(c["times"]) if c.get("times") else None


def _case_error(res: dict[str, Any], case: str) -> str | None:
    if "error" in res:
        return res["error"]
    return res.get("cases", {}).get(case, {}).get("error", "not measured")


def per_repeat(res: dict[str, Any], family: str, stat: Any = statistics.median) -> dict[str, float | None]:
    """case -> median (or `stat`) seconds of one repeat's results (plus the amortised GigaGAN step)."""
    out = {case: _case_stat(res, case, stat) for case in CASES[family]}
    if family == "gigagan":
        no_r1, r1, k = out["all losses, no R1"], out["all losses, R1"], res.get("r1_every", 16)
        out[AMORTISED] = ((k - 1) * no_r1 + r1) / k if no_r1 is not None and r1 is not None else None
    return out


def pooled(runs: list[dict[str, Any]], side: str) -> dict[str, Any]:
    """Every repeat's step times of one side merged into one result (for the minima)."""
    cases: dict[str, Any] = {}
    for r in runs:
        for case, c in r[side].get("cases", {}).items():
            cases.setdefault(case, {"times": []})["times"] += c.get("times") or []
    return {"cases": cases, "r1_every": next((r[side]["r1_every"] for r in runs if "r1_every" in r[side]), 16)}


def rows_of(family: str) -> tuple[str, ...]:
    return CASES[family] + ((AMORTISED,) if family == "gigagan" else ())


def table(results: dict, args: argparse.Namespace, labels: dict[str, str]) -> str:
    """The markdown report: header line, table, notes (n/a reasons, loss names per case)."""
    have_old = "old" in labels
    threads = args.threads
    head = (f"train_step.py: emoji64 presets at batch {BATCH}, {threads} torch thread(s), {args.steps} timed steps "
            f"after {args.warmup} warm-up per process, {args.repeats} alternating repeat(s); new = {labels['new']}"
            + (f", old = {labels['old']}" if have_old else "")
            + f"; torch {results.get('torch', '?')}, {platform.machine()}, {os.cpu_count()} CPUs")
    lines = [head, "", ("| family | case | precision | old ms/step | new ms/step | speed-up (old/new) "
                        "| paired ratios | fastest old / new ms | peak RSS old / new MiB |"),
             "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    notes: list[str] = []
    losses: dict[tuple[str, str], list[str]] = {}

    def ms(x: float | None) -> str:
        return f"{1000 * x:.0f}" if x is not None else "n/a"

    for family in args.families:
        for precision in args.precision:
            runs = results["runs"].get((family, precision), [])
            for case in rows_of(family):
                med: dict[str, float | None] = {}
                for side in ("old", "new") if have_old else ("new",):
                    vals = [per_repeat(r[side], family)[case] for r in runs]
                    vals = [v for v in vals if v is not None]
                    med[side] = statistics.median(vals) if vals else None
                    if not vals and case != AMORTISED:
                        err = next((_case_error(r[side], case) for r in runs), "not run")
                        notes.append(f"- {side} ({labels[side]}), {family} / {case} / {precision}: n/a: {err}")
                    for r in runs:
                        names = r[side].get("cases", {}).get(case, {}).get("losses")
                        if names:
                            losses[(family, case)] = names
                paired = []
                if have_old:
                    for r in runs:
                        o, n = per_repeat(r["old"], family)[case], per_repeat(r["new"], family)[case]
                        if o is not None and n:
                            paired.append(o / n)
                old, new = med.get("old"), med["new"]
                speed = f"{old / new:.2f}x" if old is not None and new else ("n/a" if have_old else "")
                rng = (f"{min(paired):.2f}-{max(paired):.2f}" if len(paired) > 1 else
                       f"{paired[0]:.2f}" if paired else "")
                fast = {side: per_repeat(pooled(runs, side), family, min)[case] for side in med}
                fastest = f"{ms(fast['old'])} / {ms(fast['new'])}" if have_old else ms(fast["new"])
                rss = {side: [r[side].get("cases", {}).get(case, {}).get("peak_rss_mib") for r in runs] for side in med}
                rss = {side: max((v for v in vals if v), default=None) for side, vals in rss.items()}
                mib = " / ".join(f"{rss[side]:.0f}" if rss[side] else "n/a" for side in med)
                lines.append(f"| {family} | {case} | {precision} | {ms(old) if have_old else ''} | {ms(new)} | "
                             f"{speed} | {rng} | {fastest} | {mib} |")
    if losses:
        lines += ["", "Loss terms each case's step returned (new revision; the old one's where the new has none):"]
        lines += [f"- {f} / {c}: {', '.join(n.removeprefix('loss/') for n in names)}"
                  for (f, c), names in losses.items()]
    if notes:
        lines += ["", "Not measured:"] + notes
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--against", metavar="REV", help="old revision (commit, tag or a checkout directory) timed side by "
                                                    "side in a temporary git worktree")
    p.add_argument("--repeats", type=int, default=3, help="alternating old/new repeats per measurement (default 3)")
    p.add_argument("--steps", type=int, default=5, help="timed train_step calls per process (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed train_step calls first (default 1)")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of " + ",".join(FAMILIES))
    p.add_argument("--precision", default="fp32,bf16", help="comma-separated subset of fp32,bf16")
    p.add_argument("--threads", type=int, default=2, help="torch threads per process (default 2)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before one process is given up (default 1800)")
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    p.add_argument("--json", type=Path, help="write every raw step time here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--family", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _emit("result", result=worker(args))
        return 0
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    args.precision = [x.strip() for x in args.precision.split(",") if x.strip()]
    bad = [f for f in args.families if f not in FAMILIES] + [x for x in args.precision if x not in PRECISIONS]
    if bad or args.repeats < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        p.error(f"unknown families/precisions {bad} or non-positive --repeats/--steps/--threads")
    if args.out is not None and args.out.parent and not args.out.parent.is_dir():
        p.error(f"--out: no directory {args.out.parent}")

    results: dict[str, Any] = {"runs": {}}
    labels = {"new": _label(REPO, True)}
    with old_checkout(args.against) if args.against else contextlib.nullcontext() as old:
        srcs = {"new": REPO / "src"}
        if old is not None:
            srcs["old"] = old / "src"
            labels["old"] = _label(old, dirty_check=Path(args.against).is_dir())
        units = [(f, x) for f in args.families for x in args.precision]
        for r in range(args.repeats):
            order = list(srcs) if r % 2 == 0 else list(srcs)[::-1]
            for family, precision in units:
                rep: dict[str, Any] = {side: {"cases": {}} for side in srcs}
                for case in CASES[family]:
                    print(f"repeat {r + 1}/{args.repeats}: {family} / {case} / {precision} ...", file=sys.stderr,
                          flush=True)
                    for side, res in run_pair(srcs, order, family, precision, case, args).items():
                        rep[side]["cases"][case] = res
                        for key in ("torch", "r1_every"):
                            if key in res:
                                rep[side][key] = res[key]
                        results.setdefault("torch", res.get("torch"))
                        t = res.get("times")
                        msg = f"{1000 * statistics.median(t):.0f} ms" if t else f"n/a ({res.get('error')})"
                        print(f"    {side} ({labels[side]}): {msg}", file=sys.stderr, flush=True)
                results["runs"].setdefault((family, precision), []).append(rep)
    text = table(results, args, labels)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)
    if args.json is not None:
        raw = {"labels": labels, "threads": args.threads, "steps": args.steps, "warmup": args.warmup,
               "runs": {f"{f}/{x}": reps for (f, x), reps in results["runs"].items()}}
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
