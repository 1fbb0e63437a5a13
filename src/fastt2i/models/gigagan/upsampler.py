"""GigaGAN upsampler (Kang et al. 2023, sec. 3.6): a text-conditioned asymmetric U-Net for one-pass super-resolution.

Structure (``s = output_resolution / input_resolution``, a power of two; ``D = down_blocks``):

    lr [B,3,r,r] --stem--> e_r --down_1--> e_{r/2} ... --down_D--> e_{r/2^D}             (encoder, residual blocks)
    e_{r/2^D} --up_1--> (+ skip e_{r/2^{D-1}}) ... --up_D--> (+ skip e_r) --up_{D+1}--> ... --up_{D+log2 s}--> x_{r s}

* The encoder is D StyleGAN2 residual blocks (conv3x3 -> avg-pool -> conv3x3, plus a 1x1 skip), unmodulated: they
  only describe the input.
* The decoder is D + log2(s) upsampling residual blocks ("3 downsampling residual blocks followed by 6 upsampling
  residual blocks", sec. 3.6 and appendix, for 128 -> 1024), each made of the base generator's synthesis layers
  (`SynthesisLayer`: modulated convs with sample-adaptive kernel selection, self-attention with the w token and
  cross-attention to the words at `attention_resolutions`) and a residual 1x1 path; at every resolution the
  encoder has (the input's and below), the encoder's features are added through a 1x1 projection (the U-Net skips).
* Conditioning is the base model's: the frozen encoder's tokens go through the learned text path T (t_local for
  cross-attention, t_global for the mapping), and w = M(z, t_global) modulates every decoder conv (GigaGAN sec. 3.3).
  Its own mapping: real training images have no base-model w, so the upsampler cannot take the base's; a chained
  call gives it the same text and the same per-seed z.
* Output: the StyleGAN2 skip architecture from the input resolution up, rgb_R = up(rgb_{R/2}) + toRGB_R(x_R), started
  from the input image itself when `input_skip` (the network then learns the missing detail, not the colours; or
  bicubic(lr) added at each output level, `skip_filter="bicubic"`, with toRGB started at zero); the
  returned pyramid is rgb at the `pyramid_levels` finest resolutions, finest first (for the multi-scale D, sec. 3.4).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.models.gigagan.discriminator import ResidualDownBlock
from fastt2i.models.gigagan.generator import MappingNetwork, SynthesisLayer, TextPath
from fastt2i.nn.equalized import EqualConv2d
from fastt2i.nn.modulated import NOISE_MODES, ToRGB, upsample2x, upsample_images
from fastt2i.text.base import unpack_text


@dataclasses.dataclass(frozen=True)
class GigaGANUpsamplerConfig:
    """Every switch of the GigaGAN upsampler (sec. 3.6); the text path and mapping are those of the base generator.

    Per-resolution tuples are ordered coarse to fine over the decoder's resolutions: the bottleneck
    ``input_resolution / 2^down_blocks`` up to ``output_resolution`` (``num_resolutions`` entries).

    Args:
        input_resolution: side of the low-resolution input.
        output_resolution: side of the output (input x a power of two >= 2).
        down_blocks: encoder residual blocks D (each halves the resolution); the decoder has D + log2(scale).
        channels: decoder channels per resolution, coarse to fine (the encoder uses the same width at each
            resolution it shares with the decoder).
        layers_per_block: synthesis layers in each upsampling residual block (the first one upsamples).
        kernels: adaptive kernel bank size per decoder resolution (1 = plain modulated conv).
        attention_resolutions: decoder resolutions with self-attention (w token) and cross-attention (t_local).
        attention_dim_head, attention_type, style_token, cross_attention, ff_mult: as in `GigaGANGeneratorConfig`.
        input_skip: add the input to the output (learn a residual); False: the network draws the whole image.
        skip_filter: how the input reaches the output when `input_skip`: "bilinear" starts the StyleGAN2 RGB skip path
            from the input (each level bilinearly upsamples the previous one), "bicubic" adds bicubic(lr) at every
            output level to a skip path of residuals started at zero (the untrained network is then bicubic
            interpolation plus its toRGB terms).
        zero_rgb_init: start every toRGB weight at zero, so that the untrained upsampler is exactly its skip filter
            (training starts from the interpolation baseline instead of random residuals).
        pyramid_levels: output pyramid images (finest first) for the multi-scale D; <= log2(scale) + 1.
        z_dim, w_dim, text_encoder, text_dim, pooled_dim, text_width, text_attn_layers, text_heads, mapping_layers,
        mapping_lr_mul, use_noise, w_avg_beta, style_mixing_prob: as in `GigaGANGeneratorConfig`.
    """

    input_resolution: int = 64
    output_resolution: int = 256
    down_blocks: int = 3
    channels: tuple[int, ...] = (256, 256, 128, 64, 32, 16)
    layers_per_block: int = 2
    kernels: tuple[int, ...] = ()
    attention_resolutions: tuple[int, ...] = (8, 16)
    attention_dim_head: int = 64
    attention_type: str = "l2"
    style_token: bool = True
    cross_attention: bool = True
    ff_mult: int = 2
    input_skip: bool = True
    skip_filter: str = "bilinear"
    zero_rgb_init: bool = False
    pyramid_levels: int = 3
    z_dim: int = 128
    w_dim: int = 512
    text_encoder: str = "minilm"
    text_dim: int = 384
    pooled_dim: int = 0
    text_width: int = 256
    text_attn_layers: int = 2
    text_heads: int = 4
    mapping_layers: int = 4
    mapping_lr_mul: float = 0.01
    use_noise: bool = True
    w_avg_beta: float = 0.995
    style_mixing_prob: float = 0.9

    def __post_init__(self) -> None:
        r, o = self.input_resolution, self.output_resolution
        for name, v in (("input_resolution", r), ("output_resolution", o)):
            if v < 4 or v & (v - 1):
                raise ConfigError(f"{name} must be a power of two >= 4, got {v}")
        if o < 2 * r:
            raise ConfigError(f"output_resolution ({o}) must be at least twice input_resolution ({r})")
        if self.down_blocks < 1 or r >> self.down_blocks < 4:
            raise ConfigError(f"down_blocks={self.down_blocks} must be >= 1 and keep the bottleneck >= 4 px "
                              f"(input {r} px allows at most {int(math.log2(r)) - 2})")
        n = self.num_resolutions
        if len(self.channels) != n or min(self.channels) < 1:
            raise ConfigError(f"channels needs {n} positive widths, one per decoder resolution {self.resolutions}, "
                              f"got {self.channels}")
        if self.kernels and (len(self.kernels) != n or min(self.kernels) < 1):
            raise ConfigError(f"kernels needs {n} entries >= 1 (one per resolution {self.resolutions}), got "
                              f"{self.kernels}")
        bad = [a for a in self.attention_resolutions if a not in self.resolutions]
        if bad:
            raise ConfigError(f"attention_resolutions {bad} are not among the decoder resolutions {self.resolutions}")
        if self.layers_per_block < 1:
            raise ConfigError(f"layers_per_block must be >= 1, got {self.layers_per_block}")
        if not 1 <= self.pyramid_levels <= self.scale_levels + 1:
            raise ConfigError(f"pyramid_levels must be in 1..{self.scale_levels + 1} (output {o} px down to the input "
                              f"{r} px), got {self.pyramid_levels}")
        if self.skip_filter not in ("bilinear", "bicubic"):
            raise ConfigError(f"skip_filter must be 'bilinear' or 'bicubic', got {self.skip_filter!r}")
        if self.attention_type not in ("l2", "dot"):
            raise ConfigError(f"attention_type must be 'l2' or 'dot', got {self.attention_type!r}")
        for name in ("z_dim", "w_dim", "text_dim", "text_width", "mapping_layers", "text_heads", "attention_dim_head"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.text_width % self.text_heads:
            raise ConfigError(f"text_width {self.text_width} must be divisible by text_heads {self.text_heads}")

    # ------------------------------------------------------------------------------------------ derived sizes
    @property
    def scale(self) -> int:
        return self.output_resolution // self.input_resolution

    @property
    def scale_levels(self) -> int:
        """log2(scale): decoder blocks beyond the input resolution."""
        return int(math.log2(self.scale))

    @property
    def num_resolutions(self) -> int:
        """Decoder resolutions: the bottleneck, then one per upsampling block (down_blocks + log2(scale) of them)."""
        return self.down_blocks + self.scale_levels + 1

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Decoder resolutions, coarse to fine: bottleneck .. output_resolution."""
        b = self.input_resolution >> self.down_blocks
        return tuple(b << i for i in range(self.num_resolutions))

    @property
    def pooled_width(self) -> int:
        return self.pooled_dim or self.text_dim

    @property
    def num_ws(self) -> int:
        """Styles: one per synthesis layer (one at the bottleneck, `layers_per_block` per up block) plus one per
        toRGB (input resolution and up)."""
        return 1 + (self.num_resolutions - 1) * self.layers_per_block + self.scale_levels + 1

    # the `SynthesisLayer` interface (index = decoder resolution index, 0 = bottleneck)
    def kernels_at(self, i: int) -> int:
        return self.kernels[i] if self.kernels else 1

    def attention_at(self, i: int) -> bool:
        return self.resolutions[i] in self.attention_resolutions

    def cross_attention_at(self, i: int) -> bool:
        return self.cross_attention and self.resolutions[i] in self.attention_resolutions


