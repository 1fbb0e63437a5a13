"""StyleGAN-T generator: w = [MLP(z), t] with w_avg, and the residual synthesis network with second-order styles."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.models.stylegan_t.config import StyleGANTGeneratorConfig
from fastt2i.nn.equalized import LRELU_GAIN, LRELU_SLOPE, EqualLinear
from fastt2i.nn.modulated import NOISE_MODES, ModulatedConv2d, compute_dtype, upsample_images
from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.text.base import unpack_text

SQRT_HALF = math.sqrt(0.5)


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=-1, keepdim=True) + eps).rsqrt()


def _fp32_region(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off, so that the styles stay fp32 under bf16/fp16 autocast (as in `fastt2i.nn.modulated`)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()




def _blur_kernel(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The depthwise [1,3,3,1] x [1,3,3,1] / 16 filter with gain 4 (x2 upsampling), [channels,1,4,4] channels-last."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device) / 4  # sums to 2 per axis
    return (f[:, None] * f[None, :]).to(dtype).expand(channels, 1, 4, 4).contiguous(memory_format=torch.channels_last)


class _NCHWWithCLGrad(torch.autograd.Function):
    """x (channels-last) -> an NCHW copy whose gradient goes back channels-last (a plain `.contiguous()` would hand
    the NCHW gradient to the previous layer, whose elementwise backward passes then run ~10x slower on CPU)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class SecondOrderModulatedConv2d(ModulatedConv2d):
    """A StyleGAN2 modulated conv whose style is a second-order polynomial of w (StyleGAN-T sec. 3.1):
    ``s = A1(w) * A2(w) + A3(w)`` with three learned affine maps (all biases start at 1, as the official code).

    Everything else (demodulation, the fused / non-fused forms) is `fastt2i.nn.modulated.ModulatedConv2d` with one
    kernel, except upsampling, which follows the official transposed conv + low-pass filter (`modulated`).
    `affine` (inherited) is A1, `affine2` A2 and `affine3` A3.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (odd).
        style_dim: width of w.
        demodulate: normalise each output filter (off for toRGB).
        up: double the resolution before the conv.
        weight_init: std of the initial (unit-gain) weight (official: 1 for convs, 0.1 for toRGB).
        fused: the conv form (see `ModulatedConv2d`); None = by size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        up: bool = False,
        weight_init: float = 1.0,
        fused: bool | None = None,
    ):
        super().__init__(in_channels, out_channels, kernel_size, style_dim, demodulate, up, 1, fused)
        self.affine2 = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.affine3 = EqualLinear(style_dim, in_channels, bias_init=1.0)
        if weight_init != 1.0:
            with torch.no_grad():
                self.weight.mul_(weight_init)

    def modulated(
        self, x: torch.Tensor, w: torch.Tensor, fused: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(y [B,out,H',W'], d [B,out] fp32 or None), the output being y * d (see `ModulatedConv2d.modulated`).

        Upsampling layers take the official route (StyleGAN2's conv2d_resample): a stride-2 transposed conv of the
        modulated input, then the [1,3,3,1] low-pass filter (gain 4, zero padding) on the output: the bilinear
        upsampling + conv of `ModulatedConv2d` in the interior, at a quarter of its multiply-adds (2-3x faster
        on CPU); only the image border differs (zero padding instead of edge clamping). Always non-fused.
        """
        if not self.up:
            return super().modulated(x, w, fused)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"ModulatedConv2d expects [B,{self.in_channels},H,W], got {tuple(x.shape)}")
        if w.ndim != 2 or w.shape[0] != x.shape[0]:
            raise ConfigError(f"style w must be [B={x.shape[0]},style_dim], got {tuple(w.shape)}")
        s, p = self.styles(w)  # [B,I], [B,1] fp32
        dtype, k, o = compute_dtype(x), self.kernel_size, self.out_channels
        x = x.to(dtype).contiguous(memory_format=torch.channels_last) * s.to(dtype)[:, :, None, None]  # [B,I,H,W]
        # flipped, so that the transposed conv is F.conv2d's correlation (like the non-upsampling layers)
        weight = (self.weight[0] * self.weight_gain).to(dtype).flip(2, 3).transpose(0, 1)  # [I,O,k,k]
        y = F.conv_transpose2d(x, weight, stride=2)  # [B,O,2H+k-2,2W+k-2]: conv over the zero-upsampled input
        pad = 2 - k // 2  # both sides (the official px0 = px1 for odd k): 2H+k-2 + 2 pad - 3 = 2H
        if pad < 0:
            y, pad = y[..., -pad: y.shape[2] + pad, -pad: y.shape[3] + pad], 0
        y = F.conv2d(y, _blur_kernel(o, dtype, y.device), padding=pad, groups=o)  # [B,O,2H,2W] low-pass
        return y, (self.demodulation(s, p) if self.demodulate else None)

    @property
    def affines(self) -> tuple[EqualLinear, EqualLinear, EqualLinear]:
        """(A1, A2, A3)."""
        return self.affine, self.affine2, self.affine3

    def styles(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s [B,in] = A1(w) * A2(w) + A3(w), p [B,1] = ones: no kernel bank), fp32 whatever the autocast state."""
        with _fp32_region(w.device.type):
            w = w.float()
            s = torch.addcmul(self.affine3(w), self.affine(w), self.affine2(w))  # [B,I] (StyleGAN-T sec. 3.1)
            p = torch.ones(w.shape[0], 1, device=w.device)  # [B,1]
        return s, p


class SynthesisLayer(nn.Module):
    """Modulated conv -> noise -> bias -> leaky ReLU x gain (StyleGAN2), optionally as a residual layer.

    Residual (StyleGAN-T sec. 3.1, "residual convolutions"; order as in the official code): the input is
    GroupNorm-ed first, ``h = GN(x)``, and the output is ``(gamma * layer(h) + h) * sqrt(2)`` with the layer scale
    gamma initialised at `layer_scale_init`, so a new block starts close to the identity on normalised features.

    Args:
        config: the generator config.
        cin: input channels.
        cout: output channels.
        resolution: output resolution (size of the constant noise buffer).
        up: upsample x2 first.
        residual: the residual form above (needs cin == cout, no up).
        gain: extra output gain (the official code uses sqrt(1/2) on the layers of the residual blocks).
    """

    def __init__(self, config: StyleGANTGeneratorConfig, cin: int, cout: int, resolution: int, up: bool = False,
                 residual: bool = False, gain: float = 1.0):
        super().__init__()
        if residual and (cin != cout or up):
            raise ConfigError(f"a residual layer keeps its size, got {cin}->{cout} channels, up={up}")
        self.conv = SecondOrderModulatedConv2d(cin, cout, 3, config.w_dim, up=up)
        self.resolution, self.residual = resolution, residual
        self.act_gain = LRELU_GAIN * gain
        self.clamp = None if config.conv_clamp is None else config.conv_clamp * gain
        self.use_noise = config.use_noise
        if config.use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(cout))
        if residual:
            self.norm = nn.GroupNorm(config.group_norm_groups(cout), cout)
            self.gamma = nn.Parameter(torch.full((cout,), float(config.layer_scale_init)))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> torch.Tensor:
        """x [B,cin,H,W], w [B,w_dim] -> [B,cout,R,R]."""
        if self.residual:
            # fp32 statistics (the official GroupNorm32); computed NCHW: CPU's channels-last GroupNorm backward is
            # ~3x slower than the two layout copies
            x = F.group_norm(_NCHWWithCLGrad.apply(x.float()), self.norm.num_groups, self.norm.weight, self.norm.bias,
                             self.norm.eps).to(x.dtype).contiguous(memory_format=torch.channels_last)  # [B,C,R,R]
        y, d = self.conv.modulated(x, w)  # [B,O,R,R], [B,O] or None
        dt, cl = y.dtype, torch.channels_last
        g = self.act_gain
        # lrelu(y d + noise + b) * g == lrelu(y (d g) + (noise + b) g): leaky ReLU is positively homogeneous
        scale = y.new_full((1, 1, 1, 1), g) if d is None else (d * g).to(dt)[:, :, None, None]  # [B,O,1,1]
        shift = (self.bias.float() * g)[None, :, None, None]  # [1,O,1,1]
        noise = None
        if self.use_noise and noise_mode != "none":
            strength = self.noise_strength.float() * g
            if noise_mode == "random":
                noise = torch.randn(y.shape[0], 1, y.shape[2], y.shape[3], device=y.device, dtype=dt,
                                    generator=generator) * strength.to(dt)  # [B,1,R,R]
            else:
                shift = shift + self.noise_const.float()[None, None] * strength  # [1,O,R,R], batch-independent
        # Fused passes; the in-place ops only overwrite tensors that autograd does not keep.
        out = torch.addcmul(shift.to(dt).contiguous(memory_format=cl), y, scale)  # [B,O,R,R] = y d g + b g
        if noise is not None:
            out = out.add_(noise)  # [B,O,R,R]
        if self.clamp is None:
            out = F.leaky_relu_(out, LRELU_SLOPE)  # [B,O,R,R]
        else:  # official conv_clamp (x gain); hardtanh = clamp with a one-pass backward
            out = F.hardtanh_(F.leaky_relu(out, LRELU_SLOPE), -self.clamp, self.clamp)  # [B,O,R,R]
        if self.residual:
            gamma = self.gamma.to(dt)[None, :, None, None]  # [1,O,1,1] layer scale
            out = torch.addcmul(x, out, gamma).mul_(math.sqrt(2))  # [B,O,R,R] = (gamma y + h) sqrt 2
        return out


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (second-order style, no demodulation), plus bias, clamped like the convs.

    Args:
        config: the generator config.
        cin: input channels.
    """

    def __init__(self, config: StyleGANTGeneratorConfig, cin: int):
        super().__init__()
        self.conv = SecondOrderModulatedConv2d(cin, 3, 1, config.w_dim, demodulate=False, weight_init=0.1)
        self.bias = nn.Parameter(torch.zeros(3))
        self.clamp = config.conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B,C,H,W] (channels-last), w [B,w_dim] -> [B,3,H,W].

        A per-sample 1x1 conv as a matmul over x's channels-last memory [B,H*W,C], so that the gradient of x comes
        back channels-last too (the layout of the rest of the network; a mismatch makes CPU elementwise backward
        passes ~10x slower).
        """
        b, c, h, wd = x.shape
        dtype = compute_dtype(x)
        kernel = self.conv.sample_kernels(w).to(dtype).view(b, 3, c)  # [B,3,C] = K * s (no demodulation)
        xt = x.to(dtype).permute(0, 2, 3, 1).reshape(b, h * wd, c)  # [B,H*W,C], a view when x is channels-last
        y = torch.baddbmm(self.bias.to(dtype)[None, None, :], xt, kernel.transpose(1, 2))  # [B,H*W,3]
        y = y.view(b, h, wd, 3).permute(0, 3, 1, 2)  # [B,3,H,W]
        return y if self.clamp is None else F.hardtanh(y, -self.clamp, self.clamp)  # [B,3,H,W] official clamp


class FourierInput(nn.Module):
    """The official StyleGAN-T input: StyleGAN3's Fourier features (sec. 3.1 of StyleGAN3), without its filters.

    C random frequencies (drawn in a disc of radius `bandwidth`) and phases, sampled on a size x size grid of
    pixel centres (coordinates in (-1/2, 1/2)); an affine of w (weight 0, bias (1, 0, 0, 0): the identity at init)
    rotates and translates them per sample; out-of-band amplitudes fade out; a learned C x C map mixes the channels.

    Args:
        w_dim: width of w.
        channels: output channels C.
        size: output size (= sampling rate).
        bandwidth: frequency radius.
    """

    def __init__(self, w_dim: int, channels: int, size: int, bandwidth: float):
        super().__init__()
        self.channels, self.size, self.bandwidth = channels, size, float(bandwidth)
        freqs = torch.randn(channels, 2)
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        self.register_buffer("freqs", freqs)  # [C,2]
        self.register_buffer("phases", torch.rand(channels) - 0.5)  # [C]
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = EqualLinear(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w [B,w_dim] -> [B,C,size,size] (channels-last memory), fp32."""
        with _fp32_region(w.device.type):
            t = self.affine(w.float())  # [B,4] = (cos, sin, tx, ty) up to scale
            t = t / t[:, :2].norm(dim=1, keepdim=True)  # unit rotation
            c, s = t[:, 0], t[:, 1]
            rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], 1)  # [B,2,2]
            shift = -(rot @ t[:, 2:, None])[..., 0]  # [B,2]: rotate, then translate
            phases = self.phases + shift @ self.freqs.t()  # [B,C]
            freqs = self.freqs @ rot  # [B,C,2]
            sr = self.size
            amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (sr / 2 - self.bandwidth)).clamp(0, 1)  # [B,C]
            u = (torch.arange(self.size, device=w.device, dtype=torch.float32) + 0.5) / sr - 0.5  # [S]
            fx, fy = freqs[:, None, None, :, 0], freqs[:, None, None, :, 1]  # [B,1,1,C]
            x = u[None, None, :, None] * fx + u[None, :, None, None] * fy + phases[:, None, None, :]  # [B,S(y),S(x),C]
            x = torch.sin(x * (2 * math.pi)) * amp[:, None, None, :]  # [B,S,S,C]
            x = x @ (self.weight / math.sqrt(self.channels)).t()  # [B,S,S,C]
        return x.permute(0, 3, 1, 2)  # [B,C,S,S] channels-last


