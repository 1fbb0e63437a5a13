"""Hostile inputs: decompression bombs, oversized members/captions, mismatched npz, odd manifests, non-UTF-8 text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datafx import huge_png, png_bytes, raw_tar, rgb_image
from fastt2i.data import DataStats, make_loader, open_dataset
from fastt2i.data.inspect import iter_items
from fastt2i.data.transforms import decode_image
from fastt2i.errors import ConfigError, DataError


def _items(ds) -> tuple[dict[str, dict], DataStats]:
    """key (last path part) -> item, and the stats over one pass."""
    st = DataStats()
    out = {}
    for it in iter_items(ds):
        st.update(it)
        out[it["key"].split("/")[-1]] = it
    return out, st


def _folder(root: Path, files: dict[str, tuple[bytes, bytes | None]]) -> Path:
    """name -> (image bytes, raw caption bytes or None)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (img, cap) in files.items():
        (root / name).write_bytes(img)
        if cap is not None:
            (root / name).with_suffix(".txt").write_bytes(cap)
    return root


GOOD = png_bytes(rgb_image(1))  # 40 x 30


# --- 4. decompression bombs and size caps ------------------------------------------------------------------------

def test_pillow_pixel_limit_is_not_raised_globally():
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS <= 89_478_485


def test_png_declaring_a_huge_size_is_a_counted_too_large_skip(tmp_path):
    root = _folder(tmp_path / "f", {"bomb.png": (huge_png(30_000, 30_000), b"boom"), "ok.png": (GOOD, b"fine")})
    items, st = _items(open_dataset(root, resolution=8))
    assert items["bomb"]["_skip"] == "too_large" and "image" in items["ok"]
    it = make_loader(open_dataset(root, resolution=8), 2, seed=0)
    next(it)
    assert "too_large" in it.stats.report()
    with pytest.raises(Exception) as e:
        decode_image(huge_png(30_000, 30_000))
    assert e.value.reason == "too_large"


def test_max_pixels_is_configurable(tmp_path):
    root = _folder(tmp_path / "f", {"a.png": (GOOD, b"a"), "b.png": (png_bytes(rgb_image(2, (8, 8))), b"b")})
    items, st = _items(open_dataset(root, resolution=8, max_pixels=1000))  # 40x30 = 1200 > 1000; 8x8 fits
    assert items["a"]["_skip"] == "too_large" and "image" in items["b"] and st.skipped["too_large"] == 1
    with pytest.raises(ConfigError, match="max_pixels"):
        open_dataset(root, max_pixels=0)


def test_shard_caption_member_over_the_cap_is_skipped_even_gzipped(tmp_path):
    big = b"a" * (1 << 20)  # 1 MiB caption: compresses to ~1 KB
    members = {"a.png": GOOD, "a.txt": big, "b.png": GOOD, "b.txt": b"fine"}
    for mode in ("w", "w:gz"):
        shard = raw_tar(tmp_path / f"s-{mode[-2:]}.tar", members, mode)
        items, st = _items(open_dataset(shard, resolution=8))
        assert items["a"]["_skip"] == "caption_too_large" and items["b"]["caption"] == "fine"
        assert st.skipped["caption_too_large"] == 1
    items, _ = _items(open_dataset(shard, resolution=8, max_caption_bytes=2 << 20))
    assert items["a"]["caption"] == big.decode()


def test_shard_image_member_over_the_cap_is_skipped(tmp_path):
    shard = raw_tar(tmp_path / "s.tar", {"a.png": GOOD, "a.txt": b"a", "b.png": png_bytes(rgb_image(2, (4, 4))),
                                         "b.txt": b"b"})
    items, st = _items(open_dataset(shard, resolution=8, max_image_bytes=len(GOOD) - 1))
    assert items["a"]["_skip"] == "too_large" and items["b"]["caption"] == "b"


def test_folder_caption_file_over_the_cap_is_skipped(tmp_path):
    root = _folder(tmp_path / "f", {"a.png": (GOOD, b"x" * 70_000), "b.png": (GOOD, b"fine")})
    items, st = _items(open_dataset(root, resolution=8))  # default cap 64 KiB
    assert items["a"]["_skip"] == "caption_too_large" and items["b"]["caption"] == "fine"
    assert "caption_too_large 1" in st.report()


