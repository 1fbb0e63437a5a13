"""Registry, spec parsing, tiny-random encoders, frozen/trainable, save -> local-path load, fast hub failures."""

import json
import socket

import pytest
import torch

from fastt2i.errors import AssetNotFoundError, ConfigError, DataError
from fastt2i.text import TEXT_ENCODERS, TextEncoder, load_text_encoder, parse_spec

CAPTIONS = ["grinning face", "red heart", "", "a very long caption " * 40]


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every socket connection attempted during the test (each refused), so a test can show none was tried."""
    tried = []

    def refuse(sock, address, *args):
        tried.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried


def test_registry_names():
    assert set(TEXT_ENCODERS.names()) == {
        "minilm", "clip", "t5", "byt5", "clip-tiny-random", "t5-tiny-random", "byt5-tiny-random",
    }


def test_parse_spec():
    assert parse_spec("minilm") == ("minilm", None)
    assert parse_spec("clip:/models/clip-vit-large-patch14") == ("clip", "/models/clip-vit-large-patch14")
    assert parse_spec("t5:google/t5-v1_1-xl") == ("t5", "google/t5-v1_1-xl")
    assert parse_spec(" byt5-tiny-random ") == ("byt5-tiny-random", None)
    with pytest.raises(ConfigError, match="choose one of"):
        parse_spec("bert:/x")
    with pytest.raises(ConfigError, match="empty path"):
        parse_spec("clip:")
    with pytest.raises(ConfigError):
        parse_spec("")
    with pytest.raises(ConfigError, match="takes no path"):
        load_text_encoder("clip-tiny-random:/some/dir")


@pytest.mark.parametrize(
    "name, dim, pooled_dim, expected_lengths",
    [
        # WordPiece: [CLS] + words + [SEP]; the long caption is truncated at max_length 64.
        ("clip-tiny-random", 32, 16, [4, 4, 2, 64]),
        ("t5-tiny-random", 32, 32, [4, 4, 2, 64]),
        # bytes + </s>
        ("byt5-tiny-random", 32, 32, [14, 10, 1, 64]),
    ],
)
def test_tiny_random_shapes_and_mask(name, dim, pooled_dim, expected_lengths, request):
    enc = request.getfixturevalue({"clip-tiny-random": "tiny_clip", "t5-tiny-random": "tiny_t5",
                                   "byt5-tiny-random": "tiny_byt5"}[name])
    assert isinstance(enc, TextEncoder) and enc.name == name
    assert (enc.dim, enc.pooled_dim, enc.max_length) == (dim, pooled_dim, 64)
    emb = enc.encode(CAPTIONS)
    assert emb.tokens.shape == (4, 64, dim) and emb.pooled.shape == (4, pooled_dim)
    assert emb.lengths.tolist() == expected_lengths
    # right padding, padded tokens exactly zero, real tokens not
    assert torch.equal(emb.mask, torch.arange(64)[None] < emb.lengths[:, None])
    assert emb.tokens[~emb.mask].abs().sum() == 0
    assert (emb.tokens[emb.mask].abs().sum(-1) > 0).all()
    assert torch.isfinite(emb.pooled).all()
    # batch composition does not change a text's tokens (beyond float noise)
    alone = enc.encode([CAPTIONS[1]])
    assert alone.length == expected_lengths[1]
    torch.testing.assert_close(alone.tokens[0], emb.tokens[1, : expected_lengths[1]], atol=1e-5, rtol=1e-5)
    assert enc.encode([]).tokens.shape == (0, 0, dim)
    with pytest.raises(DataError):
        enc.encode("not a list")


def test_tiny_random_is_seeded_and_builds_offline(tiny_t5, connections, monkeypatch, tmp_path):
    """Built from a config and the embedded vocab: no network, nothing from the Hugging Face cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    again = load_text_encoder("t5-tiny-random")
    assert connections == [] and not any(tmp_path.iterdir())
    assert again.identity == tiny_t5.identity
    assert again.encode(CAPTIONS).equal(tiny_t5.encode(CAPTIONS))
    other = load_text_encoder("t5-tiny-random", seed=1)
    assert other.identity != tiny_t5.identity
    rng = torch.get_rng_state()
    load_text_encoder("byt5-tiny-random")
    assert torch.equal(rng, torch.get_rng_state()), "building a tiny encoder must not touch the global RNG"


def test_frozen_by_default(tiny_clip):
    assert not tiny_clip.trainable and not tiny_clip.training
    assert all(not p.requires_grad for p in tiny_clip.parameters())
    parent = torch.nn.Sequential(tiny_clip)
    parent.train()
    assert not tiny_clip.training, "a frozen encoder stays in eval mode under parent.train()"
    emb = tiny_clip.encode(CAPTIONS[:2])
    assert not emb.tokens.requires_grad and not emb.pooled.requires_grad
    assert tiny_clip.encode(CAPTIONS[:2]).equal(emb)  # no dropout


def test_trainable_grad_flows_and_dropout_toggles():
    enc = load_text_encoder("byt5-tiny-random", trainable=True)
    assert enc.trainable and enc.training
    emb = enc.encode(CAPTIONS[:2])
    assert emb.tokens.requires_grad
    (emb.tokens.square().sum() + emb.pooled.sum()).backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    torch.manual_seed(0)
    a, b = enc.encode(CAPTIONS[:1]), enc.encode(CAPTIONS[:1])
    assert not torch.equal(a.tokens, b.tokens), "dropout is active in train mode"
    enc.eval()
    assert enc.encode(CAPTIONS[:1]).equal(enc.encode(CAPTIONS[:1]))
    assert enc.encode(CAPTIONS[:1]).tokens.requires_grad
    enc.set_trainable(False)
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())


