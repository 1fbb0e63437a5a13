"""Two CPU processes under torchrun (gloo, ranks from the environment via Accelerate) over WebDataset shards: identical
parameters on both ranks, disjoint shards."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from toy_runner import TOY, toy_env

from fastt2i.data import write_shards


def test_two_process_cpu_run_over_shards(tmp_path):
    rng = np.random.default_rng(0)
    samples = ({"image": rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "caption": f"toy {i}", "key": f"s{i:04d}"}
               for i in range(32))
    shards = write_shards(samples, tmp_path / "shards", samples_per_shard=8, prefix="toy")
    assert len(shards) == 4
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(TOY),
           "--run-dir", str(run_dir), "--data", str(tmp_path / "shards"), "--kimg", "0.064", "--batch-size", "8",
           "--snapshot-kimg", "0.032", "--no-tensorboard", "--report"]
    proc = subprocess.run(cmd, env=toy_env(), capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((run_dir / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["rank"], r1["rank"]) == (0, 1) and r0["world_size"] == r1["world_size"] == 2
    assert r0["finished"] and r1["finished"] and r0["cur_nimg"] == r1["cur_nimg"] == 64 and r0["step"] == 8
    assert r0["param_hash"] == r1["param_hash"], "DDP ranks diverged"
    assert r0["ema_hash"] == r1["ema_hash"]
    s0, s1 = set(r0["shards"]), set(r1["shards"])
    assert s0 and s1 and not (s0 & s1), (s0, s1)
    assert s0 | s1 == {str(p) for p in shards}
    # only the main process writes: one config, states from one writer, one export
    assert json.loads((run_dir / "config.json").read_text())["train"]["batch_size"] == 8
    assert [p.name for p in sorted((run_dir / "state").iterdir())] == ["state-00000004.pt", "state-00000008.pt"]
    assert (run_dir / "export" / "model.safetensors").is_file()