# --- 7. npz arrays of different lengths ---------------------------------------------------------------------------

def test_npz_with_fewer_captions_than_images_is_refused(tmp_path):
    imgs = np.zeros((20, 8, 8, 3), np.uint8)
    p = tmp_path / "short.npz"
    np.savez(p, images=imgs, captions=np.array([f"c{i}" for i in range(19)]))
    with pytest.raises(DataError, match=r"20 images.*captions has 19"):
        open_dataset(p)
    np.savez(p, images=imgs, captions=np.array([f"c{i}" for i in range(20)]), names=np.array(["n"] * 18))
    with pytest.raises(DataError, match=r"names has 18"):
        open_dataset(p)


# --- 9. one-line errors instead of tracebacks ---------------------------------------------------------------------

@pytest.mark.parametrize("line", ["[1, 2]", '"x"', "3", "null"])
def test_jsonl_line_that_is_not_an_object(tmp_path, line):
    p = tmp_path / "m.jsonl"
    p.write_text('{"file_name": "a.png", "text": "a"}\n' + line + "\n")
    with pytest.raises(DataError, match=r"m\.jsonl:2: .*JSON object"):
        open_dataset(p)


def test_json_list_of_non_objects(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('[{"file_name": "a.png", "text": "a"}, 5]')
    with pytest.raises(DataError, match=r"m\.json: item 1 .*JSON object"):
        open_dataset(p)


def test_npz_object_arrays_are_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, images=np.zeros((2, 8, 8, 3), np.uint8), captions=np.array(["a", "b"], dtype=object))
    with pytest.raises(DataError, match=r"captions.*object array.*unicode"):
        open_dataset(p)


# --- 10. non-UTF-8 caption text -----------------------------------------------------------------------------------

def test_folder_latin1_and_bom_captions_are_decoded_and_counted(tmp_path):
    root = _folder(tmp_path / "f", {"lat.png": (GOOD, "café crème".encode("latin-1")),
                                    "bom.png": (GOOD, b"\xef\xbb\xbfhello"),
                                    "u16.png": (GOOD, "naïve".encode("utf-16")),
                                    "utf.png": (GOOD, "déjà vu".encode())})
    items, st = _items(open_dataset(root, resolution=8))
    assert items["lat"]["caption"] == "café crème" and items["bom"]["caption"] == "hello"
    assert items["u16"]["caption"] == "naïve" and items["utf"]["caption"] == "déjà vu"
    assert dict(st.converted) == {"caption_cp1252": 1}
    assert "caption_cp1252 1" in st.report()


def test_declared_caption_encoding(tmp_path):
    root = _folder(tmp_path / "f", {"cat.png": (GOOD, "кот".encode("cp1251"))})
    items, st = _items(open_dataset(root, resolution=8, caption_encoding="cp1251"))
    assert items["cat"]["caption"] == "кот" and st.converted["caption_cp1251"] == 1
    with pytest.raises(ConfigError, match="caption_encoding"):
        open_dataset(root, caption_encoding="no-such-codec")


def test_latin1_manifests_are_decoded_per_row(tmp_path):
    root = _folder(tmp_path / "m", {"a.png": (GOOD, None), "b.png": (GOOD, None)})
    with open(root / "m.csv", "w", newline="", encoding="latin-1") as f:
        w = csv.writer(f)
        w.writerows([["file_name", "text"], ["a.png", "crème brûlée"], ["b.png", "plain"]])
    rows = [{"file_name": "a.png", "text": "über"}, {"file_name": "b.png", "text": "x"}]
    (root / "m.jsonl").write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode("latin-1") + b"\n" for r in rows))
    for name, want in (("m.csv", "crème brûlée"), ("m.jsonl", "über")):
        items, st = _items(open_dataset(root / name, resolution=8))
        assert items["a"]["caption"] == want and st.converted == {"caption_cp1252": 1}, name


def test_shard_latin1_caption_is_decoded_and_counted(tmp_path):
    shard = raw_tar(tmp_path / "s.tar", {"a.png": GOOD, "a.txt": "façade".encode("latin-1")})
    items, st = _items(open_dataset(shard, resolution=8))
    assert items["a"]["caption"] == "façade" and st.converted["caption_cp1252"] == 1
