"""Metric names (honest protocol + features), the METRICS registry and metrics.jsonl appends."""

import json

import pytest
import torch

from fastt2i.errors import ConfigError, DataError
from fastt2i.metrics import METRICS, InceptionFeatures, append_metrics, count_tag, metric_record_name, parse_metrics, read_metrics
from fastt2i.metrics.registry import MetricSpec, register_feature_metrics


class _Named:
    def __init__(self, name, verified=False):
        self.name, self.verified = name, verified


def test_count_tags():
    assert [count_tag(n) for n in (50_000, 10_000, 2_500, 1_000, 640, 7)] == ["50k", "10k", "2.5k", "1k", "640", "7"]


def test_fid_only_for_verified_inception():
    fd = MetricSpec("fd", "inception")
    assert metric_record_name(fd, _Named("inception", verified=True), 50_000) == "fid_inception_50k"
    assert metric_record_name(fd, _Named("inception", verified=False), 50_000) == "fd_inception_50k"
    assert metric_record_name(fd, _Named("inception-random"), 10_000) == "fd_inception-random_10k"
    assert metric_record_name(fd, InceptionFeatures.__new__(InceptionFeatures), 10_000).startswith("fd_")
    assert metric_record_name(MetricSpec("kid", "inception"), _Named("inception", True), 50_000) == "kid_inception_50k"
    assert metric_record_name(MetricSpec("fd", "emojinet"), _Named("emojinet"), 10_000) == "fd_emojinet_10k"
    assert metric_record_name(MetricSpec("pr", "dinov2"), _Named("dinov2-base"), 10_000) == "pr_dinov2-base_10k"
    assert metric_record_name(MetricSpec("clipscore", "clip"), _Named("clip-vit-b-32"), 30_000) == "clipscore_clip-vit-b-32_30k"
    assert metric_record_name(MetricSpec("cmmd", "clip"), _Named("clip-vit-l-14-336"), 1_000) == "cmmd_clip-vit-l-14-336_1k"


def test_registry_and_parse():
    for n in ("fd_inception", "kid_inception", "pr_inception", "fd_dinov2", "clipscore_clip", "cmmd_clip"):
        assert n in METRICS
    specs = parse_metrics("fd_inception, clipscore_clip")
    assert specs == {"fd_inception": MetricSpec("fd", "inception"), "clipscore_clip": MetricSpec("clipscore", "clip")}
    assert specs["clipscore_clip"].needs_prompts and not specs["clipscore_clip"].needs_real
    assert MetricSpec("kid", "x").needs_features and not MetricSpec("fd", "x").needs_features
    with pytest.raises(ConfigError, match="unknown metric 'fid50k'.*fd_inception"):
        parse_metrics("fid50k")
    with pytest.raises(ConfigError, match="no metrics"):
        parse_metrics(" , ")


def test_register_point_for_new_extractors():
    register_feature_metrics("unit-test-net", kinds=("fd",))
    assert METRICS.build("fd_unit-test-net") == MetricSpec("fd", "unit-test-net")
    with pytest.raises(ConfigError, match="twice"):
        register_feature_metrics("unit-test-net", kinds=("fd",))


def test_append_metrics_jsonl(tmp_path):
    run = tmp_path / "run"
    p = append_metrics(run, {"metric": "fd_x_1k", "value": 1.5, "num_samples": 1000, "step": 3})
    append_metrics(run, [{"metric": "kid_x_1k", "value": {"mean": torch.tensor(0.25), "std": 0.01}},
                         {"metric": "pr_x_1k", "value": {"precision": 0.5, "recall": float("nan")}}])
    lines = p.read_text().splitlines()
    assert p == run / "metrics.jsonl" and len(lines) == 3
    recs = [json.loads(x) for x in lines]
    assert recs[0]["metric"] == "fd_x_1k" and recs[0]["value"] == 1.5 and recs[0]["step"] == 3
    assert recs[1]["value"] == {"mean": 0.25, "std": 0.01}
    assert recs[2]["value"]["recall"] is None  # NaN is not valid JSON
    assert all("T" in r["time"] for r in recs)
    assert read_metrics(run) == recs
    with pytest.raises(DataError, match="'metric' and 'value'"):
        append_metrics(run, {"value": 1})
