"""StyleGAN-T (Sauer et al., ICML 2023): generator, discriminator on frozen backbones, configs and presets."""

from fastt2i.models.stylegan_t.backbones import DinoBackbone, TappedBackbone, emoji_clip_backbone, load_backbone
from fastt2i.models.stylegan_t.config import StyleGANTGeneratorConfig
from fastt2i.models.stylegan_t.discriminator import StyleGANTDiscriminator, StyleGANTDiscriminatorConfig
from fastt2i.models.stylegan_t.generator import (
    FourierInput,
    MappingNetwork,
    SecondOrderModulatedConv2d,
    StyleGANTGenerator,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGB,
    text_vector,
)
from fastt2i.models.stylegan_t.presets import STYLEGAN_T_PRESETS

__all__ = [
    "STYLEGAN_T_PRESETS",
    "DinoBackbone",
    "StyleGANTDiscriminator",
    "StyleGANTDiscriminatorConfig",
    "TappedBackbone",
    "emoji_clip_backbone",
    "load_backbone",
    "FourierInput",
    "MappingNetwork",
    "SecondOrderModulatedConv2d",
    "StyleGANTGenerator",
    "StyleGANTGeneratorConfig",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGB",
    "text_vector",
]
