"""Hot paths of a training step: device-side loss window (NaN still stops before a save), the caption table, bf16
GigaGAN with fp32 masters, fused optimizers that mark their parameters modified, sampling under inference_mode,
`train.compile` wiring, and the stop signal agreed across two processes."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from toy_runner import HERE, toy_env
from toy_trainer import ToyRunConfig, ToyTrainer

from fastt2i.text.batcher import TextBatcher
from fastt2i.training import NonFiniteLossError, TrainConfig, latest_state, load_state
from fastt2i.training import gigagan as gg
from fastt2i.training.gigagan import GigaGANTrainer
from fastt2i.training.presets import families
from fastt2i.training.trainer import LossWindow

GIGAGAN = families()["gigagan"].presets


def tiny_gigagan(tmp_path, name: str = "run", **train) -> gg.GigaGANRunConfig:
    cfg = GIGAGAN["tiny"]()
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=str(tmp_path / name), **train))


def gigagan_batch(n: int = 8, seed: int = 0, captions: list[str] | None = None) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, 16, 16, generator=g) * 2 - 1,
            "caption": captions or [f"toy image {i}" for i in range(n)]}


# ------------------------------------------------------------------------------------------------- loss window
def test_loss_window_means_equal_the_host_sums():
    window = LossWindow(torch.device("cpu"))
    steps = [{"a": torch.tensor(0.1 * s), "b": torch.tensor([1.0, 2.0 + s]), "lr": 0.5 / (s + 1)} for s in range(7)]
    for s, losses in enumerate(steps):
        assert window.add(losses, s) is None
    means, bad, step = window.read()
    assert bad is None and step is None
    expected = {k: sum(float(torch.as_tensor(x[k]).float().mean()) for x in steps) / len(steps) for k in steps[0]}
    assert means == expected  # float64 sums of the fp32 values: the old per-step host arithmetic
    window.reset()
    assert window.read() == ({}, None, None)


def test_loss_window_names_the_first_non_finite_step():
    window = LossWindow(torch.device("cpu"))
    for s in range(6):
        window.add({"ok": torch.tensor(1.0), "d": torch.tensor(float("nan") if s == 2 else 1.0),
                    "g": torch.tensor(float("inf") if s == 4 else 1.0)}, 10 + s)
    means, bad, step = window.read()
    assert bad == "d=nan, g=inf" and step == 12 and means["ok"] == 1.0
    # Python floats are on the host already: reported by the step that returns them
    assert LossWindow(torch.device("cpu")).add({"x": float("nan"), "y": 1.0}, 0) == "x=nan"


class DeviceNaN(ToyTrainer):
    """The toy whose weights (and its loss, a device tensor) turn NaN at `nan_at_step`."""

    def train_step(self, batch, step):
        out = super().train_step(batch, step)
        out.pop("loss_nan")
        if step == self.nan_at_step:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_in_a_device_term_between_log_steps_stops_before_the_next_save(tmp_path):
    # log every 4 steps, a state every 5 (batch 4, 0.02 kimg): the NaN of step 12 is read at step 14's save
    train = TrainConfig(run_dir=str(tmp_path), resolution=8, batch_size=4, kimg=0.08, snapshot_kimg=0.02,
                        sample_kimg=0, eval_kimg=0, log_every=4, ema_kimg=0.01, num_workers=0, keep_states=0)
    trainer = DeviceNaN(ToyRunConfig(train=train), synthetic=True, nan_at_step=12, progress=False, tensorboard=False)
    with pytest.raises(NonFiniteLossError, match=r"loss=nan at step 12 \(0\.048 kimg\).*state-00000010\.pt"):
        trainer.run()
    assert trainer.step == 14  # steps 12 and 13 ran on NaN weights; nothing of them was saved
    assert latest_state(tmp_path).name == "state-00000010.pt"
    assert all(torch.isfinite(v).all() for v in load_state(latest_state(tmp_path))["trainer"]["model"].values())
    logged = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == [4, 8, 12]


# ------------------------------------------------------------------------------------------------- caption table
def reference_batch(rows: dict[str, tuple[torch.Tensor, torch.Tensor]], captions: list[str]):
    """The per-caption padding loop the table replaced (fastt2i 718a537)."""
    length = max(rows[c][0].shape[0] for c in captions)
    tokens = torch.zeros(len(captions), length, rows[captions[0]][0].shape[1])
    mask = torch.zeros(len(captions), length, dtype=torch.bool)
    for i, c in enumerate(captions):
        t = rows[c][0]
        tokens[i, :len(t)] = t
        mask[i, :len(t)] = True
    return tokens, mask, torch.stack([rows[c][1] for c in captions])


def test_caption_table_batches_equal_the_padding_loop():
    batcher = TextBatcher("t5-tiny-random", torch.device("cpu"))
    encoder = batcher.encoder()
    words = "red heart face cat with tears of joy thumbs up medium skin tone flag".split()
    # caption i has 1 + i // 20 words: later batches bring longer captions
    pool = [" ".join(words[(i * 7 + j) % len(words)] for j in range(1 + i // 20)) + f" {i}" for i in range(150)]
    rows = {}
    for step in range(12):  # new captions arrive every batch (with repeats); the table outgrows 64 rows and widens
        captions = [pool[(step * 12 + 3 * i) % (16 + 12 * step)] for i in range(16)]
        new = sorted(set(captions) - set(rows))
        if new:
            emb = encoder.encode(new)
            for j, c in enumerate(new):
                n = int(emb.mask[j].sum())
                rows[c] = emb.tokens[j, :n].float().half().float(), emb.pooled[j].float().half().float()
        got, want = batcher(captions), reference_batch(rows, captions)
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b), step
    assert len(batcher) == len(rows) > 64


def test_captions_cached_under_inference_mode_can_train():
    batcher = TextBatcher("t5-tiny-random", torch.device("cpu"))
    with torch.inference_mode():
        batcher(["a cat", "a dog"])  # e.g. the sample grid's prompts, encoded first
    tokens, mask, pooled = batcher(["a cat", "a dog"])
    assert not tokens.is_inference() and not pooled.is_inference()
    layer = torch.nn.Linear(tokens.shape[-1], 1)
    (layer(tokens)[mask].sum() + layer(pooled).sum()).backward()  # inputs saved for backward: must be normal tensors
    assert layer.weight.grad is not None


def test_gigagan_trains_after_sampling_under_inference_mode(tmp_path):
    torch.manual_seed(0)
    t = GigaGANTrainer(tiny_gigagan(tmp_path), tensorboard=False, progress=False)
    t.setup()
    with torch.inference_mode():  # as Trainer._sample calls it
        grid = t.sample_grid()
    assert grid.is_inference()
    out = t.train_step(gigagan_batch(captions=["a cat", "a dog"] * 4), 0)
    assert all(math.isfinite(float(v)) for v in out.values())
    t.G_ema.requires_grad_(False)
    t._emas["G"][0].update(t.G, 0, 8)  # the EMA copy sampled under inference_mode still updates in place


# ------------------------------------------------------------------------------------------------- bf16
def test_bf16_gigagan_trains_with_fp32_masters_ema_and_r1(tmp_path, npz_data, monkeypatch):
    cfg = tiny_gigagan(tmp_path, data=str(npz_data), mixed_precision="bf16", sample_kimg=0)
    r1_logits = []
    real_r1 = gg.r1_penalty

    def spy(inputs, logits):
        r1_logits.append((torch.is_autocast_enabled("cpu"), [lg.logits.dtype for lg in logits]))
        return real_r1(inputs, logits)

    monkeypatch.setattr(gg, "r1_penalty", spy)
    trainer = GigaGANTrainer(cfg, tensorboard=False, progress=False)
    conv_dtypes = []
    setup = trainer.setup

    def setup_and_hook():
        setup()
        trainer.D.from_rgb[0].register_forward_hook(lambda m, a, o: conv_dtypes.append(o.dtype))

    trainer.setup = setup_and_hook
    result = trainer.run()
    assert result.finished and result.step == 4
    assert torch.bfloat16 in conv_dtypes and torch.float32 in conv_dtypes  # bf16 main passes, the fp32 R1 pass
    assert len(r1_logits) == 2 and all(not on and set(d) == {torch.float32} for on, d in r1_logits)  # r1_every=2
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [v for r in rows for k, v in r.items() if k.startswith("loss/")]
    assert len(rows) == 4 and losses and all(math.isfinite(v) for v in losses)
    state = load_state(latest_state(tmp_path / "run"))
    for part in (state["trainer"]["G"], state["trainer"]["D"], state["ema"]["G"]):
        assert {v.dtype for v in part.values() if v.is_floating_point()} == {torch.float32}
    assert state["trainer"]["G"]["mapping.w_avg"].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in trainer.G.parameters())


# ------------------------------------------------------------------------------------------------- optimizers
def test_fused_optimizer_steps_mark_parameters_modified(tmp_path):
    torch.manual_seed(0)
    t = GigaGANTrainer(tiny_gigagan(tmp_path), tensorboard=False, progress=False)
    t.setup()
    assert t.fused_optimizer and all(g["fused"] for o in (t.opt_G, t.opt_D) for g in o.param_groups)
    params = list(t.G.parameters()) + list(t.D.parameters())
    before = [p._version for p in params]
    t.train_step(gigagan_batch(), 1)
    # torch's fused kernels leave version counters alone; caches keyed on them (nn.modulated) need the bump
    assert all(p._version > v for p, v in zip(params, before, strict=True))


# ------------------------------------------------------------------------------------------------- compile
def test_compile_flag_routes_the_networks_through_torch_compile(tmp_path, npz_data, monkeypatch, capsys):
    t = GigaGANTrainer(tiny_gigagan(tmp_path, "off"), tensorboard=False, progress=False)
    net = torch.nn.Linear(2, 2)
    assert t.maybe_compile(net) is net and t._compiled == []
    compiled = []

    def fake_compile(fn, *args, **kwargs):  # stands in for torch.compile: records, returns the eager callable
        compiled.append(getattr(fn, "__qualname__", type(fn).__name__))
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    cfg = tiny_gigagan(tmp_path, data=str(npz_data), compile=True, sample_kimg=0)
    trainer = GigaGANTrainer(cfg, tensorboard=False, progress=False)
    assert trainer.run().finished
    assert trainer._compiled == ["G.mapping", "G.synthesis", "D", "D.judge_many"]
    assert len(compiled) == 4 and "GigaGANDiscriminator.judge_many" in compiled
    assert "torch.compile (G.mapping, G.synthesis, D, D.judge_many): the first step took" in capsys.readouterr().err
    # a run dir may switch compile on or off on resume (the math is the same)
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile=False, kimg=0.04))
    assert GigaGANTrainer(longer, tensorboard=False, progress=False).run().step == 5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run_uses_tf32_fused_adam_and_compiles(tmp_path, npz_data):
    cfg = tiny_gigagan(tmp_path, data=str(npz_data), compile=True, sample_kimg=0, mixed_precision="bf16")
    trainer = GigaGANTrainer(cfg, tensorboard=False, progress=False)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    result = trainer.run()
    assert result.finished and trainer._first_step_seconds is not None
    assert all(g["fused"] for g in trainer.opt_G.param_groups)
    state = load_state(result.state)
    assert all(torch.isfinite(v).all() for v in state["trainer"]["G"].values() if v.is_floating_point())


# ------------------------------------------------------------------------------------------------- two processes
STOP_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[3])
from toy_trainer import ToyRunConfig, ToyTrainer
from fastt2i.training import TrainConfig

class OneRankSignalled(ToyTrainer):
    def train_step(self, batch, step):
        if step == 3 and self.rank == 1:
            self.stop_requested = "SIGTERM"  # as if only rank 1 got the signal
        return super().train_step(batch, step)

train = TrainConfig(run_dir=sys.argv[1], resolution=8, batch_size=8, kimg=0.4, snapshot_kimg=0.2, sample_kimg=0,
                    eval_kimg=0, log_every=5, ema_kimg=0.01, num_workers=0, val_fraction=0.0)
t = OneRankSignalled(ToyRunConfig(train=train), synthetic=True, progress=False, tensorboard=False)
r = t.run()
open(f"{sys.argv[1]}/rank{t.rank}.json", "w").write(json.dumps({"step": r.step, "reason": r.reason}))
"""


@pytest.mark.slow
def test_a_stop_signal_on_one_rank_stops_both_after_the_same_step(tmp_path):
    script = tmp_path / "stop.py"
    script.write_text(STOP_SCRIPT)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(run), "unused", str(HERE)]
    proc = subprocess.run(cmd, env=toy_env(), capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (json.loads((run / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0 == {"step": 4, "reason": "signal"} and r1 == {"step": 4, "reason": "SIGTERM"}
    assert latest_state(run).name == "state-00000004.pt" and load_state(latest_state(run))["step"] == 4


def test_losses_in_fp32_under_autocast():
    from fastt2i.losses.contrastive import clip_contrastive_loss
    from fastt2i.losses.gan import d_logistic, g_nonsaturating

    logits = torch.randn(3, 8).bfloat16()
    assert g_nonsaturating(logits).dtype == torch.float32
    assert d_logistic(logits[0], logits[1]).dtype == torch.float32
    emb = F.normalize(torch.randn(8, 16), dim=-1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = clip_contrastive_loss(emb, emb.flip(0), 2.0)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, clip_contrastive_loss(emb, emb.flip(0), 2.0), rtol=0, atol=0)
