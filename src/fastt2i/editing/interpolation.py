"""Prompt interpolation (same z; text and w interpolated), seed interpolation (same text; w interpolated), and writing
frames as a GIF or a PNG strip."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

import torch
import torch.nn.functional as F

from fastt2i.editing.common import generator_of, latents, text_triple
from fastt2i.editing.truncation import truncated_ws
from fastt2i.errors import ConfigError
from fastt2i.utils.images import save_grid, to_uint8


def _pad_to(x: torch.Tensor, length: int) -> torch.Tensor:
    """Right-pad dim 1 of tokens [1,L,D] or mask [1,L] to `length` with zeros / False."""
    pad = length - x.shape[1]
    if pad == 0:
        return x
    return F.pad(x, (0, 0, 0, pad)) if x.ndim == 3 else F.pad(x, (0, pad), value=False)


@torch.no_grad()
def prompt_interpolation(G: Any, a: Any, b: Any, seed: int, steps: int = 16,
                         truncation_psi: float = 1.0) -> torch.Tensor:
    """Frames morphing prompt a into prompt b with the latent z of `seed` held fixed.

    Frame alpha in linspace(0, 1, steps) uses the frozen-encoder tokens and pooled vector lerped between a and b
    (position by position, both right-padded to the longer text; the real-token mask is a's at alpha=0, b's at
    alpha=1 and their union in between) for the cross-attention text, and w = lerp(w_a, w_b, alpha) with
    w_a = mapping(z, t_global(a)) (truncated if psi != 1). The end frames are the plain generations of a and b.

    Args:
        G: a GigaGAN pipeline (prompt strings) or generator (embeddings).
        a: first prompt (string, TextEmbedding or (tokens, mask, pooled) with batch 1).
        b: last prompt.
        seed: the latent's seed.
        steps: frames (>= 2).
        truncation_psi: text-conditioned truncation (GigaGAN sec. 5) of w_a and w_b.
    Returns:
        [steps,3,H,W] in [-1,1].
    """
    if not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"interpolation needs steps >= 2, got {steps!r}")
    g = generator_of(G)
    tok_a, mask_a, pool_a = text_triple(G, a)
    tok_b, mask_b, pool_b = text_triple(G, b)
    z = latents(G, [seed])  # [1,z_dim]
    w_a = truncated_ws(g, z, g.text_condition(tok_a, mask_a, pool_a)[2], truncation_psi)  # [1,num_ws,w_dim]
    w_b = truncated_ws(g, z, g.text_condition(tok_b, mask_b, pool_b)[2], truncation_psi)
    length = max(tok_a.shape[1], tok_b.shape[1])
    tok_a, tok_b = _pad_to(tok_a, length), _pad_to(tok_b, length)  # [1,L,D]
    mask_a, mask_b = _pad_to(mask_a, length), _pad_to(mask_b, length)  # [1,L]
    frames = []
    for alpha in torch.linspace(0, 1, steps).tolist():
        if alpha == 0.0:
            mask = mask_a
        elif alpha == 1.0:
            mask = mask_b
        else:
            mask = mask_a | mask_b
        tokens = torch.lerp(tok_a, tok_b, alpha) * mask.unsqueeze(-1)  # [1,L,D], zero at padding
        pooled = torch.lerp(pool_a, pool_b, alpha)  # [1,P]
        t_local, t_mask, _ = g.text_condition(tokens, mask, pooled)
        ws = torch.lerp(w_a, w_b, alpha)  # [1,num_ws,w_dim]
        frames.append(g.synthesis(ws, t_local, t_mask, noise_mode="const")[0])
    return torch.cat(frames).clamp(-1, 1)  # [steps,3,H,W]


@torch.no_grad()
def seed_interpolation(G: Any, text: Any, seed_a: int, seed_b: int, steps: int = 16,
                       truncation_psi: float = 1.0) -> torch.Tensor:
    """Frames morphing the image of seed_a into that of seed_b under one prompt: w = lerp(w_a, w_b, alpha).

    w_a = mapping(z(seed_a), t_global) (truncated towards the text-conditioned mean when psi != 1), likewise w_b;
    the frames interpolate linearly in W, the space where StyleGAN's perceptual path length is measured
    (Karras et al. 2019, sec. 4.1), with alpha in linspace(0, 1, steps): the end frames are the plain generations.

    Args:
        G: a GAN pipeline (prompt strings) or generator (embeddings).
        text: the prompt (string, TextEmbedding or (tokens, mask, pooled) with batch 1).
        seed_a: first seed.
        seed_b: last seed.
        steps: frames (>= 2).
        truncation_psi: text-conditioned truncation (GigaGAN sec. 5) of w_a and w_b.
    Returns:
        [steps,3,H,W] in [-1,1].
    """
    if not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"interpolation needs steps >= 2, got {steps!r}")
    g = generator_of(G)
    tokens, mask, pooled = text_triple(G, text)
    t_local, t_mask, t_global = g.text_condition(tokens, mask, pooled)
    z = latents(G, [seed_a, seed_b])  # [2,z_dim]
    ws = truncated_ws(g, z, t_global.expand(2, -1), truncation_psi)  # [2,num_ws,w_dim]
    alphas = torch.linspace(0, 1, steps, device=ws.device)[:, None, None]  # [steps,1,1]
    frames = torch.lerp(ws[:1], ws[1:], alphas)  # [steps,num_ws,w_dim]
    out = g.synthesis(frames, t_local.expand(steps, -1, -1), t_mask.expand(steps, -1), noise_mode="const")[0]
    return out.clamp(-1, 1)  # [steps,3,H,W]


def gif_bytes(frames: torch.Tensor | np.ndarray, fps: float = 10.0, boomerang: bool = False) -> bytes:
    """Frames [N,3,H,W] in [-1,1] (or uint8 [N,H,W,3]) as the bytes of a looping GIF (Pillow).

    Args:
        frames: the frames.
        fps: frames per second.
        boomerang: play forward then backward.
    """
    from PIL import Image

    if not fps > 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    arr = to_uint8(frames)  # [N,H,W,3]
    images = [Image.fromarray(a) for a in arr]
    if boomerang and len(images) > 2:
        images = images + images[-2:0:-1]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return buf.getvalue()


def save_gif(frames: torch.Tensor, path: str | Path, fps: float = 10.0, boomerang: bool = False) -> Path:
    """Write frames [N,3,H,W] in [-1,1] as a looping GIF (`gif_bytes`); parent directories are created.

    Args:
        frames: the frames.
        path: output .gif.
        fps: frames per second.
        boomerang: play forward then backward.
    """
    data = gif_bytes(frames, fps, boomerang)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def save_frame_strip(frames: torch.Tensor, path: str | Path, pad: int = 2) -> Path:
    """Write frames [N,3,H,W] in [-1,1] side by side as one PNG row."""
    return save_grid(frames, path, nrow=frames.shape[0], pad=pad)
