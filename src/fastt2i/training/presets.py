"""Run presets of every trainable family: plain functions in one registry that also feeds `fastt2i train`'s choices.

A run preset is a function of no arguments that returns a family's run config (model configs + `TrainConfig` +
loss weights). `FAMILIES` maps the name typed after `fastt2i train` to a `Family` (help text, presets by name,
trainer class); `run_preset(family, name)` builds one:

    from fastt2i.training.presets import FAMILIES, run_preset
    cfg = run_preset("gigagan", "tiny")                  # a GigaGANRunConfig
    trainer = FAMILIES["gigagan"].trainer_class(cfg)

Every family has `tiny` (tests, well under a second a step on CPU) and `default`; the image families also have
`emoji64` (sized for 2 CPU cores, the cost in its docstring) and `paper` (the paper's sizes, for GPU clusters).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fastt2i.assets import ROOT as ASSETS
from fastt2i.errors import ConfigError
from fastt2i.models.emoji import EmojiCLIPConfig
from fastt2i.models.gigagan import GIGAGAN_PRESETS, UPSAMPLER_PRESETS, GigaGANDiscriminatorConfig
from fastt2i.models.paella import VQGAN_PRESETS, PatchGANConfig
from fastt2i.models.paella.presets import PAELLA_PRESETS
from fastt2i.models.stylegan_t import STYLEGAN_T_PRESETS
from fastt2i.models.stylegan_t.discriminator import StyleGANTDiscriminatorConfig
from fastt2i.training.config import TrainConfig
from fastt2i.training.emoji import EmojiCLIPRunConfig, EmojiCLIPTrainer, EmojiNetRunConfig, EmojiNetTrainer
from fastt2i.training.gigagan import GigaGANRunConfig, GigaGANTrainer
from fastt2i.training.paella import PaellaRunConfig, PaellaTrainer
from fastt2i.training.stylegan_t import StyleGANTRunConfig, StyleGANTTrainer
from fastt2i.training.upsampler import UpsamplerRunConfig, UpsamplerTrainer
from fastt2i.training.vqgan import VQGANRunConfig, VQGANTrainer


@dataclass(frozen=True)
class Family:
    """What `fastt2i train NAME` needs.

    Args:
        help: one line on what the family trains.
        presets: run presets by name (always `tiny` and `default`); each is called with no arguments.
        trainer_class: the `Trainer` subclass that runs one of the family's run configs.
    """

    help: str
    presets: Mapping[str, Callable[[], Any]]
    trainer_class: type


# --- emoji-clip, emoji-net: the emoji-domain feature networks ----------------------------------------------------


def emoji_clip_tiny() -> EmojiCLIPRunConfig:
    """32 px, channels (8, 16), one block, batch 16, 64 images: a smoke run of the emoji-clip image tower."""
    return EmojiCLIPRunConfig(
        model=EmojiCLIPConfig(resolution=32, channels=(8, 16), blocks=1),
        train=TrainConfig(run_dir="runs/emoji-clip-tiny", batch_size=16, kimg=0.064, snapshot_kimg=0.032,
                          sample_kimg=0, eval_kimg=0, num_workers=0, resolution=32, log_every=1, ema_kimg=0.01),
        warmup_kimg=0.016)


def emoji_net_tiny() -> EmojiNetRunConfig:
    """32 px, channels (8, 16), one block, batch 16, 64 images, subcategory captions: a smoke run of emoji-net."""
    base = EmojiNetRunConfig()
    return dataclasses.replace(
        base, model=dataclasses.replace(base.model, resolution=32, channels=(8, 16), blocks=1),
        train=TrainConfig(run_dir="runs/emoji-net-tiny", batch_size=16, kimg=0.064, snapshot_kimg=0.032,
                          sample_kimg=0, eval_kimg=0, num_workers=0, resolution=32, log_every=1, ema_kimg=0.01,
                          caption_field="subcategories"),
        warmup_kimg=0.016)


# --- gigagan: tiny (tests), emoji64 (2 CPU cores), the Table 1 ablation rows at emoji64 size, paper ---------------


def gigagan_tiny() -> GigaGANRunConfig:
    """16 px, batch 8, t5-tiny-random text: every G/D component on (L2 attention, adaptive kernels, MS-I/O D,
    matching-aware D, lazy R1 every 2 steps, style mixing); CLIP loss and vision-aided D off (they need emoji-clip
    and MiniLM; switch them on with --set). A step takes ~0.3 s on one CPU thread."""
    g = GIGAGAN_PRESETS.build("tiny")  # t5-tiny-random: 32-d tokens and pooled
    d = GigaGANDiscriminatorConfig(
        resolution=16, pyramid_levels=3, channels=(16, 32, 32), text_encoder="t5-tiny-random", text_dim=32,
        cond_dim=32, text_attn_layers=1, text_heads=2, head_layers=1)
    return GigaGANRunConfig(
        generator=g, discriminator=d,
        train=TrainConfig(run_dir="runs/gigagan-tiny", resolution=16, batch_size=8, kimg=0.032,
                          snapshot_kimg=0.016, sample_kimg=0.032, eval_kimg=0, log_every=1, num_workers=0,
                          ema_kimg=0.01, ema_rampup=None, text_encoder="t5-tiny-random"),
        r1_every=2, style_mixing_prob=0.5, attention_weight_decay=0.01, sample_prompts=("a cat", "a dog"),
        sample_seeds=(0, 1), eval_num=64)


def gigagan_emoji64_discriminator() -> GigaGANDiscriminatorConfig:
    """The emoji64 discriminator (0.3M): 64 px, 5-level multi-scale input/output pyramid, channels 8..32, one block
    per level, MiniLM text (384-d) through one attention layer, condition width 64."""
    return GigaGANDiscriminatorConfig(
        resolution=64, pyramid_levels=5, channels=(8, 16, 32, 32, 32), blocks=1, text_encoder="minilm",
        text_dim=384, cond_dim=64, text_attn_layers=1, text_heads=4, head_layers=1)


def gigagan_emoji64(g_preset: str = "emoji64", discriminator: GigaGANDiscriminatorConfig | None = None,
                    clip_loss_weight: float = 0.2, vision_aided_weight: float = 0.5, **kw: Any) -> GigaGANRunConfig:
    """GigaGAN at 64 px on emoji64: G = GIGAGAN_PRESETS["emoji64"] (1.5M), D 0.3M (channels 8..32, 1 block per
    level, 5-level MS-I/O), MiniLM text, matching-aware D, CLIP loss and vision-aided D on emoji-clip, batch 32,
    bf16 autocast (R1, losses, EMA and w_avg in fp32): a 20 kimg pair of runs gave FD (emoji-net, N = 646) 52.4 in
    bf16 against 54.7 in fp32 at 20 kimg, no worse at 5, 10 and 15 kimg within run-to-run noise
    (docs/training-runs.md); `--set train.mixed_precision=no` trains in fp32.

    Cost (shared 2-core CPU, 2 threads, `benchmarks/train_step.py`, 2026-12-01): a full D+G step with every loss
    takes 1.35 s in bf16 and 1.51 s in fp32 (R1 every 16th step amortised), i.e. ~42 s/kimg; in fp32 about 0.4 s of
    it is the frozen emoji-clip (vision-aided D and CLIP loss). The multi-scale D's cost is mostly fixed per-op
    overhead at these widths (doubling its channels costs 2.4x, halving the coarse ones saves nothing measurable).

    Args:
        g_preset: the generator's name in GIGAGAN_PRESETS (also names the run directory).
        discriminator: D config; default `gigagan_emoji64_discriminator()`.
        clip_loss_weight, vision_aided_weight: the emoji-clip loss weights (0 switches one off).
        **kw: further GigaGANRunConfig fields (e.g. `matching_aware=False`).
    """
    d = discriminator if discriminator is not None else gigagan_emoji64_discriminator()
    return GigaGANRunConfig(
        generator=GIGAGAN_PRESETS.build(g_preset), discriminator=d,
        train=TrainConfig(run_dir=f"runs/gigagan-{g_preset}", resolution=64, batch_size=32, kimg=300,
                          snapshot_kimg=10, sample_kimg=5, eval_kimg=20, log_every=20, ema_kimg=10,
                          text_encoder="minilm", mixed_precision="bf16"),
        g_lr=0.0025, d_lr=0.0025, r1_gamma=0.2, r1_every=16, attention_weight_decay=0.01,
        clip_loss_weight=clip_loss_weight, vision_aided_weight=vision_aided_weight, eval_num=646, **kw)


# Table 1 of the GigaGAN paper, row -> the component it adds (the preset is `ablation-{row}-{name}`) ...
ABLATION_ROWS = {1: "stylegan2", 2: "attention", 3: "matching-aware", 4: "adaptive-kernels", 5: "depth",
                 6: "clip-loss", 7: "multiscale", 8: "vision-aided"}
# ... and the GIGAGAN_PRESETS generator each row trains (rows 3, 6 and 8 change only the loss or D).
ABLATION_GENERATORS = {1: "ablation-1-stylegan2", 2: "ablation-2-attention", 3: "ablation-2-attention",
                       4: "ablation-3-adaptive-kernels", 5: "ablation-4-depth", 6: "ablation-4-depth",
                       7: "ablation-5-multiscale", 8: "ablation-5-multiscale"}


def gigagan_ablation(row: int) -> GigaGANRunConfig:
    """Table 1 rows (GigaGAN paper): each adds one component to the previous row, at emoji64 size."""
    if row not in ABLATION_ROWS:
        raise ConfigError(f"no GigaGAN ablation row {row}; rows are 1..{len(ABLATION_ROWS)}")
    d = dataclasses.replace(gigagan_emoji64_discriminator(), multiscale=row >= 7)
    cfg = gigagan_emoji64(ABLATION_GENERATORS[row], discriminator=d, matching_aware=row >= 3,
                          clip_loss_weight=0.2 if row >= 6 else 0.0, vision_aided_weight=0.5 if row >= 8 else 0.0)
    train = dataclasses.replace(cfg.train, run_dir=f"runs/gigagan-ablation-{row}")
    return dataclasses.replace(cfg, train=train)


def gigagan_paper() -> GigaGANRunConfig:
    """The paper's 64 px generator (652.5M params) with a D of StyleGAN2-like widths; for GPU clusters."""
    d = GigaGANDiscriminatorConfig(
        resolution=64, pyramid_levels=5, channels=(256, 512, 1024, 1024, 1024), blocks=2, text_encoder="clip",
        text_dim=768, cond_dim=512, text_attn_layers=2, text_heads=8, attention=True,
        attention_resolutions=(16, 8), head_layers=2)
    return GigaGANRunConfig(
        generator=GIGAGAN_PRESETS.build("paper"), discriminator=d,
        train=TrainConfig(run_dir="runs/gigagan-paper", resolution=64, batch_size=512, kimg=100_000,
                          snapshot_kimg=500, sample_kimg=100, eval_kimg=1000, log_every=50, ema_kimg=10,
                          mixed_precision="bf16", text_encoder="clip"),
        r1_gamma=0.2, r1_every=16, clip_loss_weight=0.2, vision_aided_weight=0.5, attention_weight_decay=0.00001)


