"""`ServerConfig`: the server's micro-batching, queue and per-request limits, one frozen dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fastt2i.errors import ConfigError


@dataclass(frozen=True)
class ServerConfig:
    """How `fastt2i serve` batches, queues and bounds requests.

    Args:
        batch_window_ms: how long the first request of a batch waits for others with the same settings.
        max_batch: most images (rows) in one forward; 1 turns micro-batching off.
        max_queue: most requests accepted and not yet answered; one more is answered 503 with Retry-After.
        retry_after_s: the Retry-After of a 503.
        max_prompt_chars: longest prompt (characters).
        max_prompts: most prompts in one request.
        max_seeds: most seeds in one request.
        max_images: most images one request may ask for (prompts x seeds, psi values, frames, ...).
        max_frames: most interpolation frames.
        max_steps: most Paella sampler steps.
        max_json_bytes: largest JSON body (bytes).
        max_upload_bytes: largest uploaded image or mask (bytes).
        max_upload_pixels: most pixels (width x height, read from the header before decoding) of an upload.
        text_cache_size: prompts whose text embedding is kept per model.
        frame_cache_size: interpolations whose frames are kept (all models together).
    """

    batch_window_ms: float = 4.0
    max_batch: int = 16
    max_queue: int = 64
    retry_after_s: int = 1
    max_prompt_chars: int = 500
    max_prompts: int = 16
    max_seeds: int = 64
    max_images: int = 64
    max_frames: int = 32
    max_steps: int = 50
    max_json_bytes: int = 256 * 1024
    max_upload_bytes: int = 4 * 1024 * 1024
    max_upload_pixels: int = 2048 * 2048
    text_cache_size: int = 1024
    frame_cache_size: int = 64

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"server setting {f.name} must be a number, got {value!r}")
            low = 0 if f.name in ("batch_window_ms", "retry_after_s", "text_cache_size", "frame_cache_size") else 1
            if not value >= low:
                raise ConfigError(f"server setting {f.name} must be >= {low}, got {value!r}")

    @property
    def batch_window_s(self) -> float:
        return self.batch_window_ms / 1000.0

    @property
    def max_body_bytes(self) -> int:
        """Largest request body: a JSON request, or a multipart form with an image, a mask and parameters."""
        return max(self.max_json_bytes, 2 * self.max_upload_bytes + self.max_json_bytes)
