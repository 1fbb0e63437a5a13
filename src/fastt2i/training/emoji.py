"""Trainers of the emoji-domain networks: `emoji-clip` (contrastive, text tower locked) and `emoji-net` (classifier).

    fastt2i train emoji-clip --data emoji64.npz --run-dir runs/emoji-clip --kimg 600
    fastt2i train emoji-net  --data emoji64.npz --run-dir runs/emoji-net  --kimg 300
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from fastt2i.data import open_dataset
from fastt2i.errors import DataError
from fastt2i.losses.contrastive import clip_contrastive_loss
from fastt2i.metrics.sources import split_samples
from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig, EmojiNet, EmojiNetConfig
from fastt2i.text import load_text_encoder
from fastt2i.training.config import TrainConfig
from fastt2i.training.trainer import Trainer


# ----------------------------------------------------------------------------------------------------- shared pieces
def cosine_lr(base: float, cur_nimg: int, total_nimg: int, warmup_nimg: int, final_frac: float = 0.05) -> float:
    """Linear warm-up then cosine decay to `final_frac * base`, a pure function of images shown (resume-exact)."""
    if cur_nimg < warmup_nimg:
        return base * (cur_nimg + 1) / max(warmup_nimg, 1)
    p = min(1.0, (cur_nimg - warmup_nimg) / max(total_nimg - warmup_nimg, 1))
    return base * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * p)))


def jitter(images: torch.Tensor, max_shift: int, scale: float) -> torch.Tensor:
    """Random per-image translation (up to `max_shift` px) and zoom (1 +- scale) with white fill; no flips.

    Flips are left out on purpose: emoji captions name directions ("left arrow", "facing right").
    """
    b, _, h, w = images.shape  # [B,3,H,W]
    s = 1 + (torch.rand(b, device=images.device) * 2 - 1) * scale
    t = (torch.rand(b, 2, device=images.device) * 2 - 1) * (2 * max_shift / h)
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images - 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + 1  # outside the image: (0 - 1) + 1 = white


class CaptionTable:
    """Pooled text embeddings of captions, computed once with a (locked) text encoder and kept in the run dir.

    The encoder is only loaded when a caption is missing, so a resumed run (or a machine without the encoder's
    package) reads `run_dir/text_pooled.safetensors` instead of encoding again.

    Args:
        spec: text encoder spec (fastt2i.text).
        path: the table file (created/extended on `save`).
    """

    def __init__(self, spec: str, path: Path):
        self.spec, self.path = spec, path
        self.rows: dict[str, torch.Tensor] = {}
        self._encoder = None
        self._dirty = False
        if path.is_file():
            data = load_file(str(path))
            meta = json.loads((path.with_suffix(".json")).read_text())
            if meta.get("text_encoder") == spec:
                self.rows = dict(zip(meta["keys"], data["pooled"].float().unbind(0)))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def __call__(self, captions: list[str]) -> torch.Tensor:
        """Captions -> L2-normalised pooled embeddings [B,D] (CPU float32)."""
        keys = [self.key(c) for c in captions]
        missing = sorted({c for c, k in zip(captions, keys) if k not in self.rows})
        if missing:
            if self._encoder is None:
                self._encoder = load_text_encoder(self.spec)
            with torch.inference_mode(False), torch.no_grad():  # normal tensors even when filled during evaluate
                for i in range(0, len(missing), 256):
                    chunk = missing[i : i + 256]
                    pooled = F.normalize(self._encoder.encode(chunk).pooled.float().cpu(), dim=-1)  # [b,D]
                    for c, p in zip(chunk, pooled.half().float()):  # rounded as stored: resumed runs see the same
                        self.rows[self.key(c)] = p
            self._dirty = True
        return torch.stack([self.rows[k] for k in keys])  # [B,D]

    def save(self) -> None:
        if not self._dirty or not self.rows:
            return
        keys = sorted(self.rows)
        tmp = self.path.with_name(self.path.name + ".tmp")
        save_file({"pooled": torch.stack([self.rows[k] for k in keys]).half()}, str(tmp))
        self.path.with_suffix(".json.tmp").write_text(json.dumps({"text_encoder": self.spec, "keys": keys}))
        tmp.replace(self.path)
        self.path.with_suffix(".json.tmp").replace(self.path.with_suffix(".json"))
        self._dirty = False


def validation_batches(trainer: Trainer, caption_field: str | None = None):
    """The whole validation split in order, as batches {"image", "caption", "key"} (each rank reads all of it)."""
    cfg = trainer.train_cfg
    return split_samples(cfg.data, "val", cfg.resolution, caption_field=caption_field or cfg.caption_field,
                         split_by=cfg.split_by, val_fraction=cfg.val_fraction, batch_size=256)


def retrieval_topk(img: torch.Tensor, txt: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Text->image and image->text retrieval accuracy where row i of each is the matching pair.

    Args:
        img: [N,D] normalised image embeddings.
        txt: [N,D] normalised text embeddings.
    """
    sim = txt @ img.t()  # [N_text, N_image]
    target = torch.arange(len(sim))
    out = {}
    for k in ks:
        k_ = min(k, len(sim))
        out[f"t2i_top{k}"] = (sim.topk(k_, dim=1).indices == target[:, None]).any(1).float().mean().item()
        out[f"i2t_top{k}"] = (sim.t().topk(k_, dim=1).indices == target[:, None]).any(1).float().mean().item()
    return out


