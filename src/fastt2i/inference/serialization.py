"""Export format: model.safetensors + config.json, save/from_pretrained, and the registry of exportable model classes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

import torch
from torch import nn

from fastt2i import __version__
from fastt2i.config import Registry, from_dict, to_dict
from fastt2i.errors import AssetNotFoundError, ConfigError

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MODEL_CLASSES: Registry = Registry("model class")

M = TypeVar("M", bound=nn.Module)


def register_model(name: str):
    """Class decorator: make an nn.Module + PretrainedMixin class loadable by `load_pretrained` under `name`."""

    def deco(cls: type[M]) -> type[M]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module) and issubclass(cls, PretrainedMixin)):
            raise ConfigError(f"register_model({name!r}): {cls!r} must subclass nn.Module and PretrainedMixin")
        MODEL_CLASSES.register(name)(cls)
        cls.model_name = name
        return cls

    return deco


def _dedupe(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Contiguous CPU copies with one entry per shared storage; returns (tensors, {alias: kept name})."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ConfigError(f"state dict entry {name!r} is a {type(t).__name__}, not a tensor")
        t = t.detach()
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() > 0 and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        t = t.cpu()
        # Views into a larger storage (or other shared tensors not identical to an earlier one) get their own copy.
        if not t.is_contiguous() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.contiguous().clone()
        tensors[name] = t
    # safetensors refuses any remaining memory overlap: copy tensors that still share storage with another.
    ptrs: dict[int, str] = {}
    for name, t in list(tensors.items()):
        ptr = t.untyped_storage().data_ptr()
        if t.numel() > 0 and ptr in ptrs:
            tensors[name] = t.clone()
        ptrs.setdefault(ptr, name)
    return tensors, aliases


def read_export_config(path: str | Path) -> dict[str, Any]:
    """The parsed config.json of an export directory, with clear errors for missing/unreadable/foreign files."""
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    if not path.is_dir() or not cfg_path.is_file() or not (path / WEIGHTS_NAME).is_file():
        raise AssetNotFoundError(f"{path} is not a fastt2i export: expected {CONFIG_NAME} and {WEIGHTS_NAME} in a directory")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {cfg_path}: {e}") from None
    if not isinstance(meta, dict) or "class" not in meta or "format_version" not in meta or "config" not in meta:
        raise ConfigError(f"{cfg_path} is not a fastt2i export config (needs class, format_version, config)")
    if meta["format_version"] != FORMAT_VERSION:
        raise ConfigError(
            f"{path} has export format version {meta['format_version']!r} (written by fastt2i "
            f"{meta.get('fastt2i_version', '?')}); this fastt2i {__version__} reads version {FORMAT_VERSION}"
        )
    return meta


def atomic_write_dir(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill a fresh temporary directory beside `path` with `write(tmp)`, then rename it to `path` (replacing an
    existing one); a failure leaves `path` as it was. Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp", dir=path.parent))
    try:
        write(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


class PretrainedMixin:
    """Save/load for an nn.Module built from one frozen config dataclass: ``cls(config)``, kept as ``self.config``.

    Subclasses set ``config_class`` and are registered with ``@register_model("short-name")``.
    """

    config_class: ClassVar[type]
    model_name: ClassVar[str]

    def save_pretrained(self, path: str | Path, *, text_encoder: str | None = None) -> Path:
        """Write ``path/model.safetensors`` + ``path/config.json`` atomically (temp dir, then rename).

        Args:
            path: export directory (replaced if it exists).
            text_encoder: spec string of the text encoder the model expects (e.g. "minilm"), or None.
        """
        from safetensors.torch import save_file

        if not isinstance(self, nn.Module):
            raise TypeError("PretrainedMixin must be mixed into an nn.Module")
        name = getattr(type(self), "model_name", None)
        if name is None or MODEL_CLASSES.get(name) is not type(self):
            raise ConfigError(f"{type(self).__name__} is not registered: decorate it with @register_model('name')")
        config = getattr(self, "config", None)
        if not dataclasses.is_dataclass(config) or not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__}.config must be a {self.config_class.__name__} instance")
        tensors, aliases = _dedupe(self.state_dict())
        meta = {
            "class": name,
            "format_version": FORMAT_VERSION,
            "fastt2i_version": __version__,
            "text_encoder": text_encoder,
            "config": to_dict(config),
        }

        def write(tmp: Path) -> None:
            save_file(tensors, str(tmp / WEIGHTS_NAME),
                      metadata={"format": "pt", "fastt2i": json.dumps(meta), "aliases": json.dumps(aliases)})
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")

        return atomic_write_dir(path, write)

    @classmethod
    def from_pretrained(
        cls: type[M], path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> M:
        """Build the model from ``path/config.json`` and load ``model.safetensors`` with strict=True; eval mode.

        Args:
            path: an export directory written by `save_pretrained`.
            device: where to put the model (default CPU).
            dtype: cast floating-point weights to this dtype (default: as saved).
        """
        meta = read_export_config(path)
        expected = getattr(cls, "model_name", None)
        if meta["class"] != expected:
            raise ConfigError(
                f"{path} holds a {meta['class']!r} model, not {expected!r} ({cls.__name__}); "
                "use fastt2i.inference.load_pretrained(path) to load whatever it holds"
            )
        return _build_and_load(cls, meta, Path(path), device, dtype)


def _build_and_load(cls: type, meta: dict[str, Any], path: Path, device: Any, dtype: Any) -> nn.Module:
    from safetensors import safe_open
    from safetensors.torch import load_file

    config = from_dict(cls.config_class, meta["config"])
    model = cls(config)
    weights = path / WEIGHTS_NAME
    try:
        state = load_file(str(weights))
        with safe_open(str(weights), framework="pt") as f:
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    except Exception as e:  # noqa: BLE001  (safetensors raises several error types)
        raise ConfigError(f"cannot read {weights}: {str(e).splitlines()[0]}") from None
    for alias, target in aliases.items():
        state[alias] = state[target]
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:5]]
        raise ConfigError(
            f"{weights} does not match {cls.__name__} built from its config.json: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {shapes}"
        )
    model.load_state_dict(state, strict=True)
    model.text_encoder_spec = meta.get("text_encoder")
    return model.to(device=device or "cpu", dtype=dtype).eval()


def load_pretrained(
    path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> nn.Module:
    """Load any registered model from an export directory; the class comes from config.json's short name.

    Args:
        path: an export directory written by `save_pretrained`.
        device: where to put the model (default CPU).
        dtype: cast floating-point weights to this dtype (default: as saved).
    """
    import fastt2i.models  # noqa: F401  (the built-in families register their classes on import)

    meta = read_export_config(path)
    cls = MODEL_CLASSES.get(meta["class"])
    return _build_and_load(cls, meta, Path(path), device, dtype)
