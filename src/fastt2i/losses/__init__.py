"""Losses as pure functions and small callables: GAN, R1, matching-aware, contrastive, token."""
