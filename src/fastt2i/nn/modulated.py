"""StyleGAN2 modulated convolution with GigaGAN's sample-adaptive kernel selection, a styled layer, and toRGB."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.nn.equalized import EqualLinear, scaled_lrelu

NOISE_MODES = ("random", "const", "none")


class ModulatedConv2d(nn.Module):
    """Modulated/demodulated conv (StyleGAN2, Karras et al. 2020 eq. 1-3) over a bank of adaptively mixed kernels.

    GigaGAN sec. 3.2, "sample-adaptive kernel selection": the layer holds ``num_kernels`` kernels K_1..K_N; for each
    sample the kernel is ``K = sum_i softmax(W_filter^T w + b_filter)_i K_i``, which is then modulated by the style
    ``s = A(w)`` and demodulated. ``num_kernels=1`` has no selector and is exactly the StyleGAN2 layer.
    Each sample gets its own kernel, applied as one grouped convolution over the batch (or the equivalent
    non-fused form, see `forward`).

    Upsampling (``up=True``): bilinear x2 (align_corners=False, which is the [1,3,3,1]/4 binomial filter in each
    direction) followed by the modulated conv at the new resolution; StyleGAN2's fused transposed conv + FIR is not used.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd).
        style_dim: width of w.
        demodulate: normalise each output filter to unit norm (off for toRGB).
        up: double the resolution before the conv.
        num_kernels: size of the adaptive kernel bank (1 = plain StyleGAN2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        up: bool = False,
        num_kernels: int = 1,
    ):
        super().__init__()
        if num_kernels < 1:
            raise ConfigError(f"num_kernels must be >= 1, got {num_kernels}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.up, self.num_kernels = demodulate, up, num_kernels
        self.affine = EqualLinear(style_dim, in_channels, bias_init=1.0)  # s = A(w), starts near 1
        self.weight = nn.Parameter(torch.randn(num_kernels, out_channels, in_channels, kernel_size, kernel_size))
        self.selector = EqualLinear(style_dim, num_kernels) if num_kernels > 1 else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def kernel_weights(self, w: torch.Tensor) -> torch.Tensor:
        """Selection weights [B, num_kernels] = softmax(W_filter^T w + b_filter) (GigaGAN sec. 3.2); rows sum to 1."""
        if self.selector is None:
            return torch.ones(w.shape[0], 1, device=w.device, dtype=w.dtype)
        return self.selector(w).softmax(dim=-1)

    def sample_kernels(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample modulated (and demodulated) kernels [B, out, in, k, k] for styles w [B, style_dim]."""
        weight = self.weight.to(w.dtype)  # [N,O,I,k,k]
        if self.selector is None:
            kernel = weight[0].unsqueeze(0).expand(w.shape[0], -1, -1, -1, -1)  # [B,O,I,k,k]
        else:
            kernel = torch.einsum("bn,noikl->boikl", self.kernel_weights(w), weight)  # [B,O,I,k,k]
        s = self.affine(w)  # [B,I]
        kernel = kernel * self.weight_gain * s[:, None, :, None, None]  # [B,O,I,k,k] (StyleGAN2 eq. 1)
        if self.demodulate:
            d = torch.rsqrt(kernel.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)  # [B,O,1,1,1] (eq. 3)
            kernel = kernel * d
        return kernel

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """x [B,in,H,W], w [B,style_dim] -> [B,out,H',W'] (H' = 2H when up).

        Args:
            x: input features.
            w: styles.
            fused: True = build each sample's kernel and run one grouped conv; False = StyleGAN2's "non-fused" form
                (scale the input by s, conv with the shared kernel(s), scale the output by the demodulation
                coefficients; with a bank, every kernel is applied and the outputs mixed by the selection weights,
                which is N times the conv cost). Both give the same result. None: non-fused for a single kernel
                (cheapest, no per-sample kernel), fused for a bank.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"ModulatedConv2d expects [B,{self.in_channels},H,W], got {tuple(x.shape)}")
        if w.ndim != 2 or w.shape[0] != x.shape[0]:
            raise ConfigError(f"style w must be [B={x.shape[0]},style_dim], got {tuple(w.shape)}")
        b = x.shape[0]
        w = w.to(x.dtype)
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # [B,I,2H,2W]
        h, wd = x.shape[2], x.shape[3]
        pad = self.kernel_size // 2
        if fused is None:
            fused = self.selector is not None
        if not fused:
            return self._forward_unfused(x, w)
        kernel = self.sample_kernels(w)  # [B,O,I,k,k]
        kernel = kernel.reshape(b * self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        y = F.conv2d(x.reshape(1, b * self.in_channels, h, wd), kernel, padding=pad, groups=b)  # [1,B*O,H,W]
        return y.reshape(b, self.out_channels, h, wd)

    def _forward_unfused(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Same result as the grouped conv, computed with shared kernels (StyleGAN2 fused_modconv=False)."""
        b, n, o = x.shape[0], self.num_kernels, self.out_channels
        weight = self.weight.to(x.dtype) * self.weight_gain  # [N,O,I,k,k]
        s = self.affine(w)  # [B,I]
        p = self.kernel_weights(w)  # [B,N]
        y = F.conv2d(x * s[:, :, None, None], weight.reshape(n * o, *weight.shape[2:]),
                     padding=self.kernel_size // 2)  # [B,N*O,H,W]
        if n > 1:
            y = torch.einsum("bn,bnohw->bohw", p, y.reshape(b, n, o, *y.shape[2:]))  # [B,O,H,W]
        if self.demodulate:
            # ||sum_n p_n K_n s||^2 per output filter via the kernels' Gram matrix G[n,m,o,i] (StyleGAN2 eq. 3)
            gram = torch.einsum("noikl,moikl->nmoi", weight, weight)  # [N,N,O,I]
            norm2 = torch.einsum("bn,bm,nmoi,bi->bo", p, p, gram, s.square())  # [B,O]
            y = y * torch.rsqrt(norm2 + 1e-8)[:, :, None, None]
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, up={self.up}, "
                f"demodulate={self.demodulate}, num_kernels={self.num_kernels}")


class StyledConv(nn.Module):
    """StyleGAN2 synthesis layer: modulated conv -> per-pixel noise -> bias -> leaky ReLU (gain sqrt(2)).

    Noise modes: "random" (fresh N(0,1) noise from the global torch RNG or `generator`), "const" (a fixed buffer, so
    outputs are a deterministic function of the latent: per-seed reproducible at any batch size), "none".

    Args:
        in_channels: input channels.
        out_channels: output channels.
        style_dim: width of w.
        resolution: output resolution (size of the constant noise buffer).
        kernel_size: square kernel size.
        up: double the resolution first.
        num_kernels: adaptive kernel bank size.
        use_noise: learn a noise strength and add noise (False removes the noise input entirely).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        style_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: bool = False,
        num_kernels: int = 1,
        use_noise: bool = True,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, True, up, num_kernels)
        self.resolution = resolution
        self.use_noise = use_noise
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """x [B,in,H,W], w [B,style_dim] -> [B,out,R,R]."""
        x = self.conv(x, w)  # [B,O,R,R]
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype,
                                    generator=generator)  # [B,1,R,R]
            elif noise_mode == "const":
                noise = self.noise_const.to(x.dtype)[None, None]  # [1,1,R,R]
            else:
                raise ConfigError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
            x = x + noise * self.noise_strength.to(x.dtype)
        return scaled_lrelu(x + self.bias.to(x.dtype)[None, :, None, None])


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB without demodulation, plus bias (StyleGAN2 skip architecture).

    Args:
        in_channels: input channels.
        style_dim: width of w.
        out_channels: image channels.
    """

    def __init__(self, in_channels: int, style_dim: int, out_channels: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W], w [B,style_dim] -> [B,3,H,W] (not clamped)."""
        return self.conv(x, w) + self.bias.to(x.dtype)[None, :, None, None]
