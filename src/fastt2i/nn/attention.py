"""Attention for GAN feature maps and text tokens: L2-distance (tied Q/K) or dot-product, self / cross, plus FFN.

Einops key: b batch, n query tokens (pixels h*w or words), m key tokens, h heads, d per-head width, c channels.

GigaGAN sec. 3.2 ("Interleaving attention with convolution"): a plain dot-product attention destabilises GAN training,
so logits are the negative squared L2 distance between query and key (Kim et al. 2021, "The Lipschitz constant of
self-attention"), the key projection is tied to the query projection, every projection uses equalized learning rate,
and the optimizer gives attention weights a weight decay (`attention_parameters`).
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.nn.equalized import EqualLinear

ATTENTION_KINDS = ("l2", "dot")


def _check_kind(kind: str) -> str:
    if kind not in ATTENTION_KINDS:
        raise ConfigError(f"attention kind must be one of {ATTENTION_KINDS}, got {kind!r}")
    return kind


def _to_tokens(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """[B,C,H,W] feature map or [B,N,C] tokens -> ([B,N,C], (H,W) or None)."""
    if x.ndim == 4:
        return rearrange(x, "b c h w -> b (h w) c"), (x.shape[2], x.shape[3])
    if x.ndim == 3:
        return x, None
    raise ConfigError(f"attention input must be [B,C,H,W] or [B,N,C], got shape {tuple(x.shape)}")


def _from_tokens(x: torch.Tensor, hw: tuple[int, int] | None) -> torch.Tensor:
    return x if hw is None else rearrange(x, "b (h w) c -> b c h w", h=hw[0], w=hw[1])


def attention_logits(q: torch.Tensor, k: torch.Tensor, kind: str) -> torch.Tensor:
    """Logits [b,h,n,m] from q [b,h,n,d], k [b,h,m,d].

    "l2": -||q_i - k_j||^2 / sqrt(d) (Kim et al. 2021, eq. in sec. 3; GigaGAN sec. 3.2); "dot": q_i . k_j / sqrt(d).
    """
    d = q.shape[-1]
    if kind == "dot":
        return torch.einsum("bhnd,bhmd->bhnm", q, k) / math.sqrt(d)
    qq = q.pow(2).sum(-1, keepdim=True)  # [b,h,n,1]
    kk = k.pow(2).sum(-1).unsqueeze(-2)  # [b,h,1,m]
    dist2 = (qq + kk - 2 * torch.einsum("bhnd,bhmd->bhnm", q, k)).clamp_min(0)  # [b,h,n,m]
    return -dist2 / math.sqrt(d)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(logits) @ v with torch's fused SDPA; mask [b,m] bool (True = attend). Returns [b,h,n,d].

    For "l2", -||q-k||^2 = 2 q.k - |k|^2 - |q|^2 and the last term is constant along a softmax row, so it is exactly
    SDPA over the augmented vectors q' = [2q, -1], k' = [k, |k|^2] (one extra channel, gradients flow through both).
    v gets a zero channel too: with q, k and v of one width SDPA runs its fused flash kernel on CPU (2.5-4x faster
    than the math fallback that unequal widths get, and with fp32 softmax statistics under bf16), and the zero
    channel of the output is dropped, so the result is the same.
    """
    d = q.shape[-1]
    if kind == "l2":
        q = torch.cat([2 * q, -torch.ones_like(q[..., :1])], dim=-1)  # [b,h,n,d+1]
        k = torch.cat([k, k.pow(2).sum(-1, keepdim=True)], dim=-1)  # [b,h,m,d+1]
        v = F.pad(v, (0, 1))  # [b,h,m,d+1], last channel 0
    attn_mask = None if mask is None else mask[:, None, None, :]  # [b,1,1,m]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1.0 / math.sqrt(d))  # [b,h,n,d(+1)]
    return out[..., :d]


