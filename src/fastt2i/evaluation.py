"""`evaluate_source`: `fastt2i eval` as a function, over the metrics and the pipeline loader (trainers call it too).

It sits above both `fastt2i.metrics` (which only sees a `generate(prompts, seeds)` callable) and `fastt2i.inference`
(which loads a model by name or path), so neither of them imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fastt2i.data import open_dataset
from fastt2i.data.captions import caption_parts, short_caption
from fastt2i.errors import ConfigError, DataError
from fastt2i.inference.gigagan import GigaGANPipeline, parse_dtype
from fastt2i.inference.loader import PIPELINES, load_pipeline, model_class
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.metrics import EXTRACTORS, dataset_fingerprint, evaluate, parse_metrics
from fastt2i.metrics.accuracy import style_cover
from fastt2i.metrics.registry import count_tag
from fastt2i.metrics.results import append_metrics, now_iso
from fastt2i.metrics.sources import GenerateFn, model_batches, reference_batches, split_samples

PROMPT_FORMS = {"full": None, "short": short_caption}  # `prompt_form`: the captions as they are, or their name alone
LABEL_FIELD = "subcategories"  # emoji64's per-sample subcategory: the target of subacc
STYLECOVER_SEEDS = 8  # images per prompt for stylecover
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
    prompt_form: str = "full",
    label_field: str = LABEL_FIELD,
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
        prompt_form: "full" (the captions) or "short" (each caption's name alone, `data.captions.short_caption`:
            the prompt a user types); the metric records say which.
        label_field: the dataset field holding each prompt's subcategory (read only for subacc).
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
    if prompt_form not in PROMPT_FORMS:
        raise ConfigError(f"prompt_form must be one of {', '.join(PROMPT_FORMS)}, got {prompt_form!r}")
    paths = extractor_paths or {}
    extractors = {role: EXTRACTORS.build(role, paths.get(role)).to(dev)
                  for role in sorted({s.extractor for s in specs.values()})}
    labels = label_field if any(s.needs_labels for s in specs.values()) else None

    def samples(split: str, prompts: bool = False):
        form = PROMPT_FORMS[prompt_form] if prompts else None
        return lambda: split_samples(data, split, resolution, caption_field=caption_field, split_by=split_by,
                                     batch_size=batch_size, label_field=labels if prompts else None,
                                     prompt_form=form)

    label = model if isinstance(model, (str, Path)) else type(model).__name__
    if isinstance(model, str) and model.startswith("reference:"):
        kind = model.split(":", 1)[1]
        fake = lambda: reference_batches(kind, samples(prompt_split, True), num, batch_size, seed)  # noqa: E731
        generate = None
    else:
        if isinstance(model, (str, Path)):
            path = Path(model).expanduser()
            if run_dir is None and (path / "export").is_dir():
                run_dir = path
            model = load_pipeline(model, device=dev, **({"dtype": dtype} if low_precision else {})).eval()
        generate = generate_fn(model)
        fake = lambda: model_batches(generate, samples(prompt_split, True), num, batch_size, seed)  # noqa: E731
    real_key = {"dataset": dataset_fingerprint(data), "split": real_split, "split_by": split_by,
                "resolution": resolution, "caption_field": caption_field}
    restore = model.dtype if isinstance(model, PIPELINES_WITH_DTYPE) else None
    if restore is not None and dtype is not None:
        model.dtype = parse_dtype(dtype)
    extra = {"model": str(label), "data": str(data), "prompt_split": prompt_split, "real_split": real_split,
             "prompt_form": prompt_form, **({"dtype": str(dtype)} if low_precision else {})}
    streamed = [n for n, s in specs.items() if s.streamed]
    results: dict[str, Any] = {}
    try:
        if streamed:
            results.update(evaluate(streamed, fake, samples(real_split), num=num, extractors=extractors,
                                    real_key=real_key, run_dir=run_dir, seed=seed, step=step, kimg=kimg,
                                    progress=progress, extra=extra))
        for name, spec in specs.items():
            if not spec.streamed:  # stylecover
                if generate is None and str(model) != "reference:data":
                    raise ConfigError(f"{name}: of the references only reference:data has an answer (the styles the "
                                      f"dataset has per emoji)")
                value, n = stylecover(generate, extractors[spec.extractor], data, prompt_split=prompt_split,
                                      split_by=split_by, num_prompts=num, seed=seed, batch_size=batch_size)
                rec_name = f"stylecover_{extractors[spec.extractor].name}_{count_tag(n)}"
                results[rec_name] = value
                if run_dir is not None:
                    append_metrics(run_dir, [{"metric": rec_name, "value": value, "num_prompts": n,
                                              "seeds_per_prompt": STYLECOVER_SEEDS, "step": step, "kimg": kimg,
                                              "time": now_iso(), "extractor": extractors[spec.extractor].name,
                                              "extractor_identity": extractors[spec.extractor].identity,
                                              "requested": name, **extra}])
        return results
    finally:
        if restore is not None:
            model.dtype = restore


def style_names(data: str, split: str, split_by: str = "key") -> dict[str, set[str]]:
    """{emoji name: the styles it exists in, over the whole dataset} for the names of split `split`'s captions
    (emoji64 captions: "<name>, <category>, <style> style"); names without a style are left out."""
    def captions(which: str) -> list[str]:
        ds = open_dataset(data, split=which, split_by=split_by)
        if not hasattr(ds, "caption"):
            raise DataError(f"{data}: stylecover reads map-style datasets (folder, manifest, .npz)")
        return [c for c in (ds.caption(i) for i in range(len(ds))) if c]

    every: dict[str, set[str]] = {}
    for c in captions("all"):
        p = caption_parts(c)
        if p.style is not None:
            every.setdefault(p.name, set()).add(p.style)
    wanted = {caption_parts(c).name for c in captions(split)}
    return {n: every[n] for n in sorted(wanted) if n in every}


@torch.no_grad()
def stylecover(generate: GenerateFn | None, extractor: Any, data: str, *, prompt_split: str = "val",
               split_by: str = "key", num_prompts: int | None = None, seed: int = 0, batch_size: int = 250,
               seeds_per_prompt: int = STYLECOVER_SEEDS) -> tuple[float, int]:
    """stylecover: for the style-free short prompts of a split (each distinct emoji name, "red heart"), the fraction
    whose `seeds_per_prompt` images show >= 2 styles by `extractor.predict` (emoji-net's style head).

    With `generate` None (a `reference:` source) it is the data's own answer: the fraction of those names that exist
    in >= 2 styles in the dataset (the seed diversity the data supports). Returns (value, prompts scored).
    """
    names = style_names(data, prompt_split, split_by)
    if not names:
        raise DataError(f"{data}: stylecover needs emoji64-style captions ('<name>, <category>, <style> style')")
    prompts = list(names)[:num_prompts] if num_prompts else list(names)
    if generate is None:
        return style_cover([sorted(names[p]) for p in prompts]), len(prompts)
    flat = [(p, seed + k) for p in prompts for k in range(seeds_per_prompt)]  # prompt-major
    styles: list[str] = []
    for i in range(0, len(flat), batch_size):
        chunk = flat[i:i + batch_size]
        images = generate([p for p, _ in chunk], [s for _, s in chunk])
        styles.extend(extractor.predict(extractor(images))["style"])
    per_prompt = [styles[j * seeds_per_prompt:(j + 1) * seeds_per_prompt] for j in range(len(prompts))]
    return style_cover(per_prompt), len(prompts)
