"""Tiny Paella components for the pipeline / editing / CLI tests: random VQGAN + denoiser, a stand-in CLIP model."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.inference.paella import PaellaPipeline
from fastt2i.models.paella.denoiser import PaellaDenoiser
from fastt2i.models.paella.presets import PAELLA_PRESETS
from fastt2i.models.paella.vqgan import VQGAN, VQGANConfig

CLIP_DIM = 8


class ToyCLIP(nn.Module):
    """encode_image / encode_text like emoji-clip (L2-normalised [B,E]), tiny and random."""

    def __init__(self, text_encoder):
        super().__init__()
        self.text_encoder = text_encoder
        self.img = nn.Conv2d(3, CLIP_DIM, 3, padding=1)
        self.txt = nn.Linear(text_encoder.pooled_dim, CLIP_DIM)

    def encode_image(self, images):
        return F.normalize(self.img(images).mean(dim=(2, 3)), dim=-1)  # [B,E]

    def encode_text(self, texts):
        pooled = self.text_encoder.encode(list(texts)).pooled.to(self.txt.weight.device)
        return F.normalize(self.txt(pooled), dim=-1)  # [B,E]


def tiny_parts(token_hw: int = 8, clip: bool = False, seed: int = 0):
    """(vqgan, denoiser, text_encoder, clip_model|None): a 4*token_hw px VQGAN with 64 codes and the tiny denoiser."""
    from fastt2i.text import load_text_encoder

    torch.manual_seed(seed)
    vq = VQGAN(VQGANConfig(resolution=4 * token_hw, channels=(8, 16), encoder_blocks=(1, 1), decoder_blocks=(1, 1),
                           codebook_size=64)).eval()
    cfg = dataclasses.replace(PAELLA_PRESETS.build("tiny"), token_shape=(token_hw, token_hw),
                              clip_dim=CLIP_DIM if clip else 0)
    den = PaellaDenoiser(cfg).eval()
    with torch.no_grad():  # the zero-initialised output projection / FiLM would make the logits trivial: perturb
        for p in den.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    enc = load_text_encoder("t5-tiny-random")
    clip_model = ToyCLIP(enc).eval() if clip else None
    return vq, den, enc, clip_model


def tiny_pipeline(token_hw: int = 8, clip: bool = False, seed: int = 0) -> PaellaPipeline:
    vq, den, enc, clip_model = tiny_parts(token_hw, clip, seed)
    return PaellaPipeline(vq, den, enc, clip_model, clip_model_spec="toy" if clip else None).eval()


def images(n: int, res: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images [n,3,res,res] in [-1,1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, res // 4, res // 4, generator=g) * 2 - 1
    return F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)
