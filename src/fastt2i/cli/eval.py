"""`fastt2i eval`: evaluate a model with metrics."""

from fastt2i.cli._pending import pending

register = pending("eval", "evaluate a model with metrics", "the metrics package is not implemented yet")
