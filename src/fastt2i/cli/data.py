"""`fastt2i data`: build and inspect image-text datasets (being written)."""

from fastt2i.cli._pending import pending

register = pending("data", "build and inspect datasets", "being written")
