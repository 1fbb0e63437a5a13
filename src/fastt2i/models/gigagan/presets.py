"""Named GigaGAN generator configs: tiny (tests), emoji64 (2 CPU cores), the Table 1 ablation rows, paper (652.5M)."""

from __future__ import annotations

import dataclasses

from fastt2i.config import Registry
from fastt2i.models.gigagan.config import GigaGANGeneratorConfig
from fastt2i.models.gigagan.upsampler import GigaGANUpsamplerConfig

GIGAGAN_PRESETS: Registry[GigaGANGeneratorConfig] = Registry("gigagan preset")


@GIGAGAN_PRESETS.register("tiny")
def tiny() -> GigaGANGeneratorConfig:
    """16 px, every component on (L2 self/cross-attention, 2 adaptive kernels, 3-level pyramid): for tests.

    For the `t5-tiny-random` text encoder (32-d tokens and pooled); 0.45M parameters; forward+backward at
    batch 8 takes ~0.07 s on one CPU core.
    """
    return GigaGANGeneratorConfig(
        resolution=16, z_dim=32, w_dim=64, text_encoder="t5-tiny-random", text_dim=32, text_width=32,
        text_attn_layers=1, text_heads=2, mapping_layers=2, channels=(64, 64, 32), attention_resolutions=(8, 16),
        attention_dim_head=16, num_kernels=2, pyramid_levels=3,
    )


