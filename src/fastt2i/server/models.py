"""The models a server holds: loaded once at start through `load_pipeline`, with an in-memory text-embedding cache.

Requests name a model only by the name it was loaded under; nothing a request sends is ever resolved as a path.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from fastt2i.errors import ConfigError
from fastt2i.inference import bundle_card, bundled_models, load_pipeline, resolve_model
from fastt2i.inference.gigagan import GigaGANPipeline
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.text.base import TextEmbedding, TextEncoder, check_texts

GAN, PAELLA = "gan", "paella"


class MemoryTextCache(TextEncoder):
    """An LRU of text embeddings in memory, in front of a frozen encoder: `encode` returns, for each text, what
    `encoder.encode([text])` returned (each text encoded alone, so a text's embedding never depends on the other
    texts of a batch), zero-padded to the longest text of the batch (`TextEmbedding.cat`).

    `stats` counts `hits` and `misses` (texts).

    Args:
        encoder: the frozen text encoder of a pipeline.
        size: texts kept (least recently used dropped first); 0 keeps none.
    """

    def __init__(self, encoder: TextEncoder, size: int = 1024):
        super().__init__(trainable=False)
        if getattr(encoder, "trainable", False):
            raise ConfigError(f"cannot cache the trainable text encoder {getattr(encoder, 'name', '?')!r}")
        self.encoder = encoder
        self.name, self.dim, self.pooled_dim = encoder.name, encoder.dim, encoder.pooled_dim
        self.max_length = getattr(encoder, "max_length", 0)
        self.size = int(size)
        self._rows: OrderedDict[str, TextEmbedding] = OrderedDict()  # text -> [1,L,D] / [1,L] / [1,P]
        self.stats = {"hits": 0, "misses": 0}
        self._finish_init()

    def _weights_id(self) -> str:
        return self.encoder._weights_id()

    def _encode(self, texts: list[str]) -> TextEmbedding:
        return self.encoder.encode(texts)

    @property
    def identity(self) -> str:
        return self.encoder.identity

    def encode(self, texts: Sequence[str]) -> TextEmbedding:
        """TextEmbedding (tokens [B,L,D], mask [B,L], pooled [B,P]) of B texts, each from the cache or encoded alone."""
        texts = check_texts(texts)
        if not texts:
            return self.encoder.encode([])
        rows = []
        for text in texts:
            row = self._rows.get(text)
            if row is None:
                self.stats["misses"] += 1
                row = self.encoder.encode([text])
                if self.size:
                    self._rows[text] = row
                    while len(self._rows) > self.size:
                        self._rows.popitem(last=False)
            else:
                self.stats["hits"] += 1
                self._rows.move_to_end(text)
            rows.append(row)
        return TextEmbedding.cat(rows)


@dataclass
class ModelEntry:
    """One loaded model: its name in requests, pipeline, kind ("gan" / "paella") and card (`bundle_card`)."""

    name: str
    pipe: Any
    kind: str
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def resolution(self) -> int:
        return int(self.pipe.resolution)

    @property
    def num_ws(self) -> int | None:
        """Styles of a GAN generator (the layer range of mixing); None for Paella."""
        return int(self.pipe.generator.num_ws) if self.kind == GAN else None

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/models` says about the model."""
        card = self.card
        out: dict[str, Any] = {
            "name": self.name,
            "family": card.get("family") or card.get("class"),
            "class": card.get("class"),
            "kind": self.kind,
            "resolution": self.resolution,
            "default": bool(card.get("default", False)),
            "summary": card.get("summary"),
            "metrics": card.get("metrics", {}),
        }
        if self.kind == GAN:
            out["num_ws"] = self.num_ws
        else:
            steps, cfg, temperature, mode = self.pipe.sampler_settings()
            out["sampler"] = {"steps": steps, "cfg": cfg, "temperature": temperature, "mode": mode}
            out["variations"] = bool(self.pipe.clip_dim) and self.pipe.clip_model is not None
        return out


def kind_of(pipe: Any) -> str:
    """"gan" for a GigaGAN / StyleGAN-T pipeline, "paella" for a Paella pipeline."""
    if isinstance(pipe, GigaGANPipeline):
        return GAN
    if isinstance(pipe, PaellaPipeline):
        return PAELLA
    raise ConfigError(f"the server serves GigaGAN, StyleGAN-T and Paella pipelines, not {type(pipe).__name__}")


def wrap_pipeline(name: str, pipe: Any, card: dict[str, Any] | None = None, text_cache_size: int = 1024) -> ModelEntry:
    """A `ModelEntry` for an already built pipeline, its text encoder put behind a `MemoryTextCache`.

    Args:
        name: the name requests use (no "/" or ".." in it: never a path).
        pipe: a GigaGAN, StyleGAN-T or Paella pipeline (in eval mode).
        card: what `GET /v1/models` shows (`bundle_card` of a bundled model).
        text_cache_size: prompts kept per model.
    """
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"model name {name!r} must be a plain name, not a path")
    kind = kind_of(pipe)
    if not isinstance(pipe.text_encoder, MemoryTextCache):
        pipe.text_encoder = MemoryTextCache(pipe.text_encoder, size=text_cache_size)
    return ModelEntry(name=name, pipe=pipe.eval(), kind=kind, card=dict(card or {}))


def load_models(specs: Sequence[str] | None = None, device: str | torch.device | None = None,
                text_cache_size: int = 1024) -> dict[str, ModelEntry]:
    """Load the models `fastt2i serve --model` names (default: every bundled text-to-image model).

    Args:
        specs: bundled model names or export / run directories; a directory is served under its last path part.
        device: where the pipelines go (default CPU).
        text_cache_size: prompts whose embedding is kept per model.
    """
    specs = list(specs) if specs else bundled_models()
    if not specs:
        raise ConfigError("no models to serve: no bundled model is installed; pass --model DIR")
    bundled = set(bundled_models())
    out: dict[str, ModelEntry] = {}
    for spec in specs:
        path = resolve_model(spec)
        name = spec if spec in bundled else Path(spec).expanduser().resolve().name
        if name == "export":  # a run directory's export/: name it after the run
            name = path.parent.name
        if name in out:
            raise ConfigError(f"two models would be served as {name!r}: rename one of the directories")
        pipe = load_pipeline(path, device=device)
        card = bundle_card(spec if spec in bundled else str(path))
        card["name"] = name
        out[name] = wrap_pipeline(name, pipe, card, text_cache_size=text_cache_size)
    return out
