"""Files shipped inside the package: the emoji-domain networks (emoji-clip, emoji-net) and, later, default models."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def asset_path(name: str) -> Path:
    """Directory of a bundled export (`emoji-clip`, `emoji-net`, ...)."""
    from fastt2i.errors import AssetNotFoundError

    p = ROOT / name
    if not (p / "model.safetensors").is_file():
        known = sorted(d.name for d in ROOT.iterdir() if (d / "model.safetensors").is_file())
        raise AssetNotFoundError(f"no bundled model {name!r}; bundled: {', '.join(known) or 'none'}")
    return p
