"""CLIP guidance of the generator (StyleGAN-T sec. 3.3): the squared spherical distance of image and text embeddings.

L_CLIP = E[ arccos(<E_img(G(z, c)) / |.|, E_txt(c) / |.|>)^2 ], added to G's adversarial loss with a weight (the paper's
lambda; official `clip_weight`). It pulls each image towards its own caption in a frozen image-text space, with no
negatives (unlike GigaGAN's contrastive `vision_aided.generator_clip_loss`).

The model is any frozen image-text model whose `encode_image(images [B,3,H,W] in [-1,1])` is differentiable with
respect to the images: emoji-clip on emoji data, or a CLIP export loaded with `fastt2i.models.load_clip_model(path)`.
emoji-net is refused: it is the FD feature network, and a metric network must never be a training signal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.assets import refuse_metric_network
from fastt2i.errors import ConfigError


def spherical_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared geodesic distance theta^2 between the directions of x and y [..., D] -> [...] (official StyleGAN-T:
    `arccos(<x^, y^>)^2`, 0 for equal directions, (pi/2)^2 for orthogonal ones, pi^2 for opposite ones).

    Computed as theta = 2 arcsin(|x^ - y^| / 2), which equals arccos(<x^, y^>) for unit vectors but has a finite
    gradient at theta = 0 (arccos' is infinite at 1). k-diffusion's CLIP-guidance `spherical_dist_loss`,
    2 arcsin(|x^ - y^| / 2)^2, is theta^2 / 2: half of this.

    Args:
        x: [..., D] embeddings (any norm; L2-normalised here).
        y: [..., D] embeddings, broadcastable with x.
    """
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    half_chord = (x - y).norm(dim=-1).div(2).clamp(max=1.0)  # |x^ - y^| / 2 = sin(theta / 2)
    return (2 * half_chord.arcsin()).square()  # theta^2


def _input_resolution(model: nn.Module) -> int | None:
    """The square image size the model's image tower expects, if it says: `image_size` / `resolution` on the model
    or its config (or `config.vision_config.image_size`, transformers' CLIP)."""
    cfg = getattr(model, "config", None)
    vision = getattr(cfg, "vision_config", None)
    for owner, name in ((model, "image_size"), (model, "resolution"), (cfg, "resolution"), (cfg, "image_size"),
                        (vision, "image_size")):
        v = getattr(owner, name, None) if owner is not None else None
        if isinstance(v, int) and v > 0:
            return v
    return None


def clip_guidance_loss(
    clip_model: nn.Module,
    images: torch.Tensor,
    text_emb: torch.Tensor,
    crop: int | None = None,
    generator: torch.Generator | None = None,
    image_features: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN-T's CLIP loss: the mean over the batch of `spherical_distance(E_img(images), text_emb)`.

    The images are (optionally) randomly cropped, resized to the model's input resolution when it states one and
    they differ (antialiased bilinear), and encoded under the caller's autocast; the distance is computed in fp32
    with autocast off.

    Args:
        clip_model: frozen image-text model with a differentiable `encode_image` (emoji-clip, a CLIP export); never
            emoji-net.
        images: generated images [B,3,H,W] in [-1,1].
        text_emb: the text embeddings [B,E] of their captions in the same space (`clip_model.encode_text`), any norm.
        crop: if the images are larger, take one random crop x crop of them first (the official code crops 64 px
            from larger images before CLIP, to save compute); None = whole images.
        generator: draws that crop's position.
        image_features: `clip_model`'s embeddings [B,E] of these images when the caller has them (no crop then);
            skips the encoding.

    Returns:
        scalar fp32 loss.
    """
    refuse_metric_network(clip_model, "CLIP guidance")
    if not callable(getattr(clip_model, "encode_image", None)):
        raise ConfigError(f"{type(clip_model).__name__} has no encode_image(images); CLIP guidance needs an image-text model")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"CLIP guidance expects images [B,3,H,W] in [-1,1], got {tuple(images.shape)}")
    if text_emb.ndim != 2 or text_emb.shape[0] != images.shape[0]:
        raise ValueError(f"text_emb must be [B,E] with B={images.shape[0]}, got {tuple(text_emb.shape)}")
    if image_features is not None:
        feats = image_features
    else:
        feats = clip_input_features(clip_model, images, crop, generator)
    with torch.autocast(feats.device.type, enabled=False):  # the distance in fp32 under autocast
        img, txt = feats.float(), text_emb.float().to(feats.device)
        if img.shape != txt.shape:
            raise ValueError(f"image {tuple(img.shape)} and text {tuple(txt.shape)} embeddings differ in shape")
        return spherical_distance(img, txt).mean()


def clip_input_features(clip_model: nn.Module, images: torch.Tensor, crop: int | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """`clip_model.encode_image` of images [B,3,H,W] in [-1,1] (one random crop x crop first when they are larger,
    then resized to the model's input size when it states one) -> [B,E], with gradients to the images."""
    refuse_metric_network(clip_model, "CLIP guidance")
    x = images
    h, w = x.shape[-2:]
    if crop is not None and (h > crop or w > crop):
        dev = generator.device if generator is not None else torch.device("cpu")
        top = int(torch.randint(0, h - crop + 1, (), generator=generator, device=dev))
        left = int(torch.randint(0, w - crop + 1, (), generator=generator, device=dev))
        x = x[:, :, top:top + crop, left:left + crop]  # [B,3,crop,crop]
    r = _input_resolution(clip_model)
    if r is not None and tuple(x.shape[-2:]) != (r, r):
        x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=True)  # [B,3,r,r]
    feats = clip_model.encode_image(x.contiguous())  # [B,E]
    if images.requires_grad and torch.is_grad_enabled() and not feats.requires_grad:
        raise ConfigError(f"{type(clip_model).__name__}.encode_image passes no gradient to the images (does it run "
                          "under no_grad, like a metric feature extractor?); CLIP guidance needs a differentiable one")
    return feats
