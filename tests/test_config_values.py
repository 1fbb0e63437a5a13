"""Config values: non-finite numbers are refused by from_dict / apply_overrides / JSON writing; TrainConfig ranges."""

import json
import math
from dataclasses import dataclass, field

import pytest

from fastt2i.config import ConfigError, apply_overrides, from_dict, save_json, to_json
from fastt2i.training import TrainConfig


@dataclass(frozen=True)
class Opt:
    lr: float = 2e-3
    steps: int = 10
    betas: tuple[float, float] = (0.9, 0.99)
    clip: float | None = None
    floor: float = field(default=-math.inf, metadata={"allow_nonfinite": True})


@pytest.mark.parametrize("override", ["lr=nan", "lr=NaN", "lr=inf", "lr=-Infinity", "clip=nan", "betas=[0.9, NaN]"])
def test_overrides_refuse_non_finite_numbers(override):
    with pytest.raises(ConfigError, match=rf"{override.split('=')[0]}.*finite"):
        apply_overrides(Opt(), [override])


def test_from_dict_refuses_non_finite_numbers_and_infinite_integers():
    with pytest.raises(ConfigError, match=r"lr.*finite"):
        from_dict(Opt, {"lr": float("nan")})
    with pytest.raises(ConfigError, match=r"steps: expected an integer"):
        from_dict(Opt, {"steps": float("inf")})
    with pytest.raises(ConfigError, match=r"steps: expected an integer"):
        apply_overrides(Opt(), ["steps=inf"])


def test_a_field_may_allow_non_finite_values_explicitly():
    assert apply_overrides(Opt(), ["floor=inf"]).floor == math.inf
    assert math.isnan(from_dict(Opt, {"floor": "nan"}).floor)


def test_json_writing_refuses_non_finite_values(tmp_path):
    with pytest.raises(ConfigError, match=r"lr.*finite"):
        to_json(Opt(lr=float("nan")))
    with pytest.raises(ConfigError, match=r"lr.*finite"):
        save_json(Opt(lr=float("inf")), tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()
    assert json.loads(to_json(Opt()))["lr"] == 2e-3


@pytest.mark.parametrize("bad", [
    {"kimg": math.inf}, {"kimg": math.nan}, {"kimg": 0}, {"snapshot_kimg": math.inf}, {"ema_kimg": math.nan},
    {"sample_kimg": -1.0}, {"batch_size": 0}, {"resolution": 0}, {"val_fraction": math.nan}, {"log_every": 0},
    {"ema_rampup": math.inf},
])
def test_train_config_ranges(bad):
    with pytest.raises(ConfigError, match=rf"train\.{next(iter(bad))}"):
        TrainConfig(**bad)


def test_cli_style_kimg_inf_is_a_config_error():
    with pytest.raises(ConfigError, match=r"kimg.*finite"):
        apply_overrides(TrainConfig(), {"kimg": float("inf")})