# --- vqgan: Paella's tokenizer; tiny (tests), emoji64 (2 CPU cores), paper (8,192 codes, 4-channel latent) ---------


def vqgan_tiny() -> VQGANRunConfig:
    """16 px, batch 8, codebook 64: every loss on (L1, emoji-clip perceptual, codebook, PatchGAN after 16 images),
    dead-code restarts after 2 steps, evaluation (PSNR/FD/usage) at the end. A step takes ~0.05 s on one thread."""
    return VQGANRunConfig(
        vqgan=VQGAN_PRESETS.build("tiny"),
        disc=PatchGANConfig(channels=8, layers=2),
        train=TrainConfig(run_dir="runs/vqgan-tiny", resolution=16, batch_size=8, kimg=0.032, snapshot_kimg=0.016,
                          sample_kimg=0.032, eval_kimg=0.032, log_every=1, num_workers=0, ema_kimg=0,
                          ema_rampup=None),
        lr=1e-3, d_lr=1e-3, gan_start_kimg=0.016, eval_num=16, sample_num=4)


def vqgan_emoji64() -> VQGANRunConfig:
    """64 px -> 16x16 tokens, codebook 1,024 x 4, channels (32, 64), decoder blocks (1, 4), MLP ratio 2 (0.17M
    params); L1 + codebook losses only, lr 5e-4, batch 32, 160 kimg: 24.00 dB validation PSNR, 100% of the codes
    used (docs/training-runs.md).

    Why no perceptual or GAN loss here: on 64 px emoji both cost PSNR at every budget we could afford on CPU
    (emoji-clip perceptual 1.0 + PatchGAN from 20 kimg: 20.76 dB at 41.6 kimg; perceptual 0.2 + PatchGAN from
    60 kimg: 21.96 dB at 60, 20.31 at 80; L1 only: 22.46 at 80, 24.00 at 160). Both stay one `--set` away
    (`--set perceptual_weight=1 --set gan_weight=0.1 --set gan_start_kimg=20`); the `paper` and `tiny` presets
    use them.

    Cost (shared 2-core CPU, 2 threads, `benchmarks/train_step.py`, 2026-12-01): 0.26 s per step in fp32 (0.20 s
    with `--set train.mixed_precision=bf16`), i.e. ~8 s per kimg: 160 kimg take about 22 minutes on a quiet box.
    """
    return VQGANRunConfig(
        vqgan=VQGAN_PRESETS.build("emoji64"),
        disc=PatchGANConfig(channels=16, layers=3),
        train=TrainConfig(run_dir="runs/vqgan-emoji64", resolution=64, batch_size=32, kimg=160, snapshot_kimg=10,
                          sample_kimg=5, eval_kimg=20, log_every=20, ema_kimg=0, ema_rampup=None),
        lr=5e-4, d_lr=5e-4, perceptual_weight=0.0, gan_weight=0.0, eval_num=1000, sample_num=8)


