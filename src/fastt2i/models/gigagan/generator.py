"""GigaGAN generator: learned text path T, mapping M(z, t_global) with w_avg, and the multi-scale synthesis network."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.serialization import PretrainedMixin, register_model
from fastt2i.models.gigagan.config import GigaGANGeneratorConfig
from fastt2i.nn.attention import CrossAttention, FeedForward, SelfAttention, TransformerBlock
from fastt2i.nn.equalized import EqualLinear
from fastt2i.nn.modulated import NOISE_MODES, StyledConv, ToRGB, upsample_images
from fastt2i.text.base import unpack_text


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=-1, keepdim=True) + eps).rsqrt()




class TextPath(nn.Module):
    """Learned text layers T over the frozen encoder's output (GigaGAN sec. 3.3): t = T(E_txt(c)).

    The projected pooled vector is prepended as token 0 (playing the role of CLIP's end-of-text token, which the
    paper takes as t_global), the sequence goes through `text_attn_layers` masked transformer blocks, and the output
    is split into ``t_global = t[:, 0]`` and ``t_local = t[:, 1:]`` (per word, same mask as the input).

    Args:
        config: the generator config (text_dim, pooled width, text_width, text_attn_layers, text_heads, attention_type).
    """

    def __init__(self, config: GigaGANGeneratorConfig):
        super().__init__()
        c = config.text_width
        self.text_dim, self.pooled_dim = config.text_dim, config.pooled_width
        self.proj_tokens = EqualLinear(config.text_dim, c)
        self.proj_pooled = EqualLinear(config.pooled_width, c)
        self.layers = nn.ModuleList(
            TransformerBlock(c, config.text_heads, c // config.text_heads, config.attention_type, ff_mult=2)
            for _ in range(config.text_attn_layers)
        )
        self.norm_out = nn.LayerNorm(c)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens [B,L,text_dim], mask [B,L] bool, pooled [B,P] -> (t_local [B,L,C], t_mask [B,L], t_global [B,C])."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.text_dim:
            raise ConfigError(f"text tokens must be [B,L,{self.text_dim}], got {tuple(tokens.shape)}")
        if mask.shape != tokens.shape[:2] or mask.dtype != torch.bool:
            raise ConfigError(f"text mask must be bool [B,L]={tuple(tokens.shape[:2])}, got {mask.dtype} "
                              f"{tuple(mask.shape)}")
        if pooled.ndim != 2 or pooled.shape != (tokens.shape[0], self.pooled_dim):
            raise ConfigError(f"pooled text must be [B,{self.pooled_dim}], got {tuple(pooled.shape)}")
        t = torch.cat([self.proj_pooled(pooled).unsqueeze(1), self.proj_tokens(tokens)], dim=1)  # [B,1+L,C]
        full_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)  # [B,1+L]
        for layer in self.layers:
            t = layer(t, full_mask)  # [B,1+L,C]
        t = self.norm_out(t)
        return t[:, 1:], mask, t[:, 0]


class MappingNetwork(nn.Module):
    """w = M(z, t_global) (GigaGAN sec. 3.3), broadcast to `num_ws` styles, with a tracked average for truncation.

    z and the embedded t_global are each normalised to unit second moment (StyleGAN2), concatenated and passed
    through `mapping_layers` equalized-LR layers with learning-rate multiplier `mapping_lr_mul`.

    Args:
        config: the generator config.
    """

    def __init__(self, config: GigaGANGeneratorConfig):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = config.z_dim, config.w_dim, config.num_ws
        self.text_width = config.text_width
        self.w_avg_beta = config.w_avg_beta
        self.embed_text = EqualLinear(config.text_width, config.w_dim)
        dims = [config.z_dim + config.w_dim] + [config.w_dim] * config.mapping_layers
        self.layers = nn.Sequential(*(
            EqualLinear(a, b, lr_mul=config.mapping_lr_mul, activation="lrelu") for a, b in zip(dims[:-1], dims[1:])
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
        """z [B,z_dim], t_global [B,text_width] -> ws [B,num_ws,w_dim].

        Args:
            z: latents.
            t_global: global text vector from `TextPath`.
            truncation_psi: w <- w_avg + psi (w - w_avg); 0 returns w_avg.
            truncation_cutoff: truncate only the first `cutoff` styles (None = all).
            update_w_avg: move w_avg towards this batch's mean w by an EMA (the trainer sets it on G steps).
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ConfigError(f"z must be [B,{self.z_dim}], got {tuple(z.shape)}")
        if t_global.shape != (z.shape[0], self.text_width):
            raise ConfigError(f"t_global must be [B={z.shape[0]},{self.text_width}], got {tuple(t_global.shape)}")
        x = torch.cat([_normalize_2nd_moment(z), _normalize_2nd_moment(self.embed_text(t_global))], dim=1)
        w = self.layers(x)  # [B,w_dim]
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)  # [B,num_ws,w_dim]
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            w_avg = self.w_avg.to(ws.dtype)
            ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], truncation_psi)  # w_avg + psi (w - w_avg)
        return ws


