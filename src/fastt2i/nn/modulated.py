"""StyleGAN2 modulated convolution with GigaGAN's sample-adaptive kernel selection, a styled layer, and toRGB."""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.nn.equalized import LRELU_GAIN, LRELU_SLOPE, EqualLinear

NOISE_MODES = ("random", "const", "none")

# Auto choice between the two forms of `ModulatedConv2d` (see its `forward`). The non-fused form of a bank of N
# kernels costs N shared-weight convolutions, the fused form one grouped convolution plus a per-sample kernel
# [B,O,I,k,k] built on every call; the extra work of the non-fused form per kernel element is (N-1)*H*W
# multiply-adds, so it wins while (N-1)*H*W stays small. Measured on emoji64's layers (AMX Xeon, batch 32, fp32 and
# bf16 autocast; `python benchmarks/generator_speed.py --layers`): at (N-1)*H*W = 64 (2 kernels at 8 px) non-fused
# takes 0.4-0.7x the fused time, at 768 (4 kernels at 16 px) 1.1-2.2x, at 3072 2-2.7x; batch 1 agrees or is even. A single
# kernel (N=1) is always non-fused (0.1-0.4x at batch 32), a 1x1 kernel (toRGB) always fused (a batched matmul).
UNFUSED_LIMIT = 256
CONV_FORMS = (None, True, False)