def write_card(path: Path, title: str, body: str) -> None:
    (path / "README.md").write_text(f"# {title}\n\n{body.strip()}\n")


class _OneModelTrainer(Trainer):
    """What both emoji trainers share: one model + AdamW (no decay on gains/biases), its EMA, lr from images shown."""

    def build(self, model: torch.nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.999)) -> None:
        decay = [p for p in model.parameters() if p.ndim > 1]
        other = [p for p in model.parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                 {"params": other, "weight_decay": 0.0}], lr=lr, betas=betas,
                                fused=self.fused_optimizer)
        self.model, self.opt = self.prepare(model, opt)
        self.model_ema = self.add_ema("model", self.model)
        self.maybe_compile(self.unwrap(self.model), type(model).__name__)  # in place, after add_ema

    def schedule(self) -> float:
        """Set and return this step's learning rate (warm-up + cosine over the run)."""
        cfg = self.config
        lr = cosine_lr(cfg.lr, self.cur_nimg, self.total_nimg, int(cfg.warmup_kimg * 1000))
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return jitter(images, cfg.shift, cfg.zoom) if (cfg.shift or cfg.zoom) else images

    def step_optimizer(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.unwrap(self.model).state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.unwrap(self.model).load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])


# ----------------------------------------------------------------------------------------------------- emoji-clip
@dataclass(frozen=True)
class EmojiCLIPRunConfig:
    """Training of emoji-clip (contrastive image tower against the locked text encoder).

    Args:
        model: the architecture.
        train: run settings (data, length, batch, EMA...).
        lr: peak AdamW learning rate (linear warm-up, cosine decay).
        weight_decay: AdamW decoupled weight decay.
        warmup_kimg: warm-up length.
        shift: random translation in pixels (augmentation).
        zoom: random zoom range (1 +- zoom).
    """

    model: EmojiCLIPConfig = field(default_factory=EmojiCLIPConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        run_dir="runs/emoji-clip", batch_size=256, kimg=600, snapshot_kimg=50, sample_kimg=0, eval_kimg=100,
        ema_kimg=2.0, ema_rampup=None, log_every=10))
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_kimg: float = 10.0
    shift: int = 4
    zoom: float = 0.08


