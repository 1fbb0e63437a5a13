"""Paella applications on token grids: variations, inpainting, outpainting, image-to-image, conditioning interpolation.

Every function takes a `fastt2i.inference.paella.PaellaPipeline` and per-seed generators (seed N gives the same result
at any batch size). Images are [B,3,H,W] in [-1,1]; masks are images where white (> 0.5) means "regenerate".
Known tokens are kept at every sampler step (`RenoiseScheduler.step(keep_mask=...)`), so only the masked region is
sampled and renoised. The entry points run under `torch.inference_mode` and encode each prompt once (the
unconditional branch is `null_condition` of the conditional one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError, DataError
from fastt2i.inference.paella import inference_call
from fastt2i.models.paella.conditioning import PaellaCondition, null_condition
from fastt2i.utils.images import from_uint8

F_DOWN = 4  # VQGAN downsampling factor (pixels per token)


# ---------------------------------------------------------------------------------------------------- inputs
def load_image(path: str | Path, resolution: int | None = None) -> torch.Tensor:
    """An image file as [1,3,H,W] in [-1,1] (RGBA composited on white), resized to `resolution` if given.

    Args:
        path: image file readable by PIL.
        resolution: square output size (None = keep the size; then H and W must be multiples of 4).
    """
    from PIL import Image

    try:
        im = Image.open(path)
        im.load()
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    if resolution is not None:
        im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
    import numpy as np

    return from_uint8(np.array(im)[None])  # [1,3,H,W]


def load_mask(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """A mask image as float [1,1,H,W] in [0,1] (grayscale; white = regenerate), resized to `size` (H, W)."""
    from PIL import Image

    try:
        im = Image.open(path).convert("L").resize((size[1], size[0]), Image.Resampling.NEAREST)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read mask {path}: {e}") from None
    return torch.tensor(list(im.getdata()), dtype=torch.float32).view(1, 1, size[0], size[1]) / 255.0


def _image_batch(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise ConfigError(f"image must be a tensor [B,3,H,W] in [-1,1], got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[1] != 3:
        raise ConfigError(f"image must be [B,3,H,W] or [3,H,W], got {tuple(image.shape)}")
    if image.shape[2] % F_DOWN or image.shape[3] % F_DOWN:
        raise ConfigError(f"image size {image.shape[2]}x{image.shape[3]} must be a multiple of {F_DOWN}")
    return image.float()


def mask_to_tokens(mask: torch.Tensor, token_shape: tuple[int, int], threshold: float = 0.5) -> torch.Tensor:
    """Pixel mask -> bool token mask [B,h,w], True = regenerate: a token is regenerated if any pixel of its cell is.

    Args:
        mask: [H,W], [1,H,W], [B,1,H,W] or [B,3,H,W] (channels averaged), values in [0,1] (white = regenerate).
        token_shape: (h, w) of the token grid; the mask is resized to (4h, 4w) first.
        threshold: pixels above it count as masked.
    """
    if not isinstance(mask, torch.Tensor):
        raise ConfigError(f"mask must be a tensor in [0,1], got {type(mask).__name__}")
    m = mask.float()
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[None]
    if m.ndim != 4:
        raise ConfigError(f"mask must be [H,W], [1,H,W] or [B,C,H,W], got {tuple(mask.shape)}")
    m = m.mean(1, keepdim=True)  # [B,1,H,W]
    h, w = token_shape
    if m.shape[-2:] != (F_DOWN * h, F_DOWN * w):
        m = F.interpolate(m, size=(F_DOWN * h, F_DOWN * w), mode="nearest")
    return (F.max_pool2d(m, F_DOWN) > threshold)[:, 0]  # [B,h,w]


def _seeds_and_prompts(prompt: str | None, seeds: Sequence[int]) -> tuple[list[int], list[str] | None]:
    seeds = list(seeds)
    if not seeds:
        raise ConfigError("give at least one seed")
    if prompt is not None and not isinstance(prompt, str):
        raise ConfigError(f"prompt must be a string, got {type(prompt).__name__}")
    return seeds, (None if prompt is None else [prompt] * len(seeds))


def _conds(pipe: Any, prompts: list[str] | None, batch: int, image_embeddings: torch.Tensor | None = None,
           use_clip_text: bool = True) -> tuple[PaellaCondition, PaellaCondition]:
    cond = pipe.condition(prompts=prompts, image_embeddings=image_embeddings, batch=batch, use_clip_text=use_clip_text)
    return cond, null_condition(cond)  # = condition(..., unconditional=True), without encoding the prompts again


def _sample(pipe: Any, cond, uncond, seeds, steps, cfg, temperature, mode, **kw) -> torch.Tensor:
    return pipe.sample_tokens(cond, uncond, seeds, steps=steps, cfg=cfg, temperature=temperature, mode=mode, **kw)


# ---------------------------------------------------------------------------------------------------- applications
@inference_call
def variations(pipe: Any, images: torch.Tensor, seeds: Sequence[int], prompt: str | None = None,
               steps: int | None = None, cfg: float | None = None,
               temperature: float | Sequence[float] | None = None, mode: str | None = None,
               return_tokens: bool = False) -> Any:
    """Image variations: condition on the CLIP image embedding of each input (text dropped unless `prompt`).

    Args:
        pipe: a PaellaPipeline with a CLIP model and a denoiser trained with CLIP image tokens (clip_dim > 0).
        images: [B,3,H,W] in [-1,1] (B = 1 with several seeds: one variation per seed), any size (resized to the
            CLIP model's input by the model itself).
        seeds: one seed per variation.
        prompt: optional text added to the conditioning.
        steps, cfg, temperature, mode: sampler settings (see `PaellaPipeline.generate`).
        return_tokens: also return the tokens [S,h,w].
    """
    images = _image_batch(images)
    seeds, prompts = _seeds_and_prompts(prompt, seeds)
    if images.shape[0] == 1 and len(seeds) > 1:
        images = images.expand(len(seeds), -1, -1, -1)
    if images.shape[0] != len(seeds):
        raise ConfigError(f"got {images.shape[0]} images but {len(seeds)} seeds: give one seed per image")
    if not pipe.clip_dim:
        raise ConfigError("variations need a denoiser trained with CLIP image tokens (clip_dim > 0)")
    emb = pipe.encode_images(images)  # [S,E]
    cond, uncond = _conds(pipe, prompts, len(seeds), emb, use_clip_text=prompt is not None)
    tokens = _sample(pipe, cond, uncond, seeds, steps, cfg, temperature, mode)
    out = pipe.decode(tokens)
    return (out, tokens) if return_tokens else out


@inference_call
def inpaint(pipe: Any, image: torch.Tensor, mask: torch.Tensor, prompt: str, seeds: Sequence[int],
            steps: int | None = None, cfg: float | None = None,
            temperature: float | Sequence[float] | None = None, mode: str | None = None,
            return_tokens: bool = False) -> Any:
    """Regenerate the masked region of one image (white = regenerate); every other token stays the input's.

    Args:
        pipe: a PaellaPipeline.
        image: [1,3,H,W] or [3,H,W] in [-1,1], H and W multiples of 4 (any size the denoiser accepts).
        mask: pixel mask in [0,1] ([H,W], [1,H,W] or [1,C,H,W]), resized to the image; a token is regenerated if
            any pixel of its 4x4 cell is masked.
        prompt: text for the regenerated region.
        seeds: one result per seed.
        steps, cfg, temperature, mode: sampler settings.
        return_tokens: also return (tokens [S,h,w], regenerate mask [h,w] bool).
    """
    image = _image_batch(image)
    if image.shape[0] != 1:
        raise ConfigError(f"inpaint takes one image, got {image.shape[0]}")
    seeds, prompts = _seeds_and_prompts(prompt, seeds)
    known = pipe.tokenize(image)  # [1,h,w]
    regen = mask_to_tokens(mask, tuple(known.shape[1:]))[0].to(known.device)  # [h,w] bool
    S = len(seeds)
    cond, uncond = _conds(pipe, prompts, S)
    tokens = _sample(pipe, cond, uncond, seeds, steps, cfg, temperature, mode,
                     init_tokens=known.expand(S, -1, -1), keep_mask=~regen)
    out = pipe.decode(tokens)
    return (out, tokens, regen) if return_tokens else out


def _outpaint_canvas(known: torch.Tensor, pad: Sequence[int] | None, scale: float | None,
                     image: torch.Tensor, pipe: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(canvas tokens [1,H',W'], keep mask [H',W']) for pad (left, top, right, bottom) pixels or a scale < 1."""
    _, h, w = known.shape
    if (pad is None) == (scale is None):
        raise ConfigError("outpaint needs exactly one of pad=(left, top, right, bottom) pixels or scale=(0, 1)")
    if pad is not None:
        pad = [int(p) for p in pad]
        if len(pad) != 4 or any(p < 0 or p % F_DOWN for p in pad) or not any(pad):
            raise ConfigError(f"pad must be 4 non-negative multiples of {F_DOWN} pixels (left, top, right, bottom), "
                              f"not all zero; got {pad}")
        left, top, right, bottom = (p // F_DOWN for p in pad)
        H, W = h + top + bottom, w + left + right
        inner = known
    else:
        if not 0 < float(scale) < 1:
            raise ConfigError(f"outpaint scale must be in (0, 1), got {scale}")
        H, W = h, w
        ih, iw = max(1, round(h * scale)), max(1, round(w * scale))
        small = F.interpolate(image, size=(F_DOWN * ih, F_DOWN * iw), mode="area")  # [1,3,4ih,4iw]
        inner = pipe.tokenize(small)  # [1,ih,iw]
        top, left = (H - ih) // 2, (W - iw) // 2
    canvas = torch.zeros(1, H, W, dtype=torch.long, device=known.device)
    keep = torch.zeros(H, W, dtype=torch.bool, device=known.device)
    ih, iw = inner.shape[1:]
    canvas[:, top:top + ih, left:left + iw] = inner
    keep[top:top + ih, left:left + iw] = True
    return canvas, keep


@inference_call
def outpaint(pipe: Any, image: torch.Tensor, prompt: str, seeds: Sequence[int],
             pad: Sequence[int] | None = None, scale: float | None = None,
             steps: int | None = None, cfg: float | None = None,
             temperature: float | Sequence[float] | None = None, mode: str | None = None,
             return_tokens: bool = False) -> Any:
    """Extend an image beyond its borders; the original tokens are kept, only the new border is sampled.

    Args:
        pipe: a PaellaPipeline.
        image: [1,3,H,W] or [3,H,W] in [-1,1].
        prompt: text for the whole canvas.
        seeds: one result per seed.
        pad: (left, top, right, bottom) pixels (multiples of 4) added around the image: a larger output; the token
            grid must stay divisible by the denoiser's downsampling.
        scale: alternatively, shrink the image by `scale` in (0,1) and center it in a canvas of the same size.
        steps, cfg, temperature, mode: sampler settings.
        return_tokens: also return (tokens [S,H',W'], keep mask [H',W'] bool: True where the original is).
    """
    image = _image_batch(image)
    if image.shape[0] != 1:
        raise ConfigError(f"outpaint takes one image, got {image.shape[0]}")
    seeds, prompts = _seeds_and_prompts(prompt, seeds)
    known = pipe.tokenize(image)  # [1,h,w]
    canvas, keep = _outpaint_canvas(known, pad, scale, image.to(known.device), pipe)
    f = getattr(getattr(pipe.denoiser, "config", None), "downsampling", 1)
    if canvas.shape[1] % f or canvas.shape[2] % f:
        raise ConfigError(f"the outpainted token grid {tuple(canvas.shape[1:])} must be divisible by {f}: "
                          f"pad by multiples of {F_DOWN * f} pixels")
    S = len(seeds)
    cond, uncond = _conds(pipe, prompts, S)
    tokens = _sample(pipe, cond, uncond, seeds, steps, cfg, temperature, mode,
                     init_tokens=canvas.expand(S, -1, -1), keep_mask=keep)
    out = pipe.decode(tokens)
    return (out, tokens, keep) if return_tokens else out


@inference_call
def img2img(pipe: Any, image: torch.Tensor, prompt: str, seeds: Sequence[int], t_start: float = 0.6,
            steps: int | None = None, cfg: float | None = None,
            temperature: float | Sequence[float] | None = None, mode: str | None = None,
            return_tokens: bool = False) -> Any:
    """Structural editing: the image's tokens renoised to `t_start` (each replaced by its seed's initial random token
    with probability t_start), then the sampler from t_start to 0 (`steps` steps); t_start = 0 returns the input tokens.

    Args:
        pipe: a PaellaPipeline.
        image: [1,3,H,W] or [3,H,W] in [-1,1] (B > 1 images with B seeds also work).
        prompt: the target text.
        seeds: one result per seed.
        t_start: strength in [0,1] (1 = ignore the image, 0 = keep it).
        steps, cfg, temperature, mode: sampler settings.
        return_tokens: also return the tokens [S,h,w].
    """
    image = _image_batch(image)
    seeds, prompts = _seeds_and_prompts(prompt, seeds)
    S = len(seeds)
    if image.shape[0] not in (1, S):
        raise ConfigError(f"got {image.shape[0]} images but {S} seeds: give one image, or one seed per image")
    known = pipe.tokenize(image).expand(S, -1, -1)  # [S,h,w]
    cond, uncond = _conds(pipe, prompts, S)
    tokens = _sample(pipe, cond, uncond, seeds, steps, cfg, temperature, mode, init_tokens=known, t_start=t_start)
    out = pipe.decode(tokens)
    return (out, tokens) if return_tokens else out


def lerp_condition(a: PaellaCondition, b: PaellaCondition, alpha: float | torch.Tensor) -> PaellaCondition:
    """Linear interpolation of two conditionings (same shape): tokens lerped; a position is attended if either end
    attends it (strictly between the ends; at alpha 0 / 1 the mask is a's / b's, so the ends reproduce a and b).

    Args:
        a, b: `PaellaCondition`s with the same [B,L,c] shape (encode both prompts in one batch so L matches).
        alpha: 0 = a, 1 = b; a float or a [B] tensor (one weight per row).
    """
    if a.tokens.shape != b.tokens.shape:
        raise ConfigError(f"cannot interpolate conditionings of shapes {tuple(a.tokens.shape)} and "
                          f"{tuple(b.tokens.shape)}")
    w = torch.as_tensor(alpha, dtype=a.tokens.dtype, device=a.tokens.device).reshape(-1, 1, 1)  # [B|1,1,1]
    mask = None
    if a.mask is not None and b.mask is not None:  # alpha 0 / 1 give exactly a's / b's mask
        mask = (a.mask & (w[:, :, 0] < 1)) | (b.mask & (w[:, :, 0] > 0))  # [B,L]
    return PaellaCondition(torch.lerp(a.tokens, b.tokens, w), mask)


@inference_call
def interpolate(pipe: Any, prompt_a: str, prompt_b: str, num: int = 8, seed: int = 0,
                steps: int | None = None, cfg: float | None = None,
                temperature: float | Sequence[float] | None = None, mode: str | None = None,
                return_tokens: bool = False) -> Any:
    """`num` frames from prompt_a to prompt_b: the conditioning is lerped, the seed (initial tokens and every sampler
    draw) is the same for every frame.

    Args:
        pipe: a PaellaPipeline.
        prompt_a, prompt_b: the end points.
        num: frames (>= 2), alpha = linspace(0, 1, num).
        seed: one seed shared by all frames.
        steps, cfg, temperature, mode: sampler settings.
        return_tokens: also return the tokens [num,h,w].
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 2:
        raise ConfigError(f"interpolation needs num >= 2 frames, got {num!r}")
    both = pipe.condition([prompt_a, prompt_b])  # one batch: same text length L
    a = PaellaCondition(both.tokens[:1].expand(num, -1, -1), both.mask[:1].expand(num, -1))
    b = PaellaCondition(both.tokens[1:].expand(num, -1, -1), both.mask[1:].expand(num, -1))
    uncond = null_condition(a)  # everything dropped: zeroed and masked, as the conditioner does
    cond = lerp_condition(a, b, torch.linspace(0, 1, num))
    tokens = _sample(pipe, cond, uncond, [seed] * num, steps, cfg, temperature, mode)
    out = pipe.decode(tokens)
    return (out, tokens) if return_tokens else out
