"""Frozen config dataclasses <-> JSON, command-line overrides, and named preset registries."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

from fastt2i.errors import ConfigError  # noqa: E402  (re-exported)

ALLOW_NONFINITE = "allow_nonfinite"
"""Field metadata key: ``field(default=..., metadata={ALLOW_NONFINITE: True})`` lets a float field hold inf/nan
(written to JSON as the strings "inf", "-inf", "nan"). Every other float must be finite."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass; tuples become lists.

    Non-finite floats of fields that allow them (`ALLOW_NONFINITE`) become strings; any other non-finite float is
    left as is, and `to_json` refuses it.

    Args:
        cfg: a dataclass instance.
    """
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"expected a dataclass instance, got {type(cfg).__name__}")

    def conv(v: Any, allow: bool = False) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name), f.metadata.get(ALLOW_NONFINITE, False))
                    for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x, allow) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x, allow) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        if allow and isinstance(v, float) and not math.isfinite(v):
            return str(v)  # "inf" / "-inf" / "nan": JSON has no such numbers; from_dict reads them back
        return v

    return conv(cfg)


def _non_finite(data: Any, where: str = "") -> list[str]:
    """Dotted keys of the non-finite floats in a JSON-like value."""
    if isinstance(data, float) and not math.isfinite(data):
        return [f"{where or '(root)'}={data}"]
    if isinstance(data, dict):
        return [w for k, v in data.items() for w in _non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(data, list):
        return [w for i, v in enumerate(data) for w in _non_finite(v, f"{where}[{i}]")]
    return []


def to_json(cfg: Any, indent: int | None = 2) -> str:
    """The config as JSON text (what config.json holds); a ConfigError naming any non-finite value.

    Args:
        cfg: a dataclass instance.
        indent: json.dumps indentation (None: one line).
    """
    data = to_dict(cfg)
    bad = _non_finite(data)
    if bad:
        raise ConfigError(f"{', '.join(bad)}: config values must be finite numbers")
    return json.dumps(data, indent=indent, allow_nan=False)


def _coerce(tp: Any, value: Any, where: str, allow_nonfinite: bool = False) -> Any:
    """Convert a JSON value to the annotated type `tp` (nested dataclasses, tuples, optionals).

    Floats must be finite unless `allow_nonfinite` (the field's `ALLOW_NONFINITE` metadata).
    """
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, _where=where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where, allow_nonfinite)
            except ConfigError as e:
                errors.append(str(e))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where, allow_nonfinite) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(a, v, where, allow_nonfinite) for a, v in zip(args, value)) if args else tuple(value)
    if origin is list:
        (a,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(a, v, where, allow_nonfinite) for v in value]
    if origin is dict:
        return dict(value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not (allow_nonfinite or math.isfinite(f)):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return f
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, _where: str = "") -> T:
    """Build dataclass `cls` from a dict, rejecting unknown keys and non-finite floats with a clear message.

    Args:
        cls: the dataclass type; a float field may hold inf/nan only with `ALLOW_NONFINITE` metadata.
        data: field values (JSON-like; nested dicts for nested dataclasses).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = set(fields)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{_where or cls.__name__}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{_where + '.' if _where else ''}{k}",
                         fields[k].metadata.get(ALLOW_NONFINITE, False)) for k, v in data.items()}
    return cls(**kwargs)


def save_json(cfg: Any, path: str | Path) -> None:
    """Write `to_json(cfg)` to `path` (nothing is written when a value is not finite)."""
    Path(path).write_text(to_json(cfg) + "\n")


def load_json(cls: type[T], path: str | Path) -> T:
    """Read a dataclass written by `save_json`."""
    return from_dict(cls, json.loads(Path(path).read_text()))


def apply_overrides(cfg: T, overrides: list[str] | dict[str, Any]) -> T:
    """Return a copy of `cfg` with `key=value` (dotted keys for nested configs) applied.

    Values are parsed as JSON when possible (`lr=2e-4`, `channels=[64,128]`), else kept as strings.
    """
    if isinstance(overrides, list):
        pairs: dict[str, Any] = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            k, v = item.split("=", 1)
            try:
                pairs[k.strip()] = json.loads(v)
            except json.JSONDecodeError:
                pairs[k.strip()] = v
        overrides = pairs
    data = to_dict(cfg)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a nested config of {type(cfg).__name__}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"override {key!r}: no field {parts[-1]!r}; valid: {', '.join(sorted(node))}")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


class Registry(Generic[T]):
    """Names a user can type (presets, metrics, text encoders) mapped to factories.

    Example:
        PRESETS = Registry("gigagan preset")
        @PRESETS.register("tiny")
        def tiny() -> GigaGANConfig: ...
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ConfigError(f"{self.kind} {name!r} registered twice")
            self._items[name] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._items[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
