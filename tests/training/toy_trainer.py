"""A toy family trainer for the training-core tests: a tiny conv denoiser with Adam, dropout, noise and an EMA.

Run as a script (also under torchrun):
    python tests/training/toy_trainer.py --run-dir D --data P --kimg K [--batch-size B] [--synthetic] [--dry-run]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import Fastt2iError
from fastt2i.serialization import MODEL_CLASSES, PretrainedMixin, register_model
from fastt2i.training import TrainConfig, Trainer, dry_run


@dataclass(frozen=True)
class ToyConfig:
    """Toy denoiser settings."""

    channels: int = 8
    dropout: float = 0.1


class ToyDenoiser(PretrainedMixin, nn.Module):
    """x + noise -> x: conv, batchnorm (buffers), SiLU, dropout, conv; a tied alias exercises shared-tensor export."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.inp = nn.Conv2d(3, c, 3, padding=1)
        self.norm = nn.BatchNorm2d(c)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(F.silu(self.norm(self.inp(x))))  # [B,C,H,W]
        return x + self.out(h)  # [B,3,H,W]


if "toy-denoiser" not in MODEL_CLASSES:
    register_model("toy-denoiser")(ToyDenoiser)


@dataclass(frozen=True)
class ToyRunConfig:
    """Full run config of the toy family: model + train + its own optimiser settings."""

    model: ToyConfig = field(default_factory=ToyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lr: float = 1e-2
    sigma: float = 0.3


def synthetic_sample(index: int, resolution: int) -> torch.Tensor:
    """Deterministic image for sample `index`: [3,R,R] in [-1,1]."""
    g = torch.Generator().manual_seed(1000 + index)
    return torch.rand(3, resolution, resolution, generator=g) * 2 - 1


class ToyTrainer(Trainer):
    """The family side of the toy: model, optimizer, loss, the step and what goes into the state."""

    def __init__(self, config: ToyRunConfig, *, synthetic: bool = False, nan_at_step: int = -1,
                 step_sleep: float = 0.0, **kwargs):
        super().__init__(config, **kwargs)
        self.synthetic = synthetic
        self.nan_at_step = nan_at_step
        self.step_sleep = step_sleep

    def setup(self) -> None:
        model = ToyDenoiser(self.config.model)
        opt = torch.optim.Adam(model.parameters(), lr=self.config.lr, betas=(0.5, 0.99))
        self.model, self.opt = self.prepare(model, opt)
        self.model_ema = self.add_ema("model", self.model)

    def train_step(self, batch, step):
        x = batch["image"]  # [B,3,R,R]
        noisy = x + self.config.sigma * torch.randn_like(x)
        with self.autocast():
            loss = F.mse_loss(self.model(noisy).float(), x)
        self.opt.zero_grad(set_to_none=True)
        self.backward(loss)
        self.opt.step()
        if self.step_sleep:
            time.sleep(self.step_sleep)
        if step == self.nan_at_step:
            with torch.no_grad():
                for p in self.unwrap(self.model).parameters():
                    p.fill_(float("nan"))
            return {"loss": loss.detach(), "loss_nan": float("nan")}
        return {"loss": loss.detach(), "loss_nan": 0.0}

    def state_dict(self):
        return {"model": self.unwrap(self.model).state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.unwrap(self.model).load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])

    def sample_grid(self):
        x = synthetic_sample(0, self.train_cfg.resolution)[None].repeat(4, 1, 1, 1)  # [4,3,R,R]
        return self.model_ema(x.to(self.device)).clamp(-1, 1)

    def evaluate(self):
        x = synthetic_sample(1, self.train_cfg.resolution)[None].to(self.device)
        return {"toy_mse": float(F.mse_loss(self.model_ema(x), x))}

    def export(self, path: Path) -> Path:
        return self.model_ema.save_pretrained(path, text_encoder=self.train_cfg.text_encoder)

    def make_batches(self, start_sample: int):
        if not self.synthetic:
            return super().make_batches(start_sample)
        return self._synthetic(start_sample)

    def _synthetic(self, start_sample: int):
        b, r = self.batch_per_rank, self.train_cfg.resolution
        s = start_sample
        while True:
            first = s + self.rank * b
            idx = range(first, first + b)
            yield {"image": torch.stack([synthetic_sample(i, r) for i in idx]), "caption": [""] * b,
                   "key": [f"{i:06d}" for i in idx]}
            s += self.train_cfg.batch_size


def param_hash(module: nn.Module) -> str:
    """sha256 over the module's parameters (names in order). Buffers such as BatchNorm running stats are left out:
    under DDP each rank updates them from its own batches (rank 0's are broadcast at the next forward)."""
    h = hashlib.sha256()
    for k, v in module.named_parameters():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data", default="")
    p.add_argument("--kimg", type=float, required=True)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--resolution", type=int, default=8)
    p.add_argument("--snapshot-kimg", type=float, default=0.04)
    p.add_argument("--sample-kimg", type=float, default=0.0)
    p.add_argument("--eval-kimg", type=float, default=0.0)
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--keep-states", type=int, default=3)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--streaming", action="store_true", help="train.in_memory=False: batches from the loader workers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--ema-kimg", type=float, default=0.01)
    p.add_argument("--synthetic", action="store_true", help="feed synthetic batches instead of --data")
    p.add_argument("--nan-at-step", type=int, default=-1)
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds to sleep per step (to time signals)")
    p.add_argument("--report", action="store_true", help="write run_dir/rank<r>.json with param hash and shards")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(1)  # bit-exact comparisons across processes
    try:
        train = TrainConfig(run_dir=a.run_dir, data=a.data, resolution=a.resolution, batch_size=a.batch_size,
                            kimg=a.kimg, snapshot_kimg=a.snapshot_kimg, sample_kimg=a.sample_kimg,
                            eval_kimg=a.eval_kimg, log_every=a.log_every, seed=a.seed, ema_kimg=a.ema_kimg,
                            num_workers=a.num_workers, in_memory=False if a.streaming else None,
                            keep_states=a.keep_states, val_fraction=0.0)
        cfg = ToyRunConfig(train=train, lr=a.lr)
        if a.dry_run:
            return dry_run(cfg)
        trainer = ToyTrainer(cfg, synthetic=a.synthetic, nan_at_step=a.nan_at_step, step_sleep=a.step_sleep,
                             tensorboard=not a.no_tensorboard, progress=True)
        result = trainer.run()
    except Fastt2iError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.report:
        info = {"rank": trainer.rank, "world_size": trainer.world_size, "finished": result.finished,
                "step": result.step, "cur_nimg": result.cur_nimg,
                "param_hash": param_hash(trainer.unwrap(trainer.model)), "ema_hash": param_hash(trainer.model_ema),
                "shards": getattr(trainer.batches, "shards", None)}
        (Path(a.run_dir) / f"rank{trainer.rank}.json").write_text(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
