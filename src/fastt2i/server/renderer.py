"""The GUI-free renderer behind the routes: each operation is a call of a pipeline or a `fastt2i.editing` function.

Every function here runs on the compute thread (`MicroBatcher`) and returns uint8 images [N,H,W,3]. Batchable
operations come as (key, run) pairs: requests with equal keys share one `run(rows)` call, rows being
(prompt, seed) pairs, and seed N gives the same image in any batch (`fastt2i.noise.seed_noise` / per-seed
generators). The server adds no model logic: truncation is the pipelines' text-conditioned truncation, the rest
is `fastt2i.editing`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch

from fastt2i.editing import prompt_interpolation, prompt_mixing, seed_interpolation, style_mixing_grid
from fastt2i.editing import paella as paella_edits
from fastt2i.server.images import uint8
from fastt2i.server.models import ModelEntry

Rows = list[tuple[str, int]]


def sampler_kwargs(steps: int | None, cfg: float | None, temperature: Any, sampler: str | None) -> dict[str, Any]:
    """The Paella sampler arguments that were given (the rest stay the bundle's own)."""
    out: dict[str, Any] = {}
    if steps is not None:
        out["steps"] = steps
    if cfg is not None:
        out["cfg"] = float(cfg)
    if temperature is not None:
        out["temperature"] = tuple(float(t) for t in temperature) if isinstance(temperature, list) else float(temperature)
    if sampler is not None:
        out["mode"] = sampler
    return out


# ---------------------------------------------------------------------------------------------------- batchable
def gan_generate(entry: ModelEntry, psi: float, cutoff: int | None) -> tuple[Hashable, Callable[[Rows], list]]:
    """(key, run) for GAN images: `pipe.generate(prompts, seeds, truncation_psi, truncation_cutoff)` over the rows."""

    def run(rows: Rows) -> list[np.ndarray]:
        images = entry.pipe.generate([p for p, _ in rows], [s for _, s in rows], truncation_psi=float(psi),
                                     truncation_cutoff=cutoff)  # [B,3,H,W]
        return list(uint8(images))

    return (entry.name, "gan", float(psi), cutoff), run


def paella_generate(entry: ModelEntry, sampler: dict[str, Any]) -> tuple[Hashable, Callable[[Rows], list]]:
    """(key, run) for Paella images: `pipe.generate(prompts, seeds, **sampler)` over the rows."""

    def run(rows: Rows) -> list[np.ndarray]:
        images = entry.pipe.generate([p for p, _ in rows], [s for _, s in rows], **sampler)  # [B,3,H,W]
        return list(uint8(images))

    return (entry.name, "paella", tuple(sorted(sampler.items()))), run


# ---------------------------------------------------------------------------------------------------- single jobs
def truncation_strip(entry: ModelEntry, prompt: str, seed: int, psis: Sequence[float],
                     cutoff: int | None) -> np.ndarray:
    """One image per psi (GANs), as `fastt2i edit truncation` makes them. Returns uint8 [P,H,W,3]."""
    images = [entry.pipe.generate([prompt], [seed], truncation_psi=float(psi), truncation_cutoff=cutoff)
              for psi in psis]
    return uint8(torch.cat(images))


def prompt_frames(entry: ModelEntry, prompt_a: str, prompt_b: str, seed: int, frames: int, psi: float,
                  sampler: dict[str, Any]) -> np.ndarray:
    """Frames from prompt_a to prompt_b with the seed fixed: `fastt2i.editing.prompt_interpolation` (GANs) or
    `fastt2i.editing.paella.interpolate` (Paella). Returns uint8 [frames,H,W,3]."""
    if entry.kind == "paella":
        return uint8(paella_edits.interpolate(entry.pipe, prompt_a, prompt_b, num=frames, seed=seed, **sampler))
    return uint8(prompt_interpolation(entry.pipe, prompt_a, prompt_b, seed, steps=frames, truncation_psi=psi))


def seed_frames(entry: ModelEntry, prompt: str, seed_a: int, seed_b: int, frames: int, psi: float) -> np.ndarray:
    """Frames from seed_a to seed_b for one prompt (`fastt2i.editing.seed_interpolation`)."""
    return uint8(seed_interpolation(entry.pipe, prompt, seed_a, seed_b, frames, truncation_psi=psi))


def style_mix(entry: ModelEntry, prompt: str, seed_a: int, seed_b: int, cutoff: int, psi: float) -> np.ndarray:
    """[seed_a's image, seed_b's image, the mix] (coarse styles from seed_a): `fastt2i.editing.style_mixing_grid`
    with one row and one column. Returns uint8 [3,H,W,3]."""
    grid = style_mixing_grid(entry.pipe, prompt, [seed_a], [seed_b], cutoff, truncation_psi=psi)  # [2,2,3,H,W]
    return uint8(torch.stack([grid[1, 0], grid[0, 1], grid[1, 1]]))


def prompt_mix(entry: ModelEntry, parts: Sequence[tuple[str, int, int | None]], seed: int, psi: float) -> np.ndarray:
    """One image whose layer ranges follow different prompts: `fastt2i.editing.prompt_mixing`. uint8 [1,H,W,3]."""
    return uint8(prompt_mixing(entry.pipe, list(parts), seed, truncation_psi=psi))


def variation(entry: ModelEntry, image: torch.Tensor, seeds: Sequence[int], prompt: str | None,
              sampler: dict[str, Any]) -> np.ndarray:
    """Paella variations of an image (`fastt2i.editing.paella.variations`). uint8 [S,H,W,3]."""
    return uint8(paella_edits.variations(entry.pipe, image, list(seeds), prompt=prompt, **sampler))


def inpaint(entry: ModelEntry, image: torch.Tensor, mask: torch.Tensor, prompt: str, seeds: Sequence[int],
            sampler: dict[str, Any]) -> np.ndarray:
    """Paella inpainting of the mask's white region (`fastt2i.editing.paella.inpaint`). uint8 [S,H,W,3]."""
    return uint8(paella_edits.inpaint(entry.pipe, image, mask, prompt, list(seeds), **sampler))


def outpaint(entry: ModelEntry, image: torch.Tensor, prompt: str, seeds: Sequence[int], pad: Sequence[int] | None,
             scale: float | None, sampler: dict[str, Any]) -> np.ndarray:
    """Paella outpainting (`fastt2i.editing.paella.outpaint`). uint8 [S,H',W',3]."""
    return uint8(paella_edits.outpaint(entry.pipe, image, prompt, list(seeds), pad=pad, scale=scale, **sampler))


class FrameCache:
    """Interpolation frames by request (model, kind, prompts, seeds, frames, psi, sampler): a slider over alpha asks
    for the frames once. LRU; used on the event loop only.

    Args:
        size: interpolations kept (0 = none).
    """

    def __init__(self, size: int = 64):
        self.size = int(size)
        self._frames: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0}

    def get(self, key: Hashable) -> np.ndarray | None:
        frames = self._frames.get(key)
        if frames is None:
            self.stats["misses"] += 1
            return None
        self.stats["hits"] += 1
        self._frames.move_to_end(key)
        return frames

    def put(self, key: Hashable, frames: np.ndarray) -> None:
        if not self.size:
            return
        self._frames[key] = frames
        while len(self._frames) > self.size:
            self._frames.popitem(last=False)
