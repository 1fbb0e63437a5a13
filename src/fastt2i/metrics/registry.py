"""Metric names a user types (`--metrics fd_inception,clipscore_clip`) and the honest names results are recorded under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastt2i.config import Registry
from fastt2i.errors import ConfigError

MetricKind = Literal["fd", "kid", "pr", "clipscore", "cmmd", "retrieval", "subacc", "styleacc", "stylecover"]
PROMPT_KINDS = ("clipscore", "retrieval", "subacc", "styleacc", "stylecover")  # scored against the prompts, not real images


@dataclass(frozen=True)
class MetricSpec:
    """What a metric computes and which feature network it needs.

    Args:
        kind: fd (Fréchet distance), kid, pr (precision/recall), clipscore, cmmd, retrieval (caption retrieval
            top-1/top-5 over the distinct prompts); subacc / styleacc (a classifier's
            accuracy on the prompt's subcategory / the style a prompt names); stylecover (seed diversity of style,
            computed by `fastt2i.evaluation`, which generates 8 seeds per prompt).
        extractor: the role in the extractors mapping given to `evaluate` (`inception`, `clip`, `dinov2`, ...).
    """

    kind: MetricKind
    extractor: str

    @property
    def needs_real(self) -> bool:
        """Compares against real images (everything but the prompt-scored kinds)."""
        return self.kind not in PROMPT_KINDS

    @property
    def needs_features(self) -> bool:
        """Needs raw per-sample features, not just mean/covariance."""
        return self.kind in ("kid", "pr", "cmmd", "retrieval")

    @property
    def needs_prompts(self) -> bool:
        return self.kind in ("clipscore", "retrieval", "styleacc")

    @property
    def needs_labels(self) -> bool:
        """Needs each prompt's class label ("label" in the stream: subacc's subcategory)."""
        return self.kind == "subacc"

    @property
    def streamed(self) -> bool:
        """Computed by `evaluate` over one image per prompt (stylecover has its own generation protocol)."""
        return self.kind != "stylecover"


def count_tag(num: int) -> str:
    """50000 -> `50k`, 2500 -> `2.5k`, 640 -> `640`: the sample-count part of a metric name."""
    if num >= 1000 and num % 100 == 0:
        return f"{num / 1000:g}k"
    return str(num)


def metric_record_name(spec: MetricSpec, extractor, num: int) -> str:
    """The name a result is stored under: `<kind>_<extractor name>_<count>`.

    Only the Fréchet distance on the verified FID Inception weights (sha256 6726825d...) is called `fid_inception_<n>k`;
    any other feature network or Inception weights give `fd_<name>_<n>k` (e.g. `fd_inception-random_10k`).
    """
    name = getattr(extractor, "name", spec.extractor)
    kind = spec.kind
    if kind == "fd" and name == "inception" and getattr(extractor, "verified", False):
        kind = "fid"
    return f"{kind}_{name}_{count_tag(num)}"


METRICS: Registry[MetricSpec] = Registry("metric")


def register_feature_metrics(role: str, kinds: tuple[str, ...] = ("fd", "kid", "pr")) -> None:
    """Register `<kind>_<role>` for each kind (used for built-in extractors and, later, the emoji networks)."""
    for kind in kinds:
        METRICS.register(f"{kind}_{role}")(lambda kind=kind: MetricSpec(kind=kind, extractor=role))


register_feature_metrics("inception")
register_feature_metrics("dinov2")
register_feature_metrics("clip", kinds=("fd", "kid", "pr", "clipscore", "cmmd"))


def parse_metrics(names: str | list[str]) -> dict[str, MetricSpec]:
    """`"fd_inception,kid_inception"` or a list -> {name: spec}; unknown names fail with the list of choices."""
    items = names.split(",") if isinstance(names, str) else list(names)
    out: dict[str, MetricSpec] = {}
    for raw in items:
        n = raw.strip()
        if n:
            out[n] = METRICS.build(n)
    if not out:
        raise ConfigError(f"no metrics given; choose from: {', '.join(METRICS.names())}")
    return out
