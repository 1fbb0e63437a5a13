"""`fastt2i export`: export a run to model.safetensors + config.json."""

from fastt2i.cli._pending import pending

register = pending("export", "export a run to model.safetensors + config.json", "no model family is implemented yet")
