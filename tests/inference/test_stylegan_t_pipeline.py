"""StyleGANTPipeline: a stylegan-t-generator export through load_pipeline, `fastt2i generate`, `edit`, eval dtype."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from fastt2i.cli import main
from fastt2i.errors import ConfigError
from fastt2i.evaluation import evaluate_source
from fastt2i.inference import PIPELINES, GigaGANPipeline, load_pipeline, model_class
from fastt2i.inference.stylegan_t import StyleGANTPipeline, resolve_text_encoder_spec
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator
from fastt2i.models.stylegan_t import STYLEGAN_T_PRESETS, StyleGANTGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("sgt") / "run"
    StyleGANTGenerator(STYLEGAN_T_PRESETS.build("tiny")).save_pretrained(run / "export", text_encoder="t5-tiny-random")
    return run


def test_load_pipeline_picks_the_stylegan_t_pipeline(run_dir):
    assert PIPELINES.get("stylegan-t-generator") is StyleGANTPipeline
    for where in (run_dir, run_dir / "export"):
        pipe = load_pipeline(where)
        assert type(pipe) is StyleGANTPipeline and isinstance(pipe, GigaGANPipeline)
        assert model_class(where) == "stylegan-t-generator" and pipe.text_encoder.name == "t5-tiny-random"
        x = pipe.generate(["a red heart", "a cat"], [0, 1])
        assert x.shape == (2, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    # per-seed noise: seed N gives the same image alone and in a batch
    batch = pipe.generate(["a cat"] * 3, [5, 0, 7])
    torch.testing.assert_close(pipe.generate(["a cat"], [0])[0], batch[1], atol=1e-4, rtol=0)
    # truncation (text-conditioned mean w, GigaGAN's formula over the StyleGAN-T mapping) runs and changes the image
    t = pipe.generate(["a cat"], [0], truncation_psi=0.5)
    assert t.shape == (1, 3, 16, 16) and (t - batch[1]).abs().max() > 0


def test_export_classes_do_not_cross(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="not a 'gigagan-generator'"):
        GigaGANPipeline.from_pretrained(run_dir)
    g = GigaGANGenerator(GIGAGAN_PRESETS.build("tiny"))
    g.save_pretrained(tmp_path / "giga", text_encoder="t5-tiny-random")
    with pytest.raises(ConfigError, match="not a 'stylegan-t-generator'"):
        StyleGANTPipeline.from_pretrained(tmp_path / "giga")


def test_relative_text_encoder_spec_resolves_inside_the_export(tmp_path):
    assert resolve_text_encoder_spec("minilm:./text_encoder", tmp_path) == f"minilm:{(tmp_path / 'text_encoder').as_posix()}"
    assert resolve_text_encoder_spec("minilm", tmp_path) == "minilm"
    assert resolve_text_encoder_spec("clip:/abs/dir", tmp_path) == "clip:/abs/dir"
    assert resolve_text_encoder_spec(None, tmp_path) is None


def test_generate_and_edit_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["generate", "--model", str(run_dir / "export"), "a red heart", "--seeds", "0-1", "-o", str(out)]) == 0
    assert min(Image.open(out).size) >= 16
    trunc = tmp_path / "t.png"
    assert main(["edit", "truncation", "--model", str(run_dir), "a red heart", "--seeds", "0-1", "--psi", "1,0.5",
                 "-o", str(trunc)]) == 0
    assert trunc.is_file()
    capsys.readouterr()


def test_eval_accepts_a_stylegan_t_export_with_dtype(run_dir, monkeypatch):
    import fastt2i.evaluation as ev

    seen = {}

    def fake_evaluate(names, fake, real, **kw):  # stop after loading: the metric networks are tested elsewhere
        seen["dtype"] = kw["extra"].get("dtype")
        return {}

    monkeypatch.setattr(ev, "evaluate", fake_evaluate)
    monkeypatch.setattr(ev, "dataset_fingerprint", lambda data: "x")
    evaluate_source(str(run_dir), "unused.npz", metrics="fd_emojinet", num=4, dtype="bf16", device="cpu")
    assert seen["dtype"] == "bf16"


def test_edit_styles_and_prompt_mix_cli(run_dir, tmp_path, capsys):
    from fastt2i.inference import load_pipeline

    cfg = load_pipeline(str(run_dir)).generator.config
    assert main(["edit", "styles", "--model", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert f"num_ws {cfg.num_ws}" in printed and f"{cfg.resolution} px" in printed
    layout = cfg.style_layout()  # every style is read by some layer, the last one by the last toRGB
    assert layout[-1][2] == cfg.num_ws - 1
    assert {k for _, convs, _ in layout for k in convs} | {t for *_, t in layout} == set(range(cfg.num_ws))
    out = tmp_path / "pmix.png"
    half = cfg.num_ws // 2
    assert main(["edit", "prompt-mix", "--model", str(run_dir), "--part", f"0:{half}", "a red heart",
                 "--part", f"{half}:", "a blue star", "--seed", "0", "-o", str(out)]) == 0
    assert out.is_file()
