"""open_dataset: guess the format of a path (folder, manifest, shards, npz) and build the matching dataset."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from fastt2i.data.config import DataConfig
from fastt2i.data.mapstyle import FolderDataset, ManifestDataset, MapDataset, NpzDataset
from fastt2i.data.shards import ShardDataset, expand_shards
from fastt2i.errors import ConfigError, DataError

MANIFEST_EXTS = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


def detect_format(path: str | os.PathLike | Sequence[str]) -> str:
    """"folder", "manifest", "shards" or "npz" for a path (a list of paths means shards)."""
    if isinstance(path, (list, tuple)):
        return "shards"
    p = str(path)
    if "::" in p or ("{" in p and "}" in p) or p.endswith(".tar"):
        return "shards"
    suf = Path(p).suffix.lower()
    if suf == ".npz":
        return "npz"
    if suf in MANIFEST_EXTS:
        return "manifest"
    if os.path.isdir(p):
        # a folder holding .tar files is a shard folder (a preview grid.png beside them does not make it a folder
        # dataset); pass format="folder" to read loose images next to tars instead
        if any(n.endswith(".tar") for n in os.listdir(p)):
            return "shards"
        return "folder"
    if not os.path.exists(p):
        raise DataError(f"{p}: no such file or folder")
    raise DataError(f"{p}: cannot tell the dataset format (expected a folder, .tar shards, .npz, .jsonl/.csv/.parquet)")


def open_dataset(path_or_cfg: str | os.PathLike | Sequence[str] | DataConfig, **overrides: Any) -> MapDataset | ShardDataset:
    """Open any supported dataset.

    Args:
        path_or_cfg: a path (see DataConfig.path), a list of shard paths, or a DataConfig.
        **overrides: DataConfig fields (resolution=, split=, caption_field=, hflip=, format=, ...).

    Returns:
        A map-style dataset (folder, manifest, npz) or a ShardDataset (IterableDataset); items are
        {"image": [3,R,R] float32 in [-1,1], "caption": str, "key": str} or skip markers (see make_loader).

    Example:
        >>> ds = open_dataset("emoji64.npz", resolution=64, split="train")
        >>> it = make_loader(ds, batch_size=32, seed=0)
    """
    shard_list = None
    if isinstance(path_or_cfg, DataConfig):
        cfg = path_or_cfg
    else:
        if isinstance(path_or_cfg, (list, tuple)):
            shard_list = expand_shards(list(path_or_cfg))
            path = "::".join(shard_list)
        else:
            path = str(path_or_cfg)
        cfg = DataConfig(path=path)
    if overrides:
        names = {f.name for f in dataclasses.fields(DataConfig)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ConfigError(f"unknown data option(s) {', '.join(bad)} (known: {', '.join(sorted(names))})")
        cfg = dataclasses.replace(cfg, **overrides)
    if not cfg.path:
        raise DataError("no dataset path given")
    fmt = cfg.format if cfg.format != "auto" else detect_format(shard_list or cfg.path)
    if fmt == "folder":
        return FolderDataset(cfg)
    if fmt == "manifest":
        return ManifestDataset(cfg)
    if fmt == "npz":
        return NpzDataset(cfg)
    return ShardDataset(cfg, shard_list)
