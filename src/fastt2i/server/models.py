"""The models a server holds: loaded once at start through `load_pipeline`, with an in-memory text-embedding cache
(`fastt2i.text.cache.MemoryTextCache`).

Requests name a model only by the name it was loaded under; nothing a request sends is ever resolved as a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from fastt2i.errors import ConfigError
from fastt2i.inference import bundle_card, bundled_models, load_pipeline, resolve_model
from fastt2i.inference.gigagan import GigaGANPipeline
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.text.cache import MemoryTextCache

GAN, PAELLA = "gan", "paella"


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
