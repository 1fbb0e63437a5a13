"""Text encoders -> TextEmbedding(tokens [B,L,D], mask [B,L], pooled [B,P]): minilm (default), clip, t5, byt5; a cache."""

from fastt2i.text.batcher import TextBatcher
from fastt2i.text.base import TextEmbedding, TextEncoder, masked_mean
from fastt2i.text.cache import CachedTextEncoder, MemoryTextCache, default_cache_dir
from fastt2i.text.registry import DEFAULT_TEXT_ENCODER, TEXT_ENCODERS, load_encoder, load_text_encoder, parse_spec

__all__ = [
    "CachedTextEncoder",
    "DEFAULT_TEXT_ENCODER",
    "TEXT_ENCODERS",
    "MemoryTextCache",
    "TextBatcher",
    "TextEmbedding",
    "TextEncoder",
    "default_cache_dir",
    "load_encoder",
    "load_text_encoder",
    "masked_mean",
    "parse_spec",
]
