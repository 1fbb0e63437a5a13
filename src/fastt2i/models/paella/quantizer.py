"""Vector quantisation (VQ-VAE, van den Oord et al. 2017): nearest-code lookup, straight-through gradients, dead-code restarts.

A clean implementation of our own. Given encoder outputs z [B,C,h,w] and a codebook e [K,C]:

    index  = argmin_k ||z - e_k||^2                       (per position)
    z_q    = e[index]
    loss   = ||sg[z] - z_q||^2 + beta * ||z - sg[z_q]||^2  (codebook + commitment, means over all elements)
    output = z + sg[z_q - z]                              (straight-through: the decoder's gradient reaches the encoder)

Dead-code restarts (as in Jukebox / "Straightening out the straight-through estimator"): in training mode every code
counts the forward passes since it was last chosen; a code unused for `restart_after` passes is reset to a randomly
picked encoder output of the current batch (the most recent ones), so the codebook keeps tracking the encoder. The
pick uses the global torch RNG (deterministic under `torch.manual_seed`); under torch.distributed the usage counts are
summed over ranks and rank 0's picks are broadcast, so every rank keeps the same codebook.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i.errors import ConfigError


class QuantizerOutput(NamedTuple):
    """What `VectorQuantizer.forward` returns.

    Args:
        quantized: [B,C,h,w] code vectors with straight-through gradients to the input.
        indices: [B,h,w] long code indices.
        loss: scalar codebook + beta * commitment loss.
        perplexity: scalar exp(entropy) of the batch's code histogram (K when all codes are used equally).
        usage: scalar fraction of the K codes used at least once in the batch.
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


def code_histogram(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Counts [K] (float) of each code in `indices` (any shape)."""
    return torch.bincount(indices.reshape(-1), minlength=codebook_size).float()


def perplexity_and_usage(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(perplexity, fraction of codes used) of a code histogram [K]."""
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return entropy.exp(), (counts > 0).float().mean()


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook with straight-through gradients and dead-code restarts (see module docstring).

    Args:
        codebook_size: number of codes K.
        dim: code width C (the encoder's latent channels).
        beta: commitment weight.
        restart_dead: reset codes unused for `restart_after` training forwards to recent encoder outputs.
        restart_after: forwards without use before a code counts as dead.
        init_scale: codes start as N(0, init_scale^2) (the encoder's latent is batch-normalised to unit variance).
    """

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25, restart_dead: bool = True,
                 restart_after: int = 100, init_scale: float = 1.0):
        super().__init__()
        if codebook_size < 2 or dim < 1:
            raise ConfigError(f"VectorQuantizer needs codebook_size >= 2 and dim >= 1, got {codebook_size}, {dim}")
        if beta < 0 or restart_after < 1:
            raise ConfigError(f"VectorQuantizer needs beta >= 0 and restart_after >= 1, got {beta}, {restart_after}")
        self.codebook_size = codebook_size
        self.dim = dim
        self.beta = beta
        self.restart_dead = restart_dead
        self.restart_after = restart_after
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim) * init_scale)  # [K,C]
        # forwards since each code was last used (training mode only); saved so that a resumed run restarts alike
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.last_restarts = 0  # codes reset by the latest training forward (for logging)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index [N] of the nearest code of each row of flat [N,C] (squared Euclidean distance, always in fp32).

        ``|f|^2`` is the same for every code of a row, so the nearest code maximises ``2 f.e - |e|^2``: one matmul of
        the rows augmented with a 1 against the codes augmented with ``-|e|^2`` (no distance matrix assembled from
        three terms), then a row max (`max(dim).indices`: the first maximum, like argmin's first minimum, and ~2x
        faster than argmax on CPU). Rows go in chunks of at most 2^21 scores (8 MB), which keeps the score matrix in
        cache and out of fresh page-faulting allocations. Autocast is off: bf16 distances would pick wrong codes.
        """
        with torch.autocast(flat.device.type, enabled=False):
            e = self.codebook.detach().float()  # [K,C]
            f = flat.detach().float()  # [N,C]
            codes = torch.cat([2 * e, -e.pow(2).sum(1, keepdim=True)], dim=1)  # [K,C+1]
            rows = torch.cat([f, f.new_ones(f.shape[0], 1)], dim=1)  # [N,C+1]
            if f.shape[0] == 0:
                return f.new_zeros(0, dtype=torch.long)
            chunk = max(1, (1 << 21) // e.shape[0])
            buf = torch.empty(min(chunk, f.shape[0]), e.shape[0], device=f.device)  # one chunk's scores, reused
            return torch.cat([torch.mm(r, codes.t(), out=buf[:r.shape[0]]).max(dim=1).indices
                              for r in rows.split(chunk)])  # [N]

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of `indices` [B,h,w] -> [B,C,h,w]."""
        if indices.dtype not in (torch.long, torch.int32, torch.int64):
            raise ConfigError(f"code indices must be integers, got {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ConfigError(f"code indices must lie in [0, {self.codebook_size}), got "
                              f"[{int(indices.min())}, {int(indices.max())}]")
        return F.embedding(indices.long(), self.codebook).permute(0, 3, 1, 2)  # [B,C,h,w] (channels-last strides)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise encoder outputs z [B,C,h,w]; restarts dead codes when training (see module docstring)."""
        if z.ndim != 4 or z.shape[1] != self.dim:
            raise ConfigError(f"VectorQuantizer expects [B,{self.dim},h,w], got {tuple(z.shape)}")
        b, c, h, w = z.shape
        with torch.autocast(z.device.type, enabled=False):  # distances, losses and codebook updates in fp32
            z = z.float()
            flat = z.permute(0, 2, 3, 1).reshape(-1, c)  # [N,C], N = B*h*w (a view when z is channels-last)
            with torch.no_grad():
                idx = self.nearest(flat)  # [N]
                counts = code_histogram(idx, self.codebook_size)  # [K]
            zq = F.embedding(idx, self.codebook.float()).view(b, h, w, c).permute(0, 3, 1, 2)  # [B,C,h,w]
            codebook_loss = F.mse_loss(zq, z.detach())
            commitment = F.mse_loss(z, zq.detach())
            loss = codebook_loss + self.beta * commitment
            quantized = z + (zq - z).detach()  # straight-through
        perplexity, usage = perplexity_and_usage(counts)
        if self.training and self.restart_dead and torch.is_grad_enabled():
            self._restart(flat.detach(), counts)
        return QuantizerOutput(quantized, idx.view(b, h, w), loss, perplexity, usage)

    @torch.no_grad()
    def _restart(self, flat: torch.Tensor, counts: torch.Tensor) -> None:
        """Update the unused counters with this batch's histogram and reset dead codes to random rows of `flat`."""
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        if dist:
            counts = counts.clone()
            torch.distributed.all_reduce(counts)
        used = counts > 0
        self.unused_steps.add_(1).masked_fill_(used, 0)
        dead = (self.unused_steps >= self.restart_after).nonzero().flatten()  # [D]
        self.last_restarts = int(dead.numel())
        if not self.last_restarts:
            return
        pick = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)  # global RNG: deterministic
        new = flat[pick].to(self.codebook.dtype)  # [D,C]
        if dist:
            torch.distributed.broadcast(new, src=0)  # every rank keeps the same codebook
        self.codebook.data[dead] = new
        self.unused_steps[dead] = 0
