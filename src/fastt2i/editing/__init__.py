"""Latent editing for GAN generators: functions over ws and text embeddings (truncation, mixing, interpolation)."""

from fastt2i.editing.interpolation import (
    gif_bytes, prompt_interpolation, save_frame_strip, save_gif, seed_interpolation,
)
from fastt2i.editing.mixing import prompt_mixing, style_mixing_grid, synthesize_with_layer_texts
from fastt2i.editing.truncation import conditional_w_mean, truncate, truncated_ws

__all__ = [
    "conditional_w_mean",
    "gif_bytes",
    "prompt_interpolation",
    "prompt_mixing",
    "save_frame_strip",
    "save_gif",
    "seed_interpolation",
    "style_mixing_grid",
    "synthesize_with_layer_texts",
    "truncate",
    "truncated_ws",
]
