"""Paella's f=4 VQGAN tokenizer: pixel-unshuffle + strided-conv encoder, a small quantised latent, a mixing-block decoder.

Layout (as in Paella v3 / Wuerstchen's Paella VQ model, written afresh; level 0 works at H/2, level 1 at H/4):

    encoder  images [B,3,H,W] -> pixel-unshuffle(2) [B,12,H/2,W/2] -> 1x1 conv -> encoder_blocks[0] x MixingBlock
             -> 4x4 stride-2 conv [B,c1,H/4,W/4] -> encoder_blocks[1] x MixingBlock -> 1x1 conv -> BatchNorm
             -> z [B,latent,H/4,W/4]
    quantise z -> VectorQuantizer (codebook_size x latent) -> quantized, indices [B,H/4,W/4]
    decoder  1x1 conv -> decoder_blocks[1] x MixingBlock at H/4 -> 4x4 stride-2 transposed conv
             -> decoder_blocks[0] x MixingBlock at H/2 -> 1x1 conv -> pixel-shuffle(2) -> images [B,3,H,W]

A MixingBlock is a depthwise 3x3 conv (spatial mixing) and a channel MLP (GELU), each behind a parameter-free
LayerNorm and a learned (scale, shift, gate) triple initialised to zero, so every block starts as the identity.
The latent is batch-normalised so the N(0,1)-initialised codebook matches its scale from the start.
The decoder's output is not squashed: reconstructions can slightly exceed [-1,1]; clamp for display.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.config import Registry
from fastt2i.errors import ConfigError
from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.models.paella.quantizer import QuantizerOutput, VectorQuantizer

DOWNSAMPLE = 4  # f: pixel-unshuffle x2 then one stride-2 conv


@dataclass(frozen=True)
class VQGANConfig:
    """Args:
    resolution: nominal square training resolution (any multiple of 4 works at inference).
    in_channels: image channels.
    channels: widths (c0 at H/2, c1 at H/4).
    encoder_blocks: MixingBlocks per level in the encoder (level 0, level 1).
    decoder_blocks: MixingBlocks per level in the decoder (level 0, level 1); the official model puts 12 at level 1.
    mlp_ratio: channel-MLP hidden width as a multiple of the level width.
    latent_channels: code width (4 in the official model).
    codebook_size: number of codes K (8,192 in the paper).
    beta: commitment loss weight.
    restart_dead: reset codes unused for `restart_after` training forwards to recent encoder outputs.
    restart_after: forwards without use before a code is restarted.
    """

    resolution: int = 256
    in_channels: int = 3
    channels: tuple[int, int] = (192, 384)
    encoder_blocks: tuple[int, int] = (1, 1)
    decoder_blocks: tuple[int, int] = (1, 12)
    mlp_ratio: int = 4
    latent_channels: int = 4
    codebook_size: int = 8192
    beta: float = 0.25
    restart_dead: bool = True
    restart_after: int = 100

    def __post_init__(self) -> None:
        if self.resolution <= 0 or self.resolution % DOWNSAMPLE:
            raise ConfigError(f"vqgan.resolution must be a positive multiple of {DOWNSAMPLE}, got {self.resolution}")
        for name in ("channels", "encoder_blocks", "decoder_blocks"):
            v = getattr(self, name)
            if len(v) != 2:
                raise ConfigError(f"vqgan.{name} must have 2 entries (level H/2, level H/4), got {v}")
        if min(self.channels) < 1 or min(self.encoder_blocks) < 0 or min(self.decoder_blocks) < 0:
            raise ConfigError("vqgan.channels must be >= 1 and block counts >= 0")
        if self.in_channels < 1 or self.latent_channels < 1 or self.mlp_ratio < 1:
            raise ConfigError("vqgan.in_channels, latent_channels and mlp_ratio must be >= 1")
        if self.codebook_size < 2:
            raise ConfigError(f"vqgan.codebook_size must be >= 2, got {self.codebook_size}")


def layer_norm_2d(x: torch.Tensor, eps: float = 1e-6, weight: torch.Tensor | None = None,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """LayerNorm over the channels of [B,C,H,W] (parameter-free unless `weight` / `bias` [C] are given); free of
    copies when x is channels-last (the permute is then a contiguous [B,H,W,C] view)."""
    return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], weight, bias, eps).permute(0, 3, 1, 2)


class MixingBlock(nn.Module):
    """Depthwise-conv mixing then channel-MLP mixing, each modulated by zero-initialised (scale, shift, gate).

    ``h = LN(x) * (1 + g0) + g1;  x = x + g2 * dwconv(h);  h = LN(x) * (1 + g3) + g4;  x = x + g5 * mlp(h)``.
    The scalars are folded into the layer norms' affine parameters and into the weights of the depthwise conv and of
    the MLP's last layer (the same function, and the same gradients, with four fewer passes over the feature map).

    Args:
        channels: width C.
        hidden: channel-MLP hidden width.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="replicate", groups=channels)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        self.gammas = nn.Parameter(torch.zeros(6))  # (scale, shift, gate) for the conv and for the MLP

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gammas
        C = x.shape[1]
        h = layer_norm_2d(x, 1e-6, (1 + g[0]).expand(C), g[1].expand(C))  # [B,C,H,W]
        dw = self.depthwise
        x = x + dw._conv_forward(h, dw.weight * g[2], dw.bias * g[2])  # replicate padding, as dw(h) * g2
        h = layer_norm_2d(x, 1e-6, (1 + g[3]).expand(C), g[4].expand(C)).permute(0, 2, 3, 1)  # [B,H,W,C]
        fc1, act, fc2 = self.mlp
        h = F.linear(act(fc1(h)), fc2.weight * g[5], fc2.bias * g[5])  # [B,H,W,C], = mlp(h) * g5
        return x + h.permute(0, 3, 1, 2)  # [B,C,H,W]


