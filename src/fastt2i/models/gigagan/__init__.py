"""GigaGAN (Kang et al., CVPR 2023): generator, multi-scale text-conditioned discriminator, upsampler, configs and
presets."""

from fastt2i.models.gigagan.config import GigaGANGeneratorConfig
from fastt2i.models.gigagan.discriminator import GigaGANDiscriminator, GigaGANDiscriminatorConfig
from fastt2i.models.gigagan.generator import GigaGANGenerator, MappingNetwork, SynthesisNetwork, TextPath
from fastt2i.models.gigagan.presets import GIGAGAN_PRESETS, UPSAMPLER_PRESETS
from fastt2i.models.gigagan.upsampler import GigaGANUpsampler, GigaGANUpsamplerConfig
from fastt2i.models.gigagan.truncation import conditional_w_mean, truncate, truncated_ws

__all__ = [
    "GIGAGAN_PRESETS",
    "GigaGANDiscriminator",
    "GigaGANDiscriminatorConfig",
    "GigaGANGenerator",
    "GigaGANGeneratorConfig",
    "GigaGANUpsampler",
    "GigaGANUpsamplerConfig",
    "MappingNetwork",
    "SynthesisNetwork",
    "TextPath",
    "UPSAMPLER_PRESETS",
    "conditional_w_mean",
    "truncate",
    "truncated_ws",
]
