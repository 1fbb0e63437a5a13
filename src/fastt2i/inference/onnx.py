"""ONNX export of the text-to-image networks, and onnxruntime pipelines whose `generate` matches the PyTorch ones.

    paths = export_onnx("gigagan-emoji64", "exports/gigagan-emoji64-onnx")   # generator.onnx + onnx_config.json
    pipe = load_onnx_pipeline("exports/gigagan-emoji64-onnx")                 # OnnxGigaGANPipeline
    images = pipe.generate(["red heart"], [0])                                 # [1,3,64,64] in [-1,1]

What goes into ONNX and what stays in Python (the frozen text encoder and the CLIP model stay in PyTorch):

- GigaGAN: ``generator.onnx`` = learned text layers T + mapping + synthesis with constant noise (the pipeline's
  ``noise_mode="const"``), clamped to [-1,1]. No truncation: psi = 1 (the text-conditioned mean needs 256 mapping
  passes per prompt; use the PyTorch pipeline for truncation).
- Paella: ``conditioner.onnx`` (text tokens + CLIP vectors + drop flags -> conditioning, once per `generate`),
  ``denoiser.onnx`` (tokens, t, conditioning -> logits, once per sampler step) and ``vqgan_decoder.onnx``
  (tokens -> images in [-1,1]); the sampler loop is `PaellaPipeline.sample_tokens` with its `RenoiseScheduler`,
  running over onnxruntime logits (`OnnxPaellaPipeline` is a `PaellaPipeline` whose denoiser and VQGAN are sessions).

Every graph has a dynamic batch; text and conditioning lengths and the token grid are dynamic too. `onnx_config.json`
records what each file takes and returns, the text encoder / CLIP specs, the network configs and the fastt2i version.

Exporter: torch.onnx's TorchScript-based exporter (``dynamo=False``). The torch.export-based one (``dynamo=True``,
needs onnxscript) also converts the GigaGAN generator (with the same non-fused convolutions) but took ~15x longer
(~2 min for the tiny test generator: FX decompositions under symbolic shapes), which no test suite can pay. What the export does so that the graphs exist,
each the same function as the PyTorch network (the parity tests check it):

- every `ModulatedConv2d` runs in its non-fused form (``fused = False``: shared kernels, selection and style on the
  activations, Gram-matrix demodulation): the fused form's grouped convolution has ``groups = batch``, and an ONNX
  Conv's group count is a constant, so it has no dynamic-batch graph;
- `fastt2i.models.paella.vqgan.layer_norm_2d` reads its normalised shape as a constant (the tracer records
  ``x.shape[1:2]`` as a run-time value, which ONNX LayerNormalization cannot take);
- tracing runs with autograd on whatever the caller's mode: the networks' no-grad fast paths use in-place ``out=``
  kernels, which have no ONNX form.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fastt2i import __version__
from fastt2i.config import from_dict, to_dict
from fastt2i.errors import AssetNotFoundError, ConfigError
from fastt2i.inference.gigagan import GENERATOR_CLASS, GigaGANPipeline
from fastt2i.inference.loader import PIPELINES, load_pipeline, model_class, resolve_model
from fastt2i.inference.paella import PaellaPipeline
from fastt2i.models import load_clip_model
from fastt2i.models.paella import vqgan as vqgan_module
from fastt2i.models.paella.conditioning import PaellaCondition
from fastt2i.models.paella.config import PaellaConfig
from fastt2i.models.paella.vqgan import VQGAN
from fastt2i.nn.modulated import ModulatedConv2d
from fastt2i.noise import seed_noise
from fastt2i.serialization import CONFIG_NAME, atomic_write_dir, check_export_target
from fastt2i.text.base import TextEmbedding, check_prompts
from fastt2i.text.registry import load_encoder

ONNX_CONFIG = "onnx_config.json"
ONNX_FORMAT = 1
GIGAGAN_ONNX_CLASS = "onnx-gigagan-generator"
PAELLA_ONNX_CLASS = "onnx-paella-pipeline"
DEFAULT_OPSET = 18
OPSETS = range(14, 21)  # scaled_dot_product_attention needs 14; the TorchScript exporter stops at 20
_INSTALL = "pip install 'fastt2i[onnx]' (or pip install onnxruntime)"


def _onnxruntime() -> Any:
    """The onnxruntime module (an optional dependency), or a one-line AssetNotFoundError naming the extra."""
    try:
        import onnxruntime
    except ImportError:
        raise AssetNotFoundError(f"ONNX inference needs onnxruntime, which is not installed: {_INSTALL}") from None
    return onnxruntime


# ---------------------------------------------------------------------------------------------------- graphs
class _GeneratorGraph(nn.Module):
    """GigaGAN generator as one function: (z, text tokens, mask, pooled) -> images, constant noise, psi = 1."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        g = self.generator
        t_local, t_mask, t_global = g.text_condition(text_tokens, text_mask, pooled)  # [B,L,C], [B,L], [B,C]
        ws = g.mapping(z, t_global)  # [B,num_ws,w_dim]
        return g.synthesis(ws, t_local, t_mask, noise_mode="const")[0].clamp(-1, 1)  # [B,3,H,W]


