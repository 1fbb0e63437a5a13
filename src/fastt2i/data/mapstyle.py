"""Map-style datasets: a folder of images with `.txt` captions, a JSONL/CSV/Parquet manifest, and the emoji64 `.npz`."""

from __future__ import annotations

import abc
import csv
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset

from fastt2i.data.config import DataConfig
from fastt2i.data.memory import MemoryImages
from fastt2i.data.stats import POS, SKIP
from fastt2i.data.text import decode_text, read_caption_file, text_conv
from fastt2i.data.transforms import BadSample, flip_decision, in_split, make_sample, usable_caption
from fastt2i.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
IMAGE_COLUMNS = ("image", "file_name", "path", "image_path", "filename", "img", "file")
CAPTION_COLUMNS = ("caption", "text", "prompt")
NPZ_CAPTION_KEYS = ("captions", "caption", "text", "texts")


class MapDataset(Dataset, abc.ABC):
    """Common behaviour: keys filtered by the hash split; `ds[i]` or `ds[(i, position)]` gives one sample dict.

    A bad sample comes back as a marker `{"key", "_skip": reason}` instead of raising, so a DataLoader worker never
    crashes; `make_loader` counts and refills them. The position (default 0) salts the seeded horizontal flip.

    Args:
        cfg: the DataConfig (path, resolution, split, hflip...).
    """

    is_iterable = False

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.keys: list[str] = []
        self._items: list[Any] = []  # per-format record for each kept key

    def _keep(self, keys: Sequence[str], items: Sequence[Any]) -> None:
        """Store the (key, item) pairs that fall in cfg.split."""
        c = self.cfg
        for k, it in zip(keys, items):
            if in_split(k, c.split, c.val_fraction, c.split_by):
                self.keys.append(k)
                self._items.append(it)

    def __len__(self) -> int:
        return len(self.keys)

    @abc.abstractmethod
    def _source(self, i: int) -> tuple[Any, str | None, tuple[str, ...]]:
        """(image path / bytes / array, caption or None, caption conversions) of kept item i.

        Raises BadSample (e.g. "caption_too_large") for a sample that cannot be used.
        """

    def key(self, i: int) -> str:
        """The key of sample i (no image decoding)."""
        return self.keys[i]

    def caption(self, i: int) -> str | None:
        """The caption of sample i without decoding its image (None when missing or unreadable)."""
        try:
            return self._source(i)[1]
        except Exception:  # noqa: BLE001
            return None

    def __getitem__(self, idx: int | tuple[int, int]) -> dict[str, Any]:
        i, pos = (idx if isinstance(idx, tuple) else (idx, 0))
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        i = i % len(self)
        c = self.cfg
        return self._sample(i, pos, flip=c.hflip and flip_decision(c.seed, self.keys[i], pos))

    def _sample(self, i: int, pos: int, *, flip: bool, as_uint8: bool = False) -> dict[str, Any]:
        key = self.keys[i]
        c = self.cfg
        try:
            src, caption, tconv = self._source(i)
        except BadSample as e:
            return {"key": key, SKIP: e.reason, POS: pos}
        except Exception:  # noqa: BLE001 - an unreadable caption file etc. is a bad sample, not a crash
            return {"key": key, SKIP: "unreadable", POS: pos}
        out = make_sample(src, caption, key, resolution=c.resolution, flip=flip, min_size=c.min_size,
                          missing_caption=c.missing_caption, max_pixels=c.max_pixels, text_conv=tconv,
                          as_uint8=as_uint8)
        out[POS] = pos
        return out

    def decode_uint8(self, i: int) -> dict[str, Any]:
        """Sample i unflipped, its image as the uint8 array [R,R,3] (or its skip marker): what `in_memory` stores."""
        return self._sample(i, 0, flip=False, as_uint8=True)

    def memory_bytes(self) -> int:
        """Bytes the decoded uint8 images take in memory (len x R x R x 3): what `make_loader(in_memory=)` weighs."""
        return len(self) * self.cfg.resolution ** 2 * 3

    def direct_memory(self) -> "MemoryImages | None":
        """The in-memory form built without decoding anything (None: decode every sample with `decode_uint8`)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg.path!r}, n={len(self)}, split={self.cfg.split}, R={self.cfg.resolution})"


class FolderDataset(MapDataset):
    """Images anywhere under a folder, each with a same-stem `.txt` caption beside it.

    Key = the image's path relative to the folder, without extension, with `/` separators (e.g. `cats/001`).
    """

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        root = Path(cfg.path)
        if not root.is_dir():
            raise DataError(f"{cfg.path}: not a folder")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
        if not files:
            raise DataError(f"{cfg.path}: no images ({', '.join(IMAGE_EXTS)}) found in this folder")
        keys, seen = [], set()
        for p in files:
            k = p.relative_to(root).with_suffix("").as_posix()
            if k in seen:  # a.jpg and a.png: keep both, the second keyed with its extension
                k = p.relative_to(root).as_posix()
            seen.add(k)
            keys.append(k)
        self.root = root
        self._keep(keys, files)

    def _source(self, i: int) -> tuple[Any, str | None, tuple[str, ...]]:
        p: Path = self._items[i]
        c = self.cfg
        return (p, *read_caption_file(p.with_suffix(".txt"), c.max_caption_bytes, c.caption_encoding))


def _pick(columns: Sequence[str], wanted: str | None, defaults: Sequence[str], what: str, path: str) -> str:
    if wanted:
        if wanted not in columns:
            raise DataError(f"{path}: no {what} column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    for c in defaults:
        if c in columns:
            return c
    raise DataError(f"{path}: no {what} column (looked for {', '.join(defaults)}; columns: {', '.join(columns)}); "
                    f"name it with --{what}-field / {what}_field=")


JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
              type(None): "null"}


def _lines(data: bytes, encoding: str | None) -> Iterator[tuple[str, str | None]]:
    """(line, fallback encoding or None) for each line of a text manifest; only non-UTF-8 lines get a fallback."""
    text, enc = decode_text(data, encoding)
    if enc is None:  # all UTF-8 (or declared by a BOM): one decode
        yield from ((line, None) for line in io.StringIO(text, newline=""))
        return
    for raw in io.BytesIO(data):  # split on b"\n", which is one byte in UTF-8, cp1252 and latin-1 alike
        yield decode_text(raw, encoding)


def _csv_rows(path: Path, lines: Iterator[tuple[str, str | None]]) -> tuple[list[dict], list[tuple[str, ...]]]:
    """DictReader rows, each with the fallback conversion of the lines it spans (a quoted field may span several)."""
    encs: list[str | None] = []

    def feed() -> Iterator[str]:
        for line, enc in lines:
            encs.append(enc)
            yield line

    reader = csv.DictReader(feed(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    if reader.fieldnames is None:  # reads the header (so its lines are not counted with the first row)
        return [], []
    encs.clear()
    rows, convs = [], []
    for r in reader:
        rows.append(r)
        convs.append(text_conv(next((e for e in encs if e), None)))
        encs.clear()
    return rows, convs


def read_manifest(path: str | Path,
                  encoding: str | None = None) -> tuple[list[dict[str, Any]], list[tuple[str, ...]]]:
    """Rows of a `.jsonl` / `.json` (list) / `.csv` / `.tsv` / `.parquet` manifest as dicts.

    Args:
        path: the manifest.
        encoding: tried for text that is not UTF-8, before cp1252 and latin-1 (see `text.decode_text`).

    Returns:
        (rows, per-row conversions: ("caption_<encoding>",) for a row decoded with a fallback encoding, else ()).
    """
    path = Path(path)
    suf = path.suffix.lower()
    try:
        if suf in (".jsonl", ".ndjson"):
            rows, convs = [], []
            for n, (line, enc) in enumerate(_lines(path.read_bytes(), encoding), 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from e
                    if not isinstance(row, dict):
                        raise DataError(f"{path}:{n}: expected one JSON object per line, got "
                                        f"{JSON_KINDS.get(type(row), type(row).__name__)}")
                    rows.append(row)
                    convs.append(text_conv(enc))
            return rows, convs
        if suf == ".json":
            text, enc = decode_text(path.read_bytes(), encoding)
            rows = json.loads(text)
            if not isinstance(rows, list):
                raise DataError(f"{path}: a .json manifest must hold a list of objects")
            for i, row in enumerate(rows):
                if not isinstance(row, dict):
                    raise DataError(f"{path}: item {i} of the list is {JSON_KINDS.get(type(row), type(row).__name__)}, "
                                    f"not a JSON object")
            return rows, [text_conv(enc)] * len(rows)
        if suf in (".csv", ".tsv"):
            return _csv_rows(path, _lines(path.read_bytes(), encoding))
        if suf == ".parquet":
            import pyarrow.parquet as pq  # optional and heavy: only parquet manifests need it

            rows = pq.read_table(path).to_pylist()
            return rows, [()] * len(rows)
    except FileNotFoundError as e:
        raise DataError(f"{path}: no such manifest") from e
    except (OSError, ValueError, csv.Error) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: cannot read manifest ({e})") from e
    raise DataError(f"{path}: unknown manifest type {suf!r} (use .jsonl, .json, .csv, .tsv or .parquet)")


class ManifestDataset(MapDataset):
    """Rows of a manifest naming an image path and a caption; relative paths resolve against the manifest's folder.

    Key = the image path relative to the manifest's folder, without extension, `/`-separated (same as a folder
    dataset over that folder, so both split a shared image identically).
    """

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        rows, convs = read_manifest(cfg.path, cfg.caption_encoding)
        if not rows:
            raise DataError(f"{cfg.path}: the manifest has no rows")
        cols = list(rows[0].keys())
        self.image_col = _pick(cols, cfg.image_field, IMAGE_COLUMNS, "image", cfg.path)
        self.caption_col = _pick(cols, cfg.caption_field, CAPTION_COLUMNS, "caption", cfg.path)
        base = Path(cfg.path).parent
        keys, items, seen = [], [], set()
        for n, r in enumerate(rows):
            rel = r.get(self.image_col)
            if not rel:
                rel = f"<row {n}: no {self.image_col}>"
            p = Path(rel) if os.path.isabs(str(rel)) else base / str(rel)
            k = Path(os.path.relpath(p, base)).with_suffix("").as_posix()
            if k in seen:
                k = f"{k}#{n}"
            seen.add(k)
            cap = r.get(self.caption_col)
            keys.append(k)
            items.append((p, None if cap is None or cap == "" and cfg.missing_caption == "skip" else cap, convs[n]))
        self._keep(keys, items)

    def _source(self, i: int) -> tuple[Any, str | None, tuple[str, ...]]:
        p, cap, conv = self._items[i]
        if isinstance(cap, (list, tuple)):
            cap = cap[0] if cap else None
        return p, (None if cap is None else str(cap)), conv


def _npz_headers(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) of each array of an .npz, from the .npy headers alone (nothing loaded or unpickled)."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(".npy"):
                with zf.open(name) as f:
                    major, _ = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                out[name[: -len(".npy")]] = (shape, dtype)
    return out


class NpzDataset(MapDataset):
    """The emoji64 `.npz` layout: `images` uint8 [N,H,W,3] (or [N,H,W] / [N,H,W,4]), `captions` str [N], other string
    keys are metadata (`ds.metadata(i)`).

    Key = f"{style}_{hexcode}" (lowercase) when `styles` and `hexcodes` exist and are unique together (the emoji
    builder's shard keys, so npz and shards split the same way); otherwise f"{index:06d}". The images array is
    loaded lazily, once per process. Every string array needs one entry per image, and object arrays are refused (a
    DataError at open, not a smaller dataset or an unpickling).
    """

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        try:
            heads = _npz_headers(cfg.path)
        except FileNotFoundError as e:
            raise DataError(f"{cfg.path}: no such file") from e
        except Exception as e:  # noqa: BLE001 - zipfile / npy header errors of a damaged file
            raise DataError(f"{cfg.path}: not a readable .npz ({e})") from e
        objects = [k for k, (_, dt) in heads.items() if dt.hasobject]
        if objects:
            raise DataError(f"{cfg.path}: {', '.join(objects)}: object arrays are refused (reading them means "
                            f"unpickling, which fastt2i never does); save strings as a unicode array, "
                            f"e.g. np.array(captions, dtype=str)")
        if "images" not in heads:
            raise DataError(f"{cfg.path}: no `images` array (keys: {', '.join(heads)})")
        shape = heads["images"][0]
        if len(shape) not in (3, 4):
            raise DataError(f"{cfg.path}: `images` must be [N,H,W] or [N,H,W,C], got shape {list(shape)}")
        field = cfg.caption_field
        if field is None:
            field = next((k for k in NPZ_CAPTION_KEYS if k in heads), None)
            if field is None:
                raise DataError(f"{cfg.path}: no captions key (looked for {', '.join(NPZ_CAPTION_KEYS)})")
        elif field not in heads or field == "images":
            raise DataError(f"{cfg.path}: no caption key {field!r} (keys: {', '.join(heads)})")
        if len(heads[field][0]) != 1:
            raise DataError(f"{cfg.path}: captions `{field}` must be one-dimensional, "
                            f"got shape {list(heads[field][0])}")
        self.caption_key = field
        # every string array with a first axis (and the caption array) is per-sample metadata: one entry per image
        per_sample = [k for k, (sh, dt) in heads.items() if k != "images" and sh and (dt.kind in "US" or k == field)]
        n = shape[0]
        bad = [f"{k} has {heads[k][0][0]}" for k in per_sample if heads[k][0][0] != n]
        if bad:
            raise DataError(f"{cfg.path}: {n} images, but {', '.join(bad)} entries; every per-sample array needs "
                            f"one entry per image")
        with np.load(cfg.path, allow_pickle=False) as z:
            self._meta = {k: z[k] for k in per_sample}
        keys = [f"{i:06d}" for i in range(n)]
        if "styles" in self._meta and "hexcodes" in self._meta:
            alt = [f"{s}_{h}".lower() for s, h in zip(self._meta["styles"], self._meta["hexcodes"])]
            if len(set(alt)) == n:
                keys = alt
        self._keep(keys, list(range(n)))
        self._images: np.ndarray | None = None
        self._image_shape, self._image_dtype = tuple(shape), heads["images"][1]

    def _array(self) -> np.ndarray:
        if self._images is None:  # forked workers share the parent's array; spawned ones load their own
            with np.load(self.cfg.path, allow_pickle=False) as z:
                self._images = z["images"]
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        st = dict(self.__dict__)
        st["_images"] = None  # do not pickle 150 MB into spawned workers; each loads its own
        return st

    def _direct(self) -> bool:
        """True when the stored array is already what the loader serves: uint8 RGB at R x R (nothing to decode)."""
        shape, r, c = self._image_shape, self.cfg.resolution, self.cfg
        return (self._image_dtype == np.uint8 and len(shape) == 4 and shape[1:] == (r, r, 3)
                and r >= c.min_size)

    def memory_bytes(self) -> int:
        """Bytes of the in-memory form: the file's whole array when it is served as it is, else len x R x R x 3."""
        if self._direct():
            return int(np.prod(self._image_shape))
        return super().memory_bytes()

    def direct_memory(self) -> MemoryImages | None:
        """When the npz holds uint8 RGB images at the training resolution: the file's own array, not copied.

        The images array this dataset already loads becomes the store as it is (a zero-copy torch view), with a row
        index for the kept split; captions go through the same checks as `ds[i]`. None: images need decoding or a
        resize (grayscale / RGBA arrays, another resolution), done once per image by `decode_uint8`.
        """
        if not self._direct():
            return None
        c = self.cfg
        captions: list[str | None] = []
        for i in range(len(self)):
            captions.append(usable_caption(self._source(i)[1], c.missing_caption))
        rows = np.asarray(self._items, dtype=np.int64)
        return MemoryImages.from_array(self._array(), rows, self.keys, captions)

    def metadata(self, i: int) -> dict[str, str]:
        """All string fields of kept item i (style, category, hexcode...)."""
        j = self._items[i]
        return {k: str(v[j]) for k, v in self._meta.items()}

    def _source(self, i: int) -> tuple[Any, str | None, tuple[str, ...]]:
        j = self._items[i]
        cap = str(self._meta[self.caption_key][j])
        return self._array()[j], (cap if cap or self.cfg.missing_caption == "empty" else None), ()
