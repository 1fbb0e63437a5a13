"""`fastt2i export`: export a run's training state (finished or not) to model.safetensors + config.json."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from fastt2i.errors import ConfigError

EXAMPLES = """examples:
  fastt2i export gigagan --run-dir runs/gigagan-emoji64 --out exports/gigagan-emoji64
  fastt2i export gigagan --run-dir runs/gigagan-emoji64 --state runs/gigagan-emoji64/state/state-000006250.pt --out x
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run (its newest or a given training state) for inference",
                       description="Export what a family's trainer exports (GigaGAN: the EMA generator) from a run "
                                   "directory's training state; a finished run already wrote RUN_DIR/export.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", help="model family of the run (as in `fastt2i train FAMILY`)")
    p.add_argument("--run-dir", required=True, help="the run directory (holds config.json and state/)")
    p.add_argument("--state", help="a training state file (default: the newest readable one of the run)")
    p.add_argument("--out", required=True, help="export directory to write")
    p.set_defaults(func=run)


def export_run(family_name: str, run_dir: str | Path, out: str | Path, state: str | Path | None = None) -> dict:
    """Rebuild the run's trainer from RUN_DIR/config.json, load a training state and call its `export(out)`.

    Returns {"path", "state", "step", "kimg"}.
    """
    from fastt2i.cli.train import families
    from fastt2i.config import from_dict
    from fastt2i.training.state import latest_state, load_state

    fams = families()
    if family_name not in fams:
        raise ConfigError(f"unknown family {family_name!r}; choose one of: {', '.join(sorted(fams))}")
    family = fams[family_name]
    run_dir = Path(run_dir).expanduser()
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.json)")
    cls = type(next(iter(family.presets.values()))())
    cfg = from_dict(cls, json.loads(cfg_path.read_text()))
    state_file = Path(state).expanduser() if state else latest_state(run_dir)
    if state_file is None or not state_file.is_file():
        raise ConfigError(f"no training state in {run_dir}/state (pass --state PATH)")
    # the trainer is only used to rebuild the models: point it at a scratch run dir so nothing in RUN_DIR changes
    train = dataclasses.replace(cfg.train, run_dir=str(Path(out).expanduser().absolute() / ".export-scratch"))
    trainer = family.trainer()(dataclasses.replace(cfg, train=train), tensorboard=False, progress=False)
    trainer.setup()
    trainer.load_training_state(load_state(state_file), source=str(state_file))
    path = trainer.export(Path(out).expanduser())
    if path is None:
        raise ConfigError(f"the {family_name} trainer exports nothing")
    return {"path": str(path), "state": str(state_file), "step": trainer.step, "kimg": trainer.cur_nimg / 1000}


def run(args: argparse.Namespace) -> int:
    info = export_run(args.family, args.run_dir, args.out, args.state)
    print(f"exported {info['state']} (step {info['step']}, {info['kimg']:.1f} kimg) to {info['path']}")
    return 0
