"""benchmarks/collapse.py: the variance shares, the probes on both GAN generators, and the data reference."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fastt2i.metrics.emoji import EmojiNetFeatures
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator
from fastt2i.models.stylegan_t import STYLEGAN_T_PRESETS, StyleGANTGenerator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import collapse  # noqa: E402


def test_share_is_the_within_group_fraction_of_the_variance():
    torch.manual_seed(0)
    means = torch.randn(6, 1, 5)
    assert collapse.share(means.expand(6, 4, 5)) == pytest.approx(0.0, abs=1e-6)  # seeds change nothing
    same_mean = torch.randn(6, 4, 5)
    same_mean = same_mean - same_mean.mean(dim=1, keepdim=True)
    assert collapse.share(same_mean) == pytest.approx(1.0)  # prompts change nothing
    mixed = means + 0.5 * same_mean
    assert 0 < collapse.share(mixed) < 1


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("collapse")
    GigaGANGenerator(GIGAGAN_PRESETS.build("tiny")).save_pretrained(root / "giga", text_encoder="t5-tiny-random")
    StyleGANTGenerator(STYLEGAN_T_PRESETS.build("tiny")).save_pretrained(root / "sgt", text_encoder="t5-tiny-random")
    return {"gigagan": root / "giga", "stylegan-t": root / "sgt"}


def test_analyse_model_probes_every_modulated_layer_and_the_cross_attention(exports):
    net = EmojiNetFeatures()
    names = ["red heart", "cat face", "pizza"]
    giga = collapse.analyse_model(str(exports["gigagan"]), names, 3, net)
    sgt = collapse.analyse_model(str(exports["stylegan-t"]), names, 3, net)
    for r in (giga, sgt):
        assert 0 <= r["seed_share"] <= 1 and r["d_z"] > 0 and r["d_text"] > 0
        assert r["layers"] and all(0 <= v <= 1 for _, v in r["layers"])
    n_mod = sum(hasattr(m, "affine") and hasattr(m, "styles")
                for m in collapse.load_pipeline(str(exports["gigagan"])).generator.synthesis.modules())
    assert len(giga["layers"]) == n_mod
    assert giga["cross"] and all(0 < ent <= 1 and upd >= 0 for _, ent, upd in giga["cross"])
    assert giga["d_t_local"] > 0
    assert sgt["cross"] == [] and sgt["d_t_local"] == 0  # StyleGAN-T conditions through the pooled vector only


def test_analyse_data_compares_images_of_one_name_with_images_of_others(tmp_path):
    rng = np.random.default_rng(0)
    names = ["red heart", "cat face", "pizza", "rocket"]
    caps = [f"{names[i % 4]}, objects, {('google', 'twitter')[i // 4 % 2]} style" for i in range(16)]
    base = rng.integers(0, 256, (4, 16, 16, 3))  # one picture per name, the styles a small change of it
    images = np.stack([np.clip(base[i % 4] + rng.integers(-10, 10, (16, 16, 3)), 0, 255) for i in range(16)])
    path = tmp_path / "emoji.npz"
    np.savez(path, images=images.astype(np.uint8), captions=np.array(caps))
    ref = collapse.analyse_data(str(path), names, EmojiNetFeatures(), per_name=2)
    assert ref["names"] == 4
    assert ref["d_z"] < ref["d_text"] and ref["z_over_text"] < 1 and ref["seed_share"] < 0.5
