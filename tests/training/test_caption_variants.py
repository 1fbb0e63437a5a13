"""Caption variants as a data-side augmentation of training: drawn per sample, seeded per batch (exact on resume),
keywords from the dataset, off by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from toy_trainer import ToyTrainer
from test_trainer_core import toy_config

from fastt2i.data.captions import CaptionVariants, caption_parts
from fastt2i.errors import ConfigError

NAMES = ["red heart", "grinning face", "sushi", "cat face"]


@pytest.fixture(scope="module")
def emoji_like(tmp_path_factory) -> Path:
    """32 8x8 images with emoji64 captions and keywords (every other sample has none)."""
    rng = np.random.default_rng(0)
    caps = [f"{NAMES[i % 4]}, smileys & emotion, {('google', 'twitter')[i % 2]} style" for i in range(32)]
    kws = [("love, heart" if i % 2 else "") for i in range(32)]
    path = tmp_path_factory.mktemp("variants") / "emoji.npz"
    np.savez(path, images=rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8), captions=np.array(caps),
             keywords=np.array(kws))
    return path


def captions_seen(trainer: ToyTrainer, start: int, n: int) -> list[list[str]]:
    it = iter(trainer.make_batches(start))
    out = [next(it)["caption"] for _ in range(n)]
    getattr(it, "close", lambda: None)()
    return out


def test_variants_are_drawn_per_sample_and_exact_on_resume(tmp_path, emoji_like):
    spec = "full:1,name:1,name_style:1,name_category:1,keywords:1"
    cfg = toy_config(tmp_path / "run", data=str(emoji_like), caption_variants=spec)
    trainer = ToyTrainer(cfg, tensorboard=False, progress=False)
    seen = captions_seen(trainer, 0, 6)
    flat = [c for b in seen for c in b]
    forms = {"full" if c.endswith(" style") and "," in c else "name_style" if c.endswith(" style") else
             "keywords" if ":" in c else "name_category" if "," in c else "name" for c in flat}
    assert forms == {"full", "name", "name_style", "name_category", "keywords"}
    assert all(caption_parts(c).name.split(":")[0].split(" in ")[0].split(",")[0] in NAMES for c in flat)
    assert captions_seen(trainer, 3 * cfg.train.batch_size, 3) == seen[3:]  # resumed after 3 batches: same draws
    plain = ToyTrainer(toy_config(tmp_path / "plain", data=str(emoji_like)), tensorboard=False, progress=False)
    assert all(c.endswith(" style") for b in captions_seen(plain, 0, 2) for c in b)  # off by default


def test_bad_variant_specs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="train.caption_variants: unknown caption variants"):
        toy_config(tmp_path, caption_variants="full,nickname:2")
    with pytest.raises(ConfigError, match="NAME or NAME:WEIGHT"):
        toy_config(tmp_path, caption_variants="full:lots")
    with pytest.raises(ConfigError, match="needs the dataset's keywords"):
        CaptionVariants(iter(()), {"keywords": 1.0}, seed=0)
