"""High-resolution metrics for an upsampler (64 px -> 256 px): patch FD, FD at 64 px, PSNR, SSIM, low-res consistency.

An upsampler is any `upscale_fn(lr [B,3,h,w] in [-1,1], captions: list[str]) -> hr [B,3,H,W] in [-1,1]`; the
baselines `bicubic_upscale` and `lanczos_upscale` are two of them. `evaluate_upscalers` makes each ground-truth
image's low-resolution input with `fastt2i.data.transforms.downsample_antialiased` (the function the upsampler
trainer uses), runs every method on it and scores the outputs against the ground truth:

- `patchfd_<net>`: Fréchet distance of feature-network features (emoji-net by default) of `crops_per_image` (4)
  random `crop_size` (64 px) crops per output against the same crops of the ground truth (the analogue of GigaGAN's
  Patch-FID: the feature network sees native-resolution detail instead of a downsampled whole). Crop positions are
  drawn once per image from `seed` (batch-size independent) and the real and generated image i are cropped at the
  same places, so a perfect upsampler scores 0.
- `fd64_<net>`: FD of the whole outputs downsampled to 64 px (antialiased, as the inputs) against the ground truth
  downsampled the same way: global content, blind to high-frequency detail.
- `psnr`: mean over images of 10 log10(1 / MSE), images mapped to [0, 1] (data range 1), capped at `PSNR_CAP` dB.
- `ssim`: mean over images of SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, `valid` padding, images in
  [0, 1], averaged over the RGB channels), from kornia.
- `lrpsnr`: PSNR of the output downsampled back to the input size (`downsample_antialiased`) against the input:
  does the output explain its input? (bicubic up then down is not exactly the identity, so no method gets the cap).

Outputs are clamped to [-1, 1] before scoring (what saving them as images would do). FD on a few hundred images is
biased upward (the covariance of 256-d features from N samples): compare numbers only at the same N.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from kornia.metrics import ssim as kornia_ssim
from PIL import Image
from tqdm.auto import tqdm

from fastt2i.data import open_dataset
from fastt2i.data.stats import SKIP
from fastt2i.data.transforms import downsample_antialiased, mix64
from fastt2i.errors import ConfigError, DataError
from fastt2i.metrics.emoji import EmojiNetFeatures
from fastt2i.metrics.evaluate import split_batch
from fastt2i.metrics.extractors import FeatureExtractor
from fastt2i.metrics.registry import count_tag
from fastt2i.metrics.results import append_metrics, now_iso
from fastt2i.metrics.stats import FeatureStats, frechet_distance_stats

UpscaleFn = Callable[[torch.Tensor, list[str]], torch.Tensor]  # (lr [B,3,h,w], captions) -> hr [B,3,H,W], in [-1,1]

UPSCALE_METRICS = ("patchfd", "fd64", "psnr", "ssim", "lrpsnr")  # what `metrics=` may name
PSNR_CAP = 100.0  # dB: the PSNR of identical images (MSE floored at 1e-10 in [0, 1] units)
SSIM_WINDOW = 11
FD_SIZE = 64  # side of the whole-image FD (emoji-net's native resolution)
CROPS_PER_IMAGE = 4
CROP_SIZE = 64


# ------------------------------------------------------------------------------------------------------ data
def load_hr_split(data: str, split: str, resolution: int, *, val_fraction: float, split_by: str,
               caption_field: str | None = None, num: int | None = None) -> tuple[torch.Tensor, list[str], list[str]]:
    """(uint8 [N,3,R,R], captions, keys) of one split, read in the dataset's order through `open_dataset` (shards,
    npz, folder or manifest), bad samples dropped."""
    ds = open_dataset(data, resolution=resolution, split=split, val_fraction=val_fraction, split_by=split_by,
                      caption_field=caption_field)
    items = iter(ds) if getattr(ds, "is_iterable", False) else (ds[i] for i in range(len(ds)))
    images, captions, keys = [], [], []
    for it in items:
        if SKIP in it:
            continue
        images.append(((it["image"] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))  # [3,R,R], exact
        captions.append(it["caption"])
        keys.append(it["key"])
        if num is not None and len(images) >= num:
            break
    if not images:
        raise DataError(f"{data}: split {split!r} has no usable images")
    return torch.stack(images), captions, keys



# ------------------------------------------------------------------------------------------------------ baselines
def bicubic_upscale(lr: torch.Tensor, captions: Sequence[str] | None = None, *, scale: int = 4) -> torch.Tensor:
    """The bicubic baseline: torch bicubic interpolation (a = -0.75, align_corners=False), clamped to [-1, 1].

    Args:
        lr: [B,3,h,w] in [-1, 1].
        captions: ignored (the signature of an upscale_fn).
        scale: integer upscaling factor.
    Returns:
        [B,3,h*scale,w*scale] in [-1, 1].
    """
    x = _check_images(lr, "bicubic_upscale: lr")
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp_(-1.0, 1.0)


def lanczos_upscale(lr: torch.Tensor, captions: Sequence[str] | None = None, *, scale: int = 4) -> torch.Tensor:
    """The Lanczos baseline: PIL `Image.resize(LANCZOS)` (a = 3) per image and channel, in float (mode "F", no
    8-bit rounding), clamped to [-1, 1]. Runs on the CPU; the result goes back to `lr`'s device.

    Args:
        lr: [B,3,h,w] in [-1, 1].
        captions: ignored.
        scale: integer upscaling factor.
    Returns:
        [B,3,h*scale,w*scale] in [-1, 1].
    """
    x = _check_images(lr, "lanczos_upscale: lr")
    b, c, h, w = x.shape
    arr = x.detach().cpu().numpy()  # [B,3,h,w]
    out = np.empty((b, c, h * scale, w * scale), dtype=np.float32)
    for i in range(b):
        for ch in range(c):
            im = Image.fromarray(np.ascontiguousarray(arr[i, ch]), mode="F")
            out[i, ch] = np.asarray(im.resize((w * scale, h * scale), Image.LANCZOS))
    return torch.from_numpy(out).clamp_(-1.0, 1.0).to(lr.device)


BASELINES: dict[str, UpscaleFn] = {"bicubic": bicubic_upscale, "lanczos": lanczos_upscale}


# ------------------------------------------------------------------------------------------- per-image measures
def _check_images(x: Any, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"{who}: expected images [B,3,H,W] in [-1,1], got {got}")
    return x.float()


def _check_pair(a: torch.Tensor, b: torch.Tensor, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _check_images(a, f"{who}: images"), _check_images(b, f"{who}: target")
    if a.shape != b.shape:
        raise DataError(f"{who}: images {tuple(a.shape)} and target {tuple(b.shape)} differ in shape")
    return a, b.to(a.device)


def psnr_per_image(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, [B,3,H,W] pairs in [-1,1] -> [B]: 10 log10(1 / MSE) with both mapped to [0, 1]
    (data range 1), capped at `PSNR_CAP` (identical images)."""
    a, b = _check_pair(images, target, "psnr")
    mse = ((a - b) / 2).pow(2).flatten(1).mean(1).double()  # [B], in [0,1] units
    return (10 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_CAP / 10)))).float()