def _fp32_region(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off (styles, selection softmax and demodulation coefficients stay fp32 under bf16 autocast)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of x runs in: the autocast dtype when autocast is on for x's device, else x.dtype."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 (align_corners=False: the [1,3,3,1]/4 filter in each direction, edges clamped), [B,C,H,W] ->
    [B,C,2H,2W]; channels-last in, channels-last out (CPU's channels-last kernel is 3-7x faster than NCHW's)."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def upsample_images(img: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 of RGB skip images [B,3,H,W] -> [B,3,2H,2W] (the generators' skip path), held with memory
    [H,W,B,3].

    The batch's 3-channel images are upsampled as one channels-last image with B*3 channels: ~6x faster on CPU
    than NCHW (or channels-last with 3 channels), the same values. A view throughout when img has that layout.
    """
    b, c, h, w = img.shape
    flat = img.permute(2, 3, 0, 1).reshape(h, w, b * c).permute(2, 0, 1)[None]  # [1,B*3,H,W] channels-last
    up = upsample2x(flat)[0]  # [B*3,2H,2W], memory [2H,2W,B*3]
    return up.permute(1, 2, 0).reshape(2 * h, 2 * w, b, c).permute(2, 3, 0, 1)  # [B,3,2H,2W]


class ModulatedConv2d(nn.Module):
    """Modulated/demodulated conv (StyleGAN2, Karras et al. 2020 eq. 1-3) over a bank of adaptively mixed kernels.

    GigaGAN sec. 3.2, "sample-adaptive kernel selection": the layer holds ``num_kernels`` kernels K_1..K_N; for each
    sample the kernel is ``K = sum_i softmax(W_filter^T w + b_filter)_i K_i``, which is then modulated by the style
    ``s = A(w)`` and demodulated. ``num_kernels=1`` has no selector and is exactly the StyleGAN2 layer.
    Two forms compute the same result (`forward`): "fused", each sample's kernel and one grouped convolution over the
    batch, and "non-fused", shared-weight convolutions with the style and the selection applied to the activations.

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
        fused: True = always the fused form, False = always the non-fused one, None = choose per call by size
            (`use_fused`); a plain attribute, so it can be switched after loading (`set_conv_form`).
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
        fused: bool | None = None,
    ):
        super().__init__()
        if num_kernels < 1:
            raise ConfigError(f"num_kernels must be >= 1, got {num_kernels}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if fused not in CONV_FORMS:
            raise ConfigError(f"fused must be True, False or None (auto), got {fused!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.demodulate, self.up, self.num_kernels = demodulate, up, num_kernels
        self.fused = fused
        self.affine = EqualLinear(style_dim, in_channels, bias_init=1.0)  # s = A(w), starts near 1
        self.weight = nn.Parameter(torch.randn(num_kernels, out_channels, in_channels, kernel_size, kernel_size))
        self.selector = EqualLinear(style_dim, num_kernels) if num_kernels > 1 else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self._derived: dict = {}  # weight-derived tensors reused while no gradient is recorded (`_from_weight`)

    def _from_weight(self, key: tuple, make) -> torch.Tensor:
        """make() (a function of the weight only), cached across calls when no gradient flows to the weight.

        Keyed on the weight's version counter, storage and device, so an optimizer step, `load_state_dict` or `.to()`
        is seen at once; while training (grad mode and a trainable weight) nothing is cached. Tensors made under
        `torch.inference_mode` are kept apart (outside it they could not be saved for a backward through x).
        """
        wt = self.weight
        if torch.is_grad_enabled() and wt.requires_grad:
            return make()
        key = (*key, torch.is_inference_mode_enabled())
        stamp = (wt._version, wt.data_ptr(), wt.device, wt.dtype)
        hit = self._derived.get(key)
        if hit is None or hit[0] != stamp:
            hit = self._derived[key] = (stamp, make())
        return hit[1]

    # ------------------------------------------------------------------------------------------------ styles
    def styles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s [B,in] = A(w), p [B,num_kernels] = the selection weights), both fp32 whatever the autocast state."""
        with _fp32_region(w.device.type):
            w = w.float()
            s = self.affine(w)  # [B,I] (StyleGAN2 eq. 1: s = A(w))
            if self.selector is None:
                p = torch.ones(w.shape[0], 1, device=w.device)  # [B,1]
            else:
                p = self.selector(w).softmax(dim=-1)  # [B,N] (GigaGAN sec. 3.2)
        return s, p

    def kernel_weights(self, w: torch.Tensor) -> torch.Tensor:
        """Selection weights [B, num_kernels] = softmax(W_filter^T w + b_filter) (GigaGAN sec. 3.2); rows sum to 1."""
        return self.styles(w)[1]

    def demodulation(self, s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Demodulation coefficients d [B,out] = 1/||sum_n p_n K_n s||, fp32 (StyleGAN2 eq. 3), from the Gram matrix.

        ||sum_n p_n K_n[o] s||^2 = sum_{n,m} p_n p_m sum_i s_i^2 G[n,m,o,i] with G[n,m,o,i] = <K_n[o,i], K_m[o,i]>
        (the sum over the k x k taps), so no per-sample kernel is needed.

        Args:
            s: [B,in] styles (fp32).
            p: [B,num_kernels] selection weights (fp32).
        """
        n, o, i = self.num_kernels, self.out_channels, self.in_channels
        with _fp32_region(s.device.type):
            gram = self._from_weight(("gram",), self._gram)  # [N*N,O*I]
            if n == 1:
                norm2 = s.square() @ gram.view(o, i).t()  # [B,O]
            else:
                pp = (p[:, :, None] * p[:, None, :]).reshape(-1, n * n)  # [B,N*N]
                norm2 = torch.bmm((pp @ gram).view(-1, o, i), s.square()[:, :, None])[..., 0]  # [B,O]
            return torch.rsqrt(norm2 + 1e-8)  # [B,O]

    def _gram(self) -> torch.Tensor:
        """G[n,m,o,i] = <K_n[o,i], K_m[o,i]> of the effective kernels, as [N*N, O*I] fp32."""
        taps = (self.weight.float() * self.weight_gain).flatten(3)  # [N,O,I,k*k]
        n = taps.shape[0]
        return (taps[:, None] * taps[None]).sum(-1).reshape(n * n, -1)  # (a broadcast sum, not O*I tiny matmuls)

    def sample_kernels(self, w: torch.Tensor) -> torch.Tensor:
        """Per-sample modulated (and demodulated) kernels [B, out, in, k, k] for styles w [B, style_dim], fp32."""
        s, p = self.styles(w)
        return self._kernels(s, p)

    def _kernels(self, s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """[B,O,I,k,k] fp32 (channels-last strides: memory [B,O,k,k,I]): sum_n p_n K_n (GigaGAN sec. 3.2) times s
        (StyleGAN2 eq. 1) and d (eq. 3), in one pass after the mix."""
        n, o, i, k = self.num_kernels, self.out_channels, self.in_channels, self.kernel_size
        with _fp32_region(s.device.type):
            bank = self._from_weight(("bank",), lambda: (self.weight.float().permute(0, 1, 3, 4, 2) * self.weight_gain)
                                     .reshape(n, -1))  # [N,O*k*k*I]
            kernel = (p @ bank).view(-1, o, k, k, i)  # [B,O,k,k,I] = sum_n p_n K_n
            scale = s[:, None, :]  # [B,1,I]
            if self.demodulate:
                scale = scale * self.demodulation(s, p)[:, :, None]  # [B,O,I]
            return (kernel * scale[:, :, None, None, :]).permute(0, 1, 4, 2, 3)  # [B,O,I,k,k]

    def use_fused(self, x: torch.Tensor) -> bool:
        """The form a call with input x [B,in,H,W] takes: `fused` when set, else by size (module constants above).

        The choice depends on the bank size, the kernel size and the output resolution, never on the batch size or
        dtype, so a seed gives the same image alone or in a batch.
        """
        if self.fused is not None:
            return self.fused
        if self.kernel_size == 1:
            return True  # 1x1 (toRGB): the per-sample kernel is tiny and one batched matmul reads x once
        if self.num_kernels == 1:
            return False
        h, wd = x.shape[2] * (2 if self.up else 1), x.shape[3] * (2 if self.up else 1)
        return (self.num_kernels - 1) * h * wd > UNFUSED_LIMIT

    # ------------------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool | None = None) -> torch.Tensor:
        """x [B,in,H,W], w [B,style_dim] -> [B,out,H',W'] (H' = 2H when up).

        Args:
            x: input features.
            w: styles.
            fused: True = build each sample's kernel and run one grouped conv (StyleGAN2 fused_modconv); False =
                StyleGAN2's "non-fused" form (scale the input by s, convolve with the shared kernel(s), scale the
                output by the demodulation coefficients; for a bank, the N input copies scaled by p_n s go through
                one convolution with the N kernels side by side, so the mix costs no extra pass); None = the
                layer's `fused` attribute, or by size (`use_fused`). Both give the same result.
        """
        y, d = self.modulated(x, w, fused)
        return y if d is None else y * d.to(y.dtype)[:, :, None, None]

    def modulated(
        self, x: torch.Tensor, w: torch.Tensor, fused: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(y [B,out,H',W'], d [B,out] fp32 or None): the output is y * d; d is None when y is final already.

        `StyledConv` folds d into its bias / noise / activation epilogue instead of spending a pass on it.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"ModulatedConv2d expects [B,{self.in_channels},H,W], got {tuple(x.shape)}")
        if w.ndim != 2 or w.shape[0] != x.shape[0]:
            raise ConfigError(f"style w must be [B={x.shape[0]},style_dim], got {tuple(w.shape)}")
        s, p = self.styles(w)  # [B,I], [B,N] fp32
        if fused is None:
            fused = self.use_fused(x)
        if fused:
            return self._forward_fused(x, s, p), None
        y = self._forward_unfused(x, s, p)
        return y, (self.demodulation(s, p) if self.demodulate else None)

    def _forward_fused(self, x: torch.Tensor, s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """One grouped conv with each sample's modulated, demodulated kernel (StyleGAN2 fused_modconv=True).

        The batch is folded into the channels channels-last (memory [H,W,B,I]), with a channels-last kernel: oneDNN's
        grouped kernels take that layout (an NCHW input costs a reorder inside oneDNN, and is 1-2x slower).
        The result has memory [H,W,B,O]; the next layer's channels-last copy (or `StyledConv`'s epilogue) fixes it.
        """
        b, i, o, k = x.shape[0], self.in_channels, self.out_channels, self.kernel_size
        dtype = compute_dtype(x)
        if self.up:
            x = upsample2x(x.contiguous(memory_format=torch.channels_last))  # [B,I,2H,2W]
        h, wd = x.shape[2], x.shape[3]
        if k == 1:  # a per-sample 1x1 conv is a batched matmul; x [B,I,H*W] is a view in either layout
            kernel = self._kernels(s, p).to(dtype).view(b, o, i)  # [B,O,I]
            return torch.bmm(kernel, x.to(dtype).flatten(2)).view(b, o, h, wd)  # [B,O,H,W]
        kernel = self._kernels(s, p).to(dtype).flatten(0, 1)  # [B*O,I,k,k] channels-last
        x = x.to(dtype).permute(2, 3, 0, 1).contiguous().view(h, wd, b * i).permute(2, 0, 1)[None]  # [1,B*I,H,W]
        y = F.conv2d(x, kernel, padding=k // 2, groups=b)  # [1,B*O,H,W], memory [H,W,B*O]
        return y[0].permute(1, 2, 0).view(h, wd, b, o).permute(2, 3, 0, 1)  # [B,O,H,W]

    def _forward_unfused(self, x: torch.Tensor, s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """conv(x * s, K) for one kernel; for N kernels conv([p_1 s x, ..., p_N s x], [K_1 ... K_N]) = sum_n p_n
        conv(s x, K_n) (a convolution is linear in its weight): StyleGAN2 fused_modconv=False, without demodulation.

        Channels-last throughout, so that oneDNN runs its direct (AMX under bf16 autocast) kernels without reorders.
        """
        b, n, i, o, k = x.shape[0], self.num_kernels, self.in_channels, self.out_channels, self.kernel_size
        dtype = compute_dtype(x)
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)  # [B,I,H,W]
        if n == 1:
            x = x * s.to(dtype)[:, :, None, None]  # [B,I,H,W] (eq. 1 moved onto the activations)
            if self.up:
                x = upsample2x(x)  # [B,I,2H,2W]; after the scaling, on 4x fewer pixels (both are linear per channel)
        else:
            if self.up:
                x = upsample2x(x)  # [B,I,2H,2W]
            h, wd = x.shape[2], x.shape[3]
            ps = (p[:, :, None] * s[:, None, :]).to(dtype)  # [B,N,I]
            x = x.permute(0, 2, 3, 1)[:, :, :, None, :] * ps[:, None, None]  # [B,H,W,N,I]
            x = x.reshape(b, h, wd, n * i).permute(0, 3, 1, 2)  # [B,N*I,H,W] channels-last
        weight = self._from_weight(("shared", dtype), lambda: (self.weight * self.weight_gain).to(dtype)
                                   .permute(1, 3, 4, 0, 2).reshape(o, k, k, n * i).permute(0, 3, 1, 2))  # [O,N*I,k,k]
        return F.conv2d(x, weight, padding=k // 2)  # [B,O,H',W'] channels-last (the weight is channels-last too)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, up={self.up}, "
                f"demodulate={self.demodulate}, num_kernels={self.num_kernels}, fused={self.fused}")


def modulated_convs(module: nn.Module) -> Iterator[ModulatedConv2d]:
    """Every `ModulatedConv2d` inside `module`."""
    return (m for m in module.modules() if isinstance(m, ModulatedConv2d))


def set_conv_form(module: nn.Module, fused: bool | None) -> nn.Module:
    """Switch every `ModulatedConv2d` in `module` to the fused (True) / non-fused (False) / auto (None) form.

    The result is the same up to float rounding; only the speed changes. Returns `module`.
    """
    if fused not in CONV_FORMS:
        raise ConfigError(f"fused must be True, False or None (auto), got {fused!r}")
    for m in modulated_convs(module):
        m.fused = fused
    return module


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
        """x [B,in,H,W], w [B,style_dim] -> [B,out,R,R].

        Computes lrelu(y d + noise + bias) * sqrt(2) as lrelu(y (d sqrt 2) + (noise + bias) sqrt 2) (leaky ReLU is
        positively homogeneous): two passes and the activation, in place when no gradient is recorded.
        """
        if noise_mode not in NOISE_MODES:
            raise ConfigError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        y, d = self.conv.modulated(x, w)  # [B,O,R,R], [B,O] or None
        dt, cl = y.dtype, torch.channels_last
        gain = LRELU_GAIN
        scale = gain if d is None else (d * gain).to(dt)[:, :, None, None]  # [B,O,1,1]: demodulation x gain
        shift = (self.bias.float() * gain)[None, :, None, None]  # [1,O,1,1]
        noise = None  # [B,1,R,R] random noise x strength x gain
        if self.use_noise and noise_mode != "none":
            strength = self.noise_strength.float() * gain
            if noise_mode == "random":
                noise = torch.randn(y.shape[0], 1, y.shape[2], y.shape[3], device=y.device, dtype=dt,
                                    generator=generator) * strength.to(dt)
            else:
                shift = shift + self.noise_const.float()[None, None] * strength  # [1,O,R,R], batch-independent
        shift = shift.to(dt).contiguous(memory_format=cl)  # the layout of y: a fast broadcast
        if torch.is_grad_enabled():
            out = (y * scale).contiguous(memory_format=cl) + shift
            return F.leaky_relu(out if noise is None else out + noise, LRELU_SLOPE)
        out = y if y.is_contiguous(memory_format=cl) else torch.empty_like(y, memory_format=cl)
        out = torch.mul(y, scale, out=out).add_(shift)  # y is this call's own conv output: overwritten
        return F.leaky_relu_(out if noise is None else out.add_(noise), LRELU_SLOPE)


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
        y = self.conv(x, w)  # [B,3,H,W]
        return y + self.bias.to(y.dtype)[None, :, None, None]
