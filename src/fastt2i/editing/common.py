"""Shared plumbing of the editing functions: pipeline-or-generator, text triples, per-seed latents."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from fastt2i.errors import ConfigError
from fastt2i.noise import seed_noise

TextTriple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def generator_of(G: Any) -> nn.Module:
    """The GigaGAN generator inside a `GigaGANPipeline`, or G itself."""
    g = getattr(G, "generator", G)
    if not all(hasattr(g, a) for a in ("text_condition", "mapping", "synthesis", "w_avg")):
        raise ConfigError(f"editing needs a GigaGAN generator or pipeline, got {type(G).__name__}")
    return g


def device_of(G: Any) -> torch.device:
    return next(generator_of(G).parameters()).device


def text_triple(G: Any, text: Any) -> TextTriple:
    """Frozen-encoder output (tokens [1,L,D], mask [1,L], pooled [1,P]) for one prompt.

    Args:
        G: a pipeline (needed when `text` is a string) or a generator.
        text: a prompt string, a TextEmbedding, or a (tokens, mask, pooled) triple, with batch 1.
    """
    if isinstance(text, str):
        if not callable(getattr(G, "encode", None)):
            raise ConfigError("a prompt string needs a GigaGANPipeline (with a text encoder); pass embeddings instead")
        e = G.encode([text])
        tokens, mask, pooled = e.tokens, e.mask, e.pooled
    elif isinstance(text, (tuple, list)) and len(text) == 3:
        tokens, mask, pooled = text
    elif all(hasattr(text, a) for a in ("tokens", "mask", "pooled")):
        tokens, mask, pooled = text.tokens, text.mask, text.pooled
    else:
        raise ConfigError(f"text must be a prompt, a TextEmbedding or a (tokens, mask, pooled) triple, "
                          f"got {type(text).__name__}")
    if tokens.ndim != 3 or tokens.shape[0] != 1:
        raise ConfigError(f"editing takes one text at a time (tokens [1,L,D]), got {tuple(tokens.shape)}")
    dev = device_of(G)
    return tokens.to(dev), mask.to(dev), pooled.to(dev)


def latents(G: Any, seeds: Sequence[int]) -> torch.Tensor:
    """z [N,z_dim], row i from seed i (`seed_noise`), on the generator's device."""
    g = generator_of(G)
    return seed_noise(list(seeds), (g.z_dim,), device=device_of(G))
