"""Exponential moving average of a module's parameters (StyleGAN convention: half-life in kimg with ramp-up)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


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
        """Blend `model` into the average; returns the beta used. `cur_nimg` = images shown before this step."""
        beta = ema_beta(batch_size, cur_nimg, self.ema_kimg, self.rampup)
        src_p = dict(model.named_parameters())
        for name, p_ema in self.module.named_parameters():
            p = src_p[name].detach()
            p_ema.copy_(p.to(p_ema.dtype).lerp(p_ema, beta))  # p_ema = beta * p_ema + (1 - beta) * p
        src_b = dict(model.named_buffers())
        for name, b_ema in self.module.named_buffers():
            b_ema.copy_(src_b[name].detach())
        return beta

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state, strict=True)
