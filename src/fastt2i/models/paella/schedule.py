"""Paella's sampler as a scheduler: timesteps, temperatures, a multinomial + renoise `step()`, batched CFG logits."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from fastt2i.errors import ConfigError

# Defaults of the official v3 sampler (dome272/Paella readme.md "sample(..., steps=12, renoise_steps=11,
# temperature=(0.7, 0.3), cfg=8.0)": t = linspace(1, 0, steps + 1), temperatures = linspace(0.7, 0.3, steps), renoise to
# t_next with the *initial* random tokens after every step but the last).
DEFAULT_STEPS = 12
DEFAULT_TEMPERATURE = (0.7, 0.3)
DEFAULT_CFG = 8.0
MODES = ("renoise", "confidence")
_ARGMAX_BELOW = 1e-6  # a temperature at or below this samples the argmax


def _temperature_pair(temperature: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(temperature, (int, float)):
        pair = (float(temperature), float(temperature))
    else:
        vals = [float(v) for v in temperature]
        if len(vals) != 2:
            raise ConfigError(f"temperature must be a number or a (start, end) pair, got {temperature!r}")
        pair = (vals[0], vals[1])
    if min(pair) < 0:
        raise ConfigError(f"temperature must be >= 0, got {pair}")
    return pair


def uniforms(shape: tuple[int, ...], generator: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """U[0,1) draws [B,*shape], drawn on CPU (row b from `generator[b]` when a list is given: batch-size invariant).

    Args:
        shape: the per-row shape (e.g. (h, w)); the first entry is the batch size B.
        generator: None (global RNG), one torch.Generator for the whole batch, or a sequence of B generators.
        device: where the result goes.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ConfigError(f"got {len(generator)} generators for a batch of {shape[0]}")
        out = torch.stack([torch.rand(shape[1:], generator=g) for g in generator])
    else:
        out = torch.rand(shape, generator=generator)
    return out.to(device)


