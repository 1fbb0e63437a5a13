"""Caption forms: the parts of an emoji64 caption, the short prompt a user types, and per-sample caption variants.

emoji64 captions read "<CLDR name>, <category>, <style> style" ("red heart, smileys & emotion, google style"); users
type "red heart" or "a red heart in twitter style". `short_caption` gives the name alone (evaluation on short
prompts); `caption_variant` draws one of several forms per sample (a data-side augmentation for training, so that a
model learns every form). Captions of any other shape are left as they are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fastt2i.errors import ConfigError

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
