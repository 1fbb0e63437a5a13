"""`UpsamplerPipeline` (text encoder + GigaGAN upsampler, sec. 3.6) and `UpscaledPipeline` (any base model, then it).

    up = UpsamplerPipeline.from_pretrained("runs/upsampler-emoji256")
    hr = up.upscale(lr_images, ["red heart"] * len(lr_images))          # [B,3,256,256] from [B,3,64,64]
    pipe = UpscaledPipeline(load_pipeline("gigagan-emoji64"), up)       # generate(prompts, seeds) at 256 px
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.data.transforms import downsample_antialiased
from fastt2i.errors import ConfigError
from fastt2i.inference.gigagan import parse_dtype
from fastt2i.models import load_pretrained
from fastt2i.models.gigagan.truncation import truncated_ws
from fastt2i.noise import seed_noise
from fastt2i.serialization import read_export_config
from fastt2i.text.base import check_prompts
from fastt2i.text.registry import load_encoder

UPSAMPLER_CLASS = "gigagan-upsampler"


class UpsamplerPipeline(nn.Module):
    """Frozen text encoder + `GigaGANUpsampler`: ``up.upscale(images, prompts, seeds) -> [B,3,R,R]`` in [-1,1].

    Inputs of another size than the upsampler's `input_resolution` are resized to it first (antialiased down, bicubic
    up). Seed i gives z = seed_noise([seed_i]) and the synthesis runs with constant noise, so the output for an
    (image, prompt, seed) triple does not depend on the batch. With ``dtype="bf16"`` the U-Net runs under autocast
    (text path, mapping and the RGB skip path stay fp32).

    Args:
        upsampler: a `GigaGANUpsampler`.
        text_encoder: the frozen encoder its config names (widths must match).
        dtype: "fp32" (default), "bf16" or "fp16".
    """

    def __init__(self, upsampler: nn.Module, text_encoder: nn.Module, dtype: str | torch.dtype | None = None):
        super().__init__()
        cfg = getattr(upsampler, "config", None)
        if cfg is None or not hasattr(cfg, "input_resolution") or not hasattr(upsampler, "synthesis"):
            raise ConfigError(f"UpsamplerPipeline needs a GigaGANUpsampler, got {type(upsampler).__name__}")
        enc = (getattr(text_encoder, "dim", None), getattr(text_encoder, "pooled_dim", None))
        if enc != (cfg.text_dim, cfg.pooled_width):
            raise ConfigError(f"text encoder gives {enc[0]}-d tokens and {enc[1]}-d pooled, but the upsampler expects "
                              f"{cfg.text_dim}-d and {cfg.pooled_width}-d (its config names {cfg.text_encoder!r})")
        self.upsampler = upsampler
        self.text_encoder = text_encoder
        self._dtype = parse_dtype(dtype)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str | None = None,
                        text_encoder: str | nn.Module | None = None, dtype: str | torch.dtype | None = None,
                        **kw: Any) -> UpsamplerPipeline:
        """Load a gigagan-upsampler export (or a run dir with `export/`) and the text encoder it names."""
        p = Path(path).expanduser()
        if (p / "export" / "config.json").is_file():
            p = p / "export"
        meta = read_export_config(p)
        if meta["class"] != UPSAMPLER_CLASS:
            raise ConfigError(f"{p} holds a {meta['class']!r} model, not a {UPSAMPLER_CLASS!r}")
        dtype = parse_dtype(dtype)
        model = load_pretrained(p, device=device)
        if text_encoder is None or isinstance(text_encoder, str):
            text_encoder = load_encoder(text_encoder or meta.get("text_encoder") or model.config.text_encoder, device)
        return cls(model, text_encoder.to(device or "cpu"), dtype=dtype, **kw).eval()

    @property
    def device(self) -> torch.device:
        return next(self.upsampler.parameters()).device

    @property
    def input_resolution(self) -> int:
        return int(self.upsampler.config.input_resolution)

    @property
    def resolution(self) -> int:
        """The output side."""
        return int(self.upsampler.config.output_resolution)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._dtype)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images [B,3,H,W] in [-1,1] -> [B,3,r,r] at the upsampler's input size, fp32 on its device."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"images must be a [B,3,H,W] tensor in [-1,1], got {getattr(images, 'shape', images)}")
        r = self.input_resolution
        x = images.to(self.device, torch.float32)
        if x.shape[-2:] == (r, r):
            return x
        if x.shape[-2] >= r and x.shape[-1] >= r:
            return downsample_antialiased(x, r)
        return F.interpolate(x, size=(r, r), mode="bicubic", align_corners=False).clamp(-1, 1)

    def upscale(self, images: torch.Tensor, prompts: Sequence[str], seeds: Sequence[int] | None = None,
                truncation_psi: float = 1.0) -> torch.Tensor:
        """High-resolution images [B,3,R,R] fp32 in [-1,1] of low-resolution images under their prompts.

        Args:
            images: [B,3,H,W] in [-1,1] (resized to the input size when H, W differ from it).
            prompts: B prompts, or one for every image.
            seeds: B seeds of the upsampler's z (default 0..B-1).
            truncation_psi: GigaGAN's text-conditioned truncation of the upsampler's w (1 = none).
        """
        lr = self.prepare(images)
        b = lr.shape[0]
        prompts = check_prompts(prompts)
        if len(prompts) == 1 and b > 1:
            prompts = prompts * b
        seeds = list(range(b)) if seeds is None else list(seeds)
        if len(prompts) != b or len(seeds) != b:
            raise ConfigError(f"got {b} images, {len(prompts)} prompts and {len(seeds)} seeds: give one of each per "
                              f"image (or one prompt for all)")
        u = self.upsampler
        with torch.inference_mode():
            text = self.text_encoder.encode(prompts).to(self.device)
            z = seed_noise(seeds, (u.z_dim,), device=self.device)  # [B,z_dim]
            t_local, t_mask, t_global = u.text_condition(text.tokens, text.mask, text.pooled)
            ws = truncated_ws(u, z, t_global, truncation_psi)  # [B,num_ws,w_dim] fp32
            with self._autocast():
                out = u.synthesis(lr, ws, t_local, t_mask, noise_mode="const")[0]  # [B,3,R,R]
        with torch.no_grad():
            return out.float().clamp(-1, 1)

    def forward(self, images: torch.Tensor, prompts: Sequence[str], seeds: Sequence[int] | None = None,
                truncation_psi: float = 1.0) -> torch.Tensor:
        return self.upscale(images, prompts, seeds, truncation_psi)


class UpscaledPipeline(nn.Module):
    """A text-to-image pipeline followed by an upsampler, with the same prompts and seeds: ``generate -> [B,3,R,R]``.

    Args:
        base: any pipeline with `generate(prompts, seeds, **kw)` (GigaGAN, StyleGAN-T, Paella's decoded image).
        upsampler: an `UpsamplerPipeline`; the base's images are resized to its input size when they differ.
    """

    def __init__(self, base: nn.Module, upsampler: UpsamplerPipeline):
        super().__init__()
        if not callable(getattr(base, "generate", None)):
            raise ConfigError(f"the base model {type(base).__name__} has no generate(prompts, seeds)")
        self.base = base
        self.upsampler = upsampler

    @property
    def resolution(self) -> int:
        return self.upsampler.resolution

    @property
    def device(self) -> torch.device:
        return self.upsampler.device

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], upscale_psi: float = 1.0,
                 **kw: Any) -> torch.Tensor:
        """The base's images for (prompt i, seed i) (**kw go to the base), upscaled under the same prompt and seed."""
        prompts, seeds = check_prompts(prompts), list(seeds)
        if len(prompts) == 1 and len(seeds) > 1:
            prompts = prompts * len(seeds)
        low = self.base.generate(prompts, seeds, **kw)  # [B,3,r,r]
        return self.upsampler.upscale(low, prompts, seeds, truncation_psi=upscale_psi)

    def forward(self, prompts: Sequence[str], seeds: Sequence[int], **kw: Any) -> torch.Tensor:
        return self.generate(prompts, seeds, **kw)
