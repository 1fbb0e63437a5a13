"""The evaluation driver end to end with a tiny extractor: values, records, real-statistics cache hits and misses."""

import json

import pytest
import torch

from fastt2i.errors import ConfigError, DataError
from fastt2i.metrics import FeatureStats, kernel_inception_distance, compute_real_stats, dataset_fingerprint, evaluate, split_batch
from fastt2i.metrics.cache import cached_stats, load_stats, stats_key_hash

from metrics_testutils import PooledPixels, PooledPixelsWithText, image_batches


def test_split_batch_formats():
    x = torch.zeros(2, 3, 4, 4)
    assert split_batch(x)[1] is None
    assert split_batch((x, ["a", "b"]))[1] == ["a", "b"]
    imgs, caps = split_batch({"image": torch.full((2, 3, 4, 4), 255, dtype=torch.uint8), "caption": ("a", "b")})
    assert caps == ["a", "b"] and float(imgs.max()) == 1.0
    import numpy as np

    imgs, _ = split_batch(np.zeros((2, 4, 4, 3), dtype=np.uint8))
    assert imgs.shape == (2, 3, 4, 4) and float(imgs.min()) == -1.0
    with pytest.raises(DataError, match=r"\[B,3,H,W\]"):
        split_batch(torch.zeros(2, 4, 4))
    with pytest.raises(DataError, match="2 images but 1 prompts"):
        split_batch((x, ["a"]))


def test_same_stream_gives_zero_fd_and_full_precision(tmp_path):
    ext = PooledPixels()
    real = image_batches(96, 16, seed=0)
    res = evaluate("fd_pooled,pr_pooled,kid_pooled", real, real, num=96, extractors={"pooled": ext},
                   run_dir=tmp_path, step=7, kimg=1.5, kid_subsets=5, kid_subset_size=50, progress=False,
                   extra={"checkpoint": "ckpt.pt"})
    assert set(res) == {"fd_pooled_96", "pr_pooled_96", "kid_pooled_96"}
    assert res["fd_pooled_96"] < 1e-9
    assert res["pr_pooled_96"]["precision"] == 1.0 and res["pr_pooled_96"]["recall"] == 1.0
    # The extractor ran once per batch on each side, shared by the three metrics.
    assert ext.calls == 12 and ext.images_seen == 192
    feats = ext(torch.cat(real))
    ref = kernel_inception_distance(feats, feats, num_subsets=5, subset_size=50, seed=0)
    assert res["kid_pooled_96"]["mean"] == pytest.approx(ref["mean"], rel=1e-6)
    assert res["kid_pooled_96"]["std"] == pytest.approx(ref["std"], rel=1e-6)
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["metric"] for r in recs] == ["fd_pooled_96", "pr_pooled_96", "kid_pooled_96"]
    r = recs[0]
    assert r["num_samples"] == 96 and r["num_real"] == 96 and r["step"] == 7 and r["kimg"] == 1.5
    assert r["extractor"] == "pooled" and r["seconds"] >= 0 and r["checkpoint"] == "ckpt.pt" and "time" in r


def test_shifted_stream_scores_worse_and_num_truncates():
    ext = PooledPixels()
    real = image_batches(128, 32, seed=0)
    same = evaluate(["fd_pooled", "cmmd_clip"], image_batches(200, 30, seed=1), real, num=100,
                    extractors={"pooled": ext, "clip": PooledPixels(name="clipish", seed=1)}, progress=False)
    worse = evaluate(["fd_pooled", "cmmd_clip"], image_batches(200, 30, seed=1, shift=0.5), real, num=100,
                     extractors={"pooled": ext, "clip": PooledPixels(name="clipish", seed=1)}, progress=False)
    assert set(same) == {"fd_pooled_100", "cmmd_clipish_100"}
    assert worse["fd_pooled_100"] > 10 * same["fd_pooled_100"] > 0
    assert worse["cmmd_clipish_100"] > same["cmmd_clipish_100"]


def test_clip_score_through_the_driver():
    ext = PooledPixelsWithText(dim=8)
    fake = image_batches(40, 16, seed=2, prompts=True)
    res = evaluate("clipscore_clip", fake, None, num=40, extractors={"clip": ext}, progress=False)
    imgs = torch.cat([b[0] for b in fake])
    prompts = [p for b in fake for p in b[1]]
    ref = 100 * torch.nn.functional.cosine_similarity(ext(imgs).double(), ext.encode_text(prompts).double()).clamp_min(0)
    assert res["clipscore_pooled_40"] == pytest.approx(float(ref.mean()), rel=1e-9)
    with pytest.raises(DataError, match="needs prompts"):
        evaluate("clipscore_clip", image_batches(8, 4, seed=0), None, num=8, extractors={"clip": ext}, progress=False)
    with pytest.raises(ConfigError, match="encode_text"):
        evaluate("clipscore_clip", fake, None, num=8, extractors={"clip": PooledPixels()}, progress=False)