class UpBlock(nn.Module):
    """Upsampling residual block: `layers` synthesis layers (the first doubles the resolution) + an upsampled 1x1
    path, summed and scaled by 1/sqrt(2) (the residual form of StyleGAN2's D blocks, on the generator side)."""

    def __init__(self, config: GigaGANUpsamplerConfig, cin: int, cout: int, index: int):
        super().__init__()
        res = config.resolutions[index]
        self.layers = nn.ModuleList(
            SynthesisLayer(config, cin if j == 0 else cout, cout, res, up=(j == 0), index=index)
            for j in range(config.layers_per_block)
        )
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, ws: torch.Tensor, t_local: torch.Tensor, t_mask: torch.Tensor,
                noise_mode: str, generator: torch.Generator | None) -> torch.Tensor:
        """x [B,cin,R/2,R/2], ws [B,layers,w_dim] -> [B,cout,R,R]."""
        s = self.skip(upsample2x(x))  # [B,cout,R,R]
        for j, layer in enumerate(self.layers):
            x = layer(x, ws[:, j], t_local, t_mask, noise_mode, generator)  # [B,cout,R,R]
        return (x + s) * (1 / math.sqrt(2))


@register_model("gigagan-upsampler")
class GigaGANUpsampler(nn.Module, PretrainedMixin):
    """Text-conditioned GAN upsampler (GigaGAN sec. 3.6): ``U(lr, z, text) -> [x_out, x_out/2, ...]``.

    ``U.text_condition`` and ``U.mapping`` are the base generator's text path T and mapping M (own weights);
    ``U.synthesis(lr, ws, t_local, t_mask)`` is the U-Net; ``U(lr, z, text)`` chains them.

    Args:
        config: a `GigaGANUpsamplerConfig` (see `fastt2i.models.gigagan.presets.UPSAMPLER_PRESETS`).
    """

    config_class = GigaGANUpsamplerConfig

    def __init__(self, config: GigaGANUpsamplerConfig):
        super().__init__()
        if not isinstance(config, GigaGANUpsamplerConfig):
            raise ConfigError(f"GigaGANUpsampler needs a GigaGANUpsamplerConfig, got {type(config).__name__}")
        self.config = c = config
        self.z_dim, self.w_dim, self.num_ws = c.z_dim, c.w_dim, c.num_ws
        self.text = TextPath(c)
        self.mapping = MappingNetwork(c)
        n, d = c.num_resolutions, c.down_blocks
        enc = c.channels[d::-1]  # encoder widths at the input resolution, /2, ..., bottleneck
        self.stem = EqualConv2d(3, enc[0], 1, activation="lrelu")
        self.down = nn.ModuleList(ResidualDownBlock(enc[k], enc[k + 1], down=True) for k in range(d))
        self.bottleneck = SynthesisLayer(c, enc[-1], c.channels[0], c.resolutions[0], up=False, index=0)
        self.up = nn.ModuleList(UpBlock(c, c.channels[i - 1], c.channels[i], i) for i in range(1, n))
        # U-Net skips into the decoder at the resolutions the encoder has (decoder indices 1..d)
        self.skips = nn.ModuleList(EqualConv2d(c.channels[i], c.channels[i], 1, bias=False) for i in range(1, d + 1))
        self.torgb = nn.ModuleList(ToRGB(c.channels[i], c.w_dim) for i in range(d, n))
        if c.zero_rgb_init:
            for t in self.torgb:
                nn.init.zeros_(t.conv.weight)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def text_condition(
        self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frozen-encoder output -> (t_local [B,L,C], t_mask [B,L], t_global [B,C])."""
        return self.text(tokens, mask, pooled)

    def synthesis(
        self,
        lr: torch.Tensor,
        ws: torch.Tensor,
        t_local: torch.Tensor,
        t_mask: torch.Tensor,
        noise_mode: str | None = None,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """lr [B,3,r,r] in about [-1,1], ws [B,num_ws,w_dim], t_local [B,L,text_width], t_mask [B,L] -> pyramid of
        `pyramid_levels` images [B,3,R,R], finest (output_resolution) first."""
        c = self.config
        r, d = c.input_resolution, c.down_blocks
        if lr.ndim != 4 or lr.shape[1] != 3 or lr.shape[2] != lr.shape[3]:
            raise ConfigError(f"the low-resolution input must be [B,3,{r},{r}], got {tuple(lr.shape)}")
        side = lr.shape[-1]
        noise_mode = noise_mode or ("random" if self.training else "const")
        if side != r and (side % (1 << d) or side >> d < 4 or noise_mode == "const"):
            # crops (training on patches): any side whose bottleneck is >= 4 px, with random or no noise (the constant
            # noise maps have the configured size)
            raise ConfigError(f"the low-resolution input must be [B,3,{r},{r}] (or, with noise_mode 'random'/'none', "
                              f"a square crop whose side is a multiple of {1 << d} and >= {4 << d}), got "
                              f"{tuple(lr.shape)}")
        b = lr.shape[0]
        if ws.ndim != 3 or ws.shape != (b, self.num_ws, self.w_dim):
            raise ConfigError(f"ws must be [B={b},{self.num_ws},{self.w_dim}], got {tuple(ws.shape)}")
        if t_local.ndim != 3 or t_local.shape[0] != b or t_local.shape[2] != c.text_width:
            raise ConfigError(f"t_local must be [B={b},L,{c.text_width}], got {tuple(t_local.shape)}")
        if t_mask.shape != t_local.shape[:2] or t_mask.dtype != torch.bool:
            raise ConfigError(f"t_mask must be bool [B,L]={tuple(t_local.shape[:2])}, got {tuple(t_mask.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ConfigError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        d, lpb = c.down_blocks, c.layers_per_block
        dt = ws.dtype
        feats = [self.stem(lr.to(dt).contiguous(memory_format=torch.channels_last))]  # e_r [B,C,r,r]
        for blk in self.down:
            feats.append(blk(feats[-1]))  # e_{r/2^k} [B,C_k,r/2^k,r/2^k]
        x = self.bottleneck(feats[-1], ws[:, 0], t_local, t_mask, noise_mode, generator)  # [B,C_0,r/2^d,r/2^d]
        k = 1  # next style index
        bicubic = c.input_skip and c.skip_filter == "bicubic"
        img = lr.float() if c.input_skip and not bicubic else torch.zeros_like(lr, dtype=torch.float32)  # skip at r
        pyramid: list[torch.Tensor] = []
        first_out = c.scale_levels + 1 - c.pyramid_levels  # index (from the input resolution) of the coarsest output
        for i, block in enumerate(self.up, start=1):
            x = block(x, ws[:, k:k + lpb], t_local, t_mask, noise_mode, generator)  # [B,C_i,R_i,R_i]
            k += lpb
            if i <= d:
                x = x + self.skips[i - 1](feats[d - i])  # U-Net skip from the encoder at R_i
            if i >= d:  # the input resolution and up: toRGB into the skip path
                rgb = self.torgb[i - d](x, ws[:, k])  # [B,3,R_i,R_i]
                rgb = rgb.to(torch.promote_types(rgb.dtype, torch.float32))
                k += 1
                img = img + rgb if i == d else upsample_images(img) + rgb  # [B,3,R_i,R_i]
                if i - d >= first_out:
                    out = img
                    if bicubic:  # output = bicubic(lr) + the residual skip path
                        r_i = img.shape[-1]
                        base = lr.float() if r_i == side else F.interpolate(lr.float(), size=(r_i, r_i),
                                                                              mode="bicubic", align_corners=False)
                        out = img + base
                    pyramid.append(out.contiguous())
        return pyramid[::-1]

    def forward(
        self,
        lr: torch.Tensor,
        z: torch.Tensor,
        text: Any,
        truncation_psi: float = 1.0,
        update_w_avg: bool = False,
        noise_mode: str | None = None,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """lr [B,3,r,r], z [B,z_dim], text (TextEmbedding or (tokens, mask, pooled)) -> output pyramid, finest first."""
        tokens, mask, pooled = unpack_text(text)
        if not (lr.shape[0] == z.shape[0] == tokens.shape[0]):
            raise ConfigError(f"batch sizes differ: lr {lr.shape[0]}, z {z.shape[0]}, text {tokens.shape[0]}")
        t_local, t_mask, t_global = self.text_condition(tokens, mask, pooled)
        ws = self.mapping(z, t_global, truncation_psi, None, update_w_avg)  # [B,num_ws,w_dim]
        return self.synthesis(lr, ws, t_local, t_mask, noise_mode, generator)

