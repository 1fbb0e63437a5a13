"""Model families (GigaGAN, StyleGAN-T, Paella) and the emoji-domain networks; importing registers their classes."""

from fastt2i.models import emoji  # noqa: F401  (registers emoji-clip and emoji-net for load_pretrained)
