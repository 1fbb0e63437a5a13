"""Paella VQGAN and vector quantizer: f=4 shapes, straight-through gradients, losses, dead-code restarts, export."""

from __future__ import annotations

import pytest
import torch

from fastt2i.errors import ConfigError
from fastt2i.models import load_pretrained
from fastt2i.models.paella import VQGAN, PatchGAN, PatchGANConfig, VectorQuantizer, VQGANConfig


def tiny_config(**kw) -> VQGANConfig:
    base = dict(resolution=16, channels=(8, 16), encoder_blocks=(1, 1), decoder_blocks=(1, 2), mlp_ratio=2,
                latent_channels=4, codebook_size=32, restart_after=3)
    base.update(kw)
    return VQGANConfig(**base)


def images(b: int = 2, r: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, r, r, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_shapes_f4():
    torch.manual_seed(0)
    m = VQGAN(tiny_config())
    x = images(2, 16)
    recon, q = m(x)
    assert recon.shape == x.shape
    assert q.quantized.shape == (2, 4, 4, 4)
    assert q.indices.shape == (2, 4, 4) and q.indices.dtype == torch.long
    assert q.loss.ndim == 0 and 1 <= float(q.perplexity) <= 32 and 0 < float(q.usage) <= 1
    m.eval()
    rect = images(1, 16)[..., :12]  # non-square input of multiples of 4
    assert m.tokenize(rect).shape == (1, 4, 3)
    assert m.decode_tokens(m.tokenize(x)).shape == x.shape
    assert VQGAN.token_shape(64) == (16, 16) and m.codebook_size == 32
    with pytest.raises(ConfigError):
        m.tokenize(images(1, 14))
    with pytest.raises(ConfigError):
        VQGANConfig(resolution=18)


def test_tokenize_matches_encode_and_decode_tokens_matches_decode():
    torch.manual_seed(1)
    m = VQGAN(tiny_config()).eval()
    x = images(3, 16, seed=1)
    q = m.encode(x)
    tokens = m.tokenize(x)
    assert torch.equal(tokens, q.indices)
    torch.testing.assert_close(m.decode_tokens(tokens), m.decode(q.quantized))
    # eval mode: a sample's tokens do not depend on the rest of the batch
    assert torch.equal(m.tokenize(x[:1]), tokens[:1])


def test_quantizer_nearest_code_and_losses():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 2, beta=0.25, restart_dead=False)
    z = torch.randn(1, 2, 3, 3)
    out = vq(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    brute = torch.cdist(flat, vq.codebook.detach()).argmin(1).view(1, 3, 3)
    assert torch.equal(out.indices, brute)
    zq = vq.embed(out.indices)
    torch.testing.assert_close(out.quantized, zq)  # forward value is the code vector
    mse = ((z - zq) ** 2).mean()
    torch.testing.assert_close(out.loss, mse * 1.25)  # codebook + 0.25 * commitment (equal in value)
    # perplexity: exp(entropy) of the histogram
    p = torch.bincount(out.indices.flatten(), minlength=8).float() / 9
    torch.testing.assert_close(out.perplexity, torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    torch.testing.assert_close(out.usage, torch.tensor((p > 0).float().mean().item()))
    with pytest.raises(ConfigError):
        vq.embed(torch.full((1, 2, 2), 8))


def test_straight_through_gradient_reaches_encoder():
    torch.manual_seed(0)
    m = VQGAN(tiny_config())
    recon, q = m(images(2))
    recon.pow(2).mean().backward()  # reconstruction only (no quantizer loss): the encoder is reached only through ST
    first = m.encoder[1].weight.grad
    assert first is not None and first.abs().sum() > 0
    # the codebook gets gradients from the codebook loss, not from the reconstruction
    assert m.quantizer.codebook.grad is None or m.quantizer.codebook.grad.abs().sum() == 0
    m.zero_grad()
    _, q = m(images(2))
    q.loss.backward()
    assert m.quantizer.codebook.grad.abs().sum() > 0


def test_dead_codes_restart_to_recent_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 2, restart_after=2)
    with torch.no_grad():
        vq.codebook[1:] += 100.0  # only code 0 is near the data: codes 1..15 are never chosen
    z = torch.randn(2, 2, 4, 4)
    vq.train()
    vq(z)
    assert vq.last_restarts == 0 and int(vq.unused_steps[1]) == 1
    out = vq(z)
    assert vq.last_restarts == 15  # dead after 2 unused forwards
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for code in vq.codebook[1:].detach():
        assert (flat - code).abs().sum(1).min() < 1e-6  # each restarted code is one of the batch's z
    assert int(vq.unused_steps.max()) == 0 and out.indices.max() == 0
    # the next forward uses the restarted codes
    assert float(vq(z).usage) > 1 / 16
    # eval mode and no_grad never restart
    vq2 = VectorQuantizer(16, 2, restart_after=1)
    with torch.no_grad():
        vq2.codebook[1:] += 100.0
    before = vq2.codebook.detach().clone()
    vq2.eval()
    vq2(z)
    assert torch.equal(vq2.codebook, before)


def test_restart_is_deterministic_under_the_global_seed():
    def run() -> torch.Tensor:
        torch.manual_seed(3)
        vq = VectorQuantizer(16, 2, restart_after=1)
        with torch.no_grad():
            vq.codebook[1:] += 100.0
        vq(torch.randn(2, 2, 4, 4))
        return vq.codebook.detach().clone()

    assert torch.equal(run(), run())


def test_save_load_round_trip_exact(tmp_path):
    torch.manual_seed(0)
    m = VQGAN(tiny_config())
    m(images(4))  # moves BatchNorm running stats and the unused counters away from their init
    m.eval()
    path = m.save_pretrained(tmp_path / "vq")
    m2 = load_pretrained(path)
    assert isinstance(m2, VQGAN) and m2.config == m.config
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = images(2, seed=5)
    assert torch.equal(m.tokenize(x), m2.tokenize(x))
    assert torch.equal(m.decode_tokens(m.tokenize(x)), m2.decode_tokens(m2.tokenize(x)))


def test_blocks_start_as_identity_and_patchgan_shapes():
    from fastt2i.models.paella.vqgan import MixingBlock

    block = MixingBlock(8, 16)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(block(x), x)
    for norm, r, layers, side in (("batch", 64, 3, 6), ("group", 16, 2, 2), ("none", 16, 1, 6)):
        d = PatchGAN(PatchGANConfig(channels=8, layers=layers, norm=norm))
        assert d(images(2, r)).shape == (2, 1, side, side)
    with pytest.raises(ConfigError):
        PatchGANConfig(norm="instance")


def test_presets_build_and_paper_size():
    from fastt2i.models.paella import VQGAN_PRESETS

    assert {"tiny", "emoji64", "paper"} <= set(VQGAN_PRESETS.names())
    assert VQGAN.token_shape(VQGAN_PRESETS.build("emoji64").resolution) == (16, 16)
    paper = VQGAN_PRESETS.build("paper")
    assert (paper.codebook_size, paper.latent_channels) == (8192, 4)
    with torch.device("meta"):
        n = sum(p.numel() for p in VQGAN(paper).parameters())
    print(f"paper VQGAN: {n / 1e6:.2f}M parameters")
    assert 15e6 < n < 25e6  # Wuerstchen's Paella VQ (c_hidden 384, 12 bottleneck blocks) is about 18M
