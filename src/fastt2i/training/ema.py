"""Exponential moving average of a module's parameters (StyleGAN convention: half-life in kimg with ramp-up)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

_FLOAT_OPMATH = (torch.float32, torch.bfloat16, torch.float16)  # dtypes whose lerp computes in float32


def ema_beta(batch_size: int, cur_nimg: int, ema_kimg: float, rampup: float | None) -> float:
    """The EMA decay for one step: ``0.5 ** (batch / max(ema_nimg, 1e-8))``.

    Args:
        batch_size: images in this step (global batch).
        cur_nimg: images shown before this step.
        ema_kimg: half-life in thousands of images.
        rampup: if set, ``ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup)``.
    """
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


class EMA:
    """A frozen eval-mode deepcopy of `model` whose parameters track it; buffers are copied as they are.

    Args:
        model: the (unwrapped) module to average; must not be wrapped by DDP.
        ema_kimg: half-life in kimg.
        rampup: ramp-up factor (see `ema_beta`), None = off.
    """

    def __init__(self, model: nn.Module, ema_kimg: float = 10.0, rampup: float | None = 0.05):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.ema_kimg = ema_kimg
        self.rampup = rampup

    @torch.no_grad()
    def update(self, model: nn.Module, cur_nimg: int, batch_size: int) -> float:
        """Blend `model` into the average; returns the beta used. `cur_nimg` = images shown before this step.

        p_ema <- lerp(p, p_ema, beta) = beta * p_ema + (1 - beta) * p for every parameter, buffers copied, as a few
        multi-tensor (`torch._foreach_*`) calls instead of a Python loop. The result is bit-identical to
        ``p_ema.copy_(p.lerp(p_ema, beta))`` per parameter: for beta > 1/2 (every step after the ramp-up's first
        few) the in-place ``p_ema.lerp_(p, w)`` with ``w = 1 - fl32(beta)`` evaluates the same expression (torch's
        lerp takes ``end - (end - start) * (1 - weight)`` for weights >= 1/2 and ``start + weight * (end - start)``
        below, and 1 - fl32(beta) is exact), else the out-of-place form is used as it is.
        """
        beta = ema_beta(batch_size, cur_nimg, self.ema_kimg, self.rampup)
        src_p = dict(model.named_parameters())
        ema_params, params = [], []
        for name, p_ema in self.module.named_parameters():
            ema_params.append(p_ema)
            params.append(src_p[name].detach())
        if ema_params:
            same = all(p.dtype == q.dtype and q.dtype in _FLOAT_OPMATH for p, q in zip(params, ema_params))
            if beta > 0.5 and same:
                torch._foreach_lerp_(ema_params, params, 1.0 - float(np.float32(beta)))
            else:
                params = [p.to(q.dtype) for p, q in zip(params, ema_params)]
                torch._foreach_copy_(ema_params, torch._foreach_lerp(params, ema_params, beta))
        src_b = dict(model.named_buffers())
        ema_buffers = list(self.module.named_buffers())
        if ema_buffers:
            torch._foreach_copy_([b for _, b in ema_buffers], [src_b[name].detach() for name, _ in ema_buffers])
        return beta

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state, strict=True)
