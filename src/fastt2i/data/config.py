"""DataConfig: the frozen description of one image-text dataset (where, which format, how to crop, which split)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastt2i.errors import ConfigError

FORMATS = ("auto", "folder", "manifest", "shards", "npz")
SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class DataConfig:
    """Where and how to read an image-text dataset.

    Args:
        path: a folder of images + same-stem `.txt` captions, a `.jsonl`/`.csv`/`.parquet` manifest, WebDataset
            shards (a folder of `.tar`, one `.tar`, a brace pattern `shard-{000..009}.tar`, or several joined by
            `::`), or an `.npz` file (emoji64 layout). Lists of shard paths are accepted by `open_dataset`.
        resolution: square output side R; images are resized (shorter side, Lanczos) then center-cropped to R x R.
        split: "train", "val" or "all"; a sample is "val" when sha1(key) mapped to [0,1) is < `val_fraction`.
        val_fraction: fraction of keys that land in "val" (the same key always lands on the same side).
        split_by: "key" (per-sample hash) or "emoji" (hash of the emoji a `<style>_<hexcode>` key shows, so every
            style and skin tone of an emoji lands on the same side: the held-out-emoji split).
        caption_field: manifest column / json field / npz key holding the caption (None: `caption`, then `text`;
            npz: `captions`). For shards with a `.json`, the json field (default `caption`, falling back to `.txt`).
        image_field: manifest column with the image path (None: first of image, file_name, path, image_path, filename).
        hflip: randomly mirror images left-right (seeded: the same (seed, position) always flips the same way).
        format: "auto" (guess from the path) or one of folder, manifest, shards, npz.
        seed: seed of the flips (and of the shuffling done by `make_loader` when it is given no seed of its own).
        missing_caption: "skip" (count and drop) or "empty" (keep the image with caption "").
        min_size: skip images whose shorter original side is below this many pixels (0: keep all).
        shuffle_buffer: samples held in the per-worker shuffle buffer of shard streams (0: no sample shuffling).
    """

    path: str = ""
    resolution: int = 64
    split: Literal["train", "val", "all"] = "all"
    val_fraction: float = 0.05
    split_by: Literal["key", "emoji"] = "key"
    caption_field: str | None = None
    image_field: str | None = None
    hflip: bool = False
    format: Literal["auto", "folder", "manifest", "shards", "npz"] = "auto"
    seed: int = 0
    missing_caption: Literal["skip", "empty"] = "skip"
    min_size: int = 0
    shuffle_buffer: int = 256

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"data format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.split not in SPLITS:
            raise ConfigError(f"data split {self.split!r} is not one of {', '.join(SPLITS)}")
        if self.split_by not in ("key", "emoji"):
            raise ConfigError(f"split_by must be 'key' or 'emoji', got {self.split_by!r}")
        if not 0.0 <= self.val_fraction <= 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1], got {self.val_fraction}")
        if self.resolution < 1:
            raise ConfigError(f"resolution must be positive, got {self.resolution}")
        if self.missing_caption not in ("skip", "empty"):
            raise ConfigError(f"missing_caption must be 'skip' or 'empty', got {self.missing_caption!r}")
