"""The evaluation driver: stream generated and real images through feature networks and compute named metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fastt2i.errors import ConfigError, DataError
from fastt2i.metrics.accuracy import AccuracyAccumulator, prompt_style
from fastt2i.metrics.cache import cached_stats, load_stats, save_stats
from fastt2i.metrics.clip_score import ClipScoreAccumulator, caption_retrieval
from fastt2i.metrics.extractors import FeatureExtractor
from fastt2i.metrics.kernels import cmmd, kernel_inception_distance
from fastt2i.metrics.precision_recall import precision_recall
from fastt2i.metrics.registry import metric_record_name, parse_metrics
from fastt2i.metrics.results import append_metrics, now_iso
from fastt2i.metrics.stats import FeatureStats, frechet_distance_stats

_IMAGE_KEYS = ("images", "image", "pixel_values", "img")
_TEXT_KEYS = ("prompts", "prompt", "captions", "caption", "texts", "text")


def split_batch(batch: Any) -> tuple[torch.Tensor, list[str] | None]:
    """Normalise one stream item to (images [B,3,H,W] float in [-1,1], prompts or None).

    Accepts a tensor, an `(images, prompts)` tuple/list, or a dict with `images`/`image` and `prompts`/`captions`.
    uint8 images ([B,3,H,W] tensors or [B,H,W,3] numpy arrays) are converted to [-1, 1].
    """
    images: Any
    prompts: Any = None
    if isinstance(batch, Mapping):
        images = next((batch[k] for k in _IMAGE_KEYS if k in batch), None)
        prompts = next((batch[k] for k in _TEXT_KEYS if k in batch), None)
        if images is None:
            raise DataError(f"batch dict has no image key ({', '.join(_IMAGE_KEYS)}); got keys {sorted(batch)}")
    elif isinstance(batch, (tuple, list)) and batch and not isinstance(batch[0], str):
        images = batch[0]
        prompts = batch[1] if len(batch) > 1 else None
    else:
        images = batch
    if isinstance(images, np.ndarray):
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3:
            images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # [B,3,H,W]
        else:
            images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise DataError(f"expected image batches [B,3,H,W] (or (images, prompts) pairs), got {got}")
    if images.dtype == torch.uint8:
        images = images.float() / 127.5 - 1
    if prompts is not None:
        if isinstance(prompts, str):
            prompts = [prompts]
        if not all(isinstance(p, str) for p in prompts):
            prompts = None  # e.g. labels or token ids: not prompts
        else:
            prompts = list(prompts)
            if len(prompts) != images.shape[0]:
                raise DataError(f"batch has {images.shape[0]} images but {len(prompts)} prompts")
    return images, prompts


def batch_labels(batch: Any, n: int) -> list[str] | None:
    """The per-sample "label" list of a dict batch (the prompt's class, e.g. its subcategory), or None."""
    labels = batch.get("label") if isinstance(batch, Mapping) else None
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) < n:
        raise DataError(f"batch has {n} images but {len(labels)} labels")
    return labels[:n]


