"""Export format: model.safetensors + config.json, save/from_pretrained, the registry of exportable model classes."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
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


def _tensors_to_save(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Contiguous CPU tensors that share no memory, one per tied tensor; returns (tensors, {alias: stored name}).

    `safetensors.torch.save_model` refuses a view into a larger storage (a sliced buffer), hence this helper.
    """
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    used: set[int] = set()
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ConfigError(f"state dict entry {name!r} is a {type(t).__name__}, not a tensor")
        key = (t.device, t.data_ptr(), t.dtype, tuple(t.shape), t.stride())
        if t.numel() and key in seen:  # the same tensor under a second name (tied weights)
            aliases[name] = seen[key]
            continue
        seen[key] = name
        t = t.detach().cpu().contiguous()
        storage = t.untyped_storage()
        if t.numel() and (storage.data_ptr() in used or storage.nbytes() != t.numel() * t.element_size()):
            t = t.clone()  # a view into a larger or an already stored storage: store a compact copy
        used.add(t.untyped_storage().data_ptr())
        tensors[name] = t
    return tensors, aliases


def read_export_config(path: str | Path) -> dict[str, Any]:
    """The parsed config.json of an export directory, with clear errors for missing/unreadable/foreign files."""
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    if not path.is_dir() or not cfg_path.is_file() or not (path / WEIGHTS_NAME).is_file():
        raise AssetNotFoundError(
            f"{path} is not a fastt2i export: expected {CONFIG_NAME} and {WEIGHTS_NAME} in a directory"
        )
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


def _export_class(path: Path) -> str | None:
    """The "class" of `path/config.json` if it is an export's (model or bundle: has "class" + "format_version")."""
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    return str(meta["class"]) if isinstance(meta, dict) and "class" in meta and "format_version" in meta else None


def _has_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_has_key(v, key) for v in node.values())
    return isinstance(node, list) and any(_has_key(v, key) for v in node)


def _is_run_dir(path: Path) -> bool:
    """A training run directory: it has state/, log.jsonl or a run config.json (one with a `run_dir` field)."""
    if (path / "state").is_dir() or (path / "log.jsonl").exists():
        return True
    try:
        cfg = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return False
    return _export_class(path) is None and _has_key(cfg, "run_dir")


def check_export_target(path: str | Path, *, kind: str | None = None, overwrite: bool = False) -> None:
    """Raise ConfigError unless an export may replace what is at `path` (nothing there is always fine).

    Never replaced: the home directory, the current directory or one above it, a training run directory or a
    directory holding one. Replaced only with `overwrite`: a file, a non-empty directory that is not an export, an
    export of another class. Replaced freely: an empty directory, an export of class `kind` (any export if None).

    Args:
        path: the export directory to be written.
        kind: the "class" of the export to be written, or None when not known yet.
        overwrite: allow replacing a file, a foreign directory or an export of another class.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return
    real, cwd = path.resolve(), Path.cwd().resolve()
    if real == Path.home().resolve() or real == cwd or real in cwd.parents:
        raise ConfigError(f"refusing to replace {path}: it is the home directory or the current directory (or above "
                          "it); choose a new directory for the export")
    if real.is_dir():
        runs = [real] if _is_run_dir(real) else [c for c in real.iterdir() if c.is_dir() and _is_run_dir(c)]
        if runs:
            held = "" if runs[0] == real else f" (it holds the run directory {runs[0].name})"
            raise ConfigError(f"refusing to replace {path}: it is a training run directory{held}; export into a new "
                              "directory such as RUN_DIR/export")
    hint = "pass overwrite=True (--overwrite) to replace it, or choose a new directory"
    if overwrite:
        return
    if not real.is_dir():
        raise ConfigError(f"{path} is a file, not an export directory; {hint}")
    if not any(real.iterdir()):
        return
    found = _export_class(real)
    if found is None:
        raise ConfigError(f"{path} is not empty and not a fastt2i export; {hint}")
    if kind is not None and found != kind:
        raise ConfigError(f"{path} holds a {found!r} export, not {kind!r}; {hint}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod_tree(root: Path) -> None:
    """Give what we wrote under `root` the modes of ordinary new files: 0o777 / 0o666 less the umask."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            if not os.path.islink(p):
                os.chmod(p, (0o777 if name in dirs else 0o666) & ~mask)


