"""Writing an export never destroys what is at the target, falls back to an older readable state, respects the umask."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from fastt2i.cli import main
from fastt2i.config import to_dict
from fastt2i.errors import ConfigError
from fastt2i.serialization import MODEL_CLASSES, PretrainedMixin, atomic_write_dir, register_model
from fastt2i.training.presets import families


@dataclass(frozen=True)
class LinConfig:
    """Config of the test models."""

    dim: int = 3


class Lin(PretrainedMixin, nn.Module):
    """One linear layer."""

    config_class = LinConfig

    def __init__(self, config: LinConfig):
        super().__init__()
        self.config = config
        self.lin = nn.Linear(config.dim, config.dim)


class OtherLin(Lin):
    """The same network under another class name."""


for _name, _cls in (("test-safety-lin", Lin), ("test-safety-other", OtherLin)):
    if _name not in MODEL_CLASSES:
        register_model(_name)(_cls)


def tree(path: Path) -> dict[str, bytes | None]:
    """Every path under `path` with its bytes (None for directories), to check that nothing changed."""
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None) for p in sorted(path.rglob("*"))}


# ------------------------------------------------------------------------------------ 1: the target is protected
def test_save_pretrained_refuses_files_and_foreign_directories(tmp_path):
    model = Lin(LinConfig())
    file = tmp_path / "notes.txt"
    file.write_text("my notes")
    with pytest.raises(ConfigError, match="is a file"):
        model.save_pretrained(file)
    assert file.read_text() == "my notes"
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("a,b\n")
    with pytest.raises(ConfigError, match="not empty and not a fastt2i export"):
        model.save_pretrained(work)
    assert tree(work) == {"data.csv": b"a,b\n"}
    other = OtherLin(LinConfig()).save_pretrained(tmp_path / "other")
    before = tree(other)
    with pytest.raises(ConfigError, match="holds a 'test-safety-other' export, not 'test-safety-lin'"):
        model.save_pretrained(other)
    assert tree(other) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary sibling left behind
    # an empty directory and an earlier export of the same class need no flag; overwrite=True replaces the rest
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "empty", other, work, file):
        out = model.save_pretrained(target, overwrite=target in (other, work, file))
        assert json.loads((out / "config.json").read_text())["class"] == "test-safety-lin"
        assert Lin.from_pretrained(out).config == LinConfig()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kind", ["run-config", "state", "log", "cwd", "cwd-parent", "home"])
def test_never_replaces_a_run_the_current_or_the_home_directory(tmp_path, monkeypatch, kind):
    target = tmp_path / "target"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "work.txt").write_text("precious")
    if kind == "run-config":
        (target / "config.json").write_text(json.dumps({"train": {"run_dir": str(target)}}))
    elif kind == "state":
        (target / "state").mkdir()
    elif kind == "log":
        (target / "log.jsonl").write_text("{}\n")
    elif kind == "cwd":
        monkeypatch.chdir(target)
    elif kind == "cwd-parent":
        monkeypatch.chdir(target / "sub")
    else:
        monkeypatch.setenv("HOME", str(target))
    before = tree(target)
    for kw in ({}, {"overwrite": True}):
        with pytest.raises(ConfigError, match="refusing to replace"):
            Lin(LinConfig()).save_pretrained(target, **kw)
        assert tree(target) == before
        with pytest.raises(ConfigError, match="refusing to replace"):
            atomic_write_dir(target, lambda tmp: None, **kw)
        assert tree(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A gigagan tiny run directory with config.json and training states at steps 1, 2 and 3 (no training)."""
    family = families()["gigagan"]
    run = tmp_path_factory.mktemp("runs") / "run"
    cfg = family.presets["tiny"]()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=str(run)))
    torch.manual_seed(0)
    trainer = family.trainer_class(cfg, tensorboard=False, progress=False)
    trainer.setup()
    run.mkdir()
    (run / "config.json").write_text(json.dumps(to_dict(cfg), indent=2))
    for step in (1, 2, 3):
        trainer.step, trainer.cur_nimg = step, step * 8
        trainer.save()
    return run


@pytest.fixture()
def run(run_dir, tmp_path) -> Path:
    """A private copy of the run directory."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_export_cli_refuses_the_run_dir_its_state_dir_and_foreign_targets(run, tmp_path, capsys):
    before = tree(run)
    for out in (run, run / "state", run / "state" / "x", run.parent):
        for flag in ([], ["--overwrite"]):
            assert main(["export", "gigagan", "--run-dir", str(run), "--out", str(out), *flag]) == 2
            err = capsys.readouterr().err
            assert err.startswith("error: ") and err.count("\n") == 1, err
            assert tree(run) == before
    file = tmp_path / "model.bin"
    file.write_bytes(b"weights")
    assert main(["export", "gigagan", "--run-dir", str(run), "--out", str(file)]) == 2
    assert "is a file" in capsys.readouterr().err and file.read_bytes() == b"weights"
    assert main(["export", "gigagan", "--run-dir", str(run), "--out", str(file), "--overwrite"]) == 0
    assert json.loads((file / "config.json").read_text())["class"] == "gigagan-generator"
    assert main(["export", "gigagan", "--run-dir", str(run), "--out", str(file)]) == 0  # same class: no flag
    assert tree(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "run"]  # no scratch or temporary dirs left


# ---------------------------------------------------------------------- 6: an unreadable newest state is skipped
def test_export_falls_back_to_the_newest_readable_state(run, tmp_path, capsys):
    states = sorted((run / "state").glob("state-*.pt"))
    states[-1].write_bytes(b"truncated")
    assert main(["export", "gigagan", "--run-dir", str(run), "--out", str(tmp_path / "exp")]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("warning: skipping unreadable") and states[-1].name in err, err
    assert f"exported {states[1]} (step 2" in out
    for s in states:
        s.write_bytes(b"not a state")
    assert main(["export", "gigagan", "--run-dir", str(run), "--out", str(tmp_path / "exp")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 4 and err.splitlines()[-1].startswith("error: no readable training state"), err


# ----------------------------------------------------------------------------------- 11: exports follow the umask
@pytest.mark.parametrize("umask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_export_modes_follow_the_umask(tmp_path, umask, dir_mode, file_mode):
    old = os.umask(umask)
    try:
        out = Lin(LinConfig()).save_pretrained(tmp_path / "export")
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == oct(dir_mode)
    for p in out.iterdir():
        assert oct(p.stat().st_mode & 0o777) == oct(file_mode), p.name
