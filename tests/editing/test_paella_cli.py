"""CLI tests of the Paella paths: `fastt2i generate` and `fastt2i edit variation|inpaint|outpaint|img2img|...`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inference"))
from paellafx import tiny_parts  # noqa: E402

from fastt2i.cli import main  # noqa: E402
from fastt2i.cli.generate import individual_names  # noqa: E402
from fastt2i.inference.paella import PaellaPipeline  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    vq, den, enc, _ = tiny_parts(token_hw=8, clip=False, seed=2)
    return PaellaPipeline(vq, den, enc).save_pretrained(tmp_path_factory.mktemp("paella") / "bundle")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("inputs")
    Image.new("RGB", (40, 40), (200, 30, 30)).save(d / "img.png")
    mask = Image.new("L", (40, 40), 0)
    mask.paste(255, (10, 10, 30, 30))
    mask.save(d / "mask.png")
    return d / "img.png", d / "mask.png"


def test_generate_with_sampler_options(bundle, tmp_path, capsys):
    out = tmp_path / "grid.png"
    rc = main(["generate", "--model", str(bundle), "a red heart", "a blue star", "--seeds", "0-2", "--steps", "3",
               "--cfg", "3", "--temperature", "0.9,0.2", "--sampler", "confidence", "-o", str(out),
               "--individual", str(tmp_path / "ind")])
    assert rc == 0 and out.is_file()
    assert "2 prompts x 3 seeds, 32 px" in capsys.readouterr().out
    assert len(list((tmp_path / "ind").glob("*.png"))) == 6
    assert Image.open(tmp_path / "ind" / individual_names(["a red heart"], [1])[0]).size == (32, 32)
    assert main(["generate", "--model", str(bundle), "x", "--seeds", "0", "--truncation", "0.5",
                 "-o", str(out)]) == 2
    assert main(["generate", "--model", str(bundle), "x", "--seeds", "0", "--temperature", "a,b",
                 "-o", str(out)]) == 2


def test_sampler_options_refused_for_gigagan(edit_export, tmp_path, capsys):
    rc = main(["generate", "--model", str(edit_export), "x", "--seeds", "0", "--steps", "3", "-o",
               str(tmp_path / "g.png")])
    assert rc == 2 and "Paella bundles" in capsys.readouterr().err


def test_gigagan_edit_refuses_a_paella_bundle(bundle, tmp_path, capsys):
    rc = main(["edit", "truncation", "--model", str(bundle), "x", "-o", str(tmp_path / "t.png")])
    assert rc == 2 and "Paella bundle" in capsys.readouterr().err


def test_edit_inpaint_outpaint_img2img(bundle, inputs, tmp_path):
    img, mask = inputs
    base = ["--model", str(bundle), "--seeds", "0-1", "--steps", "2", "--cfg", "2"]
    out = tmp_path / "inp.png"
    assert main(["edit", "inpaint", str(img), "--mask", str(mask), "a blue star", *base, "-o", str(out)]) == 0
    w, h = Image.open(out).size
    assert w > 2.5 * h  # the input then two 32 px results in one row
    out = tmp_path / "out.png"
    assert main(["edit", "outpaint", str(img), "a heart", "--pad", "16,0,16,0", *base, "-o", str(out)]) == 0
    w, h = Image.open(out).size
    assert w > 5 * h  # three 64x32 images side by side
    assert main(["edit", "outpaint", str(img), "a heart", "--scale", "0.5", *base, "-o", str(out)]) == 0
    assert main(["edit", "outpaint", str(img), "a heart", "--pad", "4,0,0,0", *base, "-o", str(out)]) == 2
    out = tmp_path / "i2i.png"
    assert main(["edit", "img2img", str(img), "a green apple", "--strength", "0.5", *base, "-o", str(out)]) == 0
    assert out.is_file()
    assert main(["edit", "img2img", str(img), "x", "--strength", "1.5", *base, "-o", str(out)]) == 2


def test_edit_variation_needs_clip_and_interpolate_runs(bundle, inputs, tmp_path, capsys):
    img, _ = inputs
    rc = main(["edit", "variation", "--model", str(bundle), str(img), "--seeds", "0", "-o", str(tmp_path / "v.png")])
    assert rc == 2 and "clip_dim" in capsys.readouterr().err
    gif = tmp_path / "morph.gif"
    rc = main(["edit", "interpolate", "--model", str(bundle), "a red heart", "a blue star", "--steps", "3",
               "--sampler-steps", "2", "-o", str(gif)])
    assert rc == 0 and gif.is_file() and gif.with_suffix(".png").is_file()


def test_generate_and_edit_take_a_dtype_for_paella(bundle, inputs, tmp_path, monkeypatch):
    import torch

    import fastt2i.cli.generate as gen

    loaded = []
    real_load = gen.load_pipeline

    def spy(args, *a, **kw):
        pipe = real_load(args, *a, **kw)
        loaded.append(pipe.dtype)
        return pipe

    monkeypatch.setattr(gen, "load_pipeline", spy)
    out = tmp_path / "bf16.png"
    assert main(["generate", "--model", str(bundle), "a red heart", "--seeds", "0-1", "--steps", "2",
                 "--dtype", "bf16", "-o", str(out)]) == 0
    assert out.is_file() and loaded == [torch.bfloat16]
    img, mask = inputs
    out = tmp_path / "inp16.png"
    assert main(["edit", "inpaint", str(img), "--mask", str(mask), "a blue star", "--model", str(bundle),
                 "--seeds", "0", "--steps", "2", "--dtype", "bf16", "-o", str(out)]) == 0
    assert out.is_file() and loaded[-1] == torch.bfloat16
    assert main(["generate", "--model", str(bundle), "x", "--seeds", "0", "--steps", "2", "-o", str(out)]) == 0
    assert loaded[-1] == torch.float32  # the default
