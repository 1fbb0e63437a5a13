"""Every format yields the expected samples, shapes and range, and counts odd/bad files by reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastt2i.data import DataStats, detect_format, open_dataset
from fastt2i.data.inspect import iter_items
from fastt2i.data.transforms import decode_image, resize_center_crop
from fastt2i.errors import ConfigError, DataError

from datafx import EXPECTED_CONV, EXPECTED_SKIPS, N_USABLE, odd_files, rgb_image


def _read_all(ds) -> tuple[list[dict], DataStats]:
    st = DataStats()
    good = [it for it in iter_items(ds) if st.update(it)]
    return good, st


@pytest.mark.parametrize("fixture", ["folder_ds", "jsonl_ds", "csv_ds", "parquet_ds", "shard_dir"])
def test_format_counts_and_shapes(fixture, request):
    path = request.getfixturevalue(fixture)
    ds = open_dataset(path, resolution=24)
    good, st = _read_all(ds)
    n_good_extra = 20 - 12 if fixture == "shard_dir" else 0  # the shard fixture has 20 plain records, not 12
    assert st.ok == N_USABLE + n_good_extra == len(good)
    assert dict(st.skipped) == EXPECTED_SKIPS
    assert dict(st.converted) == EXPECTED_CONV
    for s in good:
        assert s["image"].shape == (3, 24, 24) and s["image"].dtype == torch.float32
        assert -1 <= s["image"].min() and s["image"].max() <= 1
        assert isinstance(s["caption"], str) and s["caption"]
    caps = {s["key"].split("/")[-1]: s["caption"] for s in good}
    assert caps["gray"] == "a gray square"
    assert "truncated 1" in st.report()


def test_conversions_give_the_right_pixels(folder_ds):
    ds = open_dataset(folder_ds, resolution=8)
    by = {ds.keys[i].split("/")[-1]: ds[i] for i in range(len(ds))}
    white = torch.ones(3, 8, 8)
    assert torch.allclose(by["alpha"]["image"], white)  # transparent composited on white
    assert torch.allclose(by["deep16"]["image"], white, atol=1e-6)  # 65535 -> 255, not clipped garbage
    g = by["gray"]["image"]
    assert torch.allclose(g[0], g[1]) and abs(g.mean().item() - (77 / 127.5 - 1)) < 1e-3
    c = by["cmyk"]["image"]
    assert c[1].mean() < -0.5 and c[0].mean() > 0.5  # CMYK (0,255,0,0) is magenta-ish: red high, green low
    assert by["anim"]["image"][2].mean() > 0.9 and by["anim"]["image"][1].mean() < -0.9  # first frame: blue
    assert by["truncated"]["_skip"] == "truncated" and by["notimage"]["_skip"] == "unreadable"
    assert by["nocaption"]["_skip"] == "missing_caption"


def test_missing_caption_empty_option(folder_ds):
    ds = open_dataset(folder_ds, resolution=8, missing_caption="empty")
    good, st = _read_all(ds)
    assert st.ok == N_USABLE + 1 and "missing_caption" not in st.skipped
    assert any(s["caption"] == "" for s in good)


def test_npz_keys_captions_and_metadata(npz_ds, tmp_path):
    from datafx import make_npz

    ds = open_dataset(npz_ds, resolution=16)
    assert detect_format(npz_ds) == "npz" and len(ds) == 20
    assert ds.keys[:2] == ["google_1f000", "twitter_1f000"]
    s = ds[3]
    assert s["caption"] == "emoji 3, smileys, google style" and s["image"].shape == (3, 16, 16)
    raw = np.load(npz_ds)["images"][3]
    assert torch.equal(s["image"], torch.from_numpy(raw).permute(2, 0, 1).float() / 127.5 - 1)
    assert ds.metadata(3)["names"] == "name 3"
    ds2 = open_dataset(npz_ds, resolution=16, caption_field="names")
    assert ds2[0]["caption"] == "name 0"
    plain = open_dataset(make_npz(tmp_path / "plain.npz", with_hex=False), resolution=8)
    assert plain.keys[:2] == ["000000", "000001"]


def test_manifest_columns_and_errors(jsonl_ds, tmp_path):
    with pytest.raises(DataError, match="no caption column 'nope'"):
        open_dataset(jsonl_ds, caption_field="nope")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"foo": "a.png", "bar": "x"}\n')
    with pytest.raises(DataError, match="no image column"):
        open_dataset(bad)
    ds = open_dataset(bad, image_field="foo", caption_field="bar")
    assert ds[0]["_skip"] == "missing_file"
    with pytest.raises(ConfigError, match="unknown data option"):
        open_dataset(jsonl_ds, resolutoin=3)
    with pytest.raises(DataError, match="no such file"):
        open_dataset(tmp_path / "nothing_here")


def test_shard_inputs_and_bad_shards(shard_dir, tmp_path):
    from fastt2i.data import expand_shards

    pat = str(shard_dir / "part-{000000..000003}.tar")
    assert detect_format(pat) == "shards" and len(expand_shards(pat)) == 4
    ds_pat = open_dataset(pat, resolution=8)
    ds_list = open_dataset([str(shard_dir / "part-000000.tar"), str(shard_dir / "part-000001.tar")], resolution=8)
    ds_one = open_dataset(shard_dir / "part-000002.tar", resolution=8)
    assert _read_all(ds_pat)[1].ok == 20 and _read_all(ds_list)[1].ok == 10 and _read_all(ds_one)[1].ok == 5
    # a truncated tar and a garbage tar: counted as bad_shard, the good records before the damage still count
    data = (shard_dir / "part-000000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2 + 100])
    (tmp_path / "junk.tar").write_bytes(b"\x00junk" * 1000)
    good, st = _read_all(open_dataset([str(tmp_path / "cut.tar"), str(tmp_path / "junk.tar")], resolution=8))
    assert st.skipped["bad_shard"] == 2 and 0 < st.ok < 5
    with pytest.raises(DataError, match="no such shard"):
        open_dataset(str(tmp_path / "x-{0..3}.tar"))


def test_shard_json_caption_field(tmp_path):
    from fastt2i.data import write_shards

    write_shards([{"key": "a", "image": rgb_image(1), "caption": "txt cap", "meta": {"alt": "alt cap"}}],
                 tmp_path / "s", samples_per_shard=10)
    assert next(iter(open_dataset(tmp_path / "s", resolution=8)))["caption"] == "txt cap"
    assert next(iter(open_dataset(tmp_path / "s", resolution=8, caption_field="alt")))["caption"] == "alt cap"


def test_write_shards_roundtrip_is_lossless(tmp_path):
    from fastt2i.data import write_shards

    x = torch.rand(3, 3, 16, 16) * 2 - 1
    x = ((x + 1) * 127.5).round() / 127.5 - 1  # exactly representable in uint8
    paths = write_shards(({"key": f"k{i}", "image": x[i], "caption": f"c{i}"} for i in range(3)), tmp_path / "w",
                         samples_per_shard=2, prefix="t")
    assert [p.name for p in paths] == ["t-000000.tar", "t-000001.tar"]
    got = {s["key"]: s for s in open_dataset(tmp_path / "w", resolution=16)}
    for i in range(3):
        assert torch.allclose(got[f"k{i}"]["image"], x[i], atol=1e-6) and got[f"k{i}"]["caption"] == f"c{i}"
    assert write_shards([], tmp_path / "empty", samples_per_shard=2) == []


def test_resize_center_crop_and_decode():
    im = rgb_image(3, (100, 50))
    out = resize_center_crop(im, 20)
    assert out.size == (20, 20)
    with pytest.raises(Exception) as e:
        decode_image(odd_files()["notimage.png"][0])
    assert e.value.reason == "unreadable"
