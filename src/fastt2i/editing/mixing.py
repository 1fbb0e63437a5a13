"""Style mixing (coarse styles from one seed, fine from another) and prompt mixing (a prompt per layer range)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from fastt2i.editing.common import generator_of, latents, text_triple
from fastt2i.editing.truncation import truncated_ws
from fastt2i.errors import ConfigError


def synthesize_with_layer_texts(
    G: Any, ws: torch.Tensor, layer_texts: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    """`G.synthesis` where the cross-attention of the layer driven by style k attends to ``layer_texts[k]``.

    Follows `SynthesisNetwork.forward` step by step (constant noise); with the same text at every index it returns
    the same pyramid. A synthesis network without cross-attention stages (StyleGAN-T: text enters through the
    styles only) is simply run on `ws`: the layer texts cannot change it.

    Args:
        G: a GigaGAN or StyleGAN-T generator or pipeline.
        ws: [B,num_ws,w_dim].
        layer_texts: num_ws pairs (t_local [B,L_k,C], t_mask [B,L_k]) from `G.text_condition` (the entries of the
            toRGB styles are not used).
    Returns:
        the image pyramid, finest first.
    """
    g = generator_of(G)
    syn, cfg = g.synthesis, g.config
    if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
        raise ConfigError(f"ws must be [B,{cfg.num_ws},{cfg.w_dim}], got {tuple(ws.shape)}")
    if len(layer_texts) != cfg.num_ws:
        raise ConfigError(f"need one text per style ({cfg.num_ws}), got {len(layer_texts)}")
    if not hasattr(syn, "stages"):
        return g.synthesis(ws, *layer_texts[0], noise_mode="const")
    b = ws.shape[0]
    x = syn.const.to(ws.dtype).unsqueeze(0).expand(b, -1, -1, -1)  # [B,C0,4,4]
    img, pyramid, k = None, [], 0
    first_out = cfg.num_resolutions - cfg.num_outputs
    for i, (layers, torgb) in enumerate(zip(syn.stages, syn.torgb)):
        for layer in layers:
            t_local, t_mask = layer_texts[k]
            x = layer(x, ws[:, k], t_local, t_mask, "const", None)  # [B,C_i,R_i,R_i]
            k += 1
        rgb = torgb(x, ws[:, k])  # [B,3,R_i,R_i]
        k += 1
        img = rgb if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + rgb
        if i >= first_out:
            pyramid.append(img)
    return pyramid[::-1]


@torch.no_grad()
def style_mixing_grid(
    G: Any,
    text: Any,
    row_seeds: Sequence[int],
    col_seeds: Sequence[int],
    cutoff: int,
    truncation_psi: float = 1.0,
) -> torch.Tensor:
    """The StyleGAN style-mixing figure for one prompt: coarse styles from the row seeds, fine from the columns.

    Args:
        G: a GigaGAN pipeline (prompt strings) or generator (embeddings).
        text: the prompt (string, TextEmbedding or (tokens, mask, pooled) with batch 1).
        row_seeds: R seeds giving styles 0..cutoff-1 (coarse: layout, shape).
        col_seeds: C seeds giving styles cutoff..num_ws-1 (fine: colour, texture).
        cutoff: the first style index taken from the column seed (0..num_ws).
        truncation_psi: text-conditioned truncation of every source (GigaGAN sec. 5).
    Returns:
        [1+R, 1+C, 3, H, W] in [-1,1]: [0,0] blank (white), [0,1+j] column source j, [1+i,0] row source i,
        [1+i,1+j] the mix of row i (coarse) and column j (fine).
    """
    g = generator_of(G)
    rows, cols = list(row_seeds), list(col_seeds)
    if not rows or not cols:
        raise ConfigError("style mixing needs at least one row seed and one column seed")
    if not 0 <= cutoff <= g.num_ws:
        raise ConfigError(f"style mixing cutoff must be in 0..{g.num_ws} (the number of styles), got {cutoff}")
    tokens, mask, pooled = text_triple(G, text)
    t_local, t_mask, t_global = g.text_condition(tokens, mask, pooled)  # [1,L,C], [1,L], [1,C]
    seeds = rows + cols
    n = len(seeds)
    ws = truncated_ws(g, latents(G, seeds), t_global.expand(n, -1), truncation_psi)  # [R+C,num_ws,w_dim]
    w_rows, w_cols = ws[: len(rows)], ws[len(rows):]
    mixed = w_cols.unsqueeze(0).repeat(len(rows), 1, 1, 1)  # [R,C,num_ws,w_dim]
    mixed[:, :, :cutoff] = w_rows[:, None, :cutoff]
    all_ws = torch.cat([ws, mixed.flatten(0, 1)])  # [R+C+R*C,num_ws,w_dim]
    m = all_ws.shape[0]
    images = g.synthesis(all_ws, t_local.expand(m, -1, -1), t_mask.expand(m, -1), noise_mode="const")[0]
    images = images.clamp(-1, 1)  # [m,3,H,W]
    r, c = len(rows), len(cols)
    grid = images.new_ones(1 + r, 1 + c, *images.shape[1:])
    grid[1:, 0] = images[:r]
    grid[0, 1:] = images[r: r + c]
    grid[1:, 1:] = images[r + c:].view(r, c, *images.shape[1:])
    return grid


def _layer_ranges(items: Sequence[tuple[Any, int, int | None]], num_ws: int) -> list[int]:
    """Owner index (into items) of every style 0..num_ws-1; each style must be covered exactly once."""
    owner = [-1] * num_ws
    for j, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise ConfigError(f"prompt mixing parts are (text, start, stop) triples, got {item!r}")
        _, start, stop = item
        stop = num_ws if stop is None else stop
        if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop <= num_ws):
            raise ConfigError(f"layer range {start}:{stop} must satisfy 0 <= start < stop <= {num_ws} (styles)")
        for k in range(start, stop):
            if owner[k] != -1:
                raise ConfigError(f"style {k} is in two layer ranges (parts {owner[k]} and {j})")
            owner[k] = j
    missing = [k for k, o in enumerate(owner) if o == -1]
    if missing:
        raise ConfigError(f"styles {missing} are in no layer range: the ranges must cover 0:{num_ws}")
    return owner


@torch.no_grad()
def prompt_mixing(
    G: Any,
    prompts_by_layer_range: Sequence[tuple[Any, int, int | None]],
    seed: int,
    truncation_psi: float = 1.0,
) -> torch.Tensor:
    """One image whose layers follow different prompts: both the style w and the cross-attended text tokens of
    each layer come from the prompt that owns the layer's range (same z for every prompt).

    Args:
        G: a GigaGAN pipeline (prompt strings) or generator (embeddings).
        prompts_by_layer_range: (text, start, stop) parts covering the styles 0..num_ws-1 exactly once; a part owns
            styles start..stop-1 (stop None = to the end); text as in `style_mixing_grid`.
        seed: the latent's seed.
        truncation_psi: text-conditioned truncation of each prompt's styles.
    Returns:
        [1,3,H,W] in [-1,1].
    """
    g = generator_of(G)
    owner = _layer_ranges(prompts_by_layer_range, g.num_ws)
    z = latents(G, [seed])  # [1,z_dim]
    ws_parts, texts = [], []
    for text, _, _ in prompts_by_layer_range:
        t_local, t_mask, t_global = g.text_condition(*text_triple(G, text))
        ws_parts.append(truncated_ws(g, z, t_global, truncation_psi))  # [1,num_ws,w_dim]
        texts.append((t_local, t_mask))
    ws = torch.stack([ws_parts[o][:, k] for k, o in enumerate(owner)], dim=1)  # [1,num_ws,w_dim]
    images = synthesize_with_layer_texts(g, ws, [texts[o] for o in owner])[0]
    return images.clamp(-1, 1)
