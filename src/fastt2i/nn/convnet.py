"""A small residual CNN trunk (pre-activation ResNet) shared by the emoji-domain networks."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    """Pre-activation residual block: GroupNorm -> SiLU -> conv3x3, twice; 1x1 projection when shapes change.

    Args:
        cin: input channels.
        cout: output channels.
        stride: 2 halves the resolution in the first conv and the skip path.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(32, cin // 4) or 1, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm2 = nn.GroupNorm(min(32, cout // 4) or 1, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.skip = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # [B,cout,H/s,W/s]
        h = self.conv2(F.silu(self.norm2(h)))  # [B,cout,H/s,W/s]
        return self.skip(x) + h


class ConvTrunk(nn.Module):
    """Stem (stride-2 conv) then stages of ResBlocks, each stage after the first halving the resolution.

    Output: globally average-pooled features [B, channels[-1]] (`forward`) or the last feature map (`features_map`).

    Args:
        channels: width of each stage.
        blocks: residual blocks per stage.
        in_channels: image channels.
    """

    def __init__(self, channels: tuple[int, ...], blocks: int, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels[0], 3, 2, 1)
        layers: list[nn.Module] = []
        cin = channels[0]
        for i, c in enumerate(channels):
            for j in range(blocks):
                layers.append(ResBlock(cin, c, stride=2 if (i > 0 and j == 0) else 1))
                cin = c
        self.blocks = nn.Sequential(*layers)
        self.norm = nn.GroupNorm(min(32, cin // 4), cin)
        self.out_channels = cin

    def features_map(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))  # [B,C,H/2^k,W/2^k]
        return F.silu(self.norm(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_map(x).mean(dim=(2, 3))  # [B,C]


def resize_square(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize [B,3,H,W] to [B,3,R,R] (antialiased bilinear when shrinking); no-op at the right size."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
