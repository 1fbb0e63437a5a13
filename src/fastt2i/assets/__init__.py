"""Files shipped inside the package: the emoji-domain networks (emoji-clip, emoji-net) and, later, default models."""

from __future__ import annotations

from pathlib import Path

from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.serialization import read_export_config

ROOT = Path(__file__).resolve().parent


def asset_path(name: str) -> Path:
    """Directory of a bundled export (`emoji-clip`, `emoji-net`, ...)."""
    p = ROOT / name
    if not (p / "model.safetensors").is_file():
        known = sorted(d.name for d in ROOT.iterdir() if (d / "model.safetensors").is_file())
        raise AssetNotFoundError(f"no bundled model {name!r}; bundled: {', '.join(known) or 'none'}")
    return p


def image_text_model_path(spec: str, role: str) -> Path:
    """Where to load an image-text model (CLIP stand-in) from: "emoji-clip" (bundled) or an export directory.

    emoji-net is refused by name and by export class: it is the FD feature network and must never be trained against.

    Args:
        spec: "emoji-clip" or an export directory with config.json.
        role: what the model is for, named in the errors (e.g. "clip_model", "perceptual network").
    """
    if spec == "emoji-net":
        raise ConfigError(f"{role} must be an image-text model, not emoji-net (it is the FD network); use 'emoji-clip'")
    if spec == "emoji-clip":
        return asset_path("emoji-clip")
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"{role} {spec!r} is neither 'emoji-clip' nor an export directory with config.json")
    if read_export_config(path)["class"] == "emoji-net":
        raise ConfigError(f"{role} {spec!r} is an emoji-net export: emoji-net is the FD network, use an image-text model")
    return path
