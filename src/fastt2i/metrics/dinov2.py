"""DINOv2 CLS-token features (transformers Dinov2Model from a local directory) for FD / KID / precision-recall."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from fastt2i.errors import AssetNotFoundError
from fastt2i.metrics.clip import _slug
from fastt2i.metrics.extractors import (
    EXTRACTORS,
    FeatureExtractor,
    check_images,
    dir_fingerprint,
    load_hf_local,
    resize,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DINOv2Features(FeatureExtractor):
    """DINOv2 features: the final-layer-normalised CLS token (`pooler_output`), as in Stein et al. 2023 (FD_DINOv2).

    Images in [-1, 1] are resized bicubic (antialiased) to `image_size` (224 by default, or the crop size in the
    directory's preprocessor_config.json) and normalised with ImageNet mean/std (or the processor's).

    Args:
        model: a transformers `Dinov2Model`.
        name: metric-name tag, e.g. `dinov2-base`.
        image_size: input side in pixels (a multiple of the patch size).
        mean, std: per-channel normalisation.
        identity: cache identity.
    """

    def __init__(self, model, name: str = "dinov2", image_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 identity: str | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.dim = int(model.config.hidden_size)
        self.image_size = int(image_size)
        self._identity = identity or f"{name}:{image_size}"
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | Path, name: str | None = None, image_size: int | None = None,
                        allow_download: bool = False) -> "DINOv2Features":
        """Load Dinov2Model from a local directory (or a hub id present in the offline HF cache).

        Args:
            path: directory with config.json and weights (optionally preprocessor_config.json).
            name: metric-name tag; default: the directory name, lowercased.
            image_size: input size; default: the processor's crop size, else 224.
            allow_download: let transformers fetch a hub id.
        """
        from transformers import Dinov2Model

        model = load_hf_local(Dinov2Model.from_pretrained, path, "DINOv2 model", "facebook/dinov2-base", allow_download)
        mean, std, size = IMAGENET_MEAN, IMAGENET_STD, 224
        proc = Path(path).expanduser() / "preprocessor_config.json"
        if proc.is_file():
            cfg = json.loads(proc.read_text())
            mean = tuple(cfg.get("image_mean", mean))
            std = tuple(cfg.get("image_std", std))
            crop = cfg.get("crop_size", size)
            size = int(crop.get("height", size)) if isinstance(crop, dict) else int(crop)
        size = image_size or size
        tag = name or _slug(path)
        fp = dir_fingerprint(path) if Path(path).expanduser().exists() else str(path)
        return cls(model, name=tag, image_size=size, mean=mean, std=std, identity=f"{tag}:{fp}:{size}")

    @property
    def identity(self) -> str:
        return self._identity

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N,3,H,W] in [-1,1] -> CLS features [N, hidden_size] float32."""
        x = check_images(images, "DINOv2Features").to(self.device)
        x = resize((x + 1) / 2, self.image_size, mode="bicubic").clamp(0, 1)  # [N,3,S,S]
        x = (x - self.mean) / self.std
        out = self.model(pixel_values=x)
        return out.pooler_output.float()  # [N,D] layer-normed CLS token


@EXTRACTORS.register("dinov2")
def _build_dinov2(path: str | None = None, **kwargs) -> DINOv2Features:
    """`dinov2` needs a local Dinov2Model directory (e.g. a download of facebook/dinov2-base)."""
    if not path:
        raise AssetNotFoundError(
            "the dinov2 extractor needs a local Dinov2Model directory (e.g. `huggingface-cli download "
            "facebook/dinov2-base --local-dir DIR`, then pass DIR)"
        )
    return DINOv2Features.from_pretrained(path, **kwargs)
