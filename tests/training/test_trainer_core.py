"""The base trainer in-process: outputs of a run, config mismatch refusal, --dry-run, NaN handling, validation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from toy_trainer import ToyRunConfig, ToyTrainer, main

from fastt2i.config import from_dict
from fastt2i.errors import ConfigError
from fastt2i.models import load_pretrained
from fastt2i.training import (
    NonFiniteLossError,
    TrainConfig,
    check_finite,
    dry_run,
    find_train_config,
    latest_state,
    list_states,
    load_state,
    step_seed,
)
from fastt2i.training.trainer import _crossed


def toy_config(run_dir, **train) -> ToyRunConfig:
    base = dict(run_dir=str(run_dir), resolution=8, batch_size=4, kimg=0.04, snapshot_kimg=0.02, sample_kimg=0.02,
                eval_kimg=0.02, log_every=2, ema_kimg=0.01, num_workers=0, keep_states=2)
    base.update(train)
    return ToyRunConfig(train=TrainConfig(**base))


def test_run_writes_config_states_samples_logs_metrics_and_export(tmp_path):
    cfg = toy_config(tmp_path)
    result = ToyTrainer(cfg, synthetic=True, progress=False).run()
    assert result.finished and result.step == 10 and result.cur_nimg == 40
    saved = json.loads((tmp_path / "config.json").read_text())
    assert from_dict(ToyRunConfig, saved) == cfg
    assert [p.name for p in list_states(tmp_path)] == ["state-00000005.pt", "state-00000010.pt"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "samples-000000000.png", "samples-000000020.png", "samples-000000040.png"]
    logs = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [2, 4, 6, 8, 10] and all("loss" in r and "kimg_per_s" in r for r in logs)
    metrics = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [5, 10] and all("toy_mse" in m for m in metrics)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
    # the export is the EMA module
    state = load_state(latest_state(tmp_path))
    model = load_pretrained(tmp_path / "export")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["ema"]["model"][k]), k


def test_keep_states_prunes_old_states(tmp_path):
    ToyTrainer(toy_config(tmp_path, kimg=0.06, snapshot_kimg=0.008, keep_states=2, sample_kimg=0, eval_kimg=0),
               synthetic=True, progress=False, tensorboard=False).run()
    assert [p.name for p in list_states(tmp_path)] == ["state-00000014.pt", "state-00000015.pt"]


def test_resume_refuses_a_different_config_but_accepts_a_longer_run(tmp_path):
    ToyTrainer(toy_config(tmp_path, sample_kimg=0, eval_kimg=0), synthetic=True, progress=False,
               tensorboard=False).run()
    changed = replace(toy_config(tmp_path, sample_kimg=0, eval_kimg=0), lr=0.5)
    with pytest.raises(ConfigError, match=r"different config \(lr: 0\.01 -> 0\.5\).*only the length \(kimg\)"):
        ToyTrainer(changed, synthetic=True, progress=False, tensorboard=False).run()
    bigger_batch = toy_config(tmp_path, sample_kimg=0, eval_kimg=0, batch_size=8)
    with pytest.raises(ConfigError, match=r"train\.batch_size: 4 -> 8"):
        ToyTrainer(bigger_batch, synthetic=True, progress=False, tensorboard=False).run()
    longer = toy_config(tmp_path, sample_kimg=0, eval_kimg=0, kimg=0.06)
    result = ToyTrainer(longer, synthetic=True, progress=False, tensorboard=False).run()
    assert result.finished and result.step == 15
    assert json.loads((tmp_path / "config.json").read_text())["train"]["kimg"] == 0.06


def test_rerun_of_a_finished_run_trains_nothing_more(tmp_path, capsys):
    cfg = toy_config(tmp_path, sample_kimg=0, eval_kimg=0)
    ToyTrainer(cfg, synthetic=True, progress=False, tensorboard=False).run()
    before = latest_state(tmp_path).stat().st_mtime_ns
    result = ToyTrainer(cfg, synthetic=True, progress=False, tensorboard=False).run()
    assert result.finished and result.step == 10
    assert latest_state(tmp_path).stat().st_mtime_ns == before
    assert "already trained" in capsys.readouterr().err


def test_nan_loss_stops_with_the_term_named_and_keeps_the_last_good_state(tmp_path):
    cfg = toy_config(tmp_path, kimg=0.08, snapshot_kimg=0.02, sample_kimg=0, eval_kimg=0)
    with pytest.raises(NonFiniteLossError, match=r"loss_nan=nan at step 12 .*last good state is .*state-00000010\.pt"):
        ToyTrainer(cfg, synthetic=True, nan_at_step=12, progress=False, tensorboard=False).run()
    last = latest_state(tmp_path)
    assert last.name == "state-00000010.pt"
    state = load_state(last)
    assert all(torch.isfinite(v).all() for v in state["trainer"]["model"].values())


def test_check_finite_names_the_bad_terms():
    check_finite({"g": 1.0, "d": torch.tensor(0.5)})
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss term\(s\): d_r1=inf, g=nan"):
        check_finite({"d_r1": torch.tensor(float("inf")), "g": float("nan"), "ok": 0.0})


def test_dry_run_prints_the_resolved_config_and_trains_nothing(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path / "r"), "--kimg", "3", "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train"]["kimg"] == 3.0 and out["train"]["run_dir"] == str(tmp_path / "r") and out["lr"] == 0.01
    assert not (tmp_path / "r").exists()
    dry_run(TrainConfig(kimg=5))
    assert json.loads(capsys.readouterr().out)["kimg"] == 5


def test_train_config_validation_and_lookup():
    with pytest.raises(ConfigError, match="train.batch_size must be > 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
    cfg = ToyRunConfig()
    assert find_train_config(cfg) == (cfg.train, ("train",))
    assert find_train_config(cfg.train) == (cfg.train, ())
    with pytest.raises(ConfigError, match="exactly one TrainConfig"):
        find_train_config(cfg.model)


def test_missing_data_path_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="train.data is empty"):
        ToyTrainer(toy_config(tmp_path), progress=False, tensorboard=False).run()


def test_step_seeds_and_boundaries():
    seeds = {step_seed(0, s, r) for s in range(50) for r in range(4)}
    assert len(seeds) == 200 and all(0 <= s < 2**63 for s in seeds)
    assert step_seed(1, 2, 3) == step_seed(1, 2, 3)
    assert _crossed(36, 40, 0.02) and not _crossed(20, 36, 0.02) and _crossed(16, 24, 0.02)
    assert _crossed(96, 104, 0.1) and not _crossed(0, 104, 0)


def test_sigint_stops_after_the_current_step_with_a_saved_state(tmp_path, capsys):
    import os
    import signal

    class Interrupted(ToyTrainer):
        def train_step(self, batch, step):
            if step == 3:
                os.kill(os.getpid(), signal.SIGINT)  # handled: sets the flag, the step still completes
            return super().train_step(batch, step)

    handler_before = signal.getsignal(signal.SIGINT)
    result = Interrupted(toy_config(tmp_path, sample_kimg=0, eval_kimg=0), synthetic=True, progress=False,
                         tensorboard=False).run()
    assert not result.finished and result.reason == "SIGINT" and result.step == 4
    assert result.state == latest_state(tmp_path) and load_state(result.state)["step"] == 4
    assert "stopped by SIGINT at step 4" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is handler_before  # handlers restored
    assert ToyTrainer(toy_config(tmp_path, sample_kimg=0, eval_kimg=0), synthetic=True, progress=False,
                      tensorboard=False).run().finished


def test_init_from_continues_another_run_exactly_and_may_change_the_recipe(tmp_path):
    quiet = dict(synthetic=True, progress=False, tensorboard=False)
    straight = toy_config(tmp_path / "straight", sample_kimg=0, eval_kimg=0)
    ToyTrainer(straight, **quiet).run()
    first = toy_config(tmp_path / "first", sample_kimg=0, eval_kimg=0, kimg=0.02)
    ToyTrainer(first, **quiet).run()
    # a new run dir started from the first run's newest state, same recipe: it equals the uninterrupted run
    cont = toy_config(tmp_path / "cont", sample_kimg=0, eval_kimg=0, init_from=str(tmp_path / "first"))
    result = ToyTrainer(cont, **quiet).run()
    assert result.finished and result.step == 10
    assert [p.name for p in list_states(tmp_path / "cont")] == ["state-00000010.pt"]
    a, b = load_state(latest_state(tmp_path / "straight")), load_state(latest_state(tmp_path / "cont"))
    for k, v in a["trainer"]["model"].items():
        assert torch.equal(v, b["trainer"]["model"][k]), k
    # a fine-tune may change the recipe (here the learning rate), from a state file as well as a run dir
    tuned = replace(toy_config(tmp_path / "tuned", sample_kimg=0, eval_kimg=0,
                               init_from=str(latest_state(tmp_path / "first"))), lr=0.05)
    result = ToyTrainer(tuned, **quiet).run()
    assert result.finished and result.step == 10
    groups = load_state(latest_state(tmp_path / "tuned"))["trainer"]["opt"]["param_groups"]
    assert groups[0]["lr"] == 0.05 and groups[0]["betas"] == (0.5, 0.99)  # this config's lr, the moments kept
    # rerunning it resumes its own state; init_from is not read again
    ToyTrainer(tuned, **quiet).run()
    assert [p.name for p in list_states(tmp_path / "tuned")] == ["state-00000010.pt"]


def test_init_from_refuses_a_missing_source_and_other_networks(tmp_path):
    quiet = dict(synthetic=True, progress=False, tensorboard=False)
    missing = toy_config(tmp_path / "a", sample_kimg=0, eval_kimg=0, init_from=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"train\.init_from: .*nowhere is neither a training state file, a run directory"):
        ToyTrainer(missing, **quiet).run()
    ToyTrainer(toy_config(tmp_path / "src", sample_kimg=0, eval_kimg=0, kimg=0.02), **quiet).run()
    other = toy_config(tmp_path / "b", sample_kimg=0, eval_kimg=0, init_from=str(tmp_path / "src"))
    other = replace(other, model=replace(other.model, channels=16))
    with pytest.raises(ConfigError, match=r"train\.init_from: .*does not fit this run's networks"):
        ToyTrainer(other, **quiet).run()
