"""Training core shared by the model families (config, base trainer, EMA, state files, logging) and the run presets."""

from fastt2i.training.config import TrainConfig, find_train_config
from fastt2i.training.ema import EMA, ema_beta
from fastt2i.training.presets import FAMILIES, Family, families, get_family, run_preset
from fastt2i.training.state import latest_state, list_states, load_state, prune_states, save_state, state_path
from fastt2i.training.trainer import (
    NonFiniteLossError,
    RunResult,
    Trainer,
    check_finite,
    dry_run,
    make_accelerator,
    seed_everything,
    step_seed,
)

__all__ = [
    "EMA",
    "FAMILIES",
    "Family",
    "NonFiniteLossError",
    "RunResult",
    "TrainConfig",
    "Trainer",
    "check_finite",
    "dry_run",
    "ema_beta",
    "families",
    "find_train_config",
    "get_family",
    "latest_state",
    "list_states",
    "load_state",
    "make_accelerator",
    "prune_states",
    "run_preset",
    "save_state",
    "seed_everything",
    "state_path",
    "step_seed",
]
