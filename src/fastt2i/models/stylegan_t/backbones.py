"""Frozen feature backbones of the StyleGAN-T discriminator: a DINO ViT or a CNN image tower, tapped at several depths.

StyleGAN-T sec. 3.2 ("discriminator design"): D is a set of small trainable heads over the token sequences of a
frozen, self-supervised ViT-S/16 (DINO, Caron et al. 2021), read at the patch embedding and after blocks 2, 5, 8 and
11 (official `networks/discriminator.py`: `hooks=[2,5,8,11]`, `hook_patch=True`). Here a backbone is any frozen module
with:

* `resolution`: the square input size it expects; D resizes or crops to it.
* `mean`, `std`: the per-channel normalisation of its inputs, for images in [0, 1] (ImageNet's for DINO).
* `channels`: the width C_i of each tap.
* `taps(images [B,3,R,R] in [-1,1]) -> [tokens [B,C_i,N_i], ...]`: channels-first token sequences (for Conv1d heads),
  normalised internally. Differentiable with respect to `images` (G is trained through it), never with respect to
  its own weights.

`DinoBackbone` wraps a `transformers` ViTModel (loaded offline from a local directory, or a seeded random tiny one for
tests); `TappedBackbone` reads the spatial maps [B,C,H,W] of named submodules of any CNN image tower through forward
hooks and flattens them to [B,C,H*W] (`emoji_clip_backbone` taps emoji-clip's trunk). `load_backbone(spec)` builds one
from the string a D config records. emoji-net is refused everywhere: it is the FD feature network and must never be a
training signal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from fastt2i.assets import EMOJI_NET_REFUSAL, image_text_model_path
from fastt2i.assets import refuse_metric_network as refuse_image_text
from fastt2i.config import from_dict
from fastt2i.errors import ConfigError
from fastt2i.models.image_text import load_clip_model
from fastt2i.serialization import MODEL_CLASSES, read_export_config
from fastt2i.nn.vit import ViTTower
from fastt2i.text._hf import load_pretrained as hf_load, resolve_source

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_BLOCKS = (2, 5, 8, 11)  # official hooks of ViT-S/16 (12 blocks); the patch embedding is tapped as well
BACKBONE_SPECS = ("emoji-clip", "dino:/path/to/dino-vits16", "dino-tiny-random", "/path/to/emoji-clip-like-export")


@runtime_checkable
class FeatureBackbone(Protocol):
    """What the StyleGAN-T discriminator needs from a frozen backbone (see the module docstring)."""

    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: tuple[int, ...]
    spec: str | None

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]: ...


def refuse_metric_network(model: nn.Module) -> None:
    """ConfigError if `model` is a metric network (emoji-net, an eval-only emoji-clip; see
    `fastt2i.assets.metric_network_refusal`) or wraps one as `.model`."""
    refuse_image_text(model, "D backbone")


def _on_meta() -> bool:
    """True inside `with torch.device("meta")` (how `from_pretrained` sizes a model before building it for real)."""
    return torch.empty(0).device.type == "meta"


class FrozenBackbone(nn.Module):
    """Base of the backbones: frozen (no grad, eval mode, kept in eval by `train()`), normalising [-1,1] inputs.

    Args:
        resolution: the square input size.
        mean: per-channel mean of its inputs in [0,1].
        std: per-channel std of its inputs in [0,1].
        spec: the `load_backbone` spec it was built from (None for one built by hand).
    """

    def __init__(self, resolution: int, mean: Sequence[float], std: Sequence[float], spec: str | None = None):
        super().__init__()
        if resolution < 1 or len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"backbone needs resolution >= 1 and 3 means / positive stds, got {resolution}, {mean}, {std}")
        self.resolution = int(resolution)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.spec = spec
        # x in [-1,1] -> ((x + 1) / 2 - mean) / std = x * scale + shift
        scale = torch.tensor([0.5 / s for s in self.std]).view(1, 3, 1, 1)
        shift = torch.tensor([(0.5 - m) / s for m, s in zip(self.mean, self.std)]).view(1, 3, 1, 1)
        self.register_buffer("_scale", scale, persistent=False)
        self.register_buffer("_shift", shift, persistent=False)

    def freeze(self) -> FrozenBackbone:
        """requires_grad False on every weight, eval mode."""
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FrozenBackbone:
        return super().train(False)  # frozen: BatchNorm statistics and dropout never change

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [-1,1] -> the backbone's normalised input (same shape)."""
        return images * self._scale.to(images.dtype) + self._shift.to(images.dtype)

    def _check(self, images: torch.Tensor) -> None:
        r = self.resolution
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, r, r):
            raise ValueError(f"{type(self).__name__} expects images [B,3,{r},{r}] in [-1,1], got {tuple(images.shape)}")

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - every subclass defines it
        """images [B,3,R,R] in [-1,1] -> the tapped token sequences [B,C_i,N_i] (DinoBackbone, TappedBackbone)."""
        raise NotImplementedError(f"{type(self).__name__} must define taps(images) (see DinoBackbone, TappedBackbone)")

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.taps(images)