def test_driver_errors():
    with pytest.raises(ConfigError, match="need feature extractor"):
        evaluate("fd_inception", [], None, num=8, extractors={}, progress=False)
    with pytest.raises(ConfigError, match="need real images"):
        evaluate("fd_pooled", image_batches(8, 4, 0), None, num=8, extractors={"pooled": PooledPixels()}, progress=False)
    with pytest.raises(DataError, match="gave 1 images"):
        evaluate("fd_pooled", image_batches(1, 4, 0), image_batches(8, 4, 0), num=8,
                 extractors={"pooled": PooledPixels()}, progress=False)


def test_real_stats_cache_hit_and_invalidation(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data.bin"
    data.write_bytes(b"12345")
    ext = PooledPixels()
    real = image_batches(64, 16, seed=0)
    opened = []

    def real_stream():  # a callable: the real data is only opened on a cache miss
        opened.append(1)
        return iter(real)

    key = {"dataset": dataset_fingerprint(data), "split": "train", "resolution": 16}
    kw = dict(extractors={"pooled": ext}, real_key=key, progress=False, kid_subsets=3, kid_subset_size=20)
    r1 = evaluate("fd_pooled,kid_pooled", image_batches(32, 16, 1), real_stream, num=32, run_dir=tmp_path / "r", **kw)
    assert len(opened) == 1 and ext.calls == 4 + 2
    files = sorted(p.name for p in (tmp_path / "cache" / "stats").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".safetensors")
    side = json.loads((tmp_path / "cache" / "stats" / files[0]).read_text())
    assert side["key"]["split"] == "train" and side["key"]["extractor"] == "pooled" and side["features"] is True

    r2 = evaluate("fd_pooled,kid_pooled", image_batches(32, 16, 1), real_stream, num=32, run_dir=tmp_path / "r", **kw)
    assert len(opened) == 1 and ext.calls == 6 + 2  # only the generated side ran again
    assert r2["fd_pooled_32"] == pytest.approx(r1["fd_pooled_32"], rel=1e-12)
    recs = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["real_stats_cached"] for r in recs] == [False, False, True, True]

    # Any key change misses: split, resolution, dataset contents (size/mtime), extractor identity.
    for changed in ({**key, "split": "val"}, {**key, "resolution": 32}):
        evaluate("fd_pooled", image_batches(8, 8, 1), real_stream, num=8, **{**kw, "real_key": changed})
    data.write_bytes(b"123456")
    evaluate("fd_pooled", image_batches(8, 8, 1), real_stream, num=8,
             **{**kw, "real_key": {**key, "dataset": dataset_fingerprint(data)}})
    other = PooledPixels(name="pooled-v2")
    evaluate("fd_pooled", image_batches(8, 8, 1), real_stream, num=8, **{**kw, "extractors": {"pooled": other}})
    assert len(opened) == 5


def test_cached_stats_helper_and_atomic_files(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        st = FeatureStats(3, store_features=True)
        st.update(torch.arange(12.0).view(4, 3))
        return st

    key = {"dataset": "x", "n": 4}
    a, hit_a = cached_stats(key, compute, root=tmp_path)
    b, hit_b = cached_stats(dict(reversed(list(key.items()))), compute, root=tmp_path)  # key order does not matter
    assert (hit_a, hit_b) == (False, True) and len(calls) == 1
    assert torch.equal(a.features, b.features) and b.n == 4
    assert not list((tmp_path / "stats").glob("*.tmp"))
    (tmp_path / "stats" / f"{stats_key_hash(key)}.safetensors").write_bytes(b"garbage")  # corrupt -> recompute
    assert load_stats(key, tmp_path) is None
    assert cached_stats(key, compute, root=tmp_path)[1] is False and len(calls) == 2


def test_compute_real_stats_counts(tmp_path):
    ext = PooledPixels()
    st, hit = compute_real_stats(ext, image_batches(50, 16, 0), key={"d": 1}, num_real=40, cache_root=tmp_path,
                                 progress=False)
    assert not hit and st.n == 40 and st.features.shape == (40, 16)
    st2, hit2 = compute_real_stats(ext, image_batches(50, 16, 0), key={"d": 1}, num_real=40, cache_root=tmp_path,
                                   progress=False)
    assert hit2 and ext.calls == 3
