"""Frozen-CLIP losses on generated images: the vision-aided discriminator and the G-side CLIP contrastive loss.

Vision-aided GAN (Kumari et al. 2022, "Ensembling off-the-shelf models for GAN training"; GigaGAN sec. 3.5,
"vision-aided adversarial loss"): a frozen pretrained image model (CLIP in the paper; here anything with
`encode_image(images [-1,1]) -> [B,F]`, e.g. emoji-clip) extracts features, and small trainable heads judge them,
text-conditioned by projection. Its logits go through the same `d_logistic` / `g_nonsaturating` as the main D.

The backbone is frozen (requires_grad False, eval mode) and is NOT a registered submodule: it is absent from
`state_dict()` and `parameters()` (save/optimise only the heads; rebuild with the same backbone), yet it follows
`.to()` / `.half()` of the wrapper. Gradients still flow through it to the input images, so G is trained by it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.assets import refuse_metric_network
from fastt2i.nn.equalized import EqualLinear


def clip_image_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """`model.encode_image(images)` with the images in the default (NCHW) layout: a frozen CNN backbone (emoji-clip)
    runs its GroupNorms ~4x slower channels-last in bf16 on CPU (emoji-clip forward + backward at batch 64: 1.66x
    slower channels-last in bf16, the same in fp32; torch 2.13), so a channels-last input (the D trunk's) is converted
    once here. images [B,3,H,W] in [-1,1] -> [B,F]."""
    return model.encode_image(images.contiguous())


class VisionAidedDiscriminator(nn.Module):
    """Trainable heads over a frozen image backbone, conditioned on the pooled text embedding by projection.

    logit = psi(h) + <h, proj(text)> / sqrt(hidden),  h = MLP(backbone.encode_image(x)).

    Args:
        backbone: frozen model with `encode_image(images [B,3,H,W] in [-1,1]) -> [B,F]` (e.g. EmojiCLIP).
        text_dim: width of the pooled text embedding given to `forward`.
        hidden: width of the trainable heads.
        layers: hidden layers of the MLP over the backbone features.
        feature_dim: F; inferred with one dummy forward of a `probe_resolution` image when None.
        probe_resolution: image size of that probe.
    """

    def __init__(
        self,
        backbone: nn.Module,
        text_dim: int,
        hidden: int = 256,
        layers: int = 2,
        feature_dim: int | None = None,
        probe_resolution: int = 64,
    ):
        super().__init__()
        if not callable(getattr(backbone, "encode_image", None)):
            raise TypeError(f"{type(backbone).__name__} has no encode_image(images) method")
        refuse_metric_network(backbone, "vision-aided discriminator")
        backbone.requires_grad_(False).eval()
        object.__setattr__(self, "backbone", backbone)  # not a submodule: never in state_dict / parameters
        if feature_dim is None:
            p = next(backbone.parameters(), None)
            probe = torch.zeros(1, 3, probe_resolution, probe_resolution,
                                device=p.device if p is not None else None, dtype=p.dtype if p is not None else None)
            with torch.no_grad():
                feature_dim = int(backbone.encode_image(probe).shape[-1])
        dims = [feature_dim] + [hidden] * layers
        self.mlp = nn.Sequential(*(EqualLinear(a, b, activation="lrelu") for a, b in zip(dims[:-1], dims[1:])))
        self.out = EqualLinear(dims[-1], 1)
        self.text_proj = EqualLinear(text_dim, dims[-1])

    def _apply(self, fn, recurse: bool = True):  # keep the unregistered backbone on the same device/dtype
        super()._apply(fn, recurse)
        self.backbone._apply(fn)
        return self

    def train(self, mode: bool = True) -> VisionAidedDiscriminator:
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm/dropout statistics never change
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen backbone features [B,F] (differentiable with respect to `images`)."""
        return clip_image_features(self.backbone, images)

    def forward(self, images: torch.Tensor, pooled: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """images [B,3,H,W] in [-1,1], pooled text [B,text_dim] -> logits [B]; `features` = precomputed
        `self.features(images)` (e.g. shared with the CLIP loss, whose backbone is the same frozen model)."""
        if pooled.ndim != 2 or pooled.shape[0] != images.shape[0]:
            raise ValueError(f"pooled text must be [B,D] with B={images.shape[0]}, got {tuple(pooled.shape)}")
        feats = self.features(images) if features is None else features  # [B,F]
        h = self.mlp(feats.to(self.out.weight.dtype))  # [B,hidden]
        proj = (h * self.text_proj(pooled.to(h.dtype))).sum(dim=1) / math.sqrt(h.shape[1])  # [B]
        return self.out(h)[:, 0] + proj  # [B]


def generator_clip_loss(
    clip_model: nn.Module, images: torch.Tensor, text_emb: torch.Tensor, logit_scale: float | torch.Tensor | None = None,
    image_features: torch.Tensor | None = None,
) -> torch.Tensor:
    """GigaGAN sec. 3.5, eq. 9: -log softmax_n(<E_img(G(c_0)), E_txt(c_n)> * scale)[0], averaged over the batch.

    Image-to-text cross-entropy only (G is pushed towards its own caption and away from the batch's others); the
    frozen CLIP's temperature is used unless `logit_scale` (log of the inverse temperature) is given. Duplicate
    captions in a batch act as false negatives; deduplicate upstream if that matters.

    Args:
        clip_model: frozen model with `encode_image` returning L2-normalised [B,D] (e.g. EmojiCLIP).
        images: generated images [B,3,H,W] in [-1,1].
        text_emb: L2-normalised CLIP text embeddings [B,D] of the captions used to generate them.
        logit_scale: override of the log inverse temperature.
        image_features: precomputed `clip_model.encode_image(images)` (shared with the vision-aided D).
    """
    refuse_metric_network(clip_model, "CLIP loss")
    feats = clip_image_features(clip_model, images) if image_features is None else image_features
    with torch.autocast(feats.device.type, enabled=False):  # similarities and softmax in fp32 under autocast
        img = F.normalize(feats.float(), dim=-1)  # [B,D]
        txt = F.normalize(text_emb.float().to(img.device), dim=-1)  # [B,D]
        if img.shape != txt.shape:
            raise ValueError(f"image {tuple(img.shape)} and text {tuple(txt.shape)} embeddings differ in shape")
        if logit_scale is None:
            logit_scale = getattr(clip_model, "logit_scale", math.log(1 / 0.07))
        scale = torch.as_tensor(logit_scale, device=img.device).detach().float().exp()
        logits = scale * img @ txt.t()  # [B,B]
        return F.cross_entropy(logits, torch.arange(len(img), device=img.device))
