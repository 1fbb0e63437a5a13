"""GigaGAN upsampler trainer (sec. 3.6): a CLI run end to end, D sees the input, noise augmentation, crops, the
perceptual term, the pipeline and `fastt2i upscale` / `generate --upscale` on its export."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from fastt2i.cli import main
from fastt2i.data.transforms import downsample_antialiased
from fastt2i.errors import ConfigError
from fastt2i.inference import UpscaledPipeline, UpsamplerPipeline, load_pipeline, load_upsampler
from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig
from fastt2i.models.gigagan import GigaGANUpsampler
from fastt2i.training import latest_state, load_state
from fastt2i.training.presets import families
from fastt2i.training.upsampler import UpsamplerRunConfig, UpsamplerTrainer

PRESETS = families()["upsampler"].presets


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    """A small emoji-clip-like export for the perceptual term (the bundled one costs more than the tiny models)."""
    torch.manual_seed(0)
    model = EmojiCLIP(EmojiCLIPConfig(resolution=16, channels=(8, 16), blocks=1, text_encoder="t5-tiny-random",
                                      embed_dim=32))
    path = tmp_path_factory.mktemp("clip") / "tiny-clip"
    model.save_pretrained(path, text_encoder="t5-tiny-random")
    return str(path)


@pytest.fixture
def tiny(tiny_clip):
    def make(tmp_path, name: str = "run", **kw) -> UpsamplerRunConfig:
        cfg = dataclasses.replace(PRESETS["tiny"](), perceptual_net=tiny_clip)
        train = dataclasses.replace(cfg.train, run_dir=str(tmp_path / name), **kw.pop("train", {}))
        return dataclasses.replace(cfg, train=train, **kw)
    return make


def built(cfg: UpsamplerRunConfig) -> UpsamplerTrainer:
    torch.manual_seed(0)
    trainer = UpsamplerTrainer(cfg, tensorboard=False, progress=False)
    trainer.setup()
    return trainer


def batch(n: int = 8, res: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, 3, res, res, generator=g) * 2 - 1, "caption": [f"toy image {i}" for i in range(n)]}


@pytest.fixture(scope="module")
def npz32(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("up") / "toy32.npz"
    np.savez(path, images=rng.integers(0, 256, size=(48, 32, 32, 3), dtype=np.uint8),
             captions=np.array([f"toy image {i}" for i in range(48)]))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, npz32, tiny_clip):
    run = tmp_path_factory.mktemp("uprun") / "run"
    rc = main(["train", "upsampler", "--preset", "tiny", "--data", str(npz32), "--run-dir", str(run),
               "--no-progress", "--set", f"perceptual_net={tiny_clip}"])
    assert rc == 0
    return run


def test_cli_tiny_run_logs_finite_losses_and_exports(run_dir):
    up = GigaGANUpsampler.from_pretrained(run_dir / "export")
    assert up.config == PRESETS["tiny"]().generator
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    losses = [r for r in rows if "loss/g_adv" in r]
    assert losses, rows
    for r in losses:
        for k in ("loss/d_real", "loss/d_fake", "loss/d_match", "loss/g_adv", "loss/g_lpips"):
            assert math.isfinite(r[k]), (k, r)
    assert list((run_dir / "samples").glob("*.png"))


def test_d_judges_image_and_input_pairs(tmp_path, tiny):
    tr = built(tiny(tmp_path))
    hr = batch(4)["image"]
    lr = tr.low_res(hr)
    torch.testing.assert_close(lr, downsample_antialiased(hr, 16))  # the metrics' downsampling
    pyr = tr.real_pyramid(hr, lr)
    assert [tuple(x.shape) for x in pyr] == [(4, 6, 32, 32), (4, 6, 16, 16), (4, 6, 8, 8)]
    torch.testing.assert_close(pyr[1][:, 3:], lr)  # the input itself at its own size
    torch.testing.assert_close(pyr[0][:, :3], hr)
    # a fake that ignores its input differs from the real pair only in the image channels
    fake = tr.d_pyramid([torch.zeros_like(hr), torch.zeros(4, 3, 16, 16)], lr)
    torch.testing.assert_close(fake[0][:, 3:], pyr[0][:, 3:])
    with pytest.raises(ConfigError, match="cond is missing"):
        tr.real_pyramid(hr)


def test_noise_augmentation_is_bounded_and_switchable(tmp_path, tiny):
    lr = torch.zeros(64, 3, 16, 16)
    on = built(tiny(tmp_path, "on", noise_aug_sigma=0.2))
    torch.manual_seed(1)
    noisy = on.augment(lr)
    std = noisy.flatten(1).std(dim=1)  # per-sample sigma ~ U(0, 0.2)
    assert 0.0 < float(std.min()) and float(std.max()) < 0.25 and 0.05 < float(std.mean()) < 0.15
    off = built(tiny(tmp_path, "off", noise_aug_sigma=0.0))
    assert torch.equal(off.augment(lr), lr)


def test_crops_and_their_checks(tmp_path, tiny):
    tr = built(tiny(tmp_path, "crop", crop=16, discriminator=dataclasses.replace(
        PRESETS["tiny"]().discriminator, resolution=16, pyramid_levels=2, channels=(16, 32)), train={}))
    out = tr.train_step(batch(4), 0)  # 16 px crops, 8 px inputs (random noise), D at 16 px
    assert all(torch.isfinite(v) for v in out.values())
    assert tuple(tr.random_crop(batch(4)["image"]).shape) == (4, 3, 16, 16)
    with pytest.raises(ConfigError, match="discriminator.resolution"):
        tiny(tmp_path, crop=16)
    with pytest.raises(ConfigError, match="multiple of the scale"):
        tiny(tmp_path, crop=15)
    with pytest.raises(ConfigError, match="image_channels must be 6"):
        tiny(tmp_path, discriminator=dataclasses.replace(PRESETS["tiny"]().discriminator, image_channels=3))
    with pytest.raises(ConfigError, match="mode_seeking_weight is for base generators"):
        tiny(tmp_path, mode_seeking_weight=1.0)


def test_perceptual_term_is_against_the_ground_truth(tmp_path, tiny):
    tr = built(tiny(tmp_path))
    hr = batch(2)["image"]
    (w, same), = tr.g_extra_losses([hr.clone()], hr, None).values()
    (_, other), = tr.g_extra_losses([-hr], hr, None).values()
    assert w == 1.0 and float(same) < 1e-6 < float(other)
    assert built(tiny(tmp_path, "nolp", perceptual_weight=0.0)).g_extra_losses([hr], hr, None) == {}
    with pytest.raises(ConfigError, match="emoji-net"):
        built(tiny(tmp_path, "bad", perceptual_net="emoji-net"))


def test_pipeline_is_per_seed_and_resizes_inputs(run_dir):
    up = load_upsampler(run_dir)
    assert isinstance(up, UpsamplerPipeline) and (up.input_resolution, up.resolution) == (16, 32)
    lr = torch.rand(3, 3, 16, 16) * 2 - 1
    both = up.upscale(lr, ["a", "b", "c"], [5, 6, 7])
    one = up.upscale(lr[1:2], ["b"], [6])
    torch.testing.assert_close(both[1:2], one, atol=1e-5, rtol=0)  # same (image, prompt, seed) at any batch
    assert tuple(up.upscale(torch.rand(1, 3, 64, 64) * 2 - 1, ["a"]).shape) == (1, 3, 32, 32)
    with pytest.raises(ConfigError, match="one of each per image"):
        up.upscale(lr, ["a", "b"])


def test_upscale_and_generate_upscale_cli(run_dir, tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(np.full((24, 24, 3), 200, dtype=np.uint8)).save(src)
    out = tmp_path / "out.png"
    assert main(["upscale", str(src), "a toy", "--upsampler", str(run_dir), "-o", str(out)]) == 0
    assert Image.open(out).size == (32, 32)
    grid = tmp_path / "grid.png"
    assert main(["generate", "red heart", "--model", "gigagan-emoji64", "--seeds", "0-1", "--upsampler",
                 str(run_dir), "-o", str(grid)]) == 0
    assert Image.open(grid).size[1] >= 32  # a row of 32 px images (plus padding)
    pipe = load_pipeline("gigagan-emoji64", upsampler=run_dir)
    assert isinstance(pipe, UpscaledPipeline) and pipe.resolution == 32
    with pytest.raises(ConfigError, match="is an upsampler"):
        load_pipeline(run_dir)


def test_evaluation_scores_the_validation_split(tmp_path, tiny, npz32):
    tr = built(tiny(tmp_path, "eval", train={"data": str(npz32)}))
    res = tr.evaluate()
    n = len(tr._val[1])  # the held-out split (5% of 48 images by key hash)
    assert n >= 1 and set(res) == {f"patchfd_emojinet_{n}", f"psnr_{n}", f"ssim_{n}", f"lrpsnr_{n}"}
    assert all(math.isfinite(v) for v in res.values()) and 0 < res[f"ssim_{n}"] <= 1
    with pytest.raises(ConfigError, match="unknown upscaler metric"):
        tiny(tmp_path, eval_metrics="fid")


def test_init_from_an_export_with_d_warmup_keeps_g_and_trains_d(run_dir, npz32, tiny_clip, tmp_path):
    """`train.init_from=EXPORT` + `d_warmup_kimg`: the upsampler and its EMA start as the export and stay so while only
    D trains."""
    weights = GigaGANUpsampler.from_pretrained(run_dir / "export").state_dict()
    run = tmp_path / "ft"
    rc = main(["train", "upsampler", "--preset", "tiny", "--data", str(npz32), "--run-dir", str(run), "--no-progress",
               "--kimg", "0.016", "--set", f"perceptual_net={tiny_clip}",
               "--set", f"train.init_from={run_dir / 'export'}", "--set", "d_warmup_kimg=1",
               "--set", "train.sample_kimg=0"])
    assert rc == 0
    state = load_state(latest_state(run))
    assert state["step"] > 0
    for k, v in weights.items():
        assert torch.equal(state["trainer"]["G"][k], v) and torch.equal(state["ema"]["G"][k], v), k
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert rows and all("loss/g_adv" not in r and "loss/d_real" in r for r in rows)
