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
    cdf = probs.permute(0, 2, 3, 1).cumsum(-1)  # [B,h,w,K]
    target = (u.to(cdf) * cdf[..., -1]).unsqueeze(-1)  # [B,h,w,1], scaled by the total to absorb rounding
    idx = torch.searchsorted(cdf.contiguous(), target.contiguous(), right=True).squeeze(-1)
    return idx.clamp_(max=probs.shape[1] - 1)


class RenoiseScheduler:
    """Paella's sampling schedule: t linear from `t_start` to 0, a linear temperature schedule, renoising per step.

    Usage (what `fastt2i.inference.paella.PaellaPipeline` does)::

        sched = RenoiseScheduler(num_steps=12)
        x = init_noise.clone()                               # [B,h,w] uniform random codebook tokens
        for i in range(sched.num_steps):
            t = sched.timesteps[i].expand(B)
            logits = cfg_logits(model_fn, x, t, cond, uncond, w)   # [B,K,h,w]
            x = sched.step(logits, i, x, init_noise, generator=gens)

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
    ) -> torch.Tensor:
        """One sampler step: sample tokens from `logits` at this step's temperature, then renoise to t_next.

        Args:
            logits: [B,K,h,w] (already guided).
            index: step index in [0, num_steps).
            sample: the current tokens [B,h,w] (the model's input this step).
            init_noise: the initial random tokens [B,h,w].
            generator: None, one torch.Generator, or a list of B generators (per-seed, batch-size invariant).
            keep_mask: bool [B,h,w] or [h,w], True where tokens are known and kept at every step (inpainting).
            known: the known tokens [B,h,w] (default: `sample`), used where keep_mask is True.
        Returns:
            the next tokens [B,h,w] (long).
        """
        if not 0 <= index < self.num_steps:
            raise ConfigError(f"step index {index} is outside 0..{self.num_steps - 1}")
        if logits.ndim != 4 or sample.shape != (logits.shape[0], *logits.shape[2:]) or init_noise.shape != sample.shape:
            raise ConfigError(f"step needs logits [B,K,h,w] and sample/init_noise [B,h,w], got {tuple(logits.shape)}, "
                              f"{tuple(sample.shape)}, {tuple(init_noise.shape)}")
        B, K, h, w = logits.shape
        temp = float(self.temperatures[index])
        logits = logits.float()
        if temp <= _ARGMAX_BELOW:
            new = logits.argmax(dim=1)  # [B,h,w]
        else:
            probs = (logits / temp).softmax(dim=1)  # [B,K,h,w]
            u = uniforms((B, h, w), generator, logits.device)
            new = sample_tokens(probs, u)  # [B,h,w]
        if keep_mask is not None:
            keep_mask = keep_mask.to(device=logits.device, dtype=torch.bool).expand(B, h, w)
            known = sample if known is None else known
        if index < self.num_steps - 1:
            t_next = float(self.timesteps[index + 1])
            if self.mode == "renoise":
                r = uniforms((B, h, w), generator, logits.device)  # [B,h,w]
                renoise = r < t_next
            else:
                # the sampled token's log-probability at this temperature (at temperature 1 for argmax steps)
                scale = temp if temp > _ARGMAX_BELOW else 1.0
                conf = (logits / scale).log_softmax(dim=1).gather(1, new[:, None])[:, 0]  # [B,h,w]
                renoise = self._least_confident(conf, t_next, keep_mask)
            new = torch.where(renoise, init_noise, new)
        if keep_mask is not None:
            new = torch.where(keep_mask, known, new)
        return new.long()

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
) -> torch.Tensor:
    """Classifier-free guidance in ONE batched forward: ``logits_c * w + logits_u * (1 - w)`` -> [B,K,h,w].

    Args:
        model_fn: ``model_fn(tokens [N,h,w], t [N], cond) -> logits [N,K,h,w]``; `cond` is a tensor or a (named) tuple
            of batch-first tensors (e.g. (cond [N,L,c], mask [N,L])).
        tokens: [B,h,w] current tokens.
        t: [B] noise levels.
        cond, uncond: conditional and unconditional conditioning with batch B and the same structure.
        w: guidance weight (1 = conditional only, one forward of B; 0 = unconditional only).
    """
    if uncond is None or float(w) == 1.0:
        return model_fn(tokens, t, cond)
    if float(w) == 0.0:
        return model_fn(tokens, t, uncond)
    B = tokens.shape[0]
    both = model_fn(torch.cat([tokens, tokens]), torch.cat([t, t]), _cat(cond, uncond))  # [2B,K,h,w]
    logits_c, logits_u = both[:B], both[B:]
    return logits_c * w + logits_u * (1.0 - w)
