"""`fastt2i train`: train a model."""

from fastt2i.cli._pending import pending

register = pending("train", "train a model", "no model family is implemented yet")
