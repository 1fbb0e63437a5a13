"""Equalized-learning-rate linear and conv layers (StyleGAN2 convention) and the gain-corrected leaky ReLU."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
ACTIVATIONS = (None, "lrelu", "linear")


def scaled_lrelu(x: torch.Tensor, gain: float = LRELU_GAIN) -> torch.Tensor:
    """Leaky ReLU (slope 0.2) times sqrt(2), so that unit-variance inputs keep roughly unit second moment."""
    return F.leaky_relu(x, LRELU_SLOPE) * gain


def _check_activation(activation: str | None) -> str | None:
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return None if activation == "linear" else activation


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weights stored ~ N(0, 1/lr_mul^2), scaled at runtime.

    The effective weight is ``weight * lr_mul / sqrt(in_features)`` and the effective bias ``bias * lr_mul``
    (Karras et al. 2018/2020), so every layer learns at the same speed whatever its fan-in; ``lr_mul < 1`` slows a
    layer down (the mapping network uses 0.01).

    Args:
        in_features: input width.
        out_features: output width.
        bias: learn an additive bias.
        lr_mul: learning-rate multiplier.
        bias_init: initial (effective) value of the bias.
        activation: None (linear) or "lrelu" (leaky ReLU 0.2 with gain sqrt(2)).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        lr_mul: float = 1.0,
        bias_init: float = 0.0,
        activation: str | None = None,
    ):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ConfigError(f"EqualLinear needs positive sizes, got {in_features} -> {out_features}")
        if lr_mul <= 0:
            raise ConfigError(f"lr_mul must be positive, got {lr_mul}")
        self.in_features, self.out_features = in_features, out_features
        self.activation = _check_activation(activation)
        self.lr_mul = float(lr_mul)
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)

    def effective_weight(self) -> torch.Tensor:
        """The weight actually applied, [out, in]."""
        return self.weight * self.weight_gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain  # [out,in]
        b = self.bias.to(x.dtype) * self.lr_mul if self.bias is not None else None
        x = F.linear(x, w, b)  # [..., out]
        return scaled_lrelu(x) if self.activation == "lrelu" else x

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"lr_mul={self.lr_mul}, activation={self.activation}")


class EqualConv2d(nn.Module):
    """2-D convolution with equalized learning rate (effective weight = weight / sqrt(in * k * k)).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: convolution stride.
        padding: zero padding; None means ``kernel_size // 2`` ("same" for odd kernels at stride 1).
        bias: learn an additive bias.
        bias_init: initial value of the bias.
        activation: None (linear) or "lrelu" (leaky ReLU 0.2 with gain sqrt(2)).
        lr_mul: learning-rate multiplier.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        bias_init: float = 0.0,
        activation: str | None = None,
        lr_mul: float = 1.0,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1 or kernel_size < 1 or stride < 1:
            raise ConfigError(
                f"EqualConv2d needs positive sizes, got {in_channels}->{out_channels}, k={kernel_size}, stride={stride}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2 if padding is None else int(padding)
        self.activation = _check_activation(activation)
        self.lr_mul = float(lr_mul)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_channels,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain  # [out,in,k,k]
        b = self.bias.to(x.dtype) * self.lr_mul if self.bias is not None else None
        x = F.conv2d(x, w, b, stride=self.stride, padding=self.padding)  # [B,out,H',W']
        return scaled_lrelu(x) if self.activation == "lrelu" else x

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}, activation={self.activation}")
