"""The emoji-domain networks as metric networks: `emojinet` (FD/KID/PR features; its heads for subacc, styleacc and
stylecover) and `emojiclip` (CLIP score, CMMD).

Both default to the exports bundled in `fastt2i/assets` (trained on the emoji64 training split, see their model
cards); a path to another export of the same class can be given instead. Metric names say which network measured:
`fd_emojinet_10k`, `clipscore_emojiclip_10k`. Neither is an Inception or a real CLIP: numbers are comparable only with
numbers from the same network (same weights, hence the weights' hash in `identity`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fastt2i.assets import asset_path
from fastt2i.metrics.extractors import EXTRACTORS, FeatureExtractor, check_images, sha256_file
from fastt2i.metrics.registry import register_feature_metrics
from fastt2i.models.emoji import EmojiCLIP, EmojiNet


def _load(cls, path: str | Path | None, bundled: str):
    p = Path(path).expanduser() if path else asset_path(bundled)
    model = cls.from_pretrained(p).float().eval().requires_grad_(False)
    return model, f"{bundled}:{sha256_file(p / 'model.safetensors')[:12]}"


class EmojiNetFeatures(FeatureExtractor):
    """Pooled trunk features of emoji-net ([N, 256] for the bundled one); images in [-1,1], any size (resized to 64).

    Args:
        path: an emoji-net export directory (default: the bundled one).
    """

    name = "emojinet"

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        self.net, self._identity = _load(EmojiNet, path, "emoji-net")
        self.dim = self.net.feature_dim

    @property
    def identity(self) -> str:
        return self._identity

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = check_images(images, "emojinet").to(self.device)
        return self.net.features(x).float()  # [N,C]

    @property
    def classes(self) -> dict[str, tuple[str, ...]]:
        """{"subcategory": class names, "style": class names} of the two heads."""
        return {"subcategory": self.net.config.subcategories, "style": self.net.config.styles}

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> dict[str, list[str]]:
        """Pooled features [N,C] (from `forward`) -> {"subcategory": [N] names, "style": [N] names} (argmax)."""
        f = features.to(self.device, torch.float32)
        out = {}
        for head, names in (("subcategory", self.net.head_subcategory), ("style", self.net.head_style)):
            idx = names(f).argmax(dim=1).tolist()  # [N]
            out[head] = [self.classes[head][i] for i in idx]
        return out


class EmojiCLIPFeatures(FeatureExtractor):
    """emoji-clip's joint embeddings: `encode_image` (= forward) and `encode_text`, both unit-norm [N, 384].

    Args:
        path: an emoji-clip export directory (default: the bundled one).
    """

    name = "emojiclip"
    bundled = "emoji-clip"

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        self.clip, self._identity = _load(EmojiCLIP, path, self.bundled)
        self.dim = self.clip.config.embed_dim

    @property
    def identity(self) -> str:
        return self._identity

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(check_images(images, "emojiclip").to(self.device)).float()

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return self.clip.encode_text(list(prompts)).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


class EmojiCLIPEvalFeatures(EmojiCLIPFeatures):
    """emoji-clip-eval: an evaluation-only image-text network (another architecture, a ViT tower, and another seed
    than emoji-clip; `eval_only` in its config, so every loss refuses it). The CLIP score and caption retrieval it
    measures are independent of the emoji-clip that GANs are trained against.

    Args:
        path: an emoji-clip export directory (default: the bundled emoji-clip-eval).
    """

    name = "emojiclipeval"
    bundled = "emoji-clip-eval"


EXTRACTORS.register("emojinet")(lambda path=None, **kw: EmojiNetFeatures(path))
EXTRACTORS.register("emojiclip")(lambda path=None, **kw: EmojiCLIPFeatures(path))
register_feature_metrics("emojinet", kinds=("fd", "kid", "pr", "subacc", "styleacc", "stylecover"))
register_feature_metrics("emojiclip", kinds=("fd", "kid", "pr", "clipscore", "cmmd", "retrieval"))
EXTRACTORS.register("emojiclipeval")(lambda path=None, **kw: EmojiCLIPEvalFeatures(path))
register_feature_metrics("emojiclipeval", kinds=("clipscore", "retrieval", "cmmd"))