def sample_tokens(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF categorical sampling: probs [B,K,h,w] (rows sum to 1) and u [B,h,w] in [0,1) -> indices [B,h,w]."""
    return _inverse_cdf(probs.permute(0, 2, 3, 1), u)[0]


def _block(k: int) -> int:
    """The block width of the two-level search: the largest power of two <= sqrt(K) dividing K (1 = flat)."""
    b = 1
    while (2 * b) ** 2 <= k and k % (2 * b) == 0:
        b *= 2
    return b


def _inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-CDF sampling over the last dim of non-negative `weights` [...,K] (need not sum to 1) with u [...]
    in [0,1): (indices [...], row totals [...]). Index k is drawn with probability weights[k] / total.

    Two-level search instead of one cumulative sum over all K classes: the cumulative sum of block totals picks the
    block holding ``u * total``, then the cumulative sum inside that block picks the class (for K = 1,024: blocks of
    32, so 64 sequential cumsum elements per position instead of 1,024; the block sums are a vectorised reduction).
    """
    K = weights.shape[-1]
    flat = weights.reshape(-1, K)  # [N,K]
    N = flat.shape[0]
    blk = _block(K)
    if blk < 8:  # too few classes (or an awkward K) for blocks to pay off
        cdf = flat.cumsum(-1)  # [N,K]
        total = cdf[:, -1:]
        target = u.reshape(N, 1).to(cdf) * total  # [N,1], scaled by the total to absorb rounding
        idx = torch.searchsorted(cdf, target, right=True).clamp_(max=K - 1)
        return idx.view(u.shape), total.view(u.shape)
    nb = K // blk
    blocks = flat.view(N, nb, blk)  # [N,nb,blk]
    cdf = blocks.sum(-1).cumsum(-1)  # [N,nb] mass up to the end of each block
    total = cdf[:, -1:]  # [N,1]
    target = u.reshape(N, 1).to(cdf) * total  # [N,1]
    b = torch.searchsorted(cdf, target, right=True).clamp_(max=nb - 1)  # [N,1] the block holding the target
    before = torch.where(b > 0, cdf.gather(1, (b - 1).clamp(min=0)), torch.zeros_like(target))  # mass before it
    inner = blocks.gather(1, b[:, :, None].expand(N, 1, blk))[:, 0].cumsum(-1)  # [N,blk]
    j = torch.searchsorted(inner, target - before, right=True).clamp_(max=blk - 1)  # [N,1]
    return (b * blk + j).view(u.shape), total.view(u.shape)


class RenoiseScheduler:
    """Paella's sampling schedule: t linear from `t_start` to 0, a linear temperature schedule, renoising per step.

    Usage (what `fastt2i.inference.paella.PaellaPipeline` does)::

        sched = RenoiseScheduler(num_steps=12)
        x = init_noise.clone()                               # [B,h,w] uniform random codebook tokens
        rand = sched.draw_uniforms(gens, B, (h, w), device)  # every step's draws, one call per row generator
        for i in range(sched.num_steps):
            t = sched.timesteps[i].expand(B)
            logits = cfg_logits(model_fn, x, t, cond, uncond, w)   # [B,K,h,w]
            x = sched.step(logits, i, x, init_noise, randoms=rand[i])   # same as generator=gens, drawn lazily

    ``timesteps`` holds num_steps + 1 values (the last is 0): step i runs the model at timesteps[i] and renoises its
    sample to t_next = timesteps[i + 1]; the last step does not renoise. Modes:

    - ``"renoise"`` (the paper's): every token is replaced by its *initial* random token with probability t_next;
    - ``"confidence"``: the round(t_next * n) tokens whose sampled token had the lowest probability are replaced by
      their initial random tokens (n = tokens not kept by `keep_mask`).

    Args:
        num_steps: model evaluations (paper: 12).
        temperature: (start, end) of a linear temperature schedule over the steps, or one number (paper: (0.7, 0.3));
            a temperature <= 1e-6 samples the argmax.
        mode: "renoise" or "confidence".
        t_start: first t (1 = from pure noise; < 1 for image-to-image).
    """

    def __init__(self, num_steps: int = DEFAULT_STEPS, temperature: float | Sequence[float] = DEFAULT_TEMPERATURE,
                 mode: str = "renoise", t_start: float = 1.0):
        if mode not in MODES:
            raise ConfigError(f"sampler mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.temperature = _temperature_pair(temperature)
        self.set_timesteps(num_steps, t_start)

    def set_timesteps(self, num_steps: int, t_start: float = 1.0) -> None:
        """Fill `timesteps` [num_steps+1] (linear t_start -> 0) and `temperatures` [num_steps].

        Args:
            num_steps: model evaluations, >= 1 (t_start = 0 gives no steps: nothing is noised).
            t_start: first t in [0, 1].
        """
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ConfigError(f"the number of sampling steps must be an integer >= 1, got {num_steps!r}")
        if not 0.0 <= float(t_start) <= 1.0:
            raise ConfigError(f"t_start must be in [0, 1], got {t_start}")
        self.t_start = float(t_start)
        self.num_steps = num_steps if self.t_start > 0 else 0
        self.timesteps = torch.linspace(self.t_start, 0.0, num_steps + 1)[: self.num_steps + 1]  # [S+1]
        t0, t1 = self.temperature
        self.temperatures = torch.linspace(t0, t1, num_steps)[: self.num_steps]  # [S]

    def __len__(self) -> int:
        return self.num_steps

    # ------------------------------------------------------------------------------------------------ randoms
    def step_draws(self, index: int) -> int:
        """How many [B,h,w] U[0,1) draws step `index` consumes: one to sample (none at an argmax temperature) and,
        in "renoise" mode before the last step, one to renoise."""
        n = 0 if float(self.temperatures[index]) <= _ARGMAX_BELOW else 1
        return n + int(self.mode == "renoise" and index < self.num_steps - 1)

    def draw_uniforms(self, generator: Any, batch: int, shape: tuple[int, int],
                      device: torch.device | str | None = None) -> list[torch.Tensor]:
        """Every U[0,1) draw of a whole sampling run, up front: a list of per-step tensors [B, step_draws(i), h, w].

        One `torch.rand` call per row generator for all steps and one copy to `device` (instead of two small draws
        per row and two copies per step). A CPU generator's stream does not depend on how it is chunked, so row b
        gets exactly the values `step(..., generator=...)` would have drawn step by step: the same tokens, and
        seed N still gives the same image at any batch size.

        Args:
            generator: None, one torch.Generator, or one per row (see `uniforms`).
            batch: B.
            shape: the token grid (h, w).
            device: where the draws go (the logits' device).
        """
        counts = [self.step_draws(i) for i in range(self.num_steps)]
        u = uniforms((batch, sum(counts), *shape), generator, device)  # [B,D,h,w]
        return list(u.split(counts, dim=1))

    # ------------------------------------------------------------------------------------------------ noising
    @staticmethod
    def add_noise(tokens: torch.Tensor, t: torch.Tensor | float, init_noise: torch.Tensor,
                  generator: Any = None) -> torch.Tensor:
        """Replace each token by its initial random token with probability t (per image): [B,h,w] -> [B,h,w].

        Args:
            tokens: clean tokens [B,h,w].
            t: scalar or [B] noise level in [0, 1].
            init_noise: the initial random tokens [B,h,w] (the same ones the sampler renoises with).
            generator: None, one generator, or one per row (see `uniforms`).
        """
        t = torch.as_tensor(t, dtype=torch.float32, device=tokens.device).reshape(-1, 1, 1)  # [B|1,1,1]
        u = uniforms(tuple(tokens.shape), generator, tokens.device)  # [B,h,w]
        return torch.where(u < t, init_noise, tokens)

    # ------------------------------------------------------------------------------------------------ step
    def step(
        self,
        logits: torch.Tensor,
        index: int,
        sample: torch.Tensor,
        init_noise: torch.Tensor,
        generator: Any = None,
        keep_mask: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        randoms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One sampler step: sample tokens from `logits` at this step's temperature, then renoise to t_next.

        Args:
            logits: [B,K,h,w] (already guided; any dtype, used in fp32; channels-last strides are read in place).
            index: step index in [0, num_steps).
            sample: the current tokens [B,h,w] (the model's input this step).
            init_noise: the initial random tokens [B,h,w].
            generator: None, one torch.Generator, or a list of B generators (per-seed, batch-size invariant); used
                when `randoms` is not given.
            keep_mask: bool [B,h,w] or [h,w], True where tokens are known and kept at every step (inpainting).
            known: the known tokens [B,h,w] (default: `sample`), used where keep_mask is True.
            randoms: this step's draws [B, step_draws(index), h, w] from `draw_uniforms` (the same values
                `generator` would give).
        Returns:
            the next tokens [B,h,w] (long).
        """
        if not 0 <= index < self.num_steps:
            raise ConfigError(f"step index {index} is outside 0..{self.num_steps - 1}")
        if logits.ndim != 4 or sample.shape != (logits.shape[0], *logits.shape[2:]) or init_noise.shape != sample.shape:
            raise ConfigError(f"step needs logits [B,K,h,w] and sample/init_noise [B,h,w], got {tuple(logits.shape)}, "
                              f"{tuple(sample.shape)}, {tuple(init_noise.shape)}")
        B, K, h, w = logits.shape
        if randoms is not None and randoms.shape != (B, self.step_draws(index), h, w):
            raise ConfigError(f"randoms for step {index} must be [B,{self.step_draws(index)},h,w]="
                              f"{(B, self.step_draws(index), h, w)}, got {tuple(randoms.shape)}")
        draws = iter(randoms.unbind(1)) if randoms is not None else None

        def draw() -> torch.Tensor:  # [B,h,w], in the order of `draw_uniforms`
            return next(draws) if draws is not None else uniforms((B, h, w), generator, logits.device)

        temp = float(self.temperatures[index])
        scores = logits.detach().permute(0, 2, 3, 1).float()  # [B,h,w,K] (a view for channels-last fp32 logits)
        if temp <= _ARGMAX_BELOW:
            new = scores.max(dim=-1).indices  # [B,h,w], the first maximum (as argmax; faster on CPU)
            top = total = None
        else:
            # softmax(scores / T) without its normalising pass: exp((scores - max) / T) drawn from by inverse CDF
            top = scores.amax(dim=-1, keepdim=True)  # [B,h,w,1]
            inv = 1.0 / temp  # (scores - top) / T as one fused pass into the run's buffer, then exp in place
            weights = torch.add(top * -inv, scores, alpha=inv, out=self._scratch(scores)).exp_()  # [B,h,w,K]
            new, total = _inverse_cdf(weights, draw())  # [B,h,w] each
        if keep_mask is not None:
            keep_mask = keep_mask.to(device=logits.device, dtype=torch.bool).expand(B, h, w)
            known = sample if known is None else known
        if index < self.num_steps - 1:
            t_next = float(self.timesteps[index + 1])
            if self.mode == "renoise":
                renoise = draw() < t_next  # [B,h,w]
            else:
                # the sampled token's log-probability at this temperature (at temperature 1 for argmax steps)
                picked = scores.gather(-1, new[..., None])[..., 0]  # [B,h,w]
                if top is None:
                    conf = picked - torch.logsumexp(scores, dim=-1)
                else:  # log softmax(scores / T)[new] = (s_new - max) / T - log sum exp((s - max) / T)
                    conf = (picked - top[..., 0]) / temp - total.log()
                renoise = self._least_confident(conf, t_next, keep_mask)
            new = torch.where(renoise, init_noise, new)
        if keep_mask is not None:
            new = torch.where(keep_mask, known, new)
        return new.long()

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        """A [B,h,w,K] fp32 work buffer kept across the steps of a run (a fresh class-sized tensor every step costs
        page faults on CPU: ~40% of the sampler's own time at emoji64 size)."""
        buf = getattr(self, "_buf", None)
        if (buf is None or buf.shape != like.shape or buf.dtype != like.dtype or buf.device != like.device
                or buf.is_inference() != torch.is_inference_mode_enabled()):
            buf = self._buf = torch.empty(like.shape, dtype=like.dtype, device=like.device)
        return buf

    @staticmethod
    def _least_confident(conf: torch.Tensor, t: float, keep_mask: torch.Tensor | None) -> torch.Tensor:
        """bool [B,h,w]: per image, the round(t * n_free) free positions with the lowest confidence."""
        B = conf.shape[0]
        flat = conf.reshape(B, -1)  # [B,N]
        if keep_mask is not None:
            free = ~keep_mask.reshape(B, -1)
            flat = flat.masked_fill(~free, float("inf"))
            n_free = free.sum(1)  # [B]
        else:
            n_free = torch.full((B,), flat.shape[1], device=flat.device)
        k = torch.round(n_free.float() * t).long()  # [B]
        order = flat.argsort(dim=1, stable=True)  # ascending confidence
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand(B, -1))
        return (ranks < k[:, None]).reshape(conf.shape)


def _cat(a: Any, b: Any) -> Any:
    """Concatenate two batch-first conditionings along the batch: tensors, None, or (named) tuples of those."""
    if a is None and b is None:
        return None
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.cat([a, b], dim=0)
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        parts = [_cat(x, y) for x, y in zip(a, b)]
        return type(a)(*parts) if hasattr(a, "_fields") else tuple(parts)
    raise ConfigError(f"cond and uncond must have the same structure, got {type(a).__name__} and {type(b).__name__}")


def cfg_logits(
    model_fn: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor],
    tokens: torch.Tensor,
    t: torch.Tensor,
    cond: Any,
    uncond: Any,
    w: float,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Classifier-free guidance in ONE batched forward: ``logits_c * w + logits_u * (1 - w)`` -> [B,K,h,w].

    Args:
        model_fn: ``model_fn(tokens [N,h,w], t [N], cond) -> logits [N,K,h,w]``; `cond` is a tensor or a (named) tuple
            of batch-first tensors (e.g. (cond [N,L,c], mask [N,L])).
        tokens: [B,h,w] current tokens.
        t: [B] noise levels.
        cond, uncond: conditional and unconditional conditioning with batch B and the same structure.
        w: guidance weight (1 = conditional only, one forward of B; 0 = unconditional only).
        head: optional LINEAR map applied after the mix: then `model_fn` returns what `head` takes (e.g. the
            denoiser's features before its bias-free output projection) and the result is ``head(f_c * w + f_u *
            (1 - w))``, which equals guiding ``head``'s outputs but projects B rows instead of 2B.
    The two branches are mixed in fp32 (the model may run in bf16), as one `torch.lerp`.
    """
    if uncond is None or float(w) == 1.0 or float(w) == 0.0:
        out = model_fn(tokens, t, cond if (uncond is None or float(w) == 1.0) else uncond)
        return out if head is None else head(out)
    B = tokens.shape[0]
    both = model_fn(torch.cat([tokens, tokens]), torch.cat([t, t]), _cat(cond, uncond))  # [2B,...]
    c, u = both[:B].float(), both[B:].float()
    mixed = torch.lerp(u, c, float(w))  # = c * w + u * (1 - w), one pass
    return mixed if head is None else head(mixed)
