"""GigaGAN upsampler trainer (sec. 3.6): the base model's GAN objective with a D that also sees the low-res input.

    fastt2i train upsampler --preset tiny --data emoji256 --run-dir runs/upsampler-tiny
    fastt2i train upsampler --preset emoji --data emoji256 --run-dir runs/upsampler-emoji256

Per batch of real high-resolution images x (train.resolution), optionally cropped to `crop`:
* the low-resolution input is made on the fly, lr = downsample_antialiased(x, side / scale) (the one function the
  metrics use too), and, when `noise_aug_sigma` > 0, Gaussian noise of a per-sample strength sigma ~ U(0, max) is
  added to it (sec. 3.6: it narrows the gap between real and generated low-resolution inputs);
* D (`GigaGANDiscriminator` with image_channels=6) judges every pyramid level of the image concatenated with lr
  resized to that level, so it can tell an output that ignores its input; the loss terms are the base model's
  (multi-scale logistic loss eq. 6, matching-aware eq. 8, lazy R1; CLIP / vision-aided when switched on);
* G adds an LPIPS-style perceptual loss between its output and x, on the feature maps of a frozen network given by
  path (the emoji-clip image tower on emoji data; the FD network emoji-net is refused, `losses.perceptual`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.data.transforms import downsample_antialiased
from fastt2i.errors import ConfigError
from fastt2i.losses.perceptual import PerceptualLoss, load_perceptual_network
from fastt2i.metrics.registry import count_tag
from fastt2i.metrics.upscale import CROP_SIZE, evaluate_upscaler, load_hr_split, parse_upscale_metrics
from fastt2i.models.gigagan import GigaGANDiscriminatorConfig, GigaGANUpsampler, GigaGANUpsamplerConfig
from fastt2i.noise import seed_noise
from fastt2i.training.config import TrainConfig
from fastt2i.training.gigagan import GigaGANRunConfig, GigaGANTrainer
from fastt2i.training.trainer import step_seconds as time_steps


@dataclass(frozen=True)
class UpsamplerRunConfig(GigaGANRunConfig):
    """A GigaGAN upsampler run: `GigaGANRunConfig`'s fields (with `generator` the upsampler) plus:

    Args:
        generator: the upsampler architecture (`output_resolution` = `train.resolution`).
        discriminator: D on (image, low-res input) pairs: `image_channels` 6, resolution = the training side
            (`crop` or train.resolution).
        perceptual_weight: weight of the LPIPS-style loss against the ground truth; 0 = off.
        perceptual_net: its frozen feature network: "emoji-clip" (bundled) or an export path.
        noise_aug_sigma: largest std of the Gaussian noise added to the low-res input (in [-1,1] units); 0 = off.
        crop: train on random square crops of this side of the high-res images (0 = whole images); the network is
            convolutional with attention at fixed depths, so it runs at full size afterwards.
        eval_metrics: what `evaluate` computes every `train.eval_kimg` (`fastt2i.metrics.upscale` names: patchfd,
            fd64, psnr, ssim, lrpsnr) on the first `eval_num` validation images.
        sample_seeds / sample_prompts: unused by the sample grid, which shows the first training batch's images
            (input, output, ground truth), each under its own caption.
    """

    generator: GigaGANUpsamplerConfig = field(default_factory=GigaGANUpsamplerConfig)
    discriminator: GigaGANDiscriminatorConfig = field(
        default_factory=lambda: GigaGANDiscriminatorConfig(resolution=256, pyramid_levels=6,
                                                           channels=(16, 32, 64, 128, 128, 256), image_channels=6))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/upsampler", resolution=256))
    perceptual_weight: float = 1.0
    perceptual_net: str = "emoji-clip"
    noise_aug_sigma: float = 0.1
    crop: int = 0
    eval_metrics: str = "patchfd,fd64,psnr,ssim,lrpsnr"
    eval_num: int = 512

    def _check_resolutions(self) -> None:
        g, d, t = self.generator, self.discriminator, self.train
        if not isinstance(g, GigaGANUpsamplerConfig):
            raise ConfigError(f"generator must be a GigaGANUpsamplerConfig, got {type(g).__name__}")
        if g.output_resolution != t.resolution:
            raise ConfigError(f"generator.output_resolution ({g.output_resolution}) must equal train.resolution "
                              f"({t.resolution})")
        side = self.crop or t.resolution
        if self.crop and (self.crop > t.resolution or self.crop % g.scale):
            raise ConfigError(f"crop ({self.crop}) must be <= train.resolution ({t.resolution}) and a multiple of "
                              f"the scale ({g.scale})")
        lr_side = side // g.scale
        if lr_side % (1 << g.down_blocks) or lr_side >> g.down_blocks < 4:
            raise ConfigError(f"crop {side} gives a {lr_side} px input: it must be a multiple of {1 << g.down_blocks}"
                              f" and >= {4 << g.down_blocks} for {g.down_blocks} down blocks")
        if d.resolution != side:
            raise ConfigError(f"discriminator.resolution ({d.resolution}) must equal the training side ({side}: crop "
                              f"or train.resolution)")
        if d.image_channels != 6:
            raise ConfigError(f"the upsampler's D sees the image and its low-res input: image_channels must be 6, "
                              f"got {d.image_channels}")
        if self.perceptual_weight < 0 or self.noise_aug_sigma < 0:
            raise ConfigError("perceptual_weight and noise_aug_sigma must be >= 0")
        parse_upscale_metrics(self.eval_metrics)
        if self.vision_aided_weight > 0:
            raise ConfigError("the vision-aided D is not wired for the upsampler (its probe works at 64 px); set "
                              "vision_aided_weight=0")
        if self.mode_seeking_weight > 0:
            raise ConfigError("mode_seeking_weight is for base generators: the upsampler's output is pinned to its "
                              "input and ground truth; set mode_seeking_weight=0")


class UpsamplerTrainer(GigaGANTrainer):
    """Trains `GigaGANUpsampler` with `GigaGANTrainer`'s D and G steps, the low-res input as their conditioning."""

    config: UpsamplerRunConfig

    def build_generator(self, config: Any) -> nn.Module:
        return GigaGANUpsampler(config)

    def setup(self) -> None:
        super().setup()
        cfg = self.config
        self.perceptual: PerceptualLoss | None = None
        if cfg.perceptual_weight > 0:
            self.perceptual = PerceptualLoss(load_perceptual_network(cfg.perceptual_net, self.device))
        self._grid_batch: dict[str, Any] | None = None
        self._val: tuple[torch.Tensor, list[str]] | None = None  # the evaluation's ground truth (loaded once)

    # ------------------------------------------------------------------------------------------------ pieces
    def low_res(self, images: torch.Tensor) -> torch.Tensor:
        """The generator's input for real images [B,3,S,S]: antialiased downsampling by the scale."""
        side = images.shape[-1] // self.config.generator.scale
        return downsample_antialiased(images.float(), side)  # [B,3,S/s,S/s]

    def augment(self, lr: torch.Tensor) -> torch.Tensor:
        """Gaussian noise augmentation of the low-res input (sec. 3.6): sigma ~ U(0, noise_aug_sigma) per sample."""
        sigma_max = self.config.noise_aug_sigma
        if sigma_max <= 0:
            return lr
        sigma = torch.rand(lr.shape[0], 1, 1, 1, device=lr.device) * sigma_max  # [B,1,1,1]
        return lr + sigma * torch.randn_like(lr)

    def random_crop(self, images: torch.Tensor) -> torch.Tensor:
        """A random square crop of side `crop` per sample (the same crop offsets for the whole batch when equal)."""
        c = self.config.crop
        if not c or c == images.shape[-1]:
            return images
        b, _, h, w = images.shape
        ys = torch.randint(0, h - c + 1, (b,)).tolist()
        xs = torch.randint(0, w - c + 1, (b,)).tolist()
        return torch.stack([images[i, :, y:y + c, x:x + c] for i, (y, x) in enumerate(zip(ys, xs))])

    def run_synthesis(self, G: nn.Module, ws: torch.Tensor, t_local: torch.Tensor, t_mask: torch.Tensor,
                      cond: torch.Tensor | None) -> list[torch.Tensor]:
        if cond is None:
            raise ConfigError("the upsampler needs its low-resolution input")
        return G.synthesis(cond, ws, t_local, t_mask)

    def _with_input(self, pyramid: list[torch.Tensor], cond: torch.Tensor | None) -> list[torch.Tensor]:
        """Each level [B,3,R,R] with the low-res input resized to R appended as 3 more channels -> [B,6,R,R]."""
        if cond is None:
            raise ConfigError("the upsampler's D judges (image, low-res input) pairs: cond is missing")
        out = []
        for x in pyramid:
            r = x.shape[-1]
            c = cond if cond.shape[-1] == r else F.interpolate(cond.float(), size=(r, r), mode="bilinear",
                                                                align_corners=False, antialias=cond.shape[-1] > r)
            out.append(torch.cat([x, c.to(x.dtype)], dim=1))
        return out

    def d_pyramid(self, pyramid: list[torch.Tensor], cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self._with_input(super().d_pyramid(pyramid), cond)

    def real_pyramid(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        return self._with_input(super().real_pyramid(images), cond)

    def g_extra_losses(self, fake: list[torch.Tensor], images: torch.Tensor | None,
                       cond: torch.Tensor | None) -> dict[str, tuple[float, torch.Tensor]]:
        if self.perceptual is None or images is None:
            return {}
        return {"loss/g_lpips": (self.config.perceptual_weight, self.perceptual(fake[0].float(), images.float()))}

    # ------------------------------------------------------------------------------------------------ steps
    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        captions = list(batch["caption"])
        if self._grid_batch is None:  # the sample grid's fixed inputs: the first batch's images and captions
            n = min(len(captions), 4)  # 3 rows of 4: the logger's grid is about square (4 columns for 12 tiles)
            self._grid_batch = {"image": batch["image"][:n].detach().clone(), "caption": captions[:n]}
        text = self.text(captions)
        images = self.random_crop(batch["image"])
        cond = self.augment(self.low_res(images))
        losses = self.d_step(images, captions, text, step, cond=cond)
        if self.trains_g:
            losses.update(self.g_step(captions, text, cond=cond, images=images))
        return {k: v.detach() for k, v in losses.items()}

    # ------------------------------------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def upscale(self, lr: torch.Tensor, prompts: list[str], seeds: list[int] | None = None) -> torch.Tensor:
        """The EMA upsampler's output [B,3,S,S] for inputs lr [B,3,r,r] in [-1,1] (seed i for row i; const noise)."""
        G = self.G_ema.eval()
        seeds = list(range(len(prompts))) if seeds is None else seeds
        z = seed_noise(seeds, (G.z_dim,), device=self.device)  # [B,z_dim]
        return G(lr.to(self.device), z, self.text(prompts), noise_mode="const")[0].float()

    def sample_grid(self) -> torch.Tensor | None:
        """Rows: the low-res input (nearest-upsampled), the EMA upsampler's output, the ground truth (4 columns)."""
        if self._grid_batch is None:
            return None
        hr = self._grid_batch["image"].float()
        lr = self.low_res(hr)
        out = self.upscale(lr, self._grid_batch["caption"]).clamp(-1, 1)
        near = F.interpolate(lr, size=hr.shape[-2:], mode="nearest")
        return torch.cat([near, out.to(hr.device), hr])

    def evaluate(self) -> dict[str, Any] | None:
        """`fastt2i.metrics.upscale` on the first `eval_num` images of the validation split (held out as training
        holds it out), the EMA upsampler with seed i for image i: patchfd_emojinet, fd64_emojinet, psnr, ssim,
        lrpsnr, each named with its image count (e.g. `patchfd_emojinet_512`)."""
        tc, cfg = self.train_cfg, self.config
        if self._val is None:
            hr, captions, _ = load_hr_split(tc.data, "val", tc.resolution, val_fraction=tc.val_fraction,
                                            split_by=tc.split_by, caption_field=tc.caption_field, num=cfg.eval_num)
            self._val = (hr, captions)
        hr, captions = self._val
        seen = 0

        def upscale(lr: torch.Tensor, caps: list[str]) -> torch.Tensor:
            nonlocal seen
            seeds = list(range(seen, seen + lr.shape[0]))
            seen += lr.shape[0]
            return self.upscale(lr, caps, seeds)

        res = evaluate_upscaler(upscale, hr, captions, scale=cfg.generator.scale, batch_size=16, device=self.device,
                                progress=False, metrics=cfg.eval_metrics, crop_size=min(CROP_SIZE, tc.resolution // 2))
        tag = count_tag(len(captions))
        return {f"{k}_{tag}": v for k, v in res.items()}

    def export(self, path: Path) -> Path:
        """The EMA upsampler's `save_pretrained(path, text_encoder=train.text_encoder)`."""
        self.G_ema.save_pretrained(path, text_encoder=self.train_cfg.text_encoder)
        return path


def step_seconds(config: UpsamplerRunConfig, steps: int = 5, warmup: int = 1) -> list[float]:
    """Wall time of `steps` full upsampler training steps (D + G) on random images and captions."""
    return time_steps(UpsamplerTrainer, config, steps, warmup)

