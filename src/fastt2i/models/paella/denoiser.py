"""Paella v3 token predictor: a convolutional U-Net over codebook tokens with FiLM timesteps and conditioned attention.

Architecture (Rampas et al., official v3 `src/modules.py`): token embedding + LayerNorm -> pixel-unshuffle by
`patch_size` + 1x1 conv; levels of [ResBlock (depthwise conv, LayerNorm, MLP 4x with GELU + GlobalResponseNorm),
TimestepBlock (FiLM of a sinusoidal t embedding, zero-initialised), AttnBlock (low-resolution levels only; keys/values
= the normalised image tokens concatenated with the conditioning tokens)] x blocks, 2x2 strided convs down, transposed
convs up with one skip concatenated into the first ResBlock of each up level; LayerNorm + 1x1 conv + pixel-shuffle,
then LayerNorm + a 1x1 projection to the codebook whose weight starts as a copy of the input embedding.

Usage (the conditioner is part of the module, so one export holds both):

    cond = model.conditioner(text_tokens, text_mask, clip_text, clip_image)     # PaellaCondition(tokens, mask)
    logits = model(noised_tokens, t, *cond)                                       # [B,K,h,w]
    uncond = null_condition(cond)                                                 # classifier-free guidance input

Init facts the tests check: the final 1x1 conv before pixel-shuffle (`clf`) is zero, so every logit is exactly 0 at
init (uniform prediction); the FiLM mappers are zero, so t has no effect until they learn; the output projection
equals the token embedding at init.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.models.paella.conditioning import PaellaCondition, PaellaConditioner
from fastt2i.models.paella.config import PaellaConfig


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a [B,C,H,W] map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2 GRN on channels-last maps [B,H,W,C]: x + gamma * (x * N(x)) + beta, gamma = beta = 0 at init."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)  # [B,1,1,C]
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)  # [B,1,1,C]
        return self.gamma * (x * nx) + self.beta + x


def _mlp(c: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c, c * 4), nn.GELU(), GlobalResponseNorm(c * 4), nn.Dropout(dropout),
                         nn.Linear(c * 4, c))


class ResBlock(nn.Module):
    """Depthwise conv (optionally over [x, skip]) -> LayerNorm -> channel MLP, residual."""

    def __init__(self, c: int, c_skip: int = 0, kernel_size: int = 3, dropout: float = 0.0):
        super().__init__()
        self.depthwise = nn.Conv2d(c + c_skip, c, kernel_size, padding=kernel_size // 2, groups=c)
        self.norm = LayerNorm2d(c, elementwise_affine=False, eps=1e-6)
        self.channelwise = _mlp(c, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        res = x  # [B,C,H,W]
        if skip is not None:
            x = torch.cat([x, skip], dim=1)  # [B,C+C_skip,H,W]
        x = self.norm(self.depthwise(x)).permute(0, 2, 3, 1)  # [B,H,W,C]
        return self.channelwise(x).permute(0, 3, 1, 2) + res  # [B,C,H,W]


class TimestepBlock(nn.Module):
    """FiLM: x * (1 + a(t)) + b(t) from the timestep embedding; the mapper starts at zero (identity)."""

    def __init__(self, c: int, c_r: int):
        super().__init__()
        self.mapper = nn.Linear(c_r, c * 2)

    def forward(self, x: torch.Tensor, r_embed: torch.Tensor) -> torch.Tensor:
        a, b = self.mapper(r_embed)[:, :, None, None].chunk(2, dim=1)  # [B,C,1,1] each
        return x * (1 + a) + b


class AttnBlock(nn.Module):
    """Pre-norm multi-head attention of the image tokens over [image tokens; conditioning tokens], residual.

    Args:
        c: image width.
        c_cond: conditioning width (mapped to c by SiLU + Linear, per block).
        num_heads: heads.
        self_attn: include the image tokens among the keys/values.
        dropout: attention dropout (training only).
    """

    def __init__(self, c: int, c_cond: int, num_heads: int, self_attn: bool = True, dropout: float = 0.0):
        super().__init__()
        self.num_heads, self.self_attn, self.dropout = num_heads, self_attn, dropout
        self.norm = LayerNorm2d(c, elementwise_affine=False, eps=1e-6)
        self.kv_mapper = nn.Sequential(nn.SiLU(), nn.Linear(c_cond, c))
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.Linear(c, c)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, cond_mask: torch.Tensor | None) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B,HW,C]
        kv = self.kv_mapper(cond)  # [B,L,C]
        mask = cond_mask
        if self.self_attn:
            kv = torch.cat([h, kv], dim=1)  # [B,HW+L,C]
            if mask is not None:
                mask = torch.cat([mask.new_ones(B, H * W), mask], dim=1)  # [B,HW+L]
        q = self.to_q(h).view(B, H * W, self.num_heads, -1).transpose(1, 2)  # [B,nh,HW,dh]
        k = self.to_k(kv).view(B, kv.shape[1], self.num_heads, -1).transpose(1, 2)  # [B,nh,N,dh]
        v = self.to_v(kv).view(B, kv.shape[1], self.num_heads, -1).transpose(1, 2)  # [B,nh,N,dh]
        empty = None
        if mask is not None:
            empty = ~mask.any(dim=1)  # [B] samples with nothing to attend to (only without self_attn)
            mask = (mask | empty[:, None])[:, None, None, :]  # [B,1,1,N]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)  # [B,nh,HW,dh]
        out = self.to_out(out.transpose(1, 2).reshape(B, H * W, C))  # [B,HW,C]
        if empty is not None and bool(empty.any()):
            out = out * (~empty)[:, None, None].to(out.dtype)  # no keys: no update
        return x + out.transpose(1, 2).reshape(B, C, H, W)


def timestep_embedding(t: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding [B,dim] of t [B] in [0, 1] (scaled by max_positions, as the official `gen_r_embedding`)."""
    r = t.float() * max_positions
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(max_positions) / (half - 1)))
    emb = r[:, None] * freqs[None, :]  # [B,half]
    emb = torch.cat([emb.sin(), emb.cos()], dim=1)  # [B,2*half]
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


