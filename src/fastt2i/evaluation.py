"""`evaluate_source`: `fastt2i eval` as a function, over the metrics and the pipeline loader (trainers call it too).

It sits above both `fastt2i.metrics` (which only sees a `generate(prompts, seeds)` callable) and `fastt2i.inference`
(which loads a model by name or path), so neither of them imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fastt2i.errors import ConfigError
from fastt2i.inference.gigagan import GigaGANPipeline, parse_dtype
from fastt2i.inference.loader import PIPELINES, load_pipeline, model_class
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.metrics import EXTRACTORS, dataset_fingerprint, evaluate, parse_metrics
from fastt2i.metrics.sources import GenerateFn, model_batches, reference_batches, split_samples

PIPELINES_WITH_DTYPE = (GigaGANPipeline, PaellaPipeline)  # their `dtype` sets the compute precision (StyleGAN-T's
# pipeline is a GigaGANPipeline)


def generate_fn(model: Any) -> GenerateFn:
    """The `generate(prompts, seeds)` callable of a pipeline-like object (or the callable itself)."""
    gen = getattr(model, "generate", None)
    if callable(gen):
        return gen
    if callable(model) and not isinstance(model, torch.nn.Module):
        return model
    raise ConfigError(f"{type(model).__name__} cannot generate images (no generate(prompts, seeds) method)")


def evaluate_source(
    model: Any,
    data: str,
    *,
    metrics: str | list[str],
    num: int,
    batch_size: int = 250,
    resolution: int = 64,
    prompt_split: str = "val",
    real_split: str = "train",
    split_by: str = "key",
    caption_field: str | None = None,
    extractor_paths: dict[str, str] | None = None,
    run_dir: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    step: int | None = None,
    kimg: float | None = None,
    progress: bool = True,
    dtype: str | torch.dtype | None = None,
) -> dict[str, Any]:
    """`fastt2i eval` as a function, for the CLI and for trainers (`Trainer.evaluate` every `eval_kimg`).

    Args:
        model: an object with `generate(prompts, seeds)` (a pipeline), a `generate` callable itself, a bundled model's
            name / an export / a run directory (loaded with `fastt2i.inference.load_pipeline`), or `reference:KIND`.
        data: dataset with the real images (split `real_split`) and the prompts (split `prompt_split`, cycled to num).
        metrics: names from fastt2i.metrics.METRICS.
        num: generated images.
        extractor_paths: {role: weights path} for the feature networks (default: each role's default/bundled one).
        run_dir: append the records to run_dir/metrics.jsonl (a run-directory model defaults to itself).
        step, kimg: training progress recorded with the records.
        dtype: compute dtype of a GigaGAN model's synthesis or a Paella bundle's denoiser ("fp32", "bf16"; None = the
            pipeline's own, fp32 when loaded here); a pipeline passed in gets it for this evaluation only. The metric
            networks always run in fp32.
    Returns:
        {recorded metric name: value}.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    low_precision = dtype is not None and parse_dtype(dtype) != torch.float32
    if low_precision and not isinstance(model, PIPELINES_WITH_DTYPE) and (
            not isinstance(model, (str, Path)) or str(model).startswith("reference:")
            or model_class(model) not in PIPELINES):  # every registered pipeline takes a dtype
        raise ConfigError(f"dtype={dtype!r} applies to text-to-image models (GigaGAN, StyleGAN-T, Paella), not to "
                          f"{model}")
    specs = parse_metrics(metrics)
    paths = extractor_paths or {}
    extractors = {role: EXTRACTORS.build(role, paths.get(role)).to(dev)
                  for role in sorted({s.extractor for s in specs.values()})}

    def samples(split: str):
        return lambda: split_samples(data, split, resolution, caption_field=caption_field, split_by=split_by,
                                     batch_size=batch_size)

    label = model if isinstance(model, (str, Path)) else type(model).__name__
    if isinstance(model, str) and model.startswith("reference:"):
        kind = model.split(":", 1)[1]
        fake = lambda: reference_batches(kind, samples(prompt_split), num, batch_size, seed)  # noqa: E731
    else:
        if isinstance(model, (str, Path)):
            path = Path(model).expanduser()
            if run_dir is None and (path / "export").is_dir():
                run_dir = path
            model = load_pipeline(model, device=dev, **({"dtype": dtype} if low_precision else {})).eval()
        generate = generate_fn(model)
        fake = lambda: model_batches(generate, samples(prompt_split), num, batch_size, seed)  # noqa: E731
    real_key = {"dataset": dataset_fingerprint(data), "split": real_split, "split_by": split_by,
                "resolution": resolution, "caption_field": caption_field}
    restore = model.dtype if isinstance(model, PIPELINES_WITH_DTYPE) else None
    if restore is not None and dtype is not None:
        model.dtype = parse_dtype(dtype)
    try:
        return evaluate(list(specs), fake, samples(real_split), num=num, extractors=extractors, real_key=real_key,
                        run_dir=run_dir, seed=seed, step=step, kimg=kimg, progress=progress,
                        extra={"model": str(label), "data": str(data), "prompt_split": prompt_split,
                               "real_split": real_split, **({"dtype": str(dtype)} if low_precision else {})})
    finally:
        if restore is not None:
            model.dtype = restore
