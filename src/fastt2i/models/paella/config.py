"""`PaellaConfig`: the frozen dataclass that builds the Paella v3 token predictor and its conditioner."""

from __future__ import annotations

import dataclasses

from fastt2i.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PaellaConfig:
    """Every size of the Paella v3 U-Net token predictor (official `src/modules.py` `Paella`), its conditioner too.

    Levels run fine to coarse (index 0 = token grid / patch_size); each level holds `blocks[i]` repetitions of
    ResBlock + TimestepBlock (+ AttnBlock where `level_attention[i]`), mirrored on the way up.

    Args:
        codebook_size: K, the VQGAN codebook size (input vocabulary and output logits).
        token_shape: (h, w) of the token grid the model is trained on (for pipelines; the network is convolutional).
        text_encoder: spec string of the frozen text encoder the model expects (fastt2i.text), recorded in exports.
        text_dim: width D of that encoder's tokens.
        clip_dim: width E of the pooled CLIP text / image vectors; 0 = no CLIP conditioning tokens.
        num_clip_tokens: tokens each CLIP vector is mapped to (4 in the paper).
        c_cond: width of the conditioning tokens (keys/values of the attention blocks).
        c_in: width of the token embedding (before pixel-unshuffle).
        c_out: width before the codebook projection; must equal c_in (the output projection starts as the embedding).
        c_hidden: channels per level.
        blocks: block repetitions per level (down and up).
        level_attention: attention blocks at this level (the paper: only the low-resolution ones).
        num_heads: attention heads (same at every attention level).
        c_r: width of the sinusoidal timestep embedding fed to the FiLM TimestepBlocks.
        patch_size: pixel-unshuffle factor of the token-embedding map.
        kernel_size: depthwise conv kernel of the ResBlocks.
        dropout: dropout inside the ResBlock MLPs and the attention.
        self_attn: keys/values are the image tokens concatenated with the conditioning tokens (True, the paper) or
            the conditioning tokens only.
    """

    codebook_size: int = 8192
    token_shape: tuple[int, int] = (64, 64)
    text_encoder: str = "byt5:google/byt5-xl"
    text_dim: int = 2560
    clip_dim: int = 1024
    num_clip_tokens: int = 4
    c_cond: int = 1024
    c_in: int = 256
    c_out: int = 256
    c_hidden: tuple[int, ...] = (640, 1280, 1280)
    blocks: tuple[int, ...] = (6, 16, 6)
    level_attention: tuple[bool, ...] = (False, True, True)
    num_heads: int = 16
    c_r: int = 64
    patch_size: int = 2
    kernel_size: int = 3
    dropout: float = 0.1
    self_attn: bool = True

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(f"PaellaConfig: {msg}")

        n = len(self.c_hidden)
        need(n >= 1, "c_hidden must name at least one level")
        need(len(self.blocks) == n and len(self.level_attention) == n,
             f"c_hidden, blocks and level_attention need one entry per level, got {self.c_hidden}, {self.blocks}, "
             f"{self.level_attention}")
        need(all(c > 0 for c in self.c_hidden) and all(b >= 1 for b in self.blocks),
             f"channels must be > 0 and blocks >= 1, got {self.c_hidden}, {self.blocks}")
        need(self.codebook_size >= 2, f"codebook_size must be >= 2, got {self.codebook_size}")
        need(self.c_in == self.c_out, f"c_in ({self.c_in}) must equal c_out ({self.c_out}): the output projection "
                                      "is initialised from the token embedding")
        need(self.text_dim > 0 and self.clip_dim >= 0 and self.c_cond > 0 and self.num_clip_tokens >= 1,
             "text_dim and c_cond must be > 0, clip_dim >= 0, num_clip_tokens >= 1")
        need(self.c_r >= 2 and self.patch_size >= 1 and self.kernel_size % 2 == 1,
             f"c_r must be >= 2, patch_size >= 1 and kernel_size odd, got {self.c_r}, {self.patch_size}, "
             f"{self.kernel_size}")
        need(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        if any(self.level_attention):
            need(self.num_heads >= 1, "num_heads must be >= 1")
            for c, a in zip(self.c_hidden, self.level_attention):
                need(not a or c % self.num_heads == 0, f"level width {c} is not divisible by num_heads "
                                                       f"{self.num_heads}")
        need(len(self.token_shape) == 2, f"token_shape must be (h, w), got {self.token_shape}")
        f = self.downsampling
        need(all(s % f == 0 for s in self.token_shape),
             f"token_shape {self.token_shape} must be divisible by patch_size * 2^(levels-1) = {f}")

    @property
    def downsampling(self) -> int:
        """Total downsampling of the token grid at the coarsest level: patch_size * 2^(levels - 1)."""
        return self.patch_size * 2 ** (len(self.c_hidden) - 1)

    @property
    def num_cond_tokens_extra(self) -> int:
        """Conditioning tokens added after the text tokens (CLIP text + CLIP image), 0 without CLIP."""
        return 2 * self.num_clip_tokens if self.clip_dim > 0 else 0