def ssim_per_image(images: torch.Tensor, target: torch.Tensor, window: int = SSIM_WINDOW) -> torch.Tensor:
    """SSIM per image, [B,3,H,W] pairs in [-1,1] -> [B] (1 = identical): kornia's SSIM map (Gaussian window,
    sigma 1.5, `valid` padding, images mapped to [0, 1]) averaged over channels and pixels."""
    a, b = _check_pair(images, target, "ssim")
    if min(a.shape[-2:]) < window:
        raise DataError(f"ssim: images {tuple(a.shape[-2:])} are smaller than the {window}x{window} window")
    smap = kornia_ssim((a + 1) / 2, (b + 1) / 2, window, max_val=1.0, padding="valid")  # [B,3,H-w+1,W-w+1]
    return smap.flatten(1).mean(1)


def crop_positions(num: int, height: int, width: int, *, start: int = 0, crops_per_image: int = CROPS_PER_IMAGE,
                   crop_size: int = CROP_SIZE, seed: int = 0) -> torch.Tensor:
    """Top-left corners of the patch-FD crops of images start .. start+num-1, int64 [num, crops_per_image, 2] as
    (y, x), uniform over the valid positions. Image i's crops come from a generator seeded by (seed, i) alone, so they
    are the same at any batch size and however many images follow."""
    if crop_size > min(height, width) or crop_size < 1:
        raise ConfigError(f"crop_size {crop_size} must be in [1, {min(height, width)}] for {height}x{width} images")
    if crops_per_image < 1:
        raise ConfigError(f"crops_per_image must be at least 1, got {crops_per_image}")
    out = torch.empty(num, crops_per_image, 2, dtype=torch.int64)
    g = torch.Generator()
    for j in range(num):
        g.manual_seed(mix64(seed, start + j) >> 1)  # a non-negative 63-bit seed
        out[j, :, 0] = torch.randint(0, height - crop_size + 1, (crops_per_image,), generator=g)
        out[j, :, 1] = torch.randint(0, width - crop_size + 1, (crops_per_image,), generator=g)
    return out  # [N,K,2]


