"""Matching-aware loss (GigaGAN sec. 3.5, eq. 8; Reed et al. 2016): real images with mismatched captions are fakes for D.

GigaGAN eq. 8: V_match = E_{x,c,c^}[ log(1 + exp(D(x, c^))) + log(1 + exp(D(G(c), c^))) ], with c^ a caption drawn
independently of (x, c), added to V_MS-I/O for every scale pair (eq. 6).

Our reading of the paper (stated because the text gives the formula as part of the min-max objective only):
* D minimises both terms: a real image under a wrong caption is "fake", and so is a generated image under a wrong
  caption. This forces D to use the text (otherwise it could ignore the caption and still win).
* G gets no separate matching term. Taken literally in the min-max game, G would *maximise*
  log(1 + exp(D(G(c), c^))), i.e. make its image look real under a caption it was not generated from, which fights
  text alignment; the G-side signal for alignment is the ordinary conditional term softplus(-D(G(c), c)) of
  `g_nonsaturating`, which a matching-aware D makes text-sensitive. So in the D step the fake image is detached.
* "Mismatched" means a different caption: c^ is taken from another sample of the batch by `mismatch_index`, never the
  sample's own caption and never an identical string (duplicate captions are common in emoji data: a random
  permutation would otherwise label some correctly matched pairs as fakes). gigagan-pytorch 0.3.0 rotated the captions
  and threw the result away, so its matching term never mismatched anything.
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

import torch
import torch.nn.functional as F

from fastt2i.errors import DataError
from fastt2i.losses.gan import _reduce, stack_logits


def _group_ids(batch_size: int, keys: Sequence[Hashable] | torch.Tensor | None) -> list[int]:
    if keys is None:
        return list(range(batch_size))
    keys = keys.tolist() if isinstance(keys, torch.Tensor) else list(keys)
    if len(keys) != batch_size:
        raise DataError(f"mismatch_index: {len(keys)} caption keys for a batch of {batch_size}")
    ids: dict[Any, int] = {}
    return [ids.setdefault(k, len(ids)) for k in keys]


def try_mismatch_index(
    batch_size: int,
    generator: torch.Generator | None = None,
    keys: Sequence[Hashable] | torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Like `mismatch_index` but returns None when no valid mismatch exists (B < 2 or all keys identical)."""
    groups = _group_ids(batch_size, keys)
    n_groups = len(set(groups))
    if batch_size < 2 or n_groups < 2:
        return None
    g = torch.tensor(groups)  # [B]
    largest = int(torch.bincount(g).max())
    if 2 * largest <= batch_size:
        # A permutation exists. Random permutations are accepted when valid (probability >= ~1/e for distinct keys).
        for _ in range(32):
            perm = torch.randperm(batch_size, generator=generator)
            if not bool((g[perm] == g).any()):
                return perm
        # Fallback: random order, grouped by key (groups in random order), then shift by the largest group size:
        # every group occupies < `largest` consecutive slots, so the shift always lands in another group.
        order = torch.randperm(batch_size, generator=generator)
        rank = torch.randperm(n_groups, generator=generator)[g[order]]  # random group order
        order = order[torch.sort(rank, stable=True).indices]  # [B], same keys adjacent
        perm = torch.empty(batch_size, dtype=torch.long)
        perm[order] = order.roll(-largest)
        return perm
    # One key holds more than half the batch: no permutation can avoid it; sample with replacement among other keys.
    u = torch.rand(batch_size, batch_size, generator=generator)  # [B,B]
    u = u.masked_fill(g[None, :] == g[:, None], -1.0)
    return u.argmax(dim=1)


def mismatch_index(
    batch_size: int,
    generator: torch.Generator | None = None,
    keys: Sequence[Hashable] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Index [B] of a mismatched caption for every sample: never itself, never a sample with an equal key.

    A permutation with no fixed point (a derangement; none within a key group) whenever one exists, i.e. when no key is
    shared by more than half the batch; otherwise each sample gets a uniformly random sample with a different key
    (with replacement). Caption i^ = captions[index[i]].

    Args:
        batch_size: B (>= 2).
        generator: torch RNG for reproducibility.
        keys: per-sample caption identity (the caption strings, their hashes, or any hashable), length B; None =
            all captions distinct.

    Raises:
        DataError: B < 2, or every caption in the batch is identical (use `try_mismatch_index` to skip instead).
    """
    idx = try_mismatch_index(batch_size, generator, keys)
    if idx is None:
        why = "a batch of 1" if batch_size < 2 else "all captions in the batch are identical"
        raise DataError(f"matching-aware loss needs a mismatched caption but got {why}")
    return idx


def mismatch_text(
    index: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The text triple re-indexed by `index` (from `mismatch_index`): (tokens [B,L,D], mask [B,L], pooled [B,D])."""
    index = index.to(tokens.device)
    return tokens[index], mask[index], pooled[index]


def d_matching_loss(
    real_mismatched_logits: torch.Tensor | Sequence[Any],
    fake_mismatched_logits: torch.Tensor | Sequence[Any] | None = None,
    scale_reduction: str = "sum",
) -> torch.Tensor:
    """GigaGAN eq. 8 for D: softplus(D(x, c^)) + softplus(D(G(c), c^)), over scale pairs as in eq. 6.

    Args:
        real_mismatched_logits: D on real images with mismatched captions.
        fake_mismatched_logits: D on (detached) generated images with mismatched captions; None drops that term.
        scale_reduction: "sum" over the scale pairs (eq. 6) or "mean".
    """
    loss = _reduce(F.softplus(stack_logits(real_mismatched_logits)), scale_reduction)
    if fake_mismatched_logits is not None:
        loss = loss + _reduce(F.softplus(stack_logits(fake_mismatched_logits)), scale_reduction)
    return loss
