"""Shared checks run on every exportable model class: shapes, determinism, batch consistency, save/load, a train step.

One entry of `MODELS` per class registered in `fastt2i.serialization.MODEL_CLASSES` (by `import fastt2i.models`):
a tiny config, example inputs, how to call forward, which outputs are per-sample, and a scalar loss. A new family is
covered by adding one entry here; `test_every_registered_class_has_an_entry` fails until it is added. Text-conditioned
models get random embeddings of the right shapes, never a loaded text encoder.

Zero-initialised gates (Paella's `clf` and FiLM, the VQGAN mixing gates, GigaGAN's noise strengths) make some
outputs constant at init, which would let the batch and round-trip checks pass without looking at anything, so every
model is built with small seeded noise added to all its parameters (`build`), and the checks assert that the outputs
do depend on the input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastt2i.models
from fastt2i.losses.contrastive import clip_contrastive_loss
from fastt2i.models.emoji.clip import EmojiCLIP, EmojiCLIPConfig
from fastt2i.models.emoji.net import EmojiNet, EmojiNetConfig
from fastt2i.models.gigagan import GIGAGAN_PRESETS, GigaGANGenerator
from fastt2i.models.gigagan.discriminator import GigaGANDiscriminator, GigaGANDiscriminatorConfig
from fastt2i.models.gigagan.presets import UPSAMPLER_PRESETS
from fastt2i.models.gigagan.upsampler import GigaGANUpsampler
from fastt2i.models.paella import VQGAN, VQGAN_PRESETS
from fastt2i.models.paella.denoiser import PaellaDenoiser
from fastt2i.models.paella.presets import PAELLA_PRESETS
from fastt2i.models.stylegan_t import (
    STYLEGAN_T_PRESETS,
    StyleGANTDiscriminator,
    StyleGANTDiscriminatorConfig,
    StyleGANTGenerator,
)
from fastt2i.serialization import MODEL_CLASSES

Tensor = torch.Tensor
Inputs = tuple  # the positional arguments of `ModelCase.call`


@dataclass(frozen=True)
class ModelCase:
    """How the shared checks build, call and train one model class.

    Args:
        cls: the registered class.
        config: a tiny config (built in well under a second, CPU).
        inputs: (batch, seed) -> example inputs, batch-first tensors (nested lists/tuples allowed).
        outputs: forward result -> {name: per-sample tensor [B,...]} (batch aggregates left out).
        shapes: batch -> {name: expected shape} of `outputs`.
        loss: (model, inputs, forward result) -> a scalar loss for one optimiser step (the model's natural loss
            where it has a simple one).
        call: (model, inputs) -> forward result; default `model(*inputs)`.
        batch_config: config for the batch-consistency check, where the tiny config has an op that mixes the rows
            of a batch by design (say which in `batch_note`).
        batch_note: why `batch_config` differs from `config`.
    """

    cls: type[nn.Module]
    config: Callable[[], Any]
    inputs: Callable[[int, int], Inputs]
    outputs: Callable[[Any], dict[str, Tensor]]
    shapes: Callable[[int], dict[str, tuple[int, ...]]]
    loss: Callable[[nn.Module, Inputs, Any], Tensor]
    call: Callable[[nn.Module, Inputs], Any] = lambda model, args: model(*args)
    batch_config: Callable[[], Any] | None = None
    batch_note: str = ""


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _text(batch: int, seed: int, dim: int, pooled_dim: int | None = None, length: int = 5):
    """Random frozen-encoder output: tokens [B,L,dim] (zero where masked), mask [B,L] bool (row 0 short), pooled
    [B,pooled_dim or dim]."""
    g = _gen(seed + 1000)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[0, 3:] = False
    tokens = torch.randn(batch, length, dim, generator=g) * mask[..., None]
    return tokens, mask, torch.randn(batch, pooled_dim or dim, generator=g)


def _images(batch: int, seed: int, res: int) -> Tensor:
    return torch.rand(batch, 3, res, res, generator=_gen(seed)) * 2 - 1  # [B,3,R,R] in [-1,1]


def _pyramid(batch: int, seed: int, res: int, levels: int) -> list[Tensor]:
    return [_images(batch, seed + k, res >> k) for k in range(levels)]  # finest first


# --- gigagan ----------------------------------------------------------------------------------------------------------

def _g_config():
    return GIGAGAN_PRESETS.build("tiny")


def _g_inputs(batch: int, seed: int) -> Inputs:
    cfg = _g_config()
    return torch.randn(batch, cfg.z_dim, generator=_gen(seed)), _text(batch, seed, cfg.text_dim, cfg.pooled_width)


def _d_config(**kw) -> GigaGANDiscriminatorConfig:
    """The discriminator of the `gigagan_tiny` training run (fastt2i.training.presets), minibatch-std in groups of 2."""
    return GigaGANDiscriminatorConfig(
        resolution=16, pyramid_levels=3, channels=(16, 32, 32), text_encoder="t5-tiny-random", text_dim=32,
        cond_dim=32, text_attn_layers=1, text_heads=2, head_layers=1, mbstd_group=2, **kw)


def _d_inputs(batch: int, seed: int) -> Inputs:
    return (_pyramid(batch, seed, 16, 3), *_text(batch, seed, 32))


def _d_outputs(out) -> dict[str, Tensor]:
    return {f"D{o.i}{o.j}": o.logits for o in out}


D_PAIRS = [(i, j) for j in range(3) for i in range(j + 1)]


def _up_inputs(batch: int, seed: int) -> Inputs:
    cfg = UPSAMPLER_PRESETS.build("tiny")
    return (_images(batch, seed, cfg.input_resolution), torch.randn(batch, cfg.z_dim, generator=_gen(seed + 1)),
            _text(batch, seed, cfg.text_dim, cfg.pooled_width))

# --- paella -----------------------------------------------------------------------------------------------------------


def _paella_inputs(batch: int, seed: int) -> Inputs:
    cfg = PAELLA_PRESETS.build("tiny")
    g = _gen(seed)
    tokens = torch.randint(0, cfg.codebook_size, (batch, *cfg.token_shape), generator=g)  # [B,h,w]
    t = torch.rand(batch, generator=g)  # [B]
    text, mask, _ = _text(batch, seed, cfg.text_dim)
    return tokens, t, text, mask


def _paella_call(model: PaellaDenoiser, args: Inputs) -> Tensor:
    tokens, t, text, mask = args
    return model.forward_condition(tokens, t, model.conditioner(text, mask))  # conditioner is part of the export


def _paella_loss(model, args, logits: Tensor) -> Tensor:
    target = torch.randint(0, logits.shape[1], logits.shape[:1] + logits.shape[2:], generator=_gen(7))  # [B,h,w]
    return F.cross_entropy(logits, target)


def _vqgan_loss(model, args, out) -> Tensor:
    recon, q = out
    return (recon - args[0]).abs().mean() + q.loss  # L1 reconstruction + codebook/commitment


# --- emoji ------------------------------------------------------------------------------------------------------------

EMOJI_CLIP = EmojiCLIPConfig(resolution=16, channels=(8, 16), blocks=1, text_encoder="t5-tiny-random", embed_dim=32)
EMOJI_NET = EmojiNetConfig(resolution=16, channels=(8, 16), blocks=1, subcategories=("a", "b", "c"), styles=("x", "y"))


def _clip_loss(model: EmojiCLIP, args, emb: Tensor) -> Tensor:
    text = F.normalize(torch.randn(emb.shape, generator=_gen(7)), dim=-1)  # stands in for the locked text tower
    return clip_contrastive_loss(emb, text, model.logit_scale)


def _net_loss(model, args, out) -> Tensor:
    sub, style = out
    b = sub.shape[0]
    return F.cross_entropy(sub, torch.arange(b) % sub.shape[1]) + F.cross_entropy(style, torch.arange(b) % 2)


def _sgt_d_config() -> StyleGANTDiscriminatorConfig:
    return StyleGANTDiscriminatorConfig(backbone="dino-tiny-random", c_dim=12, head_channels=16, cmap_dim=8)


MODELS: dict[str, ModelCase] = {
    "gigagan-generator": ModelCase(
        cls=GigaGANGenerator, config=_g_config, inputs=_g_inputs,
        outputs=lambda out: {f"level{k}": x for k, x in enumerate(out)},
        shapes=lambda b: {"level0": (b, 3, 16, 16), "level1": (b, 3, 8, 8), "level2": (b, 3, 4, 4)},
        loss=lambda model, args, out: sum(x.square().mean() for x in out),
    ),
    "gigagan-discriminator": ModelCase(
        cls=GigaGANDiscriminator, config=_d_config, inputs=_d_inputs, outputs=_d_outputs,
        shapes=lambda b: {f"D{i}{j}": (b,) for i, j in D_PAIRS},
        loss=lambda model, args, out: sum(F.softplus(o.logits).mean() for o in out),  # logistic loss on "fakes"
        batch_config=lambda: dataclasses.replace(_d_config(), mbstd_group=0),
        batch_note="minibatch-std (StyleGAN2) mixes the rows of a group by design; checked with mbstd_group=0",
    ),
    "gigagan-upsampler": ModelCase(
        cls=GigaGANUpsampler, config=lambda: UPSAMPLER_PRESETS.build("tiny"), inputs=_up_inputs,
        outputs=lambda out: {f"level{k}": x for k, x in enumerate(out)},
        shapes=lambda b: {"level0": (b, 3, 32, 32), "level1": (b, 3, 16, 16)},
        loss=lambda model, args, out: sum(x.square().mean() for x in out),
    ),
    "stylegan-t-generator": ModelCase(
        cls=StyleGANTGenerator, config=lambda: STYLEGAN_T_PRESETS.build("tiny"),
        inputs=lambda b, s: (torch.randn(b, 32, generator=_gen(s)), _text(b, s, 32, 32)),
        outputs=lambda out: {"image": out[0]}, shapes=lambda b: {"image": (b, 3, 16, 16)},
        loss=lambda model, args, out: out[0].square().mean(),
    ),
    "stylegan-t-discriminator": ModelCase(
        cls=StyleGANTDiscriminator, config=_sgt_d_config,
        inputs=lambda b, s: (_images(b, s, 32), torch.randn(b, 12, generator=_gen(s + 1))),
        outputs=lambda out: {"logits": out}, shapes=lambda b: {"logits": (b, 80)},  # 5 taps x 16 tokens (4x4 patches of 8 px)
        loss=lambda model, args, out: F.relu(1 + out).mean(),  # hinge loss on "fakes"
        batch_config=lambda: dataclasses.replace(_sgt_d_config(), virtual_batch=1),
        batch_note="BatchNorm over virtual batches of 8 (StyleGAN-T sec. 3.2) mixes the rows of a group by design; "
                   "checked with virtual_batch=1",
    ),
    "paella-vqgan": ModelCase(
        cls=VQGAN, config=lambda: VQGAN_PRESETS.build("tiny"), inputs=lambda b, s: (_images(b, s, 16),),
        outputs=lambda out: {"reconstruction": out[0], "indices": out[1].indices},
        shapes=lambda b: {"reconstruction": (b, 3, 16, 16), "indices": (b, 4, 4)},
        loss=_vqgan_loss,
    ),
    "paella": ModelCase(
        cls=PaellaDenoiser, config=lambda: PAELLA_PRESETS.build("tiny"), inputs=_paella_inputs,
        call=_paella_call, outputs=lambda logits: {"logits": logits}, shapes=lambda b: {"logits": (b, 64, 4, 4)},
        loss=_paella_loss,
    ),
    "emoji-clip": ModelCase(
        cls=EmojiCLIP, config=lambda: EMOJI_CLIP, inputs=lambda b, s: (_images(b, s, 16),),
        outputs=lambda emb: {"embedding": emb}, shapes=lambda b: {"embedding": (b, 32)}, loss=_clip_loss,
    ),
    "emoji-net": ModelCase(
        cls=EmojiNet, config=lambda: EMOJI_NET, inputs=lambda b, s: (_images(b, s, 16),),
        outputs=lambda out: {"subcategory": out[0], "style": out[1]},
        shapes=lambda b: {"subcategory": (b, 3), "style": (b, 2)}, loss=_net_loss,
    ),
}

NAMES = sorted(MODELS)


def build(case: ModelCase, config: Any = None, seed: int = 0) -> nn.Module:
    """The model, seeded, with N(0, 0.05^2) added to every floating-point parameter and saved buffer (wakes the
    zero-initialised gates, moves w_avg and BatchNorm statistics off their init values); eval mode."""
    torch.manual_seed(seed)
    model = case.cls(case.config() if config is None else config)
    g = _gen(seed + 1)
    with torch.no_grad():
        for t in model.state_dict().values():  # shares storage with the parameters and persistent buffers
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g, dtype=t.dtype) * 0.05)
    return model.eval()


def run(case: ModelCase, model: nn.Module, args: Inputs) -> dict[str, Tensor]:
    with torch.no_grad():
        return case.outputs(case.call(model, args))


def rows(x: Any, i: int) -> Any:
    """Row i (kept as a batch of one) of every tensor in a nested input."""
    if isinstance(x, Tensor):
        return x[i:i + 1]
    if isinstance(x, (list, tuple)):
        return type(x)(rows(v, i) for v in x)
    return x


def assert_same(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_every_registered_class_has_an_entry():
    """`import fastt2i.models` (above) registers the built-in families; classes that tests register are ignored."""
    library = {n for n in MODEL_CLASSES.names() if MODEL_CLASSES.get(n).__module__.startswith("fastt2i.")}
    missing = sorted(library - set(MODELS))
    assert not missing, f"registered model classes without a ModelCase in {__file__}: {missing}"
    assert set(MODELS) <= library, sorted(set(MODELS) - library)
    for name, case in MODELS.items():
        assert MODEL_CLASSES.get(name) is case.cls, name
        assert (case.batch_config is None) == (not case.batch_note), f"{name}: say why batch_config differs"


@pytest.mark.parametrize("name", NAMES)
def test_output_shapes_and_finite(name):
    case = MODELS[name]
    model = build(case)
    for b in (1, 3):
        out = run(case, model, case.inputs(b, 0))
        assert {k: tuple(v.shape) for k, v in out.items()} == case.shapes(b)
        for k, v in out.items():
            if v.is_floating_point():
                assert torch.isfinite(v).all(), k


@pytest.mark.parametrize("name", NAMES)
def test_determinism(name):
    """Same seed -> same weights; same input -> identical output (eval); another input -> another output."""
    case = MODELS[name]
    a, b = build(case), build(case)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    args = case.inputs(2, 0)
    first = run(case, a, args)
    assert_same(run(case, a, args), first)
    assert_same(run(case, b, args), first)
    other = run(case, a, case.inputs(2, 1))
    assert any(not torch.equal(first[k], other[k]) for k in first), "the output does not depend on the input"


@pytest.mark.parametrize("name", NAMES)
def test_batch_consistency(name):
    """Row i of a batch-of-4 forward equals the batch-of-1 forward of row i (eval mode, float reordering only: the
    tolerance scales with the output's magnitude, as untrained outputs are not normalised)."""
    case = MODELS[name]
    model = build(case, case.batch_config() if case.batch_config else None)
    args = case.inputs(4, 0)
    full = run(case, model, args)
    for k, v in full.items():  # the rows differ, so the comparison below can fail
        assert not torch.equal(v[0], v[1]), f"{k}: rows 0 and 1 are identical"
    for i in (0, 3):
        one = run(case, model, rows(args, i))
        for k in full:
            atol = 1e-5 * (1 + float(full[k].abs().max())) if full[k].is_floating_point() else 0
            torch.testing.assert_close(one[k][0], full[k][i], atol=atol, rtol=1e-4, msg=f"{k}, row {i}")


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    case = MODELS[name]
    model = build(case)
    path = model.save_pretrained(tmp_path / name)
    loaded = case.cls.from_pretrained(path)
    assert type(loaded) is case.cls and loaded.config == model.config and not loaded.training
    assert type(fastt2i.models.load_pretrained(path)) is case.cls
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys()
    for k in sd:
        assert torch.equal(sd[k], sd2[k]), k
    args = case.inputs(2, 0)
    assert_same(run(case, loaded, args), run(case, model, args))


@pytest.mark.parametrize("name", NAMES)
def test_training_step_stays_finite(name):
    """One Adam step on the model's loss: the loss, every gradient and every parameter stay finite, weights move."""
    case = MODELS[name]
    model = build(case).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    args = case.inputs(4, 0)
    loss = case.loss(model, args, case.call(model, args))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads, "no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads.values()), [n for n, g in grads.items() if not g.isfinite().all()]
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters()), "the step changed no weight"
    with torch.no_grad():
        again = case.loss(model, args, case.call(model, args))
    assert torch.isfinite(again)
