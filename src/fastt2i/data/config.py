"""DataConfig: the frozen description of one image-text dataset (where, which format, how to crop, which split)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Literal

from fastt2i.errors import ConfigError

# Pillow's own default limit (1024**3 // 4 // 3 = ~89.5 Mpx, a 9459 x 9459 image): one RGBA image at the limit takes
# ~360 MB to decode, enough for any training photo, while a crafted 48 KB header can no longer cost gigabytes.
MAX_PIXELS = 89_478_485
MAX_IMAGE_BYTES = 64 << 20  # 64 MiB: an encoded image member of a shard (a 16k x 16k JPEG is well under this)
MAX_CAPTION_BYTES = 64 << 10  # 64 KiB: a caption file / member (far above any text encoder's context)
MAX_MEMORY_BYTES = 4 << 30  # 4 GiB: decoded uint8 images make_loader keeps in memory by default (emoji64: 148 MB)

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
        max_pixels: skip (as "too_large") images whose header declares more than width x height pixels, before
            decoding them (default: Pillow's 89.5 Mpx; a larger value also raises PIL.Image.MAX_IMAGE_PIXELS to it).
        max_image_bytes: skip (as "too_large") shard image members larger than this many bytes, unread.
        max_caption_bytes: skip (as "caption_too_large") caption `.txt` files and shard `.txt`/`.json` members larger
            than this many bytes (read with a bounded read, so a compressed shard is never inflated past it).
        caption_encoding: encoding to try for caption text (folder `.txt`, shard members, `.jsonl`/`.csv` manifest
            lines) that is not valid UTF-8, before cp1252 and latin-1; such captions are counted as converted
            ("caption_<encoding>"). A UTF-8 BOM is stripped; a UTF-16 BOM selects UTF-16.
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
    max_pixels: int = MAX_PIXELS
    max_image_bytes: int = MAX_IMAGE_BYTES
    max_caption_bytes: int = MAX_CAPTION_BYTES
    caption_encoding: str | None = None

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
        for name in ("max_pixels", "max_image_bytes", "max_caption_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.caption_encoding is not None:
            try:
                codecs.lookup(self.caption_encoding)
            except (LookupError, TypeError) as e:
                raise ConfigError(f"caption_encoding {self.caption_encoding!r} is not a known text encoding") from e
