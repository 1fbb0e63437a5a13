"""The base `Trainer`: device/precision/distribution (HF Accelerate), run dir, resume, states, signals, EMA, logging.

A model family subclasses it and owns models, optimizers, losses and the step:

    class FooTrainer(Trainer):
        def setup(self):
            G = FooGenerator(self.config.model)
            opt = torch.optim.Adam(G.parameters(), lr=self.config.lr)
            self.G, self.opt = self.prepare(G, opt)          # DDP / device / autocast handled by Accelerate
            self.G_ema = self.add_ema("G", self.G)            # updated by the base after every step

        def train_step(self, batch, step):                    # batch["image"]: [B_rank,3,R,R] in [-1,1]
            with self.autocast():
                loss = foo_loss(self.G, batch)
            self.opt.zero_grad(set_to_none=True)
            self.backward(loss)
            self.opt.step()
            return {"loss": loss.detach()}

        def state_dict(self):
            return {"G": self.unwrap(self.G).state_dict(), "opt": self.opt.state_dict()}

        def load_state_dict(self, state):
            self.unwrap(self.G).load_state_dict(state["G"]); self.opt.load_state_dict(state["opt"])

    FooTrainer(run_config).run()
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from fastt2i.config import to_json
from fastt2i.data import make_loader, open_dataset
from fastt2i.data.captions import CaptionVariants, field_by_key, parse_variants
from fastt2i.errors import ConfigError, DataError
from fastt2i.inference.loader import bundled_models
from fastt2i.training.config import find_train_config
from fastt2i.training.ema import EMA
from fastt2i.training.finetune import find_export, load_generator_export
from fastt2i.training.logging import RunLogger
from fastt2i.training.runtime import (  # noqa: F401  (re-exported: trainers and tests import them from here)
    LossWindow,
    NonFiniteLossError,
    check_finite,
    dry_run,
    make_accelerator,
    seed_everything,
    step_seed,
)
from fastt2i.training.state import (
    RunDirLock,
    atomic_write_bytes,
    latest_state,
    list_states,
    load_state,
    move_aside,
    prune_states,
    save_state,
    state_path,
)

STATE_FORMAT = "fastt2i.train_state"
STATE_VERSION = 1


def _crossed(prev_nimg: int, cur_nimg: int, every_kimg: float) -> bool:
    """True if a multiple of `every_kimg` thousand images lies in (prev_nimg, cur_nimg]."""
    if every_kimg <= 0:
        return False
    every = every_kimg * 1000
    return math.floor(cur_nimg / every + 1e-9) > math.floor(prev_nimg / every + 1e-9)


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like values differ, as 'key: old -> new'."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a:
                out.append(f"{key}: (absent) -> {json.dumps(b[k])}")
            elif k not in b:
                out.append(f"{key}: {json.dumps(a[k])} -> (absent)")
            else:
                out.extend(_diff(a[k], b[k], key))
        return out
    return [] if a == b else [f"{prefix or '(root)'}: {json.dumps(a)} -> {json.dumps(b)}"]


def _mark_parameters_modified(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Optimizer step post-hook: bump the version counter of every parameter (the fused kernels do not)."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if params:
        torch.autograd.graph.increment_version(params)


@dataclass(frozen=True)
class RunResult:
    """What `Trainer.run()` ended with.

    Args:
        finished: True if training reached `kimg`.
        reason: "finished", or the signal name ("SIGINT"/"SIGTERM") that stopped the run.
        step: optimisation steps done.
        cur_nimg: images shown (global).
        state: the last training state written (None if nothing was written).
    """

    finished: bool
    reason: str
    step: int
    cur_nimg: int
    state: Path | None


class Trainer(abc.ABC):
    """Base class of every family trainer: owns the run, the family owns models, optimizers, losses and the step.

    Hooks a family overrides: `setup`, `train_step`, `state_dict`, `load_state_dict` (required) and `sample_grid`,
    `evaluate`, `export`, `make_batches` (optional).

    Args:
        config: the full run config (any frozen dataclass containing exactly one `TrainConfig`), or a TrainConfig;
            written to run_dir/config.json.
        tensorboard: write TensorBoard event files (main process).
        progress: show a tqdm progress bar (main process).
        accelerator_kwargs: extra arguments for `accelerate.Accelerator`.
    """

    def __init__(
        self,
        config: Any,
        *,
        tensorboard: bool = True,
        progress: bool = True,
        accelerator_kwargs: dict[str, Any] | None = None,
    ):
        self.config = config
        self.train_cfg, self._train_path = find_train_config(config)
        self.run_dir = Path(self.train_cfg.run_dir).expanduser().absolute()
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ConfigError(f"run dir {self.run_dir} is a file, not a directory: give a directory for --run-dir")
        self.accelerator = make_accelerator(self.train_cfg.mixed_precision, **(accelerator_kwargs or {}))
        if self.train_cfg.batch_size % self.world_size:
            raise ConfigError(
                f"train.batch_size={self.train_cfg.batch_size} is not divisible by the {self.world_size} processes"
            )
        self.step = 0
        self.cur_nimg = 0
        self.stop_requested: str | None = None
        self._emas: dict[str, tuple[EMA, nn.Module]] = {}
        self._optimizers: list[torch.optim.Optimizer] = []  # every optimizer given to prepare() (init_from)
        self._initialised_from: Path | None = None  # the other run's state this run started from (init_from)
        self._tensorboard = tensorboard
        self._progress = progress
        self.logger: RunLogger | None = None
        self.batches: Any = None  # what make_batches() returned (a fastt2i.data BatchIterator by default)
        self._stop_group: Any = None  # the CPU process group of the per-step stop agreement (several processes)
        self._compiled: list[str] = []  # what maybe_compile compiled (the first step's time is printed)
        self._first_step_seconds: float | None = None
        if self.device.type == "cuda":  # TF32 matmuls and convolutions (Ampere+): fp32 storage, ~10-bit mantissa
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def batch_per_rank(self) -> int:
        """Images per process per step (global batch_size / world_size)."""
        return self.train_cfg.batch_size // self.world_size

    @property
    def total_nimg(self) -> int:
        return int(round(self.train_cfg.kimg * 1000))

    # ----------------------------------------------------------------------------------------------- helpers
    def prepare(self, *objs: Any) -> Any:
        """`accelerator.prepare`: moves modules to the device, wraps them for DDP and optimizers for mixed precision.

        A fused optimizer (`fused=True`) gets a step hook that marks its parameters as modified in place: torch's
        fused Adam/AdamW kernels do not bump the tensors' version counters, which autograd's saved-tensor checks
        and any cache keyed on `tensor._version` rely on."""
        for obj in objs:
            if isinstance(obj, torch.optim.Optimizer):
                self._optimizers.append(obj)
                if any(g.get("fused") for g in obj.param_groups):
                    obj.register_step_post_hook(_mark_parameters_modified)
        return self.accelerator.prepare(*objs)

    def unwrap(self, module: nn.Module) -> nn.Module:
        """The plain module under any DDP/compile wrapper (save and EMA use this)."""
        return self.accelerator.unwrap_model(module)

    def backward(self, loss: torch.Tensor) -> None:
        """`loss.backward()` with the mixed-precision grad scaler when one is active."""
        self.accelerator.backward(loss)

    def average_across_processes(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor (gradients, buffers) by its mean over processes, in place, with one flat all-reduce;
        nothing on a single process. For networks not wrapped in DDP (GANs driven through several forwards)."""
        if self.world_size < 2 or not tensors:
            return
        flat = torch.cat([t.flatten() for t in tensors])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        i = 0
        for t in tensors:
            t.copy_(flat[i:i + t.numel()].view_as(t))
            i += t.numel()

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context in which forward passes run in the configured mixed precision (`train.mixed_precision`)."""
        return self.accelerator.autocast()

    def full_precision(self) -> contextlib.AbstractContextManager:
        """Context that switches autocast off (fp32 inside an `autocast()` block), e.g. for a gradient penalty."""
        return torch.autocast(device_type=self.device.type, enabled=False)

    @property
    def fused_optimizer(self) -> bool:
        """Whether torch has fused (one kernel per tensor) Adam/AdamW on this device: CUDA, and CPU (torch >= 2.4).
        Trainers pass ``fused=self.fused_optimizer`` to `torch.optim.Adam`/`AdamW`."""
        return self.device.type in ("cuda", "cpu")

    def maybe_compile(self, obj: Any, name: str | None = None, **kwargs: Any) -> Any:
        """`torch.compile` `obj` when `train.compile` is set; else `obj` unchanged.

        A module is compiled in place (`nn.Module.compile`: its state-dict keys, checkpoints and EMA copies stay as
        they are); a function or bound method is returned compiled. Compile after `add_ema` (the EMA copy stays
        eager). The first training step's time, compilation included, is printed.

        Args:
            obj: an nn.Module or a callable; name: how the printout names it; kwargs: for `torch.compile`.
        """
        if not self.train_cfg.compile:
            return obj
        self._compiled.append(name or getattr(obj, "__name__", type(obj).__name__))
        if isinstance(obj, nn.Module):
            obj.compile(**kwargs)
            return obj
        return torch.compile(obj, **kwargs)

    def add_ema(self, name: str, module: nn.Module) -> nn.Module:
        """Track an EMA of `module` (updated by the base after every step, saved in the state); returns the EMA module."""
        if name in self._emas:
            raise ConfigError(f"EMA {name!r} added twice")
        cfg = self.train_cfg
        source = self.unwrap(module)  # the plain module (shares parameters with any DDP wrapper)
        ema = EMA(source, ema_kimg=cfg.ema_kimg, rampup=cfg.ema_rampup)
        self._emas[name] = (ema, source)
        return ema.module

    def ema(self, name: str) -> nn.Module:
        """The EMA module registered under `name`."""
        return self._emas[name][0].module

    def print(self, text: str) -> None:
        """Print one line from the main process (through the progress bar when one is shown)."""
        if self.logger is not None:
            self.logger.message(text)
        elif self.is_main:
            print(text, file=sys.stderr, flush=True)

    # ----------------------------------------------------------------------------------------------- hooks
    @abc.abstractmethod
    def setup(self) -> None:
        """Build models and optimizers, `prepare` them and `add_ema` what should be averaged. Called once by `run()`."""

    @abc.abstractmethod
    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float | torch.Tensor]:
        """One optimisation step on one per-rank batch; returns scalar losses for logging (checked for NaN/inf).

        Args:
            batch: {"image": [B_rank,3,R,R] in [-1,1] on `self.device`, "caption": list[str], "key": list[str]}.
            step: number of steps done before this one (global, same on every rank).
        """

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The family's part of the training state: UNWRAPPED module state dicts, optimizers, schedulers, plain values."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned (called after `setup()` when resuming)."""

    def sample_grid(self) -> torch.Tensor | None:
        """Images to show, [N,3,H,W] in [-1,1], or None. Called on the main process only, under inference_mode
        (tensors made here cannot enter autograd later: cache nothing that training reuses)."""
        return None

    def evaluate(self) -> dict[str, Any] | None:
        """Metrics every `eval_kimg` (called on every rank, under inference_mode; the main one logs the result).
        None = nothing to log."""
        return None

    def export(self, path: Path) -> Path | None:
        """Write the inference model (e.g. the EMA module's `save_pretrained`) at the end of a finished run.

        Called on the main process only. The base writes nothing and returns None.
        """
        return None

    def make_batches(self, start_sample: int) -> Iterator[dict[str, Any]]:
        """Infinite iterator of this rank's batches, resuming after `start_sample` samples consumed globally.

        The default reads `train.data` with `fastt2i.data`; override to feed synthetic batches.
        """
        cfg = self.train_cfg
        if not cfg.data:
            raise ConfigError("train.data is empty: give the dataset path (folder, manifest, shards or .npz)")
        dataset = open_dataset(
            cfg.data,
            resolution=cfg.resolution,
            split="train",
            val_fraction=cfg.val_fraction,
            split_by=cfg.split_by,
            caption_field=cfg.caption_field,
            hflip=cfg.hflip,
            seed=cfg.seed,
        )
        loader = make_loader(  # an infinite BatchIterator (batch_size is per rank); exact resume for map-style data
            dataset,
            self.batch_per_rank,
            seed=cfg.seed,
            rank=self.rank,
            world_size=self.world_size,
            num_workers=cfg.num_workers,
            start_sample=start_sample,
            drop_last=True,
            in_memory=cfg.in_memory,
            device=self.device,  # in memory, the store lives on the training device (no host-to-device copy per batch)
        )
        weights = parse_variants(cfg.caption_variants)
        if not weights:
            return loader
        keywords = None
        if weights.get("keywords", 0) > 0:
            keywords = field_by_key(cfg.data, "train", "keywords", split_by=cfg.split_by, val_fraction=cfg.val_fraction)
        return CaptionVariants(loader, weights, cfg.seed, self.rank, start_sample // cfg.batch_size, keywords)

    # ----------------------------------------------------------------------------------------------- state
    def training_state(self) -> dict[str, Any]:
        """Everything needed to resume exactly: the family state, EMAs, grad scaler, step and images shown."""
        scaler = getattr(self.accelerator, "scaler", None)
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step": self.step,
            "cur_nimg": self.cur_nimg,
            "world_size": self.world_size,
            "config": to_json(self.config, indent=None),
            "trainer": self.state_dict(),
            "ema": {name: ema.state_dict() for name, (ema, _) in self._emas.items()},
            "scaler": scaler.state_dict() if scaler is not None else None,
        }

    def load_training_state(self, state: dict[str, Any], source: str = "state") -> None:
        """Restore a dict written by `training_state()`."""
        if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
            raise DataError(
                f"{source} is not a fastt2i training state of version {STATE_VERSION} "
                f"(format={state.get('format')!r}, version={state.get('version')!r})"
            )
        missing = sorted(set(self._emas) - set(state["ema"]))
        if missing:
            raise DataError(f"{source} has no EMA for {', '.join(missing)}")
        self.load_state_dict(state["trainer"])
        for name, (ema, _) in self._emas.items():
            ema.load_state_dict(state["ema"][name])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.cur_nimg = int(state["cur_nimg"])
        if int(state.get("world_size", self.world_size)) != self.world_size:
            self.print(
                f"warning: {source} was written with {state['world_size']} processes, now {self.world_size}: "
                "the run continues but its batches differ from an uninterrupted run"
            )

    def save(self) -> Path | None:
        """Write the training state atomically (main process), prune old ones; returns the path (None elsewhere)."""
        state = self.training_state()
        path = None
        if self.is_main:
            path = save_state(state, state_path(self.run_dir, self.step))
            prune_states(self.run_dir, self.train_cfg.keep_states, keep_path=path, warn=self.print)
        self._last_saved_step = self.step
        return path

    # ----------------------------------------------------------------------------------------------- run
    def _check_config(self) -> str:
        """The config as JSON (ConfigError on non-finite values), checked against run_dir/config.json.

        A run dir with training states refuses a config that differs in more than `kimg` (and run_dir, compile);
        one without states (a run that failed or was killed before its first snapshot) takes the new config.
        """
        text = to_json(self.config) + "\n"
        path = self.run_dir / "config.json"
        if not path.is_file():
            return text
        has_states = bool(list_states(self.run_dir))
        try:
            diffs = _diff(self._comparable(path.read_text()), self._comparable(text))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if has_states:
                raise ConfigError(f"{path} is not valid JSON ({e}); fix or remove it") from None
            diffs = ["not valid JSON"]
        if diffs:
            shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
            if has_states:
                raise ConfigError(
                    f"run dir {self.run_dir} was started with a different config ({shown}); only the length "
                    "(kimg) may change on resume: use the same settings or a new run dir"
                )
            self.print(f"note: {path} is from a run that saved no training state; replacing it ({shown})")
        return text

    def _comparable(self, text: str) -> Any:
        """A config JSON text parsed, without the fields that may change on resume (train.kimg, train.run_dir,
        train.compile: a runtime switch; a config.json written before that field existed lacks it)."""
        cfg = json.loads(text)
        node = cfg
        for key in self._train_path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            for key in ("kimg", "run_dir", "compile"):
                node.pop(key, None)
        return cfg

    def _resume(self) -> Path | None:
        """Load the newest readable state of the run dir, if any (unreadable ones go to state/corrupt/)."""
        for path in reversed(list_states(self.run_dir)):
            try:
                state = load_state(path)
            except DataError as e:
                moved = move_aside(path) if self.is_main else None
                self.print(f"warning: skipping unreadable state: {e}" + (f"; moved it to {moved}" if moved else ""))
                continue
            self.load_training_state(state, source=str(path))
            return path
        if self.train_cfg.init_from:
            return self._init_from(self.train_cfg.init_from)
        return None

    def _init_from(self, source: str) -> Path:
        """Start this (new) run from another run's newest state, a state file, or an export (`train.init_from`)."""
        src = Path(source).expanduser()
        path = src if src.is_file() else (latest_state(src) if src.is_dir() else None)
        if path is None:
            export = find_export(source)
            if export is None:
                raise ConfigError(f"train.init_from: {source} is neither a training state file, a run directory "
                                  "with one (state/state-*.pt), an export nor a bundled model "
                                  f"({', '.join(bundled_models())})")
            self.init_from_export(export)
            self._initialised_from = export
            return export
        state = load_state(path)
        # the optimisers' hyperparameters (lr, betas, weight decay) are this config's, not the source's
        settings = [[{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
                    for opt in self._optimizers]
        try:
            self.load_training_state(state, source=str(path))
            for opt, groups in zip(self._optimizers, settings):
                for group, kept in zip(opt.param_groups, groups):
                    group.update(kept)
        except (RuntimeError, KeyError, ValueError) as e:  # state_dict shape/key mismatches, other optimizers
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"train.init_from: {path} does not fit this run's networks ({first[:300]}); "
                              "a fine-tune may change the recipe, not the architecture") from None
        self._initialised_from = path
        return path

    def init_from_export(self, export: Path) -> None:
        """Start a new run from an inference export (`train.init_from` naming an export or a bundled model, e.g. to
        fine-tune a bundle on other data or under another recipe): load what the export holds into the trained
        networks and their EMAs; everything it lacks (a discriminator, the optimiser moments) starts fresh, and the
        step and images shown from 0. This default: the family cannot (a ConfigError)."""
        raise ConfigError(f"train.init_from: {export} is an export, and {type(self).__name__} starts only from a "
                          "training state (a run directory or a state file)")

    def load_generator_export(self, export: Path, cls: type, module: nn.Module, ema: str) -> None:
        """`init_from_export` for a generator: `export`'s weights into `module` and the EMA registered as `ema`
        (`fastt2i.training.finetune.load_generator_export`)."""
        load_generator_export(export, cls, self.unwrap(module), self.ema(ema))

    def _to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self._to_device(v) for k, v in batch.items()}
        return batch

    def _agree(self, bad: bool = False) -> tuple[bool, bool]:
        """(any process was asked to stop, any process has a non-finite host-side loss term). One process: the local
        flags, no sync. Several: one all-reduce of two numbers over a CPU (gloo) group every step, so that every rank
        stops (or fails) after the same step without making the step wait for the accelerator."""
        flags = [1.0 if self.stop_requested else 0.0, 1.0 if bad else 0.0]
        if self.world_size > 1:
            if self._stop_group is None:  # first call: every rank is here at the same step, creating it is collective
                backend = str(torch.distributed.get_backend())
                self._stop_group = torch.distributed.group.WORLD if "gloo" in backend else \
                    torch.distributed.new_group(backend="gloo")
            vec = torch.tensor(flags)
            torch.distributed.all_reduce(vec, group=self._stop_group)
            flags = vec.tolist()
        return flags[0] > 0, flags[1] > 0

    def _read_window(self, window: LossWindow, last_state: Path | None, reduce: bool = True) -> dict[str, float]:
        """The window's means (see LossWindow.read); NonFiniteLossError naming the terms and the first bad step."""
        means, bad, step = window.read(reduce=reduce)
        if bad is not None:
            self._non_finite(bad, step, last_state)
        return means

    def _non_finite(self, bad: str, step: int, last_state: Path | None) -> None:
        nimg = self.cur_nimg - (self.step - step) * self.train_cfg.batch_size  # images shown before that step
        raise NonFiniteLossError(
            f"non-finite loss term(s): {bad} at step {step} ({nimg / 1000:.3f} kimg); stopped without saving, the "
            f"last good state is {last_state or '(none yet)'}"
        )

    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGINT/SIGTERM set `stop_requested`; a second SIGINT aborts at once (KeyboardInterrupt)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        owner = os.getpid()

        def handler(signum: int, frame: Any) -> None:
            if os.getpid() != owner:  # a forked data-loader worker: the main process decides when to stop
                return
            name = signal.Signals(signum).name
            if self.stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop_requested = name
            if self.is_main:  # os.write is safe inside a signal handler (print/tqdm take locks)
                os.write(2, f"\n{name} received: saving the training state after this step "
                            "(Ctrl-C again aborts without saving)\n".encode())

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def run(self) -> RunResult:
        """Train until `kimg`, resuming from the newest state in run_dir; see the module docstring.

        The main process holds run_dir/.lock for the whole run (a second trainer there fails at once). Nothing is
        written to config.json before the config is valid, `setup()` ran and the first batch was read.
        """
        lock = self._lock_run_dir()
        previous_handlers: dict[int, Any] = {}
        try:
            batches, resumed = self._start()
            previous_handlers = self._install_signal_handlers()
            return self._train(batches, resumed)
        finally:
            for sig, h in previous_handlers.items():
                signal.signal(sig, h)
            if self.logger is not None:
                self.logger.close()
            close = getattr(self.batches, "close", None)
            if callable(close):
                close()  # stops data-loader workers
            if lock is not None:
                lock.release()

    def _lock_run_dir(self) -> RunDirLock | None:
        """Create the run dir and take its lock (main process); returns the lock (None on other processes)."""
        lock = None
        if self.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cannot create run dir {self.run_dir}: {e.strerror or e}") from None
            lock = RunDirLock(self.run_dir).acquire()
        self.accelerator.wait_for_everyone()
        return lock

    def _start(self) -> tuple[Iterator[dict[str, Any]], Path | None]:
        """Check the config, set up, resume, read the first batch; then write config.json and open the logger.

        Returns the batch stream (the first batch included; empty when the run is already trained) and the state
        resumed from.
        """
        cfg = self.train_cfg
        config_text = self._check_config()
        seed_everything(cfg.seed)
        self.setup()
        resumed = self._resume()
        own = resumed is not None and self._initialised_from is None
        self._last_saved_step = self.step if own else -1  # a run started by init_from has no state of its own yet
        batches: Iterator[dict[str, Any]] = iter(())
        if self.cur_nimg < self.total_nimg:
            self.batches = self.make_batches(self.cur_nimg)
            batches = iter(self.batches)
            try:
                first = next(batches)
            except StopIteration:
                raise DataError("the batch iterator ended; make_batches() must be infinite") from None
            batches = itertools.chain([first], batches)
        if self.is_main:
            atomic_write_bytes(self.run_dir / "config.json", lambda f: f.write(config_text.encode()))
        self.logger = RunLogger(
            self.run_dir, self.total_nimg / 1000, self.cur_nimg / 1000, enabled=self.is_main,
            tensorboard=self._tensorboard, progress=self._progress, resume_step=self.step,
        )
        if resumed:
            verb = "resuming" if own else "starting (train.init_from)"
            self.print(f"{verb} from {resumed} (step {self.step}, {self.cur_nimg / 1000:.3f} kimg)")
        if self.logger.dropped:
            self.print(f"dropped {self.logger.dropped} log record(s) past step {self.step} (from an interrupted run)")
        if self.cur_nimg >= self.total_nimg:
            self.print(f"{self.run_dir} is already trained to {self.cur_nimg / 1000:.3f} kimg (kimg={cfg.kimg})")
        return batches, resumed

    def _train(self, batches: Iterator[dict[str, Any]], last_state: Path | None) -> RunResult:
        """The training loop from the current step to `kimg` (or a stop signal), then the final save and export.

        Args:
            batches: this rank's batch stream; last_state: the newest state written so far (None: none yet).
        """
        cfg = self.train_cfg
        total = self.total_nimg
        if self.cur_nimg == 0 and cfg.sample_kimg > 0:
            self._sample()
        window = LossWindow(self.device, self.world_size)  # losses stay on the device between log steps
        stop = False
        while self.cur_nimg < total:
            try:
                batch = self._to_device(next(batches))
            except StopIteration:
                raise DataError("the batch iterator ended; make_batches() must be infinite") from None
            except Exception:
                if not self.stop_requested:
                    raise
                # Loader workers ignore SIGINT/SIGTERM (fastt2i.data), but one may still die with the signal
                # (a custom make_batches, the OOM killer): the step in hand is done, so save it.
                stop = True
                if self._last_saved_step != self.step:
                    self._read_window(window, last_state, reduce=False)  # (local: the other ranks are elsewhere)
                    last_state = self.save() or last_state
                break
            seed_everything(step_seed(cfg.seed, self.step, self.rank))
            timed = self._compiled and self._first_step_seconds is None
            t0 = time.perf_counter() if timed else 0.0
            bad = window.add(self.train_step(batch, self.step), self.step)  # non-finite Python-float terms
            if timed:
                self._first_step_seconds = time.perf_counter() - t0
                self.print(f"torch.compile ({', '.join(self._compiled)}): the first step took "
                           f"{self._first_step_seconds:.1f} s, compilation included")
            stop, any_bad = self._agree(bad is not None)
            if any_bad:
                self._non_finite(bad or "(on another process)", self.step, last_state)
            prev, nxt = self.cur_nimg, self.cur_nimg + cfg.batch_size
            done = nxt >= total
            log_now = (self.step + 1) % cfg.log_every == 0 or done or stop
            snapshot = _crossed(prev, nxt, cfg.snapshot_kimg) or done or stop
            # the window is read (and checked for NaN/inf) at log steps and before every save
            means = self._read_window(window, last_state) if (log_now or snapshot) else {}
            for ema, source in self._emas.values():
                ema.update(source, self.cur_nimg, cfg.batch_size)
            self.step += 1
            self.cur_nimg = nxt
            kimg = self.cur_nimg / 1000
            self.logger.advance(kimg)
            if log_now:
                self.logger.scalars(self.step, kimg, means)
                window.reset()
            if _crossed(prev, self.cur_nimg, cfg.sample_kimg) or (done and cfg.sample_kimg > 0):
                self._sample()
            if _crossed(prev, self.cur_nimg, cfg.eval_kimg) or (done and cfg.eval_kimg > 0):
                self._evaluate()
            if snapshot:
                last_state = self.save() or last_state
            if stop:
                break
        if not stop and self._last_saved_step != self.step and self.cur_nimg > 0:
            last_state = self.save() or last_state
        self.accelerator.wait_for_everyone()
        stats = getattr(self.batches, "stats", None)
        if stats is not None and (getattr(stats, "n_skipped", 0) or getattr(stats, "n_converted", 0)):
            self.print(f"data (rank {self.rank}): {stats.report()}")
        if stop:
            reason = self.stop_requested or "signal"
            self.print(
                f"stopped by {reason} at step {self.step} ({self.cur_nimg / 1000:.3f} kimg); state saved to "
                f"{last_state}; rerun the same command to resume"
            )
            return RunResult(False, reason, self.step, self.cur_nimg, last_state)
        if self.is_main:
            exported = self.export(self.run_dir / "export")
            if exported is not None:
                self.print(f"exported the model to {exported}")
        self.print(f"finished: {self.cur_nimg / 1000:.3f} kimg in {self.step} steps; state {last_state}")
        return RunResult(True, "finished", self.step, self.cur_nimg, last_state)

    def _sample(self) -> None:
        if not self.is_main:
            return
        with torch.inference_mode():
            images = self.sample_grid()
        if images is not None:
            self.logger.images(self.step, self.cur_nimg / 1000, images)

    def _evaluate(self) -> None:
        with torch.inference_mode():
            result = self.evaluate()
        if result:
            self.logger.metrics(self.step, self.cur_nimg / 1000, result)


