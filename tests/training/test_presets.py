"""The run-preset registry (fastt2i.training.presets): every preset builds, the CLI offers exactly its names."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from pathlib import Path

import pytest

from fastt2i.cli import build_parser, main
from fastt2i.config import from_dict, to_dict
from fastt2i.errors import ConfigError
from fastt2i.training import TrainConfig, Trainer
from fastt2i.training.presets import (
    ABLATION_ROWS,
    FAMILIES,
    Family,
    families,
    gigagan_ablation,
    gigagan_emoji64,
    gigagan_emoji64_discriminator,
    run_preset,
)

ROOT = Path(__file__).resolve().parents[2]
ALL = [(fam, name) for fam, family in sorted(FAMILIES.items()) for name in sorted(family.presets)]


@pytest.mark.parametrize("family,name", ALL, ids=[f"{f}-{n}" for f, n in ALL])
def test_every_preset_builds_a_valid_run_config(family, name):
    cfg = run_preset(family, name)
    assert dataclasses.is_dataclass(cfg) and isinstance(cfg.train, TrainConfig)
    data = json.loads(json.dumps(to_dict(cfg)))  # JSON-ready, as `--dry-run` and run_dir/config.json write it
    assert from_dict(type(cfg), data) == cfg  # ... and read back to the same config
    assert type(cfg) is type(run_preset(family))  # one run-config class per family (cli/export relies on it)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_has_tiny_and_default_and_a_trainer(family):
    fam = FAMILIES[family]
    assert isinstance(fam, Family) and fam.help
    assert {"tiny", "default"} <= set(fam.presets)
    assert issubclass(fam.trainer_class, Trainer)
    assert families()[family] is fam


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        FAMILIES["new"] = FAMILIES["gigagan"]  # type: ignore[index]
    with pytest.raises(TypeError):
        FAMILIES["gigagan"].presets["new"] = gigagan_emoji64  # type: ignore[index]


def test_unknown_family_or_preset_names_the_choices():
    with pytest.raises(ConfigError, match="choose one of: emoji-clip, emoji-net, gigagan, paella, stylegan-t, upsampler, vqgan"):
        run_preset("nope")
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*tiny"):
        run_preset("gigagan", "nope")


def test_gigagan_discriminator_preset_is_shared_by_emoji64_and_the_ablation_rows():
    d = gigagan_emoji64_discriminator()
    assert (d.resolution, d.pyramid_levels, d.channels, d.text_encoder) == (64, 5, (8, 16, 32, 32, 32), "minilm")
    assert run_preset("gigagan", "emoji64").discriminator == d
    assert run_preset("gigagan", "default") == run_preset("gigagan", "emoji64")
    for row, name in ABLATION_ROWS.items():
        cfg = run_preset("gigagan", f"ablation-{row}-{name}")
        assert cfg == gigagan_ablation(row)
        assert cfg.discriminator == dataclasses.replace(d, multiscale=row >= 7)
        assert cfg.train.run_dir == f"runs/gigagan-ablation-{row}"
    with pytest.raises(ConfigError, match="ablation row 9"):
        gigagan_ablation(9)


def _train_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_cli_choices_equal_the_registry(capsys):
    family_arg = next(a for a in _train_parser()._actions if a.dest == "family")
    assert list(family_arg.choices) == sorted(FAMILIES)
    for family, fam in FAMILIES.items():
        assert main(["train", family, "--list-presets"]) == 0
        assert capsys.readouterr().out.split() == sorted(fam.presets)


def test_dry_run_prints_the_registry_config_plus_overrides(capsys):
    argv = ["train", "gigagan", "--preset", "tiny", "--data", "x.npz", "--kimg", "2", "--set", "r1_every=4"]
    assert main([*argv, "--dry-run"]) == 0
    want = run_preset("gigagan", "tiny")
    want = dataclasses.replace(want, r1_every=4, train=dataclasses.replace(want.train, data="x.npz", kimg=2.0))
    assert json.loads(capsys.readouterr().out) == to_dict(want)
    assert main(["train", "gigagan", "--preset", "nope", "--dry-run"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_presets_live_in_training_not_in_the_cli():
    """cli/train.py only parses and runs: no nested (closure) functions, no preset table of its own."""
    tree = ast.parse((ROOT / "src/fastt2i/cli/train.py").read_text())
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert top == {"register", "resolve_config", "run"}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            assert not [n for n in ast.walk(fn) if n is not fn and isinstance(n, (ast.FunctionDef, ast.Lambda))]
    # benchmarks/train_step.py times older revisions too, whose presets lived in the CLI: its fallback may name them
    exempt = {Path(__file__).resolve(), ROOT / "benchmarks" / "train_step.py"}
    users = [p for d in ("tests", "benchmarks") for p in (ROOT / d).rglob("*.py")
             if p not in exempt and "fastt2i.cli.train import" in p.read_text()]
    assert not users, f"import presets from fastt2i.training.presets, not the CLI: {users}"


@pytest.mark.parametrize("family", ["gigagan", "stylegan-t"])
def test_variant_presets_change_only_the_caption_forms(family):
    base, cv = run_preset(family, "emoji64"), run_preset(family, "emoji64-variants")
    assert cv.train.caption_variants == "full:2,name:1,name_style:1,name_category:1,keywords:1"
    assert base.train.caption_variants == ""
    same = dataclasses.replace(cv, train=dataclasses.replace(cv.train, caption_variants="",
                                                             run_dir=base.train.run_dir))
    assert same == base


@pytest.mark.parametrize("family,bundle", [("gigagan", "gigagan-emoji64"), ("stylegan-t", "stylegan-t-emoji64"),
                                           ("paella", "paella-emoji64")])
def test_finetune_presets_start_from_their_bundle_with_caption_variants(family, bundle, tmp_path):
    cfg = run_preset(family, "emoji64-finetune")
    cv = run_preset(family, "emoji64-variants")
    assert cfg.train.init_from == bundle and cfg.train.ema_rampup is None
    assert cfg.train.caption_variants == cv.train.caption_variants != ""
    if family != "paella":
        assert cfg.d_warmup_kimg == 2.0
    if family == "stylegan-t":  # the session 11 recipe: mode seeking against the seed collapse
        assert cfg.mode_seeking_weight == 0.1 and cfg.mode_seeking_pool == 16
    # the bundle fits the preset: a run starts from it (D and optimisers fresh, step 0)
    trainer = families()[family].trainer_class(dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, run_dir=str(tmp_path / "ft"))), tensorboard=False, progress=False)
    trainer.setup()
    assert trainer._resume() is not None and trainer.step == 0