@GIGAGAN_PRESETS.register("emoji64")
def emoji64() -> GigaGANGeneratorConfig:
    """64 px emoji, MiniLM text (384-d), sized for 2 CPU cores (a 200 kimg run in ~2.5 h).

    Channels 128/64/32/16/16 at 4..64 px (about equal conv cost per resolution), L2 self-attention (with the w token)
    and cross-attention to the words at 8 px (attention at 16 px too costs +10% per training step), adaptive kernel
    banks of 2/4/4 at 8/16/32 px (none at 4 px, where a per-sample kernel costs more than the conv, nor at 64 px),
    5-level pyramid. 1.5M parameters; at batch 32 on 2 CPU threads, G forward 0.14 s without grad and forward+backward
    0.33-0.40 s; a full training step (D + G with every loss) ~1.4 s (median of 5).
    """
    return GigaGANGeneratorConfig(
        resolution=64, z_dim=128, w_dim=256, text_encoder="minilm", text_dim=384, text_width=128,
        text_attn_layers=2, text_heads=4, mapping_layers=4, channels=(128, 64, 32, 16, 16),
        attention_resolutions=(8,), attention_dim_head=32, kernels=(1, 2, 4, 4, 1), pyramid_levels=5,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Table 1 ablation rows (generator flags only; the lead adds the D / loss flags: matching-aware loss, CLIP loss,
# vision-aided D). Each row switches on one more component on top of the previous one, at emoji64 size.


def _ablation_base() -> GigaGANGeneratorConfig:
    """Text-conditioned StyleGAN2 at emoji64 size: t_global only through the mapping, plain convs, one output."""
    return dataclasses.replace(
        emoji64(), attention=False, cross_attention=False, style_token=False, kernels=(), num_kernels=1,
        blocks=(), multiscale=False,
    )


@GIGAGAN_PRESETS.register("ablation-1-stylegan2")
def ablation_stylegan2() -> GigaGANGeneratorConfig:
    """Table 1 row "StyleGAN2": text enters only through M(z, t_global); no attention, 1 kernel, no pyramid."""
    return _ablation_base()


@GIGAGAN_PRESETS.register("ablation-2-attention")
def ablation_attention() -> GigaGANGeneratorConfig:
    """Table 1 row "+ Attention": L2 self-attention (w token) and cross-attention to t_local at 8 px."""
    return dataclasses.replace(_ablation_base(), attention=True, cross_attention=True, style_token=True)


@GIGAGAN_PRESETS.register("ablation-3-adaptive-kernels")
def ablation_adaptive_kernels() -> GigaGANGeneratorConfig:
    """Table 1 row "+ Adaptive conv": emoji64's kernel banks (2 at 8 px, 4 at 16 and 32 px) with adaptive selection."""
    return dataclasses.replace(ablation_attention(), kernels=emoji64().kernels)


@GIGAGAN_PRESETS.register("ablation-4-depth")
def ablation_depth() -> GigaGANGeneratorConfig:
    """Table 1 row "+ Deeper": 3 modulated convs per resolution (2 at 4x4) instead of StyleGAN2's 2 (1)."""
    return dataclasses.replace(ablation_adaptive_kernels(), blocks=(2, 3, 3, 3, 3))


@GIGAGAN_PRESETS.register("ablation-5-multiscale")
def ablation_multiscale() -> GigaGANGeneratorConfig:
    """Table 1 row "+ Multi-scale training": the generator returns the 5-level pyramid 64..4 px."""
    return dataclasses.replace(ablation_depth(), multiscale=True, pyramid_levels=5)


@GIGAGAN_PRESETS.register("paper")
def paper() -> GigaGANGeneratorConfig:
    """GigaGAN's 64 px base text-to-image generator at the paper's size: 652.5M parameters (checked on `meta`).

    Stated in the paper: 64 px output, z_dim 128, CLIP ViT-L/14 text encoder (768-d tokens, frozen, not counted),
    learned attention layers T, mapping M(z, t_global), L2 self- plus cross-attention interleaved with adaptive-kernel
    convs, a 5-level output pyramid, 652.5M generator parameters.
    Not stated in the main text, chosen here (StyleGAN-XL/-T-like widths) and then tuned to land on 652.5M:
    w_dim 1024, 4 mapping layers, T = 4 transformer blocks of width 768 (12 heads), channels 1024/1024/1024/512/256
    at 4/8/16/32/64 px (StyleGAN's halving once features get spatially large), depth 2/3/3/3/3 modulated convs per
    resolution (one more than StyleGAN2's 1/2, the "+ Deeper" row), L2 self- and cross-attention after every conv at
    8, 16, 32 px (64-wide heads), and an adaptive kernel bank that grows with resolution (4, 4, 8, 8, 16 kernels at
    4..64 px). Count: 650.4M (text T 17.7M, mapping 5.1M, synthesis 627.6M), -0.3% from 652.5M.
    """
    return GigaGANGeneratorConfig(
        resolution=64, z_dim=128, w_dim=1024, text_encoder="clip", text_dim=768, text_width=768, text_attn_layers=4,
        text_heads=12, mapping_layers=4, channels=(1024, 1024, 1024, 512, 256), blocks=(2, 3, 3, 3, 3),
        attention_resolutions=(8, 16, 32), attention_dim_head=64, kernels=(4, 4, 8, 8, 16), pyramid_levels=5,
    )


# ---------------------------------------------------------------------------------------------------------------------
# The upsampler (sec. 3.6)

UPSAMPLER_PRESETS: Registry[GigaGANUpsamplerConfig] = Registry("gigagan upsampler preset")


@UPSAMPLER_PRESETS.register("tiny")
def upsampler_tiny() -> GigaGANUpsamplerConfig:
    """16 -> 32 px, one down block, every component on (attention at 8 px, 2 adaptive kernels), for the
    `t5-tiny-random` text encoder (32-d): for tests."""
    return GigaGANUpsamplerConfig(
        input_resolution=16, output_resolution=32, down_blocks=1, channels=(32, 32, 16), layers_per_block=1,
        kernels=(2, 1, 1), attention_resolutions=(8,), attention_dim_head=16, pyramid_levels=2, z_dim=32, w_dim=64,
        text_encoder="t5-tiny-random", text_dim=32, text_width=32, text_attn_layers=1, text_heads=2, mapping_layers=2,
    )


@UPSAMPLER_PRESETS.register("emoji")
def upsampler_emoji() -> GigaGANUpsamplerConfig:
    """64 -> 256 px emoji, MiniLM text: 3 down blocks (64 -> 8 px), 5 upsampling residual blocks (8 -> 256 px).

    Widths 128/128/64/32/16/16 at 8..256 px (conv cost roughly flat per resolution), self- and cross-attention at
    8 and 16 px, adaptive kernel banks of 2/4/4 at 8/16/32 px, a 3-level output pyramid (256, 128, 64) for the
    multi-scale D. The output is bicubic(input) plus the learned residuals, toRGB started at zero: the untrained
    network is bicubic interpolation (5 kimg of the bilinear skip path with random toRGB were still worse than
    bicubic; docs/training-runs.md). Cost: docs/training-runs.md.
    """
    return GigaGANUpsamplerConfig(
        input_resolution=64, output_resolution=256, down_blocks=3, channels=(128, 128, 64, 32, 16, 16),
        layers_per_block=2, kernels=(2, 4, 4, 1, 1, 1), attention_resolutions=(8, 16), attention_dim_head=32,
        skip_filter="bicubic", zero_rgb_init=True, pyramid_levels=3, z_dim=128, w_dim=256, text_encoder="minilm", text_dim=384, text_width=128,
        text_attn_layers=2, text_heads=4, mapping_layers=4,
    )


@UPSAMPLER_PRESETS.register("paper")
def upsampler_paper() -> GigaGANUpsamplerConfig:
    """GigaGAN's 128 -> 1024 px upsampler at the paper's size: 359.1M parameters (checked on `meta`).

    Stated: an asymmetric U-Net of 3 downsampling and 6 upsampling residual blocks, the base model's text
    conditioning (CLIP ViT-L/14, 768-d, frozen, not counted) and style modulation, attention at the low
    resolutions, 359.1M parameters. Chosen here and tuned to land on 359.1M: w_dim 1024, T = 3 blocks of width 768,
    decoder widths 1024/1024/512/256/128/64/32 at 16..1024 px, 2 synthesis layers per block, self- and
    cross-attention at 16 and 32 px, kernel banks 8/8/4/4/2 at 16..256 px, a 4-level pyramid (1024..128).
    Count: 357.7M, -0.4% from 359.1M.
    """
    return GigaGANUpsamplerConfig(
        input_resolution=128, output_resolution=1024, down_blocks=3, channels=(1024, 1024, 512, 256, 128, 64, 32),
        layers_per_block=2, kernels=(8, 8, 4, 4, 2, 1, 1), attention_resolutions=(16, 32), attention_dim_head=64,
        pyramid_levels=4, z_dim=128, w_dim=1024, text_encoder="clip", text_dim=768, text_width=768,
        text_attn_layers=3, text_heads=12, mapping_layers=4,
    )