def vqgan_paper() -> VQGANRunConfig:
    """The official Paella v3 / Wuerstchen VQGAN: 256 px -> 64x64 tokens, 8,192 codes of width 4, channels
    (192, 384), 12 decoder bottleneck blocks; pix2pix PatchGAN; for GPUs."""
    return VQGANRunConfig(
        vqgan=VQGAN_PRESETS.build("paper"),
        disc=PatchGANConfig(channels=64, layers=3),
        train=TrainConfig(run_dir="runs/vqgan-paper", resolution=256, batch_size=256, kimg=50_000,
                          snapshot_kimg=500, sample_kimg=100, eval_kimg=1000, log_every=50, ema_kimg=0,
                          ema_rampup=None, mixed_precision="bf16"),
        lr=1e-4, d_lr=1e-4, gan_start_kimg=10_000, eval_num=10_000)


# --- paella: token predictor; tiny (tests, random tiny VQGAN), emoji64 (2 CPU cores), paper (v3, 1,008M) ----------


def paella_tiny() -> PaellaRunConfig:
    """16 px -> 4x4 tokens of a random tiny VQGAN ("random-tiny", 64 codes), t5-tiny-random text, no CLIP tokens,
    batch 8; sampling (4 steps) at the end. A step takes a few ms on one CPU thread."""
    return PaellaRunConfig(
        model=PAELLA_PRESETS.build("tiny"), vqgan="random-tiny", clip_model=None,
        train=TrainConfig(run_dir="runs/paella-tiny", resolution=16, batch_size=8, kimg=0.032, snapshot_kimg=0.016,
                          sample_kimg=0.032, eval_kimg=0, log_every=1, num_workers=0, ema_kimg=0.01,
                          ema_rampup=None, text_encoder="t5-tiny-random"),
        lr=1e-3, sample_prompts=("a cat", "a dog"), sample_seeds=(0, 1), sample_steps=4, eval_num=64)


