"""Paella trainer: a few steps on a fixed batch lower the loss, CLIP image vectors per kept sample, CLI tiny run."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from fastt2i.cli import main
from fastt2i.training.presets import families
from fastt2i.errors import ConfigError
from fastt2i.losses.token import head_cross_entropy, paella_loss, renoise_tokens
from fastt2i.models.paella.conditioning import ConditionDropout
from fastt2i.training.paella import PaellaRunConfig, PaellaTrainer, load_vqgan
from toy_runner import write_npz

PRESETS = families()["paella"].presets


def tiny(tmp_path, **kw) -> PaellaRunConfig:
    cfg = PRESETS["tiny"]()
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, run_dir=str(tmp_path / "run")), **kw)


def built(cfg: PaellaRunConfig) -> PaellaTrainer:
    torch.manual_seed(0)
    trainer = PaellaTrainer(cfg, tensorboard=False, progress=False)
    trainer.setup()
    return trainer


@pytest.fixture(scope="module")
def npz16(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("paella") / "toy16.npz", n=32, size=16)


def fixed_loss(trainer: PaellaTrainer, images, captions, t, noise_seed: int = 5) -> float:
    """The weighted CE of the (non-EMA) denoiser on a fixed noising of the batch, everything conditioned."""
    with torch.no_grad():
        target = trainer.vqgan.tokenize(images)
        noised, replaced = renoise_tokens(target, t, trainer.config.model.codebook_size,
                                          generator=torch.Generator().manual_seed(noise_seed))
        text, mask, _ = trainer.text(captions)
        cond = trainer.denoiser.conditioner(text, mask)
        trainer.denoiser.eval()
        return float(paella_loss(trainer.denoiser(noised, t, *cond), target, t, replaced))


def test_steps_on_a_fixed_batch_reduce_the_loss(tmp_path):
    trainer = built(tiny(tmp_path, dropout=ConditionDropout(0.0, 0.0, 0.0)))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    captions = [f"toy {i}" for i in range(8)]
    t = torch.linspace(0.2, 0.9, 8)
    before = fixed_loss(trainer, images, captions, t)
    losses = []
    for step in range(25):
        out = trainer.train_step({"image": images, "caption": captions}, step)
        assert set(out) == {"loss/ce", "grad_norm", "acc/noised", "acc/all"}
        losses.append(float(out["loss/ce"]))
    after = fixed_loss(trainer, images, captions, t)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert after < before - 0.3, (before, after)
    assert sum(losses[-5:]) < sum(losses[:5])


def test_token_cache_encodes_each_key_once_and_gives_the_same_tokens(tmp_path):
    trainer = built(tiny(tmp_path, token_cache=True))
    calls = []
    orig = trainer.vqgan.tokenize
    trainer.vqgan.tokenize = lambda x: calls.append(x.shape[0]) or orig(x)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 16, 16, generator=g) * 2 - 1
    keys = [f"k{i}" for i in range(6)]
    first = trainer.tokenize(images[:4], keys[:4])
    again = trainer.tokenize(images[[3, 4, 0, 5]], [keys[i] for i in (3, 4, 0, 5)])
    assert calls == [4, 2]  # only the two new keys are encoded the second time
    assert first.dtype == torch.long and torch.equal(first, orig(images[:4]))
    assert torch.equal(again, orig(images[[3, 4, 0, 5]]))
    with pytest.raises(ConfigError, match="key"):
        trainer.tokenize(images[:2], None)
    base = tiny(tmp_path)
    with pytest.raises(ConfigError, match="hflip"):
        dataclasses.replace(base, token_cache=True, train=dataclasses.replace(base.train, hflip=True))


class FakeClip(torch.nn.Module):
    """An emoji-clip-like stand-in with 8-d vectors; records how many images it encoded."""

    config = None

    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def encode_image(self, images):
        self.seen.append(images.shape[0])
        return torch.nn.functional.normalize(images.mean(dim=(2, 3)).repeat(1, 3)[:, :8] + 1, dim=-1)

    def encode_text(self, captions):
        return torch.nn.functional.normalize(torch.randn(len(captions), 8), dim=-1)


def test_clip_image_vectors_only_for_kept_samples(tmp_path, monkeypatch):
    cfg = tiny(tmp_path)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, clip_dim=8), clip_model="fake")
    torch.manual_seed(0)
    trainer = PaellaTrainer(cfg, tensorboard=False, progress=False)
    import fastt2i.training.paella as tp

    with monkeypatch.context() as mp:
        mp.setattr(tp, "load_clip_model", lambda spec, device=None: FakeClip())
        trainer.setup()
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    drops = {"drop_text": torch.zeros(4, dtype=torch.bool), "drop_clip_text": torch.zeros(4, dtype=torch.bool),
             "drop_clip_image": torch.tensor([True, False, True, False])}
    text, mask, clip_text, clip_image = trainer.conditioning_inputs(images, ["a", "b", "c", "d"], drops)
    assert trainer.clip.seen == [2]
    assert clip_text.shape == (4, 8) and float(clip_image[[0, 2]].abs().sum()) == 0
    assert float(clip_image[[1, 3]].norm(dim=1).min()) > 0.99
    out = trainer.train_step({"image": images, "caption": ["a", "b", "c", "d"]}, 0)
    assert torch.isfinite(out["loss/ce"])


def test_config_checks(tmp_path):
    cfg = tiny(tmp_path)
    with pytest.raises(ConfigError, match="clip_model"):
        dataclasses.replace(cfg, clip_model="emoji-clip")
    with pytest.raises(ConfigError, match="resolution"):
        dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resolution=32))
    vq_dir = tmp_path / "vq"
    load_vqgan("random-tiny", 32, 16).save_pretrained(vq_dir)
    with pytest.raises(ConfigError, match="codes"):
        load_vqgan(str(vq_dir), 64, 16)
    with pytest.raises(ConfigError, match="vqgan is empty"):
        load_vqgan("", 64, 16)


def test_presets_dry_run(capsys):
    for name in ("tiny", "emoji64", "paper"):
        assert main(["train", "paella", "--preset", name, "--dry-run"]) == 0
        cfg = json.loads(capsys.readouterr().out)
        assert cfg["model"]["codebook_size"] in (64, 1024, 8192)
    assert cfg["model"]["c_hidden"] == [640, 1280, 1280] and cfg["dropout"] == {"text": 0.05, "clip_text": 0.9,
                                                                                   "clip_image": 0.9}


def test_cli_tiny_run_exports_a_bundle_and_samples(tmp_path, npz16):
    run = tmp_path / "cli"
    rc = main(["train", "paella", "--preset", "tiny", "--data", str(npz16), "--run-dir", str(run), "--no-progress"])
    assert rc == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    scalars = [rec for rec in log if "loss/ce" in rec]
    assert len(scalars) == 4 and all(rec["loss/ce"] > 0 for rec in scalars)  # 32 images / batch 8, log_every 1
    assert any((run / "samples").iterdir())
    from fastt2i.inference.paella import PaellaPipeline

    pipe = PaellaPipeline.from_pretrained(run / "export")
    images = pipe.generate(["a cat"], [0], steps=2)
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()
    # the export samples as the run evaluated: its sample_steps (and sample_cfg, when set) are the bundle's sampler
    tiny_cfg = PRESETS["tiny"]()
    assert json.loads((run / "export" / "config.json").read_text())["sampler"] == {"steps": tiny_cfg.sample_steps}
    assert PRESETS["emoji64"]().sample_cfg == 3.0


def test_bf16_training_steps_stay_finite_with_fp32_loss_ema_and_optimizer(tmp_path):
    cfg = tiny(tmp_path, dropout=ConditionDropout(0.0, 0.0, 0.0))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, mixed_precision="bf16"))
    trainer = built(cfg)
    seen = []
    trainer.denoiser.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1
    captions = [f"toy {i}" for i in range(8)]
    losses = [float(trainer.train_step({"image": images, "caption": captions}, s)["loss/ce"]) for s in range(8)]
    assert seen and set(seen) == {torch.bfloat16}  # the denoiser really ran under bf16 autocast
    assert all(math.isfinite(v) for v in losses) and sum(losses[-3:]) < sum(losses[:3])
    assert all(p.dtype == torch.float32 for p in trainer.denoiser.parameters())
    assert all(p.dtype == torch.float32 for p in trainer.denoiser_ema.parameters())
    assert all(v.dtype == torch.float32 for st in trainer.opt.state.values() for k, v in st.items() if k != "step")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_head_cross_entropy_equals_paella_loss_of_the_projected_logits(dtype):
    g = torch.Generator().manual_seed(0)
    B, C, K, h = 3, 8, 64, 4
    feats = torch.randn(B, C, h, h, generator=g).contiguous(memory_format=torch.channels_last).to(dtype)
    weight = torch.randn(K, C, generator=g)
    target = torch.randint(0, K, (B, h, h), generator=g)
    t = torch.tensor([0.1, 0.5, 0.9])
    replaced = torch.rand(B, h, h, generator=g) < t[:, None, None]
    f1, w1 = feats.clone().requires_grad_(), weight.clone().requires_grad_()
    f2, w2 = feats.clone().requires_grad_(), weight.clone().requires_grad_()
    logits = torch.nn.functional.conv2d(f1.float(), w1[:, :, None, None])  # out_proj, in fp32 (bf16 features too)
    want = paella_loss(logits, target, t, replaced, 0.1, 0.3)
    got, hits = head_cross_entropy(f2, w2, target, t, replaced, 0.1, 0.3, chunk_elements=5 * K)  # uneven chunks
    want.backward()
    got.backward()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert f2.grad.dtype == dtype and w2.grad.dtype == torch.float32
    torch.testing.assert_close(f2.grad, f1.grad, **(dict(rtol=1e-5, atol=1e-7) if dtype == torch.float32 else {}))
    torch.testing.assert_close(w2.grad, w1.grad, rtol=1e-5, atol=1e-7)
    assert torch.equal(hits, logits.argmax(1) == target)
