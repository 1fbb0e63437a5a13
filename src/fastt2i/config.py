"""Frozen config dataclasses <-> JSON, command-line overrides, and named preset registries."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

from fastt2i.errors import ConfigError  # noqa: E402  (re-exported)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass; tuples become lists."""
    if not dataclasses.is_dataclass(cfg):
        raise ConfigError(f"expected a dataclass instance, got {type(cfg).__name__}")

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return conv(cfg)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert a JSON value to the annotated type `tp` (nested dataclasses, tuples, optionals)."""
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
                return _coerce(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value)) if args else tuple(value)
    if origin is list:
        (a,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(a, v, where) for v in value]
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
        if f != int(f):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, _where: str = "") -> T:
    """Build dataclass `cls` from a dict, rejecting unknown keys with a clear message."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{_where or cls.__name__}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{_where + '.' if _where else ''}{k}") for k, v in data.items()}
    return cls(**kwargs)


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=False) + "\n")


def load_json(cls: type[T], path: str | Path) -> T:
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
