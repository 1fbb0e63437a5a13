"""GigaGAN trainer: explicit D and G steps, lazy R1, matching-aware D, CLIP and vision-aided losses, EMA generator.

    fastt2i train gigagan --preset tiny --data emoji64.npz --run-dir runs/gigagan-tiny
    fastt2i train gigagan --preset emoji64 --data emoji64.npz --run-dir runs/gigagan-emoji64 --kimg 300

Losses (Kang et al. 2023, sec. 3.4-3.5): D minimises the multi-scale logistic loss over every (i, j) prediction
(eq. 6), the matching-aware term on real and detached fake images under mismatched captions (eq. 8), lazy R1 every
`r1_every` steps (StyleGAN2 sec. 3.1) and, optionally, the vision-aided logistic loss; G minimises the non-saturating
loss over all scales, the CLIP contrastive loss of its images against their captions (eq. 9) and the vision-aided
non-saturating loss.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.evaluation import evaluate_source
from fastt2i.inference.gigagan import GigaGANPipeline
from fastt2i.losses.diversity import check_mode_seeking, pair_conditions, paired_mode_seeking_loss
from fastt2i.losses.gan import d_logistic, g_nonsaturating, r1_penalty
from fastt2i.losses.matching import d_matching_loss, try_mismatch_index
from fastt2i.losses.vision_aided import VisionAidedDiscriminator, clip_image_features, generator_clip_loss
from fastt2i.models.gigagan import (
    GigaGANDiscriminator,
    GigaGANDiscriminatorConfig,
    GigaGANGenerator,
    GigaGANGeneratorConfig,
)
from fastt2i.models.gigagan.discriminator import image_pyramid
from fastt2i.models.image_text import load_clip_model
from fastt2i.nn.attention import split_decay_parameters
from fastt2i.noise import seed_noise
from fastt2i.text.batcher import Text, TextBatcher
from fastt2i.training.config import TrainConfig
from fastt2i.training.trainer import Trainer
from fastt2i.training.trainer import step_seconds as time_steps

DEFAULT_PROMPTS = ("grinning face", "red heart", "thumbs up", "cat face")


@dataclass(frozen=True)
class GigaGANRunConfig:
    """A GigaGAN training run: architectures, run settings, optimisers and loss switches (Table 1 rows are presets).

    Args:
        generator: the generator architecture (its `text_encoder` must equal `train.text_encoder`).
        discriminator: the discriminator architecture (same resolution, text encoder and text width).
        train: run settings (data, length, batch, EMA, precision...).
        g_lr: generator Adam learning rate.
        d_lr: discriminator (and vision-aided heads) Adam learning rate.
        betas: Adam betas (StyleGAN2: 0.0, 0.99); the D's are adjusted for lazy R1 as in StyleGAN2.
        r1_gamma: R1 weight gamma (penalty gamma/2 * ||grad||^2); 0 = off.
        r1_every: lazy regularisation interval k (the penalty runs every k steps, scaled by k).
        matching_aware: add the matching-aware D loss (eq. 8) on real and fake images under mismatched captions.
        clip_loss_weight: weight of the G-side CLIP contrastive loss (eq. 9); 0 = off.
        vision_aided_weight: weight of the vision-aided D/G losses; 0 = off.
        vision_hidden: width of the vision-aided heads.
        clip_model: "emoji-clip" (bundled) or the path of an emoji-clip-like export (`encode_image`, `encode_text`).
        style_mixing_prob: probability that a G batch mixes the styles of two latents at a random layer.
        attention_weight_decay: AdamW decoupled weight decay on the attention projection weights only (G and D).
        w_avg_beta: EMA decay of G's tracked w average; None = the generator config's.
        scale_reduction: "mean" or "sum" over the multi-scale predictions (eq. 6 sums; mean keeps one gamma for any L).
        sample_prompts: fixed prompts of the sample grid (rows).
        sample_seeds: fixed seeds of the sample grid (columns).
        eval_metrics: metrics computed every `train.eval_kimg` (fastt2i.metrics names).
        eval_num: generated images per evaluation.
        d_warmup_kimg: for this run's first N kimg only the discriminator trains (G and its EMA stay as they are):
            a fresh D catches up with a G that `train.init_from` loaded from an export before G learns from it.
        mode_seeking_weight: weight of MSGAN's mode-seeking term (`fastt2i.losses.diversity`; not in the paper):
            each G batch is half as many captions, each drawn with two z, and G is also pushed to make the two
            images differ (their L1 distance at `mode_seeking_pool` px). 0 = off (the paper). Base generator only.
        mode_seeking_pool: the pixel distance's resolution (0 = full; 16: shape and colour, not noise texture).
        mode_seeking_space: "pixels", or "clip": the cosine distance of the two images' `clip_model` embeddings.
    """

    generator: GigaGANGeneratorConfig = field(default_factory=GigaGANGeneratorConfig)
    discriminator: GigaGANDiscriminatorConfig = field(default_factory=GigaGANDiscriminatorConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/gigagan"))
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.2
    r1_every: int = 16
    matching_aware: bool = True
    clip_loss_weight: float = 0.0
    vision_aided_weight: float = 0.0
    vision_hidden: int = 256
    clip_model: str = "emoji-clip"
    style_mixing_prob: float = 0.9
    attention_weight_decay: float = 0.0
    w_avg_beta: float | None = None
    scale_reduction: str = "mean"
    sample_prompts: tuple[str, ...] = DEFAULT_PROMPTS
    sample_seeds: tuple[int, ...] = (0, 1, 2, 3)
    eval_metrics: str = "fd_emojinet,clipscore_emojiclip"
    eval_num: int = 10_000
    d_warmup_kimg: float = 0.0
    mode_seeking_weight: float = 0.0
    mode_seeking_pool: int = 16
    mode_seeking_space: str = "pixels"

    def __post_init__(self) -> None:
        g, d, t = self.generator, self.discriminator, self.train
        self._check_resolutions()
        check_mode_seeking(self.mode_seeking_weight, t.batch_size, pool=self.mode_seeking_pool,
                           space=self.mode_seeking_space)
        if not 0 <= self.d_warmup_kimg < float("inf"):
            raise ConfigError(f"d_warmup_kimg must be a finite number >= 0, got {self.d_warmup_kimg}")
        for name, spec in (("generator", g.text_encoder), ("discriminator", d.text_encoder)):
            if spec != t.text_encoder:
                raise ConfigError(f"{name}.text_encoder {spec!r} differs from train.text_encoder {t.text_encoder!r}")
        if d.text_dim != g.text_dim:
            raise ConfigError(f"discriminator.text_dim ({d.text_dim}) != generator.text_dim ({g.text_dim})")
        if self.r1_every < 1 or self.r1_gamma < 0:
            raise ConfigError(f"r1_every must be >= 1 and r1_gamma >= 0, got {self.r1_every}, {self.r1_gamma}")
        if self.g_lr <= 0 or self.d_lr <= 0 or len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"g_lr/d_lr must be > 0 and betas two values in [0,1), got {self.g_lr}, {self.d_lr}, "
                              f"{self.betas}")
        if self.clip_loss_weight < 0 or self.vision_aided_weight < 0 or self.attention_weight_decay < 0:
            raise ConfigError("clip_loss_weight, vision_aided_weight and attention_weight_decay must be >= 0")
        if not 0 <= self.style_mixing_prob <= 1:
            raise ConfigError(f"style_mixing_prob must be in [0,1], got {self.style_mixing_prob}")
        if self.w_avg_beta is not None and not 0 <= self.w_avg_beta < 1:
            raise ConfigError(f"w_avg_beta must be in [0,1) or null, got {self.w_avg_beta}")
        if self.scale_reduction not in ("mean", "sum"):
            raise ConfigError(f"scale_reduction must be 'mean' or 'sum', got {self.scale_reduction!r}")
        if not self.sample_prompts or not self.sample_seeds:
            raise ConfigError("sample_prompts and sample_seeds must not be empty")

    def _check_resolutions(self) -> None:
        g, d, t = self.generator, self.discriminator, self.train
        if g.resolution != t.resolution or d.resolution != t.resolution:
            raise ConfigError(f"generator.resolution ({g.resolution}), discriminator.resolution ({d.resolution}) and "
                              f"train.resolution ({t.resolution}) must be equal")


class GigaGANTrainer(Trainer):
    """Trains `GigaGANGenerator` against `GigaGANDiscriminator` (+ optional vision-aided D) from a `GigaGANRunConfig`.

    `train_step` runs `d_step` then `g_step`; each returns its loss terms separately (checked for NaN by name).
    """

    config: GigaGANRunConfig

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.config
        gcfg = cfg.generator
        if cfg.w_avg_beta is not None:
            gcfg = dataclasses.replace(gcfg, w_avg_beta=cfg.w_avg_beta)
        G = self.build_generator(gcfg)
        D = GigaGANDiscriminator(cfg.discriminator)
        self.text = TextBatcher(self.train_cfg.text_encoder, self.device, (gcfg.text_dim, gcfg.pooled_width))
        if cfg.discriminator.text_dim != gcfg.pooled_width:
            raise ConfigError(f"discriminator.text_dim ({cfg.discriminator.text_dim}) must equal the pooled text width "
                              f"({gcfg.pooled_width}): D takes tokens and pooled vector of one width")
        self.clip: nn.Module | None = None
        if cfg.clip_loss_weight > 0 or cfg.vision_aided_weight > 0 or (
                cfg.mode_seeking_weight > 0 and cfg.mode_seeking_space == "clip"):
            self.clip = load_clip_model(cfg.clip_model, self.device)
        self._clip_text: dict[str, torch.Tensor] = {}
        VA = None
        if cfg.vision_aided_weight > 0:
            VA = VisionAidedDiscriminator(self.clip, gcfg.pooled_width, hidden=cfg.vision_hidden,
                                          probe_resolution=gcfg.resolution)
        # Lazy R1 (StyleGAN2 sec. 3.1 / appendix B): D's lr and betas are adjusted by k / (k + 1).
        ratio = cfg.r1_every / (cfg.r1_every + 1) if cfg.r1_gamma > 0 else 1.0
        d_betas = (cfg.betas[0] ** ratio, cfg.betas[1] ** ratio)
        # The networks are NOT wrapped in DDP: G is driven through its parts (text_condition / mapping / synthesis,
        # for style mixing), D runs several forwards per step and R1 needs a double backward, none of which DDP
        # supports. They start equal on every rank (same seed) and `_sync_grads` averages their gradients
        # (the StyleGAN2-ADA / StyleGAN3 scheme); only the optimizers go through Accelerate (fp16 grad scaler).
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.VA = VA.to(self.device) if VA is not None else None
        fused = self.fused_optimizer  # one kernel per tensor (CPU and CUDA): ~10x less optimizer time on CPU
        opt_G = torch.optim.AdamW(self._groups([G]), lr=cfg.g_lr, betas=cfg.betas, fused=fused)
        opt_D = torch.optim.AdamW(self._groups(self._d_nets()), lr=cfg.d_lr * ratio, betas=d_betas, fused=fused)
        self.opt_G, self.opt_D = self.prepare(opt_G, opt_D)
        self.G_ema = self.add_ema("G", self.G)
        # `train.compile`: G's mapping and synthesis, D's forward (G step) and its D-step pass (after add_ema: the EMA
        # copy stays eager). R1's double backward cannot go through a compiled graph: it gets its own eager pass.
        self.maybe_compile(self.G.mapping, "G.mapping")  # (modules compile in place)
        self.maybe_compile(self.G.synthesis, "G.synthesis")
        self.maybe_compile(self.D, "D")
        self._judge_many = self.maybe_compile(self.D.judge_many, "D.judge_many") if self.train_cfg.compile else None
        self.last_r1 = torch.zeros((), device=self.device)  # the latest R1 penalty (logged between R1 steps)

    def build_generator(self, config: Any) -> nn.Module:
        return GigaGANGenerator(config)

    def _d_nets(self) -> list[nn.Module]:
        return [self.D] + ([self.VA] if self.VA is not None else [])

    def _sync_grads(self, modules: list[nn.Module]) -> None:
        """Average the gradients of `modules` over processes (one flat all-reduce); nothing on a single process."""
        self.average_across_processes([p.grad for m in modules for p in m.parameters() if p.grad is not None])

    def _groups(self, modules: list[nn.Module]) -> list[dict[str, Any]]:
        """Two AdamW groups: attention projection weights (weight decay) and everything else (none)."""
        decay, rest = [], []
        for m in modules:
            a, b = split_decay_parameters(m)
            decay += a
            rest += b
        groups = [{"params": rest, "weight_decay": 0.0}]
        if decay:
            groups.append({"params": decay, "weight_decay": self.config.attention_weight_decay})
        return groups

    # ------------------------------------------------------------------------------------------------ pieces
    def clip_text(self, captions: list[str], pooled: torch.Tensor) -> torch.Tensor:
        """CLIP text embeddings [B,E] of `captions`: the batch's pooled text when the CLIP model uses the same encoder,
        else its own `encode_text` (cached per caption)."""
        clip = self.clip
        spec = getattr(getattr(clip, "config", None), "text_encoder", None)
        if spec == self.train_cfg.text_encoder:
            return F.normalize(pooled.float(), dim=-1)
        missing = sorted({c for c in captions if c not in self._clip_text})
        if missing:
            for c, e in zip(missing, clip.encode_text(missing).float().cpu()):
                self._clip_text[c] = e
        return torch.stack([self._clip_text[c] for c in captions]).to(self.device)  # [B,E]

    def sample_z(self, batch: int) -> torch.Tensor:
        return torch.randn(batch, self.config.generator.z_dim, device=self.device)  # [B,z_dim]

    def synthesize(self, G: nn.Module, z: torch.Tensor, text: Text, mix: bool = False,
                   update_w_avg: bool = False, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        """z [B,z_dim] + text (+ a conditioning image `cond`, for the upsampler) -> image pyramid (finest first), with
        StyleGAN2 style mixing when `mix`."""
        G = self.unwrap(G)
        t_local, t_mask, t_global = G.text_condition(*text)
        ws = G.mapping(z, t_global, update_w_avg=update_w_avg)  # [B,num_ws,w_dim]
        if mix and self.config.style_mixing_prob > 0 and G.num_ws > 1:
            if float(torch.rand(())) < self.config.style_mixing_prob:
                cutoff = int(torch.randint(1, G.num_ws, ()))
                ws2 = G.mapping(torch.randn_like(z), t_global)  # [B,num_ws,w_dim]
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return self.run_synthesis(G, ws, t_local, t_mask, cond)

    def run_synthesis(self, G: nn.Module, ws: torch.Tensor, t_local: torch.Tensor, t_mask: torch.Tensor,
                      cond: torch.Tensor | None) -> list[torch.Tensor]:
        """G's synthesis network on the styles (the base generator takes no conditioning image)."""
        return G.synthesis(ws, t_local, t_mask)

    def d_pyramid(self, pyramid: list[torch.Tensor], cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        """What D is given: the generator's pyramid (completed by 2x2 average pooling where G returns fewer levels, e.g.
        a single-scale G against a multi-scale D), or the full image only for a single-scale D."""
        d = self.config.discriminator
        need = d.pyramid_levels if d.multiscale else 1
        out = list(pyramid[:need])
        while len(out) < need:
            out.append(F.avg_pool2d(out[-1], 2))  # [B,3,R/2^k,R/2^k]
        return out

    def real_pyramid(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        d = self.config.discriminator
        return image_pyramid(images, d.pyramid_levels if d.multiscale else 1)

    # ------------------------------------------------------------------------------------------------ steps
    def d_step(self, images: torch.Tensor, captions: list[str], text: Text, step: int,
               cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One discriminator update: logistic loss, matching-aware loss, lazy R1, vision-aided D loss (`cond`: the
        upsampler's low-resolution input, which G and D both see)."""
        cfg = self.config
        red = cfg.scale_reduction
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        if self.VA is not None:
            self.VA.requires_grad_(True)
        do_r1 = cfg.r1_gamma > 0 and step % cfg.r1_every == 0
        # fp32 runs reuse the main pass's real logits for R1; mixed precision (R1 in fp32) and compiled runs (no double
        # backward through a compiled graph) give R1 its own eager fp32 pass (below)
        r1_shared = do_r1 and self.train_cfg.mixed_precision == "no" and not self.train_cfg.compile
        with torch.no_grad(), self.autocast():
            fake = [x.detach() for x in self.synthesize(self.G, self.sample_z(len(images)), text, cond=cond)]
        real = [x.detach().requires_grad_(r1_shared) for x in self.real_pyramid(images, cond)]
        out: dict[str, torch.Tensor] = {}
        with self.autocast():
            idx = try_mismatch_index(len(images), keys=captions) if cfg.matching_aware else None
            # D's text transformer runs once: t_D is per-sample, so the mismatched descriptor is t_D[idx]
            t_d = self.D.text_descriptor(*text)  # [B,cond_dim]
            descriptors = [t_d] if idx is None else [t_d, t_d[idx.to(t_d.device)]]
            # real and fake ride D's trunk together, matched and mismatched t_D its heads (D.judge_many); when R1
            # reuses the real logits, the real pass stays apart so that R1's double backward covers the real rows only
            judge_many = self._judge_many or self.D.judge_many
            if r1_shared:
                real_judged = judge_many([real], descriptors)[0]
                fake_judged = judge_many([self.d_pyramid(fake, cond)], descriptors)[0]
            else:
                real_judged, fake_judged = judge_many([real, self.d_pyramid(fake, cond)], descriptors)
            real_logits, fake_logits = real_judged[0], fake_judged[0]
            # d_logistic = softplus(-D(x, c)) + softplus(D(G(c), c)) over every (i, j) (eq. 6), its two halves logged
            out["loss/d_real"] = g_nonsaturating(real_logits, red)  # softplus(-D(x, c))
            out["loss/d_fake"] = d_matching_loss(fake_logits, None, red)  # softplus(D(G(c), c))
            total = out["loss/d_real"] + out["loss/d_fake"]
            if cfg.matching_aware:  # GigaGAN sec. 3.5, eq. 8: real and fake images under mismatched captions
                if idx is None:
                    out["loss/d_match"] = torch.zeros((), device=self.device)
                else:
                    out["loss/d_match"] = d_matching_loss(real_judged[1], fake_judged[1], red)
                    total = total + out["loss/d_match"]
            if self.VA is not None:
                pooled = text[2]
                with torch.no_grad():  # the backbone is frozen and D's step needs no image gradient through it
                    f_real, f_fake = self.VA.features(torch.cat([images, fake[0]])).chunk(2)  # [B,F] each
                out["loss/d_vision"] = d_logistic(self.VA(images, pooled, features=f_real),
                                                  self.VA(fake[0], pooled, features=f_fake), "mean")
                total = total + cfg.vision_aided_weight * out["loss/d_vision"]
        if do_r1:  # lazy R1 (StyleGAN2 sec. 3.1): gamma/2 * ||grad||^2, every k steps, scaled by k
            if r1_shared:
                r1_inputs, r1_logits = real, real_logits
            else:  # the penalty's gradient (and its double backward) in fp32, outside autocast
                r1_inputs = [x.detach().requires_grad_(True) for x in real]
                with self.full_precision():
                    r1_logits = self.D.forward(r1_inputs, *text)  # (forward: past a compiled __call__)
            penalty = r1_penalty(r1_inputs, r1_logits).mean()
            total = total + penalty * (cfg.r1_gamma / 2) * cfg.r1_every
            self.last_r1 = penalty.detach()  # stays on the device: no host sync in the step
        out["loss/r1"] = self.last_r1
        self.opt_D.zero_grad(set_to_none=True)
        self.backward(total)
        self._sync_grads(self._d_nets())
        self.opt_D.step()
        return out

    def g_step(self, captions: list[str], text: Text, cond: torch.Tensor | None = None,
               images: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One generator update: non-saturating loss over all scales, CLIP loss, vision-aided G loss, and the terms of
        `g_extra_losses` (the upsampler's perceptual loss against `images`); w_avg update."""
        cfg = self.config
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        if self.VA is not None:
            self.VA.requires_grad_(False)
        out: dict[str, torch.Tensor] = {}
        if cfg.mode_seeking_weight > 0:  # rows P..2P-1 repeat the captions of rows 0..P-1, with their own z
            captions, text = pair_conditions(captions, text, device=self.device)
        z = self.sample_z(len(captions))  # [B,z_dim]
        with self.autocast():
            fake = self.synthesize(self.G, z, text, mix=True, update_w_avg=True, cond=cond)
            out["loss/g_adv"] = g_nonsaturating(self.D(self.d_pyramid(fake, cond), *text), cfg.scale_reduction)
            total = out["loss/g_adv"]
            feats = None  # the frozen CLIP image features of G's images: one pass for all terms
            if self.clip is not None:
                feats = clip_image_features(self.clip, fake[0])  # [B,E]
            if cfg.mode_seeking_weight > 0:  # MSGAN eq. 3 over the caption pairs, on the full-resolution output
                x = feats if cfg.mode_seeking_space == "clip" else fake[0]
                out["loss/g_ms"] = paired_mode_seeking_loss(x, z, pool=cfg.mode_seeking_pool)
                total = total + cfg.mode_seeking_weight * out["loss/g_ms"]
            if cfg.clip_loss_weight > 0:  # GigaGAN sec. 3.5, eq. 9
                out["loss/g_clip"] = generator_clip_loss(self.clip, fake[0], self.clip_text(captions, text[2]),
                                                         image_features=feats)
                total = total + cfg.clip_loss_weight * out["loss/g_clip"]
            if self.VA is not None:
                out["loss/g_vision"] = g_nonsaturating(self.VA(fake[0], text[2], features=feats), "mean")
                total = total + cfg.vision_aided_weight * out["loss/g_vision"]
            for name, (weight, value) in self.g_extra_losses(fake, images, cond).items():
                out[name] = value
                total = total + weight * value
        self.opt_G.zero_grad(set_to_none=True)
        self.backward(total)
        self._sync_grads([self.G])
        self.opt_G.step()
        if self.world_size > 1:  # each rank moved w_avg towards its own batch mean: average = the global-batch update
            w_avg = self.G.mapping.w_avg
            torch.distributed.all_reduce(w_avg)
            w_avg /= self.world_size
        self.D.requires_grad_(True)
        return out

    def g_extra_losses(self, fake: list[torch.Tensor], images: torch.Tensor | None,
                       cond: torch.Tensor | None) -> dict[str, tuple[float, torch.Tensor]]:
        """Further weighted G terms {log name: (weight, value)}; none for the base generator."""
        return {}

    @property
    def trains_g(self) -> bool:
        """Whether this step updates G: always, except during `d_warmup_kimg`."""
        return self.cur_nimg >= self.config.d_warmup_kimg * 1000

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        captions = list(batch["caption"])
        text = self.text(captions)
        losses = self.d_step(batch["image"], captions, text, step)
        if self.trains_g:
            losses.update(self.g_step(captions, text))
        return {k: v.detach() for k, v in losses.items()}

    def init_from_export(self, export: Path) -> None:
        """G and its EMA from an exported generator (D and the optimisers start fresh)."""
        self.load_generator_export(export, type(self.unwrap(self.G)), self.G, "G")

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = {"G": self.unwrap(self.G).state_dict(), "D": self.unwrap(self.D).state_dict(),
                 "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "last_r1": float(self.last_r1)}
        if self.VA is not None:
            state["VA"] = self.unwrap(self.VA).state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.unwrap(self.G).load_state_dict(state["G"])
        self.unwrap(self.D).load_state_dict(state["D"])
        if self.VA is not None:
            self.unwrap(self.VA).load_state_dict(state["VA"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.last_r1 = torch.tensor(float(state.get("last_r1", 0.0)), device=self.device)

    # ------------------------------------------------------------------------------------------------ outputs
    @torch.inference_mode()
    def generate(self, prompts: list[str], seeds: list[int], truncation_psi: float = 1.0) -> torch.Tensor:
        """The EMA generator's full-size images [N,3,H,W] for prompt i with seed i (per-seed noise, const noise)."""
        if len(prompts) != len(seeds):
            raise ConfigError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        G = self.G_ema.eval()
        z = seed_noise(seeds, (G.z_dim,), device=self.device)  # [N,z_dim]
        return G(z, self.text(prompts), truncation_psi=truncation_psi, noise_mode="const")[0].float()

    def sample_grid(self) -> torch.Tensor:
        """Fixed prompts (rows) x fixed seeds (columns) from the EMA generator, truncation 1: [P*S,3,H,W]."""
        cfg = self.config
        prompts = [p for p in cfg.sample_prompts for _ in cfg.sample_seeds]
        seeds = [s for _ in cfg.sample_prompts for s in cfg.sample_seeds]
        return self.generate(prompts, seeds).clamp(-1, 1)

    def evaluate(self) -> dict[str, Any] | None:
        """`metrics.evaluate_source` on the EMA generator through `GigaGANPipeline` (prompts: validation split)."""
        tc = self.train_cfg
        model = GigaGANPipeline(self.G_ema.eval(), self.text.encoder())  # same per-seed noise as `generate`
        return evaluate_source(
            model, tc.data, metrics=self.config.eval_metrics, num=self.config.eval_num,
            resolution=tc.resolution, split_by=tc.split_by, caption_field=tc.caption_field, seed=tc.seed,
            device=self.device, step=self.step, kimg=self.cur_nimg / 1000, progress=False)

    def export(self, path: Path) -> Path:
        """The EMA generator's `save_pretrained(path, text_encoder=train.text_encoder)` (inference needs G only)."""
        self.G_ema.save_pretrained(path, text_encoder=self.train_cfg.text_encoder)
        return path


def step_seconds(config: GigaGANRunConfig, steps: int = 5, warmup: int = 1) -> list[float]:
    """Wall time of `steps` full training steps (D + G) on random images and captions (CPU benchmark helper)."""
    return time_steps(GigaGANTrainer, config, steps, warmup)
