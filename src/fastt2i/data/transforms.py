"""Image decoding with odd-mode conversion, antialiased resize + center crop, seeded flips, the hash split, and the
antialiased tensor downsampling that makes an upsampler's low-resolution inputs."""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, UnidentifiedImageError

from fastt2i.data.config import MAX_PIXELS
from fastt2i.data.stats import CONV, SIZE, SKIP
from fastt2i.errors import ConfigError, DataError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error we count, not a half-grey image
# Pillow's own MAX_IMAGE_PIXELS is left as it is: decode_image checks the header against `max_pixels` itself

_MASK64 = (1 << 64) - 1


class BadSample(Exception):
    """A sample that cannot be used; `reason` is one of stats.SKIP_REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def key_fraction(key: str) -> float:
    """sha1(key) as a number in [0, 1): the split coordinate of a sample, independent of order and format."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


SKIN_TONES = {"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"}


def emoji_group(key: str) -> str:
    """The emoji a sample key shows, whatever its style and skin tone: `google_1f44d-1f3fb` -> `1f44d`.

    Keys are `<style>_<hexcode>` (emoji64 and the emoji builder); the variation selector fe0f and the skin-tone
    modifiers 1f3fb-1f3ff are dropped, so every style and skin tone of one emoji falls on the same side of the split.
    """
    code = key.rsplit("_", 1)[-1].lower()
    parts = [p for p in code.split("-") if p not in SKIN_TONES and p != "fe0f"]
    return "-".join(parts) or code


SPLIT_BY = ("key", "emoji")


def in_split(key: str, split: str, val_fraction: float, split_by: str = "key") -> bool:
    """True if `key` belongs to `split` ("train", "val" or "all").

    Args:
        split_by: "key" hashes the sample key; "emoji" hashes `emoji_group(key)`, holding out whole emoji.
    """
    if split == "all":
        return True
    is_val = key_fraction(emoji_group(key) if split_by == "emoji" else key) < val_fraction
    return is_val if split == "val" else not is_val


def mix64(*values: int) -> int:
    """Deterministic 64-bit hash of a few integers (splitmix64 chain); the same inputs give the same value anywhere."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        h = z ^ (z >> 31)
    return h


_U64 = np.uint64


def mix64_array(*values: int | np.ndarray) -> np.ndarray:
    """`mix64` element-wise over integer arrays (broadcast): element k is mix64(v0[k], v1[k], ...), as uint64.

    Lets the in-memory loader decide a whole batch's flips at once, bit-identical to the per-sample `flip_decision`.
    """
    h = np.full((), 0x9E3779B97F4A7C15, np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2**64, which is what mix64 spells with & _MASK64
        for v in values:
            v = _U64(int(v) & _MASK64) if isinstance(v, (int, np.integer)) else np.asarray(v).astype(np.uint64)
            h = (h ^ v) + _U64(0x9E3779B97F4A7C15)
            z = (h ^ (h >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
            h = z ^ (z >> _U64(31))
    return np.asarray(h, dtype=np.uint64)


def str_seed(s: str) -> int:
    """A stable integer from a string (Python's hash() is salted per process, so never use it for this)."""
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "big")


FLIP_SALT = 0xF11F


def flip_decision(seed: int, key: str, salt: int) -> bool:
    """Whether to mirror the sample `key` asked for at stream position `salt` (deterministic)."""
    return bool(mix64(seed, str_seed(key), salt, FLIP_SALT) & 1)


def flip_decisions(seed: int, key_seeds: np.ndarray, salts: np.ndarray) -> np.ndarray:
    """`flip_decision` for a batch: key_seeds [B] (`str_seed` of each key, uint64), salts [B] -> bool [B]."""
    return (mix64_array(seed, key_seeds, salts, FLIP_SALT) & _U64(1)).astype(bool)


def _to_8bit(im: Image.Image) -> Image.Image:
    """Mode I / I;16* / F -> L, scaling 16-bit ranges down (Pillow's own convert clips instead of scaling)."""
    arr = np.asarray(im)
    if im.mode == "F":
        arr = arr.astype(np.float64)
        hi = 1.0 if arr.max(initial=0) <= 1.0 else (255.0 if arr.max(initial=0) <= 255 else 65535.0)
        out = np.clip(arr / hi * 255.0 + 0.5, 0, 255)
    else:
        arr = arr.astype(np.int64)
        out = np.clip(arr, 0, 65535) / 257.0 + 0.5 if (im.mode.startswith("I;16") or arr.max(initial=0) > 255) else arr
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "L")


