"""Map-style datasets: a folder of images with `.txt` captions, a JSONL/CSV/Parquet manifest, and the emoji64 `.npz`."""

from __future__ import annotations

import abc
import csv
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from fastt2i.data.config import DataConfig
from fastt2i.data.stats import POS
from fastt2i.data.transforms import flip_decision, in_split, make_sample
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
    def _source(self, i: int) -> tuple[Any, str | None]:
        """(image path / bytes / array, caption or None) of kept item i."""

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
        key = self.keys[i]
        c = self.cfg
        try:
            src, caption = self._source(i)
        except Exception:  # noqa: BLE001 - a bad caption file etc. is a bad sample, not a crash
            return {"key": key, "_skip": "unreadable", POS: pos}
        flip = c.hflip and flip_decision(c.seed, key, pos)
        out = make_sample(src, caption, key, resolution=c.resolution, flip=flip, min_size=c.min_size,
                          missing_caption=c.missing_caption)
        out[POS] = pos
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg.path!r}, n={len(self)}, split={self.cfg.split}, R={self.cfg.resolution})"


def _read_caption(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except FileNotFoundError:
        return None


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

    def _source(self, i: int) -> tuple[Any, str | None]:
        p: Path = self._items[i]
        return p, _read_caption(p.with_suffix(".txt"))


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


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a `.jsonl` / `.json` (list) / `.csv` / `.tsv` / `.parquet` manifest as dicts."""
    path = Path(path)
    suf = path.suffix.lower()
    try:
        if suf in (".jsonl", ".ndjson"):
            rows = []
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from e
            return rows
        if suf == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise DataError(f"{path}: a .json manifest must hold a list of objects")
            return rows
        if suf in (".csv", ".tsv"):
            with open(path, encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f, delimiter="\t" if suf == ".tsv" else ","))
        if suf == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except FileNotFoundError as e:
        raise DataError(f"{path}: no such manifest") from e
    except (OSError, ValueError) as e:
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
        rows = read_manifest(cfg.path)
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
            items.append((p, None if cap is None or cap == "" and cfg.missing_caption == "skip" else cap))
        self._keep(keys, items)

    def _source(self, i: int) -> tuple[Any, str | None]:
        p, cap = self._items[i]
        if isinstance(cap, (list, tuple)):
            cap = cap[0] if cap else None
        return p, (None if cap is None else str(cap))


class NpzDataset(MapDataset):
    """The emoji64 `.npz` layout: `images` uint8 [N,H,W,3] (or [N,H,W] / [N,H,W,4]), `captions` str [N], other string
    keys are metadata (`ds.metadata(i)`).

    Key = f"{style}_{hexcode}" (lowercase) when `styles` and `hexcodes` exist and are unique together (the emoji
    builder's shard keys, so npz and shards split the same way); otherwise f"{index:06d}". The images array is
    loaded lazily, once per process.
    """

    def __init__(self, cfg: DataConfig) -> None:
        super().__init__(cfg)
        try:
            z = np.load(cfg.path, allow_pickle=False)
        except FileNotFoundError as e:
            raise DataError(f"{cfg.path}: no such file") from e
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{cfg.path}: not a readable .npz ({e})") from e
        with z:
            names = list(z.files)
            if "images" not in names:
                raise DataError(f"{cfg.path}: no `images` array (keys: {', '.join(names)})")
            field = cfg.caption_field
            if field is None:
                field = next((k for k in NPZ_CAPTION_KEYS if k in names), None)
                if field is None:
                    raise DataError(f"{cfg.path}: no captions key (looked for {', '.join(NPZ_CAPTION_KEYS)})")
            elif field not in names:
                raise DataError(f"{cfg.path}: no caption key {field!r} (keys: {', '.join(names)})")
            self.caption_key = field
            self._meta = {k: z[k] for k in names if k != "images" and z[k].dtype.kind in "USO"}
        caps = self._meta[field]
        n = len(caps)
        keys = [f"{i:06d}" for i in range(n)]
        if "styles" in self._meta and "hexcodes" in self._meta:
            alt = [f"{s}_{h}".lower() for s, h in zip(self._meta["styles"], self._meta["hexcodes"])]
            if len(set(alt)) == n:
                keys = alt
        self._keep(keys, list(range(n)))
        self._images: np.ndarray | None = None

    def _array(self) -> np.ndarray:
        if self._images is None:  # forked workers share the parent's array; spawned ones load their own
            with np.load(self.cfg.path) as z:
                self._images = z["images"]
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        st = dict(self.__dict__)
        st["_images"] = None  # do not pickle 150 MB into spawned workers; each loads its own
        return st

    def metadata(self, i: int) -> dict[str, str]:
        """All string fields of kept item i (style, category, hexcode...)."""
        j = self._items[i]
        return {k: str(v[j]) for k, v in self._meta.items()}

    def _source(self, i: int) -> tuple[Any, str | None]:
        j = self._items[i]
        cap = str(self._meta[self.caption_key][j])
        return self._array()[j], (cap if cap or self.cfg.missing_caption == "empty" else None)
