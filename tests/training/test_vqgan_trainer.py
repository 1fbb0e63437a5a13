"""VQGAN trainer: losses fall on a fixed batch, the GAN switches on after its warm-up, metrics, CLI tiny run + export."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from fastt2i.cli import main
from fastt2i.training.presets import families
from fastt2i.errors import ConfigError
from fastt2i.models import load_pretrained
from fastt2i.models.paella import VQGAN
from fastt2i.training.vqgan import VQGANRunConfig, VQGANTrainer, evaluate_reconstruction, hinge_d_loss, psnr
from toy_runner import write_npz


def tiny(tmp_path, **kw) -> VQGANRunConfig:
    cfg = families()["vqgan"].presets["tiny"]()
    train = dataclasses.replace(cfg.train, run_dir=str(tmp_path / "run"), data=kw.pop("data", ""))
    return dataclasses.replace(cfg, train=train, **kw)


@pytest.fixture(scope="module")
def npz16(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("vq") / "toy16.npz", n=48, size=16)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    trainer = VQGANTrainer(tiny(tmp_path, gan_weight=0.0), tensorboard=False, progress=False)
    trainer.setup()
    assert trainer.D is None and trainer.perceptual is not None
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # a little spatial structure
    first = trainer.train_step({"image": x}, 0)
    for s in range(1, 25):
        last = trainer.train_step({"image": x}, s)
    assert set(first) >= {"loss/l1", "loss/perceptual", "loss/codebook", "loss/total", "vq/perplexity", "vq/usage"}
    assert float(last["loss/total"]) < 0.8 * float(first["loss/total"])
    assert float(last["loss/l1"]) < float(first["loss/l1"])
    assert all(math.isfinite(float(v)) for v in last.values())


def test_gan_switches_on_after_warmup(tmp_path):
    torch.manual_seed(0)
    trainer = VQGANTrainer(tiny(tmp_path, perceptual_weight=0.0, gan_start_kimg=0.016), tensorboard=False,
                           progress=False)
    trainer.setup()
    assert trainer.perceptual is None
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    before = [p.detach().clone() for p in trainer.D.parameters()]
    out = trainer.train_step({"image": x}, 0)
    assert "loss/g_adv" not in out and "loss/d" not in out
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.D.parameters(), strict=True))
    trainer.cur_nimg = 16
    out = trainer.train_step({"image": x}, 1)
    assert "loss/g_adv" in out and "loss/d" in out
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.D.parameters(), strict=True))
    # state round trip keeps everything
    state = trainer.state_dict()
    t2 = VQGANTrainer(tiny(tmp_path, perceptual_weight=0.0, gan_start_kimg=0.016), tensorboard=False, progress=False)
    t2.setup()
    t2.load_state_dict(state)
    for a, b in zip(trainer.vq.state_dict().values(), t2.vq.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_losses_and_config_checks(tmp_path):
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    torch.testing.assert_close(hinge_d_loss(real, fake), torch.tensor(0.25 + 0.5))
    x = torch.zeros(1, 3, 4, 4)
    torch.testing.assert_close(psnr(x, x + 0.1), torch.tensor([10 * math.log10(4 / 0.01)]))
    with pytest.raises(ConfigError, match="emoji-net"):
        tiny(tmp_path, perceptual_net="emoji-net")
    cfg = tiny(tmp_path)
    with pytest.raises(ConfigError, match="resolution"):
        dataclasses.replace(cfg, vqgan=dataclasses.replace(cfg.vqgan, resolution=32))


def test_evaluate_reconstruction_metrics(npz16):
    torch.manual_seed(0)
    vq = VQGAN(families()["vqgan"].presets["tiny"]().vqgan)

    class Feats(torch.nn.Module):  # a stand-in feature network: FD of identical image sets is 0
        def forward(self, images):
            return images.flatten(1)[:, :6]

    out = evaluate_reconstruction(vq, str(npz16), resolution=16, num=12, batch_size=5, split="train",
                                  fd_net=Feats())
    assert out["num_train"] == 12
    assert 0 < out["codebook_used_pct_train"] <= 100 and 1 <= out["codebook_perplexity_train"] <= 64
    assert out["fd_emojinet_recon_train"] > 0 and math.isfinite(out["psnr_train"])
    vq.train()
    evaluate_reconstruction(vq, str(npz16), resolution=16, num=4, split="train", fd_net=None)
    assert vq.training


def test_cli_tiny_run_exports_and_evaluates(tmp_path, npz16):
    run = tmp_path / "run"
    rc = main(["train", "vqgan", "--preset", "tiny", "--data", str(npz16), "--run-dir", str(run), "--no-progress"])
    assert rc == 0
    vq = load_pretrained(run / "export")
    assert isinstance(vq, VQGAN) and vq.codebook_size == 64
    tokens = vq.tokenize(torch.zeros(1, 3, 16, 16))
    assert tokens.shape == (1, 4, 4)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    assert {"psnr_val", "fd_emojinet_recon_val", "codebook_perplexity_val", "codebook_used_pct_val"} <= set(last)
    assert list((run / "samples").glob("*.png"))
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if "loss/d" in line]
    assert log, "the GAN phase never ran in the tiny preset"
    assert main(["train", "vqgan", "--preset", "tiny", "--dry-run"]) == 0


def test_bf16_training_steps_stay_finite_with_an_fp32_quantizer(tmp_path):
    cfg = tiny(tmp_path, gan_start_kimg=0.0)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mixed_precision="bf16"))
    torch.manual_seed(0)
    trainer = VQGANTrainer(cfg, tensorboard=False, progress=False)
    trainer.setup()
    seen = []
    trainer.vq.decoder.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(8, 3, 16, 16, generator=g) * 2 - 1, 3, 1, 1)
    outs = [trainer.train_step({"image": x}, s) for s in range(6)]
    assert seen and set(seen) == {torch.bfloat16}  # the networks ran under bf16 autocast
    assert {"loss/g_adv", "loss/d"} <= set(outs[-1])  # the GAN phase ran too
    assert all(math.isfinite(float(v)) for out in outs for v in out.values())
    assert float(outs[-1]["loss/l1"]) < float(outs[0]["loss/l1"])
    assert trainer.vq.quantizer.codebook.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q = trainer.vq.quantizer(torch.randn(2, trainer.vq.latent_channels, 4, 4, dtype=torch.bfloat16))
    assert q.loss.dtype == torch.float32 and q.quantized.dtype == torch.float32