def paella_emoji64() -> PaellaRunConfig:
    """64 px -> 16x16 tokens of the emoji64 VQGAN (1,024 codes; pass its export with --set vqgan=PATH), MiniLM
    text, emoji-clip text and image vectors (4 tokens each), denoiser PAELLA_PRESETS["emoji64"] (4.7M), batch 32,
    lr 3e-4 with 2 kimg warm-up, EMA half-life 10 kimg; each image's tokens are cached after its first epoch
    (`token_cache`), which removes the VQGAN encoder from the step. Samples, evaluations and the export use cfg 3
    (the sweep in docs/training-runs.md: FD 5.6 against 13.1 at the official cfg 8).

    Cost (shared 2-core CPU, 2 threads, `benchmarks/train_step.py` with a randomly initialised emoji64 VQGAN,
    2026-12-01): 0.37 s per step at batch 32 with the token cache warm and 0.42 s while tokenising (the first
    epoch), in fp32; 0.35-0.38 s with `--set train.mixed_precision=bf16`; i.e. ~12 s/kimg.
    """
    return PaellaRunConfig(
        model=PAELLA_PRESETS.build("emoji64"), vqgan="runs/vqgan-emoji64/export", clip_model="emoji-clip",
        train=TrainConfig(run_dir="runs/paella-emoji64", resolution=64, batch_size=32, kimg=300, snapshot_kimg=10,
                          sample_kimg=5, eval_kimg=20, log_every=20, ema_kimg=10, text_encoder="minilm"),
        lr=3e-4, warmup_kimg=2, eval_num=1000, token_cache=True, sample_cfg=3.0)


