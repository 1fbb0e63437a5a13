"""emoji-net: a small ResNet classifier of emoji subcategory and style, whose pooled features serve FD/KID/precision-recall.

It is trained on the emoji64 training split and used *only* as a metric feature network, never as a training signal:
a generator or discriminator trained against the metric's own features would inflate the score without better images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.nn.convnet import ConvTrunk, resize_square


@dataclass(frozen=True)
class EmojiNetConfig:
    """Args:
    resolution: images are resized to this square size before the trunk.
    channels: widths of the trunk's stages; the last is the feature width.
    blocks: residual blocks per stage.
    subcategories: class names of the subcategory head (Unicode emoji subgroups).
    styles: class names of the style head (google, twitter, openmoji, ...).
    """

    resolution: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 2
    subcategories: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()


@register_model("emoji-net")
class EmojiNet(PretrainedMixin, nn.Module):
    """Classifier with a shared trunk and two linear heads; `features` is the pooled trunk output.

    Args:
        config: the architecture and class names.
    """

    config_class = EmojiNetConfig

    def __init__(self, config: EmojiNetConfig):
        super().__init__()
        if not config.subcategories or not config.styles:
            raise ValueError("EmojiNetConfig needs the subcategory and style class names")
        self.config = config
        self.trunk = ConvTrunk(config.channels, config.blocks)
        self.head_subcategory = nn.Linear(self.trunk.out_channels, len(config.subcategories))
        self.head_style = nn.Linear(self.trunk.out_channels, len(config.styles))

    @property
    def feature_dim(self) -> int:
        return self.trunk.out_channels

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [-1,1] -> pooled features [B,C] (the FD/KID feature space)."""
        return self.trunk(resize_square(images, self.config.resolution))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(images)  # [B,C]
        return self.head_subcategory(f), self.head_style(f)  # [B,n_sub], [B,n_style]
