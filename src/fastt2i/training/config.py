"""`TrainConfig`: the run settings every family trainer shares (length, checkpoints, logging, data, EMA, precision)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from fastt2i.data.captions import parse_variants
from fastt2i.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run, nested by every family's run config (``FooRunConfig.train``).

    Args:
        run_dir: directory of the run (config.json, state/, samples/, tb/, log.jsonl; .lock names the PID of the
            trainer using it); rerunning resumes it.
        data: dataset path for ``fastt2i.data.open_dataset`` (folder, manifest, shards or .npz).
        resolution: square training resolution in pixels.
        batch_size: global batch size (summed over all processes); must divide by the number of processes.
        kimg: total length of training in thousands of real images shown.
        snapshot_kimg: write the training state every this many kimg (and at the end, and on SIGINT/SIGTERM).
        sample_kimg: write an image grid (TensorBoard + samples/*.png) every this many kimg; 0 = off.
        eval_kimg: call ``Trainer.evaluate()`` every this many kimg; 0 = off.
        log_every: write scalars (TensorBoard + log.jsonl) every this many steps.
        seed: base seed; model init uses it, each step reseeds from (seed, step, rank).
        mixed_precision: "no" | "fp16" | "bf16" (HF Accelerate autocast; fp16 adds a grad scaler). Master weights,
            optimizer state, EMA and losses stay fp32; bf16 works on CPU (autocast) and on recent GPUs.
        ema_kimg: EMA half-life in kimg (StyleGAN convention); 0 makes the EMA a copy of the weights.
        ema_rampup: if set, the half-life is capped at ``cur_nimg * ema_rampup`` early in training (None = off).
        num_workers: data loader worker processes per rank (in memory: the processes that decode the store once).
        in_memory: None (auto): map-style data whose decoded uint8 images fit 4 GiB per process is decoded once and
            batches are gathered from memory, on the training device (`fastt2i.data.make_loader`); False: always
            stream through the loader workers; True: in memory or a clear error.
        val_fraction: fraction of keys held out for validation (split by key hash in fastt2i.data).
        split_by: "key" (per-sample hash split) or "emoji" (hold out whole emoji: every style and skin tone).
        caption_field: caption field for npz / json / manifest datasets (None: the dataset default).
        caption_variants: draw each training caption's form per sample, "NAME:WEIGHT,..." over
            `fastt2i.data.captions.VARIANTS` (full, name, name_style, name_category, keywords), e.g.
            "full:2,name:1,name_style:1,name_category:1,keywords:1"; "" = the captions as they are. Captions that are
            not emoji64-shaped ("<name>, <category>, <style> style") are never changed.
        hflip: random horizontal flips of the training images.
        keep_states: how many training states to keep in run_dir/state (0 = keep all).
        text_encoder: text encoder spec string (fastt2i.text), recorded in exports.
        compile: `torch.compile` the trained networks (`Trainer.maybe_compile`; mostly for GPUs: compiling takes
            minutes, and on CPU rarely pays off in a short run); may change on resume.
        init_from: fine-tune: a run directory (its newest training state) or a state file that a new run starts
            from -- weights, optimisers, EMAs, step and images shown -- under this config, which may differ from
            the source's wherever the networks do not (caption variants, learning rates, loss weights, kimg).
            Or an export or a bundled model's name (GigaGAN, StyleGAN-T, the upsampler, Paella): the generator
            (Paella: the token model) and its EMA start from its weights, the discriminator and the optimisers
            fresh, step and images shown from 0 (see the GANs' `d_warmup_kimg`; set `ema_rampup` to null so that
            the EMA keeps its half-life from the start).
            Used only while run_dir has no state of its own; after that the run resumes as usual.
    """

    run_dir: str = "runs/default"
    data: str = ""
    resolution: int = 64
    batch_size: int = 32
    kimg: float = 100.0
    snapshot_kimg: float = 10.0
    sample_kimg: float = 5.0
    eval_kimg: float = 0.0
    log_every: int = 50
    seed: int = 0
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    num_workers: int = 2
    in_memory: bool | None = None
    val_fraction: float = 0.05
    split_by: Literal["key", "emoji"] = "key"
    caption_field: str | None = None
    caption_variants: str = ""
    hflip: bool = False
    keep_states: int = 3
    text_encoder: str = "minilm"
    compile: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(f"train.{msg}")

        need(bool(self.run_dir), "run_dir must not be empty")
        for name in ("kimg", "snapshot_kimg", "sample_kimg", "eval_kimg", "ema_kimg", "val_fraction", "ema_rampup"):
            v = getattr(self, name)
            need(v is None or math.isfinite(v), f"{name} must be a finite number, got {v}")
        need(self.resolution > 0, f"resolution must be > 0, got {self.resolution}")
        need(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        need(self.kimg > 0, f"kimg must be > 0, got {self.kimg}")
        for name in ("snapshot_kimg", "sample_kimg", "eval_kimg", "ema_kimg"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.log_every > 0, f"log_every must be > 0, got {self.log_every}")
        need(self.mixed_precision in ("no", "fp16", "bf16"),
             f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}")
        need(self.ema_rampup is None or self.ema_rampup > 0, f"ema_rampup must be > 0 or null, got {self.ema_rampup}")
        need(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        need(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        need(self.keep_states >= 0, f"keep_states must be >= 0 (0 = keep all), got {self.keep_states}")
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(self.init_from is None or bool(str(self.init_from).strip()),
             "init_from must be a run directory, a state file, an export or a bundled model's name, or null")
        try:
            parse_variants(self.caption_variants)
        except ConfigError as e:
            raise ConfigError(f"train.caption_variants: {e}") from None


def find_train_config(config: Any) -> tuple[TrainConfig, tuple[str, ...]]:
    """The TrainConfig inside a (run) config dataclass and its field path (``()`` if `config` is one).

    Args:
        config: a TrainConfig, or a dataclass with exactly one TrainConfig somewhere in its fields.
    """
    found: list[tuple[TrainConfig, tuple[str, ...]]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, TrainConfig):
            found.append((node, path))
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                walk(getattr(node, f.name), path + (f.name,))

    walk(config, ())
    if len(found) != 1:
        raise ConfigError(
            f"{type(config).__name__} must contain exactly one TrainConfig field, found {len(found)}"
        )
    return found[0]
