"""Exact resume of the base trainer: SIGTERM saves and exits cleanly; SIGKILL mid-run then rerunning the same command
ends bit-identical (model, EMA, optimizer) to an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from toy_runner import toy_cmd, toy_env
from toy_trainer import main as toy_main

from fastt2i.training import latest_state, list_states, load_state

KIMG = 0.16  # 40 steps of batch 4
TOTAL = round(KIMG * 1000)
COMMON = ["--kimg", KIMG, "--batch-size", 4, "--snapshot-kimg", 0.04, "--log-every", 1, "--no-tensorboard",
          "--ema-kimg", 0.02]


def final_state(run_dir: Path) -> dict:
    path = latest_state(run_dir)
    assert path is not None, f"no state in {run_dir}"
    state = load_state(path)
    assert state["cur_nimg"] == TOTAL, state["cur_nimg"]
    return state


def assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["cur_nimg"] == b["cur_nimg"]
    for part, sa, sb in (("model", a["trainer"]["model"], b["trainer"]["model"]),
                         ("ema", a["ema"]["model"], b["ema"]["model"])):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{part}.{k} differs after resume"
    oa, ob = a["trainer"]["opt"]["state"], b["trainer"]["opt"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for k in oa[i]:
            assert torch.equal(torch.as_tensor(oa[i][k]), torch.as_tensor(ob[i][k])), f"optimizer {i}.{k} differs"


def last_logged_step(run_dir: Path) -> int:
    lines = [ln for ln in (run_dir / "log.jsonl").read_text().splitlines() if ln.endswith("}")]
    return json.loads(lines[-1])["step"] if lines else -1


def start_and_wait(cmd: list[str], run_dir: Path, steps_past: int = 2) -> subprocess.Popen:
    """Start a (slowed) toy run; return once a new state exists and the log shows steps beyond it."""
    before = len(list_states(run_dir))
    proc = subprocess.Popen(cmd, env=toy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"toy run ended early:\n{proc.communicate()[1][-3000:]}")
        states = list_states(run_dir)
        if len(states) > before and (run_dir / "log.jsonl").exists():
            saved_step = int(states[-1].stem.split("-")[1])
            if last_logged_step(run_dir) >= saved_step + steps_past:
                return proc
        time.sleep(0.02)
    proc.kill()
    pytest.fail("toy run produced no state in time")


def test_sigterm_then_sigkill_then_rerun_is_bit_identical(npz_data, tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    cmd = toy_cmd("--run-dir", run_dir, "--data", npz_data, *COMMON, "--step-sleep", 0.04)

    # 1. SIGTERM: the step finishes, the state is written at that step, clean exit with a message.
    proc = start_and_wait(cmd, run_dir)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM" in err and "rerun the same command to resume" in err
    stopped = load_state(latest_state(run_dir))
    assert 0 < stopped["cur_nimg"] < TOTAL
    assert stopped["step"] == last_logged_step(run_dir)

    # 2. Rerun the same command, SIGKILL it mid-run (after a snapshot, a few steps past it).
    proc = start_and_wait(cmd, run_dir)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert "resuming from" in err
    killed = load_state(latest_state(run_dir))
    assert stopped["cur_nimg"] < killed["cur_nimg"] < TOTAL, "the kill must land mid-run, after a new snapshot"
    assert last_logged_step(run_dir) > killed["step"], "the killed run had gone past its last state"

    # 3. Rerun again: it resumes and ends exactly where the uninterrupted run ends.
    rerun = subprocess.run(cmd, env=toy_env(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"step {killed['step']}" in rerun.stderr
    # the uninterrupted reference runs in this process (same code, one thread, same data)
    assert toy_main(["--run-dir", str(ref_dir), "--data", str(npz_data), *map(str, COMMON)]) == 0
    assert_same_state(final_state(run_dir), final_state(ref_dir))
    assert (run_dir / "export" / "model.safetensors").is_file()


def test_sigterm_to_the_whole_process_group_with_loader_workers_still_saves(npz_data, tmp_path):
    """`timeout`, SLURM and container runtimes signal the process group: data-loader workers die with the trainer's
    loop; the run must still save its state and say how to resume (seen on a GPU run before this was handled)."""
    import os

    run_dir = tmp_path / "run"
    cmd = toy_cmd("--run-dir", run_dir, "--data", npz_data, *COMMON, "--num-workers", 2, "--streaming",
                  "--step-sleep", 0.04)  # streaming: the workers live for the whole run (in memory they stop early)
    before = len(list_states(run_dir))
    proc = subprocess.Popen(cmd, env=toy_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (len(list_states(run_dir)) > before and last_logged_step(run_dir) > 2):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM" in err
    state = load_state(latest_state(run_dir))
    assert 0 < state["cur_nimg"] < TOTAL and state["step"] >= last_logged_step(run_dir)