class EmojiCLIPTrainer(_OneModelTrainer):
    """Contrastive training of `EmojiCLIP`'s image tower; the text side is the locked encoder's pooled embedding."""

    config: EmojiCLIPRunConfig

    def setup(self) -> None:
        cfg = self.config
        self.build(EmojiCLIP(cfg.model), cfg.lr, cfg.weight_decay, betas=(0.9, 0.98))
        self.captions = CaptionTable(self.train_cfg.text_encoder, self.run_dir / "text_pooled.safetensors")

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        lr = self.schedule()
        images = self.augment(batch["image"])
        text = self.captions(batch["caption"]).to(self.device)  # [B,D]
        with self.autocast():
            img = self.model(images)  # [B,D]
            model = self.unwrap(self.model)
            loss = clip_contrastive_loss(img.float(), text, model.logit_scale.float().clamp(max=math.log(100)))
        self.step_optimizer(loss)
        return {"loss/contrastive": loss.detach(), "lr": lr, "logit_scale": model.logit_scale.detach().exp()}

    def save(self):
        if self.is_main:
            self.captions.save()
        return super().save()

    def evaluate(self) -> dict[str, Any]:
        model = self.model_ema.eval()
        imgs, txts = [], []
        for batch in validation_batches(self):
            imgs.append(model.encode_image(batch["image"].to(self.device)).float().cpu())
            txts.append(self.captions(batch["caption"]))
        result = {f"val/{k}": v for k, v in retrieval_topk(torch.cat(imgs), torch.cat(txts)).items()}
        result["val/n"] = float(sum(len(x) for x in imgs))
        self.last_eval = result
        return result

    def export(self, path: Path) -> Path:
        model = self.model_ema
        model.save_pretrained(path, text_encoder=model.config.text_encoder)
        metrics = getattr(self, "last_eval", None) or self.evaluate()
        cfg = self.train_cfg
        mc = model.config
        tower = (f"ViT: patch {mc.patch}, width {mc.width}, depth {mc.depth}, {mc.heads} heads" if mc.arch == "vit"
                 else f"ConvTrunk {list(mc.channels)}")
        role = ("**Evaluation only** (`eval_only` in its config): every loss, discriminator and conditioning refuses "
                "it, so the CLIP score and caption retrieval it measures are independent of training. Never the "
                "FD/KID feature network either." if mc.eval_only else
                "Used for CLIP score and wherever a paper uses CLIP on emoji data; never as the FD/KID feature network.")
        write_card(path, "emoji-clip-eval" if mc.eval_only else "emoji-clip", f"""
Image tower ({tower}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M
parameters) trained contrastively against the locked `{mc.text_encoder}` text encoder (LiT-style): image
embeddings live in its sentence-embedding space ({mc.embed_dim}-d). {role}

- data: `{Path(cfg.data).name}`, split `train` by {cfg.split_by} hash, val_fraction {cfg.val_fraction}
- training: {self.cur_nimg / 1000:.1f} kimg, batch {cfg.batch_size}, seed {cfg.seed}, `fastt2i train emoji-clip`
- validation retrieval ({int(metrics['val/n'])} pairs, all at once): text->image top-1 {metrics['val/t2i_top1']:.3f},
  top-5 {metrics['val/t2i_top5']:.3f}; image->text top-1 {metrics['val/i2t_top1']:.3f}, top-5 {metrics['val/i2t_top5']:.3f}
""")
        return path


# ----------------------------------------------------------------------------------------------------- emoji-net
@dataclass(frozen=True)
class EmojiNetRunConfig:
    """Training of emoji-net (subcategory + style classifier whose pooled features serve FD/KID/precision-recall).

    Labels: the subcategory is read from the dataset field `label_field` (emoji64: `subcategories`), the style from
    the sample key's prefix (`<style>_<hexcode>`, as fastt2i.data names emoji64 samples).

    Args:
        model: the architecture (class names are filled in from the data at setup).
        train: run settings.
        label_field: dataset field holding the subcategory label.
        lr, weight_decay, warmup_kimg, shift, zoom: as for emoji-clip.
        label_smoothing: cross-entropy label smoothing.
    """

    model: EmojiNetConfig = field(default_factory=EmojiNetConfig)  # class names are read from the data at setup
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        run_dir="runs/emoji-net", batch_size=256, kimg=300, snapshot_kimg=50, sample_kimg=0, eval_kimg=100,
        ema_kimg=2.0, ema_rampup=None, log_every=10, caption_field="subcategories"))
    label_field: str = "subcategories"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_kimg: float = 5.0
    shift: int = 4
    zoom: float = 0.08
    label_smoothing: float = 0.1