def paella_paper() -> PaellaRunConfig:
    """Paella v3 (1,008M): ByT5-XL text, OpenCLIP ViT-H/14 vectors, 8,192-code VQGAN at 256 px, AdamW 1e-4 with
    10k warm-up steps at batch 2,048 (official `src_distributed/train.py`); for GPU clusters."""
    model = PAELLA_PRESETS.build("paper")
    return PaellaRunConfig(
        model=model, vqgan="runs/vqgan-paper/export", clip_model="path/to/openclip-vit-h-14-export",
        train=TrainConfig(run_dir="runs/paella-paper", resolution=256, batch_size=2048, kimg=3_072_000,
                          snapshot_kimg=4096, sample_kimg=4096, eval_kimg=40_960, log_every=50, ema_kimg=500,
                          mixed_precision="bf16", text_encoder=model.text_encoder),
        lr=1e-4, warmup_kimg=20_480, eval_num=10_000)


# --- stylegan-t: tiny (tests, random tiny DINO), emoji64 (2 CPU cores, emoji-clip backbone), paper ---------------


def stylegan_t_tiny() -> StyleGANTRunConfig:
    """16 px, batch 8, t5-tiny-random text, D heads (16 wide) over the seeded random tiny DINO ViT ("dino-tiny-random",
    32 px, 5 taps); DiffAugment on, D-input blur sigma 2 fading out over the first 16 images; CLIP guidance off (it
    needs an emoji-clip-like model in the text encoder's space; switch it on with --set). A step takes well under
    a second on one CPU thread."""
    g = STYLEGAN_T_PRESETS.build("tiny")  # t5-tiny-random: 32-d tokens and pooled
    d = StyleGANTDiscriminatorConfig(backbone="dino-tiny-random", c_dim=g.pooled_width, head_channels=16,
                                     cmap_dim=16, kernel_size=3)
    return StyleGANTRunConfig(
        generator=g, discriminator=d,
        train=TrainConfig(run_dir="runs/stylegan-t-tiny", resolution=16, batch_size=8, kimg=0.032,
                          snapshot_kimg=0.016, sample_kimg=0.032, eval_kimg=0, log_every=1, num_workers=0,
                          ema_kimg=0.01, ema_rampup=None, text_encoder="t5-tiny-random"),
        blur_init_sigma=2.0, blur_fade_kimg=0.016, sample_prompts=("a cat", "a dog"), sample_seeds=(0, 1),
        eval_num=64)


def stylegan_t_emoji64() -> StyleGANTRunConfig:
    """StyleGAN-T at 64 px on emoji64: G = STYLEGAN_T_PRESETS["emoji64"] (1.8M, MiniLM text), D = 32-wide heads
    (0.12M) over the frozen emoji-clip image tower ("emoji-clip"; never emoji-net, the FD network) at its 16x16, 8x8
    and 4x4 maps (strides 4-16 of the 64 px image: the granularity of DINO's 16 px patches at 224 px in the paper;
    the 32x32 stem maps would double D's cost), hinge loss on DiffAugment-ed images, D-input blur sigma 2 fading out
    over 20 kimg, CLIP guidance 0.2 with emoji-clip, Adam 0.002 (0, 0.99), batch 32, 250 kimg.

    Cost (a 2-core CPU shared with two training runs, nice'd, one thread; median of 5 steps of
    `fastt2i.training.stylegan_t.step_seconds`, four measurements): a full D+G step at batch 32 takes 2.1-3.8 s
    (median ~3 s: ~95 s/kimg, 250 kimg in ~6.5 h under that load). The emoji-clip tower runs three times a step (D
    on real+fake, D on G's images with input gradients, CLIP guidance: ~0.6 s forward+backward at batch 32) and the
    generator takes ~1.3 s forward+backward; heads on all five taps (incl. the 32x32 stem maps) cost 4.9-5.4 s.
    Expect roughly half on an idle machine. bf16 autocast by default (the GigaGAN preset's fp32/bf16 pair found no
    loss; here a step at one thread took a median 1.5-2.1 s against 2.2 s in fp32, alternating, 2026-12-01);
    --set train.mixed_precision=no for fp32.
    """
    g = STYLEGAN_T_PRESETS.build("emoji64")
    d = StyleGANTDiscriminatorConfig(backbone="emoji-clip", c_dim=g.pooled_width, taps=(2, 3, 4), head_channels=32)
    return StyleGANTRunConfig(
        generator=g, discriminator=d,
        train=TrainConfig(run_dir="runs/stylegan-t-emoji64", resolution=64, batch_size=32, kimg=250,
                          snapshot_kimg=10, sample_kimg=5, eval_kimg=20, log_every=20, ema_kimg=10,
                          mixed_precision="bf16", text_encoder=g.text_encoder),
        g_lr=0.002, d_lr=0.002, clip_guidance_weight=0.2, clip_model="emoji-clip", blur_init_sigma=2.0,
        blur_fade_kimg=20, eval_num=646)


