"""`load_pipeline(name_or_path)`: the text-to-image pipeline for any export, chosen by the class in its config.json.

    pipe = load_pipeline("gigagan-emoji64")               # a bundled model, by name
    pipe = load_pipeline("runs/paella-emoji64")            # a run directory: its export/
    images = pipe.generate(["red heart"], [0])             # [1,3,H,W] in [-1,1]

A new family adds one line to `PIPELINES` (its export class -> its pipeline class with `from_pretrained`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fastt2i import assets
from fastt2i.config import Registry
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.inference.gigagan import GENERATOR_CLASS, GigaGANPipeline
from fastt2i.inference.paella import BUNDLE_CLASS, PaellaPipeline
from fastt2i.inference.stylegan_t import GENERATOR_CLASS as STYLEGAN_T_CLASS, StyleGANTPipeline
from fastt2i.inference.upsampler import UPSAMPLER_CLASS, UpscaledPipeline, UpsamplerPipeline
from fastt2i.serialization import CONFIG_NAME

DEFAULT_MODEL = "paella-emoji64"  # the README says why (the best of the three bundles on FD and prompt-following)
DEFAULT_UPSAMPLER = "upsampler-emoji256"  # used by `--upscale` once bundled (issue 14)

PIPELINES: Registry = Registry("text-to-image export class")
PIPELINES.register(GENERATOR_CLASS)(GigaGANPipeline)
PIPELINES.register(BUNDLE_CLASS)(PaellaPipeline)
PIPELINES.register(STYLEGAN_T_CLASS)(StyleGANTPipeline)


def bundled_models() -> list[str]:
    """Names of the text-to-image models shipped inside the package (directories of fastt2i/assets)."""
    return sorted(d.name for d in assets.ROOT.iterdir()
                  if (d / CONFIG_NAME).is_file() and _export_class(d) in PIPELINES)


CARD_NAME = "card.json"  # a bundle's machine-readable model card: what `fastt2i models` and the server show


def bundle_card(name: str) -> dict[str, Any]:
    """A bundled model's card: {"name", "class", "resolution", "size_mb", "default", and the fields of its card.json
    ("summary", "kimg", "metrics": {metric record name: value}, ...) when it has one}."""
    path = resolve_model(name)
    meta = json.loads((path / CONFIG_NAME).read_text())
    cfg = meta.get("config") or {}
    res = (cfg.get("resolution") or cfg.get("output_resolution") or (cfg.get("generator") or {}).get("resolution")
           or meta.get("resolution"))  # GANs, the upsampler, Paella
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    card: dict[str, Any] = {"name": name, "class": meta.get("class"), "resolution": res, "size_mb": round(size, 1),
                            "default": name == DEFAULT_MODEL}
    if (path / CARD_NAME).is_file():
        try:
            extra = json.loads((path / CARD_NAME).read_text())
        except ValueError as e:
            raise ConfigError(f"{path / CARD_NAME} is not valid JSON: {e}") from None
        card.update({k: v for k, v in extra.items() if k not in card})
    return card


def _export_class(path: Path) -> str | None:
    """The "class" of path/config.json, or None when it is missing or unreadable."""
    try:
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    return meta.get("class") if isinstance(meta, dict) else None


def resolve_model(name_or_path: str | Path | None = None) -> Path:
    """The export directory a model argument names: a bundled model's name, an export, or a run dir with export/.

    Args:
        name_or_path: a bundled name (e.g. "gigagan-emoji64"), a directory, or None for the default model.
    """
    name = str(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    bundled = assets.ROOT / name
    if "/" not in name and name not in (".", "..") and (bundled / CONFIG_NAME).is_file():
        return bundled
    if name_or_path is None:
        raise AssetNotFoundError(f"the bundled default model {DEFAULT_MODEL} is not installed; pass a model "
                                 "(--model DIR: an export or run directory)")
    p = Path(name).expanduser()
    if (p / "export" / CONFIG_NAME).is_file():
        return p / "export"
    if not p.exists():
        raise AssetNotFoundError(f"{name!r} is neither a bundled model ({', '.join(bundled_models()) or 'none'}) nor "
                                 "an existing export or run directory")
    if not (p / CONFIG_NAME).is_file():
        raise AssetNotFoundError(f"{p} is not a fastt2i export: no {CONFIG_NAME} in it (nor an export/ with one)")
    return p


def model_class(name_or_path: str | Path | None = None) -> str:
    """The export class ("gigagan-generator", "paella-pipeline", ...) of what a model argument names, without loading.

    Args:
        name_or_path: as for `load_pipeline`.
    """
    path = resolve_model(name_or_path)
    cls_name = _export_class(path)
    if cls_name is None:
        raise ConfigError(f"cannot read {path / CONFIG_NAME}: not a fastt2i export config")
    return cls_name


def bundled_upsamplers() -> list[str]:
    """Names of the upsamplers shipped inside the package."""
    return sorted(d.name for d in assets.ROOT.iterdir() if _export_class(d) == UPSAMPLER_CLASS)


def load_upsampler(
    name_or_path: str | Path | None = None,
    *,
    device: torch.device | str | None = None,
    text_encoder: str | nn.Module | None = None,
    dtype: str | torch.dtype | None = None,
) -> UpsamplerPipeline:
    """The `UpsamplerPipeline` of a bundled upsampler's name, an export or a run directory (default: the bundled one).

    Args:
        name_or_path: as for `load_pipeline`; None = DEFAULT_UPSAMPLER.
        device, text_encoder, dtype: as for `load_pipeline`.
    """
    if name_or_path is None:
        if DEFAULT_UPSAMPLER not in bundled_upsamplers():
            raise AssetNotFoundError(f"no upsampler is bundled ({DEFAULT_UPSAMPLER} is not installed); pass one "
                                     "(--upsampler DIR: an export or run directory of `fastt2i train upsampler`)")
        name_or_path = DEFAULT_UPSAMPLER
    path = resolve_model(name_or_path)
    cls_name = model_class(path)
    if cls_name != UPSAMPLER_CLASS:
        raise ConfigError(f"{path} holds a {cls_name!r} export, not an upsampler ({UPSAMPLER_CLASS!r})")
    return UpsamplerPipeline.from_pretrained(path, device=device, text_encoder=text_encoder, dtype=dtype)


def load_pipeline(
    name_or_path: str | Path | None = None,
    *,
    device: torch.device | str | None = None,
    text_encoder: str | nn.Module | None = None,
    upsampler: str | Path | bool | None = None,
    **kw: Any,
) -> Any:
    """The pipeline (`generate(prompts, seeds, ...)`) for any text-to-image export, picked by its config's class.

    Args:
        name_or_path: a bundled model's name, an export directory, or a run directory with export/ (default: the
            bundled default, DEFAULT_MODEL).
        device: where the pipeline goes (default CPU).
        text_encoder: override the text encoder the export names (a spec string or an encoder object).
        upsampler: chain an upsampler after the model (`UpscaledPipeline`): its name or path, or True for the
            bundled one; None / False = the base model alone.
        **kw: passed to the pipeline's `from_pretrained` (e.g. clip_model= for Paella).
    """
    path = resolve_model(name_or_path)
    cls_name = model_class(path)
    if cls_name == UPSAMPLER_CLASS:
        raise ConfigError(f"{path} is an upsampler, not a text-to-image model: load it with load_upsampler (CLI: "
                          "`fastt2i upscale`, or `fastt2i generate --upscale --upsampler PATH`)")
    if cls_name not in PIPELINES:
        raise ConfigError(f"{path} holds a {cls_name!r} export, which is not a text-to-image model; pipelines exist "
                          f"for: {', '.join(PIPELINES.names())}")
    up = None
    if upsampler is not None and upsampler is not False:  # before the base loads: a missing upsampler fails fast
        up = load_upsampler(None if upsampler is True else upsampler, device=device, dtype=kw.get("dtype"))
    base = PIPELINES.get(cls_name).from_pretrained(path, device=device, text_encoder=text_encoder, **kw)
    return base if up is None else UpscaledPipeline(base, up)