class SynthesisBlock(nn.Module):
    """One resolution: the input (block 0: Fourier features or a constant) or an upsampling modulated conv, then
    `res_blocks` residual blocks (a modulated conv and a residual modulated conv, both with gain sqrt(1/2)), and
    a toRGB whose output is added to the upsampled image (StyleGAN2 skip architecture).

    Args:
        config: the generator config.
        index: resolution index (0 = start_resolution).
    """

    def __init__(self, config: StyleGANTGeneratorConfig, index: int):
        super().__init__()
        res, cout = config.resolutions[index], config.channels_at(index)
        self.index, self.resolution = index, res
        self.input: nn.Module | None = None
        self.const: nn.Parameter | None = None
        self.conv0: SynthesisLayer | None = None
        if index == 0 and config.input_type == "fourier":
            self.input = FourierInput(config.w_dim, cout, res, config.input_bandwidth)
        elif index == 0:
            self.const = nn.Parameter(torch.randn(cout, res, res))
        else:
            self.conv0 = SynthesisLayer(config, config.channels_at(index - 1), cout, res, up=True)
        self.layers = nn.ModuleList()
        for _ in range(config.res_blocks_at(index)):
            self.layers.append(SynthesisLayer(config, cout, cout, res, gain=SQRT_HALF))
            self.layers.append(SynthesisLayer(config, cout, cout, res, residual=True, gain=SQRT_HALF))
        self.torgb = ToRGB(config, cout)
        self.num_ws = config.num_ws_at(index)

    def forward(self, x: torch.Tensor | None, ws: torch.Tensor, noise_mode: str,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,C_prev,R/2,R/2] (None at block 0), ws [B,num_ws+1,w_dim] -> (x [B,C,R,R], rgb [B,3,R,R])."""
        k = 0
        if self.input is not None:
            x = self.input(ws[:, 0])  # [B,C,R,R]
            k = 1
        elif self.const is not None:
            b = ws.shape[0]
            x = self.const.to(ws.dtype).unsqueeze(0).expand(b, -1, -1, -1)  # [B,C,R,R]
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, generator)  # [B,C,R,R]
            k = 1
        for layer in self.layers:
            x = layer(x, ws[:, k], noise_mode, generator)  # [B,C,R,R]
            k += 1
        return x, self.torgb(x, ws[:, k])  # [B,C,R,R], [B,3,R,R]


class SynthesisNetwork(nn.Module):
    """The blocks at start_resolution..resolution; the image is the sum of the upsampled toRGB outputs.

    Style index order (the official one): block i reads styles k_i .. k_i + n_i - 1 for its own layers
    (`config.num_ws_at(i)`), and its toRGB reads style k_i + n_i, which is also the first style of block i+1.

    Args:
        config: the generator config.
    """

    def __init__(self, config: StyleGANTGeneratorConfig):
        super().__init__()
        self.config = config
        self.num_ws, self.w_dim = config.num_ws, config.w_dim
        self.blocks = nn.ModuleList(SynthesisBlock(config, i) for i in range(config.num_resolutions))

    def forward(
        self,
        ws: torch.Tensor,
        t_local: torch.Tensor | None = None,
        t_mask: torch.Tensor | None = None,
        noise_mode: str | None = None,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """ws [B,num_ws,w_dim] -> [img [B,3,R,R]] (a one-element list, like GigaGAN's pyramid; not clamped).

        Args:
            ws: per-layer styles.
            t_local: per-word text features (part of the GigaGAN interface; StyleGAN-T's synthesis does not use them).
            t_mask: their mask (unused, as t_local).
            noise_mode: "random", "const" or "none"; None = "random" in train mode, "const" in eval mode.
            generator: RNG for "random" noise.
        """
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ConfigError(f"ws must be [B,{self.num_ws},{self.w_dim}], got {tuple(ws.shape)}")
        if t_local is not None and t_local.shape[0] != ws.shape[0]:
            raise ConfigError(f"t_local has batch {t_local.shape[0]} but ws has batch {ws.shape[0]}")
        noise_mode = noise_mode or ("random" if self.training else "const")
        if noise_mode not in NOISE_MODES:
            raise ConfigError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x: torch.Tensor | None = None
        img: torch.Tensor | None = None
        k = 0
        for block in self.blocks:
            x, rgb = block(x, ws[:, k: k + block.num_ws + 1], noise_mode, generator)  # [B,C_i,R_i,R_i], [B,3,R_i,R_i]
            k += block.num_ws
            rgb = rgb.to(torch.promote_types(rgb.dtype, torch.float32))
            img = rgb if img is None else upsample_images(img) + rgb  # [B,3,R_i,R_i] (skip architecture)
        return [img.contiguous()]


class MappingNetwork(nn.Module):
    """w = [MLP(z), t] (StyleGAN-T sec. 3.1), broadcast to `num_ws` styles, with a tracked average for truncation.

    z is normalised to unit second moment and goes through `mapping_layers` equalized-LR layers of width z_dim
    (learning-rate multiplier `mapping_lr_mul`, the last one linear); the text embedding t is concatenated
    unchanged. ``w_avg`` [w_dim] is the EMA of whole w's: its z part is the official ``x_avg``; its text part
    (the mean text embedding seen in training) is used only by GigaGAN's text-conditioned truncation.

    Args:
        config: the generator config.
    """

    def __init__(self, config: StyleGANTGeneratorConfig):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = config.z_dim, config.w_dim, config.num_ws
        self.text_width = config.pooled_width
        self.w_avg_beta = config.w_avg_beta
        n = config.mapping_layers
        self.layers = nn.Sequential(*(
            EqualLinear(config.z_dim, config.z_dim, lr_mul=config.mapping_lr_mul,
                        activation="lrelu" if i < n - 1 else None) for i in range(n)
        ))
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(
        self,
        z: torch.Tensor,
        t_global: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        """z [B,z_dim], t_global [B,pooled_width] -> ws [B,num_ws,w_dim].

        Args:
            z: latents.
            t_global: text embedding from `StyleGANTGenerator.text_condition`.
            truncation_psi: the official StyleGAN-T truncation: the z part moves to its average,
                x <- x_avg + psi (x - x_avg); the text part is left as it is (so psi=0 gives the prompt's "mean"
                image, not an unconditional one).
            truncation_cutoff: truncate only the first `cutoff` styles (None = all, the official behaviour).
            update_w_avg: move w_avg towards this batch's mean w by an EMA (the trainer sets it on G steps).
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ConfigError(f"z must be [B,{self.z_dim}], got {tuple(z.shape)}")
        if t_global.shape != (z.shape[0], self.text_width):
            raise ConfigError(f"t_global must be [B={z.shape[0]},{self.text_width}], got {tuple(t_global.shape)}")
        x = self.layers(_normalize_2nd_moment(z))  # [B,z_dim]
        w = torch.cat([x, t_global.to(x.dtype)], dim=1)  # [B,w_dim] (sec. 3.1: w = [MLP(z), t])
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)  # [B,num_ws,w_dim]
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x_avg = self.w_avg[: self.z_dim].to(ws.dtype)  # [z_dim]
            ws[:, :cutoff, : self.z_dim] = x_avg.lerp(ws[:, :cutoff, : self.z_dim], truncation_psi)  # z part only
        return ws


def text_vector(pooled: torch.Tensor, config: StyleGANTGeneratorConfig) -> torch.Tensor:
    """pooled [B,P] -> the text part t [B,P] of w (and D's condition): L2-normalised when `config.normalize_text`
    (the official code normalises its CLIP text features), times `config.text_scale`."""
    t = F.normalize(pooled, dim=-1) if config.normalize_text else pooled  # [B,P]
    return t * config.text_scale if config.text_scale != 1 else t  # [B,P]




@register_model("stylegan-t-generator")
class StyleGANTGenerator(nn.Module, PretrainedMixin):
    """StyleGAN-T text-to-image generator (Sauer et al. 2023, sec. 3.1); the frozen text encoder lives outside.

    The same interface as `GigaGANGenerator`: ``G.text_condition`` gives (t_local, t_mask, t_global) with t_global
    the (L2-normalised) pooled text vector, ``G.mapping(z, t_global)`` gives ws (and keeps ``w_avg``),
    ``G.synthesis(ws, t_local, t_mask)`` gives ``[img]``; ``G(z, text)`` chains them. StyleGAN-T conditions only
    through t_global; t_local / t_mask are passed along unused.

    Args:
        config: a `StyleGANTGeneratorConfig` (see `fastt2i.models.stylegan_t.presets`).
    """

    config_class = StyleGANTGeneratorConfig

    def __init__(self, config: StyleGANTGeneratorConfig):
        super().__init__()
        if not isinstance(config, StyleGANTGeneratorConfig):
            raise ConfigError(f"StyleGANTGenerator needs a StyleGANTGeneratorConfig, got {type(config).__name__}")
        self.config = config
        self.z_dim, self.w_dim, self.num_ws = config.z_dim, config.w_dim, config.num_ws
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)

    @property
    def w_avg(self) -> torch.Tensor:
        """The tracked average w [w_dim] (EMA over training batches; the first z_dim entries are the z part)."""
        return self.mapping.w_avg

    def text_condition(
        self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens [B,L,text_dim], mask [B,L] bool, pooled [B,P] -> (t_local = tokens, t_mask = mask, t_global [B,P]).

        t_global is `text_vector(pooled, config)`; there are no learned text layers.
        """
        cfg = self.config
        if tokens.ndim != 3 or tokens.shape[-1] != cfg.text_dim:
            raise ConfigError(f"text tokens must be [B,L,{cfg.text_dim}], got {tuple(tokens.shape)}")
        if mask.shape != tokens.shape[:2] or mask.dtype != torch.bool:
            raise ConfigError(f"text mask must be bool [B,L]={tuple(tokens.shape[:2])}, got {mask.dtype} "
                              f"{tuple(mask.shape)}")
        if pooled.ndim != 2 or pooled.shape != (tokens.shape[0], cfg.pooled_width):
            raise ConfigError(f"pooled text must be [B,{cfg.pooled_width}], got {tuple(pooled.shape)}")
        return tokens, mask, text_vector(pooled, cfg)  # t_global [B,P]

    def forward(
        self,
        z: torch.Tensor,
        text: Any,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
        noise_mode: str | None = None,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """z [B,z_dim] and text (TextEmbedding or (tokens [B,L,D], mask [B,L], pooled [B,P])) -> [img [B,3,R,R]].

        The image is in about [-1,1] (not clamped).
        """
        tokens, mask, pooled = unpack_text(text)
        if tokens.shape[0] != z.shape[0]:
            raise ConfigError(f"z has batch {z.shape[0]} but the text has batch {tokens.shape[0]}")
        t_local, t_mask, t_global = self.text_condition(tokens, mask, pooled)  # [B,L,D], [B,L], [B,P]
        ws = self.mapping(z, t_global, truncation_psi, truncation_cutoff, update_w_avg)  # [B,num_ws,w_dim]
        return self.synthesis(ws, t_local, t_mask, noise_mode, generator)  # [[B,3,R,R]]
