"""LPIPS-style perceptual distance on the feature maps of a frozen network (emoji-clip's image tower on emoji data).

    d(x, y) = sum_l  w_l * mean_{h,w} || f_l(x)/|f_l(x)| - f_l(y)/|f_l(y)| ||^2     (norms along channels)

This is LPIPS (Zhang et al. 2018) *without* its learned linear heads: every channel counts equally (w_l = 1 unless
per-layer weights are given), i.e. the "lin"-free variant the paper reports as the baseline of each backbone. The
learned heads need LPIPS's human-judgement data set, which is not available here.

The feature network is anything with `feature_maps(images [-1,1]) -> list[Tensor]`; `EmojiCLIPFeatureMaps` gives
the intermediate maps of emoji-clip's image tower. emoji-net is refused: it is the FD feature network, and training a
model against the network that judges it would make its FD meaningless.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
from torch import nn

from fastt2i.assets import image_text_model_path
from fastt2i.errors import ConfigError
from fastt2i.models import load_pretrained
from fastt2i.nn.convnet import resize_square


class FeatureMapNetwork(Protocol):
    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]: ...


def unit_normalize(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """[B,C,H,W] divided by its L2 norm along channels (LPIPS's normalisation)."""
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class PerceptualLoss(nn.Module):
    """LPIPS-style distance without learned heads (see module docstring); the feature network is frozen.

    Args:
        feature_net: module with `feature_maps(images) -> list[Tensor [B,C_l,H_l,W_l]]`.
        layer_weights: optional weight per feature map (default 1 each).
    """

    def __init__(self, feature_net: nn.Module, layer_weights: Sequence[float] | None = None):
        super().__init__()
        if not callable(getattr(feature_net, "feature_maps", None)):
            raise ConfigError(f"{type(feature_net).__name__} has no feature_maps(images) method")
        self.net = feature_net.eval().requires_grad_(False)
        self.layer_weights = None if layer_weights is None else tuple(float(w) for w in layer_weights)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.net.eval()  # frozen: never use batch statistics or dropout
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Distance between images x and y [B,3,H,W] in [-1,1]: per image [B] ("none") or its batch mean ("mean").

        Gradients flow to both inputs; the network's weights stay frozen.
        """
        if x.shape != y.shape:
            raise ConfigError(f"PerceptualLoss needs images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        if torch.is_grad_enabled() and x.requires_grad != y.requires_grad:
            # a fixed target (e.g. the real images): its maps need no graph, so it runs apart under no_grad
            grad_in, target = (x, y) if x.requires_grad else (y, x)
            with torch.no_grad():
                ft = self.net.feature_maps(target)
            fg = self.net.feature_maps(grad_in)
            pairs = list(zip(fg, ft))
        else:
            fx = self.net.feature_maps(torch.cat([x, y]))  # one pass for both: list of [2B,C,H,W]
            pairs = [f.chunk(2) for f in fx]
        weights = self.layer_weights or (1.0,) * len(pairs)
        if len(weights) != len(pairs):
            raise ConfigError(f"{len(weights)} layer weights for {len(pairs)} feature maps")
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        for w, (fa, fb) in zip(weights, pairs):
            a, b = unit_normalize(fa.float()), unit_normalize(fb.float())  # [B,C,H,W] each
            total = total + w * (a - b).pow(2).sum(dim=1).mean(dim=(1, 2))  # [B]
        if reduction == "none":
            return total
        if reduction == "mean":
            return total.mean()
        raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")


class EmojiCLIPFeatureMaps(nn.Module):
    """The intermediate maps of emoji-clip's image tower (stem, then the output of every stage), frozen.

    Args:
        emoji_clip: an `EmojiCLIP` (or any model with a `trunk` that is a `fastt2i.nn.convnet.ConvTrunk`).
        resolution: resize inputs to this square size first (None: use them as they are; emoji-clip saw 64 px).
    """

    def __init__(self, emoji_clip: nn.Module, resolution: int | None = None):
        super().__init__()
        trunk = getattr(emoji_clip, "trunk", None)
        if trunk is None or not hasattr(trunk, "stem") or not hasattr(trunk, "blocks"):
            raise ConfigError(f"{type(emoji_clip).__name__} has no convolutional trunk (stem + blocks)")
        self.trunk = trunk
        self.resolution = resolution
        # the last block of each stage: where the stage's map is read
        ends: list[int] = []
        for i, block in enumerate(trunk.blocks):
            if i > 0 and getattr(block.conv1, "stride", (1,))[0] == 2:
                ends.append(i - 1)
        ends.append(len(trunk.blocks) - 1)
        self.stage_ends = tuple(ends)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "EmojiCLIPFeatureMaps":
        return super().train(False)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[stem map, stage 1 map, ...] of images [B,3,H,W] in [-1,1]."""
        x = images if self.resolution is None else resize_square(images, self.resolution)
        h = self.trunk.stem(x)  # [B,c0,H/2,W/2]
        maps = [h]
        for i, block in enumerate(self.trunk.blocks):
            h = block(h)
            if i in self.stage_ends:
                maps.append(h)
        return maps

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.feature_maps(images)


def load_perceptual_network(spec: str, device: torch.device | str | None = None,
                            resolution: int | None = None) -> nn.Module:
    """The frozen feature network of `PerceptualLoss` from a spec.

    Args:
        spec: "emoji-clip" (bundled) or an export directory of an image-text model (emoji-clip-like, or any export
            with `feature_maps`). "emoji-net" (or an emoji-net export) is refused: it is the FD feature network.
        device: where to load it.
        resolution: passed to `EmojiCLIPFeatureMaps` (None: feed images at their own size).
    """
    path = image_text_model_path(spec, "perceptual network")
    model = load_pretrained(path, device=device).float().eval().requires_grad_(False)
    if callable(getattr(model, "feature_maps", None)):
        return model
    if not callable(getattr(model, "encode_image", None)):
        raise ConfigError(f"perceptual network {spec!r} is not an image-text model (no encode_image/feature_maps)")
    return EmojiCLIPFeatureMaps(model, resolution=resolution)
