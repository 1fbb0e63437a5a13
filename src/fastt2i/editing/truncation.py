"""Text-conditioned truncation (GigaGAN sec. 5), re-exported for editing; the maths lives beside the generator."""

from fastt2i.models.gigagan.truncation import conditional_w_mean, truncate, truncated_ws

__all__ = ["conditional_w_mean", "truncate", "truncated_ws"]
