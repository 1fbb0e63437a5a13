"""Adversarial losses as pure functions: non-saturating logistic D/G losses over multi-scale predictions, lazy R1.

Predictions may be one [B] tensor, a list of [B] tensors, or the list of `ScaleLogits(i, j, logits)` that the GigaGAN
discriminator returns. GigaGAN sec. 3.4, eq. 6: V_MS-I/O sums the logistic GAN loss over all (i, j) scale pairs; each
term is averaged over the batch. `scale_reduction="mean"` divides by the number of pairs instead (same optimum, a
loss scale independent of L, which keeps one R1 gamma meaningful across pyramid depths).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError

REDUCTIONS = ("sum", "mean")


def stack_logits(logits: torch.Tensor | Sequence[Any]) -> torch.Tensor:
    """[P,B] fp32 from a [B] tensor, a [P,B] tensor, a list of [B] tensors or a list of ScaleLogits (the losses are
    computed in fp32 whatever precision the discriminator ran in)."""
    if isinstance(logits, torch.Tensor):
        if logits.ndim == 1:
            return logits[None].float()
        if logits.ndim == 2:
            return logits.float()
        raise ValueError(f"logits must be [B] or [P,B], got {tuple(logits.shape)}")
    items = [getattr(x, "logits", x) for x in logits]
    if not items:
        raise ValueError("no predictions given")
    for x in items:
        if not isinstance(x, torch.Tensor) or x.ndim != 1:
            raise ValueError(f"each prediction must be a [B] tensor, got {getattr(x, 'shape', type(x).__name__)}")
    return torch.stack(items).float()  # [P,B]


def _reduce(per_scale: torch.Tensor, scale_reduction: str) -> torch.Tensor:
    """[P,B] per-sample losses -> scalar: mean over the batch, then sum (eq. 6) or mean over the P predictions."""
    if scale_reduction not in REDUCTIONS:
        raise ConfigError(f"scale_reduction must be one of {REDUCTIONS}, got {scale_reduction!r}")
    per = per_scale.float().mean(dim=1)  # [P]
    return per.sum() if scale_reduction == "sum" else per.mean()


def d_logistic(
    real_logits: torch.Tensor | Sequence[Any], fake_logits: torch.Tensor | Sequence[Any], scale_reduction: str = "sum"
) -> torch.Tensor:
    """Discriminator logistic loss softplus(-D(x, c)) + softplus(D(G(c), c)) (GigaGAN eq. 6 / StyleGAN2).

    Args:
        real_logits: predictions on real (image, matching caption) pairs.
        fake_logits: predictions on generated images with the captions they were generated from.
        scale_reduction: "sum" over the scale pairs (eq. 6) or "mean".
    """
    real, fake = stack_logits(real_logits), stack_logits(fake_logits)
    return _reduce(F.softplus(-real), scale_reduction) + _reduce(F.softplus(fake), scale_reduction)


def g_nonsaturating(fake_logits: torch.Tensor | Sequence[Any], scale_reduction: str = "sum") -> torch.Tensor:
    """Generator non-saturating loss softplus(-D(G(c), c)) (Goodfellow et al. 2014), summed/averaged over scales.

    Args:
        fake_logits: predictions on generated images with their own captions.
        scale_reduction: "sum" over the scale pairs (eq. 6) or "mean".
    """
    return _reduce(F.softplus(-stack_logits(fake_logits)), scale_reduction)


def r1_penalty(
    real_inputs: torch.Tensor | Sequence[torch.Tensor], logits: torch.Tensor | Sequence[Any]
) -> torch.Tensor:
    """Per-sample R1 penalty ||grad_x sum_ij D_ij(x)||^2 summed over every pyramid level (Mescheder et al. 2018).

    The gradient is taken of the sum of all predictions with respect to all inputs, so a multi-scale D is penalised
    through every scale's image. The trainer applies it lazily (StyleGAN2 sec. 3.1): every k steps, weighted by
    gamma / 2 * k. Built with create_graph=True so that the penalty can be backpropagated into D.

    Args:
        real_inputs: the real image [B,3,H,W] or the pyramid [x_0, x_1, ...], each with requires_grad=True, that
            produced `logits`.
        logits: the predictions on them.

    Returns:
        [B] penalty per sample.
    """
    inputs = [real_inputs] if isinstance(real_inputs, torch.Tensor) else list(real_inputs)
    if not all(x.requires_grad for x in inputs):
        raise ValueError("r1_penalty needs real inputs with requires_grad=True (call .requires_grad_() before D)")
    total = stack_logits(logits).sum()
    grads = torch.autograd.grad(total, inputs, create_graph=True, allow_unused=True)
    pen = None
    for g in grads:
        if g is None:  # this level did not enter D (e.g. multiscale=False)
            continue
        term = g.float().square().flatten(1).sum(dim=1)  # [B]
        pen = term if pen is None else pen + term
    if pen is None:
        raise ValueError("the logits do not depend on any of the given inputs")
    return pen


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss mean(relu(1 - D(x, c))) + mean(relu(1 + D(G(z, c), c))) (StyleGAN-T sec. 3.2; Lim &
    Ye 2017), each mean over every element: the batch and, for the StyleGAN-T D, all heads and tokens [B, sum N_i].

    The official `training/loss.py` further divides each term by the batch size; that constant is left out (the
    optimum and Adam's steps are unchanged up to its epsilon).

    Args:
        real_logits: D's logits on real (image, caption) pairs, any shape, e.g. [B, T].
        fake_logits: D's logits on generated images with their captions.
    """
    return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss -mean(D(G(z, c), c)) over every element (batch, heads, tokens), as in the official code
    (less its 1 / batch-size factor, see `d_hinge`).

    Args:
        fake_logits: D's logits on generated images with their own captions, any shape.
    """
    return -fake_logits.float().mean()
