"""WebDataset tar shards (img2dataset layout): path expansion, streamed reading split over ranks and workers, writing."""

from __future__ import annotations

import io
import itertools
import json
import lzma
import os
import random
import re
import tarfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from fastt2i.data.config import MAX_CAPTION_BYTES, MAX_IMAGE_BYTES, DataConfig
from fastt2i.data.stats import SKIP
from fastt2i.data.text import decode_text, text_conv
from fastt2i.data.transforms import flip_decision, in_split, make_sample, mix64
from fastt2i.errors import DataError

SHARD_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
TEXT_EXTS = ("txt", "json")
OVERSIZE = "_oversize"  # record field: the skip reason of a member over its size limit (left unread)


def _brace_expand(pattern: str) -> list[str]:
    """`a-{000..003}.tar` -> a-000.tar ... a-003.tar (zero padding kept); `{x,y}` alternatives; nested left to right."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    body, head, tail = m.group(1), pattern[: m.start()], pattern[m.end():]
    rng = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if rng:
        a, b = rng.group(1), rng.group(2)
        width = len(a) if a.startswith("0") or len(a) == len(b) else 0
        step = 1 if int(b) >= int(a) else -1
        opts = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    else:
        opts = body.split(",")
    return [x for o in opts for x in _brace_expand(head + o + tail)]


def expand_shards(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard paths from a folder of `.tar`, one `.tar`, a brace pattern, `a.tar::b.tar`, or a list of any of these.

    Raises:
        DataError: when nothing matches or a named shard does not exist.
    """
    if isinstance(path, (list, tuple)):
        out = [s for p in path for s in expand_shards(p)]
    else:
        p = str(path)
        if "::" in p:
            return expand_shards(p.split("::"))
        if os.path.isdir(p):
            out = sorted(str(q) for q in Path(p).glob("*.tar"))
            if not out:
                raise DataError(f"{p}: no .tar shards in this folder")
        else:
            out = _brace_expand(p)
            missing = [q for q in out if not os.path.exists(q)]
            if missing:
                raise DataError(f"{missing[0]}: no such shard" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if not out:
        raise DataError(f"{path}: no shards")
    return out


def read_tar(path: str, max_image_bytes: int = MAX_IMAGE_BYTES,
             max_caption_bytes: int = MAX_CAPTION_BYTES) -> Iterator[dict[str, Any]]:
    """Stream the samples of one tar: {"__key__": key, ext: bytes, ...}, grouping consecutive members by key.

    The key is the member name up to the first dot of its basename (directories kept), as webdataset does. Only image
    (jpg, jpeg, png, webp) and text (txt, json) members are read, each with a bounded read; a member over its limit
    is left unread and its record gets {OVERSIZE: "too_large" | "caption_too_large"}. A missing or corrupt tar ends
    with a marker {"key": path, "_skip": "bad_shard"} instead of raising.

    Args:
        path: the tar (plain, or gzip / bz2 / xz compressed: decompressed as a stream, never as a whole).
        max_image_bytes: largest image member read.
        max_caption_bytes: largest txt / json member read.
    """
    cur: dict[str, Any] | None = None
    try:
        with tarfile.open(path, "r|*") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                d, base = os.path.split(m.name)
                if "." not in base or base.startswith("."):
                    continue
                stem, ext = base.split(".", 1)
                key, ext = (f"{d}/{stem}" if d else stem), ext.lower()
                if cur is not None and cur["__key__"] != key:
                    yield cur
                    cur = None
                if cur is None:
                    cur = {"__key__": key}
                if ext in SHARD_IMAGE_EXTS:
                    limit, reason = max_image_bytes, "too_large"
                elif ext in TEXT_EXTS:
                    limit, reason = max_caption_bytes, "caption_too_large"
                else:
                    continue  # never used: not read (the stream skips over it)
                # bounded even if the header lied: at most limit + 1 bytes are ever inflated into memory
                data = b"" if m.size > limit else tf.extractfile(m).read(limit + 1)  # type: ignore[union-attr]
                if m.size > limit or len(data) > limit:
                    cur[OVERSIZE] = reason
                else:
                    cur[ext] = data
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        if cur is not None:
            cur = None  # its files may be incomplete: drop it (counted through the shard marker)
        yield {"key": path, SKIP: "bad_shard", "_detail": str(e)}
        return
    if cur is not None:
        yield cur


def sample_from_files(files: dict[str, Any], cfg: DataConfig, flip: bool) -> dict[str, Any]:
    """One img2dataset record (key.jpg|png|webp + key.txt / key.json) -> a sample dict or a skip marker."""
    key = files["__key__"]
    if OVERSIZE in files:
        return {"key": key, SKIP: files[OVERSIZE]}
    img = next((files[e] for e in SHARD_IMAGE_EXTS if e in files), None)
    if img is None:
        return {"key": key, SKIP: "missing_file"}
    meta, meta_enc = None, None
    if "json" in files:
        text, meta_enc = decode_text(files["json"], cfg.caption_encoding)
        try:
            meta = json.loads(text)
        except ValueError:
            meta = None
    field = cfg.caption_field
    caption, enc = None, None
    if field == "txt":
        caption = files.get("txt")
    elif isinstance(meta, dict) and (field or "caption") in meta and meta[field or "caption"] is not None:
        caption, enc = meta[field or "caption"], meta_enc
    elif field is None or field == "caption":
        caption = files.get("txt")
    if isinstance(caption, bytes):
        caption, enc = decode_text(caption, cfg.caption_encoding)
        caption = caption.strip()
    if caption == "" and cfg.missing_caption == "skip":
        caption = None
    return make_sample(img, None if caption is None else str(caption), key, resolution=cfg.resolution, flip=flip,
                       min_size=cfg.min_size, missing_caption=cfg.missing_caption, max_pixels=cfg.max_pixels,
                       text_conv=text_conv(enc))


class ShardDataset(IterableDataset):
    """A stream of samples from WebDataset shards; shards go to ranks as shards[rank::world_size], then to workers as
    [worker::num_workers] of that.

    Iterating directly reads every shard once (rank 0 of 1). `make_loader` calls `configure` to make the stream
    infinite (epoch after epoch, shard order and a sample shuffle buffer reseeded per epoch) for one rank, and to skip
    about `start_sample` samples on resume: each worker drops its first start_sample // (world_size * num_workers)
    records (approximate: bad records and uneven shards shift it a little).

    Args:
        cfg: the DataConfig.
        shards: the expanded shard paths (default: expand cfg.path).
    """

    is_iterable = True

    def __init__(self, cfg: DataConfig, shards: Sequence[str] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.shards = list(shards) if shards is not None else expand_shards(cfg.path)
        self.rank, self.world_size, self.seed, self.skip, self.infinite, self.shuffle = 0, 1, cfg.seed, 0, False, False

    def configure(self, *, rank: int = 0, world_size: int = 1, seed: int = 0, skip: int = 0, infinite: bool = True,
                  shuffle: bool = True) -> "ShardDataset":
        """A copy of this dataset set up for one rank (see class doc)."""
        new = ShardDataset(self.cfg, self.shards)
        new.rank, new.world_size, new.seed, new.skip, new.infinite, new.shuffle = (
            rank, world_size, seed, skip, infinite, shuffle)
        return new

    def shards_for(self, rank: int = 0, world_size: int = 1, worker: int = 0, num_workers: int = 1) -> list[str]:
        """The shards one (rank, worker) reads: shards[rank::world_size][worker::num_workers]."""
        return self.shards[rank::world_size][worker::num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = self.shards_for(self.rank, self.world_size, wid, nw)
        if not mine:
            return
        cfg = self.cfg
        to_skip = self.skip // max(1, self.world_size * nw)
        pos = 0
        for epoch in itertools.count():
            order = list(mine)
            rng = random.Random(mix64(self.seed, self.rank, wid, epoch))
            if self.shuffle:
                rng.shuffle(order)
            buf: list[dict[str, Any]] = []
            raw_seen = 0
            for shard in order:
                for rec in read_tar(shard, cfg.max_image_bytes, cfg.max_caption_bytes):
                    if SKIP in rec:
                        yield rec
                        continue
                    raw_seen += 1
                    if not in_split(rec["__key__"], cfg.split, cfg.val_fraction, cfg.split_by):
                        continue
                    if to_skip > 0:
                        to_skip -= 1
                        pos += 1
                        continue
                    if self.shuffle and cfg.shuffle_buffer > 0:
                        buf.append(rec)
                        if len(buf) < cfg.shuffle_buffer:
                            continue
                        rec = buf.pop(rng.randrange(len(buf)))
                    yield self._decode(rec, pos)
                    pos += 1
            rng.shuffle(buf)
            for rec in buf:
                yield self._decode(rec, pos)
                pos += 1
            if not self.infinite or raw_seen == 0:
                return

    def _decode(self, rec: dict[str, Any], pos: int) -> dict[str, Any]:
        flip = self.cfg.hflip and flip_decision(self.seed, rec["__key__"], pos)
        return sample_from_files(rec, self.cfg, flip)

    def __repr__(self) -> str:
        return f"ShardDataset({len(self.shards)} shards, split={self.cfg.split}, R={self.cfg.resolution})"


def _encode_image(img: Any, fmt: str) -> bytes:
    """PIL / uint8 [H,W,3] / float tensor [3,H,W] in [-1,1] / encoded bytes -> encoded bytes."""
    if isinstance(img, (bytes, bytearray)):
        return bytes(img)
    if isinstance(img, torch.Tensor):
        if img.ndim != 3 or img.shape[0] not in (1, 3):
            raise DataError(f"write_shards: expected an image tensor [3,H,W], got {tuple(img.shape)}")
        img = ((img.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img)
    if not isinstance(img, Image.Image):
        raise DataError(f"write_shards: cannot encode an image of type {type(img).__name__}")
    bio = io.BytesIO()
    if fmt == "png":
        img.save(bio, format="PNG", compress_level=6)
    else:
        img.convert("RGB").save(bio, format="JPEG", quality=95)
    return bio.getvalue()


def write_shards(samples: Iterable[dict[str, Any]], out_dir: str | os.PathLike, *, samples_per_shard: int = 1000,
                 prefix: str = "shard", image_format: str = "png") -> list[Path]:
    """Write samples as WebDataset tars in the img2dataset layout: key.png|jpg, key.txt, key.json.

    Args:
        samples: dicts with "image" (PIL image, uint8 [H,W,3] array, float tensor [3,H,W] in [-1,1], or encoded
            bytes), "caption" (str), optional "key" (default f"{index:09d}") and optional "meta" (dict merged into
            key.json, which always holds "caption" and "key").
        out_dir: folder for the shards (created).
        samples_per_shard: records per tar.
        prefix: shard names are f"{prefix}-{n:06d}.tar".
        image_format: "png" (lossless) or "jpg".

    Returns:
        The paths of the shards written, in order.
    """
    import webdataset as wds  # heavy (and only writing needs it): imported here, not on every read

    if image_format not in ("png", "jpg"):
        raise DataError(f"write_shards: image_format must be png or jpg, got {image_format!r}")
    if samples_per_shard < 1:
        raise DataError("write_shards: samples_per_shard must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    n = 0
    with wds.ShardWriter(str(out / f"{prefix}-%06d.tar"), maxcount=samples_per_shard, verbose=0,
                         post=lambda f: written.append(Path(f))) as sink:
        for i, s in enumerate(samples):
            key = str(s.get("key", f"{i:09d}"))
            if "." in key.rsplit("/", 1)[-1]:
                raise DataError(f"write_shards: key {key!r} contains a '.', which webdataset reads as an extension")
            caption = str(s.get("caption", ""))
            meta = {"key": key, "caption": caption, **(s.get("meta") or {})}
            sink.write({"__key__": key, image_format: _encode_image(s["image"], image_format),
                        "txt": caption.encode("utf-8"), "json": json.dumps(meta, ensure_ascii=False).encode("utf-8")})
            n += 1
    if n == 0:  # ShardWriter opens the first tar eagerly: remove it rather than leave an empty shard
        for p in written:
            p.unlink(missing_ok=True)
        return []
    return written
