"""Paella token-predictor trainer: frozen VQGAN tokens, uniform renoising, weighted CE, per-sample cond dropout, EMA.

    fastt2i train paella --preset tiny --data tiny.npz --run-dir runs/paella-tiny
    fastt2i train paella --preset emoji64 --data emoji64.npz --set vqgan=runs/vqgan-emoji64/export

One step (official v3 `src_distributed/train.py`): tokenise the batch with the frozen VQGAN; encode captions with the
frozen text encoder (cached per caption) and, when the model takes CLIP tokens, the pooled CLIP text vector and the
CLIP image vector (only for the samples that keep it); draw per-sample drop flags (text 0.05, CLIP text 0.9, CLIP
image 0.9), t ~ U(0,1] clamped at 0.001, replace each token with probability t by a uniform random token; minimise the
label-smoothed CE weighted 1 / ``1-(1-t)(1-eta)`` (noised / clean), normalised per image. AdamW with linear warm-up,
gradient clipping at 1 and an EMA of the denoiser; the export is a `PaellaPipeline` bundle (vqgan/ + denoiser/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.evaluation import evaluate_source
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.losses.token import head_cross_entropy, paella_loss, renoise_tokens, sample_t
from fastt2i.models.image_text import load_clip_model
from fastt2i.models.paella.conditioning import ConditionDropout, sample_dropout
from fastt2i.models.paella.config import PaellaConfig
from fastt2i.models.paella.denoiser import PaellaDenoiser
from fastt2i.models.paella.presets import PAELLA_PRESETS
from fastt2i.models.paella.vqgan import VQGAN, VQGANConfig
from fastt2i.serialization import CONFIG_NAME
from fastt2i.text.batcher import TextBatcher
from fastt2i.training.config import TrainConfig
from fastt2i.training.trainer import Trainer
from fastt2i.training.trainer import step_seconds as time_steps

DEFAULT_PROMPTS = ("grinning face", "red heart", "thumbs up", "cat face")
RANDOM_TINY_VQGAN = "random-tiny"


def _emoji64_model() -> PaellaConfig:
    return PAELLA_PRESETS.build("emoji64")


@dataclass(frozen=True)
class PaellaRunConfig:
    """A Paella token-predictor training run.

    Args:
        model: the denoiser architecture (its `text_encoder` must equal `train.text_encoder`).
        train: run settings (data, length, batch, EMA, precision...); `train.resolution` = 4 * model.token_shape.
        vqgan: export directory of a trained Paella VQGAN (frozen), or "random-tiny" (a randomly initialised tiny
            VQGAN with the model's codebook size, seeded: for tests and smoke runs only).
        clip_model: "emoji-clip" or an export dir giving the pooled CLIP text/image vectors; must be set exactly when
            `model.clip_dim > 0` (None otherwise).
        lr: AdamW learning rate (official: 1e-4).
        betas: AdamW betas.
        weight_decay: AdamW decoupled weight decay (torch's default, as in the official code).
        warmup_kimg: linear learning-rate warm-up length (official: 10k steps).
        grad_clip: gradient-norm clip (official: 1.0); 0 = off.
        label_smoothing: cross-entropy label smoothing (0.1).
        eta: clean-token loss weight at t = 0 (0.3).
        min_t: lower clamp of t (0.001).
        dropout: per-sample conditioning dropout probabilities.
        sample_prompts: prompts of the sample grid (rows).
        sample_seeds: seeds of the sample grid (columns).
        sample_steps: sampler steps for the grid and evaluation.
        sample_cfg: classifier-free guidance weight for the grid and evaluation (None = the pipeline's default).
        eval_metrics: metrics computed every `train.eval_kimg` (fastt2i.metrics names).
        eval_num: generated images per evaluation.
        token_cache: keep each training image's VQGAN tokens in memory, keyed by the sample key, so every image is
            tokenised once per process (~13% of an emoji64 CPU step). Only for datasets whose keys are unique and
            that fit in memory (2 bytes per token: 6 MB for emoji64), and never with `train.hflip`.
    """

    model: PaellaConfig = field(default_factory=_emoji64_model)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/paella", resolution=64))
    vqgan: str = ""
    clip_model: str | None = "emoji-clip"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_kimg: float = 0.0
    grad_clip: float = 1.0
    label_smoothing: float = 0.1
    eta: float = 0.3
    min_t: float = 0.001
    dropout: ConditionDropout = field(default_factory=ConditionDropout)
    sample_prompts: tuple[str, ...] = DEFAULT_PROMPTS
    sample_seeds: tuple[int, ...] = (0, 1, 2, 3)
    sample_steps: int = 12
    sample_cfg: float | None = None
    eval_metrics: str = "fd_emojinet,clipscore_emojiclip"
    eval_num: int = 10_000
    token_cache: bool = False

    def __post_init__(self) -> None:
        m, t = self.model, self.train
        if m.text_encoder != t.text_encoder:
            raise ConfigError(f"model.text_encoder {m.text_encoder!r} differs from train.text_encoder "
                              f"{t.text_encoder!r}")
        if tuple(4 * s for s in m.token_shape) != (t.resolution, t.resolution):
            raise ConfigError(f"train.resolution ({t.resolution}) must be 4 x model.token_shape {m.token_shape} "
                              "(the VQGAN downsamples by f=4)")
        if (m.clip_dim > 0) != bool(self.clip_model):
            raise ConfigError(f"clip_model must be set exactly when model.clip_dim > 0 (clip_dim={m.clip_dim}, "
                              f"clip_model={self.clip_model!r})")
        if self.lr <= 0 or self.warmup_kimg < 0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ConfigError("lr must be > 0; warmup_kimg, grad_clip and weight_decay >= 0")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.eta <= 1 or not 0 <= self.min_t <= 1:
            raise ConfigError("label_smoothing must be in [0,1), eta and min_t in [0,1]")
        if self.token_cache and t.hflip:
            raise ConfigError("token_cache needs un-augmented images: it cannot be used with train.hflip")
        if not self.sample_prompts or not self.sample_seeds or self.sample_steps < 1:
            raise ConfigError("sample_prompts and sample_seeds must not be empty and sample_steps >= 1")


def random_tiny_vqgan(codebook_size: int, resolution: int = 16, seed: int = 0) -> nn.Module:
    """A randomly initialised tiny Paella VQGAN (widths 16/32, one block per level), identical for a given seed."""
    cfg = VQGANConfig(resolution=resolution, channels=(16, 32), encoder_blocks=(1, 1), decoder_blocks=(1, 1),
                      mlp_ratio=2, codebook_size=codebook_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VQGAN(cfg)


def load_vqgan(spec: str, codebook_size: int, resolution: int, device: torch.device | None = None) -> nn.Module:
    """The frozen VQGAN of a run: an export directory or "random-tiny"; checks the codebook size."""
    if not spec:
        raise ConfigError("vqgan is empty: give the export directory of a trained VQGAN (fastt2i train vqgan) or "
                          f"{RANDOM_TINY_VQGAN!r}")
    if spec == RANDOM_TINY_VQGAN:
        vq = random_tiny_vqgan(codebook_size, resolution)
    else:
        path = Path(spec).expanduser()
        if (path / "export" / "config.json").is_file() and not (path / "config.json").is_file():
            path = path / "export"
        vq = VQGAN.from_pretrained(path)
    if int(vq.codebook_size) != codebook_size:
        raise ConfigError(f"the VQGAN {spec!r} has {vq.codebook_size} codes but model.codebook_size is {codebook_size}")
    return vq.to(device or "cpu").eval().requires_grad_(False)


class _TrainForward(nn.Module):
    """Conditioner + denoiser + loss in one forward, so that DDP sees every trained parameter in one call.

    On CPU the loss is `head_cross_entropy` (the output projection fused with the cross-entropy); elsewhere the
    denoiser's logits go to `paella_loss`. Returns (loss, top-1 hits [B,h,w] bool).
    """

    def __init__(self, denoiser: PaellaDenoiser, fused: bool):
        super().__init__()
        self.denoiser = denoiser
        self.fused = fused

    def forward(self, tokens: torch.Tensor, t: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                clip_text: torch.Tensor | None, clip_image: torch.Tensor | None, drops: dict[str, torch.Tensor],
                target: torch.Tensor, replaced: torch.Tensor, label_smoothing: float,
                eta: float) -> tuple[torch.Tensor, torch.Tensor]:
        cond = self.denoiser.conditioner(text_tokens, text_mask, clip_text, clip_image, **drops)
        if self.fused:
            features = self.denoiser(tokens, t, *cond, return_features=True)  # [B,c_out,h,w]
            return head_cross_entropy(features, self.denoiser.out_proj.weight[:, :, 0, 0], target, t, replaced,
                                      label_smoothing, eta)
        logits = self.denoiser(tokens, t, *cond)  # [B,K,h,w]
        loss = paella_loss(logits, target, t, replaced, label_smoothing, eta)  # CE in fp32
        with torch.no_grad():  # top-1 hits as the fused loss counts them: the target's logit is the largest
            hits = (logits.gather(1, target[:, None]) >= logits.amax(dim=1, keepdim=True))[:, 0]  # [B,h,w]
        return loss, hits


class PaellaTrainer(Trainer):
    """Trains a `PaellaDenoiser` on the tokens of a frozen VQGAN from a `PaellaRunConfig`."""

    config: PaellaRunConfig

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.config
        mcfg = cfg.model
        self.vqgan = load_vqgan(cfg.vqgan, mcfg.codebook_size, self.train_cfg.resolution, self.device)
        self.text = TextBatcher(self.train_cfg.text_encoder, self.device)
        self.clip: nn.Module | None = load_clip_model(cfg.clip_model, self.device) if cfg.clip_model else None
        self._clip_text: dict[str, torch.Tensor] = {}
        self._tokens: dict[str, torch.Tensor] = {}  # sample key -> [h,w] int16/int32 tokens (token_cache)
        denoiser = PaellaDenoiser(mcfg).to(self.device)
        # fused AdamW: one kernel over all parameters (on 2 CPU threads ~5x faster than the per-tensor loop)
        opt = torch.optim.AdamW(denoiser.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                                fused=self.fused_optimizer)
        warm_steps = cfg.warmup_kimg * 1000 / self.train_cfg.batch_size
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm_steps) if warm_steps > 0 else 1.0)
        self.denoiser = denoiser
        self.model, self.opt = self.prepare(_TrainForward(denoiser, fused=self.device.type == "cpu"), opt)
        self.sched = sched
        self.denoiser_ema = self.add_ema("denoiser", denoiser)  # an fp32 copy, updated outside autocast
        self.maybe_compile(denoiser, "denoiser")  # train.compile (after add_ema: the EMA copy stays eager)

    # ------------------------------------------------------------------------------------------------ pieces
    def tokenize(self, images: torch.Tensor, keys: list[str] | None) -> torch.Tensor:
        """VQGAN tokens [B,h,w] of the batch; with `token_cache`, only images whose key was never seen are encoded."""
        if not self.config.token_cache:
            return self.vqgan.tokenize(images)
        if keys is None or len(keys) != images.shape[0]:
            raise ConfigError("token_cache needs a 'key' per image in each batch")
        missing = [i for i, k in enumerate(keys) if k not in self._tokens]
        if missing:
            dtype = torch.int16 if self.config.model.codebook_size <= 2**15 else torch.int32
            for i, tok in zip(missing, self.vqgan.tokenize(images[missing]).to("cpu", dtype)):
                self._tokens[keys[i]] = tok
        return torch.stack([self._tokens[k] for k in keys]).to(self.device, torch.long)  # [B,h,w]

    def clip_text(self, captions: list[str], pooled: torch.Tensor) -> torch.Tensor:
        """Pooled CLIP text vectors [B,E]: the normalised pooled text when the CLIP model shares the text encoder
        (emoji-clip's text side is MiniLM's pooled vector), else its `encode_text` (cached per caption)."""
        spec = getattr(getattr(self.clip, "config", None), "text_encoder", None)
        if spec == self.train_cfg.text_encoder:
            return F.normalize(pooled.float(), dim=-1)
        missing = sorted({c for c in captions if c not in self._clip_text})
        if missing:
            for c, e in zip(missing, self.clip.encode_text(missing).float().cpu()):
                self._clip_text[c] = e
        return torch.stack([self._clip_text[c] for c in captions]).to(self.device)  # [B,E]

    def conditioning_inputs(self, images: torch.Tensor, captions: list[str],
                            drops: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(text tokens [B,L,D], mask [B,L], clip_text [B,E] | None, clip_image [B,E] | None); CLIP image vectors
        are computed only for the samples that keep them (the others stay zero and are dropped)."""
        tokens, mask, pooled = self.text(captions)
        if tokens.shape[-1] != self.config.model.text_dim:
            raise ConfigError(f"text encoder {self.train_cfg.text_encoder!r} gives {tokens.shape[-1]}-d tokens but "
                              f"model.text_dim is {self.config.model.text_dim}")
        if self.clip is None:
            return tokens, mask, None, None
        clip_text = self.clip_text(captions, pooled)  # [B,E]
        clip_image = torch.zeros_like(clip_text)  # [B,E]
        keep = ~drops["drop_clip_image"]
        if bool(keep.any()):
            clip_image[keep] = self.clip.encode_image(images[keep]).float()
        return tokens, mask, clip_text, clip_image

    # ------------------------------------------------------------------------------------------------ step
    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        cfg = self.config
        images = batch["image"]  # [B,3,R,R] in [-1,1]
        captions = list(batch["caption"])
        B = images.shape[0]
        with torch.no_grad():
            target = self.tokenize(images, batch.get("key"))  # [B,h,w]
            drops = sample_dropout(B, cfg.dropout, device=self.device)
            text, mask, clip_text, clip_image = self.conditioning_inputs(images, captions, drops)
            t = sample_t(B, min_t=cfg.min_t, device=self.device)  # [B]
            noised, replaced = renoise_tokens(target, t, cfg.model.codebook_size)  # [B,h,w] each
        self.model.train()
        with self.autocast():  # train.mixed_precision: the denoiser in bf16 (or fp16 on GPU); the CE in fp32
            loss, hit = self.model(noised, t, text, mask, clip_text, clip_image, drops, target, replaced,
                                   cfg.label_smoothing, cfg.eta)  # scalar, [B,h,w] bool
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss)
        out = {"loss/ce": loss.detach()}
        if cfg.grad_clip > 0:
            out["grad_norm"] = torch.as_tensor(self.accelerator.clip_grad_norm_(self.model.parameters(),
                                                                                cfg.grad_clip)).detach()
        self.opt.step()
        self.sched.step()
        with torch.no_grad():
            # top-1 hits as "the target's logit is the largest" (ties count as hits): a max over the classes, not an
            # argmax over dim 1, which torch runs ~10x slower on CPU at this size
            hit = hit.float()  # [B,h,w]
            out["acc/noised"] = (hit * replaced).sum() / replaced.sum().clamp(min=1)
            out["acc/all"] = hit.mean()
        return out

    # ------------------------------------------------------------------------------------------------ state
    def init_from_export(self, export: Path) -> None:
        """The token model and its EMA from a Paella bundle (or a bare denoiser export); the optimiser starts fresh.
        A bundle's VQGAN must be this run's (`vqgan`): its token model knows only that codebook."""
        denoiser = export
        if (export / "denoiser" / CONFIG_NAME).is_file():
            denoiser = export / "denoiser"
            theirs = VQGAN.from_pretrained(export / "vqgan").state_dict()
            ours = self.vqgan.state_dict()
            if theirs.keys() != ours.keys() or any(
                    v.shape != ours[k].shape or not torch.equal(v, ours[k].cpu()) for k, v in theirs.items()):
                raise ConfigError(f"train.init_from: {export}'s token model was trained on its own VQGAN, not on "
                                  f"{self.config.vqgan!r}: set vqgan={export / 'vqgan'}")
        self.load_generator_export(denoiser, PaellaDenoiser, self.denoiser, "denoiser")

    def state_dict(self) -> dict[str, Any]:
        return {"denoiser": self.denoiser.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.denoiser.load_state_dict(state["denoiser"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])

    # ------------------------------------------------------------------------------------------------ outputs
    def pipeline(self) -> Any:
        """A `PaellaPipeline` over the frozen VQGAN, the EMA denoiser, the text encoder and the CLIP model, whose
        default sampler is the run's (`sample_steps`, `sample_cfg`): an export samples as the run evaluated it."""
        return PaellaPipeline(self.vqgan, self.denoiser_ema.eval(), self.text.encoder(), self.clip,
                              text_encoder_spec=self.train_cfg.text_encoder, clip_model_spec=self.config.clip_model,
                              resolution=self.train_cfg.resolution, sampler=self._sample_kwargs())

    def _sample_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"steps": self.config.sample_steps}
        if self.config.sample_cfg is not None:
            kw["cfg"] = self.config.sample_cfg
        return kw

    def sample_grid(self) -> torch.Tensor:
        """Fixed prompts (rows) x fixed seeds (columns) from the EMA denoiser: [P*S,3,H,W] in [-1,1]."""
        cfg = self.config
        prompts = [p for p in cfg.sample_prompts for _ in cfg.sample_seeds]
        seeds = [s for _ in cfg.sample_prompts for s in cfg.sample_seeds]
        return self.pipeline().generate(prompts, seeds, **self._sample_kwargs()).float().clamp(-1, 1)

    def evaluate(self) -> dict[str, Any] | None:
        """`metrics.evaluate_source` on the EMA denoiser through `PaellaPipeline` (prompts: validation split)."""
        tc = self.train_cfg
        pipe = self.pipeline()
        kw = self._sample_kwargs()

        class _Source:
            def generate(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
                return pipe.generate(prompts, seeds, **kw)

        return evaluate_source(
            _Source(), tc.data, metrics=self.config.eval_metrics, num=self.config.eval_num,
            resolution=tc.resolution, split_by=tc.split_by, caption_field=tc.caption_field, seed=tc.seed,
            device=self.device, step=self.step, kimg=self.cur_nimg / 1000, progress=False)

    def export(self, path: Path) -> Path:
        """A `PaellaPipeline` bundle (vqgan/, denoiser/ = the EMA denoiser, config.json naming text and CLIP)."""
        self.pipeline().save_pretrained(path)
        return path


def step_seconds(config: PaellaRunConfig, steps: int = 5, warmup: int = 1) -> list[float]:
    """Wall time of `steps` training steps on random images and captions (text encoding kept out of the timing)."""
    return time_steps(PaellaTrainer, config, steps, warmup)
