"""PatchGAN discriminator (pix2pix "NLayerDiscriminator", Isola et al. 2017) for the VQGAN's adversarial loss.

    conv4x4/2 -> LeakyReLU(0.2) -> [conv4x4/2 -> norm -> LeakyReLU] x (layers-1) -> conv4x4/1 -> norm -> LeakyReLU
    -> conv4x4/1 -> logits [B,1,h',w'] (one real/fake logit per overlapping patch)

Widths double per layer from `channels`, capped at 8x. pix2pix uses BatchNorm; "group" (GroupNorm) or "none" avoid
batch statistics (run real and fake through one forward when using BatchNorm so both see the same statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fastt2i.errors import ConfigError


@dataclass(frozen=True)
class PatchGANConfig:
    """Args:
    in_channels: image channels.
    channels: width of the first layer (pix2pix ndf=64).
    layers: stride-2 layers (pix2pix n_layers=3: a 70x70 receptive field).
    norm: "batch" (pix2pix), "group" or "none".
    """

    in_channels: int = 3
    channels: int = 64
    layers: int = 3
    norm: str = "batch"

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.channels < 1 or self.layers < 1:
            raise ConfigError(f"disc.in_channels, channels and layers must be >= 1, got {self}")
        if self.norm not in ("batch", "group", "none"):
            raise ConfigError(f"disc.norm must be 'batch', 'group' or 'none', got {self.norm!r}")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, max(1, channels // 4)), channels)
    return nn.Identity()


class PatchGAN(nn.Module):
    """pix2pix NLayer PatchGAN: images [B,3,H,W] -> patch logits [B,1,h',w'] (see module docstring).

    Args:
        config: the architecture.
    """

    def __init__(self, config: PatchGANConfig = PatchGANConfig()):
        super().__init__()
        self.config = config
        c, bias = config.channels, config.norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, c, 4, 2, 1), nn.LeakyReLU(0.2)]
        cin = c
        for i in range(1, config.layers + 1):
            cout = c * min(2 ** i, 8)
            stride = 2 if i < config.layers else 1
            layers += [nn.Conv2d(cin, cout, 4, stride, 1, bias=bias), _norm(config.norm, cout), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # pix2pix init: N(0, 0.02) convs, N(1, 0.02) norm scales
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ConfigError(f"PatchGAN expects [B,{self.config.in_channels},H,W], got {tuple(images.shape)}")
        return self.net(images)  # [B,1,h',w']
