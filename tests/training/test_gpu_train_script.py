"""scripts/gpu_train.py on CPU with a tiny preset: trains within its budget, stops by SIGTERM, exports, summarises."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fastt2i.inference import load_pipeline, load_upsampler

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_train.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_budgeted_run_exports_a_loadable_model(tmp_path, npz_data):
    script = load_script()
    out = tmp_path / "gpu"
    assert script.main(["--data", str(npz_data), "--out", str(out), "--minutes", "0.3", "--split", "gigagan=1",
                        "--tiny", "--precision", "no", "--set", "gigagan:train.snapshot_kimg=0.008"]) == 0
    summary = json.loads((out / "summary.json").read_text())["gigagan"]
    assert summary["stopped"] in ("budget", "finished") and summary["kimg"] > 0
    images = load_pipeline(summary["export"]).generate(["a cat"], [0])
    assert images.shape[0] == 1 and images.isfinite().all()


def test_split_order_and_bad_overrides_are_refused(tmp_path):
    script = load_script()
    with pytest.raises(SystemExit, match="vqgan must come before paella"):
        script.main(["--data", "x.npz", "--out", str(tmp_path), "--split", "paella=1,vqgan=1"])
    with pytest.raises(SystemExit, match="FAMILY:KEY=VALUE"):
        script.main(["--data", "x.npz", "--out", str(tmp_path), "--split", "gigagan=1", "--set", "lr=1"])


def test_upsampler_trains_on_its_own_dataset(tmp_path):
    """--data-for gives the upsampler its high-resolution set (here 32 px for the tiny 16 -> 32 px preset)."""
    rng = np.random.default_rng(0)
    hr = tmp_path / "hr32.npz"
    np.savez(hr, images=rng.integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8),
             captions=np.array([f"toy {i}" for i in range(32)]))
    script = load_script()
    out = tmp_path / "gpu"
    assert script.main(["--data", "unused.npz", "--data-for", f"upsampler={hr}", "--out", str(out), "--minutes",
                        "0.3", "--split", "upsampler=1", "--tiny", "--precision", "no",
                        "--set", "upsampler:perceptual_weight=0", "--set", "upsampler:train.snapshot_kimg=0.008"]) == 0
    summary = json.loads((out / "summary.json").read_text())["upsampler"]
    assert summary["kimg"] > 0
    up = load_upsampler(summary["export"])
    assert tuple(up.upscale(torch.zeros(1, 3, 16, 16), ["toy"]).shape) == (1, 3, 32, 32)
