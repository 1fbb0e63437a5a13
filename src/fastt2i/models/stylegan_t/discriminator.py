"""StyleGAN-T discriminator: trainable 1D-conv heads over the tapped tokens of a frozen backbone, text by projection.

StyleGAN-T sec. 3.2 ("discriminator design"), after Projected GAN (Sauer et al. 2021) and the official
`networks/discriminator.py`:

    x --blur(sigma)--> [augment] --crop/resize to R--> frozen backbone --taps--> f_i [B,C_i,N_i]
    f_i --head_i(f_i, c)--> logits [B,N_i];  D(x, c) = concat_i logits  [B, sum_i N_i]

* The backbone (DINO ViT-S/16 in the paper; see `backbones.py`) is frozen and is NOT a registered submodule: it is
  absent from `state_dict()` and `parameters()`, follows `.to()` / `.half()` of D, stays in eval mode under
  `D.train()`, and is rebuilt from `config.backbone` when D is built from its config (so `from_pretrained` needs only
  the heads' weights). Gradients still flow through it to the input images: G is trained through it.
* head_i: Conv1d(k=1) -> BN -> LReLU, then a residual block (Conv1d(k=9, circular padding) -> BN -> LReLU, summed
  with its input and scaled by 1/sqrt(2)); every conv spectrally normalised (Miyato et al. 2018); BN is a
  "virtual batch" norm: statistics over groups of 8 samples and all tokens, no running averages (official
  `BatchNormLocal`), so it behaves the same in train and eval mode and a sample's logits depend on its group.
* Text conditioning by projection (Miyato & Koyama 2018): a 1x1 conv maps the features to cmap_dim channels and
  logit_n = <cls(h)_n, W c> / sqrt(cmap_dim) per token n, with W c an equalized linear map of the pooled text
  embedding c (c_dim = 0: unconditional, a 1-channel cls conv).
* Inputs larger than R are randomly cropped to R x R (per sample with probability `p_crop`, drawn from `generator`),
  otherwise resized (antialiased bilinear); smaller ones are upsampled bilinearly. `blur_sigma` blurs the inputs first
  (the trainer fades it out over the first kimg, StyleGAN-T's `blur_init_sigma`/`blur_fade_kimg`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.models.stylegan_t.backbones import FrozenBackbone, load_backbone, refuse_metric_network
from fastt2i.nn.equalized import EqualLinear
from fastt2i.serialization import PretrainedMixin, register_model


@dataclass(frozen=True)
class StyleGANTDiscriminatorConfig:
    """Args:
    backbone: spec of the frozen feature backbone (`backbones.load_backbone`): "emoji-clip", "dino:/path/to/dir",
        "dino-tiny-random" or an export directory of an emoji-clip-like model; never "emoji-net".
    c_dim: width of the pooled text embedding c given to `forward` (0 = unconditional).
    head_channels: width of the heads; None = the width of each tap (the official heads keep the ViT's 384).
    cmap_dim: width of the projection space of text conditioning (official 64).
    kernel_size: kernel of the residual conv over the token sequence (official 9, circular padding).
    virtual_batch: samples per batch-norm statistics group (official 8).
    taps: which of the backbone's taps get a head, by position in its tap list; () = all.
    p_crop: probability that an input larger than the backbone's resolution is randomly cropped rather than resized
        (official 0.5).
    """

    backbone: str = "emoji-clip"
    c_dim: int = 384
    head_channels: int | None = None
    cmap_dim: int = 64
    kernel_size: int = 9
    virtual_batch: int = 8
    taps: tuple[int, ...] = ()
    p_crop: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone.strip():
            raise ConfigError("backbone must be a non-empty spec string (e.g. 'emoji-clip')")
        if self.backbone.strip() == "emoji-net" or self.backbone.startswith("emoji-net:"):
            raise ConfigError("backbone 'emoji-net' refused: it is the FD feature network and must never be a "
                              "training signal; use 'emoji-clip' or 'dino:/path/to/dino-vits16'")
        if self.c_dim < 0 or self.cmap_dim < 1 or self.virtual_batch < 1:
            raise ConfigError("c_dim must be >= 0, cmap_dim and virtual_batch >= 1")
        if self.head_channels is not None and self.head_channels < 1:
            raise ConfigError(f"head_channels must be positive or None, got {self.head_channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd and positive, got {self.kernel_size}")
        if len(set(self.taps)) != len(self.taps) or any(t < 0 for t in self.taps):
            raise ConfigError(f"taps must be distinct non-negative tap positions, got {self.taps}")
        if not 0.0 <= self.p_crop <= 1.0:
            raise ConfigError(f"p_crop must be in [0, 1], got {self.p_crop}")


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable blur of [B,C,H,W] with the official StyleGAN-T kernel f(t) = 2^-(t/sigma)^2, t = -r..r,
    r = floor(3 sigma), normalised to sum 1; reflect padding keeps the size (official: zero padding). r = 0 (sigma
    below 1/3, e.g. 0) returns the images unchanged."""
    r = int(math.floor(sigma * 3)) if sigma > 0 else 0
    if r <= 0:
        return images
    b, c, h, w = images.shape
    t = torch.arange(-r, r + 1, device=images.device, dtype=torch.float32)  # [2r+1]
    f = (t / sigma).square().neg().exp2()
    f = (f / f.sum()).to(images.dtype)  # [2r+1]
    mode = "reflect" if r < min(h, w) else "replicate"
    x = F.pad(images, (r, r, r, r), mode=mode)  # [B,C,H+2r,W+2r]
    x = F.conv2d(x, f.view(1, 1, 1, -1).expand(c, 1, 1, 2 * r + 1), groups=c)  # [B,C,H+2r,W]: along width
    return F.conv2d(x, f.view(1, 1, -1, 1).expand(c, 1, 2 * r + 1, 1), groups=c)  # [B,C,H,W]: along height


class VirtualBatchNorm1d(nn.Module):
    """Batch norm over groups of samples (official `BatchNormLocal`): x [B,C,N] is split into G = ceil(B / group)
    groups of consecutive samples; each group is normalised per channel with its own mean and (biased) variance over
    its samples and tokens; then a learned per-channel affine. No running statistics: train and eval are the same.

    When G does not divide B the groups are near-equal (sizes differ by one; the official code requires G | B).

    Args:
        channels: C.
        group: the virtual batch size (8).
        eps: added to the variance.
        affine: learn a per-channel scale and shift.
    """

    def __init__(self, channels: int, group: int = 8, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.group, self.eps = group, eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """x [G,M,C,N] -> each group normalised over (M, N)."""
        xf = x.float()
        mean = xf.mean(dim=(1, 3), keepdim=True)  # [G,1,C,1]
        var = xf.var(dim=(1, 3), keepdim=True, unbiased=False)  # [G,1,C,1]
        return ((xf - mean) * torch.rsqrt(var + self.eps)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        g = -(-b // self.group)  # G = ceil(B / group)
        if b % g == 0:
            y = self._norm(x.reshape(g, b // g, c, n)).reshape(b, c, n)  # [B,C,N]
        else:
            y = torch.cat([self._norm(part[None])[0] for part in torch.tensor_split(x, g)])  # [B,C,N]
        if self.weight is not None:
            y = y * self.weight.to(y.dtype)[None, :, None] + self.bias.to(y.dtype)[None, :, None]
        return y


class SpectralConv1d(nn.Conv1d):
    """Conv1d whose weight is divided by its spectral norm sigma (largest singular value of the weight viewed as
    [out, in*k]; Miyato et al. 2018), estimated by power iteration: one step per training forward, the vectors kept
    as buffers `weight_u` [out], `weight_v` [in*k] (eval mode reuses them, so eval outputs are deterministic).

    (torch's `parametrizations.spectral_norm` does the same, but its 15 power iterations at construction take ~0.3 s
    per conv on the meta device, where `from_pretrained` sizes a model first.)

    Args:
        cin: input channels.
        cout: output channels.
        kernel_size: odd kernel; > 1 uses circular padding over the token sequence (the official heads).
        n_power_iterations: power-iteration steps per training forward.
        eps: added in the normalisations.
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, n_power_iterations: int = 1, eps: float = 1e-12):
        super().__init__(cin, cout, kernel_size, padding=kernel_size // 2,
                         padding_mode="circular" if kernel_size > 1 else "zeros")
        self.n_power_iterations, self.eps = n_power_iterations, eps
        self.register_buffer("weight_u", F.normalize(torch.randn(cout), dim=0, eps=eps))
        self.register_buffer("weight_v", F.normalize(torch.randn(cin * kernel_size), dim=0, eps=eps))
        if self.weight.device.type != "meta":
            self._power_iteration(15)  # start from a good estimate (as torch's spectral_norm does)

    @torch.no_grad()
    def _power_iteration(self, steps: int) -> None:
        w = self.weight.detach().flatten(1).float()  # [out, in*k]
        u, v = self.weight_u.float(), self.weight_v.float()
        for _ in range(steps):
            v = F.normalize(w.t() @ u, dim=0, eps=self.eps)  # [in*k]
            u = F.normalize(w @ v, dim=0, eps=self.eps)  # [out]
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    def normalized_weight(self) -> torch.Tensor:
        """W / sigma(W), [out, in, k]; sigma = u^T W v with the current (detached) singular vectors."""
        if self.training and self.n_power_iterations > 0:
            self._power_iteration(self.n_power_iterations)
        u, v = self.weight_u.clone(), self.weight_v.clone()  # clones: the next forward updates the buffers in place
        with torch.autocast(self.weight.device.type, enabled=False):  # sigma in the weight's own precision
            w = self.weight.flatten(1)  # [out, in*k]
            sigma = torch.dot(u.to(w.dtype), w @ v.to(w.dtype))  # scalar: u^T W v
        return self.weight / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.normalized_weight(), self.bias)  # [B,cout,N]


class _Block(nn.Module):
    """Spectrally normalised Conv1d -> virtual-batch BN -> LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, kernel: int, group: int):
        super().__init__()
        self.conv = SpectralConv1d(cin, cout, kernel)
        self.norm = VirtualBatchNorm1d(cout, group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)  # [B,cout,N]


class DiscriminatorHead(nn.Module):
    """One head over one tap's tokens (official `DiscHead`): [B,C_in,N] tokens, c [B,c_dim] -> logits [B,1,N].

    Args:
        cin: width of the tap.
        channels: width of the head.
        c_dim: text embedding width (0 = unconditional).
        cmap_dim: projection width.
        kernel_size: kernel of the residual (circular) conv.
        group: virtual batch size of the batch norms.
    """

    def __init__(self, cin: int, channels: int, c_dim: int, cmap_dim: int = 64, kernel_size: int = 9, group: int = 8):
        super().__init__()
        self.c_dim, self.cmap_dim = c_dim, cmap_dim
        self.conv_in = _Block(cin, channels, 1, group)
        self.res = _Block(channels, channels, kernel_size, group)
        self.cls = SpectralConv1d(channels, cmap_dim if c_dim > 0 else 1, 1)
        self.cmapper = EqualLinear(c_dim, cmap_dim) if c_dim > 0 else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = self.conv_in(x)  # [B,ch,N]
        h = (self.res(h) + h) * (1 / math.sqrt(2))  # [B,ch,N]: residual block
        out = self.cls(h)  # [B,cmap,N] (or [B,1,N] unconditional)
        if self.cmapper is None:
            return out
        cmap = self.cmapper(c.to(out.dtype))  # [B,cmap]
        return (out * cmap[:, :, None]).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))  # [B,1,N]


@register_model("stylegan-t-discriminator")
class StyleGANTDiscriminator(PretrainedMixin, nn.Module):
    """Projected, text-conditioned StyleGAN-T discriminator over a frozen backbone (see module docstring).

    Args:
        config: the heads and the backbone's spec.
        backbone: an already loaded frozen backbone (`backbones.load_backbone(config.backbone)` when None); one with a
            `spec` must match `config.backbone` (a hand-built one, spec None, cannot be rebuilt by `from_pretrained`).
    """

    config_class = StyleGANTDiscriminatorConfig

    def __init__(
        self,
        config: StyleGANTDiscriminatorConfig = StyleGANTDiscriminatorConfig(),
        backbone: FrozenBackbone | None = None,
    ):
        super().__init__()
        self.config = c = config
        if backbone is None:
            backbone = load_backbone(c.backbone)
        else:
            refuse_metric_network(backbone)
            spec = getattr(backbone, "spec", None)
            if spec is not None and spec != c.backbone:
                raise ConfigError(f"backbone was loaded from {spec!r} but the D config names {c.backbone!r}")
        for attr in ("resolution", "channels", "taps"):
            if not hasattr(backbone, attr):
                raise ConfigError(f"{type(backbone).__name__} is not a D backbone (no {attr!r}); see backbones.py")
        backbone.requires_grad_(False).eval()
        object.__setattr__(self, "backbone", backbone)  # not a submodule: never in state_dict / parameters
        n = len(backbone.channels)
        self.tap_ids = tuple(c.taps) if c.taps else tuple(range(n))
        if any(t >= n for t in self.tap_ids):
            raise ConfigError(f"taps {c.taps} out of range: backbone {c.backbone!r} has {n} taps")
        self.heads = nn.ModuleDict({
            str(i): DiscriminatorHead(backbone.channels[t], c.head_channels or backbone.channels[t], c.c_dim,
                                      c.cmap_dim, c.kernel_size, c.virtual_batch)
            for i, t in enumerate(self.tap_ids)
        })

    @property
    def resolution(self) -> int:
        """The backbone's input size R."""
        return int(self.backbone.resolution)

    def _apply(self, fn, recurse: bool = True):  # keep the unregistered backbone on D's device / dtype
        super()._apply(fn, recurse)
        self.backbone._apply(fn)
        return self

    def train(self, mode: bool = True) -> StyleGANTDiscriminator:
        super().train(mode)
        self.backbone.eval()  # frozen: its BatchNorm / dropout never change
        return self

    def prepare(
        self,
        images: torch.Tensor,
        blur_sigma: float = 0.0,
        generator: torch.Generator | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The backbone's input: blur, augment, then crop or resize to R. images [B,3,H,W] in [-1,1] -> [B,3,R,R].

        Args:
            images: the images D judges.
            blur_sigma: blur them first (0 = no blur).
            generator: draws the crops (and which samples are cropped); None = the global RNG.
            augment: a differentiable augmentation applied after the blur, as in the official D (e.g.
                `functools.partial(fastt2i.data.augment.diff_augment, generator=g)`); None = none.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"D expects images [B,3,H,W] in [-1,1], got {tuple(images.shape)}")
        x = blur(images, blur_sigma)  # [B,3,H,W]
        if augment is not None:
            x = augment(x)  # [B,3,H,W]
        b, _, h, w = x.shape
        r = self.resolution
        if (h, w) == (r, r):
            return x
        # the antialiased resize has no bf16 CPU kernel: it runs on fp32 (its output re-enters autocast downstream)
        resized = lambda: F.interpolate(x.float(), size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        if h < r or w < r or self.config.p_crop == 0:
            return resized()  # [B,3,R,R]
        dev = generator.device if generator is not None else torch.device("cpu")
        crop = torch.rand(b, generator=generator, device=dev) < self.config.p_crop  # [B] which samples are cropped
        oy = torch.randint(0, h - r + 1, (b,), generator=generator, device=dev).to(x.device)  # [B] top
        ox = torch.randint(0, w - r + 1, (b,), generator=generator, device=dev).to(x.device)  # [B] left
        rows = oy[:, None] + torch.arange(r, device=x.device)  # [B,R]
        cols = ox[:, None] + torch.arange(r, device=x.device)  # [B,R]
        out = x.gather(2, rows[:, None, :, None].expand(b, 3, r, w))  # [B,3,R,W]
        out = out.gather(3, cols[:, None, None, :].expand(b, 3, r, r))  # [B,3,R,R]: per-sample random crops
        crop = crop.to(x.device)
        if not bool(crop.all()):
            out = torch.where(crop[:, None, None, None], out, resized())  # [B,3,R,R]
        return out

    def forward(
        self,
        images: torch.Tensor,
        c: torch.Tensor | None,
        blur_sigma: float = 0.0,
        generator: torch.Generator | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Judge images against their pooled text embeddings.

        Args:
            images: [B,3,H,W] in [-1,1] (any size: cropped or resized to the backbone's resolution).
            c: [B,c_dim] pooled text embedding (None when c_dim = 0).
            blur_sigma: Gaussian-like blur of the inputs (0 = none).
            generator: draws the random crops of inputs larger than the backbone's resolution.
            augment: differentiable augmentation after the blur (see `prepare`).

        Returns:
            fp32 logits [B, sum_i N_i]: one per token of every tapped head, heads in order.
        """
        cfg = self.config
        if cfg.c_dim > 0 and (c is None or c.ndim != 2 or c.shape != (images.shape[0], cfg.c_dim)):
            got = None if c is None else tuple(c.shape)
            raise ValueError(f"D expects a pooled text embedding c [B,{cfg.c_dim}] with B={images.shape[0]}, got {got}")
        x = self.prepare(images, blur_sigma, generator, augment)  # [B,3,R,R]
        feats = self.backbone.taps(x)  # per tap [B,C_t,N_t]
        logits = []
        for i, t in enumerate(self.tap_ids):
            out = self.heads[str(i)](feats[t], c)  # [B,1,N_t]
            logits.append(out.flatten(1))  # [B,N_t]
        return torch.cat(logits, dim=1).float()  # [B, sum N_t]