# Issue 13's data-side fix: each training caption's form drawn per sample (the full caption twice as often as each
# short form), so that "red heart" is a prompt the model has seen and style-free prompts have several answers.
EMOJI_CAPTION_VARIANTS = "full:2,name:1,name_style:1,name_category:1,keywords:1"


def with_caption_variants(make: Callable[[], Any], run_dir: str) -> Callable[[], Any]:
    """The run preset `make` with `train.caption_variants = EMOJI_CAPTION_VARIANTS` and its own run directory."""

    def preset() -> Any:
        cfg = make()
        train = dataclasses.replace(cfg.train, caption_variants=EMOJI_CAPTION_VARIANTS, run_dir=run_dir)
        return dataclasses.replace(cfg, train=train)

    preset.__doc__ = (f"{make.__name__} with caption variants ({EMOJI_CAPTION_VARIANTS}). Measured on StyleGAN-T "
                      "(docs/training-runs.md): 40 kimg of them after 200 kimg of full captions took FD on short "
                      "prompts from 21.75 to 9.10 and stylecover from 0.559 to 0.630, full captions level.")
    return preset


def finetune_from_bundle(make: Callable[[], Any], bundle: str, kimg: float, **fields: Any) -> Callable[[], Any]:
    """The caption-variant preset of `make` as a fine-tune of the bundled model `bundle` (`train.init_from`), the
    recipe of docs/training-runs.md (sessions 10 and 11): `kimg` kimg, the EMA's half-life from the start
    (`ema_rampup=None`), a snapshot every 5 kimg, and `fields` (loss weights, `d_warmup_kimg`, ...)."""

    def preset() -> Any:
        cfg = with_caption_variants(make, f"runs/{bundle}-finetune")()
        train = dataclasses.replace(cfg.train, init_from=bundle, kimg=kimg, ema_rampup=None, snapshot_kimg=5)
        return dataclasses.replace(cfg, train=train, **fields)

    preset.__doc__ = (f"Fine-tune the bundled {bundle} with caption variants ({EMOJI_CAPTION_VARIANTS}) for {kimg:g} "
                      f"kimg; {', '.join(f'{k}={v!r}' for k, v in fields.items()) or 'no other change'}. Pass your "
                      "own data with --data.")
    return preset


def stylegan_t_paper() -> StyleGANTRunConfig:
    """The paper's `full` generator at 64 px (CLIP ViT-L/14 text, 768-d) against heads over DINO ViT-S/16 (pass
    its local directory: --set discriminator.backbone=dino:/path/to/dino-vits16), CLIP guidance 0.2 (an
    emoji-clip-like export of a CLIP ViT-L/14: --set clip_model=PATH), Adam 0.002, batch 2,048, bf16; for GPU
    clusters. The text-encoder phase follows with --mode text-encoder --set grow_from=RUN (text_lr 3e-6)."""
    g = STYLEGAN_T_PRESETS.build("full")
    d = StyleGANTDiscriminatorConfig(backbone="dino:/path/to/dino-vits16", c_dim=g.pooled_width)
    return StyleGANTRunConfig(
        generator=g, discriminator=d,
        train=TrainConfig(run_dir="runs/stylegan-t-paper", resolution=64, batch_size=2048, kimg=25_000,
                          snapshot_kimg=500, sample_kimg=100, eval_kimg=1000, log_every=50, ema_kimg=640,
                          mixed_precision="bf16", text_encoder=g.text_encoder),
        g_lr=0.002, d_lr=0.002, clip_guidance_weight=0.2, clip_model="path/to/clip-vit-l-14-export",
        blur_init_sigma=2.0, blur_fade_kimg=1000, eval_num=10_000)


# --- upsampler: GigaGAN's text-conditioned super-resolution (sec. 3.6); tiny (tests), emoji (64 -> 256), paper ------


