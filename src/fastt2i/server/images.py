"""Images in and out of the server: PNG / GIF / base64 encoding, and uploads checked before they are decoded."""

from __future__ import annotations

import base64
import io
import warnings
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fastt2i.editing.paella import load_image, load_mask
from fastt2i.errors import DataError, Fastt2iError
from fastt2i.utils.images import make_grid, to_uint8

UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")


class UploadError(Fastt2iError):
    """An upload that is refused: `status` is the HTTP status to answer (413 too large, 415 not an image, 422)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 [H,W,3] -> PNG file bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)  # fast: these are 64 px images
    return buf.getvalue()


def grid_png(images: np.ndarray, nrow: int) -> bytes:
    """uint8 [N,H,W,3] -> one PNG: the image itself when N = 1, else a grid with `nrow` per row (2 px white gaps)."""
    if len(images) == 1:
        return png_bytes(images[0])
    buf = io.BytesIO()
    make_grid(images, nrow=nrow, pad=2).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def uint8(images: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] in [-1,1] -> uint8 [N,H,W,3]."""
    return to_uint8(images)


def _open_checked(data: bytes, what: str, max_bytes: int, max_pixels: int) -> None:
    """Refuse an upload by its size and its header (format, width x height) before any pixel is decoded."""
    if not data:
        raise UploadError(f"the {what} upload is empty", 422)
    if len(data) > max_bytes:
        raise UploadError(f"the {what} upload has {len(data):,} bytes; the limit is {max_bytes:,}", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below by our own limit
            with Image.open(io.BytesIO(data), formats=list(UPLOAD_FORMATS)) as im:  # reads the header only
                w, h = im.size
    except Image.DecompressionBombError:
        raise UploadError(f"the {what} upload declares over {2 * Image.MAX_IMAGE_PIXELS:,} pixels; the limit is "
                          f"{max_pixels:,}", 413) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise UploadError(f"the {what} upload is not an image ({', '.join(UPLOAD_FORMATS)})", 415) from None
    if w * h > max_pixels:
        raise UploadError(f"the {what} upload is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}", 413)


def read_image(data: bytes, resolution: int, max_bytes: int, max_pixels: int) -> torch.Tensor:
    """An uploaded image as [1,3,R,R] in [-1,1] (`fastt2i.editing.paella.load_image`: alpha on white, resized).

    Args:
        data: the file's bytes.
        resolution: the model's resolution R.
        max_bytes: largest upload.
        max_pixels: most pixels the header may declare.
    """
    _open_checked(data, "image", max_bytes, max_pixels)
    try:
        return load_image(io.BytesIO(data), resolution=resolution)
    except (DataError, OSError, ValueError, Image.DecompressionBombError):
        raise UploadError("the image upload cannot be decoded (truncated or corrupt)", 422) from None


def read_mask(data: bytes, size: Sequence[int], max_bytes: int, max_pixels: int) -> torch.Tensor:
    """An uploaded mask as [1,1,H,W] in [0,1] (`fastt2i.editing.paella.load_mask`: white = regenerate)."""
    _open_checked(data, "mask", max_bytes, max_pixels)
    try:
        return load_mask(io.BytesIO(data), tuple(size))
    except (DataError, OSError, ValueError, Image.DecompressionBombError):
        raise UploadError("the mask upload cannot be decoded (truncated or corrupt)", 422) from None
