"""emoji-clip: a small CNN (or ViT) image tower trained LiT-style against the frozen MiniLM text encoder.

Zhai et al. 2022 (LiT, "locked-image/text tuning"), here with the *text* tower locked: the image tower maps images into the
sentence-embedding space of all-MiniLM-L6-v2, so `encode_text` is MiniLM's normalised mean-pooled embedding and needs no
training. The library uses it wherever a paper uses CLIP on emoji data (CLIP score, CLIP losses, vision-aided D, image
conditioning). It is never used as the feature network of FD/KID/precision-recall (that is `emoji-net`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from fastt2i.nn.convnet import ConvTrunk, resize_square
from fastt2i.nn.vit import ViTTower
from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.text import load_text_encoder


@dataclass(frozen=True)
class EmojiCLIPConfig:
    """Args:
    resolution: images are resized to this square size before the trunk.
    channels: widths of the trunk's stages.
    blocks: residual blocks per stage.
    text_encoder: the locked text tower (a `fastt2i.text` spec); its pooled width must equal `embed_dim`.
    embed_dim: joint embedding width (MiniLM's 384).
    logit_scale_init: initial log inverse temperature, log(1/0.07) as in CLIP.
    arch: image tower: "cnn" (`ConvTrunk` of `channels` x `blocks`) or "vit" (`ViTTower`: `patch`, `width`,
        `depth`, `heads`).
    patch, width, depth, heads: the ViT tower's shape (arch="vit").
    eval_only: an evaluation-only network (emoji-clip-eval): every loss, discriminator and conditioning that loads
        image-text models refuses it (`fastt2i.assets.refuse_metric_network`), so that metrics measured with it stay
        independent of training.
    """

    resolution: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 192)
    blocks: int = 2
    text_encoder: str = "minilm"
    embed_dim: int = 384
    logit_scale_init: float = math.log(1 / 0.07)
    arch: str = "cnn"
    patch: int = 8
    width: int = 192
    depth: int = 6
    heads: int = 3
    eval_only: bool = False

    def __post_init__(self) -> None:
        if self.arch not in ("cnn", "vit"):
            raise ValueError(f"EmojiCLIPConfig.arch must be 'cnn' or 'vit', got {self.arch!r}")


@register_model("emoji-clip")
class EmojiCLIP(PretrainedMixin, nn.Module):
    """Image tower + locked text encoder sharing one embedding space (see module docstring).

    Args:
        config: the architecture.
    """

    config_class = EmojiCLIPConfig

    def __init__(self, config: EmojiCLIPConfig = EmojiCLIPConfig()):
        super().__init__()
        self.config = config
        if config.arch == "vit":
            self.trunk: nn.Module = ViTTower(config.resolution, config.patch, config.width, config.depth, config.heads)
        else:
            self.trunk = ConvTrunk(config.channels, config.blocks)
        self.proj = nn.Linear(self.trunk.out_channels, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self._text = None  # the locked text encoder, loaded on first use and kept out of the state dict

    def text_encoder(self):
        if self._text is None:
            enc = load_text_encoder(self.config.text_encoder)
            if enc.pooled_dim != self.config.embed_dim:
                raise ValueError(
                    f"text encoder {self.config.text_encoder!r} has pooled width {enc.pooled_dim}, "
                    f"emoji-clip expects {self.config.embed_dim}"
                )
            object.__setattr__(self, "_text", enc)  # not a registered submodule: never saved, never trained
        return self._text

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [-1,1] -> L2-normalised [B,embed_dim]."""
        x = resize_square(images, self.config.resolution)  # [B,3,R,R]
        return F.normalize(self.proj(self.trunk(x)), dim=-1)  # [B,D]

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Captions -> L2-normalised [B,embed_dim] (MiniLM's sentence embedding)."""
        emb = self.text_encoder().encode(list(texts)).pooled
        return F.normalize(emb.float(), dim=-1).to(self.proj.weight.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)