class _ConditionerGraph(nn.Module):
    """Paella's conditioner; the CLIP inputs exist only when the denoiser takes CLIP vectors (clip_dim > 0)."""

    def __init__(self, conditioner: nn.Module):
        super().__init__()
        self.conditioner = conditioner

    def forward(self, text_tokens: torch.Tensor, text_mask: torch.Tensor, drop_text: torch.Tensor,
                clip_text: torch.Tensor | None = None, clip_image: torch.Tensor | None = None,
                drop_clip_text: torch.Tensor | None = None,
                drop_clip_image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cond = self.conditioner(text_tokens, text_mask, clip_text, clip_image, drop_text=drop_text,
                                drop_clip_text=drop_clip_text, drop_clip_image=drop_clip_image)
        return cond.tokens, cond.mask  # [B,L',c], [B,L']


class _DenoiserGraph(nn.Module):
    def __init__(self, denoiser: nn.Module):
        super().__init__()
        self.denoiser = denoiser

    def forward(self, tokens: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                cond_mask: torch.Tensor) -> torch.Tensor:
        return self.denoiser(tokens, t, cond, cond_mask)  # [B,K,h,w]


class _DecoderGraph(nn.Module):
    def __init__(self, vqgan: nn.Module):
        super().__init__()
        self.vqgan = vqgan

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.vqgan.decode_tokens(tokens).clamp(-1, 1)  # [B,3,4h,4w]


@contextlib.contextmanager
def _unfused_modulated_convs(module: nn.Module) -> Iterator[None]:
    """Every `ModulatedConv2d` inside `module` in its non-fused form (its `fused` attribute), restored afterwards."""
    convs = [m for m in module.modules() if isinstance(m, ModulatedConv2d)]
    before = [m.fused for m in convs]
    for m in convs:
        m.fused = False
    try:
        yield
    finally:
        for m, fused in zip(convs, before):
            m.fused = fused


def _layer_norm_2d_static(x: torch.Tensor, eps: float = 1e-6, weight: torch.Tensor | None = None,
                          bias: torch.Tensor | None = None) -> torch.Tensor:
    """`vqgan.layer_norm_2d` with the channel count read as a constant (the tracer would record x.shape)."""
    return F.layer_norm(x.permute(0, 2, 3, 1), (int(x.shape[1]),), weight, bias, eps).permute(0, 3, 1, 2)


@contextlib.contextmanager
def _static_vqgan_layer_norm() -> Iterator[None]:
    original = vqgan_module.layer_norm_2d
    vqgan_module.layer_norm_2d = _layer_norm_2d_static
    try:
        yield
    finally:
        vqgan_module.layer_norm_2d = original


def _export(graph: nn.Module, args: tuple, path: Path, spec: dict[str, Any], opset: int) -> None:
    """torch.onnx.export (TorchScript exporter) of `graph` with the named inputs/outputs and dynamic axes of `spec`."""
    # Traced with autograd on, whatever the caller's mode: the networks' no-grad fast paths (in-place `out=` kernels)
    # have no ONNX form.
    names = {**spec["inputs"], **spec["outputs"]}
    dynamic = {n: {i: d for i, d in enumerate(s["shape"]) if isinstance(d, str)} for n, s in names.items()}
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: expected
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(graph.eval(), args, str(path), dynamo=False, opset_version=opset,
                          input_names=list(spec["inputs"]), output_names=list(spec["outputs"]),
                          dynamic_axes={n: d for n, d in dynamic.items() if d}, do_constant_folding=True)


def _io(shape: list[Any], dtype: str) -> dict[str, Any]:
    return {"shape": shape, "dtype": dtype}


# ---------------------------------------------------------------------------------------------------- export
def _gigagan_files(pipe: GigaGANPipeline, tmp: Path, opset: int) -> dict[str, Any]:
    g = pipe.generator
    cfg = g.config
    res = int(cfg.resolution)
    spec = {
        "inputs": {"z": _io(["batch", g.z_dim], "float32"),
                   "text_tokens": _io(["batch", "length", cfg.text_dim], "float32"),
                   "text_mask": _io(["batch", "length"], "bool"),
                   "pooled": _io(["batch", cfg.pooled_width], "float32")},
        "outputs": {"images": _io(["batch", 3, res, res], "float32")},
        "notes": "z from fastt2i.noise.seed_noise; text from the text encoder; constant noise, truncation psi = 1, "
                 "images clamped to [-1,1] (the finest pyramid level)",
    }
    gen = torch.Generator().manual_seed(0)
    B, L = 2, 4
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 2:] = False  # a padded row, so the masked attention path is traced
    args = (torch.randn(B, g.z_dim, generator=gen), torch.randn(B, L, cfg.text_dim, generator=gen), mask,
            torch.randn(B, cfg.pooled_width, generator=gen))
    with _unfused_modulated_convs(g):
        _export(_GeneratorGraph(g), args, tmp / "generator.onnx", spec, opset)
    return {"generator.onnx": spec}


