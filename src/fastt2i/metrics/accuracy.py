"""Prompt-following by a classifier: subacc (the prompt's subcategory), styleacc (the style a prompt names) and
stylecover (how many prompts get two or more styles over their seeds).

FD says how close the image distribution is; these say whether each image is the *kind* of thing its prompt asks for,
as seen by emoji-net's heads (a metric network, never a training signal). References (docs/metrics.md): the real
validation images with their own captions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastt2i.errors import DataError


def prompt_style(prompt: str, styles: Sequence[str]) -> str | None:
    """The style a prompt names ("... google style", "a red heart in twitter style"), or None: the first of `styles`
    that occurs as a whole word (case-insensitive)."""
    best: tuple[int, str] | None = None
    for s in styles:
        m = re.search(rf"\b{re.escape(s)}\b", prompt, flags=re.IGNORECASE)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), s)
    return best[1] if best else None


class AccuracyAccumulator:
    """Running top-1 accuracy; a target None (nothing to score, e.g. a prompt that names no style) is skipped."""

    def __init__(self) -> None:
        self.n = 0
        self.correct = 0

    def update(self, predicted: Sequence[str], target: Sequence[str | None]) -> None:
        if len(predicted) != len(target):
            raise DataError(f"accuracy: {len(predicted)} predictions for {len(target)} targets")
        for p, t in zip(predicted, target):
            if t is not None:
                self.n += 1
                self.correct += int(p == t)

    @property
    def value(self) -> float | None:
        """Accuracy in [0, 1], or None when no sample had a target."""
        return self.correct / self.n if self.n else None


def style_cover(styles_per_prompt: Sequence[Sequence[str]], min_styles: int = 2) -> float:
    """Fraction of prompts whose images (one per seed) show at least `min_styles` distinct styles."""
    if not styles_per_prompt:
        raise DataError("stylecover needs at least one prompt")
    return sum(len(set(s)) >= min_styles for s in styles_per_prompt) / len(styles_per_prompt)
