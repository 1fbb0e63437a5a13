"""StyleGAN-T trainer: hinge loss through a frozen-backbone D on DiffAugment-ed images, CLIP guidance, EMA G, 3 modes.

    fastt2i train stylegan-t --preset tiny --data emoji64.npz --run-dir runs/sgt-tiny
    fastt2i train stylegan-t --preset emoji64 --data emoji64.npz --run-dir runs/sgt-emoji64 --kimg 250
    fastt2i train stylegan-t --preset emoji64 --data emoji64.npz --run-dir runs/sgt-text \\
        --mode text-encoder --set grow_from=runs/sgt-emoji64 --kimg 50

Objective (Sauer et al. 2023, sec. 3.2-3.3; the official `training/loss.py`): D minimises the hinge loss
relu(1 - D(x, c)) + relu(1 + D(G(z, c), c)), averaged over the batch and the heads' N logits, on real and generated
images that both went through a Gaussian blur whose sigma fades linearly from `blur_init_sigma` to 0 over the first
`blur_fade_kimg` kimg and then DiffAugment (same policy, independent draws; inside D, after the blur, as in the
official D); no R1 (the backbone's features are fixed, the heads are small). c is the frozen text encoder's pooled
vector (L2-normalised like G's). G minimises -D(G(z, c), c) (through the same blur and augmentation) plus
`clip_guidance_weight` times the squared spherical distance between the CLIP embeddings of its images and of their
captions (sec. 3.3). D runs in eval mode during G steps, so that G steps leave every D tensor (spectral-norm vectors
included) as the last D step left it.

Modes (`mode`, also `fastt2i train --mode`; the official `--train-mode`):
  full          G (mapping MLP + synthesis) and D's heads train from scratch.
  text-encoder  the paper's second phase: starting from the finished run `grow_from`, only the text encoder trains
                (at `text_lr`, with gradients through the frozen G): captions are encoded inside the step. D and the
                CLIP guidance keep the frozen encoder's embeddings. G and D stay bit-identical (the official code also
                keeps updating D's heads: `text_encoder_d_steps=true`). The export carries the fine-tuned encoder in
                export/text_encoder/ and names it ``NAME:./text_encoder``.
  grow          the official `freeze64`: from the lower-resolution run `grow_from`, build the generator at
                `generator.resolution`, copy every weight the two share, train only the new (higher-resolution)
                blocks and every to-RGB layer; every other G parameter and buffer stays bit-identical. D (a new one,
                or the source run's heads when it saved a training state) trains as usual.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastt2i.data.augment import diff_augment, parse_policy
from fastt2i.config import to_json
from fastt2i.errors import ConfigError, DataError
from fastt2i.evaluation import evaluate_source
from fastt2i.inference.stylegan_t import StyleGANTPipeline
from fastt2i.losses.clip_guidance import clip_guidance_loss, clip_input_features
from fastt2i.losses.diversity import check_mode_seeking, pair_conditions, paired_mode_seeking_loss
from fastt2i.losses.gan import d_hinge, g_hinge
from fastt2i.models.image_text import load_clip_model
from fastt2i.models.stylegan_t.config import StyleGANTGeneratorConfig
from fastt2i.models.stylegan_t.discriminator import StyleGANTDiscriminator, StyleGANTDiscriminatorConfig
from fastt2i.models.stylegan_t.generator import StyleGANTGenerator, text_vector
from fastt2i.noise import seed_noise
from fastt2i.serialization import read_export_config
from fastt2i.text.batcher import Text, TextBatcher
from fastt2i.text.registry import load_text_encoder, parse_spec
from fastt2i.training.config import TrainConfig
from fastt2i.training.finetune import config_differences, find_export
from fastt2i.training.state import list_states, load_state
from fastt2i.training.trainer import Trainer
from fastt2i.training.trainer import step_seconds as time_steps

DEFAULT_PROMPTS = ("grinning face", "red heart", "thumbs up", "cat face")
MODES = ("full", "text-encoder", "grow")
TEXT_ENCODER_DIR = "text_encoder"  # where a text-encoder-mode export keeps its fine-tuned encoder
TO_RGB_NAMES = ("torgb", "to_rgb")  # module-name parts of the to-RGB layers (trained in `grow` mode)
GROWABLE = {"resolution", "channels", "res_blocks"}  # generator fields a grow run may change
CLIP_CROP = 64  # CLIP guidance sees a random 64 px crop of larger images (official `training/loss.py`)


@dataclass(frozen=True)
class StyleGANTRunConfig:
    """A StyleGAN-T training run: architectures, run settings, optimisers, loss switches and the training mode.

    Args:
        generator: the generator architecture (its `text_encoder` and `resolution` must equal `train`'s).
        discriminator: the discriminator (frozen feature backbone by spec + trainable heads; conditioned on the
            pooled text vector, so its `c_dim` must equal the generator's pooled width).
        train: run settings (data, length, batch, EMA, precision...).
        g_lr: generator Adam learning rate (official: 0.002).
        d_lr: discriminator heads' Adam learning rate (official: 0.002).
        betas: Adam betas of G and D (official: 0, 0.99).
        clip_guidance_weight: weight of the CLIP guidance term (sec. 3.3); 0 = off (no CLIP model is loaded).
        clip_model: "emoji-clip" (bundled) or the path of an emoji-clip-like export (`encode_image`, `encode_text`).
        diffaug_policy: DiffAugment policy applied to every image D sees ("" = none).
        blur_init_sigma: sigma (pixels) of the Gaussian blur on D's inputs at the start of training.
        blur_fade_kimg: the blur fades linearly to 0 over this many kimg (0 = no blur).
        mode: "full", "text-encoder" or "grow" (see the module docstring).
        grow_from: the run the text-encoder and grow modes start from: a run directory (its newest training state:
            EMA G and D) or an export (G only; D then starts untrained).
        text_lr: the text encoder's Adam learning rate in text-encoder mode (official: 3e-6).
        text_encoder_d_steps: in text-encoder mode, keep training D's heads as the official code does (default
            off: only the text encoder changes, as the paper describes the phase).
        sample_prompts: fixed prompts of the sample grid (rows).
        sample_seeds: fixed seeds of the sample grid (columns).
        eval_metrics: metrics computed every `train.eval_kimg` (fastt2i.metrics names).
        eval_num: generated images per evaluation.
        d_warmup_kimg: for this run's first N kimg only the discriminator's heads train (G and its EMA stay as they
            are): a fresh D catches up with a G that `train.init_from` loaded from an export.
        mode_seeking_weight: weight of MSGAN's mode-seeking term (`fastt2i.losses.diversity`; not in the paper):
            each G batch is half as many captions, each drawn with two z, and G is also pushed to make the two
            images differ (their L1 distance at `mode_seeking_pool` px). 0 = off (the paper). Full mode only.
        mode_seeking_pool: the pixel distance's resolution (0 = full; 16: shape and colour, not noise texture).
        mode_seeking_space: "pixels", or "clip": the cosine distance of the two images' `clip_model` embeddings.
    """

    generator: StyleGANTGeneratorConfig = field(default_factory=StyleGANTGeneratorConfig)
    discriminator: StyleGANTDiscriminatorConfig = field(default_factory=StyleGANTDiscriminatorConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/stylegan-t"))
    g_lr: float = 0.002
    d_lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    clip_guidance_weight: float = 0.0
    clip_model: str = "emoji-clip"
    diffaug_policy: str = "color,translation,cutout"
    blur_init_sigma: float = 2.0
    blur_fade_kimg: float = 200.0
    mode: str = "full"
    grow_from: str | None = None
    text_lr: float = 3e-6
    text_encoder_d_steps: bool = False
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
        if not 0 <= self.d_warmup_kimg < float("inf"):
            raise ConfigError(f"d_warmup_kimg must be a finite number >= 0, got {self.d_warmup_kimg}")
        if g.resolution != t.resolution:
            raise ConfigError(f"generator.resolution ({g.resolution}) must equal train.resolution ({t.resolution})")
        if g.text_encoder != t.text_encoder:
            raise ConfigError(f"generator.text_encoder {g.text_encoder!r} differs from train.text_encoder "
                              f"{t.text_encoder!r}")
        c_dim = getattr(d, "c_dim", g.pooled_width)
        if c_dim != g.pooled_width:
            raise ConfigError(f"discriminator.c_dim ({c_dim}) must equal the generator's pooled text width "
                              f"({g.pooled_width}): D is conditioned on the pooled text vector")
        if self.g_lr <= 0 or self.d_lr <= 0 or self.text_lr <= 0:
            raise ConfigError(f"g_lr, d_lr and text_lr must be > 0, got {self.g_lr}, {self.d_lr}, {self.text_lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two values in [0,1), got {self.betas}")
        if self.clip_guidance_weight < 0:
            raise ConfigError(f"clip_guidance_weight must be >= 0, got {self.clip_guidance_weight}")
        if self.blur_init_sigma < 0 or self.blur_fade_kimg < 0:
            raise ConfigError(f"blur_init_sigma and blur_fade_kimg must be >= 0, got {self.blur_init_sigma}, "
                              f"{self.blur_fade_kimg}")
        parse_policy(self.diffaug_policy)  # a ConfigError naming the valid ops
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        check_mode_seeking(self.mode_seeking_weight, t.batch_size, self.mode == "full", self.mode_seeking_pool,
                           self.mode_seeking_space)
        if not self.sample_prompts or not self.sample_seeds:
            raise ConfigError("sample_prompts and sample_seeds must not be empty")
        if self.eval_num < 1:
            raise ConfigError(f"eval_num must be >= 1, got {self.eval_num}")


def blur_sigma(cur_nimg: int, init_sigma: float, fade_kimg: float) -> float:
    """The D-input blur sigma after `cur_nimg` images: linear from `init_sigma` to 0 at `fade_kimg` kimg, 0 after.

    Args:
        cur_nimg: images shown so far; init_sigma: sigma at 0 images; fade_kimg: length of the fade (0 = no blur).
    """
    if fade_kimg <= 0:
        return 0.0
    return max(1.0 - cur_nimg / (fade_kimg * 1000), 0.0) * init_sigma


# ---------------------------------------------------------------------------------------------------- source runs
@dataclass
class SourceRun:
    """What the text-encoder and grow modes start from (read by `read_source_run`).

    Args:
        path: the run directory or export read.
        generator_config: the source generator's config as a dict (from its run config or export).
        G: the source generator's state dict (a run's EMA generator, or the export's weights).
        D: the source discriminator's state dict (None when the source is an export).
    """

    path: Path
    generator_config: dict[str, Any]
    G: dict[str, torch.Tensor]
    D: dict[str, torch.Tensor] | None


def read_source_run(path: str | Path) -> SourceRun:
    """The generator (and discriminator) of a finished StyleGAN-T run: a run directory's newest readable training
    state (EMA G, D) or, without one, an export (G only).

    Args:
        path: a run directory (config.json + state/), a run directory with export/, or an export directory.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"grow_from: {p} does not exist (give a StyleGAN-T run directory or export)")
    for state_path in reversed(list_states(p)):
        try:
            state = load_state(state_path)
        except DataError:
            continue
        try:
            run_cfg = json.loads(state["config"]) if isinstance(state.get("config"), str) else None
            gcfg = run_cfg["generator"]
            return SourceRun(p, gcfg, state["ema"]["G"], state["trainer"]["D"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"grow_from: {state_path} is not a StyleGAN-T training state") from None
    export = find_export(str(p))
    if export is None:
        raise ConfigError(f"grow_from: {p} holds neither a training state nor an export")
    meta = read_export_config(export)
    if meta["class"] != StyleGANTGenerator.model_name:
        raise ConfigError(f"grow_from: {export} holds a {meta['class']!r} model, not a StyleGAN-T generator")
    G = StyleGANTGenerator.from_pretrained(export)
    return SourceRun(export, meta["config"], G.state_dict(), None)


def copy_matching(dst: nn.Module, src: dict[str, torch.Tensor], what: str) -> set[str]:
    """Copy every tensor of `src` into the same-named entry of `dst`'s state dict; returns the names copied.

    An entry of `src` that `dst` lacks or holds in another shape is a ConfigError (the architectures differ in more
    than the new blocks).
    """
    own = dst.state_dict()
    extra = sorted(k for k in src if k not in own)
    wrong = sorted(k for k in src if k in own and tuple(own[k].shape) != tuple(src[k].shape))
    if extra or wrong:
        shown = [f"{k} {tuple(src[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3]]
        raise ConfigError(f"grow_from: the source {what} does not fit the new one (absent here: {extra[:3]}; other "
                          f"shapes: {shown}); keep its architecture (a grow run may only add higher-resolution "
                          "generator blocks)")
    with torch.no_grad():
        for k, v in src.items():
            own[k].copy_(v)
    return set(src)


# ---------------------------------------------------------------------------------------------------- trainer
class StyleGANTTrainer(Trainer):
    """Trains `StyleGANTGenerator` against `StyleGANTDiscriminator` from a `StyleGANTRunConfig`.

    `train_step` runs `d_step` then `g_step` (text-encoder mode: `g_step` only, unless `text_encoder_d_steps`);
    each returns its loss terms by name.
    """

    config: StyleGANTRunConfig

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.config
        gcfg = cfg.generator
        G = StyleGANTGenerator(gcfg)
        D = StyleGANTDiscriminator(cfg.discriminator)
        self.text = TextBatcher(self.train_cfg.text_encoder, self.device, (gcfg.text_dim, gcfg.pooled_width))
        # D's frozen backbone: whatever D itself does not train (recorded before any requires_grad toggling)
        self._d_params = [p for p in D.parameters() if p.requires_grad]
        self.source: SourceRun | None = None
        self.grown: set[str] = set()  # grow mode: G's state-dict names copied from the source run
        if cfg.mode != "full":
            if not cfg.grow_from:  # (checked here, not in the config: `--mode` and `--set grow_from` come apart)
                raise ConfigError(f"mode={cfg.mode} starts from a finished run: set grow_from=RUN_DIR_OR_EXPORT")
            self.source = read_source_run(cfg.grow_from)
            if self.source.D is not None:
                copy_matching(D, self.source.D, "discriminator")
            elif cfg.mode == "text-encoder":
                self.print(f"warning: {self.source.path} is an export (no discriminator): D starts untrained")
        if cfg.mode == "text-encoder":
            self._check_source_generator(set())  # the generator stays the source's, exactly
            copy_matching(G, self.source.G, "generator")
            self._g_params: list[nn.Parameter] = []
        elif cfg.mode == "grow":
            self._check_source_generator(GROWABLE)
            self.grown = copy_matching(G, self.source.G, "generator")
            names = [n for n, _ in G.named_parameters()]
            if not any(n not in self.grown for n in names):
                raise ConfigError("mode=grow: the new generator adds no block to the source; raise "
                                  "generator.resolution (and train.resolution) above the source's")
            self._g_params = [p for n, p in G.named_parameters()
                              if n not in self.grown or any(part in TO_RGB_NAMES for part in n.split("."))]
        else:
            self._g_params = list(G.parameters())
        G.requires_grad_(False)
        for p in self._g_params:
            p.requires_grad_(True)
        # The networks are NOT wrapped in DDP (G is driven through its parts, D runs on real and fake in one pass);
        # they start equal on every rank (same seed) and `_sync` averages their gradients (StyleGAN2-ADA's scheme).
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.text_encoder: nn.Module | None = None  # text-encoder mode: the encoder being fine-tuned
        fused = self.fused_optimizer
        if cfg.mode == "text-encoder":
            enc = load_text_encoder(self.train_cfg.text_encoder, trainable=True, device=self.device)
            self.text_encoder = enc
            opt_G = torch.optim.Adam(list(enc.parameters()), lr=cfg.text_lr, betas=cfg.betas, fused=fused)
        else:
            opt_G = torch.optim.Adam(self._g_params, lr=cfg.g_lr, betas=cfg.betas, fused=fused)
        opt_D = torch.optim.Adam(self._d_params, lr=cfg.d_lr, betas=cfg.betas, fused=fused)
        self.opt_G, self.opt_D = self.prepare(opt_G, opt_D)
        self.G_ema = self.add_ema("G", self.G)
        self.text_ema = self.add_ema("text_encoder", self.text_encoder) if self.text_encoder is not None else None
        self.clip: nn.Module | None = None
        if cfg.clip_guidance_weight > 0 or (cfg.mode_seeking_weight > 0 and cfg.mode_seeking_space == "clip"):
            self.clip = load_clip_model(cfg.clip_model, self.device)
        self._clip_text: dict[str, torch.Tensor] = {}
        self.maybe_compile(self.G.mapping, "G.mapping")
        self.maybe_compile(self.G.synthesis, "G.synthesis")
        self.maybe_compile(self.D, "D")

    def _check_source_generator(self, may_differ: set[str]) -> None:
        """ConfigError naming the generator config fields (other than `may_differ`) that differ from the source's."""
        shown = config_differences(json.loads(to_json(self.config.generator)), self.source.generator_config,
                                   may_differ)
        if shown:
            keep = "only " + ", ".join(sorted(may_differ)) + " may change" if may_differ else "it must be the same"
            raise ConfigError(f"mode={self.config.mode}: the generator config differs from the source run's "
                              f"({shown}); {keep}")

    @property
    def trains_d(self) -> bool:
        """Whether `train_step` runs a D step (always, except in text-encoder mode without text_encoder_d_steps)."""
        return self.config.mode != "text-encoder" or self.config.text_encoder_d_steps

    def _sync(self, params: list[torch.Tensor]) -> None:
        """Average the gradients of `params` over processes (one flat all-reduce); nothing on a single process."""
        self.average_across_processes([p.grad for p in params if p.grad is not None])

    @staticmethod
    def _set_grad(params: list[nn.Parameter], flag: bool) -> None:
        for p in params:
            p.requires_grad_(flag)

    # ------------------------------------------------------------------------------------------------ pieces
    @property
    def blur_sigma(self) -> float:
        """The current blur sigma of D's inputs (fades linearly to 0 at `blur_fade_kimg`)."""
        return blur_sigma(self.cur_nimg, self.config.blur_init_sigma, self.config.blur_fade_kimg)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment with `diffaug_policy` ([B,3,H,W] -> fp32 [B,3,H,W]; differentiable; "" = unchanged).

        fp32 out: under CPU bf16 autocast D's blur returns bf16, which the antialiased resize after it cannot take."""
        policy = self.config.diffaug_policy
        return (diff_augment(images, policy) if policy else images).float()

    def d_condition(self, text: Text) -> torch.Tensor:
        """D's text condition c [B,c_dim]: the frozen encoder's pooled vector, normalised and scaled as G's t_global
        (`text_vector`; the official D sees normalised CLIP text features)."""
        return text_vector(text[2].float(), self.config.generator)

    def judge(self, images: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """D's fp32 logits [B,N] for images [B,3,H,W] under c [B,c_dim]: blur (current sigma), then DiffAugment
        (inside D, after the blur, as the official D), then the frozen backbone and the heads."""
        return self.D(images, c, blur_sigma=self.blur_sigma, augment=self.augment)

    def judge_real_fake(self, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits [B,N] on real and on fake images, each blurred and augmented with its own random draw.

        When B is a multiple of D's virtual batch (its batch-norm groups never straddle the two halves), both halves
        share one pass through D (the blur and the resize work per sample; DiffAugment is called on each half);
        otherwise D runs on each half alone (the official D sees real and fake apart)."""
        b = len(real)
        if b % self.config.discriminator.virtual_batch:
            return self.judge(real, c), self.judge(fake, c)

        def augment_halves(x: torch.Tensor) -> torch.Tensor:  # [2B,3,H,W]: real half, fake half
            return torch.cat([self.augment(x[:b]), self.augment(x[b:])])

        logits = self.D(torch.cat([real, fake]), torch.cat([c, c]), blur_sigma=self.blur_sigma,
                        augment=augment_halves)  # [2B,N]
        return logits[:b], logits[b:]

    def clip_text(self, captions: list[str]) -> torch.Tensor:
        """The CLIP model's text embeddings [B,E] of `captions` (`encode_text`, cached per caption on the host)."""
        missing = sorted({c for c in captions if c not in self._clip_text})
        if missing:
            with torch.no_grad():
                for c, e in zip(missing, self.clip.encode_text(missing).float().cpu()):
                    self._clip_text[c] = e
        return torch.stack([self._clip_text[c] for c in captions]).to(self.device)  # [B,E]

    def encode_trainable(self, captions: list[str]) -> Text:
        """Text-encoder mode: the fine-tuned encoder's (tokens [B,L,D], mask [B,L], pooled [B,P]), with gradients."""
        with self.autocast():
            emb = self.text_encoder.encode(captions)
        return emb.tokens.float(), emb.mask, emb.pooled.float()

    def sample_z(self, batch: int) -> torch.Tensor:
        return torch.randn(batch, self.config.generator.z_dim, device=self.device)  # [B,z_dim]

    def synthesize(self, G: nn.Module, z: torch.Tensor, text: Text, mix: bool = False,
                   update_w_avg: bool = False) -> torch.Tensor:
        """z [B,z_dim] + text -> images [B,3,H,W], with StyleGAN2 style mixing when `mix` (generator config's prob)."""
        t_local, t_mask, t_global = G.text_condition(*text)
        ws = G.mapping(z, t_global, update_w_avg=update_w_avg)  # [B,num_ws,w_dim]
        prob = self.config.generator.style_mixing_prob
        if mix and prob > 0 and G.num_ws > 1 and float(torch.rand(())) < prob:
            cutoff = int(torch.randint(1, G.num_ws, ()))
            ws2 = G.mapping(torch.randn_like(z), t_global)  # [B,num_ws,w_dim]
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return G.synthesis(ws, t_local, t_mask)[0]  # [B,3,H,W]

    # ------------------------------------------------------------------------------------------------ steps
    def d_step(self, images: torch.Tensor, text: Text, g_text: Text | None = None) -> dict[str, torch.Tensor]:
        """One D update: hinge loss on augmented real and (detached) fake images, both blurred by `blur_sigma`.

        Args:
            images: real images [B,3,H,W] in [-1,1]; text: their frozen-encoder text (D's condition: pooled);
            g_text: the text G is conditioned on (text-encoder mode: the fine-tuned encoder's); default `text`.
        """
        self._set_grad(self._d_params, True)
        self.D.train()  # spectral norm's power iteration runs in D steps only
        c = self.d_condition(text)  # [B,c_dim]
        g_text = text if g_text is None else tuple(t.detach() for t in g_text)
        with torch.no_grad(), self.autocast():
            fake = self.synthesize(self.G, self.sample_z(len(images)), g_text).detach()  # [B,3,H,W]
        with self.autocast():  # same augmentation policy on real and fake, independent draws
            real_logits, fake_logits = self.judge_real_fake(images.detach(), fake, c)  # [B,N] each
        loss = d_hinge(real_logits.float(), fake_logits.float())
        self.opt_D.zero_grad(set_to_none=True)
        self.backward(loss)
        self._sync(self._d_params)
        self.opt_D.step()
        return {"loss/d_hinge": loss.detach(), "logits/real": real_logits.detach().mean(),
                "logits/fake": fake_logits.detach().mean()}

    def g_step(self, captions: list[str], text: Text, g_text: Text | None = None) -> dict[str, torch.Tensor]:
        """One G update (text-encoder mode: text-encoder update): -D(aug(G(z, c)), c) + CLIP guidance.

        Args:
            captions: the batch's captions (CLIP guidance's text side); text: their frozen-encoder text (D's
                condition); g_text: the text G is conditioned on (text-encoder mode: with gradients); default `text`.
        """
        cfg = self.config
        self._set_grad(self._d_params, False)  # input gradients only: D's weights get none
        self.D.eval()  # ... and its spectral-norm vectors stay as the last D step left them (D unchanged by G steps)
        g_text = text if g_text is None else g_text
        out: dict[str, torch.Tensor] = {}
        if cfg.mode_seeking_weight > 0:  # rows P..2P-1 repeat the captions of rows 0..P-1, with their own z
            captions, text, g_text = pair_conditions(captions, text, g_text, device=self.device)
        z = self.sample_z(len(captions))  # [B,z_dim]
        with self.autocast():
            fake = self.synthesize(self.G, z, g_text, mix=cfg.mode == "full",
                                   update_w_avg=cfg.mode == "full")  # [B,3,H,W]
            logits = self.judge(fake, self.d_condition(text)).float()  # [B,N]
            out["loss/g_adv"] = g_hinge(logits)
            total = out["loss/g_adv"]
            feats = clip_input_features(self.clip, fake, crop=CLIP_CROP) if self.clip is not None else None  # [B,E]
            if cfg.mode_seeking_weight > 0:  # MSGAN eq. 3 over the caption pairs
                x = feats if cfg.mode_seeking_space == "clip" else fake
                out["loss/g_ms"] = paired_mode_seeking_loss(x, z, pool=cfg.mode_seeking_pool)
                total = total + cfg.mode_seeking_weight * out["loss/g_ms"]
            if cfg.clip_guidance_weight > 0:  # sec. 3.3: squared spherical distance to the caption's CLIP embedding
                out["loss/g_clip"] = clip_guidance_loss(self.clip, fake, self.clip_text(captions),
                                                        image_features=feats)
                total = total + cfg.clip_guidance_weight * out["loss/g_clip"]
        params = self._g_params if self.text_encoder is None else list(self.text_encoder.parameters())
        self.opt_G.zero_grad(set_to_none=True)
        self.backward(total)
        self._sync(params)
        self.opt_G.step()
        if self.world_size > 1 and cfg.mode == "full":  # each rank moved w_avg towards its batch mean: average them
            w_avg = self.G.w_avg
            torch.distributed.all_reduce(w_avg)
            w_avg /= self.world_size
        self._set_grad(self._d_params, True)
        return {k: v.detach() for k, v in out.items()}

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        captions = list(batch["caption"])
        text = self.text(captions)
        g_text = self.encode_trainable(captions) if self.text_encoder is not None else None
        losses: dict[str, torch.Tensor] = {}
        if self.trains_d:
            losses.update(self.d_step(batch["image"], text, g_text))
        if self.cur_nimg >= self.config.d_warmup_kimg * 1000:
            losses.update(self.g_step(captions, text, g_text))
        return losses

    def init_from_export(self, export: Path) -> None:
        """G and its EMA from an exported generator (full mode; D's heads and the optimisers start fresh)."""
        if self.config.mode != "full":
            raise ConfigError(f"train.init_from: mode={self.config.mode} starts from grow_from, not init_from")
        self.load_generator_export(export, StyleGANTGenerator, self.G, "G")

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state = {"G": self.unwrap(self.G).state_dict(), "D": self.unwrap(self.D).state_dict(),
                 "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict()}
        if self.text_encoder is not None:
            state["text_encoder"] = self.text_encoder.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.unwrap(self.G).load_state_dict(state["G"])
        self.unwrap(self.D).load_state_dict(state["D"])
        if self.text_encoder is not None:
            self.text_encoder.load_state_dict(state["text_encoder"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])

    # ------------------------------------------------------------------------------------------------ outputs
    def inference_encoder(self) -> nn.Module:
        """The text encoder sampling, evaluation and export use: the fine-tuned EMA one in text-encoder mode."""
        return self.text_ema if self.text_ema is not None else self.text.encoder()

    def pipeline(self) -> StyleGANTPipeline:
        """A `StyleGANTPipeline` over the EMA generator and `inference_encoder()` (what `fastt2i generate` loads)."""
        return StyleGANTPipeline(self.G_ema.eval(), self.inference_encoder())

    @torch.inference_mode()
    def generate(self, prompts: list[str], seeds: list[int], truncation_psi: float = 1.0) -> torch.Tensor:
        """The EMA generator's images [N,3,H,W] for prompt i with seed i (per-seed noise, const noise)."""
        if len(prompts) != len(seeds):
            raise ConfigError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        G = self.G_ema.eval()
        z = seed_noise(seeds, (G.z_dim,), device=self.device)  # [N,z_dim]
        if self.text_ema is not None:
            emb = self.text_ema.encode(list(prompts))
            text: Text = (emb.tokens.float(), emb.mask, emb.pooled.float())
        else:
            text = self.text(list(prompts))
        t_local, t_mask, t_global = G.text_condition(*text)
        ws = G.mapping(z, t_global, truncation_psi=truncation_psi)  # [N,num_ws,w_dim]
        return G.synthesis(ws, t_local, t_mask, noise_mode="const")[0].float()

    def sample_grid(self) -> torch.Tensor:
        """Fixed prompts (rows) x fixed seeds (columns) from the EMA generator, truncation 1: [P*S,3,H,W]."""
        cfg = self.config
        prompts = [p for p in cfg.sample_prompts for _ in cfg.sample_seeds]
        seeds = [s for _ in cfg.sample_prompts for s in cfg.sample_seeds]
        return self.generate(prompts, seeds).clamp(-1, 1)

    def evaluate(self) -> dict[str, Any] | None:
        """`fastt2i.evaluation.evaluate_source` on `pipeline()` (the EMA generator; prompts: validation split)."""
        tc = self.train_cfg
        return evaluate_source(
            self.pipeline(), tc.data, metrics=self.config.eval_metrics, num=self.config.eval_num,
            resolution=tc.resolution, split_by=tc.split_by, caption_field=tc.caption_field, seed=tc.seed,
            device=self.device, step=self.step, kimg=self.cur_nimg / 1000, progress=False)

    def export_text_encoder_spec(self) -> str:
        """The text-encoder spec the export records: `train.text_encoder`, or in text-encoder mode the fine-tuned
        encoder inside the export (``NAME:./text_encoder``, NAME without a ``-tiny-random`` suffix)."""
        spec = self.train_cfg.text_encoder
        if self.text_encoder is None:
            return spec
        name = parse_spec(spec)[0].removesuffix("-tiny-random")
        return f"{name}:./{TEXT_ENCODER_DIR}"

    def export(self, path: Path) -> Path:
        """The EMA generator's `save_pretrained(path)`; in text-encoder mode also the fine-tuned EMA encoder in
        path/text_encoder/ (the export's text_encoder spec names it)."""
        path = Path(path)
        self.G_ema.save_pretrained(path, text_encoder=self.export_text_encoder_spec())
        if self.text_ema is not None:
            self.text_ema.save_pretrained(path / TEXT_ENCODER_DIR)
        return path


def step_seconds(config: StyleGANTRunConfig, steps: int = 5, warmup: int = 1) -> list[float]:
    """Wall time of `steps` full training steps (D + G) on random images and captions (CPU benchmark helper)."""
    return time_steps(StyleGANTTrainer, config, steps, warmup)


__all__ = ["MODES", "SourceRun", "StyleGANTRunConfig", "StyleGANTTrainer", "blur_sigma", "copy_matching",
           "read_source_run", "step_seconds"]
