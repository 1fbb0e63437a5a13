"""Named StyleGAN-T generator configs: tiny (tests), emoji64 (2 CPU cores), lite / full (the official configs)."""

from __future__ import annotations

import math

from fastt2i.config import Registry
from fastt2i.models.stylegan_t.config import StyleGANTGeneratorConfig

STYLEGAN_T_PRESETS: Registry[StyleGANTGeneratorConfig] = Registry("stylegan-t preset")


@STYLEGAN_T_PRESETS.register("tiny")
def tiny() -> StyleGANTGeneratorConfig:
    """16 px (blocks at 8 and 16 px, 64/32 channels, one residual block each, Fourier input): for tests.

    For the `t5-tiny-random` text encoder (32-d tokens and pooled, so w_dim = 32 + 32); 0.19M parameters
    (186,511), 7 styles; forward+backward at batch 4 takes ~0.02 s on one CPU core.
    """
    return StyleGANTGeneratorConfig(
        resolution=16, z_dim=32, text_encoder="t5-tiny-random", text_dim=32, channels=(64, 32), num_res_blocks=1,
        gn_groups=8,
    )


@STYLEGAN_T_PRESETS.register("emoji64")
def emoji64() -> StyleGANTGeneratorConfig:
    """64 px emoji, MiniLM text (384-d, so w_dim = 64 + 384), sized for 2 CPU cores.

    Channels 128/64/32/16 at 8/16/32/64 px; one residual block at 8, 16 and 32 px and none at 64 px, where the
    block is only its upsampling conv and toRGB (a residual block there costs +40% per G step); no conv clamping
    (the official code clamps only for fp16). 1.74M parameters (1,740,777), 11 styles. Measured at batch 32 on one
    thread (nice 19, min of 10, CPU time): G forward 0.10 s, forward+backward 0.30 s; GigaGAN's emoji64 generator
    in the same harness: 0.11 s / 0.33 s.

    The text part of w is scaled to unit second moment (text_scale = sqrt(384)): with the official unit-norm text
    vector, a first 20 kimg run drew the same image for every prompt (docs/training-runs.md).
    """
    return StyleGANTGeneratorConfig(
        resolution=64, z_dim=64, text_encoder="minilm", text_dim=384, text_scale=math.sqrt(384),
        channels=(128, 64, 32, 16), res_blocks=(1, 1, 1, 0), conv_clamp=None,
    )


# ---------------------------------------------------------------------------------------------------------------------
# The official configs (autonomousvision/stylegan-t, train.py `--cfg lite|full`): z_dim 64, a 2-layer mapping MLP at
# lr x0.01, CLIP ViT-L/14 text features (768-d, so w_dim 832), Fourier input at 8 px, channels
# min(channel_base / r, channel_max), conv clamp 256. Parameter counts below are this implementation's on `meta`;
# they equal the counts of the official networks/generator.py definitions, derived from its parameter shapes
# (see tests/models/stylegan_t/test_stylegan_t_generator.py), without the CLIP text encoder the official G holds
# (123.65M, frozen by default; fastt2i keeps text encoders outside the generator). The paper's ~1B generator is
# full at 512 px (1.02B; 1.14B with CLIP).


def _official(resolution: int, channel_base: int, channel_max: int, num_res_blocks: int) -> StyleGANTGeneratorConfig:
    return StyleGANTGeneratorConfig(
        resolution=resolution, z_dim=64, text_encoder="clip", text_dim=768, channel_base=channel_base,
        channel_max=channel_max, num_res_blocks=num_res_blocks,
    )


@STYLEGAN_T_PRESETS.register("lite")
def lite() -> StyleGANTGeneratorConfig:
    """Official `--cfg lite` at 64 px: channel_base 32768, channel_max 512, 2 residual blocks per resolution.

    74.56M parameters (74,556,835; official 74,556,835), 21 styles.
    """
    return _official(64, 32768, 512, 2)


@STYLEGAN_T_PRESETS.register("lite-512")
def lite_512() -> StyleGANTGeneratorConfig:
    """Official `--cfg lite` at 512 px: 87.04M parameters (87,044,859; official 87,044,859), 36 styles."""
    return _official(512, 32768, 512, 2)


@STYLEGAN_T_PRESETS.register("full")
def full() -> StyleGANTGeneratorConfig:
    """Official `--cfg full` at 64 px: channel_base 65536, channel_max 2048, 3 residual blocks per resolution.

    975.56M parameters (975,556,011; official 975,556,011), 29 styles.
    """
    return _official(64, 65536, 2048, 3)


@STYLEGAN_T_PRESETS.register("full-512")
def full_512() -> StyleGANTGeneratorConfig:
    """Official `--cfg full` at 512 px, the paper's ~1B generator: 1020.50M parameters (1,020,497,609; official
    1,020,497,609), 50 styles."""
    return _official(512, 65536, 2048, 3)
