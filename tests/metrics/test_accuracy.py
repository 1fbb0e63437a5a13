"""Prompt-following accuracy helpers: the style a prompt names, top-1 accumulation with skipped targets, stylecover."""

from __future__ import annotations

import pytest

from fastt2i.errors import DataError
from fastt2i.metrics.accuracy import AccuracyAccumulator, prompt_style, style_cover

STYLES = ("google", "openmoji", "twitter")


@pytest.mark.parametrize("prompt, style", [
    ("sushi, food & drink, google style", "google"),
    ("a red heart in Twitter style", "twitter"),
    ("openmoji-style cat, not google", "openmoji"),  # the first one named wins
    ("red heart", None),
    ("googleplex", None),  # whole words only
])
def test_prompt_style(prompt, style):
    assert prompt_style(prompt, STYLES) == style


def test_accuracy_skips_missing_targets_and_checks_lengths():
    acc = AccuracyAccumulator()
    assert acc.value is None
    acc.update(["a", "b", "c"], ["a", None, "x"])
    acc.update(["d"], ["d"])
    assert (acc.n, acc.correct, acc.value) == (3, 2, 2 / 3)
    with pytest.raises(DataError, match="2 predictions for 1 targets"):
        acc.update(["a", "b"], ["a"])


def test_style_cover_counts_prompts_with_two_styles():
    assert style_cover([["g"] * 8, ["g", "t"] + ["g"] * 6, ["o", "t", "g"]]) == pytest.approx(2 / 3)
    assert style_cover([["g", "t"]], min_styles=3) == 0.0
    with pytest.raises(DataError):
        style_cover([])
