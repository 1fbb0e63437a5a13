"""In-memory loading: the batches, refills, flips and counts of streaming; budget, device, one decode per dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datafx import EXPECTED_CONV, EXPECTED_SKIPS, N_USABLE, good_files, make_npz, make_shards, odd_files, write_tree
from fastt2i.data import MemoryImages, load_in_memory, make_loader, open_dataset
from fastt2i.data.memory import FLOAT_OF_UINT8, _to_float
from fastt2i.data.transforms import flip_decision, flip_decisions, mix64, mix64_array, str_seed, to_tensor
from fastt2i.errors import DataError

K = 12  # batches compared: > 2 epochs of every fixture at these batch sizes, so bad files come up and get refilled


def _gray_npz(path: Path, n: int = 10) -> Path:
    """An npz of grayscale [N,H,W] images: decoded (and counted as grayscale) one by one, not served as it is."""
    rng = np.random.default_rng(1)
    np.savez(path, images=rng.integers(0, 256, (n, 12, 20), dtype=np.uint8),
             captions=np.array([f"gray {i}" if i % 4 else "" for i in range(n)]))  # every 4th caption missing
    return path


def _dataset(kind: str, tmp_path: Path, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    if kind == "folder":  # 12 good, 6 odd-but-usable, 3 bad (truncated, not an image, no caption)
        write_tree(tmp_path / "f", {**good_files(), **odd_files()}, sub="sub/")
        return open_dataset(tmp_path / "f", resolution=8, **kw)
    if kind == "npz":  # uint8 RGB at the training resolution: the file's own array is the store
        return open_dataset(make_npz(tmp_path / "t.npz"), resolution=16, **kw)
    if kind == "npz_split":  # the same with a split: rows picked out of the whole array
        return open_dataset(make_npz(tmp_path / "t.npz"), resolution=16, split="train", val_fraction=0.3, **kw)
    if kind == "npz_resized":  # 16 px stored, 8 px served: resized once
        return open_dataset(make_npz(tmp_path / "t.npz"), resolution=8, **kw)
    return open_dataset(_gray_npz(tmp_path / "g.npz"), resolution=8, **kw)  # "npz_gray"


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x["key"] == y["key"] and x["caption"] == y["caption"]
        assert x["image"].dtype == y["image"].dtype == torch.float32 and y["image"].is_contiguous()
        assert torch.equal(x["image"], y["image"])


KINDS = ["folder", "npz", "npz_split", "npz_resized", "npz_gray"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("world_size", [1, 2])
def test_same_batches_and_counts_as_streaming(tmp_path, kind, world_size):
    ds = _dataset(kind, tmp_path, hflip=True)
    for rank in range(world_size):
        for start in (0, 9):  # 9: a resume that is not a whole number of global batches
            kw = dict(seed=7, rank=rank, world_size=world_size, start_sample=start)
            stream, mem = make_loader(ds, 3, in_memory=False, **kw), make_loader(ds, 3, in_memory=True, **kw)
            assert not stream.in_memory and mem.in_memory
            _assert_same(_take(stream, K), _take(mem, K))
            assert mem.samples_seen == stream.samples_seen == start + K * 3 * world_size
            # every read counted as the stream counts it (a bad file drawn twice counts twice), examples in order
            assert mem.stats.to_dict() == stream.stats.to_dict() and mem.stats.examples == stream.stats.examples


@pytest.mark.parametrize("kind", ["folder", "npz"])
def test_resume_across_paths(tmp_path, kind):
    ds = _dataset(kind, tmp_path, hflip=True)
    full = _take(make_loader(ds, 4, seed=3, in_memory=False), 10)
    it = make_loader(ds, 4, seed=3, in_memory=True)
    _assert_same(full[:4], _take(it, 4))
    # a run that was in memory resumes streaming and the other way round, bit for bit
    _assert_same(full[4:], _take(make_loader(ds, 4, seed=3, in_memory=False, start_sample=it.samples_seen), 6))
    _assert_same(full[4:], _take(make_loader(ds, 4, seed=3, in_memory=True, start_sample=it.samples_seen), 6))


@pytest.mark.parametrize("kind", ["folder", "npz_split"])
def test_unshuffled_batches_spanning_epochs(tmp_path, kind):
    ds = _dataset(kind, tmp_path)
    kw = dict(shuffle=False, drop_last=False)  # evaluation: dataset order, batches straddle the epoch boundary
    stream, mem = make_loader(ds, 5, in_memory=False, **kw), make_loader(ds, 5, in_memory=True, **kw)
    _assert_same(_take(stream, 7), _take(mem, 7))


def test_bad_files_skipped_and_counted(tmp_path):
    ds = _dataset("folder", tmp_path)
    it = make_loader(ds, 4, seed=2, in_memory=True, num_workers=2)  # decoded in two workers
    batches = _take(it, K)
    bad = {"truncated", "notimage", "nocaption"}
    assert not [k for b in batches for k in b["key"] if k.split("/")[-1] in bad]
    assert all(len(b["key"]) == 4 and b["image"].shape == (4, 3, 8, 8) for b in batches)
    # the decoding pass saw each file once: exactly the fixture's bad files and conversions
    st = it.memory.stats
    assert dict(st.skipped) == EXPECTED_SKIPS and dict(st.converted) == EXPECTED_CONV
    assert st.read == len(ds) and st.ok == N_USABLE
    assert sorted(ds.keys[i].split("/")[-1] for i in np.flatnonzero(it.memory.bad)) == sorted(bad)
    # the loader's own counts are the stream's: refills counted per read, conversions per sample served
    stream = make_loader(ds, 4, seed=2, in_memory=False)
    _take(stream, K)
    assert it.stats.to_dict() == stream.stats.to_dict() and it.stats.n_skipped > 0


def test_decode_in_workers_equals_in_process(tmp_path):
    ds0, ds2 = _dataset("folder", tmp_path), _dataset("folder", tmp_path / "again")
    m0, m2 = load_in_memory(ds0), load_in_memory(ds2, num_workers=2)
    assert torch.equal(m0.images, m2.images) and m0.captions == m2.captions and m0.skip == m2.skip
    assert m0.conv == m2.conv and m0.stats.to_dict() == m2.stats.to_dict()


def test_npz_array_is_the_store_not_a_copy(tmp_path):
    ds = _dataset("npz", tmp_path)
    mem = load_in_memory(ds)
    assert mem.rows is None and mem.images.data_ptr() == ds._array().ctypes.data  # no decode, no copy
    split = _dataset("npz_split", tmp_path / "s")
    ms = load_in_memory(split)
    assert ms.images.data_ptr() == split._array().ctypes.data and ms.rows is not None and len(ms) == len(split)
    assert torch.equal(ms.images[ms.rows], torch.from_numpy(split._array()[split._items]))
    resized = load_in_memory(_dataset("npz_resized", tmp_path / "r"))
    assert resized.images.shape == (20, 8, 8, 3)  # resized once into a store of its own


def test_decoded_once_per_dataset(tmp_path):
    ds = _dataset("folder", tmp_path)
    a, b = make_loader(ds, 2, seed=0), make_loader(ds, 2, seed=1, rank=1, world_size=2)
    assert a.in_memory and a.memory is b.memory  # the default (auto) fits: one store for both loaders
    other = _dataset("folder", tmp_path / "other")
    assert make_loader(other, 2).memory is not a.memory


def test_budget_auto_force_and_off(tmp_path):
    ds = _dataset("folder", tmp_path)
    need = ds.memory_bytes()
    assert need == len(ds) * 8 * 8 * 3
    assert make_loader(ds, 2, max_memory_bytes=need).in_memory
    assert not make_loader(ds, 2, max_memory_bytes=need - 1).in_memory  # auto: over the budget, it streams
    assert not make_loader(ds, 2, in_memory=False).in_memory
    with pytest.raises(DataError, match="over max_memory_bytes"):
        make_loader(ds, 2, in_memory=True, max_memory_bytes=need - 1)
    with pytest.raises(DataError, match="in_memory must be"):
        make_loader(ds, 2, in_memory="yes")
    make_shards(tmp_path / "sh", n_shards=2, per_shard=3, odd=False)
    shards = open_dataset(tmp_path / "sh", resolution=8)
    assert not make_loader(shards, 2).in_memory  # shards stream whatever the budget
    with pytest.raises(DataError, match="in_memory=True needs a folder, manifest or npz"):
        make_loader(shards, 2, in_memory=True)


def test_npz_memory_bytes_is_the_array_it_holds(tmp_path):
    assert _dataset("npz_split", tmp_path).memory_bytes() == 20 * 16 * 16 * 3  # the whole array, not the split
    assert _dataset("npz_resized", tmp_path / "r").memory_bytes() == 20 * 8 * 8 * 3


def test_device_argument(tmp_path):
    ds = _dataset("npz", tmp_path, hflip=True)
    for in_memory in (False, True):
        b = next(make_loader(ds, 4, device="cpu", in_memory=in_memory))
        assert b["image"].device == torch.device("cpu") and b["image"].shape == (4, 3, 16, 16)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_store_on_gpu_gives_the_cpu_batches(tmp_path):
    for kind in ("folder", "npz_split"):
        ds = _dataset(kind, tmp_path / kind, hflip=True)
        cpu = _take(make_loader(ds, 4, seed=1, in_memory=False), K)
        gpu = make_loader(ds, 4, seed=1, in_memory=True, device="cuda")
        assert gpu.memory.device.type == "cuda" and gpu.memory.rows is None  # only the split's rows moved
        got = _take(gpu, K)
        assert all(g["image"].device.type == "cuda" for g in got)
        _assert_same(cpu, [{**g, "image": g["image"].cpu()} for g in got])


@pytest.mark.parametrize("kind", ["folder", "npz_split"])
def test_torch_gather_equals_numpy_gather(tmp_path, kind, monkeypatch):
    mem = load_in_memory(_dataset(kind, tmp_path))  # the GPU path's torch ops, run here on the CPU
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(~mem.bad)[rng.integers(0, int((~mem.bad).sum()), 16)]
    flips = rng.random(16) < 0.5
    a, b = mem.gather(idx, flips), mem._gather_torch(idx, flips)
    assert mem._exact and b.is_contiguous() and torch.equal(a, b) and not torch.equal(a, mem.gather(idx))
    mem._exact = False  # a device whose arithmetic differs: the table look-up, in chunks
    monkeypatch.setattr("fastt2i.data.memory.LUT_CHUNK", 3 * mem.resolution ** 2 * 5)  # 5 images a chunk
    c = mem._gather_torch(idx, flips)
    assert c.is_contiguous() and torch.equal(a, c)


def test_float_table_is_to_tensor():
    levels = np.arange(256, dtype=np.uint8)
    img = to_tensor(Image.fromarray(np.stack([levels.reshape(16, 16)] * 3, -1)))  # [3,16,16]
    assert torch.equal(torch.from_numpy(_to_float(levels)), img[0].flatten())
    assert torch.equal(torch.from_numpy(FLOAT_OF_UINT8), img[1].flatten())


def test_all_bad_raises_like_streaming(tmp_path):
    write_tree(tmp_path / "bad", {k: v for k, v in odd_files().items() if k in ("truncated.jpg", "notimage.png")})
    ds = open_dataset(tmp_path / "bad", resolution=8)
    for in_memory in (False, True):
        with pytest.raises(DataError, match="64 bad samples in a row"):
            next(make_loader(ds, 2, in_memory=in_memory))


def test_vectorised_hash_and_flips_match_scalar():
    rng = np.random.default_rng(0)
    keys = [f"k{i}" for i in range(64)]
    seeds = np.array([str_seed(k) for k in keys], dtype=np.uint64)
    pos = rng.integers(0, 10**12, 64)
    for seed in (0, 7, -3, 2**64 - 1):
        assert [int(v) for v in mix64_array(seed, seeds, pos, 5)] == [mix64(seed, int(s), int(p), 5)
                                                                       for s, p in zip(seeds, pos)]
        assert flip_decisions(seed, seeds, pos).tolist() == [flip_decision(seed, k, int(p)) for k, p in zip(keys, pos)]


def test_store_checks_its_shapes():
    with pytest.raises(DataError, match="uint8"):
        MemoryImages(torch.zeros(2, 4, 4, 3), None, ["a", "b"], ["", ""], [None, None], [(), ()], None)
    with pytest.raises(DataError, match="2 images"):
        MemoryImages(torch.zeros(2, 4, 4, 3, dtype=torch.uint8), None, ["a"], [""], [None], [()], None)
