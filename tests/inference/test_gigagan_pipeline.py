"""GigaGANPipeline: loading an export with its text encoder, per-seed determinism, `fastt2i generate`, eval sources."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from fastt2i.inference import load_pipeline
from fastt2i.metrics.sources import model_batches
from PIL import Image

from fastt2i.cli import main
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.inference.gigagan import GigaGANPipeline
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator
from fastt2i.utils.images import to_uint8

PROMPTS = ["a red heart", "a smiling cat face wearing a hat", "a blue star"]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    cfg = dataclasses.replace(GIGAGAN_PRESETS.build("tiny"), text_encoder="t5-tiny-random")
    torch.manual_seed(1)
    g = GigaGANGenerator(cfg)
    run = tmp_path_factory.mktemp("run")
    g.save_pretrained(run / "export", text_encoder="t5-tiny-random")
    return run / "export"


@pytest.fixture(scope="module")
def pipe(export) -> GigaGANPipeline:
    return GigaGANPipeline.from_pretrained(export)


def test_loads_the_recorded_text_encoder_and_generates(pipe, export):
    assert pipe.text_encoder.name == "t5-tiny-random" and pipe.resolution == 16
    assert not pipe.training and not pipe.generator.training
    x = pipe.generate(PROMPTS[:2], [0, 1])
    assert x.shape == (2, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(pipe(PROMPTS[:2], [0, 1]), x)
    # a run directory with export/ inside loads too, giving the same images
    again = GigaGANPipeline.from_pretrained(export.parent)
    assert torch.equal(again.generate(PROMPTS[:2], [0, 1]), x)


def test_same_seed_same_image_at_batch_1_and_8(pipe):
    prompts = [PROMPTS[i % 3] for i in range(8)]
    seeds = [11, 3, 7, 0, 5, 2, 9, 4]
    batch = pipe.generate(prompts, seeds)
    for i in (0, 3, 7):
        single = pipe.generate([prompts[i]], [seeds[i]])
        torch.testing.assert_close(single[0], batch[i], atol=1e-4, rtol=0)
    # distinct seeds (same prompt) and distinct prompts (same seed) give distinct images
    assert (batch[0] - batch[3]).abs().max() > 1e-2
    same_seed = pipe.generate(PROMPTS, [5, 5, 5])
    assert (same_seed[0] - same_seed[1]).abs().max() > 1e-2
    # one prompt is broadcast over the seeds
    torch.testing.assert_close(pipe.generate([PROMPTS[0]], [11, 5]), pipe.generate([PROMPTS[0]] * 2, [11, 5]))


def test_bad_inputs_give_clear_errors(pipe, export):
    with pytest.raises(ConfigError, match="2 prompts but 3 seeds"):
        pipe.generate(PROMPTS[:2], [0, 1, 2])
    with pytest.raises(ConfigError, match="at least one prompt"):
        pipe.generate([], [])
    with pytest.raises(ConfigError, match="16-d"):
        GigaGANPipeline(pipe.generator, _clip_tiny())
    with pytest.raises(AssetNotFoundError, match="no such directory"):
        GigaGANPipeline.from_pretrained(export, text_encoder="clip:/nonexistent/clip-dir")


def _clip_tiny():
    from fastt2i.text import load_text_encoder

    return load_text_encoder("clip-tiny-random")  # 32-d tokens but 16-d pooled: not the generator's widths


def test_generate_cli_writes_a_prompts_by_seeds_grid(pipe, export, tmp_path, capsys):
    out = tmp_path / "grid.png"
    rc = main(["generate", "--model", str(export), PROMPTS[0], PROMPTS[2], "--seeds", "3-5", "-o", str(out),
               "--batch-size", "4", "--device", "cpu"])
    assert rc == 0 and "2 prompts x 3 seeds" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size == (3 * 18 + 2, 2 * 18 + 2)
        tile = torch.tensor(list(im.convert("RGB").getdata()), dtype=torch.uint8).view(im.size[1], im.size[0], 3)
    # row 1 (prompt 2), column 2 (seed 4) is the pipeline's image
    expected = to_uint8(pipe.generate([PROMPTS[2]], [4]))[0]
    y, x = 2 + 18, 2 + 18
    assert (tile[y:y + 16, x:x + 16].int() - torch.from_numpy(expected).int()).abs().max() <= 1


def test_generate_cli_without_the_default_model_says_so(monkeypatch, tmp_path, capsys):
    import fastt2i.assets

    from fastt2i.inference import DEFAULT_MODEL

    monkeypatch.setattr(fastt2i.assets, "ROOT", tmp_path)  # an asset dir without the default model
    assert main(["generate", "a red heart", "-o", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and DEFAULT_MODEL in err[0] and "--model" in err[0]
    assert not (tmp_path / "g.png").exists()


def test_generate_cli_uses_the_bundled_model_by_default(tmp_path):
    from PIL import Image

    from fastt2i.assets import asset_path
    from fastt2i.inference import DEFAULT_MODEL

    bundled = asset_path(DEFAULT_MODEL)
    size = sum(f.stat().st_size for f in bundled.rglob("*") if f.is_file())  # a Paella bundle has subdirectories
    assert size <= 30 * 2**20, f"the bundled model must stay <= 30 MB, is {size / 2**20:.1f} MB"
    assert (bundled / "README.md").is_file()  # model card
    out = tmp_path / "grid.png"
    assert main(["generate", "red heart", "cat face", "--seeds", "0-1", "-o", str(out), "--device", "cpu"]) == 0
    with Image.open(out) as im:
        assert im.size == (2 * 66 + 2, 2 * 66 + 2)  # 2 x 2 tiles of 64 px with 2 px padding
        pixels = torch.tensor(list(im.convert("L").getdata()), dtype=torch.float32)
    assert float(pixels.std()) > 5  # an image, not a constant


def test_eval_sources_load_and_sample_the_pipeline(pipe, export):
    model = load_pipeline(export.parent)
    assert isinstance(model, GigaGANPipeline) and model.text_encoder.name == "t5-tiny-random"
    prompts_fn = lambda: iter([{"image": torch.zeros(3, 3, 16, 16), "caption": PROMPTS}])  # noqa: E731
    batches = list(model_batches(model.eval().generate, prompts_fn, num=5, batch_size=2, seed=10))
    assert [len(b["caption"]) for b in batches] == [2, 2, 1]
    images = torch.cat([b["image"] for b in batches])
    assert images.shape == (5, 3, 16, 16)
    captions = [c for b in batches for c in b["caption"]]
    assert captions == [PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[0], PROMPTS[1]]
    torch.testing.assert_close(images, pipe.generate(captions, list(range(10, 15))), atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def soft_export(tmp_path_factory) -> Path:
    """A tiny export whose images are mostly unsaturated (small toRGB weights) and whose noise inputs matter."""
    cfg = dataclasses.replace(GIGAGAN_PRESETS.build("tiny"), text_encoder="t5-tiny-random")
    torch.manual_seed(1)
    g = GigaGANGenerator(cfg)
    with torch.no_grad():
        for torgb in g.synthesis.torgb:
            torgb.conv.weight.mul_(0.05)
        for m in g.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.3)
    path = tmp_path_factory.mktemp("soft") / "export"
    g.save_pretrained(path, text_encoder="t5-tiny-random")
    return path


def test_bf16_synthesis_is_close_to_fp32_and_still_per_seed(soft_export):
    fp32 = GigaGANPipeline.from_pretrained(soft_export)
    bf16 = GigaGANPipeline.from_pretrained(soft_export, dtype="bf16")
    assert fp32.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    # weights, w_avg and every buffer stay fp32: only the synthesis computes in bf16
    assert all(t.dtype == torch.float32 for t in [*bf16.generator.parameters(), *bf16.generator.buffers()]
               if t.is_floating_point())
    prompts, seeds = [PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[0]], [4, 0, 7, 2]
    a, b = fp32.generate(prompts, seeds), bf16.generate(prompts, seeds)
    assert b.shape == a.shape == (4, 3, 16, 16) and b.dtype == torch.float32
    assert (a.abs() > 0.999).float().mean() < 0.1  # mostly unsaturated: the comparison means something
    diff = (a - b).abs()
    assert 0 < diff.mean() < 0.05 and diff.max() < 0.25  # bf16 really ran, and stays close
    # same seed, same image alone or in a batch (bf16 roundings may differ by a few ulps between batch sizes)
    for i in (0, 3):
        torch.testing.assert_close(bf16.generate([prompts[i]], [seeds[i]])[0], b[i], atol=1e-2, rtol=0)
    torch.testing.assert_close(bf16.generate(prompts, seeds), b)  # and run to run
    # truncation (its maths stay fp32) changes nothing about that
    t32, t16 = fp32.generate(prompts, seeds, 0.5), bf16.generate(prompts, seeds, 0.5)
    assert (t32 - t16).abs().mean() < 0.05
    bf16.dtype = "fp32"
    torch.testing.assert_close(bf16.generate(prompts, seeds), a)
    with pytest.raises(ConfigError, match="dtype"):
        GigaGANPipeline.from_pretrained(soft_export, dtype="int8")
    with pytest.raises(ConfigError, match="dtype"):
        bf16.dtype = "half-ish"


def test_generate_returns_ordinary_tensors(pipe):
    x = pipe.generate(PROMPTS[:1], [0])
    assert not x.is_inference() and not x.requires_grad
    x.add_(1)  # callers may modify the images in place


def test_truncation_reuses_each_prompts_conditional_mean(soft_export, monkeypatch):
    import fastt2i.inference.gigagan as gigagan_pipeline

    pipe = GigaGANPipeline.from_pretrained(soft_export, w_mean_cache_size=2)
    uncached = GigaGANPipeline(pipe.generator, pipe.text_encoder, w_mean_cache_size=0).eval()
    calls: list[int] = []
    real = gigagan_pipeline.conditional_w_mean

    def counting(G, t_global, **kw):
        calls.append(t_global.shape[0])
        return real(G, t_global, **kw)

    monkeypatch.setattr(gigagan_pipeline, "conditional_w_mean", counting)
    a, b, c = PROMPTS
    first = pipe.generate([a, b, a], [0, 1, 2], truncation_psi=0.5)
    assert calls == [2]  # two distinct prompts, one mapping pass over their latents
    torch.testing.assert_close(first, uncached.generate([a, b, a], [0, 1, 2], truncation_psi=0.5), atol=1e-5, rtol=0)
    again = pipe.generate([b, a], [1, 0], truncation_psi=0.7)  # the mean does not depend on psi: reused
    assert calls == [2]
    torch.testing.assert_close(again, uncached.generate([b, a], [1, 0], truncation_psi=0.7), atol=1e-5, rtol=0)
    assert torch.equal(pipe.generate([a], [3]), uncached.generate([a], [3]))  # psi = 1 needs no mean
    assert calls == [2]
    pipe.generate([c], [0], truncation_psi=0.5)  # a third prompt: the least recently used (b) goes
    assert calls == [2, 1] and list(pipe._w_means) == [a, c]
    with torch.no_grad():  # new weights (a training step, an EMA copy): the cached means are stale
        pipe.generator.mapping.layers[0].weight.mul_(1.5)
    fresh = pipe.generate([a], [0], truncation_psi=0.5)
    assert calls == [2, 1, 1]
    torch.testing.assert_close(fresh, uncached.generate([a], [0], truncation_psi=0.5), atol=1e-5, rtol=0)
    assert not torch.allclose(fresh, first[:1])


def test_generate_and_eval_clis_take_a_dtype(soft_export, tmp_path, capsys):
    from fastt2i.cli.eval import parse
    from fastt2i.evaluation import evaluate_source

    out = tmp_path / "grid.png"
    rc = main(["generate", "--model", str(soft_export), PROMPTS[0], "--seeds", "0-1", "-o", str(out),
               "--device", "cpu", "--dtype", "bf16"])
    assert rc == 0 and out.is_file() and "1 prompts x 2 seeds" in capsys.readouterr().out
    assert parse(["--model", "m", "--data", "d", "--dtype", "bf16"]).dtype == "bf16"
    assert parse(["--model", "m", "--data", "d"]).dtype == "fp32"
    out = tmp_path / "trunc.png"
    assert main(["edit", "truncation", "--model", str(soft_export), PROMPTS[0], "--seeds", "0", "--psi", "1,0.5",
                 "-o", str(out), "--device", "cpu", "--dtype", "bf16"]) == 0 and out.is_file()
    with pytest.raises(ConfigError, match="applies to text-to-image models"):
        evaluate_source("reference:noise", "unused.npz", metrics="fd_emojinet", num=1, dtype="bf16")
