"""Inference helpers: per-seed noise and the export format (save_pretrained / from_pretrained / load_pretrained)."""

from fastt2i.inference.noise import parse_seeds, seed_noise
from fastt2i.inference.serialization import (
    FORMAT_VERSION,
    MODEL_CLASSES,
    PretrainedMixin,
    load_pretrained,
    read_export_config,
    register_model,
)

__all__ = [
    "FORMAT_VERSION",
    "MODEL_CLASSES",
    "PretrainedMixin",
    "load_pretrained",
    "parse_seeds",
    "read_export_config",
    "register_model",
    "seed_noise",
]
