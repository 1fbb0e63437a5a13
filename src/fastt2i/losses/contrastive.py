"""Symmetric image-text contrastive (InfoNCE) loss, as in CLIP (Radford et al. 2021, sec. 2.3, Fig. 3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_contrastive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy over the batch; row i of each is a positive pair.

    Args:
        image_emb: [B,D] L2-normalised image embeddings.
        text_emb: [B,D] L2-normalised text embeddings.
        logit_scale: log of the inverse temperature (CLIP's learnable `t`, logits = exp(t) * cos).

    Computed in fp32 (autocast off) whatever the inputs' precision.
    """
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"image {tuple(image_emb.shape)} and text {tuple(text_emb.shape)} embeddings differ in shape")
    with torch.autocast(image_emb.device.type, enabled=False):  # similarities and softmax in fp32 under autocast
        image_emb, text_emb = image_emb.float(), text_emb.float()
        scale = torch.as_tensor(logit_scale, device=image_emb.device).float().exp()
        logits = scale * image_emb @ text_emb.t()  # [B,B]
        labels = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
