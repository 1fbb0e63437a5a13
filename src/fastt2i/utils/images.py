"""Image conversions and sample grids without torchvision: tensors in [-1, 1] <-> uint8 arrays <-> PIL."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """[N,3,H,W] float in [-1,1] (torch) or [N,H,W,3] uint8 (numpy) -> uint8 [N,H,W,3]."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 [N,H,W,3], got {images.dtype} {images.shape}")
        return images
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected [N,3,H,W] images, got shape {tuple(images.shape)}")
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # [N,3,H,W]
    return x.permute(0, 2, 3, 1).numpy()  # [N,H,W,3]


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def make_grid(
    images: torch.Tensor | np.ndarray | Sequence[Image.Image],
    nrow: int | None = None,
    pad: int = 2,
    captions: Sequence[str] | None = None,
    background: int = 255,
) -> Image.Image:
    """Tile images into one PIL image, `nrow` per row (default: about square), optional captions under each.

    Args:
        images: [N,3,H,W] float in [-1,1], uint8 [N,H,W,3], or a list of same-size PIL images.
        nrow: images per row.
        pad: pixels between tiles.
        captions: one short text per image, drawn under it (truncated to the tile width).
    """
    if isinstance(images, (list, tuple)) and images and isinstance(images[0], Image.Image):
        arr = np.stack([np.asarray(im.convert("RGB")) for im in images])
    else:
        arr = to_uint8(images)  # [N,H,W,3]
    n, h, w, _ = arr.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    text_h = 12 * (1 + max(w // 64, 0)) if captions else 0
    grid = Image.new("RGB", (nrow * (w + pad) + pad, ncol * (h + text_h + pad) + pad), (background,) * 3)
    draw = ImageDraw.Draw(grid) if captions else None
    for i in range(n):
        r, c = divmod(i, nrow)
        x, y = pad + c * (w + pad), pad + r * (h + text_h + pad)
        grid.paste(Image.fromarray(arr[i]), (x, y))
        if draw is not None and captions is not None and i < len(captions):
            text = captions[i]
            max_chars = max(4, w // 6)
            if len(text) > max_chars:
                text = text[: max_chars - 1] + "…"
            draw.text((x, y + h), text, fill=(0, 0, 0))
    return grid


def save_grid(images, path: str | Path, nrow: int | None = None, **kwargs) -> Path:
    """`make_grid` then save as PNG (parent directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(images, nrow=nrow, **kwargs).save(path)
    return path