def upsampler_tiny() -> UpsamplerRunConfig:
    """16 -> 32 px, batch 8, t5-tiny-random text, D on (image, input) pairs at 32 px (3 levels), perceptual loss on
    the bundled emoji-clip, noise augmentation on: a smoke run (~0.3 s a step on one CPU thread)."""
    d = GigaGANDiscriminatorConfig(
        resolution=32, pyramid_levels=3, channels=(16, 32, 32), text_encoder="t5-tiny-random", text_dim=32,
        cond_dim=32, text_attn_layers=1, text_heads=2, head_layers=1, image_channels=6)
    return UpsamplerRunConfig(
        generator=UPSAMPLER_PRESETS.build("tiny"), discriminator=d,
        train=TrainConfig(run_dir="runs/upsampler-tiny", resolution=32, batch_size=8, kimg=0.032,
                          snapshot_kimg=0.016, sample_kimg=0.032, eval_kimg=0, log_every=1, num_workers=0,
                          ema_kimg=0.01, ema_rampup=None, text_encoder="t5-tiny-random"),
        r1_every=2, style_mixing_prob=0.5, sample_prompts=("a cat",), sample_seeds=(0,), eval_num=16,
        eval_metrics="patchfd,psnr,ssim,lrpsnr")


def upsampler_emoji(crop: int = 128) -> UpsamplerRunConfig:
    """64 -> 256 px on `fastt2i data emoji --size 256`: G = UPSAMPLER_PRESETS["emoji"] (4.0M), D on (image, input)
    pairs (channels 16..128, 5 levels down to 8 px, 6 input channels), MiniLM text, matching-aware D, LPIPS-style
    loss on emoji-clip (weight 1), noise augmentation sigma <= 0.1, batch 16, bf16.

    Trained on random 128 px crops (32 px inputs; `--set crop=0` for whole images): on 2 shared CPU cores a full
    step costs about 1 s per 128 px crop against about 1.9 s per 256 px image (measured with 4 jobs on the cores,
    2026-12-01), so 200 kimg is a GPU job (`scripts/gpu_train.py`); see docs/training-runs.md.
    """
    side = crop or 256
    levels = 5 if side == 128 else 6
    d = GigaGANDiscriminatorConfig(
        resolution=side, pyramid_levels=levels, channels=(16, 32, 64, 128, 128, 256)[6 - levels:], blocks=1,
        text_encoder="minilm", text_dim=384, cond_dim=64, text_attn_layers=1, text_heads=4, head_layers=1,
        image_channels=6)
    return UpsamplerRunConfig(
        generator=UPSAMPLER_PRESETS.build("emoji"), discriminator=d,
        train=TrainConfig(run_dir="runs/upsampler-emoji256", resolution=256, batch_size=16, kimg=300,
                          snapshot_kimg=5, sample_kimg=2, eval_kimg=20, log_every=20, ema_kimg=10,
                          text_encoder="minilm", mixed_precision="bf16"),
        g_lr=0.0025, d_lr=0.0025, r1_gamma=0.2, r1_every=16, attention_weight_decay=0.01, crop=crop,
        perceptual_weight=1.0, perceptual_net="emoji-clip", noise_aug_sigma=0.1, sample_seeds=(0,),
        sample_prompts=("red heart",))


def upsampler_paper() -> UpsamplerRunConfig:
    """The paper's 128 -> 1024 px upsampler (359.1M, UPSAMPLER_PRESETS["paper"]) with a StyleGAN2-width D on
    (image, input) pairs, CLIP ViT-L/14 text; for GPU clusters (the perceptual network must be given by path)."""
    d = GigaGANDiscriminatorConfig(
        resolution=1024, pyramid_levels=7, channels=(32, 64, 128, 256, 512, 512, 512), blocks=1,
        text_encoder="clip", text_dim=768, cond_dim=512, text_attn_layers=2, text_heads=8, head_layers=2,
        image_channels=6)
    return UpsamplerRunConfig(
        generator=UPSAMPLER_PRESETS.build("paper"), discriminator=d,
        train=TrainConfig(run_dir="runs/upsampler-paper", resolution=1024, batch_size=64, kimg=50_000,
                          snapshot_kimg=500, sample_kimg=100, eval_kimg=0, log_every=50, ema_kimg=10,
                          mixed_precision="bf16", text_encoder="clip"),
        r1_gamma=0.2, r1_every=16, perceptual_weight=1.0, noise_aug_sigma=0.1, attention_weight_decay=0.00001)