def to_rgb(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Any PIL image -> RGB (first frame, alpha composited on white); returns the conversions applied.

    Conversions: "animated" (more than one frame: first frame kept), "palette" (P), "alpha" (transparency composited
    on white), "grayscale" (1, L, LA), "cmyk" (CMYK), "16bit" (I;16 / I / F), "other_mode" (YCbCr, LAB, HSV, RGBX...).
    """
    conv: list[str] = []
    if getattr(im, "n_frames", 1) > 1:
        conv.append("animated")
        im.seek(0)
    mode = im.mode
    if mode == "P" or mode == "PA":
        conv.append("palette")
        im = im.convert("RGBA") if (mode == "PA" or "transparency" in im.info) else im.convert("RGB")
        mode = im.mode
    elif mode in ("RGB", "L", "LA", "RGBA") and "transparency" in im.info:
        im = im.convert("RGBA" if mode in ("RGB", "RGBA") else "LA")
        mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        conv.append("16bit")
        im, mode = _to_8bit(im), "L"
    if mode in ("1", "L", "LA"):
        conv.append("grayscale")
    elif mode == "CMYK":
        conv.append("cmyk")
    elif mode not in ("RGB", "RGBA", "P", "PA"):
        conv.append("other_mode")
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            conv.append("alpha")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB"), conv
    return (im if im.mode == "RGB" else im.convert("RGB")), conv


def decode_image(src: str | os.PathLike | bytes,
                 max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, list[str], tuple[int, int]]:
    """Open a path or encoded bytes, fully decode it and convert to RGB.

    Args:
        src: a path or the encoded bytes.
        max_pixels: refuse an image whose header declares more than this many pixels, before decoding it (a
            value above PIL.Image.MAX_IMAGE_PIXELS raises Pillow's process-wide limit to it).

    Returns:
        (RGB image, conversions, original (width, height)).

    Raises:
        BadSample: "missing_file", "unreadable" (not an image / unknown format), "truncated" or "too_large".
    """
    if max_pixels > (Image.MAX_IMAGE_PIXELS or max_pixels):  # asked for more than Pillow's own bomb check allows
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        fp: Any = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else open(src, "rb")
    except FileNotFoundError as e:
        raise BadSample("missing_file", str(src)) from e
    except OSError as e:
        raise BadSample("unreadable", str(e)) from e
    with fp:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # EXIF / palette chatter; the pixel limit is enforced just below
                im = Image.open(fp)  # reads the header only
                size = im.size
                if size[0] * size[1] > max_pixels:
                    raise BadSample("too_large", f"{size[0]}x{size[1]} is over max_pixels={max_pixels}")
                im.load()
                rgb, conv = to_rgb(im)
        except BadSample:
            raise
        except Image.DecompressionBombError as e:  # over 2x Pillow's limit: refused inside Image.open
            raise BadSample("too_large", str(e)) from e
        except UnidentifiedImageError as e:
            raise BadSample("unreadable", "not a recognised image") from e
        except (OSError, SyntaxError, EOFError) as e:
            msg = str(e).lower()
            reason = "truncated" if ("truncated" in msg or "premature" in msg or "end of file" in msg
                                     or isinstance(e, EOFError)) else "unreadable"
            raise BadSample(reason, str(e)) from e
        except Exception as e:  # decoders raise many types on corrupt data; never let one escape a worker
            raise BadSample("unreadable", f"{type(e).__name__}: {e}") from e
    return rgb, conv, size


def resize_center_crop(im: Image.Image, resolution: int) -> Image.Image:
    """Resize the shorter side to `resolution` (Lanczos, antialiased) then center-crop to a square."""
    w, h = im.size
    if (w, h) == (resolution, resolution):
        return im
    s = resolution / min(w, h)
    nw, nh = max(resolution, round(w * s)), max(resolution, round(h * s))
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.LANCZOS, reducing_gap=3.0 if s < 0.5 else None)
    left, top = (nw - resolution) // 2, (nh - resolution) // 2
    return im.crop((left, top, left + resolution, top + resolution))


def to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 [3,H,W] in [-1,1]."""
    arr = np.asarray(im, dtype=np.uint8)  # [H,W,3]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def uint8_to_float_table() -> np.ndarray:
    """float32 [256]: the value `to_tensor` gives each uint8 level (computed by `to_tensor` itself)."""
    levels = np.repeat(np.arange(256, dtype=np.uint8).reshape(1, 256, 1), 3, axis=2)  # [1,256,3]
    return to_tensor(Image.fromarray(levels, "RGB"))[0, 0].numpy().copy()  # [256]


def usable_caption(caption: Any, missing_caption: str = "skip") -> str | None:
    """The caption a sample is served with, or None when it is missing and `missing_caption` is "skip".

    None and NaN (a blank table cell) are missing; with missing_caption="empty" they become "".
    """
    if caption is None or (isinstance(caption, float) and math.isnan(caption)):
        return "" if missing_caption == "empty" else None
    return str(caption)


def make_sample(src: Any, caption: str | None, key: str, *, resolution: int, flip: bool = False,
                min_size: int = 0, missing_caption: str = "skip", max_pixels: int = MAX_PIXELS,
                text_conv: Sequence[str] = (), as_uint8: bool = False) -> dict[str, Any]:
    """Decode + convert + crop one sample; never raises on bad data, returns a skip marker instead.

    Args:
        src: path, encoded bytes, a PIL image or a uint8 array [H,W,C] / [H,W].
        caption: the caption, or None when it is missing.
        key: the sample key.
        resolution: output side R.
        flip: mirror left-right.
        min_size: skip when the shorter original side is smaller.
        missing_caption: "skip" or "empty".
        max_pixels: skip ("too_large") an encoded image declaring more pixels.
        text_conv: conversions already applied to the caption (e.g. "caption_cp1252"), counted with the image's.
        as_uint8: return the image as the uint8 array [R,R,3] that the float tensor is made from (the in-memory
            loader stores these and converts at serving time, with the same arithmetic as `to_tensor`).

    Returns:
        {"image": [3,R,R] float32 in [-1,1] (as_uint8: uint8 [R,R,3]), "caption", "key", "_conv", "_size"} or
        {"key", "_skip": reason}.
    """
    caption = usable_caption(caption, missing_caption)
    if caption is None:
        return {"key": key, SKIP: "missing_caption"}
    try:
        if isinstance(src, Image.Image):
            size = src.size
            im, conv = to_rgb(src)
        elif isinstance(src, np.ndarray):
            arr = src if src.ndim == 3 and src.shape[-1] != 1 else src.reshape(src.shape[0], src.shape[1])
            pil = Image.fromarray(arr)
            size = pil.size
            im, conv = to_rgb(pil)
        else:
            im, conv, size = decode_image(src, max_pixels)
        if min_size and min(size) < min_size:
            return {"key": key, SKIP: "too_small"}
        im = resize_center_crop(im, resolution)
        if flip:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        image = np.array(im, dtype=np.uint8) if as_uint8 else to_tensor(im)  # [R,R,3] / [3,R,R]
        return {"image": image, "caption": caption, "key": key, CONV: (*conv, *text_conv), SIZE: tuple(size)}
    except BadSample as e:
        return {"key": key, SKIP: e.reason}
    except Exception:  # noqa: BLE001 - anything else from a decoder is still just a bad file
        return {"key": key, SKIP: "unreadable"}


def downsample_antialiased(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The one way low-resolution inputs are made from high-resolution images (upsampler training and its metrics).

    Bicubic (Keys, a = -0.5) with antialiasing: the kernel is widened by the scale factor, as PIL's
    `Image.resize(..., BICUBIC)` and MATLAB's `imresize` do, so a 4x reduction averages over a 16-pixel-wide support
    instead of aliasing. The result is clamped to [-1, 1] (bicubic lobes overshoot slightly at hard edges), computed
    in float32 and returned in the input's dtype.

    Args:
        images: [B,C,H,W] float images in [-1, 1].
        size: output side S (square) or (h, w); each no larger than the input's (this never upsamples).

    Returns:
        [B,C,h,w] in [-1, 1].
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"downsample_antialiased: expected float images [B,C,H,W] in [-1,1], got {got}")
    hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    h, w = images.shape[-2:]
    if not (0 < hw[0] <= h and 0 < hw[1] <= w):
        raise ConfigError(f"downsample_antialiased: size {hw} must be positive and no larger than the input {h}x{w}")
    if hw == (h, w):
        return images
    x = F.interpolate(images.float(), size=hw, mode="bicubic", align_corners=False, antialias=True)  # [B,C,h,w]
    return x.clamp_(-1.0, 1.0).to(images.dtype)
