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
    """ConvNeXt-V2 GRN on channels-last maps [B,H,W,C]: x + gamma * (x * N(x)) + beta, gamma = beta = 0 at init.

    N(x) = ||x||_spatial / mean_C ||x||_spatial, written as ``x * (1 + gamma * N(x)) + beta`` (one pass over x) with
    the spatial norm as ``sqrt(sum x^2)`` (the sum accumulates in fp32 for bf16 x too): `torch.norm` over the two
    spatial dims of a channels-last map is 10-40x slower on CPU. The sum is clamped at 1e-24 before the root so an
    all-zero channel has a zero (not NaN) gradient, as `torch.norm` gives.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = (x * x).sum(dim=(1, 2), keepdim=True).float().clamp_min(1e-24).sqrt()  # [B,1,1,C]
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)  # [B,1,1,C]
        scale = (1 + self.gamma * nx).to(x.dtype)  # [B,1,1,C]
        return torch.addcmul(self.beta.to(x.dtype), x, scale)  # [B,H,W,C]


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
        return torch.addcmul(b.to(x.dtype), x, (1 + a).to(x.dtype))  # x * (1 + a) + b, one pass over x


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
               dropout: float) -> torch.Tensor:
    """Softmax attention of q [B,nh,N,dh] over k, v [B,nh,M,dh] (mask [B,1,1,M] bool, True = attend).

    On CPU the core always computes in fp32: under bf16 autocast the CPU flash-attention backward is ~5x slower in
    bf16 than in fp32 at these sizes (torch 2.13), so with autograd recording SDPA runs on fp32 copies outside
    autocast, and without it (sampling) a plain fp32 matmul-softmax-matmul replaces SDPA. Elsewhere: SDPA as is.
    """
    if q.device.type == "cpu" and not torch.is_grad_enabled() and dropout == 0.0:
        # sampling: at these sizes (16 queries, ~30 keys) plain fp32 matmul-softmax-matmul is ~2x faster than
        # torch's CPU flash kernel, and no less precise (fp32 scores and probabilities; no row is fully masked)
        with torch.autocast("cpu", enabled=False):
            s = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)  # [B,nh,N,M]
            if mask is not None:
                s.masked_fill_(~mask, float("-inf"))
            return torch.matmul(s.softmax(dim=-1), v.float()).to(q.dtype)  # [B,nh,N,dh]
    if torch.is_grad_enabled() and q.dtype in (torch.bfloat16, torch.float16) and q.device.type == "cpu":
        with torch.autocast("cpu", enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, dropout_p=dropout)
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


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
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B,HW,C] (a view when x is channels-last)
        kv = self.kv_mapper(cond)  # [B,L,C]
        mask = cond_mask
        empty = None
        if self.self_attn:
            kv = torch.cat([h, kv.to(h.dtype)], dim=1)  # [B,HW+L,C]
            if mask is not None:  # the image tokens are always attended, so no row is empty
                mask = torch.cat([mask.new_ones(B, H * W), mask], dim=1)  # [B,HW+L]
        elif mask is not None:
            empty = ~mask.any(dim=1)  # [B] samples with nothing to attend to
            mask = mask | empty[:, None]  # attend to everything there (the update is zeroed below)
        q = self.to_q(h).view(B, H * W, self.num_heads, -1).transpose(1, 2)  # [B,nh,HW,dh]
        k = self.to_k(kv).view(B, kv.shape[1], self.num_heads, -1).transpose(1, 2)  # [B,nh,N,dh]
        v = self.to_v(kv).view(B, kv.shape[1], self.num_heads, -1).transpose(1, 2)  # [B,nh,N,dh]
        out = _attention(q, k, v, None if mask is None else mask[:, None, None, :],
                         self.dropout if self.training else 0.0)  # [B,nh,HW,dh]
        out = self.to_out(out.transpose(1, 2).reshape(B, H * W, C))  # [B,HW,C]
        if empty is not None:  # no keys: no update (a multiply, not a branch on the data: no host sync)
            out = out * (~empty)[:, None, None].to(out.dtype)
        return x + out.transpose(1, 2).reshape(B, C, H, W)  # [B,C,H,W], channels-last strides


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 `conv` of x [B,C,H,W]: as one matmul over the [B,H,W,C] rows when x is channels-last (the output is
    channels-last too), else the conv itself. torch's CPU heuristics send a 1x1 fp32 conv of a batch < 16 on one
    thread to its slow im2col path (~10x slower here); the matmul has no such cliff."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return F.linear(x.permute(0, 2, 3, 1), conv.weight[:, :, 0, 0], conv.bias).permute(0, 3, 1, 2)
    return conv(x)


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
        return_features: bool = False,
    ) -> torch.Tensor:
        """Logits over the codebook for every token position: ``project(features(...))``.

        Args:
            tokens: [B,h,w] long noised codebook indices (h, w divisible by `config.downsampling`).
            t: [B] float noise levels in [0, 1].
            cond: [B,L,c_cond] conditioning tokens from `self.conditioner` (a `PaellaCondition`'s `.tokens`).
            cond_mask: [B,L] bool, True = attend (None = all).
            return_features: return `features(...)` [B,c_out,h,w] instead (for a loss fused with the projection;
                through the module call, so hooks, DDP and `torch.compile` still see it).

        Returns:
            logits [B,K,h,w]: contiguous in training mode (what a cross-entropy over dim 1 reads fastest),
            channels-last in eval mode (each position's K logits contiguous: what the sampler reads).
        """
        features = self.features(tokens, t, cond, cond_mask)
        return features if return_features else self.project(features)

    def project(self, features: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The output head: features [B,c_out,h,w] -> logits [B,K,h,w] by the bias-free 1x1 `out_proj`.

        It is linear, so classifier-free guidance may mix the features of the two branches before it
        (``project(lerp(f_u, f_c, w)) == lerp(project(f_u), project(f_c), w)``): one projection of B rows instead
        of 2B, and no class-sized [2B,K,h,w] tensors (`fastt2i.models.paella.schedule.cfg_logits(head=...)`).

        Args:
            features: [B,c_out,h,w] from `features`.
            out: optional [B,h,w,K] contiguous buffer for the logits of channels-last features (eval mode): a
                sampling loop reuses one instead of page-faulting a fresh class-sized tensor every step.
        """
        if self.training:
            return self.out_proj(features.contiguous())  # [B,K,h,w] contiguous
        if out is not None and features.is_contiguous(memory_format=torch.channels_last):
            w = self.out_proj.weight[:, :, 0, 0]  # [K,c_out]
            return torch.matmul(features.permute(0, 2, 3, 1), w.t(), out=out).permute(0, 3, 1, 2)
        return pointwise(self.out_proj, features)  # [B,K,h,w] channels-last

    def features(
        self,
        tokens: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        cond_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The normalised features [B,c_out,h,w] (channels-last) before the output projection; args as `forward`."""
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
        # The whole U-Net runs on channels-last maps: [B,C,H,W] views of [B,H,W,C] memory, so the channel LayerNorms,
        # the channel MLPs and the attention read their rows in place (no permute copies) and the convs take
        # oneDNN's NHWC path (faster in fp32, and what the bf16 kernels want).
        x = self.token_norm(self.token_embedding(tokens)).permute(0, 3, 1, 2)  # [B,c_in,h,w] channels-last
        unshuffle, conv, norm = self.embedding
        x = norm(pointwise(conv, unshuffle(x)))  # [B,C0,h/p,w/p]
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
        norm, conv, shuffle = self.clf
        return self.out_norm(shuffle(pointwise(conv, norm(x))))  # [B,c_out,h,w]

    def forward_condition(self, tokens: torch.Tensor, t: torch.Tensor, condition: PaellaCondition) -> torch.Tensor:
        """`forward` with a `PaellaCondition` (tokens, mask) as returned by `self.conditioner`."""
        return self(tokens, t, condition.tokens, condition.mask)


def count_parameters(config: PaellaConfig) -> int:
    """Parameters of the denoiser (conditioner included) built on the meta device (no memory, no init time)."""
    with torch.device("meta"):
        model = PaellaDenoiser(config)
    return sum(p.numel() for p in model.parameters())