# --- the registry --------------------------------------------------------------------------------------------------

FAMILIES: Mapping[str, Family] = MappingProxyType({
    "emoji-clip": Family("image tower in MiniLM's text space (CLIP score and CLIP roles on emoji data)",
                         MappingProxyType({"default": EmojiCLIPRunConfig, "tiny": emoji_clip_tiny}), EmojiCLIPTrainer),
    "emoji-net": Family("emoji subcategory/style classifier (FD/KID/precision-recall features only)",
                        MappingProxyType({"default": EmojiNetRunConfig, "tiny": emoji_net_tiny}), EmojiNetTrainer),
    "gigagan": Family("GigaGAN text-to-image GAN (Kang et al. 2023)",
                      MappingProxyType({"tiny": gigagan_tiny, "emoji64": gigagan_emoji64, "default": gigagan_emoji64,
                                        "emoji64-variants": with_caption_variants(gigagan_emoji64,
                                                                                  "runs/gigagan-emoji64-variants"),
                                        # session 10's recipe (the measured run used CLIP loss 0.2 for its first
                                        # 49 kimg, where full-caption subacc stayed flat)
                                        "emoji64-finetune": finetune_from_bundle(
                                            gigagan_emoji64, "gigagan-emoji64", 120, clip_loss_weight=0.5,
                                            d_warmup_kimg=2.0),
                                        "paper": gigagan_paper,
                                        **{f"ablation-{row}-{name}": functools.partial(gigagan_ablation, row)
                                           for row, name in ABLATION_ROWS.items()}}), GigaGANTrainer),
    "vqgan": Family("Paella's f=4 VQGAN tokenizer (L1 + perceptual + PatchGAN)",
                    MappingProxyType({"tiny": vqgan_tiny, "emoji64": vqgan_emoji64, "default": vqgan_emoji64,
                                      "paper": vqgan_paper}), VQGANTrainer),
    "paella": Family("Paella token predictor (Rampas et al. 2022, v3) on a frozen VQGAN",
                     MappingProxyType({"tiny": paella_tiny, "emoji64": paella_emoji64, "default": paella_emoji64,
                                       "emoji64-variants": with_caption_variants(paella_emoji64,
                                                                                 "runs/paella-emoji64-variants"),
                                       "emoji64-finetune": finetune_from_bundle(
                                           paella_emoji64, "paella-emoji64", 80,
                                           vqgan=str(ASSETS / "paella-emoji64" / "vqgan")),
                                       "paper": paella_paper}), PaellaTrainer),
    "stylegan-t": Family("StyleGAN-T text-to-image GAN (Sauer et al. 2023): frozen-backbone D, CLIP guidance",
                         MappingProxyType({"tiny": stylegan_t_tiny, "emoji64": stylegan_t_emoji64,
                                           "emoji64-variants": with_caption_variants(
                                               stylegan_t_emoji64, "runs/stylegan-t-emoji64-variants"),
                                           "emoji64-finetune": finetune_from_bundle(
                                               stylegan_t_emoji64, "stylegan-t-emoji64", 30,
                                               clip_guidance_weight=0.5, d_warmup_kimg=2.0, blur_init_sigma=0.0,
                                               mode_seeking_weight=0.1, mode_seeking_pool=16),
                                           "default": stylegan_t_emoji64, "paper": stylegan_t_paper}),
                         StyleGANTTrainer),
    "upsampler": Family("GigaGAN text-conditioned upsampler (Kang et al. 2023, sec. 3.6), 64 -> 256 px on emoji",
                        MappingProxyType({"tiny": upsampler_tiny, "emoji": upsampler_emoji, "default": upsampler_emoji,
                                          "paper": upsampler_paper}), UpsamplerTrainer),
})
"""Every trainable family by the name typed after `fastt2i train`."""


def families() -> dict[str, Family]:
    """Every trainable family by the name typed after `fastt2i train` (a fresh dict over `FAMILIES`)."""
    return dict(FAMILIES)


def get_family(name: str) -> Family:
    """The family called NAME; a ConfigError listing the choices if there is none."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; choose one of: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def run_preset(family: str, name: str = "default") -> Any:
    """Build the run config of preset NAME of FAMILY, e.g. `run_preset("gigagan", "tiny")`."""
    presets = get_family(family).presets
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(presets))}")
    return presets[name]()
