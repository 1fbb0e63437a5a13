"""Config dataclasses <-> JSON, overrides and registries."""

from dataclasses import dataclass, field

import pytest

from fastt2i.config import ConfigError, Registry, apply_overrides, from_dict, load_json, save_json, to_dict


@dataclass(frozen=True)
class Inner:
    channels: tuple[int, ...] = (64, 128)
    attention: bool = True


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    lr: float = 2e-3
    steps: int = 10
    inner: Inner = field(default_factory=Inner)
    path: str | None = None


def test_round_trip(tmp_path):
    cfg = Outer(inner=Inner(channels=(1, 2, 3)), path="a")
    save_json(cfg, tmp_path / "c.json")
    assert load_json(Outer, tmp_path / "c.json") == cfg
    assert to_dict(cfg)["inner"]["channels"] == [1, 2, 3]


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="unknown field.*bogus"):
        from_dict(Outer, {"bogus": 1})


def test_overrides_parse_types_and_nested_keys():
    cfg = apply_overrides(Outer(), ["lr=1e-4", "inner.channels=[8,16]", "inner.attention=false", "steps=3"])
    assert cfg.lr == 1e-4 and cfg.inner.channels == (8, 16) and cfg.inner.attention is False and cfg.steps == 3
    with pytest.raises(ConfigError, match="no field 'nope'"):
        apply_overrides(Outer(), ["nope=1"])
    with pytest.raises(ConfigError, match="expected an integer"):
        apply_overrides(Outer(), ["steps=1.5"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(Outer(), ["steps"])


def test_registry_lists_choices_on_unknown_name():
    reg: Registry[Outer] = Registry("preset")
    reg.register("tiny")(lambda: Outer(name="tiny"))
    assert reg.build("tiny").name == "tiny" and "tiny" in reg and reg.names() == ["tiny"]
    with pytest.raises(ConfigError, match="unknown preset 'big'; choose one of: tiny"):
        reg.get("big")
    with pytest.raises(ConfigError, match="twice"):
        reg.register("tiny")(lambda: Outer())
