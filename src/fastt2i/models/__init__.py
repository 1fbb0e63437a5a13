"""Model families (GigaGAN, StyleGAN-T, Paella) and the emoji-domain networks; importing registers their classes."""

from fastt2i.models import emoji, gigagan, paella, stylegan_t  # noqa: F401  (registers the exportable classes for load_pretrained)
from fastt2i.models.image_text import load_clip_model
from fastt2i.serialization import load_pretrained  # with every built-in family registered by the import above

__all__ = ["load_clip_model", "load_pretrained"]
