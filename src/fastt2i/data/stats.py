"""DataStats: counts of samples read, converted (grayscale, CMYK, alpha, caption encoding...) and skipped by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping

# Internal fields a dataset item may carry; collate strips them.
SKIP = "_skip"  # reason string: the item is a marker for a bad sample (no image)
CONV = "_conv"  # tuple of conversion names applied to a good sample
SIZE = "_size"  # original (width, height)
POS = "_pos"  # stream position the loader asked for (used to refill deterministically)

SKIP_REASONS = ("unreadable", "truncated", "missing_file", "missing_caption", "too_small", "too_large",
                "caption_too_large", "bad_shard")
# plus "caption_<encoding>" (e.g. caption_cp1252): caption text that was not UTF-8, decoded with a fallback encoding
CONVERSIONS = ("grayscale", "cmyk", "16bit", "alpha", "palette", "animated", "other_mode")


@dataclass
class DataStats:
    """Running counts over the samples a reader has seen (every read counts, so a bad file read twice counts twice).

    Args:
        read: items received (good or bad).
        ok: good samples delivered.
        converted: conversion name -> count (an image may need several, e.g. palette + alpha).
        skipped: skip reason -> count.
        examples: skip reason -> up to 3 example keys (to find the bad files).
    """

    read: int = 0
    ok: int = 0
    converted: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def update(self, item: Mapping[str, Any]) -> bool:
        """Count one dataset item; return True if it is a good sample."""
        self.read += 1
        reason = item.get(SKIP)
        if reason:
            self.skipped[reason] += 1
            ex = self.examples.setdefault(reason, [])
            if len(ex) < 3:
                ex.append(str(item.get("key", "?")))
            return False
        self.ok += 1
        for c in item.get(CONV) or ():
            self.converted[c] += 1
        return True

    def merge(self, other: "DataStats") -> "DataStats":
        """Add another DataStats into this one (returns self)."""
        self.read += other.read
        self.ok += other.ok
        self.converted.update(other.converted)
        self.skipped.update(other.skipped)
        for k, v in other.examples.items():
            ex = self.examples.setdefault(k, [])
            ex.extend(v[: max(0, 3 - len(ex))])
        return self

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def n_converted(self) -> int:
        return sum(self.converted.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON logs)."""
        return {"read": self.read, "ok": self.ok, "converted": dict(self.converted), "skipped": dict(self.skipped)}

    def report(self) -> str:
        """A short multi-line summary, e.g. `read 100, ok 97 | converted: grayscale 2 | skipped: truncated 3 (e.g. a/b)`."""
        lines = [f"read {self.read}, ok {self.ok}, skipped {self.n_skipped}, converted {self.n_converted}"]
        if self.converted:
            lines.append("converted: " + ", ".join(f"{k} {v}" for k, v in sorted(self.converted.items())))
        if self.skipped:
            parts = []
            for k, v in sorted(self.skipped.items()):
                ex = self.examples.get(k)
                parts.append(f"{k} {v}" + (f" (e.g. {', '.join(ex)})" if ex else ""))
            lines.append("skipped: " + ", ".join(parts))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()
