"""Request bodies of the HTTP API (pydantic, strict types, unknown fields refused, NaN and infinity refused).

The static bounds here only keep parsing cheap; the configurable limits (`ServerConfig`) are checked by the routes.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from fastt2i.noise import MAX_SEED

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Psi = Annotated[float, Field(ge=-2.0, le=2.0, description="truncation psi: 1 = none, 0 = the prompt's mean image")]
Temperature = Union[Annotated[float, Field(ge=0, le=10)],
                    Annotated[list[Annotated[float, Field(ge=0, le=10)]], Field(min_length=2, max_length=2)]]
Prompt = Annotated[str, Field(description="a prompt (the server's limit on characters applies)")]
ImageFormat = Literal["png", "json"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class PaellaSampler(Strict):
    """Paella sampler settings; each one left out is the bundle's own (its card's), else the paper's."""

    steps: int | None = Field(None, ge=1, description="sampler steps (the server's max_steps applies)")
    cfg: float | None = Field(None, ge=0, le=50, description="classifier-free guidance weight (1 = off)")
    temperature: Temperature | None = Field(None, description="T, or [T0, T1] linear over the steps")
    sampler: Literal["renoise", "confidence"] | None = None


class GenerateRequest(PaellaSampler):
    """Images for every (prompt, seed) pair: PNG (one image, or a grid with a row per prompt) or JSON."""

    model: str | None = Field(None, description="a loaded model's name (GET /v1/models); default: the library's "
                              "default model (as in the CLI) when loaded, else the first that can do the operation")
    prompts: list[Prompt] = Field(..., min_length=1, max_length=1024)
    seeds: list[Seed] = Field([0], min_length=1, max_length=4096)
    truncation: Psi = 1.0
    truncation_cutoff: int | None = Field(None, ge=0, description="truncate only the first N styles (GANs)")
    format: ImageFormat = "png"


class TruncateRequest(Strict):
    """One prompt and seed at several truncation strengths (GANs): a strip, or JSON."""

    model: str | None = None
    prompt: Prompt
    seed: Seed = 0
    psi: list[Psi] = Field([1.0, 0.7, 0.4, 0.0], min_length=1, max_length=1024)
    cutoff: int | None = Field(None, ge=0)
    format: ImageFormat = "png"


class InterpolateRequest(PaellaSampler):
    """Frames between two prompts with a seed held fixed (GANs and Paella), or between two seeds for one prompt.

    With `alpha` one frame is returned (the frame nearest alpha of `frames`; the frames are computed once and cached,
    so moving a slider costs nothing after the first move); without it every frame (a GIF, a PNG strip or JSON).
    """

    model: str | None = None
    kind: Literal["prompt", "seed"] = "prompt"
    prompt_a: Prompt | None = Field(None, description="kind=prompt: the first prompt")
    prompt_b: Prompt | None = Field(None, description="kind=prompt: the last prompt")
    prompt: Prompt | None = Field(None, description="kind=seed: the prompt")
    seed: Seed = Field(0, description="kind=prompt: the seed of every frame; kind=seed: the first seed")
    seed_b: Seed | None = Field(None, description="kind=seed: the last seed")
    frames: int = Field(16, ge=2)
    alpha: float | None = Field(None, ge=0, le=1)
    truncation: Psi = 1.0
    format: Literal["png", "gif", "json"] = "png"
    fps: float = Field(10.0, gt=0, le=60)
    boomerang: bool = False


class MixPart(Strict):
    prompt: Prompt
    start: int = Field(..., ge=0)
    stop: int | None = Field(None, ge=1, description="exclusive; null = to the last style")


class MixRequest(Strict):
    """Style mixing (coarse styles 0..cutoff-1 from seed_a, the rest from seed_b) or prompt mixing (a prompt per
    layer range) on a GAN."""

    model: str | None = None
    kind: Literal["style", "prompt"] = "style"
    prompt: Prompt | None = Field(None, description="kind=style: the prompt")
    seed_a: Seed = Field(0, description="kind=style: the coarse styles' seed")
    seed_b: Seed = Field(1, description="kind=style: the fine styles' seed")
    cutoff: int | None = Field(None, ge=0, description="kind=style: first style from seed_b (default num_ws/2)")
    parts: list[MixPart] | None = Field(None, min_length=1, max_length=64,
                                        description="kind=prompt: ranges covering every style once")
    seed: Seed = Field(0, description="kind=prompt: the seed")
    truncation: Psi = 1.0
    grid: bool = Field(False, description="kind=style: also return both sources ([a, b, mix])")
    format: ImageFormat = "png"


class PaellaEditParams(PaellaSampler):
    """The `params` form field (JSON) of the Paella upload edits."""

    model: str | None = None
    prompt: Prompt | None = Field(None, description="variation: optional; inpaint / outpaint: required")
    seeds: list[Seed] = Field([0], min_length=1, max_length=4096)
    pad: list[Annotated[int, Field(ge=0, le=4096)]] | None = Field(None, min_length=4, max_length=4,
                                                                  description="outpaint: left, top, right, bottom px")
    scale: float | None = Field(None, gt=0, lt=1, description="outpaint: shrink into a same-size canvas")
    format: ImageFormat = "png"


class UpscaleParams(Strict):
    """The `params` form field (JSON) of `/v1/upscale` (present only when an upsampler is loaded)."""

    model: str | None = Field(None, description="an upsampler's name (GET /v1/models: upsamplers); default: the first")
    prompt: Prompt = Field(..., description="the text the upsampler is conditioned on")
    seed: Seed = 0
    truncation: Psi = 1.0