def step_seconds(trainer_cls: type[Trainer], config: Any, steps: int = 5, warmup: int = 1, captions: bool = True,
                 prepare: Any = None) -> list[float]:
    """Wall time of `steps` `train_step` calls on random images (and captions) after `warmup` untimed ones.

    The CPU benchmark behind the presets' cost notes. The trainer is built in a scratch run dir and never runs `run()`.

    Args:
        trainer_cls: the family trainer; config: its run config (its `train.run_dir` is replaced by a temporary one).
        steps: timed steps; warmup: untimed steps first.
        captions: add captions (encoded before the timer starts: the text cache makes that free in real runs).
        prepare: optional callable(trainer) run after `setup()` (e.g. to switch a later training phase on).
    """
    import dataclasses
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cfg = dataclasses.replace(config, train=dataclasses.replace(config.train, run_dir=tmp))
        trainer = trainer_cls(cfg, tensorboard=False, progress=False)
        trainer.setup()
        if prepare is not None:
            prepare(trainer)
        b, r = cfg.train.batch_size, cfg.train.resolution
        g = torch.Generator().manual_seed(0)
        times = []
        for s in range(warmup + steps):
            batch: dict[str, Any] = {"image": torch.rand(b, 3, r, r, generator=g) * 2 - 1}  # [B,3,R,R]
            if captions:
                batch["caption"] = [f"emoji {i % 7} {s}" for i in range(b)]
                trainer.text(batch["caption"])
            t0 = time.perf_counter()
            trainer.train_step(batch, s)
            if s >= warmup:
                times.append(time.perf_counter() - t0)
        return times