class SelfAttention(nn.Module):
    """Pre-norm residual multi-head self-attention over a feature map or tokens: ``x + out(attn(norm(x)))``.

    Style conditioning (GigaGAN sec. 3.2 conditions the attention on w): when ``style_dim`` is given, w is projected
    to one extra key/value token appended to the sequence, so every pixel can read the global style and the
    attention pattern changes with w. We chose an extra token over modulating the projections because it keeps the
    L2 attention's Lipschitz bound (the token is just one more key) and costs O(N) instead of a per-sample weight.

    Args:
        dim: channels C of the input.
        heads: number of heads.
        dim_head: width per head.
        kind: "l2" (negative squared distance logits, the paper's choice) or "dot" (scaled dot product, ablation).
        tied_qk: key projection = query projection (same weight). None: True for "l2", False for "dot".
        style_dim: width of the style vector w for the extra style token; None for no style token.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 4,
        dim_head: int = 64,
        kind: str = "l2",
        tied_qk: bool | None = None,
        style_dim: int | None = None,
    ):
        super().__init__()
        self.kind = _check_kind(kind)
        self.tied_qk = (kind == "l2") if tied_qk is None else bool(tied_qk)
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_q = EqualLinear(dim, inner, bias=False)
        self.to_k = None if self.tied_qk else EqualLinear(dim, inner, bias=False)
        self.to_v = EqualLinear(dim, inner, bias=False)
        self.to_out = EqualLinear(inner, dim)
        self.style_dim = style_dim
        self.style_token = EqualLinear(style_dim, dim) if style_dim else None

    def _key_proj(self) -> EqualLinear:
        return self.to_q if self.to_k is None else self.to_k

    def _qkv(self, x: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, _ = _to_tokens(x)  # [b,n,c]
        h = self.norm(tokens)  # [b,n,c]
        ctx = h
        if self.style_token is not None:
            if w is None:
                raise ConfigError("this SelfAttention was built with style_dim: pass the style w [B,style_dim]")
            ctx = torch.cat([h, self.style_token(w).unsqueeze(1)], dim=1)  # [b,n+1,c]
        q = rearrange(self.to_q(h), "b n (h d) -> b h n d", h=self.heads)  # [b,h,n,d]
        k = rearrange(self._key_proj()(ctx), "b m (h d) -> b h m d", h=self.heads)  # [b,h,m,d]
        v = rearrange(self.to_v(ctx), "b m (h d) -> b h m d", h=self.heads)  # [b,h,m,d]
        return q, k, v

    def logits(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """Attention logits [B, heads, N, M] (M = N, or N+1 with the style token last), before the softmax."""
        q, k, _ = self._qkv(x, w)
        return attention_logits(q, k, self.kind)

    def forward(self, x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,C,H,W] or [B,N,C]; w [B,style_dim] when built with style_dim. Returns the same shape as x."""
        tokens, hw = _to_tokens(x)  # [b,n,c]
        q, k, v = self._qkv(x, w)
        out = rearrange(_attend(q, k, v, self.kind, None), "b h n d -> b n (h d)")  # [b,n,h*d]
        return _from_tokens(tokens + self.to_out(out), hw)


