"""Mode-seeking regularisation of a conditional generator (Mao et al., "Mode Seeking Generative Adversarial Networks
for Diverse Image Synthesis", CVPR 2019, eq. 3): two latents with the same condition should give different images.

    L_ms = 1 / ( mean|G(c, z1) - G(c, z2)| / mean|z1 - z2| + eps )

Minimising L_ms maximises the ratio of image distance to latent distance, so that a generator cannot map every z of
a prompt to the same image (the seed collapse a text-conditioned GAN falls into when its text dominates w). Neither
GigaGAN nor StyleGAN-T uses it; the trainers have it as a switch (`mode_seeking_weight`, default 0 = the papers).
The distances are per pair of rows (L1 in latent space; L1 in pixels, as the paper's official code, or of the images
average-pooled to `pool` px), and the loss is averaged over the pairs. Pooling matters for StyleGAN-family
generators: their per-layer noise inputs differ between the two images of a pair, so on full-resolution pixels G
lowers the loss most cheaply by amplifying noise into texture (measured: docs/training-runs.md, session 11), not by
using z; at 16 px only shape, colour and layout count. `space="clip"` measures the distance between the frozen
image-text model's embeddings of the two images instead (the trainers' CLIP model, emoji-clip on emoji data; never
a metric network), where the style of an emoji is a large part of what the embedding encodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError


SPACES = ("pixels", "clip")  # where the image distance is measured: pixels (MSGAN) or a frozen image embedding


def mode_seeking_loss(images_a: torch.Tensor, images_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                      eps: float = 1e-5, pool: int = 0) -> torch.Tensor:
    """L_ms of MSGAN eq. 3 over pairs of rows: images [P,...] of the same condition from latents z [P,...].

    Args:
        images_a, images_b: the two images of each pair [P,C,H,W] (same shapes); or, for the embedding space, their
            frozen image embeddings [P,E], compared by cosine distance 1 - cos (`pool` is then ignored).
        z_a, z_b: their latents [P,z_dim] (same shapes, P rows as the images).
        eps: keeps the loss finite when the two images of a pair are equal.
        pool: compare the images average-pooled to pool x pool px (0 = full resolution, MSGAN's choice).
    Returns:
        scalar: mean over pairs of 1 / (mean|x_a - x_b| / mean|z_a - z_b| + eps).
    """
    if images_a.shape != images_b.shape or z_a.shape != z_b.shape:
        raise ConfigError(f"mode_seeking_loss: pair shapes differ: images {tuple(images_a.shape)} / "
                          f"{tuple(images_b.shape)}, z {tuple(z_a.shape)} / {tuple(z_b.shape)}")
    if len(images_a) != len(z_a) or len(images_a) == 0:
        raise ConfigError(f"mode_seeking_loss: needs the same number (> 0) of image and latent pairs, got "
                          f"{len(images_a)} and {len(z_a)}")
    if pool < 0:
        raise ConfigError(f"mode_seeking_loss: pool must be >= 0 (0 = full resolution), got {pool}")
    if images_a.dim() == 2:  # embeddings [P,E]: a style or layout change moves them, pixel noise hardly does
        d_img = 1 - F.cosine_similarity(images_a.float(), images_b.float(), dim=1)  # [P]
    else:
        diff = images_a.float() - images_b.float()  # [P,C,H,W]
        if pool and diff.dim() == 4 and diff.shape[-1] > pool:
            diff = F.adaptive_avg_pool2d(diff, pool)  # pooling is linear: pool(a) - pool(b) = pool(a - b)
        d_img = diff.abs().flatten(1).mean(1)  # [P]
    d_z = (z_a.float() - z_b.float()).abs().flatten(1).mean(1)  # [P]
    return (1.0 / (d_img / d_z + eps)).mean()


def paired_rows(batch: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Row index [batch] that makes rows P..2P-1 repeat the conditions of rows 0..P-1 (P = batch // 2; an odd last row
    keeps its own): index a batch's captions / text with it, then pair image row i with row P + i."""
    if batch < 2:
        raise ConfigError(f"mode seeking needs batches of >= 2 rows to pair, got {batch}")
    p = batch // 2
    return torch.cat([torch.arange(p), torch.arange(p), torch.arange(2 * p, batch)]).to(device)


def pair_conditions(captions: list[str], *texts: tuple[torch.Tensor, ...],
                    device: torch.device | str | None = None) -> tuple[list[str], ...]:
    """The batch re-indexed by `paired_rows`: (captions, *texts), each text a tuple of [B,...] tensors (tokens,
    mask, pooled), so that rows P..2P-1 repeat the conditions of rows 0..P-1."""
    rows = paired_rows(len(captions), device)
    return ([captions[i] for i in rows.tolist()], *(tuple(t[rows] for t in text) for text in texts))


def paired_mode_seeking_loss(x: torch.Tensor, z: torch.Tensor, pool: int = 0) -> torch.Tensor:
    """`mode_seeking_loss` over a batch laid out by `pair_conditions`: row i against row P + i (P = B // 2).
    x: images [B,C,H,W] or embeddings [B,E]; z: their latents [B,z_dim]."""
    p = len(x) // 2
    return mode_seeking_loss(x[:p], x[p:2 * p], z[:p], z[p:2 * p], pool=pool)


def check_mode_seeking(weight: float, batch_size: int, allowed: bool = True, pool: int = 0,
                       space: str = "pixels") -> None:
    """A run config's check of `mode_seeking_weight` / `_pool` / `_space`: finite, >= 0, a known space, and when on,
    a batch that pairs and a mode that trains G's latent path (`allowed`)."""
    if space not in SPACES:
        raise ConfigError(f"mode_seeking_space must be one of {', '.join(SPACES)}, got {space!r}")
    if not 0 <= weight < float("inf"):
        raise ConfigError(f"mode_seeking_weight must be a finite number >= 0, got {weight}")
    if pool < 0:
        raise ConfigError(f"mode_seeking_pool must be >= 0 px (0 = full resolution), got {pool}")
    if weight > 0 and batch_size < 2:
        raise ConfigError(f"mode_seeking_weight > 0 pairs the rows of a batch: train.batch_size must be >= 2, "
                          f"got {batch_size}")
    if weight > 0 and not allowed:
        raise ConfigError("mode_seeking_weight > 0 applies to full training only (set it to 0 in this mode)")


__all__ = ["SPACES", "check_mode_seeking", "mode_seeking_loss", "pair_conditions", "paired_mode_seeking_loss",
           "paired_rows"]
