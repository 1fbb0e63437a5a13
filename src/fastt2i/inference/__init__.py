"""Inference: text-to-image pipelines over exports and the one loader, `load_pipeline(name_or_path)`."""

from fastt2i.inference.gigagan import GigaGANPipeline
from fastt2i.inference.loader import (
    DEFAULT_MODEL,
    PIPELINES,
    bundle_card,
    bundled_models,
    load_pipeline,
    model_class,
    resolve_model,
)
from fastt2i.inference.paella import PaellaPipeline

__all__ = [
    "DEFAULT_MODEL",
    "bundle_card",
    "GigaGANPipeline",
    "PIPELINES",
    "PaellaPipeline",
    "bundled_models",
    "load_pipeline",
    "model_class",
    "resolve_model",
]
