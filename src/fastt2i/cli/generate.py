"""`fastt2i generate`: generate images from prompts."""

from fastt2i.cli._pending import pending

register = pending("generate", "generate images from prompts", "no model family is implemented yet")