@register_model("paella")
class PaellaDenoiser(PretrainedMixin, nn.Module):
    """The Paella v3 token predictor; see the module docstring for the layout and the calling convention.

    Args:
        config: a `PaellaConfig`.
    """

    config_class = PaellaConfig

    def __init__(self, config: PaellaConfig):
        super().__init__()
        self.config = cfg = config
        self.conditioner = PaellaConditioner(cfg.text_dim, cfg.clip_dim, cfg.c_cond, cfg.num_clip_tokens)
        self.token_embedding = nn.Embedding(cfg.codebook_size, cfg.c_in)
        self.token_norm = nn.LayerNorm(cfg.c_in, elementwise_affine=False, eps=1e-6)
        p, ch = cfg.patch_size, cfg.c_hidden
        self.embedding = nn.Sequential(nn.PixelUnshuffle(p), nn.Conv2d(cfg.c_in * p * p, ch[0], 1),
                                       LayerNorm2d(ch[0], elementwise_affine=False, eps=1e-6))

        def level_blocks(i: int, up: bool) -> list[nn.Module]:
            out: list[nn.Module] = []
            for j in range(cfg.blocks[i]):
                skip = ch[i] if up and i < len(ch) - 1 and j == 0 else 0
                out.append(ResBlock(ch[i], skip, cfg.kernel_size, cfg.dropout))
                out.append(TimestepBlock(ch[i], cfg.c_r))
                if cfg.level_attention[i]:
                    out.append(AttnBlock(ch[i], cfg.c_cond, cfg.num_heads, cfg.self_attn, cfg.dropout))
            return out

        self.down_blocks = nn.ModuleList()
        for i in range(len(ch)):
            blocks: list[nn.Module] = []
            if i > 0:
                blocks.append(nn.Sequential(LayerNorm2d(ch[i - 1], elementwise_affine=False, eps=1e-6),
                                            nn.Conv2d(ch[i - 1], ch[i], kernel_size=2, stride=2)))
            self.down_blocks.append(nn.ModuleList(blocks + level_blocks(i, up=False)))
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(ch))):
            blocks = level_blocks(i, up=True)
            if i > 0:
                blocks.append(nn.Sequential(LayerNorm2d(ch[i], elementwise_affine=False, eps=1e-6),
                                            nn.ConvTranspose2d(ch[i], ch[i - 1], kernel_size=2, stride=2)))
            self.up_blocks.append(nn.ModuleList(blocks))
        self.clf = nn.Sequential(LayerNorm2d(ch[0], elementwise_affine=False, eps=1e-6),
                                 nn.Conv2d(ch[0], cfg.c_out * p * p, 1), nn.PixelShuffle(p))
        self.out_norm = LayerNorm2d(cfg.c_out, elementwise_affine=False, eps=1e-6)
        self.out_proj = nn.Conv2d(cfg.c_out, cfg.codebook_size, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official init: xavier everywhere, zero FiLM and `clf`, embedding N(0, 1/K), output = embedding."""
        cfg = self.config
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.conditioner.reset_parameters()
        nn.init.xavier_uniform_(self.embedding[1].weight, gain=0.02)
        nn.init.zeros_(self.clf[1].weight)
        nn.init.normal_(self.token_embedding.weight, std=math.sqrt(1 / cfg.codebook_size))
        with torch.no_grad():
            self.out_proj.weight.copy_(self.token_embedding.weight[:, :, None, None])
        scale = math.sqrt(1 / sum(cfg.blocks))
        for level in list(self.down_blocks) + list(self.up_blocks):
            for block in level:
                if isinstance(block, ResBlock):
                    with torch.no_grad():
                        block.channelwise[-1].weight.mul_(scale)
                elif isinstance(block, TimestepBlock):
                    nn.init.zeros_(block.mapper.weight)
                    nn.init.zeros_(block.mapper.bias)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def _run(self, block: nn.Module, x: torch.Tensor, r_embed: torch.Tensor, cond: torch.Tensor,
             cond_mask: torch.Tensor | None, skip: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(block, ResBlock):
            return block(x, skip)
        if isinstance(block, TimestepBlock):
            return block(x, r_embed)
        if isinstance(block, AttnBlock):
            return block(x, cond, cond_mask)
        return block(x)

    def forward(
        self,
        tokens: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        cond_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits over the codebook for every token position.

        Args:
            tokens: [B,h,w] long noised codebook indices (h, w divisible by `config.downsampling`).
            t: [B] float noise levels in [0, 1].
            cond: [B,L,c_cond] conditioning tokens from `self.conditioner` (a `PaellaCondition`'s `.tokens`).
            cond_mask: [B,L] bool, True = attend (None = all).

        Returns:
            logits [B,K,h,w].
        """
        cfg = self.config
        if tokens.ndim != 3 or tokens.dtype != torch.long:
            raise ConfigError(f"tokens must be a long tensor [B,h,w], got {tokens.dtype} {tuple(tokens.shape)}")
        B, h, w = tokens.shape
        f = cfg.downsampling
        if h % f or w % f:
            raise ConfigError(f"token grid {h}x{w} must be divisible by {f} (patch_size * 2^(levels-1))")
        t = torch.as_tensor(t, dtype=torch.float32, device=tokens.device)
        if t.ndim == 0:
            t = t.expand(B)
        if t.shape != (B,) or cond.ndim != 3 or cond.shape[0] != B or cond.shape[2] != cfg.c_cond:
            raise ConfigError(f"t must be [B]={B} and cond [B,L,{cfg.c_cond}], got {tuple(t.shape)}, "
                              f"{tuple(cond.shape)}")
        if cond_mask is not None and cond_mask.shape != cond.shape[:2]:
            raise ConfigError(f"cond_mask must be [B,L]={tuple(cond.shape[:2])}, got {tuple(cond_mask.shape)}")
        r_embed = timestep_embedding(t, cfg.c_r)  # [B,c_r]
        x = self.token_norm(self.token_embedding(tokens)).permute(0, 3, 1, 2)  # [B,c_in,h,w]
        x = self.embedding(x)  # [B,C0,h/p,w/p]
        levels = []
        for down in self.down_blocks:
            for block in down:
                x = self._run(block, x, r_embed, cond, cond_mask)
            levels.insert(0, x)  # coarsest first
        x = levels[0]
        for i, up in enumerate(self.up_blocks):
            for j, block in enumerate(up):
                skip = levels[i] if (i > 0 and j == 0) else None
                x = self._run(block, x, r_embed, cond, cond_mask, skip)
        x = self.clf(x)  # [B,c_out,h,w]
        return self.out_proj(self.out_norm(x))  # [B,K,h,w]

    def forward_condition(self, tokens: torch.Tensor, t: torch.Tensor, condition: PaellaCondition) -> torch.Tensor:
        """`forward` with a `PaellaCondition` (tokens, mask) as returned by `self.conditioner`."""
        return self(tokens, t, condition.tokens, condition.mask)


def count_parameters(config: PaellaConfig) -> int:
    """Parameters of the denoiser (conditioner included) built on the meta device (no memory, no init time)."""
    with torch.device("meta"):
        model = PaellaDenoiser(config)
    return sum(p.numel() for p in model.parameters())
