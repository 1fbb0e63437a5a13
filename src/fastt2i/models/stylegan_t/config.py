"""`StyleGANTGeneratorConfig`: the frozen dataclass that builds a StyleGAN-T generator (mapping and synthesis)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from fastt2i.errors import ConfigError

INPUT_TYPES = ("fourier", "const")


@dataclasses.dataclass(frozen=True)
class StyleGANTGeneratorConfig:
    """Every switch of the StyleGAN-T generator (Sauer et al. 2023, sec. 3.1; the official code where it is silent).

    Resolutions run `start_resolution`, 2x, ..., `resolution` (one synthesis block each); per-resolution tuples
    (`channels`, `res_blocks`) are ordered coarse to fine (index 0 = `start_resolution`) and, when empty, follow the
    rules given per field. The style width is derived: ``w_dim = z_dim + pooled_width`` (w = [MLP(z), t], sec. 3.1).

    Args:
        resolution: output size (power of two >= start_resolution).
        z_dim: latent size (64 in the official code).
        text_encoder: spec string of the frozen text encoder the model expects (kept outside the network).
        text_dim: width D of the encoder's tokens (only checked: StyleGAN-T conditions on the pooled vector alone).
        pooled_dim: width of the encoder's pooled vector (0 = text_dim); it is the text part of w.
        normalize_text: L2-normalise the pooled vector before it enters w (the official code does, CLIP features).
        text_scale: multiplier of the (normalised) pooled vector in w and in D's condition. 1 is the official
            code; there the text part of w has unit L2 norm, so each of its P entries is ~1/sqrt(P) against the
            ~unit entries of MLP(z), and the per-caption variation is smaller still (MiniLM on emoji captions:
            mean pairwise cosine 0.49, varying part 0.037 rms per entry, 27x below the z part). sqrt(P) gives the
            text part unit second moment, like the normalised z (a fastt2i switch, not in the paper).
        mapping_layers: depth of the z MLP (2; hidden and output width z_dim, the last layer linear).
        mapping_lr_mul: learning-rate multiplier of the z MLP (0.01).
        start_resolution: resolution of the first block (the official code starts at 8 px: `base_mult=3`).
        input_type: "fourier" (official: StyleGAN3's Fourier-feature input, rotated/translated by an affine of the
            first w, without StyleGAN3's filters) or "const" (a learned constant, StyleGAN2's 4x4 input; uses no w).
        input_bandwidth: bandwidth of the Fourier input (official: 2; its sampling rate is start_resolution).
        channel_base: channels at resolution r are min(channel_base // r, channel_max) when `channels` is empty.
        channel_max: cap for the rule above.
        channels: explicit channels per resolution (overrides the rule).
        num_res_blocks: residual blocks per resolution (official: 2 for "lite", 3 for "full"); each is a plain
            modulated conv and a residual modulated conv (GroupNorm, conv, layer scale, skip).
        res_blocks: explicit residual blocks per resolution (overrides num_res_blocks; 0 allowed).
        gn_groups: GroupNorm groups of the residual convs (32; fewer when the channels are not divisible).
        layer_scale_init: initial layer scale gamma of the residual branch (1e-5).
        conv_clamp: clamp every conv / toRGB output to +-conv_clamp (official: 256, for fp16); None = no clamping.
        use_noise: StyleGAN2 per-pixel noise inputs.
        w_avg_beta: EMA decay of the tracked w average (used for truncation).
        style_mixing_prob: probability that the trainer mixes two styles (stored for the trainer; the official
            StyleGAN-T training loop does not mix, hence 0).
    """

    resolution: int = 64
    z_dim: int = 64
    text_encoder: str = "minilm"
    text_dim: int = 384
    pooled_dim: int = 0
    normalize_text: bool = True
    text_scale: float = 1.0
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    start_resolution: int = 8
    input_type: Literal["fourier", "const"] = "fourier"
    input_bandwidth: float = 2.0
    channel_base: int = 32768
    channel_max: int = 512
    channels: tuple[int, ...] = ()
    num_res_blocks: int = 2
    res_blocks: tuple[int, ...] = ()
    gn_groups: int = 32
    layer_scale_init: float = 1e-5
    conv_clamp: float | None = 256.0
    use_noise: bool = True
    w_avg_beta: float = 0.995
    style_mixing_prob: float = 0.0

    def __post_init__(self) -> None:
        r, s = self.resolution, self.start_resolution
        if s < 4 or s & (s - 1):
            raise ConfigError(f"start_resolution must be a power of two >= 4, got {s}")
        if r < s or r & (r - 1):
            raise ConfigError(f"resolution must be a power of two >= start_resolution ({s}), got {r}")
        for name in ("z_dim", "text_dim", "mapping_layers", "channel_base", "channel_max", "gn_groups"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pooled_dim", "num_res_blocks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not math.isfinite(self.text_scale) or self.text_scale <= 0:
            raise ConfigError(f"text_scale must be a finite number > 0, got {self.text_scale}")
        if self.mapping_lr_mul <= 0:
            raise ConfigError(f"mapping_lr_mul must be > 0, got {self.mapping_lr_mul}")
        if self.input_type not in INPUT_TYPES:
            raise ConfigError(f"input_type must be one of {INPUT_TYPES}, got {self.input_type!r}")
        if self.input_type == "fourier" and not 0 < self.input_bandwidth < s / 2:
            raise ConfigError(f"input_bandwidth must be in (0, start_resolution/2 = {s / 2}), "
                              f"got {self.input_bandwidth}")
        n = self.num_resolutions
        for name, low in (("channels", 1), ("res_blocks", 0)):
            v = getattr(self, name)
            if v and len(v) != n:
                raise ConfigError(f"{name} needs one entry per resolution {s}..{r} ({n}), got {len(v)}: {v}")
            if any(x < low for x in v):
                raise ConfigError(f"{name} entries must be >= {low}, got {v}")
        if not math.isfinite(self.layer_scale_init) or self.layer_scale_init < 0:
            raise ConfigError(f"layer_scale_init must be a finite number >= 0, got {self.layer_scale_init}")
        if self.conv_clamp is not None and not self.conv_clamp > 0:
            raise ConfigError(f"conv_clamp must be > 0 or None, got {self.conv_clamp}")
        if not 0.0 <= self.w_avg_beta < 1.0 or not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ConfigError("w_avg_beta must be in [0,1) and style_mixing_prob in [0,1]")

    # ------------------------------------------------------------------------------------------ derived sizes
    @property
    def num_resolutions(self) -> int:
        return int(math.log2(self.resolution // self.start_resolution)) + 1

    @property
    def resolutions(self) -> tuple[int, ...]:
        """start_resolution, 2x, ..., resolution."""
        return tuple(self.start_resolution * 2 ** i for i in range(self.num_resolutions))

    def channels_at(self, i: int) -> int:
        """Channels at resolution index i (0 = start_resolution)."""
        if self.channels:
            return self.channels[i]
        return min(self.channel_base // self.resolutions[i], self.channel_max)

    def res_blocks_at(self, i: int) -> int:
        """Residual blocks (pairs of modulated convs) at resolution index i."""
        return self.res_blocks[i] if self.res_blocks else self.num_res_blocks

    def group_norm_groups(self, channels: int) -> int:
        """The GroupNorm groups for `channels`: the largest divisor of channels that is <= gn_groups."""
        return max(g for g in range(1, min(self.gn_groups, channels) + 1) if channels % g == 0)

    @property
    def pooled_width(self) -> int:
        return self.pooled_dim or self.text_dim

    @property
    def w_dim(self) -> int:
        """Style width: the z part (z_dim, the MLP output) followed by the text part (pooled_width)."""
        return self.z_dim + self.pooled_width

    def num_ws_at(self, i: int) -> int:
        """Styles block i reads for its own layers: the input (the Fourier input at block 0, the upsampling conv
        after it; a const input reads none) and 2 per residual block."""
        first = 0 if (i == 0 and self.input_type == "const") else 1
        return first + 2 * self.res_blocks_at(i)

    def style_layout(self) -> list[tuple[int, range, int]]:
        """(resolution, the styles its convs read, the style its toRGB reads) per resolution, coarse to fine; a
        block's toRGB shares its style with the next block's first layer (the official layout)."""
        out, k = [], 0
        for i, res in enumerate(self.resolutions):
            n = self.num_ws_at(i)
            out.append((res, range(k, k + n), k + n))
            k += n
        return out

    @property
    def num_ws(self) -> int:
        """Style inputs (the official layout): the blocks' own styles plus one; block i's toRGB reads the style after
        its own ones (shared with block i+1's first layer, as in StyleGAN2), the last toRGB reads the extra one."""
        return sum(self.num_ws_at(i) for i in range(self.num_resolutions)) + 1
