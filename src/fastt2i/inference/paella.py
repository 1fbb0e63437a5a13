"""`PaellaPipeline`: text encoder (+ CLIP) -> conditioning -> renoising sampler over the denoiser -> VQGAN decode."""

from __future__ import annotations

import contextlib
import functools
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from fastt2i import __version__
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.models import load_clip_model, load_pretrained
from fastt2i.models.paella.conditioning import PaellaCondition, null_condition
from fastt2i.models.paella.schedule import (
    DEFAULT_CFG,
    DEFAULT_STEPS,
    DEFAULT_TEMPERATURE,
    RenoiseScheduler,
    cfg_logits,
)
from fastt2i.noise import check_seeds
from fastt2i.serialization import atomic_write_dir
from fastt2i.text.base import check_prompts
from fastt2i.text.registry import load_encoder

BUNDLE_CLASS = "paella-pipeline"
BUNDLE_FORMAT = 1
SAMPLER_DEFAULTS: dict[str, Any] = {"steps": DEFAULT_STEPS, "cfg": DEFAULT_CFG, "temperature": DEFAULT_TEMPERATURE,
                                    "mode": "renoise"}  # the paper's sampler (sec. 3: 12 steps) and the official cfg
SAMPLER_MODES = ("renoise", "confidence")


def check_sampler(sampler: Any) -> dict[str, Any]:
    """A pipeline's default sampler settings, checked: a dict with any of steps (int >= 1), cfg (a finite number),
    temperature (a number >= 0 or a [T0, T1] pair) and mode ("renoise" | "confidence")."""
    if not isinstance(sampler, dict):
        raise ConfigError(f"sampler settings must be a dict, got {type(sampler).__name__}")
    unknown = sorted(set(sampler) - set(SAMPLER_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown sampler setting(s) {', '.join(unknown)}; known: {', '.join(SAMPLER_DEFAULTS)}")
    out = dict(sampler)
    if "steps" in out and (isinstance(out["steps"], bool) or not isinstance(out["steps"], int) or out["steps"] < 1):
        raise ConfigError(f"sampler steps must be an integer >= 1, got {out['steps']!r}")
    if "cfg" in out and (isinstance(out["cfg"], bool) or not isinstance(out["cfg"], (int, float))
                         or not math.isfinite(out["cfg"])):
        raise ConfigError(f"sampler cfg must be a finite number, got {out['cfg']!r}")
    if "temperature" in out:
        t = out["temperature"]
        vals = list(t) if isinstance(t, (list, tuple)) else [t]
        if not 1 <= len(vals) <= 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                              for v in vals):
            raise ConfigError(f"sampler temperature must be a number >= 0 or a pair of them, got {t!r}")
        out["temperature"] = (float(vals[0]), float(vals[-1])) if isinstance(t, (list, tuple)) else float(t)
    if "mode" in out and out["mode"] not in SAMPLER_MODES:
        raise ConfigError(f"sampler mode must be one of {', '.join(SAMPLER_MODES)}, got {out['mode']!r}")
    return out


CONFIG_NAME = "config.json"


def is_bundle(path: str | Path) -> bool:
    """True when `path` (or `path/export`) is a Paella pipeline bundle (config.json with class paella-pipeline)."""
    try:
        p = resolve_bundle(path)
    except AssetNotFoundError:
        return False
    return (p / CONFIG_NAME).is_file()


def resolve_bundle(path: str | Path) -> Path:
    """A bundle directory, or a run directory with `export/` holding one."""
    p = Path(path).expanduser()
    for cand in (p, p / "export"):
        cfg = cand / CONFIG_NAME
        if cfg.is_file():
            try:
                meta = json.loads(cfg.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(meta, dict) and meta.get("class") == BUNDLE_CLASS:
                return cand
    raise AssetNotFoundError(f"{p} is not a Paella bundle: expected config.json with class {BUNDLE_CLASS!r} "
                             "and vqgan/ + denoiser/ exports (in the directory or in its export/)")


PRECISIONS = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
              "fp16": torch.float16, "float16": torch.float16}
_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """The sampling precision: None / "fp32" -> float32, "bf16" -> bfloat16, "fp16" -> float16 (or a torch dtype)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype.lower() in PRECISIONS:
        return PRECISIONS[dtype.lower()]
    if dtype in (torch.float32, torch.bfloat16, torch.float16):
        return dtype
    raise ConfigError(f"sampling dtype must be fp32, bf16 or fp16 (or the torch dtype), got {dtype!r}")


def _plain(out: Any) -> Any:
    """Tensors made under `torch.inference_mode` cloned into ordinary tensors (cheap here: tokens and images), so
    callers may use them anywhere, autograd included; tuples keep their structure."""
    if isinstance(out, torch.Tensor):
        return out.clone() if out.is_inference() else out
    if isinstance(out, tuple):
        return type(out)(*map(_plain, out)) if hasattr(out, "_fields") else tuple(map(_plain, out))
    return out


def inference_call(fn: _Fn) -> _Fn:
    """Run `fn` under `torch.inference_mode` (no autograd bookkeeping, no version counters) and hand back ordinary
    tensors (`_plain`). For the sampling entry points of the pipeline and of `fastt2i.editing.paella`."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode():
            out = fn(*args, **kwargs)
        return _plain(out)

    return wrapper  # type: ignore[return-value]


def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU torch.Generator per seed (checked like `seed_noise`): row i draws only from generator i."""
    gens = [torch.Generator(device="cpu").manual_seed(s) for s in check_seeds(seeds)]
    if not gens:
        raise ConfigError("give at least one seed")
    return gens


class PaellaPipeline(nn.Module):
    """Chains text encoder, optional CLIP model, Paella token predictor, `RenoiseScheduler` and VQGAN decoder.

    ``pipe.generate(prompts, seeds) -> images [B,3,H,W]`` in [-1,1]. Seed i gives its own CPU generator that draws the
    initial random tokens and then every sampling/renoising draw of row i, so a (prompt, seed) pair gives the same
    image at any batch size. Guidance is one batched forward of [cond; uncond] (`cfg_logits`); unconditional means
    every conditioning part dropped (zeroed and masked, as the denoiser's conditioner does in training), which is
    `null_condition(cond)`: the prompts are encoded once, and the unconditional branch needs no encoder at all.
    ``dtype="bf16"`` runs the denoiser under bf16 autocast (the logits are combined, softmaxed and sampled in fp32;
    the VQGAN decodes in fp32); sampling runs under `torch.inference_mode`.

    The denoiser interface used here (H2's `PaellaDenoiser`): ``denoiser.conditioner(text_tokens, text_mask,
    clip_text, clip_image, drop_text=, drop_clip_text=, drop_clip_image=) -> (cond [B,L',c], mask [B,L'])`` and
    ``denoiser(tokens [B,h,w], t [B], cond, cond_mask) -> logits [B,K,h,w]``.

    Args:
        vqgan: a `fastt2i.models.paella.VQGAN` (tokenize / decode_tokens / token_shape / codebook_size).
        denoiser: a `PaellaDenoiser` (with `.conditioner`, `.config.codebook_size`).
        text_encoder: the frozen `fastt2i.text` encoder whose width matches the denoiser's text_dim.
        clip_model: a model with encode_text / encode_image (emoji-clip) giving the pooled CLIP vectors, or None
            (then CLIP text/image conditioning is always dropped, except image embeddings passed explicitly).
        text_encoder_spec: spec recorded by `save_pretrained` (default: the encoder's `name`).
        clip_model_spec: spec recorded for the CLIP model ("emoji-clip" or a path; default: save the model itself).
        resolution: output resolution (default: 4 x the denoiser's training token grid, else the VQGAN's).
        dtype: default precision of the denoiser while sampling: "fp32" (default) or "bf16" / "fp16" (autocast on
            the pipeline's device); `generate(dtype=...)` overrides it per call.
        sampler: default sampler settings {"steps", "cfg", "temperature", "mode"} (any subset; the rest are the
            paper's 12 steps, the official cfg 8, temperature (0.7, 0.3), renoise). A bundle records them in its
            config.json (those its model card was measured with); an argument given to `generate` (or an editing
            function) wins.
    """

    def __init__(self, vqgan: nn.Module, denoiser: nn.Module, text_encoder: nn.Module,
                 clip_model: nn.Module | None = None, text_encoder_spec: str | None = None,
                 clip_model_spec: str | None = None, resolution: int | None = None,
                 dtype: torch.dtype | str | None = None, sampler: dict[str, Any] | None = None):
        super().__init__()
        self.dtype = resolve_dtype(dtype)
        self.sampler = check_sampler(sampler or {})
        for name in ("tokenize", "decode_tokens", "token_shape", "codebook_size"):
            if not hasattr(vqgan, name):
                raise ConfigError(f"PaellaPipeline needs a Paella VQGAN, got {type(vqgan).__name__} (no {name})")
        if not hasattr(denoiser, "conditioner"):
            raise ConfigError(f"PaellaPipeline needs a PaellaDenoiser (.conditioner), got {type(denoiser).__name__}")
        dcfg = getattr(denoiser, "config", None)
        k = getattr(dcfg, "codebook_size", None)
        if k is not None and int(k) != int(vqgan.codebook_size):
            raise ConfigError(f"the denoiser predicts {k} codes but the VQGAN has {vqgan.codebook_size}")
        text_dim = getattr(dcfg, "text_dim", None)
        if text_dim is not None and getattr(text_encoder, "dim", text_dim) != text_dim:
            raise ConfigError(f"text encoder {getattr(text_encoder, 'name', '?')!r} gives {text_encoder.dim}-d tokens "
                              f"but the denoiser expects text_dim={text_dim}")
        self.vqgan = vqgan
        self.denoiser = denoiser
        self.text_encoder = text_encoder
        self.clip_model = clip_model
        self.text_encoder_spec = (text_encoder_spec or getattr(dcfg, "text_encoder", None)
                                  or getattr(text_encoder, "name", None))
        self.clip_model_spec = clip_model_spec
        if resolution is None and getattr(dcfg, "token_shape", None) is not None:
            resolution = 4 * int(dcfg.token_shape[0])  # the VQGAN downsamples by f = 4
        if resolution is None:
            resolution = getattr(getattr(vqgan, "config", None), "resolution", None)
        if resolution is None:
            raise ConfigError("cannot tell the output resolution: pass resolution=")
        self._resolution = int(resolution)

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def codebook_size(self) -> int:
        return int(self.vqgan.codebook_size)

    @property
    def clip_dim(self) -> int:
        """Width of the CLIP vectors the conditioner takes (0 = no CLIP conditioning)."""
        return int(getattr(getattr(self.denoiser, "config", None), "clip_dim", 0) or 0)

    def token_shape(self, resolution: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """(h, w) of the token grid for a pixel resolution (default: the pipeline's)."""
        return tuple(self.vqgan.token_shape(self.resolution if resolution is None else resolution))

    # ------------------------------------------------------------------------------------------------ conditioning
    def encode_text(self, prompts: Sequence[str]) -> Any:
        """TextEmbedding (tokens [B,L,D], mask [B,L], pooled [B,P]) of B prompts, on `device`."""
        prompts = check_prompts(prompts)
        with torch.no_grad():
            return self.text_encoder.encode(prompts).to(self.device)

    def clip_text(self, prompts: list[str], text: Any) -> torch.Tensor:
        """Pooled CLIP text vectors [B,E]: when the CLIP model's text side is the pipeline's own text encoder
        (emoji-clip: MiniLM's normalised pooled vector, as `PaellaTrainer.clip_text` uses in training), the already
        computed pooled vector normalised, so the prompts go through the text encoder once; else `encode_text`."""
        spec = getattr(getattr(self.clip_model, "config", None), "text_encoder", None)
        if spec is not None and spec == self.text_encoder_spec and getattr(text, "pooled", None) is not None:
            return F.normalize(text.pooled.float(), dim=-1).to(self.device)
        return self.clip_model.encode_text(prompts).to(self.device).float()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings [B,E] of images [B,3,H,W] in [-1,1] (needs the clip model)."""
        if self.clip_model is None:
            raise ConfigError("this Paella pipeline has no CLIP model: image embeddings cannot be computed")
        with torch.no_grad():
            return self.clip_model.encode_image(images.to(self.device)).float()

    @torch.no_grad()
    def condition(
        self,
        prompts: Sequence[str] | None = None,
        image_embeddings: torch.Tensor | None = None,
        batch: int | None = None,
        use_text: bool = True,
        use_clip_text: bool = True,
        unconditional: bool = False,
    ) -> PaellaCondition:
        """Conditioning (tokens [B,L',c], mask [B,L']) from prompts and/or CLIP image embeddings.

        Args:
            prompts: B prompts (None: text parts dropped; `batch` or the embeddings give B).
            image_embeddings: [B,E] CLIP image vectors (None: the image part is dropped).
            batch: B when neither prompts nor embeddings give it.
            use_text: keep the text tokens (False drops them, e.g. for pure image variations).
            use_clip_text: keep the pooled CLIP text vector (when a clip model is present).
            unconditional: drop every part (the CFG branch); shapes match the conditional call with the same args.
        """
        if prompts is not None:
            prompts = check_prompts(prompts)
        B = len(prompts) if prompts is not None else (image_embeddings.shape[0] if image_embeddings is not None
                                                       else batch)
        if not B:
            raise ConfigError("conditioning needs prompts, image embeddings or a batch size")
        dev = self.device
        text = self.encode_text(prompts if prompts is not None else [""] * B)
        if text.tokens.shape[0] != B:
            raise ConfigError(f"got {text.tokens.shape[0]} prompts for a batch of {B}")
        E = self.clip_dim
        clip_text = clip_image = None
        has_clip_text = has_clip_image = False
        if E:
            clip_text = torch.zeros(B, E, device=dev)
            clip_image = torch.zeros(B, E, device=dev)
            if prompts is not None and use_clip_text and self.clip_model is not None:
                clip_text = self.clip_text(list(prompts), text)
                has_clip_text = True
            if image_embeddings is not None:
                if image_embeddings.shape != (B, E):
                    raise ConfigError(f"image embeddings must be [B={B}, {E}], got {tuple(image_embeddings.shape)}")
                clip_image = image_embeddings.to(dev).float()
                has_clip_image = True
        elif image_embeddings is not None:
            raise ConfigError("this denoiser takes no CLIP vectors (clip_dim=0): image embeddings cannot be used")

        def flag(keep: bool) -> torch.Tensor:
            return torch.full((B,), unconditional or not keep, dtype=torch.bool, device=dev)

        cond, mask = self.denoiser.conditioner(
            text.tokens, text.mask, clip_text, clip_image,
            drop_text=flag(use_text and prompts is not None),
            drop_clip_text=flag(has_clip_text), drop_clip_image=flag(has_clip_image),
        )
        return PaellaCondition(cond, mask)

    def model_fn(self, tokens: torch.Tensor, t: torch.Tensor, cond: PaellaCondition) -> torch.Tensor:
        """The denoiser as `cfg_logits` calls it: (tokens [N,h,w], t [N], PaellaCondition) -> logits [N,K,h,w]."""
        return self.denoiser(tokens, t, cond.tokens, cond.mask)

    def guided_logits(self, tokens: torch.Tensor, t: torch.Tensor, cond: PaellaCondition,
                      uncond: PaellaCondition | None, w: float, out: torch.Tensor | None = None) -> torch.Tensor:
        """`cfg_logits` over the denoiser -> fp32 logits [B,K,h,w] (channels-last for a `PaellaDenoiser`).

        A denoiser with `features` / `project` (its bias-free linear output projection) is guided on its features and
        projected once for B rows, in fp32 outside any autocast (`cfg_logits(head=...)`), into `out` ([B,h,w,K]
        fp32, reused by the sampling loop) when given; other denoisers go through `model_fn`.
        """
        if not (callable(getattr(self.denoiser, "features", None)) and callable(getattr(self.denoiser, "project",
                                                                                          None))):
            return cfg_logits(self.model_fn, tokens, t, cond, uncond, w).float()

        def features(x: torch.Tensor, tt: torch.Tensor, c: PaellaCondition) -> torch.Tensor:
            return self.denoiser.features(x, tt, c.tokens, c.mask)  # [N,c_out,h,w]

        def head(f: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.device.type, enabled=False):
                return self.denoiser.project(f.float(), out=out)  # [B,K,h,w] fp32

        return cfg_logits(features, tokens, t, cond, uncond, w, head=head)

    def conditions(self, prompts: Sequence[str] | None = None, image_embeddings: torch.Tensor | None = None,
                   **kw: Any) -> tuple[PaellaCondition, PaellaCondition]:
        """(cond, uncond) for classifier-free guidance with one encoding: uncond = `null_condition(cond)` (every
        part zeroed and masked: what `condition(..., unconditional=True)` returns, without running any encoder).
        Keyword arguments as for `condition`."""
        cond = self.condition(prompts, image_embeddings, **kw)
        return cond, null_condition(cond)

    @contextlib.contextmanager
    def autocast(self, dtype: torch.dtype | str | None = None) -> Iterator[None]:
        """Autocast context for the denoiser at `dtype` (default: the pipeline's `dtype`); a no-op for fp32.

        Inside, autograd is off through `torch.no_grad` even when called under `torch.inference_mode`: autocast's
        cache of down-cast weights only keeps tensors that require grad, which inference mode hides, so there every
        weight would be cast again at every call (~140 extra copies per emoji64 step, ~10% of a bf16 sampling run).
        """
        dt = self.dtype if dtype is None else resolve_dtype(dtype)
        if dt == torch.float32:
            yield
            return
        with torch.inference_mode(False), torch.no_grad(), torch.autocast(device_type=self.device.type, dtype=dt):
            yield

    # ------------------------------------------------------------------------------------------------ sampling
    def initial_tokens(self, generators: Sequence[torch.Generator], shape: tuple[int, int]) -> torch.Tensor:
        """Uniform random codebook tokens [B,h,w], row i drawn from generators[i] (on CPU), on `device`."""
        rows = [torch.randint(0, self.codebook_size, tuple(shape), generator=g) for g in generators]
        return torch.stack(rows).to(self.device)

    def sampler_settings(self, steps: int | None = None, cfg: float | None = None,
                         temperature: float | Sequence[float] | None = None,
                         mode: str | None = None) -> tuple[int, float, float | Sequence[float], str]:
        """(steps, cfg, temperature, mode): each argument given, else the pipeline's `sampler`, else the paper's."""
        given = {"steps": steps, "cfg": cfg, "temperature": temperature, "mode": mode}
        out = {**SAMPLER_DEFAULTS, **self.sampler, **{k: v for k, v in given.items() if v is not None}}
        return out["steps"], out["cfg"], out["temperature"], out["mode"]

    @inference_call
    def sample_tokens(
        self,
        cond: PaellaCondition,
        uncond: PaellaCondition | None,
        seeds: Sequence[int],
        steps: int | None = None,
        cfg: float | None = None,
        temperature: float | Sequence[float] | None = None,
        mode: str | None = None,
        shape: tuple[int, int] | None = None,
        t_start: float = 1.0,
        init_tokens: torch.Tensor | None = None,
        keep_mask: torch.Tensor | None = None,
        progress: bool = False,
        dtype: torch.dtype | str | None = None,
    ) -> torch.Tensor:
        """The sampling loop: tokens [B,h,w] for B seeds.

        Args:
            cond, uncond: conditional / unconditional `PaellaCondition` with batch B (uncond None = no guidance).
            seeds: B seeds (per-row generators: batch-size invariant).
            steps: sampler steps (12 in the paper). None (here and below): the pipeline's `sampler` setting.
            cfg: guidance weight w in ``logits_c * w + logits_u * (1 - w)`` (8 in the official v3 sampler).
            temperature: (start, end) or one number (paper: (0.7, 0.3)).
            mode: "renoise" (paper) or "confidence".
            shape: token grid (h, w) (default: the pipeline's).
            t_start: first t; < 1 starts from `init_tokens` noised to t_start with the initial random tokens.
            init_tokens: [B,h,w] tokens to start from (image-to-image) / the known tokens (inpainting).
            keep_mask: bool [B,h,w] or [h,w], True where `init_tokens` are kept at every step.
            progress: show a tqdm bar.
            dtype: denoiser precision (default: the pipeline's `dtype`): "bf16" runs it under bf16 autocast.
        """
        steps, cfg, temperature, mode = self.sampler_settings(steps, cfg, temperature, mode)
        gens = seed_generators(list(seeds))
        B = len(gens)
        if init_tokens is not None:
            init_tokens = init_tokens.to(self.device).long()
            if init_tokens.ndim != 3 or init_tokens.shape[0] != B:
                raise ConfigError(f"init tokens must be [B={B},h,w], got {tuple(init_tokens.shape)}")
            shape = tuple(init_tokens.shape[1:])
        shape = tuple(shape or self.token_shape())
        if keep_mask is not None and init_tokens is None:
            raise ConfigError("keep_mask needs init_tokens (the known tokens)")
        sched = RenoiseScheduler(steps, temperature=temperature, mode=mode, t_start=t_start)
        noise = self.initial_tokens(gens, shape)  # [B,h,w]
        if init_tokens is None:
            x = noise.clone()
        else:
            if keep_mask is not None:
                keep_mask = keep_mask.to(self.device, torch.bool).expand(B, *shape)
            x = sched.add_noise(init_tokens, sched.t_start, noise, gens)  # t_start = 1: all initial noise
            if keep_mask is not None:
                x = torch.where(keep_mask, init_tokens, x)
        it = range(len(sched))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="paella", unit="step", leave=False)
        # every step's draws at once (one call per row generator, one copy; the same values as drawing per step)
        rand = sched.draw_uniforms(gens, B, shape, self.device)
        timesteps = sched.timesteps.to(self.device)  # [S+1]
        with self.autocast(dtype):  # one autocast region: the weights are cast once for all steps
            buf = torch.empty(B, *shape, self.codebook_size, device=self.device)  # the logits of every step
            for i in it:
                t = timesteps[i].expand(B)  # [B]
                logits = self.guided_logits(x, t, cond, uncond, cfg, out=buf)  # [B,K,h,w] fp32
                x = sched.step(logits, i, x, noise, keep_mask=keep_mask, known=init_tokens, randoms=rand[i])
        return x

    @inference_call
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """VQGAN decode: tokens [B,h,w] -> images [B,3,4h,4w] clamped to [-1,1]."""
        return self.vqgan.decode_tokens(tokens.to(self.device)).clamp(-1, 1)

    @torch.no_grad()
    def tokenize(self, images: torch.Tensor) -> torch.Tensor:
        """VQGAN tokens [B,H/4,W/4] of images [B,3,H,W] in [-1,1]."""
        return self.vqgan.tokenize(images.to(self.device))

    @inference_call
    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        steps: int | None = None,
        cfg: float | None = None,
        temperature: float | Sequence[float] | None = None,
        mode: str | None = None,
        image_embeddings: torch.Tensor | None = None,
        progress: bool = False,
        return_tokens: bool = False,
        dtype: torch.dtype | str | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Images [B,3,H,W] in [-1,1] for prompt i and seed i.

        Args:
            prompts: B prompts, or one prompt used for every seed.
            seeds: B non-negative integer seeds.
            steps: sampler steps (paper: 12). None (here and below): the pipeline's `sampler` setting (the bundle's).
            cfg: classifier-free guidance weight (official v3 sampler: 8; 1 = no guidance).
            temperature: (start, end) of the linear temperature schedule (paper: (0.7, 0.3)); 0 = argmax.
            mode: "renoise" (paper) or "confidence" (renoise the least confident tokens).
            image_embeddings: optional [B,E] CLIP image vectors added to the conditioning.
            progress: show a tqdm bar over the steps.
            return_tokens: also return the final tokens [B,h,w].
            dtype: denoiser precision for this call (default: the pipeline's `dtype`; "bf16" = bf16 autocast).
        """
        prompts, seeds = check_prompts(prompts), list(seeds)
        if len(prompts) == 1 and len(seeds) > 1:
            prompts = prompts * len(seeds)
        if len(prompts) != len(seeds):
            raise ConfigError(f"got {len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt")
        cond, uncond = self.conditions(prompts, image_embeddings)  # prompts encoded once
        tokens = self.sample_tokens(cond, uncond, seeds, steps, cfg, temperature, mode, progress=progress,
                                    dtype=dtype)
        images = self.decode(tokens)
        return (images, tokens) if return_tokens else images

    def forward(self, prompts: Sequence[str], seeds: Sequence[int], **kw: Any) -> torch.Tensor:
        """Alias of `generate`."""
        return self.generate(prompts, seeds, **kw)

    # ------------------------------------------------------------------------------------------------ save / load
    def save_pretrained(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write a bundle: ``vqgan/`` and ``denoiser/`` exports, optional ``clip/``, and ``config.json`` naming the text
        encoder and CLIP model; written to a temporary directory, then renamed.

        Args:
            path: bundle directory: new, empty, or an earlier Paella bundle (replaced); anything else is refused
                unless `overwrite` (a run directory, the current or home directory never are; `atomic_write_dir`).
            overwrite: replace a file, a non-empty directory or an export of another kind at `path`.
        """
        def write(tmp: Path) -> None:
            self.vqgan.save_pretrained(tmp / "vqgan")
            self.denoiser.save_pretrained(tmp / "denoiser", text_encoder=self.text_encoder_spec)
            clip_spec = self.clip_model_spec
            if self.clip_model is not None and clip_spec is None:
                if not hasattr(self.clip_model, "save_pretrained"):
                    raise ConfigError("give clip_model_spec: the CLIP model cannot be saved into the bundle")
                self.clip_model.save_pretrained(tmp / "clip")
                clip_spec = "./clip"
            meta = {"class": BUNDLE_CLASS, "format_version": BUNDLE_FORMAT, "fastt2i_version": __version__,
                    "text_encoder": self.text_encoder_spec, "clip_model": clip_spec, "resolution": self.resolution}
            if self.sampler:
                meta["sampler"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.sampler.items()}
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")

        return atomic_write_dir(path, write, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str | None = None,
                        text_encoder: str | nn.Module | None = None,
                        clip_model: str | nn.Module | None = None,
                        dtype: torch.dtype | str | None = None) -> PaellaPipeline:
        """Load a bundle written by `save_pretrained` (or a run directory whose export/ holds one).

        Args:
            path: bundle directory (config.json + vqgan/ + denoiser/).
            device: where everything goes (default CPU).
            text_encoder: override the recorded encoder (spec string or encoder object).
            clip_model: override the recorded CLIP model ("emoji-clip", an export dir, or a model object).
            dtype: sampling precision ("fp32" default, "bf16"); see the class docstring.
        """
        p = resolve_bundle(path)
        meta = json.loads((p / CONFIG_NAME).read_text())
        if meta.get("format_version") != BUNDLE_FORMAT:
            raise ConfigError(f"{p} has Paella bundle format {meta.get('format_version')!r}; this fastt2i reads "
                              f"{BUNDLE_FORMAT}")
        for sub in ("vqgan", "denoiser"):
            if not (p / sub / CONFIG_NAME).is_file():
                raise AssetNotFoundError(f"{p} is missing its {sub}/ export")
        vqgan = load_pretrained(p / "vqgan", device=device)
        denoiser = load_pretrained(p / "denoiser", device=device)
        te_spec = text_encoder if isinstance(text_encoder, str) else meta.get("text_encoder")
        if isinstance(text_encoder, nn.Module):
            enc = text_encoder
        else:
            if not te_spec:
                raise ConfigError(f"{p}/config.json names no text encoder: pass text_encoder=")
            enc = load_encoder(te_spec, device)
        clip_spec = clip_model if isinstance(clip_model, str) else meta.get("clip_model")
        if isinstance(clip_model, nn.Module):
            clip = clip_model
        elif clip_spec:
            resolved = str(p / clip_spec[2:]) if clip_spec.startswith("./") else clip_spec
            clip = load_clip_model(resolved, device=device)
        else:
            clip = None
        pipe = cls(vqgan, denoiser, enc.to(device or "cpu"), clip, text_encoder_spec=te_spec,
                   clip_model_spec=None if clip_spec == "./clip" else clip_spec, resolution=meta.get("resolution"),
                   dtype=dtype, sampler=meta.get("sampler"))
        return pipe.eval()
