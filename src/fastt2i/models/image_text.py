"""The frozen image-text model (CLIP stand-in) that losses and Paella's conditioning use: emoji-clip or an export."""

from __future__ import annotations

import torch
from torch import nn

from fastt2i.assets import image_text_model_path, refuse_metric_network
from fastt2i.errors import ConfigError
from fastt2i.serialization import load_pretrained


def load_clip_model(spec: str, device: torch.device | None = None) -> nn.Module:
    """The frozen CLIP stand-in: "emoji-clip" (bundled with fastt2i) or an export directory; eval mode, no grad."""
    model = load_pretrained(image_text_model_path(spec, "clip_model"), device=device)
    refuse_metric_network(model, "clip_model")  # also by the loaded model itself (its class, eval_only)
    if not callable(getattr(model, "encode_image", None)) or not callable(getattr(model, "encode_text", None)):
        raise ConfigError(f"clip_model {spec!r} has no encode_image/encode_text")
    return model.eval().requires_grad_(False)
