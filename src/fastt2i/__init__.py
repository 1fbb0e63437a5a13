"""fastt2i: fast text-to-image synthesis (GigaGAN, StyleGAN-T, Paella) in one PyTorch codebase."""

__version__ = "0.1.0"