def style_of(key: str) -> str:
    return key.split("_", 1)[0]


class EmojiNetTrainer(_OneModelTrainer):
    """Cross-entropy training of `EmojiNet` on subcategory and style labels."""

    config: EmojiNetRunConfig

    def setup(self) -> None:
        cfg, tc = self.config, self.train_cfg
        ds = open_dataset(tc.data, resolution=tc.resolution, split="all", caption_field=cfg.label_field)
        if not hasattr(ds, "caption"):
            raise DataError("emoji-net needs a map-style dataset (folder, manifest or .npz) to collect its labels")
        subs = sorted({ds.caption(i) for i in range(len(ds))})
        styles = sorted({style_of(ds.key(i)) for i in range(len(ds))})
        self.net_config = EmojiNetConfig(
            resolution=cfg.model.resolution, channels=cfg.model.channels, blocks=cfg.model.blocks,
            subcategories=tuple(subs), styles=tuple(styles))
        self.build(EmojiNet(self.net_config), cfg.lr, cfg.weight_decay)
        self.sub_index = {s: i for i, s in enumerate(subs)}
        self.style_index = {s: i for i, s in enumerate(styles)}

    def labels(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        sub = torch.tensor([self.sub_index[c] for c in batch["caption"]], device=self.device)
        sty = torch.tensor([self.style_index[style_of(k)] for k in batch["key"]], device=self.device)
        return sub, sty

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, Any]:
        cfg = self.config
        lr = self.schedule()
        images = self.augment(batch["image"])
        sub, sty = self.labels(batch)
        with self.autocast():
            logits_sub, logits_sty = self.model(images)  # [B,n_sub], [B,n_style]
            loss_sub = F.cross_entropy(logits_sub.float(), sub, label_smoothing=cfg.label_smoothing)
            loss_sty = F.cross_entropy(logits_sty.float(), sty, label_smoothing=cfg.label_smoothing)
        self.step_optimizer(loss_sub + loss_sty)
        return {"loss/subcategory": loss_sub.detach(), "loss/style": loss_sty.detach(), "lr": lr}

    def evaluate(self) -> dict[str, Any]:
        model = self.model_ema.eval()
        n = correct_sub = correct_sty = 0
        for batch in validation_batches(self, caption_field=self.config.label_field):
            sub, sty = self.labels(batch)
            ls, lt = model(batch["image"].to(self.device))
            correct_sub += (ls.argmax(1) == sub).sum().item()
            correct_sty += (lt.argmax(1) == sty).sum().item()
            n += len(sub)
        self.last_eval = {"val/acc_subcategory": correct_sub / n, "val/acc_style": correct_sty / n, "val/n": float(n)}
        return self.last_eval

    def export(self, path: Path) -> Path:
        model = self.model_ema
        model.save_pretrained(path)
        m = getattr(self, "last_eval", None) or self.evaluate()
        cfg = self.train_cfg
        write_card(path, "emoji-net", f"""
Classifier of emoji subcategory ({len(model.config.subcategories)} classes) and style
({', '.join(model.config.styles)}); ConvTrunk {list(model.config.channels)},
{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters. Its pooled {model.feature_dim}-d features are the
feature space of `fd_emojinet_*`, `kid_emojinet_*` and `pr_emojinet_*`. Used ONLY for metrics, never as a training signal.

- data: `{Path(cfg.data).name}`, split `train` by {cfg.split_by} hash, val_fraction {cfg.val_fraction}
- training: {self.cur_nimg / 1000:.1f} kimg, batch {cfg.batch_size}, seed {cfg.seed}, `fastt2i train emoji-net`
- validation accuracy ({int(m['val/n'])} images): subcategory {m['val/acc_subcategory']:.3f}, style {m['val/acc_style']:.3f}
""")
        return path
