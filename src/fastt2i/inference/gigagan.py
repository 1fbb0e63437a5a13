"""`GigaGANPipeline`: frozen text encoder + GigaGAN generator -> images for (prompt, seed) pairs (GigaGAN sec. 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.models import load_pretrained
from fastt2i.models.gigagan.truncation import truncated_ws
from fastt2i.noise import seed_noise
from fastt2i.serialization import read_export_config
from fastt2i.text.base import TextEmbedding, check_prompts
from fastt2i.text.registry import load_encoder

GENERATOR_CLASS = "gigagan-generator"


def _resolve_export(path: str | Path) -> Path:
    """An export directory, or a run directory with `export/` inside."""
    p = Path(path).expanduser()
    if (p / "export" / "config.json").is_file():
        p = p / "export"
    return p


class GigaGANPipeline(nn.Module):
    """Chains the frozen text encoder and a `GigaGANGenerator`: ``pipe.generate(prompts, seeds) -> [B,3,H,W]``.

    Seed i gives ``z = seed_noise([seed_i], (z_dim,))`` and the synthesis runs with constant noise, so a (prompt, seed)
    pair gives the same image at any batch size. Truncation uses the paper's text-conditioned formula (sec. 5, see
    `fastt2i.models.gigagan.truncation`). This is the object `fastt2i eval` and the trainers sample from.

    Args:
        generator: a `GigaGANGenerator`.
        text_encoder: the frozen encoder whose widths match the generator config (`text_dim`, `pooled_width`).
        truncation_samples: z samples averaged for the text-conditioned mean w when truncating.
    """

    def __init__(self, generator: nn.Module, text_encoder: nn.Module, truncation_samples: int = 256):
        super().__init__()
        cfg = getattr(generator, "config", None)
        if cfg is None or not hasattr(generator, "text_condition") or not hasattr(generator, "mapping"):
            raise ConfigError(f"GigaGANPipeline needs a GigaGANGenerator, got {type(generator).__name__}")
        enc_dim, enc_pooled = getattr(text_encoder, "dim", None), getattr(text_encoder, "pooled_dim", None)
        if (enc_dim, enc_pooled) != (cfg.text_dim, cfg.pooled_width):
            raise ConfigError(
                f"text encoder {getattr(text_encoder, 'name', type(text_encoder).__name__)!r} gives tokens {enc_dim}-d "
                f"and pooled {enc_pooled}-d, but the generator expects {cfg.text_dim}-d and {cfg.pooled_width}-d "
                f"(its config names text_encoder={cfg.text_encoder!r})"
            )
        if truncation_samples < 1:
            raise ConfigError(f"truncation_samples must be >= 1, got {truncation_samples}")
        self.generator = generator
        self.text_encoder = text_encoder
        self.truncation_samples = int(truncation_samples)

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: torch.device | str | None = None,
        text_encoder: str | nn.Module | None = None,
        **kw: Any,
    ) -> GigaGANPipeline:
        """Load a gigagan-generator export (or a run dir with `export/`) and the text encoder its config.json names.

        Args:
            path: export directory (model.safetensors + config.json) or run directory.
            device: where to put generator and encoder (default CPU).
            text_encoder: override the recorded encoder: a spec string (e.g. "clip:/models/clip-vit-large-patch14")
                or an encoder object.
            **kw: passed to the constructor (truncation_samples).
        """
        p = _resolve_export(path)
        meta = read_export_config(p)
        if meta["class"] != GENERATOR_CLASS:
            raise ConfigError(f"{p} holds a {meta['class']!r} model, not a {GENERATOR_CLASS!r}")
        generator = load_pretrained(p, device=device)
        if text_encoder is None or isinstance(text_encoder, str):
            spec = text_encoder or meta.get("text_encoder") or generator.config.text_encoder
            text_encoder = load_encoder(spec, device)
        return cls(generator, text_encoder.to(device or "cpu"), **kw).eval()

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def resolution(self) -> int:
        return int(self.generator.config.resolution)

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Frozen encoder output for B prompts: TextEmbedding(tokens [B,L,D], mask [B,L], pooled [B,P]) on `device`.

        Args:
            prompts: B strings.
        """
        prompts = check_prompts(prompts)
        with torch.no_grad():
            return self.text_encoder.encode(prompts).to(self.device)

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """z [B,z_dim] with row i from seed i (`seed_noise`), on `device`."""
        return seed_noise(list(seeds), (self.generator.z_dim,), device=self.device)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Images [B,3,H,W] in [-1,1] (the finest pyramid level) for prompt i and seed i.

        Args:
            prompts: B prompts, or one prompt used for every seed.
            seeds: B non-negative integer seeds.
            truncation_psi: 1 = no truncation, 0 = the text-conditioned mean image (GigaGAN sec. 5).
            truncation_cutoff: truncate only the first (coarsest) `cutoff` styles (None = all).
        """
        prompts, seeds = check_prompts(prompts), list(seeds)
        if len(prompts) == 1 and len(seeds) > 1:
            prompts = prompts * len(seeds)
        if len(prompts) != len(seeds):
            raise ConfigError(f"got {len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt")
        g = self.generator
        text = self.encode(prompts)
        z = self.latents(seeds)  # [B,z_dim]
        t_local, t_mask, t_global = g.text_condition(text.tokens, text.mask, text.pooled)
        ws = truncated_ws(g, z, t_global, truncation_psi, truncation_cutoff, n=self.truncation_samples)
        images = g.synthesis(ws, t_local, t_mask, noise_mode="const")[0]  # [B,3,H,W], finest level
        return images.clamp(-1, 1)

    def forward(self, prompts: Sequence[str], seeds: Sequence[int], truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        """Alias of `generate`."""
        return self.generate(prompts, seeds, truncation_psi, truncation_cutoff)
