"""Paella VQGAN trainer: L1 + LPIPS-style perceptual + codebook losses, PatchGAN hinge loss after a warm-up.

    fastt2i train vqgan --preset tiny --data emoji64.npz --run-dir runs/vqgan-tiny
    fastt2i train vqgan --preset emoji64 --data emoji64.npz --run-dir runs/vqgan-emoji64 --kimg 200

Each step (Esser et al. 2021, "Taming Transformers", with Paella's f=4 model):
    VQ step  recon, q = vqgan(x)
             loss = l1_weight * |x - recon| + perceptual_weight * d_perc(x, recon) + codebook_weight * q.loss
                    (+ gan_weight * -D(recon) once `gan_start_kimg` thousand images have been shown)
    D step   (once the GAN is on) hinge loss relu(1 - D(x)) + relu(1 + D(sg[recon])), real and fake in one forward
The perceptual network is emoji-clip's image tower on emoji data (never emoji-net, which measures FD). The GAN weight
is fixed (no adaptive last-layer weighting). The exported model is the VQGAN itself (no EMA: the tokens of a VQ model
must come from one set of weights). Validation metrics (`evaluate_reconstruction`): PSNR, L1, FD (emoji-net features)
of reconstructions vs originals, and codebook usage (perplexity, % of codes used) over the validation split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError, DataError
from fastt2i.losses.perceptual import PerceptualLoss, load_perceptual_network
from fastt2i.metrics.emoji import EmojiNetFeatures
from fastt2i.metrics.sources import split_samples
from fastt2i.metrics.stats import FeatureStats, frechet_distance_stats
from fastt2i.models.paella.patchgan import PatchGAN, PatchGANConfig
from fastt2i.models.paella.quantizer import code_histogram, perplexity_and_usage
from fastt2i.models.paella.vqgan import VQGAN, VQGANConfig
from fastt2i.training.config import TrainConfig
from fastt2i.training.trainer import Trainer
from fastt2i.training.trainer import step_seconds as time_steps


@dataclass(frozen=True)
class VQGANRunConfig:
    """A VQGAN training run.

    Args:
        vqgan: the tokenizer architecture (its resolution must equal train.resolution).
        disc: the PatchGAN discriminator.
        train: run settings (data, length, batch...); train.ema_kimg is unused (no EMA).
        lr: Adam learning rate of the VQGAN.
        d_lr: Adam learning rate of the discriminator.
        betas: Adam betas of both (taming-transformers: 0.5, 0.9).
        l1_weight: weight of the L1 reconstruction loss.
        perceptual_weight: weight of the perceptual loss; 0 = off (no network loaded).
        codebook_weight: weight of the quantizer loss (codebook + beta * commitment).
        gan_weight: weight of the generator hinge loss; 0 = no discriminator.
        gan_start_kimg: thousands of images shown before the adversarial losses switch on.
        perceptual_net: "emoji-clip" or an export directory of an image-text model (emoji-net is refused).
        perceptual_resolution: resize images to this size for the perceptual network (None: as they are).
        eval_num: at most this many validation images per evaluation.
        eval_fd_net: "emoji-net" (bundled), an emoji-net export directory, or "" to skip FD.
        sample_num: validation images in the sample grid (originals row above reconstructions row).
    """

    vqgan: VQGANConfig = field(default_factory=lambda: VQGANConfig(resolution=64))
    disc: PatchGANConfig = field(default_factory=PatchGANConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(run_dir="runs/vqgan"))
    lr: float = 2e-4
    d_lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    codebook_weight: float = 1.0
    gan_weight: float = 0.1
    gan_start_kimg: float = 50.0
    perceptual_net: str = "emoji-clip"
    perceptual_resolution: int | None = None
    eval_num: int = 1000
    eval_fd_net: str = "emoji-net"
    sample_num: int = 8

    def __post_init__(self) -> None:
        if self.vqgan.resolution != self.train.resolution:
            raise ConfigError(f"vqgan.resolution ({self.vqgan.resolution}) must equal train.resolution "
                              f"({self.train.resolution})")
        if self.lr <= 0 or self.d_lr <= 0 or len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"lr/d_lr must be > 0 and betas two values in [0,1), got {self.lr}, {self.d_lr}, "
                              f"{self.betas}")
        for name in ("l1_weight", "perceptual_weight", "codebook_weight", "gan_weight", "gan_start_kimg"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.perceptual_net == "emoji-net":
            raise ConfigError("perceptual_net must not be emoji-net (it measures FD); use 'emoji-clip'")
        if self.eval_num < 1 or self.sample_num < 0:
            raise ConfigError(f"eval_num must be >= 1 and sample_num >= 0, got {self.eval_num}, {self.sample_num}")


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss mean(relu(1 - D(x))) + mean(relu(1 + D(G)))."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR [B] in dB of images in [-1,1] (peak-to-peak 2, so MAX^2 = 4)."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # [B]
    return 10 * torch.log10(4.0 / mse)


def load_fd_network(spec: str, device: torch.device | str | None = None) -> nn.Module:
    """emoji-net features for FD: "emoji-net" (bundled) or an emoji-net export directory."""
    return EmojiNetFeatures(None if spec == "emoji-net" else spec).to(device or "cpu")


@torch.no_grad()
def evaluate_reconstruction(
    vqgan: VQGAN,
    data: str,
    *,
    resolution: int,
    num: int = 1000,
    batch_size: int = 64,
    split: str = "val",
    split_by: str = "key",
    val_fraction: float = 0.05,
    caption_field: str | None = None,
    fd_net: nn.Module | str | None = "emoji-net",
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Reconstruction quality and codebook usage of `vqgan` (eval mode) over a dataset split.

    Args:
        vqgan: the tokenizer; reconstructions are decode_tokens(tokenize(x)), clamped to [-1,1].
        data: dataset path (fastt2i.data).
        resolution: image size.
        num: at most this many images (the first ones of the split, in order).
        batch_size: images per forward.
        split, split_by, val_fraction, caption_field: which images (as in training).
        fd_net: emoji-net feature extractor, a spec for `load_fd_network`, or None to skip FD.
        device: where to run (default: the VQGAN's device).
    Returns:
        {"psnr_val", "l1_val", "fd_emojinet_recon_val" (if fd_net), "codebook_perplexity_val",
         "codebook_used_pct_val", "num_val"}; names end with the split.
    """
    dev = torch.device(device) if device is not None else next(vqgan.parameters()).device
    was_training = vqgan.training
    vqgan.eval()
    if isinstance(fd_net, str):
        fd_net = load_fd_network(fd_net, dev) if fd_net else None
    counts = torch.zeros(vqgan.codebook_size, device=dev)
    psnr_sum = l1_sum = 0.0
    n = 0
    stats: tuple[Any, Any] | None = None
    for batch in split_samples(data, split, resolution, caption_field=caption_field, split_by=split_by,
                               val_fraction=val_fraction, batch_size=batch_size):
        x = batch["image"][: num - n].to(dev).float()  # [B,3,R,R]
        if len(x) == 0:
            break
        tokens = vqgan.tokenize(x)  # [B,h,w]
        recon = vqgan.decode_tokens(tokens).float().clamp(-1, 1)  # [B,3,R,R]
        counts += code_histogram(tokens, vqgan.codebook_size)
        psnr_sum += float(psnr(recon, x).sum())
        l1_sum += float((recon - x).abs().flatten(1).mean(1).sum())
        if fd_net is not None:
            fr, fx = fd_net(recon), fd_net(x)  # [B,D] each
            if stats is None:
                stats = (FeatureStats(fr.shape[1]), FeatureStats(fx.shape[1]))
            stats[0].update(fr)
            stats[1].update(fx)
        n += len(x)
        if n >= num:
            break
    vqgan.train(was_training)
    if n == 0:
        raise DataError(f"{data}: no images in split {split!r} to evaluate")
    perplexity, usage = perplexity_and_usage(counts)
    out: dict[str, Any] = {f"psnr_{split}": psnr_sum / n, f"l1_{split}": l1_sum / n}
    if stats is not None:
        out[f"fd_emojinet_recon_{split}"] = frechet_distance_stats(stats[0], stats[1]) if n > 1 else float("nan")
    out.update({f"codebook_perplexity_{split}": float(perplexity), f"codebook_used_pct_{split}": 100 * float(usage),
                f"num_{split}": n})
    return out


