"""`fastt2i export`: a run's training state (finished or not) -> model.safetensors + config.json; or a model -> ONNX."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from fastt2i.config import from_dict
from fastt2i.errors import ConfigError, DataError
from fastt2i.serialization import atomic_write_dir, check_export_target
from fastt2i.training.state import STATE_DIR, list_states, load_state

EXAMPLES = """examples:
  fastt2i export gigagan --run-dir runs/gigagan-emoji64 --out exports/gigagan-emoji64
  fastt2i export gigagan --run-dir runs/gigagan-emoji64 --state runs/gigagan-emoji64/state/state-000006250.pt --out x
  fastt2i export onnx --model gigagan-emoji64 --out exports/gigagan-emoji64-onnx    # generator.onnx
  fastt2i export onnx --model runs/paella-emoji64 --out exports/paella-emoji64-onnx # denoiser, decoder, conditioner

--out may be new, an empty directory or an earlier export of the same model; anything else needs --overwrite.
The run directory, its state/, the model exported to ONNX, the current and the home directory are never replaced.
ONNX export needs no onnxruntime; running the files does (pip install 'fastt2i[onnx]').
"""

ONNX_TARGET = "onnx"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run (its newest or a given training state) for inference, or a "
                                      "model to ONNX",
                       description="`fastt2i export FAMILY --run-dir R`: export what a family's trainer exports "
                                   "(GigaGAN: the EMA generator) from a run directory's training state; a finished "
                                   "run already wrote RUN_DIR/export. `fastt2i export onnx --model M`: write ONNX "
                                   "graphs of a text-to-image model (GigaGAN generator; Paella denoiser, VQGAN "
                                   "decoder and conditioner) and onnx_config.json for onnxruntime.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", metavar="FAMILY|onnx",
                   help="model family of the run (as in `fastt2i train FAMILY`), or `onnx` to export --model to ONNX")
    p.add_argument("--run-dir", help="the run directory (holds config.json and state/); for FAMILY")
    p.add_argument("--state", help="a training state file (default: the newest readable one of the run); for FAMILY")
    p.add_argument("--model", help="for onnx: a bundled model's name, an export or a run directory (as "
                                   "`fastt2i generate --model`)")
    p.add_argument("--opset", type=int, help="for onnx: the ONNX opset, 14..20 (default 18)")
    p.add_argument("--out", required=True, help="export directory to write")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it is a file, a non-export directory or another model's export")
    p.set_defaults(func=run)


def _check_out(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse an --out that is the run directory, its state/ (or inside it), a folder above the run, or unsafe."""
    o, r = out.resolve(), run_dir.resolve()
    if o == r or o in r.parents or o == r / STATE_DIR or r / STATE_DIR in o.parents:
        raise ConfigError(f"--out {out} is the run directory, a folder above it or inside its {STATE_DIR}/; "
                          f"export to a new directory (a finished run already has {run_dir / 'export'})")
    check_export_target(out, overwrite=overwrite)


def _newest_readable_state(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The newest training state of the run that loads, printing a one-line warning for each newer one skipped."""
    states = list_states(run_dir)
    for path in reversed(states):
        try:
            return path, load_state(path)
        except DataError as e:
            print(f"warning: skipping unreadable state: {e}", file=sys.stderr)
    none = f"none of its {len(states)} state files loads" if states else "it has none"
    raise ConfigError(f"no readable training state in {run_dir / STATE_DIR} ({none}); pass --state PATH")


def export_run(family_name: str, run_dir: str | Path, out: str | Path, state: str | Path | None = None, *,
               overwrite: bool = False) -> dict:
    """Rebuild the run's trainer from RUN_DIR/config.json, load a training state and write its `export` to `out`.

    Nothing in RUN_DIR changes; `out` is replaced only as `fastt2i.serialization.check_export_target` allows.

    Args:
        family_name: the family of the run (as in `fastt2i train FAMILY`).
        run_dir: the run directory (config.json and state/).
        out: the export directory to write.
        state: a training state file; default: the newest readable one of the run.
        overwrite: allow replacing a file, a non-export directory or an export of another class at `out`.

    Returns:
        {"path", "state", "step", "kimg"}.
    """
    from fastt2i.training.presets import families

    fams = families()
    if family_name not in fams:
        raise ConfigError(f"unknown family {family_name!r}; choose one of: {', '.join(sorted(fams))}")
    family = fams[family_name]
    run_dir, out = Path(run_dir).expanduser(), Path(out).expanduser()
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.json)")
    _check_out(out, run_dir, overwrite)
    cls = type(next(iter(family.presets.values()))())
    cfg = from_dict(cls, json.loads(cfg_path.read_text()))
    if state:
        state_file = Path(state).expanduser()
        training_state = load_state(state_file)
    else:
        state_file, training_state = _newest_readable_state(run_dir)
    # The trainer only rebuilds the models: it runs in a scratch directory beside `out` and exports there; the
    # export then moves into `out` in one rename (atomic_write_dir), so nothing in RUN_DIR changes.
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.export", dir=out.parent))
    try:
        train = dataclasses.replace(cfg.train, run_dir=str(scratch.absolute() / "run"))
        trainer = family.trainer_class(dataclasses.replace(cfg, train=train), tensorboard=False, progress=False)
        trainer.setup()
        trainer.load_training_state(training_state, source=str(state_file))
        written = trainer.export(scratch / "export")
        if written is None:
            raise ConfigError(f"the {family_name} trainer exports nothing")

        def move(tmp: Path) -> None:
            for p in Path(written).iterdir():
                os.replace(p, tmp / p.name)

        path = atomic_write_dir(out, move, overwrite=overwrite)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"path": str(path), "state": str(state_file), "step": trainer.step, "kimg": trainer.cur_nimg / 1000}


def _check_args(args: argparse.Namespace) -> None:
    """One-line errors for options that belong to the other kind of export."""
    if args.family == ONNX_TARGET:
        if args.run_dir or args.state:
            raise ConfigError("`fastt2i export onnx` takes --model M (a bundled name, an export or a run directory), "
                              "not --run-dir / --state")
        if not args.model:
            raise ConfigError("`fastt2i export onnx` needs --model M (a bundled name, an export or a run directory)")
        return
    if args.model or args.opset is not None:
        raise ConfigError(f"--model and --opset are for `fastt2i export onnx`; `fastt2i export {args.family}` "
                          "exports a run: pass --run-dir RUN")
    if not args.run_dir:
        raise ConfigError(f"`fastt2i export {args.family}` needs --run-dir RUN (the run directory to export)")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    if args.family == ONNX_TARGET:
        from fastt2i.inference.onnx import export_onnx

        print(f"exporting {args.model} to ONNX (tracing the networks takes a few seconds) ...", flush=True)
        paths = export_onnx(args.model, args.out, opset=args.opset, overwrite=args.overwrite)
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
        return 0
    info = export_run(args.family, args.run_dir, args.out, args.state, overwrite=args.overwrite)
    print(f"exported {info['state']} (step {info['step']}, {info['kimg']:.1f} kimg) to {info['path']}")
    return 0