def _paella_files(pipe: PaellaPipeline, tmp: Path, opset: int) -> dict[str, Any]:
    den, vq = pipe.denoiser, pipe.vqgan
    cfg = den.config
    E, n, c = int(cfg.clip_dim), int(cfg.num_clip_tokens), int(cfg.c_cond)
    K = pipe.codebook_size
    gen = torch.Generator().manual_seed(0)
    B, L = 2, 3
    h, w = pipe.token_shape()

    inputs = {"text_tokens": _io(["batch", "length", cfg.text_dim], "float32"),
              "text_mask": _io(["batch", "length"], "bool"), "drop_text": _io(["batch"], "bool")}
    args: tuple = (torch.randn(B, L, cfg.text_dim, generator=gen), torch.ones(B, L, dtype=torch.bool),
                   torch.tensor([False, True]))
    if E:
        inputs.update({"clip_text": _io(["batch", E], "float32"), "clip_image": _io(["batch", E], "float32"),
                       "drop_clip_text": _io(["batch"], "bool"), "drop_clip_image": _io(["batch"], "bool")})
        args += (torch.randn(B, E, generator=gen), torch.randn(B, E, generator=gen), torch.tensor([False, True]),
                 torch.tensor([True, False]))
    cond_spec = {"inputs": inputs,
                 "outputs": {"cond": _io(["batch", "cond_length", c], "float32"),
                             "cond_mask": _io(["batch", "cond_length"], "bool")},
                 "notes": f"cond_length = length + {2 * n if E else 0} (CLIP text and image tokens); a dropped part "
                          "is zeroed and masked; every part dropped = the unconditional (CFG) input"}
    _export(_ConditionerGraph(den.conditioner), args, tmp / "conditioner.onnx", cond_spec, opset)

    Lc = L + (2 * n if E else 0)
    cond_mask = torch.ones(B, Lc, dtype=torch.bool)
    cond_mask[1] = False  # an unconditional row, as in a CFG batch (traces the no-key path without self_attn)
    den_spec = {"inputs": {"tokens": _io(["batch", "height", "width"], "int64"), "t": _io(["batch"], "float32"),
                           "cond": _io(["batch", "cond_length", c], "float32"),
                           "cond_mask": _io(["batch", "cond_length"], "bool")},
                "outputs": {"logits": _io(["batch", K, "height", "width"], "float32")},
                "notes": f"token grid {h}x{w} at the exported resolution (any multiple of {cfg.downsampling})"}
    args = (torch.randint(0, K, (B, h, w), generator=gen), torch.tensor([1.0, 0.5]),
            torch.randn(B, Lc, c, generator=gen) * cond_mask[..., None], cond_mask)
    _export(_DenoiserGraph(den), args, tmp / "denoiser.onnx", den_spec, opset)

    dec_spec = {"inputs": {"tokens": _io(["batch", "height", "width"], "int64")},
                "outputs": {"images": _io(["batch", 3, "image_height", "image_width"], "float32")},
                "notes": "image size = 4 x the token grid; clamped to [-1,1]"}
    with _static_vqgan_layer_norm():
        _export(_DecoderGraph(vq), (args[0],), tmp / "vqgan_decoder.onnx", dec_spec, opset)
    return {"conditioner.onnx": cond_spec, "denoiser.onnx": den_spec, "vqgan_decoder.onnx": dec_spec}