class VQGANTrainer(Trainer):
    """Trains `VQGAN` (+ `PatchGAN` after the warm-up) from a `VQGANRunConfig`; see the module docstring."""

    config: VQGANRunConfig

    def setup(self) -> None:
        cfg = self.config
        self.vq = VQGAN(cfg.vqgan).to(self.device)
        self.D = PatchGAN(cfg.disc).to(self.device) if cfg.gan_weight > 0 else None
        self.perceptual: nn.Module | None = None
        if cfg.perceptual_weight > 0:
            net = load_perceptual_network(cfg.perceptual_net, self.device, resolution=cfg.perceptual_resolution)
            self.perceptual = PerceptualLoss(net).to(self.device)
        # Not wrapped in DDP (the quantizer rewrites dead codes in place and D runs in two phases): the networks start
        # equal on every rank (same seed) and `_average` averages gradients and BatchNorm statistics, as GigaGAN does.
        fused = self.fused_optimizer  # one kernel over all parameters instead of a loop of small ops per tensor
        opt_vq = torch.optim.Adam(self.vq.parameters(), lr=cfg.lr, betas=cfg.betas, fused=fused)
        opts = [opt_vq]
        if self.D is not None:
            opts.append(torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr, betas=cfg.betas, fused=fused))
        prepared = self.prepare(*opts)
        prepared = prepared if isinstance(prepared, (tuple, list)) else (prepared,)
        self.opt_vq = prepared[0]
        self.opt_d = prepared[1] if self.D is not None else None
        self._samples: torch.Tensor | None = None
        self._fd_net: nn.Module | None = None

    def _average(self, module: nn.Module, grads: bool = True) -> None:
        """Average `module`'s gradients (or, with grads=False, its float buffers) over processes."""
        if self.world_size < 2:
            return
        self.average_across_processes([p.grad for p in module.parameters() if p.grad is not None] if grads
                                      else [b for b in module.buffers() if b.is_floating_point()])

    def gan_active(self) -> bool:
        """True once `gan_start_kimg` thousand images have been shown (and the GAN weight is > 0)."""
        return self.D is not None and self.cur_nimg >= self.config.gan_start_kimg * 1000

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        cfg = self.config
        x = batch["image"]  # [B,3,R,R] in [-1,1]
        gan = self.gan_active()
        out: dict[str, torch.Tensor] = {}
        self.vq.train()
        # train.mixed_precision: the networks run under autocast (bf16 convs/matmuls); the quantizer keeps its
        # distances, losses and codebook updates in fp32, and every loss term below is reduced in fp32
        with self.autocast():
            recon, q = self.vq(x)  # [B,3,R,R], QuantizerOutput
        out["loss/l1"] = (recon.float() - x.float()).abs().mean()
        total = cfg.l1_weight * out["loss/l1"] + cfg.codebook_weight * q.loss
        out["loss/codebook"] = q.loss
        if self.perceptual is not None:
            with self.autocast():
                out["loss/perceptual"] = self.perceptual(x, recon).float()
            total = total + cfg.perceptual_weight * out["loss/perceptual"]
        if gan:
            self.D.requires_grad_(False)
            with self.autocast():
                fake_logits = self.D(recon)
            out["loss/g_adv"] = -fake_logits.float().mean()
            total = total + cfg.gan_weight * out["loss/g_adv"]
        out["loss/total"] = total
        self.opt_vq.zero_grad(set_to_none=True)
        self.backward(total)
        self._average(self.vq)
        self.opt_vq.step()
        self._average(self.vq, grads=False)  # BatchNorm running statistics
        if gan:
            self.D.requires_grad_(True)
            with self.autocast():
                logits = self.D(torch.cat([x, recon.detach()]))  # one forward: shared BatchNorm statistics
            real, fake = logits.float().chunk(2)
            out["loss/d"] = hinge_d_loss(real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            self.backward(out["loss/d"])
            self._average(self.D)
            self.opt_d.step()
            self._average(self.D, grads=False)
        out["vq/perplexity"] = q.perplexity
        out["vq/usage"] = q.usage
        out["vq/restarts"] = torch.tensor(float(self.vq.quantizer.last_restarts))
        return {k: v.detach().float() for k, v in out.items()}

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"vq": self.vq.state_dict(), "opt_vq": self.opt_vq.state_dict()}
        if self.D is not None:
            state["D"] = self.D.state_dict()
            state["opt_d"] = self.opt_d.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.vq.load_state_dict(state["vq"])
        self.opt_vq.load_state_dict(state["opt_vq"])
        if self.D is not None:
            if "D" not in state:
                raise DataError("the training state has no discriminator, but gan_weight > 0")
            self.D.load_state_dict(state["D"])
            self.opt_d.load_state_dict(state["opt_d"])

    # ------------------------------------------------------------------------------------------------ outputs
    def _sample_images(self) -> torch.Tensor:
        """The first `sample_num` validation images (training images if the split is empty), loaded once."""
        if self._samples is None:
            tc = self.train_cfg
            images: list[torch.Tensor] = []
            for split in ("val", "train"):
                try:
                    for b in split_samples(tc.data, split, tc.resolution, caption_field=tc.caption_field,
                                           split_by=tc.split_by, val_fraction=tc.val_fraction,
                                           batch_size=self.config.sample_num):
                        images.append(b["image"])
                        break
                except DataError:
                    continue
                if images:
                    break
            if not images:
                raise DataError(f"{tc.data}: no images for the sample grid")
            self._samples = images[0][: self.config.sample_num].float()
        return self._samples.to(self.device)

    def sample_grid(self) -> torch.Tensor | None:
        """Originals (first half) and their token reconstructions (second half): [2N,3,R,R] in [-1,1]."""
        if self.config.sample_num == 0:
            return None
        x = self._sample_images()
        was = self.vq.training
        self.vq.eval()
        recon = self.vq.decode_tokens(self.vq.tokenize(x)).float().clamp(-1, 1)
        self.vq.train(was)
        return torch.cat([x, recon])

    def evaluate(self) -> dict[str, Any] | None:
        """`evaluate_reconstruction` over the validation split (main process; other ranks return None)."""
        if not self.is_main:
            return None
        cfg, tc = self.config, self.train_cfg
        if self._fd_net is None and cfg.eval_fd_net:
            self._fd_net = load_fd_network(cfg.eval_fd_net, self.device)
        return evaluate_reconstruction(
            self.vq, tc.data, resolution=tc.resolution, num=cfg.eval_num, split_by=tc.split_by,
            val_fraction=tc.val_fraction, caption_field=tc.caption_field, fd_net=self._fd_net, device=self.device)

    def export(self, path: Path) -> Path:
        """`VQGAN.save_pretrained(path)` (eval-mode BatchNorm statistics included)."""
        return self.vq.save_pretrained(path)


def step_seconds(config: VQGANRunConfig, steps: int = 5, warmup: int = 1, gan: bool = True) -> list[float]:
    """Wall time of `steps` training steps on random images (CPU benchmark helper); `gan` forces the GAN phase on."""
    def gan_on(trainer: VQGANTrainer) -> None:
        trainer.cur_nimg = int(config.gan_start_kimg * 1000)

    return time_steps(VQGANTrainer, config, steps, warmup, captions=False, prepare=gan_on if gan else None)
