"""`fastt2i edit`: edit in latent space."""

from fastt2i.cli._pending import pending

register = pending("edit", "edit in latent space", "no model family is implemented yet")