class SynthesisLayer(nn.Module):
    """One modulated conv (adaptive kernels) then, where configured, self-attention (w), cross-attention
    (t_local), feed-forward: the interleaving of GigaGAN sec. 3.2 (Fig. 4).

    Args:
        config: the generator config, or the upsampler's (any config with `w_dim`, `use_noise`, `attention_dim_head`,
            `attention_type`, `style_token`, `text_width`, `ff_mult` and `kernels_at` / `attention_at` /
            `cross_attention_at` by resolution index).
        cin: input channels.
        cout: output channels.
        resolution: output resolution.
        up: upsample x2 first.
        index: resolution index in `config` (0 = its coarsest), selects kernels / attention switches.
    """

    def __init__(self, config: Any, cin: int, cout: int, resolution: int, up: bool, index: int):
        super().__init__()
        self.conv = StyledConv(cin, cout, config.w_dim, resolution, 3, up, config.kernels_at(index), config.use_noise)
        heads, dh = max(1, cout // config.attention_dim_head), config.attention_dim_head
        kind = config.attention_type
        attn, cross = config.attention_at(index), config.cross_attention_at(index)
        self.attn = SelfAttention(cout, heads, dh, kind, style_dim=config.w_dim if config.style_token else None) \
            if attn else None
        self.cross = CrossAttention(cout, config.text_width, heads, dh, kind) if cross else None
        self.ff = FeedForward(cout, config.ff_mult) if (attn or cross) and config.ff_mult else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, t_local: torch.Tensor, t_mask: torch.Tensor,
                noise_mode: str, generator: torch.Generator | None) -> torch.Tensor:
        x = self.conv(x, w, noise_mode, generator)  # [B,cout,R,R]
        if self.attn is not None:
            x = self.attn(x, w if self.attn.style_dim else None)  # [B,cout,R,R]
        if self.cross is not None:
            x = self.cross(x, t_local, t_mask)  # [B,cout,R,R]
        if self.ff is not None:
            x = self.ff(x)  # [B,cout,R,R]
        return x


