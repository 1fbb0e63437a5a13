"""Inference: text-to-image pipelines over exports and the one loader, `load_pipeline(name_or_path)`."""

from fastt2i.inference.gigagan import GigaGANPipeline
from fastt2i.inference.loader import (
    DEFAULT_MODEL,
    DEFAULT_UPSAMPLER,
    PIPELINES,
    bundle_card,
    bundled_models,
    bundled_upsamplers,
    load_pipeline,
    load_upsampler,
    model_class,
    resolve_model,
)
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.inference.upsampler import UpscaledPipeline, UpsamplerPipeline

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_UPSAMPLER",
    "bundle_card",
    "GigaGANPipeline",
    "PIPELINES",
    "PaellaPipeline",
    "bundled_models",
    "bundled_upsamplers",
    "load_pipeline",
    "load_upsampler",
    "model_class",
    "resolve_model",
    "UpscaledPipeline",
    "UpsamplerPipeline",
]
