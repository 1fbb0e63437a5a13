"""`fastt2i export`: export a run to model.safetensors + config.json (pending: runs export themselves when they finish)."""

from fastt2i.cli._pending import pending

register = pending(
    "export", "export a run to model.safetensors + config.json",
    "a finished `fastt2i train` run already writes RUN_DIR/export; re-exporting from an interrupted run's training "
    "state is not implemented yet",
)