@pytest.mark.parametrize("name, family", [("clip-tiny-random", "clip"), ("t5-tiny-random", "t5"),
                                          ("byt5-tiny-random", "byt5")])
def test_save_and_load_through_local_path(name, family, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = load_text_encoder(name)
    out = enc.save_pretrained(tmp_path / name)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    loaded = load_text_encoder(f"{family}:{out}", max_length=64)
    assert loaded.name == family and (loaded.dim, loaded.pooled_dim) == (enc.dim, enc.pooled_dim)
    assert loaded.encode(CAPTIONS).equal(enc.encode(CAPTIONS))
    assert loaded.identity != enc.identity  # names differ ...
    # ... and the identity follows the content, not the location
    moved = tmp_path / "elsewhere" / name
    moved.parent.mkdir()
    out.rename(moved)
    assert load_text_encoder(f"{family}:{moved}", max_length=64).identity == loaded.identity


def test_clip_full_checkpoint_and_text_only_without_projection(tmp_path, monkeypatch):
    """A full CLIPModel dir (text + vision) loads its text tower; a CLIPTextModel dir pools the raw EOS state."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextModel

    from fastt2i.text._hf import wordpiece_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = wordpiece_tokenizer()
    text_cfg = dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                    num_attention_heads=4, max_position_embeddings=40, pad_token_id=0, bos_token_id=101,
                    eos_token_id=102)
    vision_cfg = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      image_size=32, patch_size=16)
    torch.manual_seed(0)
    full = CLIPModel(CLIPConfig(text_config=text_cfg, vision_config=vision_cfg, projection_dim=8))
    full.save_pretrained(tmp_path / "full")
    tok.save_pretrained(tmp_path / "full")
    enc = load_text_encoder(f"clip:{tmp_path / 'full'}")
    assert enc.projected and (enc.dim, enc.pooled_dim, enc.max_length) == (32, 8, 40)
    ids = tok(["red heart"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = full.get_text_features(input_ids=ids)
    want = getattr(want, "pooler_output", want)  # transformers 5 may return an output object
    torch.testing.assert_close(enc.encode(["red heart"]).pooled, want)

    from transformers import CLIPTextConfig

    text_only = CLIPTextModel(CLIPTextConfig(**text_cfg))
    text_only.save_pretrained(tmp_path / "text")
    tok.save_pretrained(tmp_path / "text")
    enc2 = load_text_encoder(f"clip:{tmp_path / 'text'}")
    assert not enc2.projected and enc2.pooled_dim == 32
    emb = enc2.encode(["red heart", "a"])
    n = emb.lengths.tolist()
    assert torch.equal(emb.pooled[0], emb.tokens[0, n[0] - 1]) and torch.equal(emb.pooled[1], emb.tokens[1, n[1] - 1])


def test_bad_local_dirs(tmp_path, tiny_byt5):
    with pytest.raises(AssetNotFoundError, match="no such directory"):
        load_text_encoder(f"clip:{tmp_path / 'missing'}")
    with pytest.raises(AssetNotFoundError, match="not a model directory"):
        load_text_encoder(f"t5:{tmp_path}")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(AssetNotFoundError, match="no weights"):
        load_text_encoder(f"t5:{tmp_path / 'cfg'}")
    saved = tiny_byt5.save_pretrained(tmp_path / "byt5")
    with pytest.raises(ConfigError, match="holds a 't5' model"):
        load_text_encoder(f"clip:{saved}")
    with pytest.raises(AssetNotFoundError, match="is a file"):
        load_text_encoder(f"clip:{saved / 'config.json'}")


@pytest.mark.parametrize("spec", ["clip", "t5", "byt5", "clip:nobody-fastt2i-test/no-such-model"])
def test_unreachable_hub_fails_fast_offline(spec, monkeypatch, tmp_path, connections):
    """Fails at once: the hub is never asked (no connection attempted, so no transformers retries to wait for)."""
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing to find locally
    asked = []
    monkeypatch.setattr(huggingface_hub, "model_info", lambda *a, **k: asked.append((a, k)))
    with pytest.raises(AssetNotFoundError) as err:
        load_text_encoder(spec)
    assert asked == [] and connections == []
    msg = str(err.value)
    assert "\n" not in msg and "pass a local directory" in msg and f"{spec.split(':')[0]}:/path/to/" in msg


def test_nonexistent_hub_id_fails_fast_online(monkeypatch):
    """Without HF_HUB_OFFLINE: one hub query with a short timeout and no other connection (so no transformers
    retries), whatever the network does."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    queries, outside, in_query = [], [], []
    real_info, real_connect = huggingface_hub.model_info, socket.socket.connect

    def model_info(repo_id, *args, **kwargs):
        queries.append((repo_id, kwargs.get("timeout")))
        in_query.append(True)
        try:
            return real_info(repo_id, *args, **kwargs)
        finally:
            in_query.pop()

    def connect(sock, address):
        if not in_query:
            outside.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    monkeypatch.setattr(socket.socket, "connect", connect)
    with pytest.raises(AssetNotFoundError) as err:
        load_text_encoder("t5:nobody-fastt2i-test/no-such-model-0123")
    assert queries == [("nobody-fastt2i-test/no-such-model-0123", 5)]
    assert outside == [], "connections outside the one hub query (transformers downloads / retries)"
    assert "\n" not in str(err.value) and "t5:/path/to/no-such-model-0123" in str(err.value)


def test_max_length_validation():
    with pytest.raises(ConfigError, match="exceeds"):
        load_text_encoder("clip-tiny-random", max_length=65)
    enc = load_text_encoder("byt5-tiny-random", max_length=8)
    assert enc.encode(["abcdefghijkl"]).length == 8
    assert "max_length=8" in enc.identity
