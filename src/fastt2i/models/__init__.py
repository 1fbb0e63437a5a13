"""Model families (GigaGAN, StyleGAN-T, Paella) and the emoji-domain networks; importing registers their classes."""

from fastt2i.models import emoji, gigagan, paella  # noqa: F401  (registers the exportable classes for load_pretrained)