class _Timer:
    """Seconds spent per role (extractor calls) so each metric reports what it cost."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, role: str, t0: float) -> None:
        self.seconds[role] = self.seconds.get(role, 0.0) + time.perf_counter() - t0


def _stream(source: Iterable | Callable[[], Iterable]) -> Iterator:
    return iter(source() if callable(source) else source)


def _real_pass(
    roles: dict[str, bool],
    extractors: Mapping[str, FeatureExtractor],
    real_batches: Iterable | Callable[[], Iterable],
    num_real: int | None,
    timer: _Timer,
    progress: bool,
) -> dict[str, FeatureStats]:
    """One pass over the real stream computing FeatureStats for every role in `roles` ({role: store_features})."""
    stats = {r: FeatureStats(extractors[r].dim, store_features=f, max_features=num_real) for r, f in roles.items()}
    seen = 0
    bar = tqdm(total=num_real, unit="img", desc="real images", disable=not progress, leave=False)
    with torch.no_grad():
        for batch in _stream(real_batches):
            images, _ = split_batch(batch)
            if num_real is not None:
                images = images[: num_real - seen]
            for r in roles:
                t0 = time.perf_counter()
                stats[r].update(extractors[r](images))
                timer.add(r, t0)
            seen += images.shape[0]
            bar.update(images.shape[0])
            if num_real is not None and seen >= num_real:
                break
    bar.close()
    if seen < 2:
        raise DataError(f"the real image stream gave {seen} images; metrics need at least 2")
    return stats


def evaluate(
    metrics: str | Sequence[str],
    fake_batches: Iterable | Callable[[], Iterable],
    real_batches: Iterable | Callable[[], Iterable] | None = None,
    num: int = 10_000,
    extractors: Mapping[str, FeatureExtractor] | None = None,
    *,
    real_stats: Mapping[str, FeatureStats] | None = None,
    real_key: Mapping[str, Any] | None = None,
    num_real: int | None = None,
    cache_root: str | Path | None = None,
    run_dir: str | Path | None = None,
    step: int | None = None,
    kimg: float | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    pr_k: int = 3,
    cmmd_unbiased: bool = False,
    seed: int = 0,
    progress: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute metrics over `num` generated images against real images (or their cached statistics).

    Each extractor runs once per batch however many metrics use it; real statistics are loaded from the cache when
    `real_key` is given (and computed + saved on a miss) so a second evaluation never re-reads the real data.
    Each record's `seconds` = `seconds_features` (time in its feature network, shared by the metrics on that
    network, real side included when computed) + `seconds_metric` (its own statistics).

    Args:
        metrics: names from `METRICS` (`"fd_inception,kid_inception,clipscore_clip"` or a list).
        fake_batches: generated images: an iterable (or a zero-argument callable returning one) of [B,3,H,W] tensors
            in [-1, 1], `(images, prompts)` pairs or dicts; prompts are needed for clipscore. Stops after `num` images.
        real_batches: real images in the same formats (captions ignored), or a callable opened only on a cache miss.
        num: generated images to use (part of the metric names: `fd_dinov2_10k`).
        extractors: {role: FeatureExtractor}, roles as in the metric names (`inception`, `clip`, `dinov2`).
        real_stats: precomputed {role: FeatureStats} for the real side (skip real_batches and the cache).
        real_key: dataset identity for the cache, e.g. {"dataset": dataset_fingerprint(path), "split": "train",
            "resolution": 64}; the extractor identity, `num_real` and whether features are stored are added to it.
        num_real: real images to use (None = the whole real stream).
        cache_root: statistics cache root (default `$FASTT2I_CACHE` or ~/.cache/fastt2i).
        run_dir: when set, records are appended to `run_dir/metrics.jsonl`.
        step, kimg: training progress recorded with the results.
        kid_subsets, kid_subset_size: KID subset protocol (100 x 1000 by default).
        pr_k: neighbourhood size of precision/recall.
        cmmd_unbiased: use the unbiased MMD estimator instead of the paper's (biased) one.
        seed: seed of KID subset sampling.
        progress: show tqdm bars.
        extra: additional fields copied into every record (e.g. {"checkpoint": "..."}).
    Returns:
        {recorded metric name: value}; values are floats, or dicts for kid ({mean, std, ...}) and pr ({precision, recall}).
    """
    specs = parse_metrics(metrics)
    extractors = dict(extractors or {})
    if num < 2:
        raise ConfigError(f"--num must be at least 2, got {num}")
    missing = sorted({s.extractor for s in specs.values()} - set(extractors))
    if missing:
        raise ConfigError(
            f"metrics {', '.join(specs)} need feature extractor(s) {', '.join(missing)}; got {', '.join(extractors) or 'none'}"
        )
    for name, s in specs.items():
        if s.kind in ("clipscore", "retrieval") and not extractors[s.extractor].has_text:
            raise ConfigError(f"{name} needs an image-text model with encode_text; {extractors[s.extractor].name} has none")
        if s.kind in ("subacc", "styleacc") and not callable(getattr(extractors[s.extractor], "predict", None)):
            raise ConfigError(f"{name} needs a classifier with predict(); {extractors[s.extractor].name} has none")
        if not s.streamed:
            raise ConfigError(f"{name} generates several seeds per prompt: compute it with "
                              f"fastt2i.evaluation.evaluate_source (fastt2i eval), not over one image stream")

    fake_roles: dict[str, bool] = {}
    real_roles: dict[str, bool] = {}
    for s in specs.values():
        fake_roles[s.extractor] = fake_roles.get(s.extractor, False) or s.needs_features
        if s.needs_real:
            real_roles[s.extractor] = real_roles.get(s.extractor, False) or s.needs_features
    timer = _Timer()

    # Real side: given stats, then cache, then one pass over the real stream for whatever is still missing.
    real: dict[str, FeatureStats] = {}
    cached_from: dict[str, bool] = {}
    keys: dict[str, dict[str, Any]] = {}
    todo: dict[str, bool] = {}
    for role, need_feat in real_roles.items():
        given = (real_stats or {}).get(role)
        if given is not None:
            if need_feat and not given.has_features:
                raise DataError(f"real statistics for {role} lack raw features, needed by kid/pr/cmmd")
            real[role] = given
            continue
        if real_key is not None:
            keys[role] = {**dict(real_key), "extractor": extractors[role].identity, "num_real": num_real,
                          "features": need_feat}
            hit = load_stats(keys[role], cache_root)
            if hit is not None:
                real[role], cached_from[role] = hit, True
                continue
        todo[role] = need_feat
    if todo:
        if real_batches is None:
            raise ConfigError(f"metrics on {', '.join(todo)} need real images: pass real_batches or cached real stats")
        computed = _real_pass(todo, extractors, real_batches, num_real, timer, progress)
        for role, st in computed.items():
            real[role], cached_from[role] = st, False
            if role in keys:
                save_stats(keys[role], st, cache_root)

    # Fake side: one pass, every extractor once per batch; CLIP image embeddings reused for the CLIP score.
    fake = {r: FeatureStats(extractors[r].dim, store_features=f, max_features=num) for r, f in fake_roles.items()}
    clip_roles = {s.extractor for s in specs.values() if s.kind == "clipscore"}
    scores = {r: ClipScoreAccumulator() for r in clip_roles}
    accuracy = {(s.extractor, s.kind): AccuracyAccumulator() for s in specs.values() if s.kind in ("subacc", "styleacc")}
    retrieval_prompts: dict[str, list[str]] = {s.extractor: [] for s in specs.values() if s.kind == "retrieval"}
    seen = 0
    bar = tqdm(total=num, unit="img", desc="generated images", disable=not progress, leave=False)
    with torch.no_grad():
        for batch in _stream(fake_batches):
            images, prompts = split_batch(batch)
            images = images[: num - seen]
            prompts = prompts[: num - seen] if prompts is not None else None
            if images.shape[0] == 0:
                break
            for r in fake_roles:
                t0 = time.perf_counter()
                feats = extractors[r](images)  # [B,D]
                fake[r].update(feats)
                if r in scores:
                    if prompts is None:
                        raise DataError("clipscore needs prompts: yield (images, prompts) pairs from the generated stream")
                    scores[r].update(feats, extractors[r].encode_text(prompts))
                if r in retrieval_prompts:
                    if prompts is None:
                        raise DataError("retrieval needs prompts: yield (images, prompts) pairs")
                    retrieval_prompts[r].extend(prompts)
                if (r, "subacc") in accuracy or (r, "styleacc") in accuracy:
                    pred = extractors[r].predict(feats)  # {"subcategory": [B], "style": [B]} class names
                    if (r, "subacc") in accuracy:
                        labels = batch_labels(batch, images.shape[0])
                        if labels is None:
                            raise DataError("subacc needs each prompt's subcategory: a 'label' list in the generated "
                                            "stream (fastt2i eval reads it from the dataset's `subcategories`)")
                        accuracy[r, "subacc"].update(pred["subcategory"], labels)
                    if (r, "styleacc") in accuracy:
                        if prompts is None:
                            raise DataError("styleacc needs prompts: yield (images, prompts) pairs")
                        styles = extractors[r].classes["style"]
                        accuracy[r, "styleacc"].update(pred["style"], [prompt_style(p, styles) for p in prompts])
                timer.add(r, t0)
            seen += images.shape[0]
            bar.update(images.shape[0])
            if seen >= num:
                break
    bar.close()
    if seen < 2:
        raise DataError(f"the generated image stream gave {seen} images; metrics need at least 2")

    results: dict[str, Any] = {}
    records = []
    for user_name, s in specs.items():
        ext = extractors[s.extractor]
        t0 = time.perf_counter()
        details: dict[str, Any] = {}
        if s.kind == "fd":
            value: Any = frechet_distance_stats(fake[s.extractor], real[s.extractor])
        elif s.kind in ("kid", "pr", "cmmd"):
            dev = ext.device  # the sample-based metrics run where the extractor runs (GPU when there is one)
            xf, xr = fake[s.extractor].features.to(dev), real[s.extractor].features.to(dev)
            if s.kind == "kid":
                value = kernel_inception_distance(xf, xr, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
            elif s.kind == "pr":
                value = precision_recall(xf, xr, k=pr_k)
            else:
                value = cmmd(xf, xr, unbiased=cmmd_unbiased)
                details = {"estimator": "unbiased" if cmmd_unbiased else "paper-biased", "sigma": 10.0, "scale": 1000.0}
        elif s.kind == "retrieval":
            value = caption_retrieval(fake[s.extractor].features, retrieval_prompts[s.extractor], ext.encode_text)
            details = {"candidates": int(value.pop("candidates"))}
        elif s.kind in ("subacc", "styleacc"):
            acc = accuracy[s.extractor, s.kind]
            value = acc.value  # None when no prompt had a target (e.g. styleacc on prompts that name no style)
            details = {"num_scored": acc.n}
        else:  # clipscore
            value = scores[s.extractor].mean
            details = {"std": scores[s.extractor].std}
        own = time.perf_counter() - t0
        feat_s = timer.seconds.get(s.extractor, 0.0)
        rec_name = metric_record_name(s, ext, seen)
        results[rec_name] = value
        rec: dict[str, Any] = {
            "metric": rec_name, "value": value, "num_samples": seen, "seconds": round(own + feat_s, 3),
            "seconds_features": round(feat_s, 3), "seconds_metric": round(own, 3),
            "step": step, "kimg": kimg, "time": now_iso(), "extractor": ext.name,
            "extractor_identity": ext.identity, "requested": user_name,
        }
        if s.needs_real:
            rec["num_real"] = real[s.extractor].n
            rec["real_stats_cached"] = cached_from.get(s.extractor, False)
        rec.update(details)
        rec.update(extra or {})
        records.append(rec)
    if run_dir is not None:
        append_metrics(run_dir, records)
    return results


def compute_real_stats(
    extractor: FeatureExtractor,
    real_batches: Iterable | Callable[[], Iterable],
    key: Mapping[str, Any] | None = None,
    num_real: int | None = None,
    store_features: bool = True,
    cache_root: str | Path | None = None,
    progress: bool = True,
) -> tuple[FeatureStats, bool]:
    """Real-image statistics for one extractor, through the cache when `key` is given. Returns (stats, was_cached).

    Args:
        extractor: the feature network.
        real_batches: real images (see `evaluate`).
        key: dataset identity (the extractor identity, num_real and store_features are added); None = no cache.
        num_real: images to use (None = all).
        store_features: keep raw features (needed by kid/pr/cmmd).
        cache_root: cache root directory.
        progress: show a tqdm bar.
    """

    def compute() -> FeatureStats:
        return _real_pass({"x": store_features}, {"x": extractor}, real_batches, num_real, _Timer(), progress)["x"]

    if key is None:
        return compute(), False
    full = {**dict(key), "extractor": extractor.identity, "num_real": num_real, "features": store_features}
    return cached_stats(full, compute, cache_root)
