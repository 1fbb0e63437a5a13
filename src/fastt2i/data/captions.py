"""Caption forms: the parts of an emoji64 caption, the short prompt a user types, and per-sample caption variants.

emoji64 captions read "<CLDR name>, <category>, <style> style" ("red heart, smileys & emotion, google style"); users
type "red heart" or "a red heart in twitter style". `short_caption` gives the name alone (evaluation on short
prompts); `caption_variant` draws one of several forms per sample (a data-side augmentation for training, so that a
model learns every form). Captions of any other shape are left as they are.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastt2i.data.open import open_dataset
from fastt2i.errors import ConfigError, DataError

VARIANTS = ("full", "name", "name_style", "name_category", "keywords")


@dataclass(frozen=True)
class CaptionParts:
    """name, category and style of an emoji64-style caption (category/style None when the caption has none)."""

    name: str
    category: str | None = None
    style: str | None = None


def caption_parts(caption: str) -> CaptionParts:
    """Split "<name>, <category>, <style> style" from the right (names may contain commas: "family: man, woman, boy")."""
    parts = caption.rsplit(", ", 2)
    if len(parts) == 3 and parts[2].endswith(" style") and parts[2] != " style":
        return CaptionParts(parts[0], parts[1], parts[2][: -len(" style")])
    return CaptionParts(caption)


def short_caption(caption: str) -> str:
    """The prompt a user would type for this caption: the emoji's name alone ("red heart")."""
    return caption_parts(caption).name


def parse_variants(spec: str) -> dict[str, float]:
    """"full:2,name:1,name_style:1" -> {"full": 2.0, "name": 1.0, "name_style": 1.0} (validated); "" -> {} (off)."""
    out: dict[str, float] = {}
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        name, _, weight = item.partition(":")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ConfigError(f"caption variant {item!r} is not NAME or NAME:WEIGHT") from None
    return check_variants(out) if out else {}


def check_variants(weights: dict[str, float]) -> dict[str, float]:
    """Validate {variant: weight} (names from VARIANTS, weights >= 0, not all 0)."""
    bad = sorted(set(weights) - set(VARIANTS))
    if bad:
        raise ConfigError(f"unknown caption variants {bad}; choose from {', '.join(VARIANTS)}")
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ConfigError(f"caption variant weights must be >= 0 and not all 0, got {weights}")
    return dict(weights)


def caption_variant(caption: str, rng: random.Random, weights: dict[str, float], keywords: str = "") -> str:
    """One form of `caption`, drawn with `weights` ({variant: weight}, see VARIANTS):

    full           the caption as it is
    name           "red heart"
    name_style     "red heart in google style" (falls back to the name when the caption names no style)
    name_category  "red heart, smileys & emotion"
    keywords       "red heart: love, heart" from the sample's keywords (the name when it has none)

    A caption without emoji64's parts is returned unchanged whatever is drawn.
    """
    p = caption_parts(caption)
    if p.category is None:
        return caption
    names = list(weights)
    kind = rng.choices(names, weights=[weights[n] for n in names])[0]
    if kind == "name":
        return p.name
    if kind == "name_style":
        return f"{p.name} in {p.style} style"
    if kind == "name_category":
        return f"{p.name}, {p.category}"
    if kind == "keywords":
        kw = ", ".join(k.strip() for k in keywords.replace("|", ",").split(",") if k.strip())
        return f"{p.name}: {kw}" if kw else p.name
    return caption


def field_by_key(data: str, split: str, field: str, *, split_by: str = "key", val_fraction: float = 0.05
                 ) -> dict[str, str]:
    """{sample key: its value of dataset field `field`} over a split, read without decoding images (e.g. emoji64's
    `subcategories` for subacc, `keywords` for the keywords variant)."""
    try:
        ds = open_dataset(data, split=split, caption_field=field, split_by=split_by, val_fraction=val_fraction)
    except DataError as e:
        raise DataError(f"per-sample labels need a field {field!r} (subacc: --label-field; caption variant "
                        f"'keywords': a `keywords` field): {e}") from None
    if not hasattr(ds, "caption"):
        raise DataError(f"{data}: per-sample fields ({field!r}) need a map-style dataset (folder, manifest, .npz)")
    out = {ds.key(i): ds.caption(i) for i in range(len(ds))}
    missing = sum(v is None for v in out.values())
    if missing and field != "keywords":  # an empty keywords entry is normal (the name is used instead)
        raise DataError(f"{data}: {missing} samples of split {split!r} have no {field!r}")
    return {k: v or "" for k, v in out.items()}


class CaptionVariants:
    """Wrap a training batch stream: each batch's captions become variants drawn with `weights` (see
    `caption_variant`). Batch i after `start_batch` draws from its own seeded RNG (seed, rank, batch index), so a
    resumed run draws what an uninterrupted one would. Other attributes (close, ...) pass through to `batches`.

    Args:
        batches: the stream ({"caption": [B] str, "key": [B] str, ...}).
        weights: {variant: weight}.
        seed, rank: the run's seed and this process's rank.
        start_batch: batches this rank had consumed before (resume).
        keywords: {key: keywords} for the "keywords" variant.
    """

    def __init__(self, batches: Any, weights: dict[str, float], seed: int, rank: int = 0, start_batch: int = 0,
                 keywords: dict[str, str] | None = None):
        self.batches, self.weights = batches, check_variants(weights)
        self.seed, self.rank, self.index = seed, rank, start_batch
        self.keywords = keywords or {}
        if self.weights.get("keywords", 0) > 0 and keywords is None:
            raise ConfigError("caption variant 'keywords' needs the dataset's keywords ({key: keywords})")
        self._it: Iterator[dict[str, Any]] | None = None

    def __iter__(self) -> "CaptionVariants":
        return self

    def __next__(self) -> dict[str, Any]:
        if self._it is None:
            self._it = iter(self.batches)
        batch = next(self._it)
        rng = random.Random(f"{self.seed}:{self.rank}:{self.index}")
        self.index += 1
        keys = batch.get("key") or [""] * len(batch["caption"])
        caps = [caption_variant(c, rng, self.weights, self.keywords.get(k, "")) for c, k in zip(batch["caption"], keys)]
        return {**batch, "caption": caps}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["batches"], name)
