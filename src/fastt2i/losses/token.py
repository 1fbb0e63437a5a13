"""Paella's token objective: uniform renoising of codebook tokens, the t-dependent loss weights, weighted CE.

Paella (Rampas et al. 2022, v3 code `src_distributed/train.py`): t ~ U(0, 1) (clamped at 0.001); every token is
replaced with probability t by a uniformly random codebook token (there is no mask token: the random token may
equal the original); the predictor is trained with cross-entropy (label smoothing 0.1) against the clean tokens,
weight 1 on replaced tokens and ``1 - (1 - t)(1 - eta)`` (eta = 0.3) on the untouched ones, normalised per image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError


def sample_t(
    batch: int,
    generator: torch.Generator | None = None,
    min_t: float = 0.001,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Noise levels t [B] ~ U(0, 1], clamped to [min_t, 1] (t = 1: every token random).

    Args:
        batch: number of values.
        generator: optional torch.Generator (on `device`) for reproducible draws.
        min_t: lower clamp (the official code uses 0.001 so that no sample is fully clean).
        device: where the result lives (default: the generator's device, else CPU).
    """
    if not 0 <= min_t <= 1:
        raise ConfigError(f"min_t must be in [0, 1], got {min_t}")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    u = torch.rand(batch, generator=generator, device=device)  # [B] in [0, 1)
    return (1 - u).clamp(min_t, 1.0)  # [B] in (0, 1]


