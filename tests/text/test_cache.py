"""The on-disk embedding cache: bit-exact results, hits on a second pass, per-encoder keys, refusals, atomicity."""

import threading
from pathlib import Path

import pytest
import torch

from fastt2i.errors import ConfigError
from fastt2i.text import CachedTextEncoder, default_cache_dir, load_text_encoder

TEXTS = ["grinning face", "red heart", "", "pile of poo", "grinning face", "a rocket flying to the moon at night"]



def _count_calls(enc, monkeypatch):
    calls = []
    orig = enc.encode

    def spy(texts):
        calls.append(list(texts))
        return orig(texts)

    monkeypatch.setattr(enc, "encode", spy)
    return calls


def test_cache_identical_outputs_and_hits(tiny_byt5, tmp_path, monkeypatch):
    calls = _count_calls(tiny_byt5, monkeypatch)
    want = tiny_byt5.encode(TEXTS)
    calls.clear()
    cached = CachedTextEncoder(tiny_byt5, tmp_path)
    first = cached.encode(TEXTS)
    assert first.equal(want)
    assert len(calls) == 1 and calls[0] == list(dict.fromkeys(TEXTS))  # duplicates encoded once
    assert cached.stats == {"hits": 0, "misses": 5, "encoder_calls": 1, "encoded": 5}
    files = sorted(p for p in tmp_path.rglob("*.safetensors"))
    assert len(files) == 5 and not list(tmp_path.rglob("*.tmp"))

    second = cached.encode(TEXTS)
    assert second.equal(want) and len(calls) == 1
    assert cached.stats["hits"] == 5 and cached.stats["encoder_calls"] == 1

    # a fresh wrapper (another process) reads the same entries; any subset / order re-pads to its own longest
    other = CachedTextEncoder(tiny_byt5, tmp_path)
    sub = other.encode([TEXTS[3], TEXTS[1]])
    assert len(calls) == 1 and other.stats["hits"] == 2
    assert sub.equal(want.select([3, 1]).trim())

    # mixed hits and misses: only the new text is encoded
    mixed = other.encode(["red heart", "brand new"])
    assert calls[-1] == ["brand new"] and len(calls) == 2
    assert torch.equal(mixed.tokens[0, : mixed.lengths[0]], want.tokens[1, : want.lengths[1]])


def test_cache_stores_only_unpadded_tokens(tiny_clip, tmp_path):
    from safetensors.torch import load_file

    cached = CachedTextEncoder(tiny_clip, tmp_path)
    emb = cached.encode(["red heart", "a much longer caption about a red heart"])
    stored = load_file(str(cached.path_for("red heart")))
    assert stored["tokens"].shape == (int(emb.lengths[0]), tiny_clip.dim)
    assert torch.equal(stored["tokens"], emb.tokens[0, : emb.lengths[0]])
    assert torch.equal(stored["pooled"], emb.pooled[0])


def test_different_encoders_do_not_share_entries(tiny_t5, tiny_clip, tmp_path, monkeypatch):
    a = CachedTextEncoder(tiny_t5, tmp_path)
    b = CachedTextEncoder(tiny_clip, tmp_path)
    a.encode(["red heart"])
    eb = b.encode(["red heart"])
    assert b.stats["misses"] == 1 and b.stats["hits"] == 0
    assert a.entry_dir() != b.entry_dir()
    assert (a.entry_dir() / "identity.txt").read_text().strip() == tiny_t5.identity
    assert eb.equal(tiny_clip.encode(["red heart"]))
    # same architecture, other weights / settings -> other entries
    c = CachedTextEncoder(load_text_encoder("t5-tiny-random", seed=3), tmp_path)
    d = CachedTextEncoder(load_text_encoder("t5-tiny-random", max_length=16), tmp_path)
    assert len({a.entry_dir(), c.entry_dir(), d.entry_dir()}) == 3


def test_trainable_encoder_refused(tmp_path):
    enc = load_text_encoder("byt5-tiny-random", trainable=True)
    with pytest.raises(ConfigError, match="trainable"):
        CachedTextEncoder(enc, tmp_path)
    with pytest.raises(ConfigError, match="trainable"):
        load_text_encoder("byt5-tiny-random", trainable=True, cache_dir=tmp_path)
    frozen = load_text_encoder("byt5-tiny-random", cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="trainable"):
        frozen.set_trainable(True)
    frozen.encoder.set_trainable(True)  # unfrozen behind the cache's back
    with pytest.raises(ConfigError, match="trainable"):
        frozen.encode(["x"])


def test_load_text_encoder_cache_dir_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTT2I_CACHE", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "text"
    enc = load_text_encoder("byt5-tiny-random", cache_dir=True)
    assert isinstance(enc, CachedTextEncoder) and enc.cache_dir == tmp_path / "root" / "text"
    enc.encode(["hi"])
    assert len(list((tmp_path / "root" / "text").rglob("*.safetensors"))) == 1
    monkeypatch.delenv("FASTT2I_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "fastt2i" / "text"
    assert not isinstance(load_text_encoder("byt5-tiny-random"), CachedTextEncoder)


def test_corrupt_entry_is_a_miss_and_rewritten(tiny_byt5, tmp_path):
    cached = CachedTextEncoder(tiny_byt5, tmp_path)
    want = cached.encode(["red heart"])
    path = cached.path_for("red heart")
    path.write_bytes(path.read_bytes()[:20])  # torn file
    again = cached.encode(["red heart"])
    assert again.equal(want) and cached.stats["misses"] == 2
    assert CachedTextEncoder(tiny_byt5, tmp_path).encode(["red heart"]).equal(want)


def test_concurrent_writers_share_one_dir(tiny_byt5, tmp_path):
    texts = [f"caption {i}" for i in range(40)]
    want = tiny_byt5.encode(texts)
    errors = []

    def work(k):
        try:
            enc = CachedTextEncoder(tiny_byt5, tmp_path)
            order = texts[k:] + texts[:k]
            for _ in range(2):
                got = enc.encode(order)
                idx = [texts.index(t) for t in order]
                ref = want.select(idx).trim()
                # entries may come from another thread's batch, so equal up to float noise of batch composition
                assert torch.equal(got.mask, ref.mask)
                torch.testing.assert_close(got.tokens, ref.tokens, atol=1e-5, rtol=1e-5)
                torch.testing.assert_close(got.pooled, ref.pooled, atol=1e-5, rtol=1e-5)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 7, 13, 29)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(list(Path(tmp_path).rglob("*.safetensors"))) == 40
    assert not list(Path(tmp_path).rglob("*.tmp"))
    reader = CachedTextEncoder(tiny_byt5, tmp_path)
    reader.encode(texts)
    assert reader.stats["hits"] == 40 and reader.stats["encoder_calls"] == 0


def test_fill_encodes_only_missing_in_batches(tiny_byt5, tmp_path):
    cached = CachedTextEncoder(tiny_byt5, tmp_path)
    cached.encode(["caption 0"])
    texts = [f"caption {i}" for i in range(10)] + ["caption 3"]
    assert cached.fill(texts, batch_size=4) == 9
    assert cached.stats["encoder_calls"] == 1 + 3 and cached.stats["encoded"] == 10
    assert cached.fill(texts) == 0
    fresh = CachedTextEncoder(tiny_byt5, tmp_path)
    fresh.encode(texts)
    assert fresh.stats["hits"] == 10 and fresh.stats["encoder_calls"] == 0
