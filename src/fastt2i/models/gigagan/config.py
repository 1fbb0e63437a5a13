"""`GigaGANGeneratorConfig`: the frozen dataclass that builds a GigaGAN generator (text path, mapping, synthesis)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from fastt2i.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class GigaGANGeneratorConfig:
    """Every switch of the GigaGAN generator (Kang et al. 2023, sec. 3.1-3.4); the Table 1 ablations are presets.

    Resolutions run 4, 8, ..., `resolution`; per-resolution tuples (`channels`, `blocks`, `kernels`) are ordered
    coarse to fine (index 0 = 4x4) and, when empty, follow the rules given per field.

    Args:
        resolution: output size (power of two >= 8).
        z_dim: latent size (128 in the paper).
        w_dim: style size.
        text_encoder: spec string of the frozen text encoder the model expects (kept outside the network).
        text_dim: width D of the encoder's tokens.
        pooled_dim: width of the encoder's pooled vector (0 = text_dim).
        text_width: width C of the learned text path T and of t_local / t_global.
        text_attn_layers: number of learned transformer blocks T on the frozen tokens (sec. 3.3); 0 = projection only.
        text_heads: heads of T.
        mapping_layers: MLP depth of the mapping network M(z, t_global) (sec. 3.3).
        mapping_lr_mul: learning-rate multiplier of the mapping MLP (StyleGAN2: 0.01).
        channel_base: channels at resolution r are min(channel_base // r, channel_max) when `channels` is empty.
        channel_max: cap for the rule above.
        channels: explicit channels per resolution (overrides the rule).
        blocks: modulated conv layers per resolution ("depth"); empty = StyleGAN2's (1 at 4x4, 2 elsewhere).
        attention: interleave self-attention (sec. 3.2) after the convs at `attention_resolutions`.
        attention_resolutions: resolutions with attention layers.
        attention_type: "l2" (negative squared distance, tied Q/K; the paper) or "dot" (ablation).
        attention_dim_head: width per attention head (heads = channels // dim_head, at least 1).
        style_token: condition self-attention on w through one extra key/value token.
        cross_attention: cross-attention to t_local at the attention resolutions (sec. 3.2).
        ff_mult: hidden multiplier of the feed-forward after attention (0 = no feed-forward).
        num_kernels: adaptive kernel bank size for every conv (1 = plain StyleGAN2 conv; sec. 3.2).
        kernels: explicit bank size per resolution (overrides num_kernels).
        multiscale: return the multi-scale image pyramid (sec. 3.4); False returns only the full-size image.
        pyramid_levels: number of pyramid levels L when multiscale (5 for 64 px: 64, 32, 16, 8, 4).
        use_noise: StyleGAN2 per-pixel noise inputs.
        w_avg_beta: EMA decay of the tracked w average (used for truncation).
        style_mixing_prob: probability that the trainer mixes two styles (stored here, used by the trainer).
    """

    resolution: int = 64
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
    channel_base: int = 8192
    channel_max: int = 512
    channels: tuple[int, ...] = ()
    blocks: tuple[int, ...] = ()
    attention: bool = True
    attention_resolutions: tuple[int, ...] = (8, 16, 32)
    attention_type: Literal["l2", "dot"] = "l2"
    attention_dim_head: int = 64
    style_token: bool = True
    cross_attention: bool = True
    ff_mult: int = 2
    num_kernels: int = 1
    kernels: tuple[int, ...] = ()
    multiscale: bool = True
    pyramid_levels: int = 5
    use_noise: bool = True
    w_avg_beta: float = 0.995
    style_mixing_prob: float = 0.9

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ConfigError(f"resolution must be a power of two >= 8, got {r}")
        n = self.num_resolutions
        for name in ("z_dim", "w_dim", "text_dim", "text_width", "mapping_layers", "text_heads", "attention_dim_head",
                     "num_kernels", "channel_base", "channel_max"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("text_attn_layers", "ff_mult", "pooled_dim"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.text_width % self.text_heads:
            raise ConfigError(f"text_width {self.text_width} must be divisible by text_heads {self.text_heads}")
        for name in ("channels", "blocks", "kernels"):
            v = getattr(self, name)
            if v and len(v) != n:
                raise ConfigError(f"{name} needs one entry per resolution 4..{r} ({n}), got {len(v)}: {v}")
            if any(x < 1 for x in v):
                raise ConfigError(f"{name} entries must be >= 1, got {v}")
        bad = [a for a in self.attention_resolutions if a not in self.resolutions]
        if bad:
            raise ConfigError(f"attention_resolutions {bad} are not among the resolutions {self.resolutions}")
        if self.attention_type not in ("l2", "dot"):
            raise ConfigError(f"attention_type must be 'l2' or 'dot', got {self.attention_type!r}")
        if not 1 <= self.pyramid_levels <= n:
            raise ConfigError(f"pyramid_levels must be in 1..{n} for {r} px, got {self.pyramid_levels}")
        if not 0.0 <= self.w_avg_beta < 1.0 or not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ConfigError("w_avg_beta must be in [0,1) and style_mixing_prob in [0,1]")

    # ------------------------------------------------------------------------------------------ derived sizes
    @property
    def num_resolutions(self) -> int:
        return int(math.log2(self.resolution)) - 1

    @property
    def resolutions(self) -> tuple[int, ...]:
        """4, 8, ..., resolution."""
        return tuple(2 ** (i + 2) for i in range(self.num_resolutions))

    def channels_at(self, i: int) -> int:
        """Channels at resolution index i (0 = 4x4)."""
        if self.channels:
            return self.channels[i]
        return min(self.channel_base // self.resolutions[i], self.channel_max)

    def blocks_at(self, i: int) -> int:
        """Modulated conv layers at resolution index i."""
        if self.blocks:
            return self.blocks[i]
        return 1 if i == 0 else 2

    def style_layout(self) -> list[tuple[int, range, int]]:
        """(resolution, the styles its convs read, the style its toRGB reads) per resolution, coarse to fine."""
        out, k = [], 0
        for i, res in enumerate(self.resolutions):
            n = self.blocks_at(i)
            out.append((res, range(k, k + n), k + n))
            k += n + 1
        return out

    def kernels_at(self, i: int) -> int:
        return self.kernels[i] if self.kernels else self.num_kernels

    def attention_at(self, i: int) -> bool:
        return self.attention and self.resolutions[i] in self.attention_resolutions

    def cross_attention_at(self, i: int) -> bool:
        return self.cross_attention and self.resolutions[i] in self.attention_resolutions

    @property
    def num_outputs(self) -> int:
        """Pyramid levels returned by synthesis: `pyramid_levels` when multiscale, else 1."""
        return self.pyramid_levels if self.multiscale else 1

    @property
    def num_ws(self) -> int:
        """Style inputs: one per modulated conv plus one per toRGB (one toRGB per resolution)."""
        return sum(self.blocks_at(i) for i in range(self.num_resolutions)) + self.num_resolutions

    @property
    def pooled_width(self) -> int:
        return self.pooled_dim or self.text_dim
