"""EMA: StyleGAN beta with half-life and ramp-up, exact update arithmetic, buffers copied, eval-mode deepcopy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastt2i.training import EMA, ema_beta


def test_beta_formula():
    assert ema_beta(32, 10**6, 10.0, None) == pytest.approx(0.5 ** (32 / 10_000))
    assert ema_beta(32, 10_000, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 500))  # ramp-up caps the half-life
    assert ema_beta(32, 10**7, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 10_000))
    assert ema_beta(32, 0, 10.0, 0.05) == 0.0  # first step: the EMA becomes a copy
    assert ema_beta(1000, 5, 1.0, None) == pytest.approx(0.5)  # one half-life per batch


def test_update_blends_parameters_and_copies_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(model, ema_kimg=0.004, rampup=None)
    assert ema.module is not model and not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    old = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(5, 3))  # changes the BatchNorm running stats
    beta = ema.update(model, cur_nimg=100, batch_size=4)
    assert beta == pytest.approx(0.5)
    for name, p in model.named_parameters():
        expected = p.detach().lerp(old[name], beta)
        assert torch.equal(ema.module.state_dict()[name], expected), name
        assert torch.allclose(expected, 0.5 * (old[name] + p.detach()))
    for name, b in model.named_buffers():
        assert torch.equal(ema.module.state_dict()[name], b), name


def test_state_dict_round_trip():
    model = nn.Linear(4, 4)
    a, b = EMA(model), EMA(nn.Linear(4, 4))
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_multi_tensor_update_is_bit_identical_to_the_per_parameter_lerp(dtype):
    torch.manual_seed(0)
    model = nn.ParameterList([nn.Parameter(torch.randn(n, dtype=dtype) * 10.0 ** e)
                              for n, e in [(1, 0), (7, -3), (33, 2), (1000, 0), (4099, -1)]])
    model.register_buffer("count", torch.zeros(3))
    ema = EMA(model, ema_kimg=0.5, rampup=0.05)
    reference = [p.detach().clone() for p in ema.module.parameters()]
    betas = set()
    nimg = 0
    for _ in range(60):  # the ramp-up's first steps (beta 0, then < 1/2) and the plateau (beta > 1/2)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.9).add_(torch.randn_like(p) * p.abs().mean())
            model.count.add_(1)
        beta = ema.update(model, nimg, 32)
        betas.add(beta > 0.5)
        for r, p in zip(reference, model.parameters()):
            r.copy_(p.detach().lerp(r, beta))  # the loop the multi-tensor update replaced
        nimg += 32
        for r, e in zip(reference, ema.module.parameters()):
            assert torch.equal(r, e)
        assert torch.equal(ema.module.count, model.count)
    assert betas == {True, False}
