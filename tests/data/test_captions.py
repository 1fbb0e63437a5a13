"""Caption forms: emoji64 caption parts, short prompts, and drawn caption variants."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from fastt2i.data.captions import VARIANTS, caption_parts, caption_variant, check_variants, short_caption
from fastt2i.errors import ConfigError

CAP = "red heart, smileys & emotion, google style"


def test_caption_parts_split_from_the_right():
    p = caption_parts("family: man, woman, boy, people & body, twitter style")
    assert (p.name, p.category, p.style) == ("family: man, woman, boy", "people & body", "twitter")
    assert caption_parts("a photo of a cat").category is None
    assert short_caption(CAP) == "red heart" and short_caption("a photo of a cat") == "a photo of a cat"


def test_each_variant_form():
    rng = random.Random(0)
    forms = {v: caption_variant(CAP, rng, {v: 1.0}, keywords="love, heart") for v in VARIANTS}
    assert forms == {"full": CAP, "name": "red heart", "name_style": "red heart in google style",
                     "name_category": "red heart, smileys & emotion", "keywords": "red heart: love, heart"}
    assert caption_variant(CAP, rng, {"keywords": 1.0}) == "red heart"  # no keywords: the name
    assert caption_variant("a photo of a cat", rng, {"name": 1.0}) == "a photo of a cat"


def test_variants_follow_their_weights():
    rng = random.Random(0)
    got = Counter(caption_variant(CAP, rng, {"full": 3.0, "name": 1.0, "name_style": 0.0}) for _ in range(4000))
    assert set(got) == {CAP, "red heart"} and 0.7 < got[CAP] / 4000 < 0.8


def test_check_variants_rejects_unknown_names_and_bad_weights():
    with pytest.raises(ConfigError, match="unknown caption variants"):
        check_variants({"nickname": 1.0})
    with pytest.raises(ConfigError, match="not all 0"):
        check_variants({"full": 0.0})