def atomic_write_dir(path: str | Path, write: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Fill a fresh temporary directory beside `path` with `write(tmp)`, then rename it to `path`.

    What is at `path` is replaced only as `check_export_target` allows (the class of the new export is read from the
    ``config.json`` that `write` wrote); a refusal or a failure leaves `path` as it was. Modes follow the umask.

    Args:
        path: the directory to write.
        write: fills the temporary directory it is given.
        overwrite: allow replacing a file, a foreign directory or an export of another class (see
            `check_export_target`; run, home and current directories are never replaced).

    Returns:
        `path`.
    """
    path = Path(path)
    check_export_target(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp", dir=path.parent))
    try:
        write(tmp)
        _chmod_tree(tmp)
        check_export_target(path, kind=_export_class(tmp), overwrite=overwrite)
        if os.path.lexists(path):
            old = path.parent / f".{path.name}.old{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
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

    def save_pretrained(self, path: str | Path, *, text_encoder: str | None = None, overwrite: bool = False) -> Path:
        """Write ``path/model.safetensors`` + ``path/config.json`` atomically (temp dir, then rename).

        Tied weights are stored once and named in the file's "aliases" metadata; loading ties them again.

        Args:
            path: export directory; an earlier export of the same class is replaced, anything else only with
                `overwrite` (see `check_export_target`).
            text_encoder: spec string of the text encoder the model expects (e.g. "minilm"), or None.
            overwrite: allow replacing a file, a non-export directory or an export of another class.
        """
        if not isinstance(self, nn.Module):
            raise TypeError("PretrainedMixin must be mixed into an nn.Module")
        name = getattr(type(self), "model_name", None)
        if name is None or MODEL_CLASSES.get(name) is not type(self):
            raise ConfigError(f"{type(self).__name__} is not registered: decorate it with @register_model('name')")
        config = getattr(self, "config", None)
        if not dataclasses.is_dataclass(config) or not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__}.config must be a {self.config_class.__name__} instance")
        meta = {
            "class": name,
            "format_version": FORMAT_VERSION,
            "fastt2i_version": __version__,
            "text_encoder": text_encoder,
            "config": to_dict(config),
        }
        tensors, aliases = _tensors_to_save(self.state_dict())

        def write(tmp: Path) -> None:
            save_file(tensors, str(tmp / WEIGHTS_NAME),
                      metadata={"format": "pt", "fastt2i": json.dumps(meta), "aliases": json.dumps(aliases)})
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")

        return atomic_write_dir(path, write, overwrite=overwrite)

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
                "use fastt2i.models.load_pretrained(path) to load whatever it holds"
            )
        return _build_and_load(cls, meta, Path(path), device, dtype)


def _read_error(weights: Path, e: Exception) -> ConfigError:
    return ConfigError(f"cannot read {weights}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def _expected_shapes(cls: type, config: Any) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of ``cls(config)``, built on the meta device (no memory, no init work)."""
    try:
        with torch.device("meta"):
            model = cls(config)
    except (RuntimeError, NotImplementedError):  # an __init__ that needs real values (e.g. `.item()`)
        model = cls(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _build_and_load(cls: type, meta: dict[str, Any], path: Path, device: Any, dtype: Any) -> nn.Module:
    """Check the weights' header against the config's model built on `meta`, then build it for real and load."""
    config = from_dict(cls.config_class, meta["config"])
    weights = path / WEIGHTS_NAME
    try:
        with safe_open(str(weights), framework="pt") as f:  # the header only: names, shapes, metadata
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    except Exception as e:  # noqa: BLE001  (safetensors raises several error types)
        raise _read_error(weights, e) from None
    shapes.update({alias: shapes[target] for alias, target in aliases.items() if target in shapes})
    expected = _expected_shapes(cls, config)
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])
    if missing or unexpected or wrong:
        shown = [f"{k} {shapes[k]} vs {expected[k]}" for k in wrong[:5]]
        raise ConfigError(
            f"{weights} does not match {cls.__name__} built from its config.json: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {shown}"
        )
    model = cls(config)
    try:
        state = load_file(str(weights))
    except Exception as e:  # noqa: BLE001
        raise _read_error(weights, e) from None
    state.update({alias: state[target] for alias, target in aliases.items()})
    model.load_state_dict(state, strict=True)
    model.text_encoder_spec = meta.get("text_encoder")
    return model.to(device=device or "cpu", dtype=dtype).eval()


def load_pretrained(
    path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> nn.Module:
    """Load any registered model from an export directory; the class comes from config.json's short name.

    Only classes whose module has been imported are known here (the bottom layer imports no family);
    `fastt2i.models.load_pretrained` is this function with every built-in family registered.

    Args:
        path: an export directory written by `save_pretrained`.
        device: where to put the model (default CPU).
        dtype: cast floating-point weights to this dtype (default: as saved).
    """
    meta = read_export_config(path)
    if meta["class"] not in MODEL_CLASSES:
        raise ConfigError(
            f"{path} holds a {meta['class']!r} model, which no imported module registers (registered: "
            f"{', '.join(MODEL_CLASSES.names()) or 'none'}); `fastt2i.models.load_pretrained` registers the built-in "
            "families first"
        )
    cls = MODEL_CLASSES.get(meta["class"])
    return _build_and_load(cls, meta, Path(path), device, dtype)
