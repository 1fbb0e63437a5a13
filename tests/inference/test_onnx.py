"""ONNX export + onnxruntime pipelines on tiny random models: files, parity with PyTorch, the CLI, clear errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is in the onnx and test extras")

from fastt2i import __version__  # noqa: E402
from fastt2i.cli import main  # noqa: E402
from fastt2i.errors import AssetNotFoundError, ConfigError  # noqa: E402
from fastt2i.inference.gigagan import GigaGANPipeline  # noqa: E402
from fastt2i.inference.onnx import (  # noqa: E402
    GIGAGAN_ONNX_CLASS,
    ONNX_CONFIG,
    PAELLA_ONNX_CLASS,
    OnnxGigaGANPipeline,
    OnnxPaellaPipeline,
    export_onnx,
    load_onnx_pipeline,
)
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator  # noqa: E402
from fastt2i.models.paella.conditioning import PaellaCondition  # noqa: E402
from paellafx import CLIP_DIM, tiny_pipeline  # noqa: E402

PROMPTS = ["a red heart", "a smiling cat face wearing a hat", "a blue star"]
IMAGE_ATOL = 1e-3  # the parity guarantee on images in [-1,1]


@pytest.fixture(scope="module")
def gigagan_export(tmp_path_factory) -> Path:
    # the tiny preset with attention at 8 px only: every op kind (L2 self-attention with the style token, masked
    # cross-attention, a 2-kernel bank, the pyramid) in fewer layers, so the export traces faster
    cfg = dataclasses.replace(GIGAGAN_PRESETS.build("tiny"), text_encoder="t5-tiny-random", attention_resolutions=(8,))
    torch.manual_seed(1)
    run = tmp_path_factory.mktemp("run")
    GigaGANGenerator(cfg).save_pretrained(run / "export", text_encoder="t5-tiny-random")
    return run / "export"


@pytest.fixture(scope="module")
def gigagan_onnx(gigagan_export, tmp_path_factory) -> Path:
    """The tiny generator exported through the CLI (`fastt2i export onnx --model RUN_DIR --out DIR`)."""
    out = tmp_path_factory.mktemp("onnx") / "gigagan"
    with torch.no_grad():  # the export traces with autograd on whatever the caller's mode (no-grad paths differ)
        assert main(["export", "onnx", "--model", str(gigagan_export.parent), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def gigagan_pipes(gigagan_export, gigagan_onnx) -> tuple[GigaGANPipeline, OnnxGigaGANPipeline]:
    """(PyTorch pipeline, onnxruntime pipeline) of the tiny generator, sharing one text encoder."""
    onnx_pipe = load_onnx_pipeline(gigagan_onnx)
    return GigaGANPipeline.from_pretrained(gigagan_export, text_encoder=onnx_pipe.text_encoder), onnx_pipe


@pytest.fixture(scope="module")
def paella_onnx(tmp_path_factory):
    """(PyTorch pipeline, ONNX dir, paths written): tiny denoiser with CLIP tokens, 8x8 tokens, 64 codes.

    The bundle names a CLIP model saved inside it ("./clip", copied along by the export); the toy CLIP model itself
    is passed as an object, as it cannot be saved.
    """
    pipe = tiny_pipeline(token_hw=8, clip=True)
    bundle = tmp_path_factory.mktemp("paella") / "bundle"
    pipe.save_pretrained(bundle)
    meta = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps({**meta, "clip_model": "./clip"}))
    (bundle / "clip").mkdir()
    (bundle / "clip" / "weights.txt").write_text("toy clip")
    with torch.no_grad():
        paths = export_onnx(bundle, bundle.parent / "onnx", clip_model=pipe.clip_model)
    return pipe, bundle.parent / "onnx", paths


# ------------------------------------------------------------------------------------------------ GigaGAN
def test_gigagan_export_writes_the_graph_and_its_config(gigagan_onnx):
    onnx = pytest.importorskip("onnx")
    assert sorted(p.name for p in gigagan_onnx.iterdir()) == ["generator.onnx", ONNX_CONFIG]
    meta = json.loads((gigagan_onnx / ONNX_CONFIG).read_text())
    assert meta["class"] == GIGAGAN_ONNX_CLASS and meta["fastt2i_version"] == __version__
    assert meta["text_encoder"] == "t5-tiny-random" and meta["resolution"] == 16 and meta["opset"] == 18
    io = meta["files"]["generator.onnx"]
    assert list(io["inputs"]) == ["z", "text_tokens", "text_mask", "pooled"]
    assert io["inputs"]["text_tokens"]["shape"] == ["batch", "length", 32]
    assert io["outputs"]["images"]["shape"] == ["batch", 3, 16, 16]
    model = onnx.load(str(gigagan_onnx / "generator.onnx"))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 18
    dims = [d.dim_param or d.dim_value for d in model.graph.input[1].type.tensor_type.shape.dim]
    assert dims == ["batch", "length", 32]  # dynamic batch and text length


def test_gigagan_onnx_matches_pytorch_at_any_batch_and_text_length(gigagan_pipes):
    torch_pipe, onnx_pipe = gigagan_pipes
    assert isinstance(onnx_pipe, OnnxGigaGANPipeline) and onnx_pipe.resolution == 16
    seeds = [3, 11, 0]
    ref = torch_pipe.generate(PROMPTS, seeds)
    got = onnx_pipe.generate(PROMPTS, seeds)
    assert got.shape == ref.shape == (3, 3, 16, 16) and got.min() >= -1 and got.max() <= 1
    assert (got - ref).abs().max() <= IMAGE_ATOL
    assert (got[0] - got[1]).abs().max() > 1e-2  # the images differ, so agreement means something
    single = onnx_pipe.generate([PROMPTS[2]], [0])  # batch 1 and a shorter text: other dynamic sizes
    assert (single[0] - ref[2]).abs().max() <= IMAGE_ATOL
    assert torch.equal(onnx_pipe(PROMPTS[:1], [5, 6]), onnx_pipe.generate(PROMPTS[:1] * 2, [5, 6]))


def test_gigagan_onnx_refuses_truncation_and_bad_batches(gigagan_pipes):
    pipe = gigagan_pipes[1]
    with pytest.raises(ConfigError, match="without truncation"):
        pipe.generate(PROMPTS[:1], [0], truncation_psi=0.7)
    with pytest.raises(ConfigError, match="2 prompts but 3 seeds"):
        pipe.generate(PROMPTS[:2], [0, 1, 2])


# ------------------------------------------------------------------------------------------------ Paella
def test_paella_export_writes_three_graphs(paella_onnx):
    pipe, out, paths = paella_onnx
    assert [p.name for p in paths] == ["conditioner.onnx", "denoiser.onnx", "vqgan_decoder.onnx", ONNX_CONFIG, "clip"]
    meta = json.loads((out / ONNX_CONFIG).read_text())
    assert meta["class"] == PAELLA_ONNX_CLASS and meta["clip_model"] == "./clip" and meta["token_shape"] == [8, 8]
    assert (out / "clip" / "weights.txt").read_text() == "toy clip"  # the bundle's CLIP model travels along
    assert list(meta["files"]["conditioner.onnx"]["inputs"]) == [
        "text_tokens", "text_mask", "drop_text", "clip_text", "clip_image", "drop_clip_text", "drop_clip_image"]
    assert meta["files"]["denoiser.onnx"]["outputs"]["logits"]["shape"] == ["batch", 64, "height", "width"]


def test_paella_graphs_match_pytorch(paella_onnx):
    pipe, out, _ = paella_onnx
    onnx_pipe = OnnxPaellaPipeline.from_pretrained(out, clip_model=pipe.clip_model)
    emb = torch.randn(3, CLIP_DIM, generator=torch.Generator().manual_seed(0))
    cond, onnx_cond = pipe.condition(PROMPTS, emb), onnx_pipe.condition(PROMPTS, emb)
    uncond, onnx_uncond = (p.condition(PROMPTS, emb, unconditional=True) for p in (pipe, onnx_pipe))
    assert torch.equal(cond.mask, onnx_cond.mask) and torch.equal(uncond.mask, onnx_uncond.mask)
    torch.testing.assert_close(onnx_cond.tokens, cond.tokens, atol=1e-5, rtol=0)
    # denoiser logits over a CFG batch [cond; uncond] of 6 rows
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 64, (6, 8, 8), generator=g)
    t = torch.tensor([1.0, 0.7, 0.2, 1.0, 0.7, 0.2])
    both = PaellaCondition(torch.cat([cond.tokens, uncond.tokens]), torch.cat([cond.mask, uncond.mask]))
    ref, got = pipe.model_fn(x, t, both), onnx_pipe.model_fn(x, t, both)
    assert got.shape == ref.shape == (6, 64, 8, 8)
    assert torch.equal(got.argmax(1), ref.argmax(1))
    assert (got - ref).abs().max() <= 1e-3 * ref.abs().max()
    # VQGAN decoder, at the exported grid and at another one
    for shape in ((6, 8, 8), (2, 4, 12)):
        tokens = torch.randint(0, 64, shape, generator=g)
        ref_img, img = pipe.decode(tokens), onnx_pipe.decode(tokens)
        assert img.shape == ref_img.shape == (shape[0], 3, 4 * shape[1], 4 * shape[2])
        assert (img - ref_img).abs().max() <= IMAGE_ATOL


def test_paella_onnx_sampling_gives_the_pytorch_tokens_at_temperature_0(paella_onnx):
    pipe, out, _ = paella_onnx
    onnx_pipe = load_onnx_pipeline(out, clip_model=pipe.clip_model)
    assert isinstance(onnx_pipe, OnnxPaellaPipeline) and onnx_pipe.resolution == 32
    kw = dict(steps=4, cfg=3.0, temperature=0.0, return_tokens=True)
    ref_img, ref_tok = pipe.generate(PROMPTS, [3, 4, 5], **kw)
    img, tok = onnx_pipe.generate(PROMPTS, [3, 4, 5], **kw)
    assert torch.equal(tok, ref_tok)
    assert not torch.equal(tok[0], tok[1])  # prompts and seeds matter: identical tokens are not trivial
    assert img.shape == (3, 3, 32, 32) and (img - ref_img).abs().max() <= IMAGE_ATOL
    # the sampled (temperature > 0) path runs over the same per-seed generators: one row at batch 1
    one = onnx_pipe.generate(PROMPTS[1:2], [4], steps=4, cfg=3.0, return_tokens=True)[1]
    three = onnx_pipe.generate(PROMPTS, [3, 4, 5], steps=4, cfg=3.0, return_tokens=True)[1]
    assert torch.equal(one[0], three[1])
    with pytest.raises(ConfigError, match="decoder only"):
        onnx_pipe.tokenize(torch.zeros(1, 3, 32, 32))


# ------------------------------------------------------------------------------------------------ CLI and errors
def test_cli_options_belong_to_their_kind_of_export(gigagan_export, tmp_path, capsys):
    out = str(tmp_path / "x")
    for argv, msg in ((["export", "onnx", "--out", out], "needs --model"),
                      (["export", "onnx", "--run-dir", str(gigagan_export.parent), "--out", out], "not --run-dir"),
                      (["export", "gigagan", "--model", str(gigagan_export), "--out", out], "are for `fastt2i export "
                                                                                             "onnx`"),
                      (["export", "gigagan", "--out", out], "needs --run-dir")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and msg in err, err
    assert not (tmp_path / "x").exists()


def test_onnx_export_refuses_unsafe_targets_and_non_pipelines(gigagan_export, gigagan_onnx, paella_onnx, tmp_path,
                                                              capsys):
    before = sorted(p.name for p in gigagan_export.iterdir())
    for target in (gigagan_export, gigagan_export.parent):  # the model itself, a folder above it
        with pytest.raises(ConfigError, match="model's own directory"):
            export_onnx(gigagan_export, target)
    assert sorted(p.name for p in gigagan_export.iterdir()) == before
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "a.txt").write_text("keep")
    assert main(["export", "onnx", "--model", str(gigagan_export), "--out", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not a fastt2i export" in err, err
    with pytest.raises(ConfigError, match="holds a 'onnx-paella-pipeline' ONNX export"):  # another kind: refused
        export_onnx(gigagan_export, paella_onnx[1])
    pytorch_export = Path(shutil.copytree(gigagan_export, tmp_path / "pytorch-export"))
    with pytest.raises(ConfigError, match="holds a 'gigagan-generator' export"):  # a PyTorch export: refused
        export_onnx(gigagan_export, pytorch_export)
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(gigagan_export, tmp_path / "new", opset=9)
    vq = tiny_pipeline(token_hw=4).vqgan
    vq.save_pretrained(tmp_path / "vqgan")
    assert main(["export", "onnx", "--model", str(tmp_path / "vqgan"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'paella-vqgan' export; ONNX export covers the text-to-image models" in err, err
    assert (foreign / "a.txt").read_text() == "keep" and not (tmp_path / "v").exists()


def test_missing_onnxruntime_and_wrong_directories_give_one_line_errors(gigagan_onnx, gigagan_export, monkeypatch):
    with pytest.raises(AssetNotFoundError, match="is not an ONNX export.*fastt2i export onnx"):
        load_onnx_pipeline(gigagan_export)
    with pytest.raises(ConfigError, match="not a 'onnx-paella-pipeline'"):
        OnnxPaellaPipeline.from_pretrained(gigagan_onnx)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(AssetNotFoundError, match=r"needs onnxruntime.*pip install 'fastt2i\[onnx\]'"):
        load_onnx_pipeline(gigagan_onnx)
