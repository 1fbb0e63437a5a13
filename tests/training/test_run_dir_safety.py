"""Run-directory safety: one trainer per run dir (lock), pruning that keeps good states, validation before
config.json is written, and a log without the killed run's tail after a resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from toy_runner import toy_cmd, toy_env
from toy_trainer import ToyRunConfig, ToyTrainer
from toy_trainer import main as toy_main

from fastt2i.errors import ConfigError, DataError, Fastt2iError
from fastt2i.training import TrainConfig, list_states, load_state, prune_states, save_state, state_path
from fastt2i.training.state import RunDirLock


def toy_config(run_dir, **train) -> ToyRunConfig:
    base = dict(run_dir=str(run_dir), resolution=8, batch_size=4, kimg=0.024, snapshot_kimg=0.008, sample_kimg=0,
                eval_kimg=0, log_every=1, ema_kimg=0.01, num_workers=0, keep_states=3, val_fraction=0.0)
    base.update(train)
    return ToyRunConfig(train=TrainConfig(**base))


def run_toy(cfg: ToyRunConfig, **kwargs):
    return ToyTrainer(cfg, synthetic=kwargs.pop("synthetic", True), progress=False, tensorboard=False,
                      **kwargs).run()


def steps_in(path: Path) -> list[int]:
    return [json.loads(ln)["step"] for ln in path.read_text().splitlines() if ln.strip()]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------------------- 2. run-dir lock
def test_a_second_trainer_on_a_busy_run_dir_fails_fast_naming_the_holder(npz_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    cmd = toy_cmd("--run-dir", run_dir, "--data", npz_data, "--kimg", 0.4, "--batch-size", 4, "--log-every", 1,
                  "--no-tensorboard", "--step-sleep", 0.05, "--num-workers", 2)  # workers fork with the lock fd
    log = tmp_path / "holder.err"
    with open(log, "w") as err_file:  # no pipes: the loader workers would keep them open after the kill
        holder = subprocess.Popen(cmd, env=toy_env(), stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        deadline = time.time() + 120
        while not (run_dir / "log.jsonl").exists():
            assert holder.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, "the holder never started training"
            time.sleep(0.02)
        config_before = (run_dir / "config.json").read_bytes()
        cfg = toy_config(run_dir, data=str(npz_data), kimg=0.4, snapshot_kimg=0.04, log_every=1, ema_kimg=0.01)
        with pytest.raises(Fastt2iError, match=rf"in use by another training process \(PID {holder.pid}\)"):
            run_toy(cfg, synthetic=False)
        # the CLI form: one line, exit status 2
        assert toy_main(["--run-dir", str(run_dir), "--data", str(npz_data), "--kimg", "0.4"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and f"PID {holder.pid}" in err[0]
        assert (run_dir / "config.json").read_bytes() == config_before
        assert holder.poll() is None, "the holder must keep running"
    finally:
        holder.send_signal(signal.SIGKILL)  # stale-safe: the flock dies with the process (not with its workers)
        holder.wait(timeout=30)
    RunDirLock(run_dir).acquire().release()  # at once, while the killed run's loader workers may still live
    result = run_toy(toy_config(run_dir, data=str(npz_data), kimg=0.4, snapshot_kimg=0.04, keep_states=3,
                                num_workers=2), synthetic=False)
    assert result.finished
    steps = steps_in(run_dir / "log.jsonl")
    assert steps == sorted(set(steps)) and steps[-1] == 100


def test_the_lock_is_released_after_a_failed_run(tmp_path):
    class Broken(ToyTrainer):
        def setup(self):
            raise ConfigError("broken on purpose")

    cfg = toy_config(tmp_path)
    with pytest.raises(ConfigError, match="broken on purpose"):
        Broken(cfg, synthetic=True, progress=False, tensorboard=False).run()
    assert run_toy(cfg).finished


# ------------------------------------------------------------------------------------------- 3. state pruning
def test_prune_keeps_good_states_and_moves_unreadable_ones_aside(tmp_path):
    for s in (1, 2, 3, 4, 5):
        save_state({"step": s}, state_path(tmp_path, s))
    truncate(state_path(tmp_path, 4))
    truncate(state_path(tmp_path, 5))
    prune_states(tmp_path, keep=2)
    assert [p.name for p in list_states(tmp_path)] == ["state-00000002.pt", "state-00000003.pt"]
    assert sorted(p.name for p in (tmp_path / "state" / "corrupt").iterdir()) == [
        "state-00000004.pt", "state-00000005.pt"]


def test_resume_with_the_newest_states_unreadable_keeps_the_new_state(tmp_path, capsys):
    src, run = tmp_path / "src", tmp_path / "run"
    run_toy(toy_config(src, keep_states=0))  # states at steps 2, 4, 6
    shutil.copytree(src / "state", run / "state")
    truncate(state_path(run, 4))
    truncate(state_path(run, 6))
    result = run_toy(toy_config(run, kimg=0.012, keep_states=2))  # resumes from 2, trains step 3
    err = capsys.readouterr().err
    assert "resuming from" in err and "(step 2," in err
    assert result.finished and result.step == 3
    assert [p.name for p in list_states(run)] == ["state-00000002.pt", "state-00000003.pt"]
    assert load_state(state_path(run, 3))["step"] == 3
    assert sorted(p.name for p in (run / "state" / "corrupt").iterdir()) == ["state-00000004.pt",
                                                                              "state-00000006.pt"]
    assert "state/corrupt" in err
    # the next run goes on from the newest good state
    result = run_toy(toy_config(run, kimg=0.016, keep_states=2))
    assert result.step == 4 and "(step 3," in capsys.readouterr().err
    assert [p.name for p in list_states(run)] == ["state-00000003.pt", "state-00000004.pt"]


# ------------------------------------------------------------------------------------------- 5. validate first
def test_a_failed_first_run_does_not_poison_the_run_dir(npz_data, tmp_path):
    run = tmp_path / "run"
    with pytest.raises((DataError, ConfigError)):
        run_toy(toy_config(run, data=str(tmp_path / "missing.npz")), synthetic=False)
    result = run_toy(toy_config(run, data=str(npz_data)), synthetic=False)  # the corrected command
    assert result.finished
    assert json.loads((run / "config.json").read_text())["train"]["data"] == str(npz_data)


def test_a_setup_failure_writes_no_config(tmp_path):
    class Broken(ToyTrainer):
        def setup(self):
            raise ConfigError("broken on purpose")

    with pytest.raises(ConfigError, match="broken on purpose"):
        Broken(toy_config(tmp_path), synthetic=True, progress=False, tensorboard=False).run()
    assert not (tmp_path / "config.json").exists()


def test_a_config_json_without_training_state_accepts_a_changed_config(tmp_path, capsys):
    run_toy(toy_config(tmp_path))
    shutil.rmtree(tmp_path / "state")  # as if killed before the first snapshot
    changed = ToyRunConfig(train=toy_config(tmp_path).train, lr=0.5)
    assert run_toy(changed).finished
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 0.5
    assert "no training state" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "state")
    (tmp_path / "config.json").write_text("{broken")
    assert run_toy(changed).finished and json.loads((tmp_path / "config.json").read_text())["lr"] == 0.5


def test_non_finite_values_never_reach_config_json(tmp_path):
    cfg = ToyRunConfig(train=toy_config(tmp_path).train, lr=float("nan"))  # built directly, past from_dict
    with pytest.raises(ConfigError, match=r"lr.*finite"):
        run_toy(cfg)
    assert not (tmp_path / "config.json").exists()


def test_a_run_dir_that_is_a_file_is_a_one_line_config_error(tmp_path, capsys):
    path = tmp_path / "not-a-dir"
    path.write_text("precious")
    with pytest.raises(ConfigError, match=r"is a file"):
        run_toy(toy_config(path))
    assert toy_main(["--run-dir", str(path), "--kimg", "0.01", "--synthetic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "is a file" in err[0]
    assert path.read_text() == "precious"


# ------------------------------------------------------------------------------------------- 14. log on resume
def test_resume_drops_the_killed_runs_log_lines_past_the_resumed_step(tmp_path):
    cfg = toy_config(tmp_path, eval_kimg=0.008)  # 6 steps, states at 2, 4, 6; a log line each step
    run_toy(cfg)
    state_path(tmp_path, 6).unlink()  # killed after step 4's snapshot, having logged steps 5 and 6
    assert steps_in(tmp_path / "log.jsonl") == [1, 2, 3, 4, 5, 6]
    result = run_toy(cfg)
    assert result.finished and result.step == 6
    assert steps_in(tmp_path / "log.jsonl") == [1, 2, 3, 4, 5, 6]
    assert steps_in(tmp_path / "metrics.jsonl") == [2, 4, 6]
