"""CLIP image and text towers (transformers CLIPModel from a local directory) for CLIP score, CMMD and FD on CLIP."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

from fastt2i.errors import AssetNotFoundError, DataError
from fastt2i.metrics.extractors import (
    EXTRACTORS,
    FeatureExtractor,
    check_images,
    dir_fingerprint,
    load_hf_local,
    resize,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _slug(text: str) -> str:
    """`openai/clip-vit-base-patch32` -> `clip-vit-base-patch32` (lowercase, [a-z0-9.-])."""
    base = str(text).rstrip("/").split("/")[-1].lower()
    return re.sub(r"[^a-z0-9.]+", "-", base).strip("-") or "clip"


def _pooled(out) -> torch.Tensor:
    """transformers 4.x returns a tensor from get_*_features; 5.x a model output with the projection in pooler_output."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class CLIPFeatures(FeatureExtractor):
    """CLIP embeddings: `forward`/`encode_image` for images in [-1, 1], `encode_text` for prompts; both L2-normalised.

    Images are resized (bicubic, antialiased) to the vision tower's `image_size` and normalised with CLIP's mean/std;
    square inputs make this the same as CLIP's resize-and-centre-crop. Prompts are tokenised with the tokenizer saved
    beside the model, padded and truncated to the text tower's context length.

    Args:
        model: a transformers `CLIPModel`.
        tokenizer: its tokenizer (any transformers tokenizer whose ids fit the text tower); None = image-only.
        name: used in metric names (`clipscore_<name>_10k`), e.g. the model directory name.
        identity: cache identity (defaults to name + a fingerprint of the weights directory).
    """

    def __init__(self, model, tokenizer=None, name: str = "clip", identity: str | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self._identity = identity or name
        self.dim = int(model.config.projection_dim)
        self.image_size = int(model.config.vision_config.image_size)
        self.max_length = int(model.config.text_config.max_position_embeddings)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | Path, name: str | None = None, allow_download: bool = False) -> "CLIPFeatures":
        """Load CLIPModel and its tokenizer from a local directory (or a hub id present in the offline HF cache).

        Args:
            path: directory with config.json, weights and tokenizer files.
            name: metric-name tag; default: the directory name, lowercased (`clip-vit-base-patch32`).
            allow_download: let transformers fetch a hub id (off by default: evaluation never touches the network).
        """
        from transformers import AutoTokenizer, CLIPModel

        model = load_hf_local(CLIPModel.from_pretrained, path, "CLIP model", "openai/clip-vit-base-patch32", allow_download)
        try:
            tok = load_hf_local(AutoTokenizer.from_pretrained, path, "CLIP tokenizer", "openai/clip-vit-base-patch32",
                                allow_download)
        except Exception:
            tok = None  # image-only use (CMMD, FD on CLIP) still works; encode_text explains what is missing
        tag = name or _slug(path)
        fp = dir_fingerprint(path) if Path(path).expanduser().exists() else str(path)
        return cls(model, tok, name=tag, identity=f"{tag}:{fp}")

    @property
    def identity(self) -> str:
        return self._identity

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images [N,3,H,W] in [-1,1] -> unit-norm embeddings [N, projection_dim] float32."""
        x = check_images(images, "CLIPFeatures").to(self.device)
        x = resize((x + 1) / 2, self.image_size, mode="bicubic").clamp(0, 1)  # [N,3,S,S] in [0,1]
        x = (x - self.mean) / self.std
        emb = _pooled(self.model.get_image_features(pixel_values=x))  # [N,D]
        return F.normalize(emb.float(), dim=-1)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """prompts (N strings) -> unit-norm embeddings [N, projection_dim] float32."""
        if self.tokenizer is None:
            raise AssetNotFoundError(f"{self.name}: no tokenizer files beside the CLIP weights; text embeddings need one")
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise DataError("encode_text expects a list of strings")
        tok = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
        emb = _pooled(self.model.get_text_features(**tok))  # [N,D]
        return F.normalize(emb.float(), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as `encode_image`: [N,3,H,W] in [-1,1] -> [N,D]."""
        return self.encode_image(images)


@EXTRACTORS.register("clip")
def _build_clip(path: str | None = None, **kwargs) -> CLIPFeatures:
    """`clip` needs a local CLIP directory (e.g. a download of openai/clip-vit-large-patch14-336 for CMMD)."""
    if not path:
        raise AssetNotFoundError(
            "the clip extractor needs a local CLIPModel directory (e.g. `huggingface-cli download "
            "openai/clip-vit-base-patch32 --local-dir DIR`, then pass DIR)"
        )
    return CLIPFeatures.from_pretrained(path, **kwargs)