def _check_target(out: Path, source: Path, kind: str, overwrite: bool) -> bool:
    """Refuse an out dir that is the source model or above it, then apply `check_export_target`'s rules.

    Returns True when `out` is an earlier ONNX export of the same class (replaced like an export of its own kind).
    """
    o, s = out.resolve(), source.resolve()
    if o == s or o in s.parents:
        raise ConfigError(f"--out {out} is the model's own directory ({source}) or a folder above it; export the "
                          "ONNX files to a new directory")
    found = _onnx_class(out) if out.is_dir() else None
    if found is None:
        check_export_target(out, kind=kind, overwrite=overwrite)
        return False
    if found != kind and not overwrite:
        raise ConfigError(f"{out} holds a {found!r} ONNX export, not {kind!r}; pass overwrite=True (--overwrite) to "
                          "replace it, or choose a new directory")
    check_export_target(out, overwrite=True)  # the home, current and run directories are still refused
    return True


def _onnx_class(path: Path) -> str | None:
    try:
        meta = json.loads((path / ONNX_CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return str(meta["class"]) if isinstance(meta, dict) and "class" in meta and "format_version" in meta else None


def export_onnx(name_or_path: str | Path, out_dir: str | Path, *, opset: int | None = None,
                overwrite: bool = False, **load_kw: Any) -> list[Path]:
    """Write the ONNX graphs of a text-to-image model and `onnx_config.json` into `out_dir`.

    GigaGAN generator export -> ``generator.onnx``; Paella bundle -> ``conditioner.onnx``, ``denoiser.onnx`` and
    ``vqgan_decoder.onnx`` (see the module docstring). A bundled CLIP model (``clip/``) is copied along. `out_dir` is
    written atomically and replaced only as `fastt2i.serialization.check_export_target` allows (an earlier ONNX export
    of the same class is replaced freely; the model's own directory never is).

    Args:
        name_or_path: what `load_pipeline` takes: a bundled model's name, an export or a run directory.
        out_dir: directory to write.
        opset: ONNX opset, 14..20 (default 18).
        overwrite: replace a file, a foreign directory or another kind of export at `out_dir`.
        **load_kw: passed to `load_pipeline` (text_encoder=, clip_model=).

    Returns:
        the paths written: the .onnx files, then onnx_config.json (and clip/ when copied).
    """
    opset = DEFAULT_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ConfigError(f"opset must be an integer in {OPSETS.start}..{OPSETS.stop - 1}, got {opset!r}")
    source = resolve_model(name_or_path)
    cls_name = model_class(source)
    if cls_name not in PIPELINES:
        raise ConfigError(f"{source} holds a {cls_name!r} export; ONNX export covers the text-to-image models "
                          f"({', '.join(PIPELINES.names())}): pass a GigaGAN generator export or a Paella bundle")
    kind = GIGAGAN_ONNX_CLASS if cls_name == GENERATOR_CLASS else PAELLA_ONNX_CLASS
    out = Path(out_dir).expanduser()
    same_kind = _check_target(out, source, kind, overwrite)
    pipe = load_pipeline(source, **load_kw)
    meta: dict[str, Any] = {"class": kind, "format_version": ONNX_FORMAT, "fastt2i_version": __version__,
                            "source": str(name_or_path), "source_class": cls_name, "opset": opset,
                            "exporter": "torch.onnx TorchScript (dynamo=False)", "torch_version": torch.__version__}
    te = load_kw.get("text_encoder")
    copied: list[str] = []

    def write(tmp: Path) -> None:
        if cls_name == GENERATOR_CLASS:
            g = pipe.generator
            meta.update(text_encoder=te if isinstance(te, str) else _generator_text_encoder(source, g),
                        resolution=pipe.resolution, config=to_dict(g.config))
            meta["files"] = _gigagan_files(pipe, tmp, opset)
        else:
            clip_spec = pipe.clip_model_spec
            if pipe.clip_model is not None and clip_spec is None:  # saved inside the bundle: copy it along
                shutil.copytree(source / "clip", tmp / "clip")
                clip_spec = "./clip"
                copied.append("clip")
            meta.update(text_encoder=pipe.text_encoder_spec, clip_model=clip_spec, resolution=pipe.resolution,
                        token_shape=list(pipe.token_shape()), codebook_size=pipe.codebook_size,
                        denoiser_config=to_dict(pipe.denoiser.config), vqgan_config=to_dict(pipe.vqgan.config))
            meta["files"] = _paella_files(pipe, tmp, opset)
        (tmp / ONNX_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")

    atomic_write_dir(out, write, overwrite=overwrite or same_kind)
    return [out / f for f in meta["files"]] + [out / ONNX_CONFIG] + [out / d for d in copied]


def _generator_text_encoder(source: Path, generator: nn.Module) -> str:
    """The text encoder spec a GigaGAN export names (its config.json), else the generator config's."""
    try:
        spec = json.loads((source / CONFIG_NAME).read_text()).get("text_encoder")
    except (OSError, ValueError):
        spec = None
    return spec or generator.config.text_encoder


# ---------------------------------------------------------------------------------------------------- runtime
def read_onnx_config(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """The parsed onnx_config.json of an ONNX export directory (checked: class, format, files present).

    Args:
        path: the directory `export_onnx` wrote.
        kind: the class it must hold (None = either).
    """
    p = Path(path).expanduser()
    cfg_path = p / ONNX_CONFIG
    if not cfg_path.is_file():
        hint = " (it is a PyTorch export: run `fastt2i export onnx --model DIR --out NEW_DIR`)" \
            if (p / CONFIG_NAME).is_file() else ""
        raise AssetNotFoundError(f"{p} is not an ONNX export: no {ONNX_CONFIG} in it{hint}")
    try:
        meta = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {cfg_path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("class") not in (GIGAGAN_ONNX_CLASS, PAELLA_ONNX_CLASS):
        raise ConfigError(f"{cfg_path} is not a fastt2i ONNX export config")
    if meta.get("format_version") != ONNX_FORMAT:
        raise ConfigError(f"{p} has ONNX export format {meta.get('format_version')!r}; this fastt2i reads "
                          f"{ONNX_FORMAT}")
    if kind is not None and meta["class"] != kind:
        raise ConfigError(f"{p} holds a {meta['class']!r} ONNX export, not a {kind!r}")
    for name in meta.get("files", {}):
        if not (p / name).is_file():
            raise AssetNotFoundError(f"{p} is missing {name}")
    return meta


class OnnxSession:
    """An onnxruntime InferenceSession called with torch tensors: ``session(name=tensor, ...) -> [tensor, ...]``.

    Args:
        path: the .onnx file.
        threads: intra-op threads (default: torch.get_num_threads(), so one setting governs both runtimes).
        providers: onnxruntime execution providers (default: CPU).
    """

    def __init__(self, path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None):
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, **inputs: torch.Tensor) -> list[torch.Tensor]:
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ConfigError(f"{self.path.name} needs inputs {sorted(missing)}")
        feed = {n: np.ascontiguousarray(inputs[n].detach().cpu().numpy()) for n in self.input_names}
        return [torch.from_numpy(np.asarray(o)) for o in self.session.run(None, feed)]


def _text_encoder(spec: str | None, text_encoder: str | nn.Module | None, path: Path) -> nn.Module:
    if isinstance(text_encoder, nn.Module):
        return text_encoder
    spec = text_encoder or spec
    if not spec:
        raise ConfigError(f"{path / ONNX_CONFIG} names no text encoder: pass text_encoder=")
    return load_encoder(spec)


class OnnxGigaGANPipeline(nn.Module):
    """The frozen text encoder (PyTorch) + ``generator.onnx`` (onnxruntime): ``pipe.generate(prompts, seeds)``.

    Matches `GigaGANPipeline.generate` at truncation psi = 1 (z from `seed_noise`, constant noise): seed N gives the
    same image at any batch size. Runs on CPU unless `providers` say otherwise; returns CPU tensors.

    Args:
        session: an `OnnxSession` over generator.onnx.
        text_encoder: the encoder the export names (widths checked against the recorded config).
        config: the parsed onnx_config.json.
    """

    def __init__(self, session: OnnxSession, text_encoder: nn.Module, config: dict[str, Any]):
        super().__init__()
        gcfg = config["config"]
        widths = (getattr(text_encoder, "dim", None), getattr(text_encoder, "pooled_dim", None))
        want = (gcfg["text_dim"], config["files"]["generator.onnx"]["inputs"]["pooled"]["shape"][1])
        if widths != tuple(want):
            raise ConfigError(f"text encoder {getattr(text_encoder, 'name', type(text_encoder).__name__)!r} gives "
                              f"tokens {widths[0]}-d and pooled {widths[1]}-d, but the generator expects "
                              f"{want[0]}-d and {want[1]}-d")
        self.session = session
        self.text_encoder = text_encoder
        self.config = config
        self.z_dim = int(gcfg["z_dim"])

    @classmethod
    def from_pretrained(cls, path: str | Path, text_encoder: str | nn.Module | None = None,
                        threads: int | None = None, providers: Sequence[str] | None = None) -> OnnxGigaGANPipeline:
        """Load an ONNX GigaGAN export and the text encoder its onnx_config.json names.

        Args:
            path: the directory `export_onnx` wrote.
            text_encoder: override the recorded encoder (spec string or encoder object).
            threads: onnxruntime intra-op threads (default: torch.get_num_threads()).
            providers: onnxruntime execution providers (default: CPU).
        """
        p = Path(path).expanduser()
        meta = read_onnx_config(p, GIGAGAN_ONNX_CLASS)
        enc = _text_encoder(meta.get("text_encoder"), text_encoder, p)
        return cls(OnnxSession(p / "generator.onnx", threads, providers), enc.cpu(), meta).eval()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def resolution(self) -> int:
        return int(self.config["resolution"])

    def encode(self, prompts: Sequence[str]) -> TextEmbedding:
        """Frozen encoder output for B prompts: TextEmbedding(tokens [B,L,D], mask [B,L], pooled [B,P])."""
        with torch.no_grad():
            return self.text_encoder.encode(check_prompts(prompts)).to("cpu")

    def latents(self, seeds: Sequence[int]) -> torch.Tensor:
        """z [B,z_dim], row i from seed i (`seed_noise`)."""
        return seed_noise(list(seeds), (self.z_dim,))

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], seeds: Sequence[int], truncation_psi: float = 1.0) -> torch.Tensor:
        """Images [B,3,H,W] in [-1,1] for prompt i and seed i.

        Args:
            prompts: B prompts, or one prompt used for every seed.
            seeds: B non-negative integer seeds.
            truncation_psi: only 1 (the graph has no truncation; use `GigaGANPipeline` for psi != 1).
        """
        if truncation_psi != 1:
            raise ConfigError(f"the ONNX generator is exported without truncation (psi = 1), got psi = "
                              f"{truncation_psi}; use the PyTorch pipeline for truncation")
        prompts, seeds = check_prompts(prompts), list(seeds)
        if len(prompts) == 1 and len(seeds) > 1:
            prompts = prompts * len(seeds)
        if len(prompts) != len(seeds):
            raise ConfigError(f"got {len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt")
        z = self.latents(seeds)  # [B,z_dim]
        text = self.encode(prompts)
        return self.session(z=z, text_tokens=text.tokens.float(), text_mask=text.mask,
                            pooled=text.pooled.float())[0]  # [B,3,H,W]

    def forward(self, prompts: Sequence[str], seeds: Sequence[int], truncation_psi: float = 1.0) -> torch.Tensor:
        """Alias of `generate`."""
        return self.generate(prompts, seeds, truncation_psi)


class _OnnxConditioner(nn.Module):
    """`PaellaConditioner`'s call signature over conditioner.onnx (absent CLIP vectors = zeros, dropped)."""

    def __init__(self, session: OnnxSession, config: PaellaConfig):
        super().__init__()
        self.session, self.clip_dim = session, int(config.clip_dim)

    def forward(self, text_tokens: torch.Tensor, text_mask: torch.Tensor | None = None,
                clip_text: torch.Tensor | None = None, clip_image: torch.Tensor | None = None,
                drop_text: torch.Tensor | None = None, drop_clip_text: torch.Tensor | None = None,
                drop_clip_image: torch.Tensor | None = None) -> PaellaCondition:
        B, L = text_tokens.shape[:2]
        if self.clip_dim == 0 and (clip_text is not None or clip_image is not None):
            raise ConfigError("this model has no CLIP conditioning (clip_dim=0) but CLIP vectors were given")

        def flag(drop: torch.Tensor | None, absent: bool = False) -> torch.Tensor:
            return torch.full((B,), absent) if drop is None else drop.bool() | absent

        feed = {"text_tokens": text_tokens.float(),
                "text_mask": torch.ones(B, L, dtype=torch.bool) if text_mask is None else text_mask.bool(),
                "drop_text": flag(drop_text)}
        if self.clip_dim:
            zeros = torch.zeros(B, self.clip_dim)
            feed.update(clip_text=zeros if clip_text is None else clip_text.float(),
                        clip_image=zeros if clip_image is None else clip_image.float(),
                        drop_clip_text=flag(drop_clip_text, clip_text is None),
                        drop_clip_image=flag(drop_clip_image, clip_image is None))
        cond, mask = self.session(**feed)
        return PaellaCondition(cond, mask)


class _OnnxDenoiser(nn.Module):
    """The denoiser interface `PaellaPipeline` uses (``.config``, ``.conditioner``, ``(tokens, t, cond, mask)``)."""

    def __init__(self, session: OnnxSession, conditioner: _OnnxConditioner, config: PaellaConfig):
        super().__init__()
        self.session, self.conditioner, self.config = session, conditioner, config

    def forward(self, tokens: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                cond_mask: torch.Tensor | None = None) -> torch.Tensor:
        B = tokens.shape[0]
        mask = torch.ones(cond.shape[:2], dtype=torch.bool) if cond_mask is None else cond_mask.bool()
        t = torch.as_tensor(t, dtype=torch.float32).expand(B)
        return self.session(tokens=tokens.long(), t=t, cond=cond.float(), cond_mask=mask)[0]  # [B,K,h,w]


class _OnnxVQGANDecoder(nn.Module):
    """The VQGAN interface `PaellaPipeline` uses, over vqgan_decoder.onnx (no encoder: no tokenize)."""

    token_shape = staticmethod(VQGAN.token_shape)

    def __init__(self, session: OnnxSession, codebook_size: int):
        super().__init__()
        self.session, self.codebook_size = session, int(codebook_size)

    def decode_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """Images [B,3,4h,4w] in [-1,1] from code indices [B,h,w]."""
        if indices.ndim != 3:
            raise ConfigError(f"decode_tokens expects indices [B,h,w], got {tuple(indices.shape)}")
        return self.session(tokens=indices.long())[0]

    def tokenize(self, images: torch.Tensor) -> torch.Tensor:
        raise ConfigError("the ONNX export holds the VQGAN decoder only: tokenizing images (variations, inpainting, "
                          "img2img) needs the PyTorch pipeline")


class OnnxPaellaPipeline(PaellaPipeline):
    """`PaellaPipeline` over onnxruntime: conditioner, denoiser and VQGAN decoder are ONNX sessions.

    Text encoding (and the CLIP model, when the bundle has one) stays in PyTorch; `condition`, the sampler loop
    (`sample_tokens`: `RenoiseScheduler` steps over the guided onnxruntime logits, per-seed generators) and `generate`
    are `PaellaPipeline`'s own, so a (prompt, seed) pair gives the PyTorch pipeline's tokens wherever the logits
    agree (exactly at temperature 0 when the argmax agrees). Runs on CPU unless `providers` say otherwise.

    Args:
        sessions: OnnxSessions for "conditioner", "denoiser" and "vqgan_decoder".
        text_encoder: the frozen text encoder.
        config: the parsed onnx_config.json.
        clip_model: the CLIP model (encode_text / encode_image) or None.
    """

    def __init__(self, sessions: dict[str, OnnxSession], text_encoder: nn.Module, config: dict[str, Any],
                 clip_model: nn.Module | None = None):
        dcfg = from_dict(PaellaConfig, config["denoiser_config"])
        denoiser = _OnnxDenoiser(sessions["denoiser"], _OnnxConditioner(sessions["conditioner"], dcfg), dcfg)
        vqgan = _OnnxVQGANDecoder(sessions["vqgan_decoder"], config["codebook_size"])
        super().__init__(vqgan, denoiser, text_encoder, clip_model, text_encoder_spec=config.get("text_encoder"),
                         clip_model_spec=config.get("clip_model"), resolution=config.get("resolution"))
        self.config = config

    @classmethod
    def from_pretrained(cls, path: str | Path, device: torch.device | str | None = None,
                        text_encoder: str | nn.Module | None = None, clip_model: str | nn.Module | None = None,
                        threads: int | None = None, providers: Sequence[str] | None = None) -> OnnxPaellaPipeline:
        """Load an ONNX Paella export, the text encoder and the CLIP model its onnx_config.json names.

        Args:
            path: the directory `export_onnx` wrote.
            device: only CPU (the sessions' providers choose where the graphs run).
            text_encoder: override the recorded encoder (spec string or encoder object).
            clip_model: override the recorded CLIP model ("emoji-clip", an export dir, or a model object).
            threads: onnxruntime intra-op threads (default: torch.get_num_threads()).
            providers: onnxruntime execution providers (default: CPU).
        """
        if device is not None and torch.device(device).type != "cpu":
            raise ConfigError("OnnxPaellaPipeline keeps its tensors on the CPU; choose a GPU with providers=")
        p = Path(path).expanduser()
        meta = read_onnx_config(p, PAELLA_ONNX_CLASS)
        enc = _text_encoder(meta.get("text_encoder"), text_encoder, p)
        spec = clip_model if isinstance(clip_model, str) else meta.get("clip_model")
        if isinstance(clip_model, nn.Module):
            clip = clip_model
        elif spec:
            clip = load_clip_model(str(p / spec[2:]) if spec.startswith("./") else spec)
        else:
            clip = None
        sessions = {name: OnnxSession(p / f"{name}.onnx", threads, providers)
                    for name in ("conditioner", "denoiser", "vqgan_decoder")}
        return cls(sessions, enc.cpu(), meta, clip).eval()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def save_pretrained(self, path: str | Path, *, overwrite: bool = False) -> Path:
        raise ConfigError("an ONNX pipeline cannot be saved as a PyTorch bundle: export_onnx writes ONNX exports")


ONNX_PIPELINES = {GIGAGAN_ONNX_CLASS: OnnxGigaGANPipeline, PAELLA_ONNX_CLASS: OnnxPaellaPipeline}


def load_onnx_pipeline(path: str | Path, **kw: Any) -> OnnxGigaGANPipeline | OnnxPaellaPipeline:
    """The onnxruntime pipeline for a directory `export_onnx` wrote, picked by its onnx_config.json class.

    Args:
        path: the ONNX export directory.
        **kw: passed to the pipeline's `from_pretrained` (text_encoder=, threads=, providers=, clip_model=).
    """
    meta = read_onnx_config(path)
    return ONNX_PIPELINES[meta["class"]].from_pretrained(path, **kw)
