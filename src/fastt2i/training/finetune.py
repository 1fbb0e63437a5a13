"""Starting a run from an inference export (`train.init_from` naming an export or a bundled model)."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from fastt2i.config import to_json
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.inference.loader import resolve_model
from fastt2i.serialization import CONFIG_NAME, read_export_config


def find_export(source: str) -> Path | None:
    """The export directory that `source` names (a bundled name, an export or a bundle such as Paella's, a run dir's
    export/), or None."""
    try:
        path = resolve_model(source)
        meta = json.loads((path / CONFIG_NAME).read_text())
    except (AssetNotFoundError, ConfigError, OSError, ValueError):
        return None
    return path if isinstance(meta, dict) and "class" in meta and "format_version" in meta else None


def config_differences(ours: dict, theirs: dict, may_differ: set[str] = frozenset()) -> str:
    """'field: X there, Y here; ...' for the first 4 fields (outside `may_differ`) whose values differ between two
    config dicts, or "" when none do."""
    diff = sorted(k for k in ours.keys() | theirs.keys() if k not in may_differ and ours.get(k) != theirs.get(k))
    return "; ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in diff[:4])


def load_generator_export(export: Path, cls: type, module: nn.Module, ema: nn.Module) -> None:
    """Copy an exported generator's weights (an EMA generator) into `module` and its EMA copy `ema`.

    The export must hold a `cls` whose config equals `module.config` field for field: a fine-tune keeps the
    architecture (a ConfigError names the first differences).
    """
    meta = read_export_config(export)
    if meta["class"] != cls.model_name:
        raise ConfigError(f"train.init_from: {export} holds a {meta['class']!r} model; this run trains a "
                          f"{cls.model_name!r}")
    shown = config_differences(json.loads(to_json(module.config)), meta["config"])
    if shown:
        raise ConfigError(f"train.init_from: {export}'s generator differs from this run's ({shown}); a fine-tune "
                          "keeps the architecture: use the preset the export was trained with")
    weights = cls.from_pretrained(export).state_dict()
    module.load_state_dict(weights)
    ema.load_state_dict(weights)
