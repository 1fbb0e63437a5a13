"""GigaGAN discriminator: text-conditioned, multi-scale input / multi-scale output (MS-I/O), GigaGAN sec. 3.4.

Einops key: b batch, p computation paths stacked along the batch (one per input scale i), c channels, h w spatial,
l text tokens, d widths.

Structure (L = pyramid_levels, level k has resolution R_k = resolution / 2^k, finest k = 0):

    x_i --fromRGB_i--> f --block_i--> ... --block_j--> h_{i->j} --head_j(h, t_D)--> logit D_ij  for every j >= i

* `block_k` is the trunk at level k (StyleGAN2 residual D block, halving the resolution except at the last level), shared
  by every path that goes through level k: phi_{i->j} = block_j o ... o block_i o fromRGB_i (sec. 3.4, "multi-scale
  input, multi-scale output"). An L-level pyramid gives exactly L(L+1)/2 predictions (i, j), 0 <= i <= j < L.
* No computation is repeated: the paths that reach level k (those with i <= k, all distinct inputs) are stacked along the
  batch and run through `block_k` and `head_k` in ONE call, so block k processes (k+1)*B rows in total and each
  (i, j) logit is computed exactly once. gigagan-pytorch 0.3.0 computed 22 predictions of which 13 were distinct.
* `judge_many` goes further for the D step: real and fake pyramids ride the trunk in one call and the matched and
  mismatched descriptors go through the heads in one call (S image sets x T texts), which at small widths, where a
  layer's cost is mostly fixed per-call overhead, costs little more than one forward.
* `head_j` is psi_j of eq. 7: minibatch-std (grouped within a path, never across paths), a 3x3 conv, then the text
  enters (i) through text-modulated 1x1 convs (the paper's psi_j(phi, t_D)) and/or (ii) a projection term
  <proj(h), t_D> (Miyato & Koyama 2018), plus the unconditional Conv1x1(phi) skip of eq. 7. The logit map is averaged
  over space. Every logit depends on the text, at every scale.
* t_D (sec. 3.4, "text conditioning"): the frozen encoder's tokens go through D's own learned attention layers; the
  pooled embedding enters as an extra leading token whose output is t_D (the paper uses only a global descriptor in D).
* `multiscale=False` is the StyleGAN2 baseline: one path from the finest image through every block, one prediction
  (0, L-1) from the last head, still with minibatch-std and the same text conditioning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.nn.attention import ATTENTION_KINDS, SelfAttention, TransformerBlock
from fastt2i.nn.equalized import EqualConv2d, EqualLinear, scaled_lrelu

CONDITIONINGS = ("projection", "modulated", "both")


@dataclass(frozen=True)
class GigaGANDiscriminatorConfig:
    """Args:
    resolution: side of the finest image (a power of two).
    pyramid_levels: L, number of pyramid images (finest `resolution`, each next one half as large; coarsest >= 4).
    channels: trunk width at each level, finest first (length L).
    blocks: residual blocks per level (the first of a level halves the resolution, except at the coarsest level).
    text_encoder: spec of the frozen text encoder whose outputs D receives (kept outside the network).
    text_dim: width of the encoder's tokens and pooled vector.
    cond_dim: width of D's text descriptor t_D.
    text_attn_layers: D's own learned attention layers over the frozen tokens (0 = pooled vector only).
    text_heads: heads of those layers.
    attention: add a self-attention block after the blocks of every level whose resolution is in `attention_resolutions`.
    attention_resolutions: resolutions (of the features entering a level) that get self-attention.
    attention_type: "l2" (GigaGAN sec. 3.2) or "dot"; used by the text layers and the trunk self-attention.
    attention_heads: heads of the trunk self-attention.
    multiscale: True = MS-I/O (L(L+1)/2 predictions); False = StyleGAN2 D on the finest image only (1 prediction).
    conditioning: "projection" (psi(h) + <proj(h), t_D>), "modulated" (text-modulated 1x1 convs, the paper's psi_j),
        or "both".
    head_layers: text-modulated 1x1 conv layers in each head (used by "modulated" and "both").
    mbstd_group: minibatch-std group size (the group actually used is gcd(batch, mbstd_group)); 0 disables it.
    mbstd_channels: minibatch-std feature channels.
    image_channels: channels of every pyramid image (3 = RGB; the upsampler's D takes 6: the image and its
        low-resolution input, resized to the level, GigaGAN sec. 3.6).
    """

    resolution: int = 64
    pyramid_levels: int = 5
    channels: tuple[int, ...] = (32, 64, 128, 256, 256)
    blocks: int = 1
    text_encoder: str = "minilm"
    text_dim: int = 384
    cond_dim: int = 256
    text_attn_layers: int = 1
    text_heads: int = 4
    attention: bool = False
    attention_resolutions: tuple[int, ...] = (8,)
    attention_type: str = "l2"
    attention_heads: int = 2
    multiscale: bool = True
    conditioning: str = "both"
    head_layers: int = 2
    mbstd_group: int = 4
    mbstd_channels: int = 1
    image_channels: int = 3

    def __post_init__(self) -> None:
        r, n = self.resolution, self.pyramid_levels
        if r < 4 or r & (r - 1):
            raise ConfigError(f"resolution must be a power of two >= 4, got {r}")
        if n < 1 or r >> (n - 1) < 4:
            raise ConfigError(f"pyramid_levels={n} at resolution {r} would go below 4 px (max {int(math.log2(r)) - 1})")
        if len(self.channels) != n or min(self.channels) < 1:
            raise ConfigError(f"channels needs {n} positive widths (one per level), got {self.channels}")
        if self.blocks < 1 or self.head_layers < 0 or self.text_attn_layers < 0 or self.mbstd_group < 0:
            raise ConfigError("blocks must be >= 1 and head_layers, text_attn_layers, mbstd_group >= 0")
        if self.conditioning not in CONDITIONINGS:
            raise ConfigError(f"conditioning must be one of {CONDITIONINGS}, got {self.conditioning!r}")
        if self.attention_type not in ATTENTION_KINDS:
            raise ConfigError(f"attention_type must be one of {ATTENTION_KINDS}, got {self.attention_type!r}")
        if self.text_dim < 1 or self.cond_dim < 1 or self.image_channels < 1:
            raise ConfigError("text_dim, cond_dim and image_channels must be positive")

    @property
    def resolutions(self) -> tuple[int, ...]:
        """R_k of every level, finest first."""
        return tuple(self.resolution >> k for k in range(self.pyramid_levels))


class ScaleLogits(NamedTuple):
    """One prediction D_ij: the image at pyramid level `i` judged after trunk level `j` (i <= j). logits: [B]."""

    i: int
    j: int
    logits: torch.Tensor


def image_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """[B,3,R,R] -> [x_R, x_R/2, ...] (`levels` images, finest first), each the 2x2 average of the previous one."""
    if images.ndim != 4:
        raise ValueError(f"images must be [B,C,H,W], got {tuple(images.shape)}")
    pyr = [images]
    for _ in range(levels - 1):
        pyr.append(F.avg_pool2d(pyr[-1], 2))  # [B,3,R/2^k,R/2^k]
    return pyr


def minibatch_std(x: torch.Tensor, paths: int, group: int, channels: int) -> torch.Tensor:
    """Append `channels` minibatch-std features (StyleGAN2), grouping samples only within each of `paths` paths.

    Args:
        x: [P*B,C,H,W], P paths stacked along the batch.
        paths: P.
        group: maximum group size; the size used is gcd(B, group).
        channels: number of std features (C must be divisible by it).
    """
    n, c, h, w = x.shape
    b = n // paths
    g = math.gcd(b, group)
    y = x.float().reshape(paths, g, b // g, channels, c // channels, h, w)  # [P,G,M,F,c,H,W]
    y = y - y.mean(dim=1, keepdim=True)  # (not torch.var over dim 1: ~20x slower on CPU for this layout)
    y = (y.square().mean(dim=1) + 1e-8).sqrt()  # [P,M,F,c,H,W]
    y = y.mean(dim=(3, 4, 5))  # [P,M,F]
    y = repeat(y, "p m f -> (p g m) f hh ww", g=g, hh=h, ww=w).to(x.dtype)  # [P*B,F,H,W]
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return torch.cat([x, y], dim=1).contiguous(memory_format=layout)  # [P*B,C+F,H,W], in x's layout


class ResidualDownBlock(nn.Module):
    """StyleGAN2 residual D block: (conv3x3 -> [2x avg-pool] -> conv3x3) + skip, scaled by 1/sqrt(2)."""

    def __init__(self, cin: int, cout: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = EqualConv2d(cin, cin, 3, activation="lrelu")
        self.conv2 = EqualConv2d(cin, cout, 3, activation="lrelu")
        self.skip = EqualConv2d(cin, cout, 1, bias=False) if (cin != cout or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)  # [N,cin,R,R]
        if self.down:
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)  # [N,cin,R/2,R/2]
        h = self.conv2(h)  # [N,cout,R',R']
        s = x if self.skip is None else self.skip(x)  # [N,cout,R',R']
        return (h + s) * (1 / math.sqrt(2))


class _Level(nn.Module):
    """Trunk level k: `blocks` residual blocks (the first one downsamples unless this is the coarsest level) and
    an optional self-attention block."""

    def __init__(self, cin: int, cout: int, blocks: int, down: bool, attention: SelfAttention | None):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualDownBlock(cin if b == 0 else cout, cout, down and b == 0)
                                    for b in range(blocks))
        self.attn = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)  # [N,cout,R',R']
        return x if self.attn is None else self.attn(x)


class _TextModConv1x1(nn.Module):
    """1x1 conv whose input channels are scaled by an affine map of t_D, then demodulated (StyleGAN2 weight
    (de)modulation as in GigaGAN eq. 2, with t_D in place of w); leaky-ReLU output."""

    def __init__(self, cin: int, cout: int, cond_dim: int):
        super().__init__()
        self.affine = EqualLinear(cond_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = self.affine(t)  # [N,cin]
        w = self.weight / math.sqrt(self.weight.shape[1])  # [cout,cin]
        demod = torch.rsqrt((w.square() @ s.square().t()).t() + 1e-8)  # [N,cout] = 1/||w * s|| per output channel
        y = F.conv2d(x * s[:, :, None, None], w[:, :, None, None])  # [N,cout,H,W]
        return scaled_lrelu(y * demod[:, :, None, None] + self.bias[None, :, None, None])


class _Head(nn.Module):
    """psi_j + Conv1x1 skip of GigaGAN eq. 7, text-conditioned by modulation and/or projection; -> logit [N]."""

    def __init__(self, cin: int, config: GigaGANDiscriminatorConfig):
        super().__init__()
        self.cfg = config
        f = config.mbstd_channels if config.mbstd_group > 0 else 0
        self.conv = EqualConv2d(cin + f, cin, 3, activation="lrelu")
        mod = config.conditioning in ("modulated", "both")
        self.mod = nn.ModuleList(_TextModConv1x1(cin, cin, config.cond_dim) for _ in range(config.head_layers if mod else 0))
        self.out = EqualConv2d(cin, 1, 1)  # psi's final unconditional score
        self.skip = EqualConv2d(cin, 1, 1, bias=False)  # eq. 7: + Conv1x1(phi_{i->j}(x_i))
        proj = config.conditioning in ("projection", "both")
        self.proj = EqualConv2d(cin, config.cond_dim, 1) if proj else None

    def features(self, phi: torch.Tensor, paths: int) -> torch.Tensor:
        """The text-independent part of psi_j: minibatch-std and the 3x3 conv; phi [P*B,C,r,r] -> [P*B,C,r,r]."""
        cfg = self.cfg
        h = phi
        if cfg.mbstd_group > 0:
            h = minibatch_std(h, paths, cfg.mbstd_group, cfg.mbstd_channels)  # [N,C+F,r,r]
        return self.conv(h)  # [N,C,r,r]

    def score(self, phi: torch.Tensor, h: torch.Tensor, t: torch.Tensor, texts: int = 1) -> torch.Tensor:
        """The text-conditioned rest for `texts` descriptors at once: phi [N,C,r,r] trunk features, h = features(phi)
        [N,C,r,r], t [texts*N,cond_dim] t_D (text-major) -> fp32 logits [texts*N].

        The text-independent Conv1x1(phi) skip runs once; h goes through the text-modulated layers for all texts in
        one batched call (N rows per text)."""
        skip = self.skip(phi)  # [N,1,r,r]: eq. 7's unconditional Conv1x1(phi), independent of the text
        if texts > 1:
            h, skip = torch.cat([h] * texts), torch.cat([skip] * texts)  # [T*N,C,r,r], [T*N,1,r,r] (layout kept)
        for layer in self.mod:
            h = layer(h, t)  # [T*N,C,r,r]
        logit_map = self.out(h) + skip  # [T*N,1,r,r]
        logit = logit_map.float().mean(dim=(1, 2, 3))  # [T*N]: logits (and the losses on them) in fp32
        if self.proj is not None:  # projection discriminator: <proj(h), t_D> / sqrt(d)
            proj = self.proj(h).float().mean(dim=(2, 3))  # [T*N,cond_dim]
            logit = logit + (proj * t.float()).sum(dim=1) / math.sqrt(t.shape[1])  # [T*N]
        return logit

    def forward(self, phi: torch.Tensor, t: torch.Tensor, paths: int) -> torch.Tensor:
        """phi [P*B,C,r,r] trunk features of P stacked paths; t [P*B,cond_dim] t_D. Returns fp32 logits [P*B]."""
        return self.score(phi, self.features(phi, paths), t)


class _TextBranch(nn.Module):
    """t_D = T_D(frozen tokens, pooled): learned attention layers over [pooled token; tokens], output of the first
    position (GigaGAN sec. 3.4, "text conditioning": D uses only a global descriptor)."""

    def __init__(self, config: GigaGANDiscriminatorConfig):
        super().__init__()
        d = config.cond_dim
        self.pooled_in = EqualLinear(config.text_dim, d)
        self.tokens_in = EqualLinear(config.text_dim, d) if config.text_attn_layers > 0 else None
        dim_head = max(8, d // config.text_heads)
        self.layers = nn.ModuleList(
            TransformerBlock(d, config.text_heads, dim_head, config.attention_type) for _ in range(config.text_attn_layers)
        )
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        g = self.pooled_in(pooled).unsqueeze(1)  # [B,1,d]
        if self.tokens_in is None:
            return self.norm(g[:, 0])  # [B,d]
        x = torch.cat([g, self.tokens_in(tokens)], dim=1)  # [B,1+L,d]
        m = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # [B,1+L]
        for layer in self.layers:
            x = layer(x, m)  # [B,1+L,d]
        return self.norm(x[:, 0])  # [B,d]


@register_model("gigagan-discriminator")
class GigaGANDiscriminator(PretrainedMixin, nn.Module):
    """Multi-scale input / multi-scale output, text-conditioned GigaGAN discriminator (see module docstring).

    Args:
        config: the architecture.
    """

    config_class = GigaGANDiscriminatorConfig

    def __init__(self, config: GigaGANDiscriminatorConfig = GigaGANDiscriminatorConfig()):
        super().__init__()
        self.config = c = config
        n, res = c.pyramid_levels, c.resolutions
        self.text = _TextBranch(c)
        inputs = range(n) if c.multiscale else range(1)
        self.from_rgb = nn.ModuleList(EqualConv2d(c.image_channels, c.channels[i], 1, activation="lrelu")
                                      for i in inputs)
        levels = []
        for k in range(n):
            last = k == n - 1
            cout = c.channels[k] if last else c.channels[k + 1]
            attn = None
            if c.attention and res[k] in c.attention_resolutions:
                attn = SelfAttention(cout, c.attention_heads, max(8, cout // c.attention_heads), c.attention_type)
            levels.append(_Level(c.channels[k], cout, c.blocks, down=not last, attention=attn))
        self.levels = nn.ModuleList(levels)
        heads = range(n) if c.multiscale else range(n - 1, n)
        self.heads = nn.ModuleDict({str(j): _Head(self.levels[j].blocks[-1].conv2.out_channels, c) for j in heads})

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The (i, j) of every prediction, in the order `forward` returns them (j-major, then i)."""
        n = self.config.pyramid_levels
        if not self.config.multiscale:
            return [(0, n - 1)]
        return [(i, j) for j in range(n) for i in range(j + 1)]

    def text_descriptor(self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """t_D [B,cond_dim] from the frozen encoder's tokens [B,L,text_dim], mask [B,L] bool, pooled [B,text_dim]."""
        c = self.config
        if tokens.ndim != 3 or tokens.shape[-1] != c.text_dim or pooled.shape != (tokens.shape[0], c.text_dim):
            raise ValueError(
                f"D expects text tokens [B,L,{c.text_dim}] and pooled [B,{c.text_dim}], got {tuple(tokens.shape)} and "
                f"{tuple(pooled.shape)}"
            )
        if mask.shape != tokens.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool [B,L]={tuple(tokens.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
        return self.text(tokens, mask, pooled)

    def _check_pyramid(self, pyramid: torch.Tensor | Sequence[torch.Tensor], batch: int) -> list[torch.Tensor]:
        c = self.config
        if isinstance(pyramid, torch.Tensor):
            pyramid = image_pyramid(pyramid, c.pyramid_levels if c.multiscale else 1)
        pyramid = list(pyramid)
        need = c.pyramid_levels if c.multiscale else 1
        if len(pyramid) < need:
            raise ValueError(f"D needs a pyramid of {need} images (finest first), got {len(pyramid)}")
        for k, x in enumerate(pyramid[:need]):
            r = c.resolutions[k]
            ch = c.image_channels
            if x.ndim != 4 or tuple(x.shape[1:]) != (ch, r, r) or x.shape[0] != batch:
                raise ValueError(f"pyramid level {k} must be [{batch},{ch},{r},{r}], got {tuple(x.shape)}")
        return pyramid[:need]

    def forward(
        self,
        pyramid: torch.Tensor | Sequence[torch.Tensor],
        tokens: torch.Tensor,
        mask: torch.Tensor,
        pooled: torch.Tensor,
    ) -> list[ScaleLogits]:
        """Judge an image pyramid against its text.

        Args:
            pyramid: [x_0 [B,3,R,R], x_1 [B,3,R/2,R/2], ...] finest first (L images; only x_0 is used when
                multiscale=False), or one [B,3,R,R] tensor from which the pyramid is built by 2x2 average pooling.
            tokens: [B,L_text,text_dim] frozen encoder tokens.
            mask: [B,L_text] bool, True for real tokens.
            pooled: [B,text_dim] pooled text embedding.

        Returns:
            L(L+1)/2 `ScaleLogits(i, j, logits [B])` in the order of `self.pairs` (one when multiscale=False).
        """
        return self.judge(pyramid, [(tokens, mask, pooled)])[0]

    def judge(
        self,
        pyramid: torch.Tensor | Sequence[torch.Tensor],
        texts: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    ) -> list[list[ScaleLogits]]:
        """Judge one image pyramid against several texts (e.g. the matched and the mismatched captions of the
        matching-aware loss): the trunk and the text-independent part of every head run once, the text-conditioned
        head layers once for all texts. `judge(x, [a, b])` equals `[forward(x, *a), forward(x, *b)]`.

        Args:
            pyramid: as in `forward`.
            texts: (tokens [B,L,text_dim], mask [B,L] bool, pooled [B,text_dim]) per text, same B.

        Returns:
            per text, the L(L+1)/2 `ScaleLogits` of `forward`.
        """
        if not texts:
            raise ValueError("judge needs at least one text")
        return self.judge_many([pyramid], [self.text_descriptor(*text) for text in texts])[0]

    def judge_many(
        self,
        pyramids: Sequence[torch.Tensor | Sequence[torch.Tensor]],
        descriptors: Sequence[torch.Tensor],
    ) -> list[list[list[ScaleLogits]]]:
        """Judge several image pyramids (e.g. real and fake) against several text descriptors t_D (e.g. matched and
        mismatched) in one pass: every image set rides the trunk together, every text the heads together.

        Only per-sample layers see the stacked rows, and minibatch-std groups stay within one (image set, path), so
        each result equals a separate `forward` of that pyramid with that text. The caller computes each t_D once
        with `text_descriptor`; a mismatched descriptor is an index of the matched one (`t_D[idx]`: t_D is a
        per-sample function of the text, so D's text transformer need not run again).

        Args:
            pyramids: S image pyramids as in `forward`, each of batch B.
            descriptors: T text descriptors t_D [B,cond_dim].

        Returns:
            out[s][t]: the L(L+1)/2 `ScaleLogits` (fp32 logits [B]) of pyramid s under descriptor t.
        """
        if not pyramids or not descriptors:
            raise ValueError("judge_many needs at least one pyramid and one text descriptor")
        c = self.config
        b = descriptors[0].shape[0]
        for t in descriptors:
            if t.ndim != 2 or t.shape != (b, c.cond_dim):
                raise ValueError(f"text descriptors must all be [B,{c.cond_dim}] = [{b},{c.cond_dim}], got "
                                 f"{tuple(t.shape)} (make them with D.text_descriptor)")
        sets = [self._check_pyramid(p, b) for p in pyramids]
        n_sets, n_texts = len(sets), len(descriptors)
        # level k: [S*B,3,R_k,R_k], set-major; channels-last, the layout in which oneDNN's convolutions are fast at
        # these widths (2-4x on CPU); the trunk's feature maps keep it
        xs = [(x[0] if n_sets == 1 else torch.cat(x)).contiguous(memory_format=torch.channels_last) for x in zip(*sets)]
        t_all = descriptors[0] if n_texts == 1 else torch.cat(list(descriptors))  # [T*B,d], text-major
        out: list[list[list[ScaleLogits]]] = [[[] for _ in range(n_texts)] for _ in range(n_sets)]
        h: torch.Tensor | None = None  # [P*S*B,C_k,R_k,R_k]: rows (p s b), paths i = 0..P-1 i-major
        for k, level in enumerate(self.levels):
            if k < len(self.from_rgb):  # image x_k enters the trunk at level k as a new path (of every set)
                f = self.from_rgb[k](xs[k])  # [S*B,C_k,R_k,R_k]
                h = f if h is None else torch.cat([h, f], dim=0)  # [(k+1)*S*B,C_k,R_k,R_k]
            h = level(h)  # [P*S*B,C_{k+1},R_{k+1},R_{k+1}]: block k runs once on every path of every set
            head = self.heads[str(k)] if str(k) in self.heads else None
            if head is not None:
                p = h.shape[0] // (n_sets * b)
                feats = head.features(h, p * n_sets)  # [P*S*B,C,r,r]: mbstd within each (path, set) block
                t = repeat(t_all, "(t b) d -> (t p s b) d", t=n_texts, p=p, s=n_sets)  # [T*P*S*B,d]
                logits = head.score(h, feats, t, texts=n_texts)  # [T*P*S*B]
                per = rearrange(logits, "(t p s b) -> s t p b", t=n_texts, p=p, s=n_sets)  # [S,T,P,B]
                for s in range(n_sets):
                    for ti in range(n_texts):
                        for i in range(p):
                            out[s][ti].append(ScaleLogits(i, k, per[s, ti, i]))  # D_ik of GigaGAN eq. 7
        return out
