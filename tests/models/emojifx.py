"""A tiny emoji64-like .npz (styles, hexcodes with skin tones, subcategories) for the emoji-network tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

EMOJI = [("1f600", "grinning face", "face-smiling", "Smileys & Emotion"),
         ("1f44d", "thumbs up", "hand-fingers-closed", "People & Body"),
         ("1f363", "sushi", "food-asian", "Food & Drink"),
         ("1f697", "automobile", "transport-ground", "Travel & Places"),
         ("2764", "red heart", "heart", "Smileys & Emotion"),
         ("1f431", "cat face", "animal-mammal", "Animals & Nature")]
STYLES = ["google", "twitter", "openmoji"]
TONES = ["", "-1f3fb", "-1f3fd"]


def make_emoji_npz(path: Path, size: int = 16, seed: int = 0) -> Path:
    """24 samples: 6 emoji x 3 styles, plus 2 skin tones of thumbs up in each style; coloured per emoji and style."""
    rng = np.random.default_rng(seed)
    images, caps, styles, hexes, subs, cats = [], [], [], [], [], []
    for e, (hexcode, name, sub, cat) in enumerate(EMOJI):
        for s, style in enumerate(STYLES):
            for tone in (TONES if name == "thumbs up" else [""]):
                img = np.full((size, size, 3), 255, np.uint8)
                img[2:-2, 2:-2] = (40 * e % 256, 80 * s % 256, 120 + 30 * len(tone) % 100)
                img = np.clip(img.astype(int) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
                images.append(img)
                tone_txt = ", medium skin tone" if tone else ""
                caps.append(f"{name}{tone_txt}, {cat.lower()}, {style} style")
                styles.append(style)
                hexes.append(hexcode.upper() + tone.upper())
                subs.append(sub)
                cats.append(cat)
    np.savez(path, images=np.stack(images), captions=np.array(caps), styles=np.array(styles),
             hexcodes=np.array(hexes), subcategories=np.array(subs), categories=np.array(cats))
    return path
