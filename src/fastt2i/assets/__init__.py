"""Files shipped inside the package: the emoji-domain networks (emoji-clip, emoji-net) and, later, default models."""

from __future__ import annotations

from pathlib import Path

from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.serialization import read_export_config

ROOT = Path(__file__).resolve().parent


def _is_export(p: Path) -> bool:
    return (p / "model.safetensors").is_file() or ((p / "config.json").is_file() and (p / "denoiser").is_dir())


def asset_path(name: str) -> Path:
    """Directory of a bundled export or bundle (`emoji-clip`, `emoji-net`, `paella-emoji64`, ...): one with a
    config.json (an export also has model.safetensors; a Paella bundle has vqgan/ and denoiser/ exports)."""
    p = ROOT / name
    if not _is_export(p):
        known = sorted(d.name for d in ROOT.iterdir() if _is_export(d))
        raise AssetNotFoundError(f"no bundled model {name!r}; bundled: {', '.join(known) or 'none'}")
    return p


EMOJI_NET_REFUSAL = "emoji-net is the FD feature network and must never be a training signal; use 'emoji-clip'"
EVAL_ONLY_REFUSAL = ("{name} is an evaluation-only network (emoji-clip-eval: eval_only in its config), kept out of "
                     "every loss so that the metrics measured with it stay independent of training; use 'emoji-clip'")


def metric_network_refusal(model: object) -> str | None:
    """Why `model` must not be a training signal, or None: emoji-net (by registered name or class), or a model whose
    config says `eval_only` (emoji-clip-eval); wrappers holding one as `.model` / `.clip` count as well."""
    for m in (model, getattr(model, "model", None), getattr(model, "clip", None)):
        if m is None:
            continue
        if getattr(m, "model_name", None) == "emoji-net" or type(m).__name__ == "EmojiNet":
            return EMOJI_NET_REFUSAL
        if getattr(getattr(m, "config", None), "eval_only", False) is True:
            return EVAL_ONLY_REFUSAL.format(name=type(m).__name__)
    return None


def refuse_metric_network(model: object, role: str) -> None:
    """ConfigError when `metric_network_refusal(model)` has a reason; `role` (e.g. "CLIP guidance") starts it."""
    reason = metric_network_refusal(model)
    if reason is not None:
        raise ConfigError(f"{role} refused: {reason}")


def image_text_model_path(spec: str, role: str) -> Path:
    """Where to load an image-text model (CLIP stand-in) for training from: "emoji-clip" (bundled) or an export.

    The metric networks are refused by name and by export: emoji-net (the FD network, by its class) and
    emoji-clip-eval (or any export whose config says eval_only), so that no loss is trained against them.

    Args:
        spec: "emoji-clip" or an export directory with config.json.
        role: what the model is for, named in the errors (e.g. "clip_model", "perceptual network").
    """
    if spec == "emoji-net":
        raise ConfigError(f"{role} must be an image-text model, not emoji-net (it is the FD network); use 'emoji-clip'")
    if spec == "emoji-clip-eval":
        raise ConfigError(f"{role} refused: {EVAL_ONLY_REFUSAL.format(name=spec)}")
    if spec == "emoji-clip":
        return asset_path("emoji-clip")
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"{role} {spec!r} is neither 'emoji-clip' nor an export directory with config.json")
    export = read_export_config(path)
    if export["class"] == "emoji-net":
        raise ConfigError(f"{role} {spec!r} is an emoji-net export: emoji-net is the FD network, use an image-text model")
    if (export.get("config") or {}).get("eval_only") is True:
        raise ConfigError(f"{role} {spec!r} refused: {EVAL_ONLY_REFUSAL.format(name='this export')}")
    return path
