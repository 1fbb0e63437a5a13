"""The `/v1/upscale` extension point: the route exists only when the server was given an upsampler.

`create_app(..., upsamplers={name: upsampler})` is all the server needs; `fastt2i serve` does not load one yet
(none is bundled). An upsampler is any object with the interface of the text-conditioned GigaGAN upsampler
pipeline (sec. 3.6):

    input_resolution: int                                # what uploads are resized to
    resolution: int                                      # its output size
    upscale(images [B,3,h,w] in [-1,1], prompts, seeds, truncation_psi) -> [B,3,R,R] in [-1,1]
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class Upsampler(Protocol):
    """What `/v1/upscale` calls."""

    input_resolution: int
    resolution: int

    def upscale(self, images: torch.Tensor, prompts: Sequence[str], seeds: Sequence[int] | None = None,
                truncation_psi: float = 1.0) -> torch.Tensor:
        """[B,3,h,w] in [-1,1] -> [B,3,R,R] in [-1,1] under the prompts."""


def check_upsamplers(upsamplers: dict[str, Any] | None) -> dict[str, Upsampler]:
    """The upsamplers by name, each checked to have `input_resolution`, `resolution` and `upscale`."""
    out = {}
    for name, up in (upsamplers or {}).items():
        if not isinstance(up, Upsampler):
            raise TypeError(f"upsampler {name!r} ({type(up).__name__}) needs input_resolution, resolution and "
                            "upscale(images, prompts, seeds, truncation_psi)")
        out[name] = up
    return out


def run_upscale(up: Upsampler, image: torch.Tensor, prompt: str, seed: int, psi: float) -> torch.Tensor:
    """On the compute thread: the upsampler over one image [1,3,h,w] -> [1,3,R,R] in [-1,1], without autograd."""
    with torch.inference_mode():
        return up.upscale(image, [prompt], [seed], truncation_psi=psi).float().clamp(-1, 1)
