"""Image streams to evaluate: a model's samples for dataset prompts, or reference sources that anchor the metrics.

Reference sources (`fastt2i eval --model reference:KIND`) say what a number means (docs/metrics.md):
    data      the dataset's own images of the prompt split (the floor a perfect model approaches)
    noise     Gaussian noise images
    blur16    the images downsampled to 16 px and back (a crude "blurry model")
    shuffled  the images with captions of other samples (the CLIP score of a model that ignores the prompt)
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from fastt2i.data import make_loader, open_dataset
from fastt2i.data.captions import field_by_key
from fastt2i.errors import ConfigError, DataError

REFERENCES = ("data", "noise", "blur16", "shuffled")


def split_samples(data: str, split: str, resolution: int, *, caption_field: str | None = None,
                  split_by: str = "key", val_fraction: float = 0.05, batch_size: int = 250,
                  label_field: str | None = None, prompt_form: Callable[[str], str] | None = None,
                  ) -> Iterator[dict[str, Any]]:
    """One ordered pass over a dataset split as batches {"image", "caption", "key"} (the last one may be short).

    Args:
        label_field: also give each sample's value of this dataset field as "label" (e.g. emoji64's
            `subcategories`, the target of `subacc_emojinet`).
        prompt_form: rewrite each caption (e.g. `fastt2i.data.captions.short_caption`: the prompt a user types).
    """
    ds = open_dataset(data, resolution=resolution, split=split, caption_field=caption_field, split_by=split_by,
                      val_fraction=val_fraction)
    if getattr(ds, "is_iterable", True) and not hasattr(ds, "__len__"):
        raise DataError(f"{data}: evaluation reads map-style datasets (folder, manifest, .npz); got shards")
    n = len(ds)
    if n == 0:
        raise DataError(f"{data}: split {split!r} is empty")
    labels = field_by_key(data, split, label_field, split_by=split_by, val_fraction=val_fraction) if label_field else None
    it = make_loader(ds, min(batch_size, n), shuffle=False, drop_last=False)
    seen = 0
    while seen < n:
        b = next(it)
        take = min(len(b["key"]), n - seen)
        seen += take
        keys, caps = list(b["key"][:take]), list(b["caption"][:take])
        out = {"image": b["image"][:take], "caption": [prompt_form(c) for c in caps] if prompt_form else caps,
               "key": keys}
        if labels is not None:
            out["label"] = [labels[k] for k in keys]
        yield out


def cycled(batches_fn, num: int, batch_size: int) -> Iterator[dict[str, Any]]:
    """Re-batch a finite stream to `batch_size`, repeating it until `num` samples (the metric's N) are produced."""
    buf_img: list[torch.Tensor] = []
    buf_cap: list[str] = []
    buf_lab: list[str] = []  # per-sample "label" when the stream has one
    produced = 0
    while produced < num:
        got = 0
        for b in batches_fn():
            got += len(b["caption"])
            buf_img.extend(b["image"].unbind(0))
            buf_cap.extend(b["caption"])
            buf_lab.extend(b.get("label", ()))
            while len(buf_cap) >= batch_size or (produced + len(buf_cap) >= num and buf_cap):
                take = min(batch_size, num - produced, len(buf_cap))
                out = {"image": torch.stack(buf_img[:take]), "caption": buf_cap[:take]}
                if buf_lab:
                    out["label"] = buf_lab[:take]
                    del buf_lab[:take]
                yield out
                del buf_img[:take], buf_cap[:take]
                produced += take
                if produced >= num:
                    return
        if got == 0:
            raise DataError("the evaluation source produced no samples")


def blur(images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """[B,3,H,W] -> downsampled to `size` (antialiased) and back up (bilinear)."""
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)


def reference_batches(kind: str, samples_fn, num: int, batch_size: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Batches {"image", "caption"} of a reference source (see the module docstring) built from `samples_fn()`."""
    if kind not in REFERENCES:
        raise ConfigError(f"unknown reference {kind!r}; choose one of: {', '.join(REFERENCES)}")
    gen = torch.Generator().manual_seed(seed)
    captions: list[tuple[str, str | None]] = []  # (caption, label) pairs: a shuffled caption keeps its label
    if kind == "shuffled":
        captions = [(c, lab) for b in samples_fn()
                    for c, lab in zip(b["caption"], b.get("label") or [None] * len(b["caption"]))]
        if len({c for c, _ in captions}) < 2:
            raise DataError("shuffled captions need at least two distinct captions")
        # a derangement by rotation of a random permutation: no image keeps its own caption
        perm = torch.randperm(len(captions), generator=gen).tolist()
        rotated = {perm[i]: captions[perm[(i + 1) % len(perm)]] for i in range(len(perm))}
        captions = [rotated[i] for i in range(len(captions))]
    pos = 0
    for b in cycled(samples_fn, num, batch_size):
        out = dict(b)
        if kind == "noise":
            out["image"] = torch.randn(b["image"].shape, generator=gen).clamp(-1, 1)
        elif kind == "blur16":
            out["image"] = blur(b["image"])
        elif kind == "shuffled":
            pairs = [captions[(pos + i) % len(captions)] for i in range(len(b["caption"]))]
            out["caption"] = [c for c, _ in pairs]
            if "label" in b:
                out["label"] = [lab for _, lab in pairs]
        pos += len(b["caption"])
        yield out


GenerateFn = Callable[[list[str], list[int]], torch.Tensor]  # (prompts, seeds) -> [B,3,H,W] in [-1,1]


def model_batches(generate: GenerateFn, prompts_fn, num: int, batch_size: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """A text-to-image model's samples: prompts cycled from `prompts_fn()`, seed `seed + i` for the i-th image.

    Args:
        generate: `generate(prompts, seeds) -> [B,3,H,W] in [-1,1]` (e.g. a pipeline's bound `generate`); metrics
            never load models themselves.
    """
    if not callable(generate):
        raise ConfigError(f"model_batches needs a generate(prompts, seeds) callable, got {type(generate).__name__}")
    i = 0
    for b in cycled(prompts_fn, num, batch_size):
        caps = b["caption"]
        seeds = list(range(seed + i, seed + i + len(caps)))
        with torch.no_grad():
            images = generate(caps, seeds)
        i += len(caps)
        yield {"image": images, "caption": caps, **({"label": b["label"]} if "label" in b else {})}