def take_crops(images: torch.Tensor, positions: torch.Tensor, crop_size: int = CROP_SIZE) -> torch.Tensor:
    """images [B,3,H,W] and positions [B,K,2] (from `crop_positions`) -> crops [B*K,3,crop,crop], image-major."""
    x = _check_images(images, "take_crops")
    if positions.ndim != 3 or positions.shape[0] != x.shape[0] or positions.shape[2] != 2:
        raise DataError(f"take_crops: positions must be [{x.shape[0]},K,2] for {x.shape[0]} images, "
                        f"got {tuple(positions.shape)}")
    out = [x[i, :, y:y + crop_size, xx:xx + crop_size] for i in range(x.shape[0]) for y, xx in positions[i].tolist()]
    return torch.stack(out)  # [B*K,3,c,c]


# ------------------------------------------------------------------------------------------------------- driver
def _batches(hr_images: torch.Tensor | Iterable, captions: Sequence[str] | None, batch_size: int):
    """(images [B,3,H,W] float in [-1,1], captions [B]) from a tensor (+ captions) or an iterable of batches."""
    if isinstance(hr_images, torch.Tensor):
        x = _check_images(hr_images, "hr_images") if hr_images.dtype != torch.uint8 else hr_images
        if captions is not None and len(captions) != x.shape[0]:
            raise DataError(f"{x.shape[0]} hr_images but {len(captions)} captions")
        for s in range(0, x.shape[0], batch_size):
            b = x[s:s + batch_size]
            b = b.float() / 127.5 - 1 if b.dtype == torch.uint8 else b
            yield b, list(captions[s:s + batch_size]) if captions is not None else [""] * b.shape[0]
        return
    if captions is not None:
        raise ConfigError("captions go with a tensor of hr_images; an iterable of batches carries its own")
    for batch in hr_images:
        images, caps = split_batch(batch)
        yield images, caps if caps is not None else [""] * images.shape[0]


