"""Fixtures: tiny datasets of every format (folder, jsonl/csv/parquet manifests, shards, npz) with odd files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datafx import make_npz, make_shards, manifest_rows, write_tree, good_files, odd_files


@pytest.fixture
def folder_ds(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    write_tree(root, {**good_files(), **odd_files()}, sub="sub/")
    return root


@pytest.fixture
def jsonl_ds(tmp_path: Path) -> Path:
    root, rows = manifest_rows(tmp_path)
    p = root / "meta.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.fixture
def csv_ds(tmp_path: Path) -> Path:
    import csv

    root, rows = manifest_rows(tmp_path)
    p = root / "meta.csv"
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file_name", "text"])
        w.writeheader()
        w.writerows([{"file_name": r["file_name"], "text": r["text"] or ""} for r in rows])
    return p


@pytest.fixture
def parquet_ds(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root, rows = manifest_rows(tmp_path)
    p = root / "meta.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p)
    return p


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    make_shards(tmp_path / "shards")
    return tmp_path / "shards"


@pytest.fixture
def npz_ds(tmp_path: Path) -> Path:
    return make_npz(tmp_path / "tiny.npz")
