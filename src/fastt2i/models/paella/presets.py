"""Named Paella token-predictor configs: tiny (tests), emoji64 (2 CPU cores), paper (v3, 1,008M parameters)."""

from __future__ import annotations

from fastt2i.config import Registry
from fastt2i.models.paella.config import PaellaConfig

PAELLA_PRESETS: Registry[PaellaConfig] = Registry("paella preset")


@PAELLA_PRESETS.register("tiny")
def tiny() -> PaellaConfig:
    """4x4 tokens (16 px through an f=4 VQGAN), 64 codes, `t5-tiny-random` text (32-d), no CLIP tokens.

    Two levels (32, 64 channels), one block each, attention at the coarse level: 0.15M parameters; a training step
    at batch 8 takes ~0.03-0.05 s on one (shared) CPU core.
    """
    return PaellaConfig(
        codebook_size=64, token_shape=(4, 4), text_encoder="t5-tiny-random", text_dim=32, clip_dim=0, c_cond=32,
        c_in=16, c_out=16, c_hidden=(32, 64), blocks=(1, 1), level_attention=(False, True), num_heads=2, c_r=16,
        dropout=0.0,
    )


@PAELLA_PRESETS.register("emoji64")
def emoji64() -> PaellaConfig:
    """64 px emoji -> 16x16 tokens of a 1,024-code VQGAN; MiniLM text (384-d) and emoji-clip vectors (384-d).

    Patch 2 gives an 8x8 grid at level 0 (96 channels, 2 blocks, no attention) and 4x4 at level 1 (192 channels,
    3 blocks, attention over the 16 image tokens + text + 8 CLIP tokens), c_cond 256, token embedding 64: 4.7M
    parameters; no dropout (on CPU the dropout masks cost ~10% of the step). Cost on the shared 2-core CPU (nice'd,
    one thread, next to a background training run, batch 32): 1.0-1.3 s per forward+backward+AdamW step of the
    denoiser alone (128/256 channels with 2/4 blocks, 9.1M, took 1.3-1.5 s); the codebook log-softmax over
    32x256x1024 logits is ~15% of it. A full trainer step (emoji64 VQGAN tokenisation ~0.28 s, emoji-clip image
    vectors for the ~10% kept samples) took ~2.2 s under the same load (see the paella emoji64 run preset).
    """
    return PaellaConfig(
        codebook_size=1024, token_shape=(16, 16), text_encoder="minilm", text_dim=384, clip_dim=384,
        num_clip_tokens=4, c_cond=256, c_in=64, c_out=64, c_hidden=(96, 192), blocks=(2, 3),
        level_attention=(False, True), num_heads=4, c_r=64, dropout=0.0,
    )


@PAELLA_PRESETS.register("paper")
def paper() -> PaellaConfig:
    """Paella v3 as trained by the authors (official `src_distributed/train.py`: `Paella(byt5_embd=2560)`).

    256 px -> 64x64 tokens of the 8,192-code VQGAN; ByT5-XL text (2560-d), OpenCLIP ViT-H/14 text and image vectors
    (1024-d) each mapped to 4 tokens, c_cond 1024; levels (640, 1280, 1280) x blocks (6, 16, 6), attention with 16
    heads at the two low-resolution levels, keys/values = image tokens + conditioning tokens; token embedding 256,
    patch 2, c_r 64, dropout 0.1. 1,008.35M parameters counted on the meta device (999.95M without the two CLIP
    mappers); the paper's 1B model.
    """
    return PaellaConfig()