@register_model("paella-vqgan")
class VQGAN(PretrainedMixin, nn.Module):
    """Paella's f=4 VQGAN (see module docstring): images [-1,1] <-> code indices [B,H/4,W/4].

    `tokenize` / `decode_tokens` are what the token predictor and the sampler use; call `.eval()` first so the latent
    BatchNorm uses its running statistics (then tokens do not depend on the rest of the batch).

    Args:
        config: the architecture.
    """

    config_class = VQGANConfig

    def __init__(self, config: VQGANConfig = VQGANConfig()):
        super().__init__()
        self.config = config
        c0, c1 = config.channels
        r = config.mlp_ratio
        cin = config.in_channels * 4
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(2),  # [B,4*in,H/2,W/2]
            nn.Conv2d(cin, c0, 1),
            *[MixingBlock(c0, c0 * r) for _ in range(config.encoder_blocks[0])],
            nn.Conv2d(c0, c1, 4, stride=2, padding=1),  # [B,c1,H/4,W/4]
            *[MixingBlock(c1, c1 * r) for _ in range(config.encoder_blocks[1])],
            nn.Conv2d(c1, config.latent_channels, 1, bias=False),
            nn.BatchNorm2d(config.latent_channels),
        )
        self.quantizer = VectorQuantizer(config.codebook_size, config.latent_channels, beta=config.beta,
                                         restart_dead=config.restart_dead, restart_after=config.restart_after)
        self.decoder = nn.Sequential(
            nn.Conv2d(config.latent_channels, c1, 1),
            *[MixingBlock(c1, c1 * r) for _ in range(config.decoder_blocks[1])],
            nn.ConvTranspose2d(c1, c0, 4, stride=2, padding=1),  # [B,c0,H/2,W/2]
            *[MixingBlock(c0, c0 * r) for _ in range(config.decoder_blocks[0])],
            nn.Conv2d(c0, cin, 1),
            nn.PixelShuffle(2),  # [B,in,H,W]
        )

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @staticmethod
    def token_shape(resolution: int | tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the token grid of images of `resolution` (int = square)."""
        h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
        if h % DOWNSAMPLE or w % DOWNSAMPLE or h <= 0 or w <= 0:
            raise ConfigError(f"image size {h}x{w} must be positive multiples of {DOWNSAMPLE}")
        return h // DOWNSAMPLE, w // DOWNSAMPLE

    def _check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.config.in_channels:
            raise ConfigError(f"VQGAN expects images [B,{self.config.in_channels},H,W], got {tuple(images.shape)}")
        self.token_shape(tuple(images.shape[-2:]))

    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Continuous latent z [B,latent,H/4,W/4] (before quantisation) of images [B,3,H,W] in [-1,1].

        The network runs on channels-last maps (copy-free channel norms and MLPs, oneDNN's NHWC convs)."""
        self._check_images(images)
        return self.encoder(images.contiguous(memory_format=torch.channels_last))

    def encode(self, images: torch.Tensor) -> QuantizerOutput:
        """Quantised latent of images [B,3,H,W] in [-1,1] (quantized [B,latent,H/4,W/4], indices [B,H/4,W/4], ...)."""
        return self.quantizer(self.encode_latent(images))

    @torch.no_grad()
    def tokenize(self, images: torch.Tensor) -> torch.Tensor:
        """Code indices [B,H/4,W/4] (long) of images [B,3,H,W] in [-1,1]."""
        z = self.encode_latent(images)  # [B,latent,h,w]
        b, c, h, w = z.shape
        return self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, c)).view(b, h, w)

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        """Images [B,3,4h,4w] (roughly [-1,1], not clamped) from quantised latents [B,latent,h,w]."""
        if quantized.ndim != 4 or quantized.shape[1] != self.config.latent_channels:
            raise ConfigError(f"VQGAN.decode expects [B,{self.config.latent_channels},h,w], got "
                              f"{tuple(quantized.shape)}")
        out = self.decoder(quantized.contiguous(memory_format=torch.channels_last))  # channels-last inside
        return out.contiguous()  # [B,3,4h,4w]

    def decode_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """Images [B,3,4h,4w] (roughly [-1,1], not clamped) from code indices [B,h,w]."""
        if indices.ndim != 3:
            raise ConfigError(f"VQGAN.decode_tokens expects indices [B,h,w], got {tuple(indices.shape)}")
        return self.decode(self.quantizer.embed(indices))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        """(reconstruction [B,3,H,W], QuantizerOutput) of images [B,3,H,W] in [-1,1]; gradients flow straight through."""
        q = self.encode(images)
        return self.decode(q.quantized), q

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the decoder's final conv (for adaptive loss weighting)."""
        return self.decoder[-2].weight


