"""`GigaGANPipeline`: frozen text encoder + GigaGAN generator -> images for (prompt, seed) pairs (GigaGAN sec. 5)."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.models import load_pretrained
from fastt2i.models.gigagan.truncation import conditional_w_mean, truncated_ws
from fastt2i.noise import seed_noise
from fastt2i.serialization import read_export_config
from fastt2i.text.base import TextEmbedding, check_prompts
from fastt2i.text.registry import load_encoder

GENERATOR_CLASS = "gigagan-generator"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """"fp32" / "bf16" / "fp16" (or the torch dtype, or None = fp32) -> the torch dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


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
    `fastt2i.models.gigagan.truncation`); each prompt's conditional mean w is computed once and kept in a bounded
    LRU cache (it does not depend on psi; it is recomputed when the generator's weights change). This is the object
    `fastt2i eval` and the trainers sample from.

    Precision: with ``dtype="bf16"`` (or "fp16") the synthesis network runs under `torch.autocast` on the
    generator's device (on CPU, oneDNN's AMX/AVX-512 bf16 kernels); the weights stay fp32, and the text path, the
    mapping, w_avg, the truncation maths, the kernel-selection softmax and the demodulation coefficients stay fp32;
    images are returned as fp32. Typical difference to fp32: ~1e-2 mean absolute on [-1,1] images.

    Args:
        generator: a `GigaGANGenerator`.
        text_encoder: the frozen encoder whose widths match the generator config (`text_dim`, `pooled_width`).
        truncation_samples: z samples averaged for the text-conditioned mean w when truncating.
        dtype: compute dtype of the synthesis: "fp32" (default), "bf16" or "fp16" (or the torch dtype).
        w_mean_cache_size: prompts whose conditional mean w is cached (0 = no cache).
    """

    generator_class = GENERATOR_CLASS  # the export class `from_pretrained` accepts (a subclass may override it)

    def __init__(self, generator: nn.Module, text_encoder: nn.Module, truncation_samples: int = 256,
                 dtype: str | torch.dtype | None = None, w_mean_cache_size: int = 1024):
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
        if w_mean_cache_size < 0:
            raise ConfigError(f"w_mean_cache_size must be >= 0, got {w_mean_cache_size}")
        self.generator = generator
        self.text_encoder = text_encoder
        self.truncation_samples = int(truncation_samples)
        self.dtype = dtype
        self.w_mean_cache_size = int(w_mean_cache_size)
        self._w_means: OrderedDict[str, torch.Tensor] = OrderedDict()  # prompt -> [w_dim] fp32 (LRU order)
        self._w_means_stamp: tuple | None = None  # the weights the cached means belong to

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: torch.device | str | None = None,
        text_encoder: str | nn.Module | None = None,
        dtype: str | torch.dtype | None = None,
        **kw: Any,
    ) -> GigaGANPipeline:
        """Load a gigagan-generator export (or a run dir with `export/`) and the text encoder its config.json names.

        Args:
            path: export directory (model.safetensors + config.json) or run directory.
            device: where to put generator and encoder (default CPU).
            text_encoder: override the recorded encoder: a spec string (e.g. "clip:/models/clip-vit-large-patch14")
                or an encoder object.
            dtype: compute dtype of the synthesis ("fp32", "bf16", "fp16"; weights stay fp32).
            **kw: passed to the constructor (truncation_samples, w_mean_cache_size).
        """
        p = _resolve_export(path)
        meta = read_export_config(p)
        if meta["class"] != cls.generator_class:
            raise ConfigError(f"{p} holds a {meta['class']!r} model, not a {cls.generator_class!r}")
        dtype = parse_dtype(dtype)  # a bad value fails before anything is loaded
        generator = load_pretrained(p, device=device)
        if text_encoder is None or isinstance(text_encoder, str):
            spec = text_encoder or meta.get("text_encoder") or generator.config.text_encoder
            text_encoder = load_encoder(spec, device)
        return cls(generator, text_encoder.to(device or "cpu"), dtype=dtype, **kw).eval()

    # ------------------------------------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the synthesis network (torch.float32 = no autocast); settable with "bf16" etc."""
        return self._dtype

    @dtype.setter
    def dtype(self, value: str | torch.dtype | None) -> None:
        self._dtype = parse_dtype(value)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._dtype)

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

    def _weights_stamp(self) -> tuple:
        """Changes whenever a weight the conditional mean w depends on (text path T, mapping M) is modified."""
        g = self.generator
        params = [*g.text.parameters(), *g.mapping.parameters()] if hasattr(g, "text") else list(g.parameters())
        return (id(self.text_encoder), self.truncation_samples,
                tuple((p.data_ptr(), p._version) for p in params))

    def conditional_means(self, prompts: Sequence[str], t_global: torch.Tensor) -> torch.Tensor:
        """The text-conditioned mean w [B,w_dim] fp32 of each prompt (GigaGAN sec. 5), through the LRU cache.

        Args:
            prompts: B prompts (repeats are computed once).
            t_global: [B,text_width] their global text vectors (from `text_condition`).
        """
        stamp = self._weights_stamp()
        if stamp != self._w_means_stamp:  # new weights (a training step, a load): every cached mean is stale
            self._w_means.clear()
            self._w_means_stamp = stamp
        missing = {p: i for i, p in reversed(list(enumerate(prompts))) if p not in self._w_means}  # first row each
        if missing:
            rows = list(missing.values())
            means = conditional_w_mean(self.generator, t_global[rows].float(), n=self.truncation_samples)  # [M,w_dim]
            self._w_means.update(zip(missing, means))
        out = torch.stack([self._w_means[p] for p in prompts])  # [B,w_dim]
        for p in dict.fromkeys(prompts):
            self._w_means.move_to_end(p)
        while len(self._w_means) > self.w_mean_cache_size:
            self._w_means.popitem(last=False)  # least recently used
        return out

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Images [B,3,H,W] fp32 in [-1,1] (the finest pyramid level) for prompt i and seed i.

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
        with torch.inference_mode():
            text = self.encode(prompts)
            z = self.latents(seeds)  # [B,z_dim]
            t_local, t_mask, t_global = g.text_condition(text.tokens, text.mask, text.pooled)  # fp32
            w_mean_c = None  # [B,w_dim] from the per-prompt cache, or computed by truncated_ws
            if truncation_psi != 1 and self.w_mean_cache_size:
                w_mean_c = self.conditional_means(prompts, t_global)
            ws = truncated_ws(g, z, t_global, truncation_psi, truncation_cutoff, n=self.truncation_samples,
                              w_mean_c=w_mean_c)  # [B,num_ws,w_dim] fp32 (GigaGAN sec. 5)
            with self._autocast():
                images = g.synthesis(ws, t_local, t_mask, noise_mode="const")[0]  # [B,3,H,W], finest level
        with torch.no_grad():  # outside inference mode: an ordinary tensor that callers may modify in place
            return images.float().clamp(-1, 1)

    def forward(self, prompts: Sequence[str], seeds: Sequence[int], truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None) -> torch.Tensor:
        """Alias of `generate`."""
        return self.generate(prompts, seeds, truncation_psi, truncation_cutoff)
