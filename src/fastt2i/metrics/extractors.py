"""The FeatureExtractor protocol, the registry of extractor names, and shared helpers (resize, local asset lookup)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.config import Registry
from fastt2i.errors import AssetNotFoundError, DataError

# Names a user types for `fastt2i eval --extractor NAME=PATH` and metric names (`fd_<role>`); factories take
# (path: str | None = None, **kwargs) and return a FeatureExtractor. The emoji networks register here when trained:
#   @EXTRACTORS.register("emojinet")
#   def _emojinet(path=None, **kw): return EmojiNetFeatures.from_pretrained(path)
# and then call `fastt2i.metrics.registry.register_feature_metrics("emojinet")` to get fd_/kid_/pr_emojinet.
EXTRACTORS: Registry[FeatureExtractor] = Registry("feature extractor")


class FeatureExtractor(nn.Module):
    """An image feature network used by the metrics.

    Subclasses set `name` (used in metric names, e.g. `inception`, `inception-random`, `clip-vit-b-32`), `dim` (feature
    size) and implement `forward(images [N,3,H,W] float in [-1,1]) -> [N, dim]`, doing their own resizing and
    normalisation. `identity` keys the real-statistics cache and must change whenever the weights or preprocessing do.
    Models with a text tower (CLIP) also implement `encode_image` and `encode_text(list[str]) -> [N, D]`.
    """

    name: str = "features"
    dim: int = 0

    @property
    def identity(self) -> str:
        """A string that changes when the features would change (name, weights fingerprint, input size)."""
        return self.name

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    @property
    def has_text(self) -> bool:
        return callable(getattr(self, "encode_text", None))


def check_images(images: torch.Tensor, who: str) -> torch.Tensor:
    """Validate [N,3,H,W] float images in [-1,1]; uint8 [N,3,H,W] is converted. Returns float32."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"{who}: expected images [N,3,H,W], got {shape}")
    if images.dtype == torch.uint8:
        return images.float() / 127.5 - 1
    return images.float()


def resize(images: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize [N,C,H,W] to `size` (no-op when already that size); antialias when shrinking with bicubic/bilinear."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    shrink = images.shape[-2] > hw[0] or images.shape[-1] > hw[1]
    return F.interpolate(images, size=hw, mode=mode, align_corners=False, antialias=shrink and mode != "nearest")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def dir_fingerprint(path: str | Path) -> str:
    """Short hash of a model directory's files (names, sizes, mtimes): a cheap identity for cached statistics."""
    p = Path(path)
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def load_hf_local(
    loader: Callable[..., object], path: str | Path, what: str, example_id: str, allow_download: bool = False, **kwargs
) -> object:
    """Call `loader(path, ...)` (a transformers `from_pretrained`) for a local directory, or for a hub id only from the
    local HF cache (or the network when `allow_download`). Fails with a one-line AssetNotFoundError that names the
    local-path alternative."""
    p = Path(path).expanduser()
    hint = (
        f"download it where the Hugging Face hub is reachable (`huggingface-cli download {example_id} --local-dir DIR`) "
        f"and pass the local directory DIR"
    )
    if p.exists():
        if not p.is_dir():
            raise AssetNotFoundError(f"{what}: {p} is not a directory with config.json and weights; {hint}")
        try:
            return loader(str(p), local_files_only=True, **kwargs)
        except Exception as e:  # transformers raises OSError/ValueError with long messages
            raise AssetNotFoundError(f"{what}: could not load from {p} ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    looks_local = str(path).startswith((".", "/", "~")) or str(path).count("/") > 1
    if looks_local:
        raise AssetNotFoundError(f"{what}: no such directory {p}; {hint}")
    try:
        return loader(str(path), local_files_only=not allow_download, **kwargs)
    except Exception:
        raise AssetNotFoundError(
            f"{what}: {path!r} is neither a local directory nor in the offline Hugging Face cache; {hint}"
        ) from None
