"""Text-conditioned truncation (GigaGAN sec. 5): the conditional mean w and w_trunc = lerp(w_c, lerp(w_avg, w, psi), psi)."""

from __future__ import annotations

import math

import torch
from torch import nn

from fastt2i.errors import ConfigError


@torch.no_grad()
def conditional_w_mean(G: nn.Module, t_global: torch.Tensor, n: int = 256, seed: int = 0,
                       chunk: int = 8192) -> torch.Tensor:
    """The text-conditioned mean style w_mean_c: mapping(z, t_global) averaged over `n` latents z.

    The same `n` latents (drawn from `seed`) are used for every row, so a prompt's mean does not depend on the
    other prompts in the batch. Always computed in fp32 (autocast off), like the rest of the truncation maths.

    Args:
        G: a GigaGAN generator (uses `G.mapping` and `G.z_dim`).
        t_global: [B,text_width] global text vectors from `G.text_condition`.
        n: latents averaged per prompt.
        seed: seed of those latents.
        chunk: rows (prompts x latents) per mapping call, bounding memory.
    Returns:
        [B,w_dim].
    """
    if n < 1:
        raise ConfigError(f"conditional_w_mean needs n >= 1 latents, got {n}")
    if t_global.ndim != 2:
        raise ConfigError(f"t_global must be [B,C], got {tuple(t_global.shape)}")
    t_global = t_global.float()
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(t_global)  # [n,z_dim]
    per = max(1, chunk // n)
    means = []
    with torch.autocast(t_global.device.type, enabled=False):
        for tg in t_global.split(per):  # [b,C]
            b = tg.shape[0]
            w = G.mapping(z.repeat(b, 1), tg.repeat_interleave(n, dim=0))[:, 0]  # [b*n,w_dim]
            means.append(w.view(b, n, -1).mean(dim=1))  # [b,w_dim]
    return torch.cat(means)  # [B,w_dim]


def truncate(ws: torch.Tensor, w_mean_c: torch.Tensor, w_mean: torch.Tensor, psi: float,
             cutoff: int | None = None) -> torch.Tensor:
    """GigaGAN sec. 5: w_trunc = lerp(w_mean_c, lerp(w_mean, w, psi), psi); psi=0 gives w_mean_c, psi=1 gives w.

    Args:
        ws: [B,num_ws,w_dim] styles.
        w_mean_c: [B,w_dim] (or [w_dim]) text-conditioned mean (`conditional_w_mean`).
        w_mean: [w_dim] unconditional mean (the generator's tracked `w_avg`).
        psi: truncation strength (values outside [0,1] extrapolate).
        cutoff: truncate only the first `cutoff` styles (the coarse layers); None = all.
    Returns:
        a new [B,num_ws,w_dim] tensor.
    """
    if ws.ndim != 3:
        raise ConfigError(f"ws must be [B,num_ws,w_dim], got {tuple(ws.shape)}")
    b, num_ws, w_dim = ws.shape
    if not isinstance(psi, (int, float)) or not math.isfinite(psi):
        raise ConfigError(f"truncation psi must be a finite number, got {psi!r}")
    if w_mean_c.shape not in ((b, w_dim), (w_dim,)) or w_mean.shape != (w_dim,):
        raise ConfigError(f"w_mean_c must be [B={b},{w_dim}] or [{w_dim}] and w_mean [{w_dim}], got "
                          f"{tuple(w_mean_c.shape)} and {tuple(w_mean.shape)}")
    cutoff = num_ws if cutoff is None else cutoff
    if not 0 <= cutoff <= num_ws:
        raise ConfigError(f"truncation cutoff must be in 0..{num_ws}, got {cutoff}")
    out = ws.clone()
    if psi == 1:
        return out
    w_c = w_mean_c.to(ws.dtype).expand(b, w_dim).unsqueeze(1)  # [B,1,w_dim]
    w_u = w_mean.to(ws.dtype).view(1, 1, w_dim)  # [1,1,w_dim]
    inner = torch.lerp(w_u.expand_as(ws[:, :cutoff]), ws[:, :cutoff], float(psi))  # [B,cutoff,w_dim]
    out[:, :cutoff] = torch.lerp(w_c.expand_as(inner), inner, float(psi))  # GigaGAN sec. 5
    return out


@torch.no_grad()
def truncated_ws(G: nn.Module, z: torch.Tensor, t_global: torch.Tensor, psi: float = 1.0,
                 cutoff: int | None = None, n: int = 256, seed: int = 0,
                 w_mean_c: torch.Tensor | None = None) -> torch.Tensor:
    """ws [B,num_ws,w_dim] = mapping(z, t_global), truncated towards the text-conditioned mean when psi != 1.

    Args:
        G: a GigaGAN generator.
        z: [B,z_dim] latents.
        t_global: [B,text_width] from `G.text_condition`.
        psi: truncation strength (1 = none).
        cutoff: truncate only the first `cutoff` styles.
        n: latents for `conditional_w_mean`.
        seed: seed of those latents.
        w_mean_c: [B,w_dim] the conditional means when already known (e.g. cached per prompt); else computed.
    """
    with torch.autocast(z.device.type, enabled=False):  # fp32 truncation maths under any autocast
        ws = G.mapping(z.float(), t_global.float())  # [B,num_ws,w_dim]
        if psi == 1:
            return ws
        if w_mean_c is None:
            w_mean_c = conditional_w_mean(G, t_global, n, seed)  # [B,w_dim]
        return truncate(ws, w_mean_c, G.w_avg.float(), psi, cutoff)