def parse_upscale_metrics(metrics: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"patchfd,psnr"` / a list / None (all) -> the names, checked against `UPSCALE_METRICS`."""
    if metrics is None:
        return UPSCALE_METRICS
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    bad = [m for m in names if m not in UPSCALE_METRICS]
    if bad or not names:
        raise ConfigError(f"unknown upscaler metric(s) {', '.join(bad) or '(none given)'}; "
                          f"choose from: {', '.join(UPSCALE_METRICS)}")
    return tuple(dict.fromkeys(names))


@torch.no_grad()
def evaluate_upscalers(
    methods: Mapping[str, UpscaleFn],
    hr_images: torch.Tensor | Iterable,
    captions: Sequence[str] | None = None,
    *,
    scale: int = 4,
    num: int | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    extractor: FeatureExtractor | None = None,
    metrics: str | Sequence[str] | None = None,
    crops_per_image: int = CROPS_PER_IMAGE,
    crop_size: int = CROP_SIZE,
    seed: int = 0,
    progress: bool = True,
    run_dir: str | Path | None = None,
    step: int | None = None,
    kimg: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Score several upsamplers in one pass over the ground truth (its features are computed once for all).

    Args:
        methods: {label: upscale_fn}; upscale_fn(lr [B,3,H/scale,W/scale] in [-1,1], captions) -> [B,3,H,W].
        hr_images: ground truth: a [N,3,H,W] tensor (float in [-1,1] or uint8) or an iterable of batches (tensors,
            (images, captions) pairs or {"image", "caption"} dicts, as `split_batch` reads them).
        captions: [N] captions for a tensor `hr_images` (default: empty strings).
        scale: H / input side (4: 256 px ground truth, 64 px inputs).
        num: at most this many images (None: all).
        batch_size: images per upscale_fn call.
        device: where the inputs, the upsamplers' outputs and the feature network live (default: cuda if available).
        extractor: feature network of patchfd / fd64 (default: the bundled emoji-net, `EmojiNetFeatures()`).
        metrics: a subset of `UPSCALE_METRICS` (default: all).
        crops_per_image, crop_size, seed: the patch-FD protocol (default 4 crops of 64 px, seed 0).
        progress: show a tqdm bar.
        run_dir: append one record per method and metric to run_dir/metrics.jsonl (`<metric>_<N>`, e.g.
            `patchfd_emojinet_552`, with `method`, `step`, `kimg` and the protocol).
    Returns:
        {label: {"patchfd_<net>", "fd64_<net>", "psnr", "ssim", "lrpsnr": float}} (the metrics asked for).
    """
    names = parse_upscale_metrics(metrics)
    if not methods:
        raise ConfigError("evaluate_upscalers needs at least one upscale_fn")
    bad = [k for k, fn in methods.items() if not callable(fn)]
    if bad:
        raise ConfigError(f"methods {', '.join(bad)} are not callables upscale_fn(lr, captions) -> hr")
    if scale < 1 or int(scale) != scale:
        raise ConfigError(f"scale must be a positive integer, got {scale}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_fd = "patchfd" in names or "fd64" in names
    net = (extractor if extractor is not None else EmojiNetFeatures()).to(dev) if use_fd else None
    net_name = getattr(net, "name", "features")

    def new_stats() -> FeatureStats:
        return FeatureStats(net.dim)

    real = {k: new_stats() for k in ("patchfd", "fd64") if k in names}
    fake = {m: {k: new_stats() for k in real} for m in methods}
    sums = {m: {k: 0.0 for k in ("psnr", "ssim", "lrpsnr") if k in names} for m in methods}
    seconds = {m: 0.0 for m in methods}
    seen = 0
    bar = tqdm(total=num, unit="img", desc="upscaler eval", disable=not progress, leave=False)
    for hr, caps in _batches(hr_images, captions, batch_size):
        if num is not None:
            hr, caps = hr[: num - seen], caps[: num - seen]
        if hr.shape[0] == 0:
            break
        hr = hr.to(dev, torch.float32)  # [B,3,H,W]
        b, _, h, w = hr.shape
        if h % scale or w % scale:
            raise DataError(f"ground truth {h}x{w} is not divisible by scale {scale}")
        lr = downsample_antialiased(hr, (h // scale, w // scale))  # [B,3,h/s,w/s]
        if "patchfd" in real:
            pos = crop_positions(b, h, w, start=seen, crops_per_image=crops_per_image, crop_size=crop_size,
                                 seed=seed)  # [B,K,2]
            real["patchfd"].update(net(take_crops(hr, pos, crop_size)))
        if "fd64" in real:
            real["fd64"].update(net(downsample_antialiased(hr, FD_SIZE)))
        for label, fn in methods.items():
            t0 = time.perf_counter()
            out = fn(lr, list(caps))
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (b, 3, h, w):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise DataError(f"upscaler {label!r}: given lr {tuple(lr.shape)} it returned {got}; expected "
                                f"{(b, 3, h, w)} ({scale}x) in [-1,1]")
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds[label] += time.perf_counter() - t0
            out = out.to(dev, torch.float32).clamp(-1, 1)
            if not torch.isfinite(out).all():
                raise DataError(f"upscaler {label!r} returned NaN or Inf")
            s = sums[label]
            if "psnr" in s:
                s["psnr"] += float(psnr_per_image(out, hr).sum())
            if "ssim" in s:
                s["ssim"] += float(ssim_per_image(out, hr).sum())
            if "lrpsnr" in s:
                s["lrpsnr"] += float(psnr_per_image(downsample_antialiased(out, lr.shape[-2:]), lr).sum())
            if "patchfd" in real:
                fake[label]["patchfd"].update(net(take_crops(out, pos, crop_size)))
            if "fd64" in real:
                fake[label]["fd64"].update(net(downsample_antialiased(out, FD_SIZE)))
        seen += b
        bar.update(b)
        if num is not None and seen >= num:
            break
    bar.close()
    if seen < 2:
        raise DataError(f"the ground truth gave {seen} images; the upscaler metrics need at least 2")

    results: dict[str, dict[str, float]] = {}
    for label in methods:
        r: dict[str, float] = {}
        for k in names:
            if k in real:
                r[f"{k}_{net_name}"] = frechet_distance_stats(fake[label][k], real[k])
            else:
                r[k] = sums[label][k] / seen
        results[label] = r
    if run_dir is not None:
        proto = {"num_images": seen, "scale": scale, "crops_per_image": crops_per_image, "crop_size": crop_size,
                 "crop_seed": seed, "fd_size": FD_SIZE, "step": step, "kimg": kimg, "time": now_iso(),
                 **({"extractor": net_name, "extractor_identity": net.identity} if net is not None else {}),
                 **dict(extra or {})}
        append_metrics(run_dir, [{"metric": f"{k}_{count_tag(seen)}", "value": v, "method": label,
                                  "seconds_upscale": round(seconds[label], 3), **proto}
                                 for label, r in results.items() for k, v in r.items()])
    return results


def evaluate_upscaler(upscale_fn: UpscaleFn, hr_images: torch.Tensor | Iterable,
                      captions: Sequence[str] | None = None, **kwargs: Any) -> dict[str, float]:
    """`evaluate_upscalers` for one method: {"patchfd_emojinet", "fd64_emojinet", "psnr", "ssim", "lrpsnr": float}.

    Args:
        upscale_fn: upscale_fn(lr [B,3,64,64] in [-1,1], captions) -> [B,3,256,256] in [-1,1] (at scale 4).
        hr_images, captions, **kwargs: as `evaluate_upscalers` (scale, num, batch_size, device, extractor, ...).
    """
    label = kwargs.pop("label", "model")
    return evaluate_upscalers({label: upscale_fn}, hr_images, captions, **kwargs)[label]