def renoise_tokens(
    tokens: torch.Tensor,
    t: torch.Tensor | float,
    codebook_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each token with probability t by a uniformly random codebook token (no mask id).

    Args:
        tokens: [B,h,w] long codebook indices in [0, codebook_size).
        t: [B] (or a float) per-image replacement probability in [0, 1].
        codebook_size: K; random tokens are drawn uniformly from [0, K).
        generator: optional torch.Generator on the tokens' device.

    Returns:
        (noised [B,h,w] long, replaced [B,h,w] bool): `replaced` marks the positions that were drawn (the drawn token
        may equal the original one, with probability 1/K).
    """
    if tokens.ndim != 3 or tokens.dtype != torch.long:
        raise ConfigError(f"tokens must be a long tensor [B,h,w], got {tokens.dtype} {tuple(tokens.shape)}")
    if codebook_size < 1:
        raise ConfigError(f"codebook_size must be >= 1, got {codebook_size}")
    b = tokens.shape[0]
    t = torch.as_tensor(t, dtype=torch.float32, device=tokens.device)
    if t.ndim == 0:
        t = t.expand(b)
    if t.shape != (b,):
        raise ConfigError(f"t must be a float or a [B]={b} tensor, got shape {tuple(t.shape)}")
    draw = torch.rand(tokens.shape, generator=generator, device=tokens.device)  # [B,h,w]
    replaced = draw < t[:, None, None]  # [B,h,w] bool; t = 0 never, t = 1 always
    random = torch.randint(0, codebook_size, tokens.shape, generator=generator, device=tokens.device)  # [B,h,w]
    return torch.where(replaced, random, tokens), replaced


def token_loss_weights(t: torch.Tensor, replaced: torch.Tensor, eta: float = 0.3) -> torch.Tensor:
    """Per-token loss weights [B,h,w]: 1 where `replaced`, ``1 - (1 - t)(1 - eta)`` elsewhere.

    Args:
        t: [B] noise levels.
        replaced: [B,h,w] bool, the positions drawn by `renoise_tokens`.
        eta: the weight of clean tokens at t = 0 (0.3 in the official v3 code, `get_loss_weight(min_val=0.3)`).
    """
    if replaced.ndim != 3 or t.shape != replaced.shape[:1]:
        raise ConfigError(f"t [B] and replaced [B,h,w] disagree: {tuple(t.shape)} vs {tuple(replaced.shape)}")
    clean_w = 1 - (1 - t.float()) * (1 - eta)  # [B]
    return torch.where(replaced, torch.ones_like(clean_w)[:, None, None], clean_w[:, None, None])  # [B,h,w]


def paella_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    t: torch.Tensor,
    replaced: torch.Tensor,
    label_smoothing: float = 0.1,
    eta: float = 0.3,
) -> torch.Tensor:
    """Weighted cross-entropy normalised per image, then averaged over the batch (a scalar).

    ``loss_b = sum_ij w_bij CE_bij / sum_ij w_bij`` with w from `token_loss_weights`; returns mean_b loss_b.

    Args:
        logits: [B,K,h,w] predictions over the codebook.
        target: [B,h,w] long clean tokens.
        t: [B] noise levels used to noise the input.
        replaced: [B,h,w] bool positions that were redrawn.
        label_smoothing: cross-entropy label smoothing (0.1 in the paper).
        eta: clean-token weight at t = 0.
    """
    if logits.ndim != 4 or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
        raise ConfigError(f"logits [B,K,h,w] and target [B,h,w] disagree: {tuple(logits.shape)} vs "
                          f"{tuple(target.shape)}")
    ce = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing, reduction="none")  # [B,h,w]
    w = token_loss_weights(t, replaced, eta)  # [B,h,w]
    per_image = (ce * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2))  # [B]
    return per_image.mean()


class _HeadCrossEntropy(torch.autograd.Function):
    """`paella_loss` of ``rows @ weight.T`` computed in row chunks: the [N,K] logits never exist at once.

    Per row p (K classes, label smoothing e): ``CE_p = lse(z) - (1 - e) z_y - (e / K) sum_k z_k`` (torch's
    label-smoothed cross-entropy written out), weighted by ``coef_p`` (the per-image normalised token weights / B);
    the gradient is ``coef_p (softmax(z) - (1 - e) onehot(y) - e / K)``, with softmax(z) = exp(z - lse) from logits
    recomputed chunk by chunk in the backward. Everything here runs in fp32, the three small matmuls included (the
    logits are not rounded to bf16; nothing class-sized is ever cast), in one reused chunk buffer.
    """

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, coef: torch.Tensor,
                eps: float, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(rows.device.type, enabled=False):
            N, K = rows.shape[0], weight.shape[0]
            w = weight.float()  # [K,C]
            buf = torch.empty(min(chunk, N), K, device=rows.device)  # [n,K] logits of one chunk
            lse = torch.empty(N, device=rows.device)  # [N] log-sum-exp per row, for the backward
            loss = torch.zeros((), device=rows.device)
            hits = torch.empty(N, dtype=torch.bool, device=rows.device)
            for s in range(0, N, chunk):
                r = rows[s:s + chunk].float()
                z = torch.mm(r, w.t(), out=buf[:r.shape[0]])  # [n,K]
                zy = z.gather(1, target[s:s + chunk, None])[:, 0]  # [n]
                top, zsum = z.amax(dim=1), z.sum(dim=1)  # [n] each
                torch.log(z.sub_(top[:, None]).exp_().sum(dim=1), out=lse[s:s + chunk]).add_(top)
                ce = lse[s:s + chunk] - (1 - eps) * zy - (eps / K) * zsum  # [n]
                loss = loss + (ce * coef[s:s + chunk]).sum()
                torch.ge(zy, top, out=hits[s:s + chunk])  # top-1 hit (a tie with the maximum counts as one)
        ctx.save_for_backward(rows, weight, target, coef, lse)
        ctx.eps, ctx.chunk = eps, chunk
        ctx.mark_non_differentiable(hits)
        return loss, hits

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_hits: Any) -> tuple[Any, ...]:
        rows, weight, target, coef, lse = ctx.saved_tensors
        eps, chunk = ctx.eps, ctx.chunk
        with torch.autocast(rows.device.type, enabled=False):
            N, K = rows.shape[0], weight.shape[0]
            w = weight.float()  # [K,C]
            buf = torch.empty(min(chunk, N), K, device=rows.device)
            grad_rows = torch.empty_like(rows)  # [N,C]
            grad_w = torch.zeros(weight.shape, device=weight.device)  # [K,C] fp32
            scale = coef * grad_loss  # [N]
            for s in range(0, N, chunk):
                r, y = rows[s:s + chunk].float(), target[s:s + chunk]
                g = torch.mm(r, w.t(), out=buf[:r.shape[0]])  # [n,K] logits again
                g.sub_(lse[s:s + chunk, None]).exp_().sub_(eps / K)  # softmax - e/K
                g.scatter_add_(1, y[:, None], g.new_full((y.shape[0], 1), -(1 - eps)))  # - (1-e) onehot
                g.mul_(scale[s:s + chunk, None])
                grad_rows[s:s + chunk] = g @ w  # [n,C]
                grad_w.addmm_(g.t(), r)  # [K,C]
        return grad_rows, grad_w.to(weight.dtype), None, None, None, None


def head_cross_entropy(features: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, t: torch.Tensor,
                       replaced: torch.Tensor, label_smoothing: float = 0.1, eta: float = 0.3,
                       chunk_elements: int = 1 << 20) -> tuple[torch.Tensor, torch.Tensor]:
    """``paella_loss(logits, target, t, replaced, label_smoothing, eta)`` with ``logits = conv1x1(features, weight)``
    (the denoiser's bias-free output projection), fused: the [B,K,h,w] logits are made, used and dropped in chunks of
    `chunk_elements` (4 MB), forward and backward. Returns (loss, top-1 hits [B,h,w] bool).

    On CPU the class-sized tensors, not the network, were the cost of a Paella step (emoji64: 8.4M logits, each
    written and read by the projection, log-softmax, label smoothing and their backwards in fresh 33 MB buffers);
    this does the same arithmetic in cache, in fp32 throughout (under bf16 autocast too: the logits are not rounded
    to bf16).

    Args:
        features: [B,C,h,w] `PaellaDenoiser(..., return_features=True)` (any strides; bf16 under autocast).
        weight: [K,C] projection weight (`out_proj.weight[:, :, 0, 0]`).
        target, t, replaced, label_smoothing, eta: as `paella_loss`.
        chunk_elements: logits per chunk.
    """
    B, C, h, w = features.shape
    K = weight.shape[0]
    tw = token_loss_weights(t, replaced, eta)  # [B,h,w]
    coef = (tw / tw.sum(dim=(1, 2), keepdim=True) / B).reshape(-1).float()  # [N]: per-image normalised, batch mean
    rows = features.permute(0, 2, 3, 1).reshape(B * h * w, C)  # [N,C], a view of channels-last features
    loss, hits = _HeadCrossEntropy.apply(rows, weight, target.reshape(-1), coef, float(label_smoothing),
                                         max(1, chunk_elements // K))
    return loss, hits.view(B, h, w)