VQGAN_PRESETS: Registry[VQGANConfig] = Registry("VQGAN preset")


@VQGAN_PRESETS.register("tiny")
def _tiny() -> VQGANConfig:
    """16 px -> 4x4 tokens, 64 codes, 8k parameters: for tests (and the token predictor's "random-tiny" VQGAN)."""
    return VQGANConfig(resolution=16, channels=(8, 16), encoder_blocks=(1, 1), decoder_blocks=(1, 1), mlp_ratio=2,
                       codebook_size=64, restart_after=2)


@VQGAN_PRESETS.register("emoji64")
def _emoji64() -> VQGANConfig:
    """64 px -> 16x16 tokens, 1,024 codes of width 4, 0.17M parameters (sized for 2 CPU cores)."""
    return VQGANConfig(resolution=64, channels=(32, 64), encoder_blocks=(1, 1), decoder_blocks=(1, 4), mlp_ratio=2,
                       codebook_size=1024, restart_after=50)


@VQGAN_PRESETS.register("paper")
def _paper() -> VQGANConfig:
    """The official Paella v3 / Wuerstchen f=4 VQGAN: 256 px -> 64x64 tokens, 8,192 codes of width 4, 18.4M params."""
    return VQGANConfig(resolution=256, channels=(192, 384), encoder_blocks=(1, 1), decoder_blocks=(1, 12),
                       latent_channels=4, codebook_size=8192)
