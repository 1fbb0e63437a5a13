"""DiffAugment (Zhao et al. 2020): differentiable colour / translation / cutout augmentation of real and fake images.

Applied to both the real and the generated images that D sees (StyleGAN-T's D applies policy
"color,translation,cutout" to every input), and differentiable so that G's gradient flows through it. Every random
parameter is drawn per sample from `generator`, so a seeded call is reproducible and a batch gets different
augmentations per row. Images are [B,C,H,W] in [-1,1] (the ops are those of the official `training/diffaug.py`,
defined on that range):

* color: brightness x + U(-0.5, 0.5); saturation (x - mean_c) * U(0, 2) + mean_c; contrast
  (x - mean_chw) * U(0.5, 1.5) + mean_chw (mean_c over channels, mean_chw over the whole image).
* translation: shift by an integer in [-round(ratio H), round(ratio H)] (and W), ratio 1/8, zero padding.
* cutout: zero a square of round(ratio H) x round(ratio W) at a random centre (clipped at the border); ratio 1/2 as
  in Zhao et al. (StyleGAN-T's copy of diffaug.py uses 0.2: pass `cutout_ratio=0.2` for that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError

POLICIES = ("color", "translation", "cutout")
DEFAULT_POLICY = "color,translation,cutout"


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation" -> ("color", "translation"); "" -> () (no augmentation); unknown names -> ConfigError."""
    if not isinstance(policy, str):
        raise ConfigError(f"DiffAugment policy must be a string of comma-separated names from {', '.join(POLICIES)}")
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in names if p not in POLICIES]
    if bad:
        raise ConfigError(f"unknown DiffAugment policy {', '.join(map(repr, bad))}; valid names: {', '.join(POLICIES)} "
                          f"(comma-separated, e.g. {DEFAULT_POLICY!r})")
    return names


def _rand(shape: tuple[int, ...], x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0,1) of `shape` drawn on the generator's device, as x's dtype on x's device."""
    dev = generator.device if generator is not None else x.device
    return torch.rand(shape, generator=generator, device=dev).to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """n integers in [low, high) on x's device, drawn on the generator's device."""
    dev = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), generator=generator, device=dev).to(x.device)


def rand_color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample brightness, saturation and contrast jitter of [B,C,H,W] (in that order)."""
    b = x.shape[0]
    x = x + (_rand((b, 1, 1, 1), x, generator) - 0.5)  # brightness: + U(-0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)  # [B,1,H,W]
    x = (x - mean) * (_rand((b, 1, 1, 1), x, generator) * 2) + mean  # saturation: x U(0, 2) around the grey value
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # [B,1,1,1]
    return (x - mean) * (_rand((b, 1, 1, 1), x, generator) + 0.5) + mean  # contrast: x U(0.5, 1.5) around the mean


def rand_translation(x: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each sample of [B,C,H,W] by its own integer offset in [-s, s] (s = round(ratio * size)), zero padding."""
    b, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _randint(-sy, sy + 1, b, x, generator)  # [B]
    tx = _randint(-sx, sx + 1, b, x, generator)  # [B]
    # output pixel (i, j) reads input pixel (i + ty, j + tx), or zero outside: gather from a 1-pixel zero frame
    rows = (torch.arange(h, device=x.device)[None] + ty[:, None] + 1).clamp(0, h + 1)  # [B,H] into the padded rows
    cols = (torch.arange(w, device=x.device)[None] + tx[:, None] + 1).clamp(0, w + 1)  # [B,W]
    pad = F.pad(x, (1, 1, 1, 1))  # [B,C,H+2,W+2]
    out = pad.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2))  # [B,C,H,W+2]
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))  # [B,C,H,W]


def rand_cutout(x: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one round(ratio H) x round(ratio W) square per sample of [B,C,H,W], centred at a random pixel."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _randint(0, h + (1 - ch % 2), b, x, generator)  # [B] centre row (official range)
    cx = _randint(0, w + (1 - cw % 2), b, x, generator)  # [B]
    top, left = cy - ch // 2, cx - cw // 2  # [B]
    i = torch.arange(h, device=x.device)[None]  # [1,H]
    j = torch.arange(w, device=x.device)[None]  # [1,W]
    in_rows = (i >= top[:, None]) & (i < top[:, None] + ch)  # [B,H]
    in_cols = (j >= left[:, None]) & (j < left[:, None] + cw)  # [B,W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [B,H,W]
    return x * keep[:, None].to(x.dtype)  # [B,C,H,W]


def diff_augment(
    x: torch.Tensor,
    policy: str = DEFAULT_POLICY,
    generator: torch.Generator | None = None,
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> torch.Tensor:
    """DiffAugment of a batch: the ops of `policy` in order, random parameters per sample.

    Args:
        x: images [B,C,H,W] in [-1,1] (real or generated; gradients flow through every op).
        policy: comma-separated op names from "color", "translation", "cutout" ("" = identity).
        generator: source of the random parameters (None = the global RNG); a CPU generator works for any device.
        translation_ratio: maximum shift as a fraction of the size (1/8).
        cutout_ratio: cutout side as a fraction of the size (1/2 in Zhao et al., 0.2 in StyleGAN-T's code).

    Returns:
        [B,C,H,W], same dtype and device.
    """
    ops = parse_policy(policy)
    if x.ndim != 4:
        raise ValueError(f"diff_augment expects images [B,C,H,W], got {tuple(x.shape)}")
    for op in ops:
        if op == "color":
            x = rand_color(x, generator)
        elif op == "translation":
            x = rand_translation(x, translation_ratio, generator)
        else:
            x = rand_cutout(x, cutout_ratio, generator)
    return x.contiguous()