class DinoBackbone(FrozenBackbone):
    """A frozen `transformers` ViTModel (DINO ViT-S/16 in the paper) tapped at the patch embedding and after blocks.

    Each tap is the hidden state [B,1+N,C] after that block (before the final LayerNorm); as in the official code
    (DPT's `AddReadout`, start index 1) the CLS token is dropped from the sequence and added to every patch token,
    giving [B,N,C], returned channels-first [B,C,N].

    Args:
        model: a transformers `ViTModel` (its `config.image_size` is the input resolution).
        blocks: 0-based indices of the blocks whose outputs are tapped.
        patch: also tap the patch embedding (with position embeddings added), first in the list.
        mean: input normalisation mean (ImageNet's for DINO).
        std: input normalisation std.
        spec: the spec it was loaded from.
    """

    def __init__(
        self,
        model: nn.Module,
        blocks: Sequence[int] = DINO_BLOCKS,
        patch: bool = True,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        spec: str | None = None,
    ):
        cfg = model.config
        super().__init__(int(cfg.image_size), mean, std, spec)
        depth = int(cfg.num_hidden_layers)
        blocks = tuple(int(b) for b in blocks)
        if any(not 0 <= b < depth for b in blocks) or list(blocks) != sorted(set(blocks)):
            raise ConfigError(f"DINO taps must be increasing block indices in [0, {depth}), got {blocks}")
        if not blocks and not patch:
            raise ConfigError("DinoBackbone needs at least one tap")
        self.model = model
        self.blocks = blocks
        self.patch = patch
        self.hidden_indices = ((0,) if patch else ()) + tuple(b + 1 for b in blocks)  # into ViT's hidden_states
        self.channels = (int(cfg.hidden_size),) * len(self.hidden_indices)
        self.tokens = (int(cfg.image_size) // int(cfg.patch_size)) ** 2  # N, the same at every tap
        self.freeze()

    @classmethod
    def tiny_random(
        cls, seed: int = 0, depth: int = 4, width: int = 32, resolution: int = 32, patch_size: int = 8,
        spec: str | None = None,
    ) -> DinoBackbone:
        """A random-weight tiny ViT for tests (2 heads, MLP 2x), seeded without touching the global RNG; taps at the
        patch embedding and at the official blocks (2, 5, 8, 11) of 12 scaled to `depth`.

        Args:
            seed: weights seed (the same seed gives bit-identical weights).
            depth: number of blocks.
            width: hidden size.
            resolution: input size.
            patch_size: patch side (resolution must be a multiple of it).
        """
        from transformers import ViTConfig, ViTModel

        if depth < 1 or resolution % patch_size:
            raise ConfigError(f"tiny ViT needs depth >= 1 and resolution divisible by patch_size, got {depth}, "
                              f"{resolution}, {patch_size}")
        config = ViTConfig(hidden_size=width, num_hidden_layers=depth, num_attention_heads=2,
                           intermediate_size=2 * width, image_size=resolution, patch_size=patch_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ViTModel(config, add_pooling_layer=False)
        blocks = sorted({max(0, round((b + 1) * depth / 12) - 1) for b in DINO_BLOCKS})
        return cls(model, blocks=blocks, patch=True, spec=spec)

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B,3,R,R] in [-1,1] -> per tap [B,C,N] (N patch tokens, CLS added to each)."""
        self._check(images)
        x = self.normalize(images)  # [B,3,R,R]
        out = self.model(pixel_values=x, output_hidden_states=True)
        feats = []
        for i in self.hidden_indices:
            h = out.hidden_states[i]  # [B,1+N,C]
            h = h[:, 1:] + h[:, :1]  # [B,N,C]: readout "add" (CLS added to every patch token)
            feats.append(h.transpose(1, 2))  # [B,C,N]
        return feats


class ViTTowerBackbone(FrozenBackbone):
    """A frozen `fastt2i.nn.vit.ViTTower` (emoji-clip with arch="vit") tapped at its patch embedding and after every
    block: as in `DinoBackbone`, each tap [B,1+N,C] has its class token added to every patch token -> [B,C,N].

    Args:
        model: the model holding the tower as `trunk` (an EmojiCLIP; emoji-net and eval-only models are refused).
        resolution: the input size (the tower's; inputs in [-1,1] as they are).
        spec: the spec it was loaded from.
    """

    def __init__(self, model: nn.Module, resolution: int, spec: str | None = None):
        refuse_metric_network(model)
        super().__init__(resolution, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), spec)  # [-1,1] in, unchanged
        self.model = model
        tower = model.trunk
        self.channels = (tower.out_channels,) * (len(tower.blocks) + 1)
        self.tokens = tower.grid * tower.grid  # N, the same at every tap
        self.freeze()

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B,3,R,R] in [-1,1] -> per tap [B,C,N] (N patch tokens, the class token added to each)."""
        self._check(images)
        return [(h[:, 1:] + h[:, :1]).transpose(1, 2) for h in self.model.trunk.tokens(self.normalize(images))]


class _StopForward(Exception):
    """Raised by the last tap's hook so that the rest of the tower does not run."""


class TappedBackbone(FrozenBackbone):
    """Any frozen CNN image tower read at named submodules through forward hooks: maps [B,C,H,W] -> [B,C,H*W].

    The tower runs (`run(model, x)`, default `model.encode_image(x)` or `model(x)`) only until the last tap has fired.

    Args:
        model: the tower (an nn.Module; emoji-net is refused).
        names: submodule names (as in `model.named_modules()`) whose outputs are tapped, in the order returned.
        resolution: the input size.
        mean: input normalisation mean for images in [0,1] (0.5 = the tower takes [-1,1] images as they are).
        std: input normalisation std.
        channels: C of each tap; found with one probe forward when None.
        run: how to run the tower on normalised images.
        spec: the spec it was loaded from.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        resolution: int,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        channels: Sequence[int] | None = None,
        run: Callable[[nn.Module, torch.Tensor], object] | None = None,
        spec: str | None = None,
    ):
        refuse_metric_network(model)
        super().__init__(resolution, mean, std, spec)
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if not names or missing:
            raise ConfigError(f"TappedBackbone needs submodule names of {type(model).__name__}; unknown: {missing} "
                              f"(some known: {[n for n in modules if n][:8]})")
        self.model = model
        self.names = tuple(names)
        self._run = run
        self.freeze()
        if channels is None:
            p = next(model.parameters(), None)
            probe = torch.zeros(1, 3, self.resolution, self.resolution,
                                device=p.device if p is not None else None, dtype=p.dtype if p is not None else None)
            with torch.no_grad():
                channels = [t.shape[1] for t in self.taps(probe)]
        if len(channels) != len(self.names):
            raise ConfigError(f"{len(channels)} channel counts for {len(self.names)} taps")
        self.channels = tuple(int(c) for c in channels)

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B,3,R,R] in [-1,1] -> per tap [B,C_i,H_i*W_i]."""
        self._check(images)
        x = self.normalize(images)  # [B,3,R,R]
        got: dict[str, torch.Tensor] = {}

        def hook(name: str):
            def fn(module, args, output):
                got[name] = output
                if len(got) == len(self.names):
                    raise _StopForward
            return fn

        handles = [self.model.get_submodule(n).register_forward_hook(hook(n)) for n in self.names]
        try:
            if self._run is not None:
                self._run(self.model, x)
            elif callable(getattr(self.model, "encode_image", None)):
                self.model.encode_image(x)
            else:
                self.model(x)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        if len(got) != len(self.names):
            raise ConfigError(f"taps {[n for n in self.names if n not in got]} never ran in {type(self.model).__name__}")
        out = []
        for n in self.names:
            f = got[n]
            if f.ndim != 4:
                raise ConfigError(f"tap {n!r} gives {tuple(f.shape)}, not a spatial map [B,C,H,W]")
            out.append(f.flatten(2))  # [B,C,H*W]
        return out


def emoji_clip_backbone(model: nn.Module, spec: str | None = None) -> FrozenBackbone:
    """emoji-clip's image tower tapped at 5 depths: the stem and the last block of each of its 4 stages (the maps of
    `EmojiCLIPFeatureMaps`), widths = its `config.channels`, input = its `config.resolution` in [-1,1]; a ViT tower
    (arch="vit") is tapped at its patch embedding and after every block (`ViTTowerBackbone`).

    Args:
        model: an EmojiCLIP (or any model with a `fastt2i.nn.convnet.ConvTrunk` named `trunk` and a `config` with
            `resolution`), e.g. `load_clip_model("emoji-clip")`.
        spec: the spec it was loaded from.
    """
    refuse_metric_network(model)
    trunk = getattr(model, "trunk", None)
    resolution = int(getattr(getattr(model, "config", None), "resolution", 64))
    if isinstance(trunk, ViTTower):  # arch="vit": the patch embedding and every block
        return ViTTowerBackbone(model, resolution, spec=spec)
    if trunk is None or not hasattr(trunk, "stem") or not hasattr(trunk, "blocks"):
        raise ConfigError(f"{type(model).__name__} has no convolutional trunk (stem + blocks) to tap")
    ends = [i - 1 for i, blk in enumerate(trunk.blocks) if i > 0 and blk.conv1.stride[0] == 2] + [len(trunk.blocks) - 1]
    names = ["trunk.stem"] + [f"trunk.blocks.{i}" for i in ends]
    channels = [trunk.stem.out_channels] + [trunk.blocks[i].conv2.out_channels for i in ends]
    return TappedBackbone(model, names, resolution, channels=channels, run=lambda m, x: m.trunk(x), spec=spec)


def _image_norm(path: Path) -> tuple[Sequence[float], Sequence[float]]:
    """image_mean / image_std of a transformers preprocessor_config.json beside the weights, else ImageNet's."""
    try:
        pre = json.loads((path / "preprocessor_config.json").read_text())
        mean, std = pre["image_mean"], pre["image_std"]
        if len(mean) == 3 and len(std) == 3:
            return mean, std
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return IMAGENET_MEAN, IMAGENET_STD


def _load_dino(source: str, spec: str) -> DinoBackbone:
    from transformers import ViTConfig, ViTModel  # transformers is heavy: imported when a DINO backbone is built

    where = resolve_source(source, "dino", ("vit", "dino"))
    if _on_meta():  # sizing only: the architecture from config.json, no weights read
        model = ViTModel(hf_load(ViTConfig.from_pretrained, where, "dino"), add_pooling_layer=False)
    else:
        model = hf_load(lambda s, **kw: ViTModel.from_pretrained(s, add_pooling_layer=False, **kw), where, "dino")
    depth = int(model.config.num_hidden_layers)
    blocks = DINO_BLOCKS if depth == 12 else sorted({max(0, round((b + 1) * depth / 12) - 1) for b in DINO_BLOCKS})
    mean, std = _image_norm(where) if isinstance(where, Path) else (IMAGENET_MEAN, IMAGENET_STD)
    return DinoBackbone(model, blocks=blocks, mean=mean, std=std, spec=spec)


def _load_image_text(spec: str) -> TappedBackbone:
    path = image_text_model_path(spec, "D backbone")  # refuses emoji-net by name and by export class
    if not _on_meta():
        return emoji_clip_backbone(load_clip_model(spec), spec=spec)
    meta = read_export_config(path)  # sizing only: build the class from its config, no weights read
    if meta["class"] not in MODEL_CLASSES:
        raise ConfigError(f"D backbone {spec!r} holds a {meta['class']!r} model, which no imported module registers")
    cls = MODEL_CLASSES.get(meta["class"])
    return emoji_clip_backbone(cls(from_dict(cls.config_class, meta["config"])), spec=spec)


def load_backbone(spec: str, device: torch.device | str | None = None) -> FrozenBackbone:
    """The frozen D backbone named by `spec` (the string a `StyleGANTDiscriminatorConfig` records).

    Args:
        spec: "emoji-clip" (bundled CNN tower, 64 px, 5 taps); "dino:/path/to/dir" (a transformers ViT directory such
            as facebook/dino-vits16, 224 px, patch embedding + blocks 2, 5, 8, 11; a hub id in the local HF cache
            also works); "dino-tiny-random" or "dino-tiny-random:SEED" (a seeded random 4-block, 32-wide ViT at
            32 px for tests); or an export directory of an emoji-clip-like image-text model. "emoji-net" (or an
            emoji-net export) is refused: it is the FD network.
        device: where to put it (default CPU).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"D backbone spec must be a non-empty string, one of {', '.join(BACKBONE_SPECS)}")
    spec = spec.strip()
    if spec == "emoji-net" or spec.startswith("emoji-net:"):
        raise ConfigError(f"D backbone {spec!r} refused: {EMOJI_NET_REFUSAL}; use 'emoji-clip' or "
                          f"'dino:/path/to/dino-vits16'")
    if spec == "dino-tiny-random" or spec.startswith("dino-tiny-random:"):
        seed = spec.partition(":")[2] or "0"
        if not seed.isdigit():
            raise ConfigError(f"D backbone {spec!r}: the seed after 'dino-tiny-random:' must be an integer")
        backbone: FrozenBackbone = DinoBackbone.tiny_random(seed=int(seed), spec=spec)
    elif spec.startswith("dino:"):
        source = spec[len("dino:"):]
        if not source:
            raise ConfigError("D backbone 'dino:' needs a directory: dino:/path/to/dino-vits16")
        backbone = _load_dino(source, spec)
    elif spec in ("emoji-clip", "emoji-clip-eval") or Path(spec).expanduser().is_dir():  # (-eval: refused there)
        backbone = _load_image_text(spec)  # refuses an emoji-net export by its class (image_text_model_path)
    else:
        raise ConfigError(f"unknown D backbone {spec!r}; expected one of {', '.join(BACKBONE_SPECS)}")
    return backbone.to(device) if device is not None else backbone