class SynthesisNetwork(nn.Module):
    """Learned 4x4 constant, then per resolution: `blocks` synthesis layers (the first upsamples) and a toRGB.

    StyleGAN2 skip architecture: rgb_r = up(rgb_{r/2}) + toRGB_r(x_r). The returned pyramid (GigaGAN sec. 3.4,
    multi-scale output) is rgb at the last `num_outputs` resolutions, finest first: [x_64, x_32, x_16, x_8, x_4].
    Style index order: the layers of 4x4 then its toRGB, then 8x8's layers and toRGB, and so on.

    Args:
        config: the generator config.
    """

    def __init__(self, config: GigaGANGeneratorConfig):
        super().__init__()
        self.config = config
        self.num_ws, self.w_dim, self.text_width = config.num_ws, config.w_dim, config.text_width
        self.const = nn.Parameter(torch.randn(config.channels_at(0), 4, 4))
        self.stages = nn.ModuleList()
        self.torgb = nn.ModuleList()
        cin = config.channels_at(0)
        for i, res in enumerate(config.resolutions):
            cout = config.channels_at(i)
            layers = nn.ModuleList()
            for j in range(config.blocks_at(i)):
                layers.append(SynthesisLayer(config, cin, cout, res, up=(i > 0 and j == 0), index=i))
                cin = cout
            self.stages.append(layers)
            self.torgb.append(ToRGB(cout, config.w_dim))

    def forward(
        self,
        ws: torch.Tensor,
        t_local: torch.Tensor,
        t_mask: torch.Tensor,
        noise_mode: str | None = None,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """ws [B,num_ws,w_dim], t_local [B,L,text_width], t_mask [B,L] -> pyramid of [B,3,R_i,R_i], finest first.

        Args:
            ws: per-layer styles.
            t_local: per-word text features from `TextPath`.
            t_mask: bool mask of real tokens.
            noise_mode: "random", "const" or "none"; None = "random" in train mode, "const" in eval mode.
            generator: RNG for "random" noise.
        """
        cfg = self.config
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ConfigError(f"ws must be [B,{self.num_ws},{self.w_dim}], got {tuple(ws.shape)}")
        b = ws.shape[0]
        if t_local.ndim != 3 or t_local.shape[0] != b or t_local.shape[2] != self.text_width:
            raise ConfigError(f"t_local must be [B={b},L,{self.text_width}], got {tuple(t_local.shape)}")
        if t_mask.shape != t_local.shape[:2] or t_mask.dtype != torch.bool:
            raise ConfigError(f"t_mask must be bool [B,L]={tuple(t_local.shape[:2])}, got {tuple(t_mask.shape)}")
        noise_mode = noise_mode or ("random" if self.training else "const")
        if noise_mode not in NOISE_MODES:
            raise ConfigError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        # Feature maps stay channels-last (the layout oneDNN's fast convolutions take; attention reads it as tokens
        # without a copy); the RGB skip sum is kept in at least fp32 (it is what the pyramid returns).
        x = self.const.to(ws.dtype).unsqueeze(0).expand(b, -1, -1, -1)  # [B,C0,4,4]
        x = x.contiguous(memory_format=torch.channels_last)
        img: torch.Tensor | None = None
        pyramid: list[torch.Tensor] = []
        first_out = cfg.num_resolutions - cfg.num_outputs
        k = 0
        for i, (layers, torgb) in enumerate(zip(self.stages, self.torgb)):
            for layer in layers:
                x = layer(x, ws[:, k], t_local, t_mask, noise_mode, generator)  # [B,C_i,R_i,R_i]
                k += 1
            rgb = torgb(x, ws[:, k])  # [B,3,R_i,R_i]
            rgb = rgb.to(torch.promote_types(rgb.dtype, torch.float32))
            k += 1
            img = rgb if img is None else upsample_images(img) + rgb  # [B,3,R_i,R_i] (skip architecture)
            if i >= first_out:
                pyramid.append(img.contiguous())
        return pyramid[::-1]




@register_model("gigagan-generator")
class GigaGANGenerator(nn.Module, PretrainedMixin):
    """GigaGAN text-to-image generator (Kang et al. 2023, sec. 3.1-3.4); the frozen text encoder lives outside.

    ``G.text_condition`` runs T, ``G.mapping(z, t_global)`` gives ws (and keeps ``w_avg``),
    ``G.synthesis(ws, t_local, t_mask)`` gives the image pyramid, finest first; ``G(z, text)`` chains them.

    Args:
        config: a `GigaGANGeneratorConfig` (see `fastt2i.models.gigagan.presets`).
    """

    config_class = GigaGANGeneratorConfig

    def __init__(self, config: GigaGANGeneratorConfig):
        super().__init__()
        if not isinstance(config, GigaGANGeneratorConfig):
            raise ConfigError(f"GigaGANGenerator needs a GigaGANGeneratorConfig, got {type(config).__name__}")
        self.config = config
        self.z_dim, self.w_dim, self.num_ws = config.z_dim, config.w_dim, config.num_ws
        self.text = TextPath(config)
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)

    @property
    def w_avg(self) -> torch.Tensor:
        """The tracked average w [w_dim] (EMA over training batches)."""
        return self.mapping.w_avg

    def text_condition(
        self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frozen-encoder output -> (t_local [B,L,C], t_mask [B,L], t_global [B,C]) through the learned layers T."""
        return self.text(tokens, mask, pooled)

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
        """z [B,z_dim] and text (TextEmbedding or (tokens [B,L,D], mask [B,L], pooled [B,P])) -> image pyramid.

        Returns `num_outputs` images [B,3,R,R] in about [-1,1] (not clamped), finest first.
        """
        tokens, mask, pooled = unpack_text(text)
        if tokens.shape[0] != z.shape[0]:
            raise ConfigError(f"z has batch {z.shape[0]} but the text has batch {tokens.shape[0]}")
        t_local, t_mask, t_global = self.text_condition(tokens, mask, pooled)
        ws = self.mapping(z, t_global, truncation_psi, truncation_cutoff, update_w_avg)  # [B,num_ws,w_dim]
        return self.synthesis(ws, t_local, t_mask, noise_mode, generator)