class CrossAttention(nn.Module):
    """Pre-norm residual cross-attention from image features (queries) to text tokens (keys/values), with a mask.

    Padded tokens (mask False) get exactly zero attention weight; a row with no real token adds nothing (the output
    equals the input) instead of NaN. Q and K project different inputs, so they cannot be tied; "l2" still uses
    negative squared distances as logits (GigaGAN sec. 3.2).

    Args:
        dim: channels C of the image features.
        context_dim: width of the text tokens.
        heads: number of heads.
        dim_head: width per head.
        kind: "l2" or "dot".
    """

    def __init__(self, dim: int, context_dim: int, heads: int = 4, dim_head: int = 64, kind: str = "l2"):
        super().__init__()
        self.kind = _check_kind(kind)
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.to_q = EqualLinear(dim, inner, bias=False)
        self.to_k = EqualLinear(context_dim, inner, bias=False)
        self.to_v = EqualLinear(context_dim, inner, bias=False)
        self.to_out = EqualLinear(inner, dim)

    def _qkv(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens, _ = _to_tokens(x)  # [b,n,c]
        if context.ndim != 3 or context.shape[0] != tokens.shape[0]:
            raise ConfigError(f"context must be [B,L,D] with B={tokens.shape[0]}, got {tuple(context.shape)}")
        ctx = self.norm_context(context)  # [b,m,dc]
        q = rearrange(self.to_q(self.norm(tokens)), "b n (h d) -> b h n d", h=self.heads)  # [b,h,n,d]
        k = rearrange(self.to_k(ctx), "b m (h d) -> b h m d", h=self.heads)  # [b,h,m,d]
        v = rearrange(self.to_v(ctx), "b m (h d) -> b h m d", h=self.heads)  # [b,h,m,d]
        return q, k, v

    def logits(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Unmasked attention logits [B, heads, N, L] before the softmax."""
        q, k, _ = self._qkv(x, context)
        return attention_logits(q, k, self.kind)

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,C,H,W] or [B,N,C]; context [B,L,context_dim]; mask [B,L] bool (True = real token)."""
        tokens, hw = _to_tokens(x)  # [b,n,c]
        q, k, v = self._qkv(x, context)
        if mask is None:
            out = _attend(q, k, v, self.kind, None)  # [b,h,n,d]
            return _from_tokens(tokens + self.to_out(rearrange(out, "b h n d -> b n (h d)")), hw)
        if mask.shape != context.shape[:2] or mask.dtype != torch.bool:
            raise ConfigError(f"mask must be bool [B,L]={tuple(context.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
        has_token = mask.any(dim=1)  # [b]
        # Rows without any real token attend to everything (never an all-masked softmax), then contribute zero.
        safe_mask = mask | ~has_token[:, None]  # [b,m]
        out = _attend(q, k, v, self.kind, safe_mask)  # [b,h,n,d]
        out = self.to_out(rearrange(out, "b h n d -> b n (h d)"))  # [b,n,c]
        out = out * has_token[:, None, None].to(out.dtype)
        return _from_tokens(tokens + out, hw)


class FeedForward(nn.Module):
    """Pre-norm residual MLP: ``x + W2 lrelu(W1 norm(x))`` over the channels of a feature map or tokens.

    Args:
        dim: channels.
        mult: hidden width multiplier.
    """

    def __init__(self, dim: int, mult: int = 2):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = EqualLinear(dim, dim * mult, activation="lrelu")
        self.fc2 = EqualLinear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, hw = _to_tokens(x)  # [b,n,c]
        return _from_tokens(tokens + self.fc2(self.fc1(self.norm(tokens))), hw)


class TransformerBlock(nn.Module):
    """Self-attention (masked, over tokens) + feed-forward: one learned text layer T of GigaGAN sec. 3.3.

    Args:
        dim: token width.
        heads: number of heads.
        dim_head: width per head.
        kind: "l2" or "dot".
        ff_mult: hidden width multiplier of the feed-forward.
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 64, kind: str = "l2", ff_mult: int = 2):
        super().__init__()
        self.attn = MaskedSelfAttention(dim, heads, dim_head, kind)
        self.ff = FeedForward(dim, ff_mult)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,L,dim]; mask [B,L] bool. Returns [B,L,dim]."""
        return self.ff(self.attn(x, mask))


class MaskedSelfAttention(CrossAttention):
    """Self-attention over a padded token sequence (padded keys never attended); Q and K tied for "l2".

    Args:
        dim: token width.
        heads: number of heads.
        dim_head: width per head.
        kind: "l2" or "dot".
    """

    def __init__(self, dim: int, heads: int = 4, dim_head: int = 64, kind: str = "l2"):
        super().__init__(dim, dim, heads, dim_head, kind)
        del self.norm_context
        if kind == "l2":
            self.to_k = None  # tied to to_q

    def _qkv(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.norm(x)  # [b,n,c]
        kproj = self.to_q if self.to_k is None else self.to_k
        q = rearrange(self.to_q(h), "b n (h d) -> b h n d", h=self.heads)  # [b,h,n,d]
        k = rearrange(kproj(h), "b m (h d) -> b h m d", h=self.heads)  # [b,h,m,d]
        v = rearrange(self.to_v(h), "b m (h d) -> b h m d", h=self.heads)  # [b,h,m,d]
        return q, k, v

    def logits(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        q, k, _ = self._qkv(x, x)
        return attention_logits(q, k, self.kind)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """x [B,L,dim]; mask [B,L] bool (True = real token). Returns [B,L,dim]."""
        return super().forward(x, x, mask)


_ATTENTION_TYPES = (SelfAttention, CrossAttention)


def attention_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The projection weights of every attention layer inside `module`: the ones to give weight decay.

    Norms, biases and everything else are left out.
    Each parameter appears once (a tied Q/K weight is listed once).
    """
    seen: set[int] = set()
    params: list[nn.Parameter] = []
    for m in module.modules():
        if not isinstance(m, _ATTENTION_TYPES):
            continue
        for proj in (m.to_q, getattr(m, "to_k", None), m.to_v, m.to_out, getattr(m, "style_token", None)):
            if proj is not None and id(proj.weight) not in seen:
                seen.add(id(proj.weight))
                params.append(proj.weight)
    return params


def split_decay_parameters(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(attention weights that get weight decay, all other trainable parameters) for two optimizer groups."""
    decay = attention_parameters(module)
    ids = {id(p) for p in decay}
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in ids]
    return [p for p in decay if p.requires_grad], rest
