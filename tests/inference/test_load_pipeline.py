"""`load_pipeline`: one loader for every export (bundled name, export, run dir, Paella bundle), by its config's class."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from paellafx import tiny_pipeline

import fastt2i.assets
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.inference import (
    DEFAULT_MODEL,
    PIPELINES,
    GigaGANPipeline,
    PaellaPipeline,
    bundled_models,
    load_pipeline,
    model_class,
    resolve_model,
)
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator
from fastt2i.models.paella.vqgan import VQGAN, VQGANConfig


@pytest.fixture()
def gigagan_run(tmp_path):
    cfg = dataclasses.replace(GIGAGAN_PRESETS.build("tiny"), text_encoder="t5-tiny-random")
    torch.manual_seed(0)
    GigaGANGenerator(cfg).save_pretrained(tmp_path / "run" / "export", text_encoder="t5-tiny-random")
    return tmp_path / "run"


def test_each_export_class_gets_its_pipeline(gigagan_run, tmp_path):
    for where in (gigagan_run, gigagan_run / "export"):  # a run dir resolves to its export/
        pipe = load_pipeline(where)
        assert isinstance(pipe, GigaGANPipeline) and model_class(where) == "gigagan-generator"
        assert pipe.generate(["a cat"], [0]).shape == (1, 3, 16, 16)
    tiny_pipeline(token_hw=4).save_pretrained(tmp_path / "paella")
    paella = load_pipeline(tmp_path / "paella")
    assert isinstance(paella, PaellaPipeline) and paella.resolution == 16
    # the loader passes the text-encoder override through to the pipeline
    assert load_pipeline(gigagan_run, text_encoder="t5-tiny-random").text_encoder.name == "t5-tiny-random"


def test_bundled_models_by_name_and_as_the_default():
    assert "gigagan-emoji64" in bundled_models()
    assert resolve_model(None) == resolve_model(DEFAULT_MODEL) == fastt2i.assets.ROOT / DEFAULT_MODEL
    assert resolve_model("gigagan-emoji64") == fastt2i.assets.ROOT / "gigagan-emoji64"
    assert model_class("gigagan-emoji64") == "gigagan-generator"
    # emoji-clip is a bundled export but not a text-to-image model: it is not offered as one
    assert "emoji-clip" not in bundled_models()


def test_non_pipeline_exports_and_bad_paths_are_refused(tmp_path, monkeypatch):
    VQGAN(VQGANConfig(resolution=16, channels=(8, 16), encoder_blocks=(1, 1), decoder_blocks=(1, 1),
                      codebook_size=16)).save_pretrained(tmp_path / "vq")
    with pytest.raises(ConfigError, match=r"holds a 'paella-vqgan' export, which is not a text-to-image model"):
        load_pipeline(tmp_path / "vq")
    with pytest.raises(AssetNotFoundError, match=r"neither a bundled model .* nor an existing export"):
        load_pipeline(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetNotFoundError, match=r"not a fastt2i export: no config.json"):
        load_pipeline(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"cannot read .*config.json"):
        load_pipeline(tmp_path / "bad")
    monkeypatch.setattr(fastt2i.assets, "ROOT", tmp_path / "empty")
    with pytest.raises(AssetNotFoundError, match=rf"default model {DEFAULT_MODEL} is not installed"):
        load_pipeline()


def test_a_new_family_is_one_registry_line():
    assert set(PIPELINES.names()) == {"gigagan-generator", "paella-pipeline", "stylegan-t-generator"}
    assert all(callable(getattr(PIPELINES.get(n), "from_pretrained", None)) for n in PIPELINES.names())


def test_bundle_cards_and_the_models_command(tmp_path, monkeypatch, capsys):
    """`fastt2i models` lists every bundled text-to-image model with its card's metrics; a bad card.json is a clear
    error; a bundle without card.json still lists (no metrics)."""
    import json
    import shutil

    from fastt2i.cli import main
    from fastt2i.inference import bundle_card

    card = bundle_card("gigagan-emoji64")
    assert card["class"] == "gigagan-generator" and card["resolution"] == 64
    assert card["default"] is (DEFAULT_MODEL == "gigagan-emoji64") and bundle_card(DEFAULT_MODEL)["default"] is True
    assert 0 < card["size_mb"] <= 30 and card["metrics"]["fd_emojinet_646"] < 20.88  # below the blur16 reference
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"{DEFAULT_MODEL} (default)" in out and "gigagan-emoji64" in out and f"{card['metrics']['fd_emojinet_646']:#.3g}" in out
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["name"] == card["name"]

    root = tmp_path / "assets"
    shutil.copytree(fastt2i.assets.ROOT / "gigagan-emoji64", root / "other", ignore=shutil.ignore_patterns("*.png"))
    (root / "other" / "card.json").unlink()
    monkeypatch.setattr(fastt2i.assets, "ROOT", root)
    assert bundle_card("other").get("metrics") is None and bundle_card("other")["default"] is False
    (root / "other" / "card.json").write_text("{not json")
    with pytest.raises(ConfigError, match="card.json is not valid JSON"):
        bundle_card("other")


@pytest.mark.parametrize("name", bundled_models())
def test_every_bundled_model_has_a_card_fits_and_generates(name):
    """Each bundle: <= 30 MB, a model card (README.md) and card.json with its FD on the 646 validation prompts, and it
    draws finite images of its resolution through `load_pipeline`."""
    from fastt2i.inference import bundle_card

    card = bundle_card(name)
    root = fastt2i.assets.ROOT / name
    assert card["size_mb"] <= 30 and (root / "README.md").is_file() and (root / "samples.png").is_file()
    assert card["metrics"]["fd_emojinet_646"] > 0 and card["kimg"] > 0
    images = load_pipeline(name).generate(["red heart", "cat face"], [0, 1])
    assert images.shape == (2, 3, card["resolution"], card["resolution"]) and images.isfinite().all()
