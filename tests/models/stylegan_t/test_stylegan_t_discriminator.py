"""StyleGAN-T discriminator and its frozen backbones: the backbone never changes and never learns but passes gradients
to the images, text dependence, virtual-batch BN, spectral norm + circular conv, crop/resize/blur of the inputs,
save/load with the backbone rebuilt from its spec, and the refusals of emoji-net and unknown specs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastt2i.errors import ConfigError
from fastt2i.models.emoji import EmojiNet, EmojiNetConfig
from fastt2i.models.image_text import load_clip_model
from fastt2i.models.stylegan_t.backbones import (
    DinoBackbone,
    TappedBackbone,
    emoji_clip_backbone,
    load_backbone,
)
from fastt2i.models.stylegan_t.discriminator import (
    StyleGANTDiscriminator,
    SpectralConv1d,
    StyleGANTDiscriminatorConfig,
    VirtualBatchNorm1d,
    blur,
)
from fastt2i.serialization import load_pretrained

C_DIM = 12
TINY = dict(backbone="dino-tiny-random", c_dim=C_DIM, head_channels=16, cmap_dim=8)


def make(**kw) -> StyleGANTDiscriminator:
    torch.manual_seed(0)
    return StyleGANTDiscriminator(StyleGANTDiscriminatorConfig(**{**TINY, **kw}))


def batch(b: int = 4, res: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, res, res, generator=g) * 2 - 1, torch.randn(b, C_DIM, generator=g)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict(keep_vars=True).items()}


def test_tiny_dino_taps_patch_and_scaled_official_blocks():
    bb = load_backbone("dino-tiny-random")
    assert isinstance(bb, DinoBackbone) and bb.resolution == 32 and bb.spec == "dino-tiny-random"
    assert bb.blocks == (0, 1, 2, 3) and bb.hidden_indices == (0, 1, 2, 3, 4)  # 2,5,8,11 of 12 -> 0,1,2,3 of 4
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    taps = bb.taps(x)
    assert [t.shape for t in taps] == [torch.Size([2, 32, 16])] * 5  # [B,C,N], N = (32/8)^2, CLS folded in
    hs = bb.model(pixel_values=bb.normalize(x), output_hidden_states=True).hidden_states
    for t, i in zip(taps, bb.hidden_indices):  # official readout: patch tokens + CLS token, channels-first
        torch.testing.assert_close(t, (hs[i][:, 1:] + hs[i][:, :1]).transpose(1, 2))
    # seeded: the same weights every time, a different seed gives others
    again = load_backbone("dino-tiny-random")
    assert all(torch.equal(a, b) for a, b in zip(bb.state_dict().values(), again.state_dict().values()))
    other = load_backbone("dino-tiny-random:1")
    assert not torch.equal(next(iter(other.state_dict().values())), next(iter(bb.state_dict().values())))


def test_dino_loads_offline_from_a_local_directory(tmp_path):
    src = DinoBackbone.tiny_random(seed=3)
    src.model.save_pretrained(tmp_path / "vit")
    bb = load_backbone(f"dino:{tmp_path / 'vit'}")
    assert isinstance(bb, DinoBackbone) and bb.resolution == 32 and bb.blocks == src.blocks
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for a, b in zip(bb.taps(x), src.taps(x)):
        torch.testing.assert_close(a, b)
    with pytest.raises(Exception, match="no such directory"):
        load_backbone(f"dino:{tmp_path / 'missing'}")


def test_backbone_is_frozen_outside_the_state_dict_and_unchanged_by_training():
    D = make()
    bb = D.backbone
    before = snapshot(bb)
    assert all(not k.startswith("backbone") for k in D.state_dict())
    assert all(k.startswith("heads.") for k in D.state_dict())
    bb_params = {id(p) for p in bb.parameters()}
    assert bb_params and not bb_params & {id(p) for p in D.parameters()}
    D.train()
    assert D.training and not bb.training and not any(m.training for m in bb.modules())
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    x, c = batch()
    x.requires_grad_(True)
    heads_before = snapshot(D.heads)
    (D(x, c).square().mean() + D(x.flip(0), c).mean()).backward()  # two training forwards, one backward
    assert x.grad is not None and x.grad.abs().sum() > 0  # G is trained through the frozen backbone
    assert all(p.grad is None for p in bb.parameters())
    opt.step()
    after = snapshot(bb)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # parameters and buffers bit-identical
    assert any(not torch.equal(heads_before[k], v) for k, v in snapshot(D.heads).items())  # the heads did learn
    D.requires_grad_(True)  # a trainer toggling D's grads does not reach the backbone
    assert not any(p.requires_grad for p in bb.parameters())


def test_emoji_clip_backbone_taps_five_depths_and_stays_in_eval_mode():
    clip = load_clip_model("emoji-clip")
    bb = emoji_clip_backbone(clip)
    assert bb.names == ("trunk.stem", "trunk.blocks.1", "trunk.blocks.3", "trunk.blocks.5", "trunk.blocks.7")
    assert bb.resolution == 64 and bb.channels == (32, 32, 64, 128, 192)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    calls = []
    clip.proj.register_forward_hook(lambda *a: calls.append(1))
    taps = bb.taps(x)
    assert not calls  # the tower stops after its last tap
    assert [tuple(t.shape) for t in taps] == [(2, 32, 1024), (2, 32, 1024), (2, 64, 256), (2, 128, 64), (2, 192, 16)]
    ref = clip.trunk.blocks[:4](clip.trunk.stem(x))  # [-1,1] images go in unnormalised (mean = std = 0.5)
    torch.testing.assert_close(taps[2], ref.flatten(2))
    D = StyleGANTDiscriminator(StyleGANTDiscriminatorConfig(backbone="emoji-clip", c_dim=C_DIM, cmap_dim=8),
                               backbone=bb)
    D.train()
    assert not clip.training
    assert D(x, torch.randn(2, C_DIM)).shape == (2, 1024 + 1024 + 256 + 64 + 16)


def test_a_vit_emoji_clip_is_tapped_at_its_patch_embedding_and_every_block(tmp_path):
    from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig
    from fastt2i.models.stylegan_t.backbones import ViTTowerBackbone

    torch.manual_seed(0)
    clip = EmojiCLIP(EmojiCLIPConfig(resolution=16, text_encoder="t5-tiny-random", embed_dim=32, arch="vit", patch=4,
                                     width=16, depth=3, heads=2))
    clip.save_pretrained(tmp_path / "vit-clip", text_encoder="t5-tiny-random")
    bb = load_backbone(str(tmp_path / "vit-clip"))
    assert isinstance(bb, ViTTowerBackbone) and bb.channels == (16,) * 4 and bb.tokens == 16
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    taps = bb.taps(x)
    assert [tuple(t.shape) for t in taps] == [(2, 16, 16)] * 4
    h = bb.model.trunk.tokens(x)[2]  # [-1,1] in as it is; class token added to every patch token
    torch.testing.assert_close(taps[2], (h[:, 1:] + h[:, :1]).transpose(1, 2))
    D = StyleGANTDiscriminator(StyleGANTDiscriminatorConfig(backbone=str(tmp_path / "vit-clip"), c_dim=C_DIM,
                                                            head_channels=8, cmap_dim=8, virtual_batch=1))
    before = {k: v.clone() for k, v in D.backbone.state_dict().items()}
    out = D(x, torch.randn(2, C_DIM))
    out.sum().backward()
    assert out.shape == (2, 4 * 16) and all(p.grad is None for p in D.backbone.parameters())
    assert all(torch.equal(v, D.backbone.state_dict()[k]) for k, v in before.items())


def test_output_depends_on_the_caption_embedding_and_has_one_logit_per_token():
    D = make()
    x, c = batch()
    out = D(x, c)
    assert out.shape == (4, 5 * 16) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert not torch.allclose(out, D(x, c.flip(0)))
    assert not torch.allclose(out, D(x, torch.randn_like(c)))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: logits still fp32, finite
        xg = x.clone().requires_grad_(True)
        mixed = D(xg, c)
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    mixed.sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    u = make(c_dim=0)  # unconditional heads
    assert u(x, None).shape == (4, 80)
    with pytest.raises(ValueError, match="pooled text embedding"):
        D(x, torch.randn(4, C_DIM + 1))
    sub = make(taps=(0, 4))
    assert len(sub.heads) == 2 and sub(x, c).shape == (4, 32)
    with pytest.raises(ConfigError, match="out of range"):
        make(taps=(5,))


def test_virtual_batchnorm_normalises_each_group_of_eight():
    torch.manual_seed(0)
    bn = VirtualBatchNorm1d(3, group=8)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    x = torch.randn(16, 3, 5) * 3 + 1
    y = bn(x)
    for g in range(2):  # by hand: mean/biased variance over the group's 8 samples and 5 tokens, per channel
        xs = x[8 * g:8 * g + 8]
        mean = xs.mean(dim=(0, 2), keepdim=True)
        var = ((xs - mean) ** 2).mean(dim=(0, 2), keepdim=True)
        ref = (xs - mean) / torch.sqrt(var + 1e-5) * bn.weight[None, :, None] + bn.bias[None, :, None]
        torch.testing.assert_close(y[8 * g:8 * g + 8], ref)
    x2 = x.clone()
    x2[12] += 10  # a sample of the second group does not move the first group
    y2 = bn(x2)
    torch.testing.assert_close(y2[:8], y[:8])
    assert not torch.allclose(y2[8:], y[8:])
    bn.eval()  # no running statistics: eval is the same computation
    torch.testing.assert_close(bn(x), y)
    # B = 12 -> ceil(12 / 8) = 2 groups of 6 (the official grouping); B = 9 -> groups of 5 and 4
    z = bn(x[:12])
    torch.testing.assert_close(z[:6], bn(x[:6]))
    torch.testing.assert_close(bn(x[:9])[:5], bn(x[:5]))


def test_head_convs_are_spectrally_normalised_and_the_kernel9_conv_is_circular():
    D = make()
    for head in D.heads.values():
        convs = [head.conv_in.conv, head.res.conv, head.cls]
        for conv in convs:
            assert isinstance(conv, SpectralConv1d) and conv.weight_u.shape == (conv.out_channels,)
            raw = conv.weight.detach().flatten(1)
            assert not torch.linalg.matrix_norm(raw, ord=2) == pytest.approx(1.0, abs=0.05)
            with torch.no_grad():
                for _ in range(30):  # one power iteration per training forward
                    conv(torch.randn(2, conv.in_channels, 9))
            conv.eval()
            w = conv.normalized_weight().detach().flatten(1)  # [out, in*k], the matrix spectral norm divides by
            assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=1e-3)
        res = head.res.conv
        assert res.kernel_size == (9,) and res.padding == (4,) and res.padding_mode == "circular"
        x = torch.randn(2, res.in_channels, 16)
        with torch.no_grad():  # circular: rolling the token sequence rolls the output
            torch.testing.assert_close(res(x.roll(3, dims=2)), res(x).roll(3, dims=2))


def test_larger_inputs_are_randomly_cropped_per_sample_and_smaller_ones_resized():
    D = make(p_crop=1.0)
    x = torch.rand(6, 3, 48, 48) * 2 - 1
    out = D.prepare(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 32, 32)
    offsets = []
    for i in range(6):  # every sample is an exact 32x32 window of its own image
        wins = x[i].unfold(1, 32, 1).unfold(2, 32, 1)  # [3,17,17,32,32]
        hit = (wins == out[i][:, None, None]).flatten(3).all(dim=3).all(dim=0).nonzero()
        assert len(hit) >= 1
        offsets.append(tuple(hit[0].tolist()))
    assert len(set(offsets)) > 1  # per-sample offsets
    torch.testing.assert_close(D.prepare(x, generator=torch.Generator().manual_seed(0)), out)  # seeded
    assert not torch.equal(D.prepare(x, generator=torch.Generator().manual_seed(1)), out)
    resized = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(make(p_crop=0.0).prepare(x), resized)
    half = make(p_crop=0.5).prepare(x, generator=torch.Generator().manual_seed(0))
    cropped = (torch.rand(6, generator=torch.Generator().manual_seed(0)) < 0.5).tolist()  # the first draw of prepare
    assert 0 < sum(cropped) < 6
    assert [not torch.allclose(half[i], resized[i]) for i in range(6)] == cropped
    small = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(D.prepare(small), F.interpolate(small, size=(32, 32), mode="bilinear",
                                                               align_corners=False))
    x32 = torch.rand(2, 3, 32, 32)
    assert D.prepare(x32) is x32  # already the backbone's size: untouched
    # gradients flow through the crop
    xg = x.clone().requires_grad_(True)
    D(xg, torch.randn(6, C_DIM), generator=torch.Generator().manual_seed(0)).sum().backward()
    assert xg.grad.abs().sum() > 0


def test_blur_sigma_changes_the_output_and_zero_does_not_blur():
    D = make().eval()  # eval: spectral norm's power iteration would otherwise move between the calls
    x, c = batch()
    assert blur(x, 0.0) is x and blur(x, 0.3) is x  # floor(3 sigma) = 0: no blur (official)
    torch.testing.assert_close(D(x, c, blur_sigma=0.0), D(x, c))
    assert not torch.allclose(D(x, c, blur_sigma=1.0), D(x, c))
    b = blur(x, 1.0)
    assert b.shape == x.shape and b.std() < x.std()
    const = torch.full((1, 3, 8, 8), 0.25)
    torch.testing.assert_close(blur(const, 2.0), const)  # normalised kernel, reflect padding: constants stay
    impulse = torch.zeros(1, 1, 9, 9)
    impulse[0, 0, 4, 4] = 1
    f = torch.tensor([2.0 ** -((t / 1.0) ** 2) for t in range(-3, 4)])
    f = f / f.sum()
    torch.testing.assert_close(blur(impulse, 1.0)[0, 0, 1:8, 1:8], f[:, None] * f[None, :])  # separable kernel
    calls = []
    D(x, c, augment=lambda t: calls.append(t.shape) or -t)
    assert calls == [x.shape]


@pytest.mark.parametrize("spec,res,taps", [("dino-tiny-random", 32, ()), ("emoji-clip", 64, (3, 4))])
def test_save_load_round_trip_rebuilds_the_backbone_from_its_spec(tmp_path, spec, res, taps):
    D = make(backbone=spec, taps=taps)
    with torch.no_grad():  # move the heads off their init so the check means something
        for p in D.heads.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    D.eval()
    x, c = batch(res=res)
    ref = D(x, c)
    D.save_pretrained(tmp_path / "d")
    for loaded in (StyleGANTDiscriminator.from_pretrained(tmp_path / "d"), load_pretrained(tmp_path / "d")):
        assert isinstance(loaded, StyleGANTDiscriminator) and loaded.config == D.config
        assert loaded.backbone is not D.backbone and loaded.backbone.spec == spec
        assert not loaded.training and not loaded.backbone.training
        assert torch.equal(loaded(x, c), ref)


def test_a_backbone_passed_in_must_match_the_configs_spec():
    D = make()
    bad = StyleGANTDiscriminatorConfig(**{**TINY, "backbone": "dino-tiny-random:1"})
    with pytest.raises(ConfigError, match="loaded from"):
        StyleGANTDiscriminator(bad, backbone=D.backbone)


def test_emoji_net_and_unknown_specs_are_refused_with_one_line_errors(tmp_path):
    for spec in ("emoji-net", "dino-vits16", "clip:foo", "dino:", "dino-tiny-random:x"):
        with pytest.raises(ConfigError) as e:
            load_backbone(spec)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="FD"):
        load_backbone("emoji-net")
    with pytest.raises(ConfigError, match="emoji-net"):
        StyleGANTDiscriminatorConfig(backbone="emoji-net")
    net = EmojiNet(EmojiNetConfig(resolution=16, channels=(8, 16), blocks=1, subcategories=("a",), styles=("x",)))
    path = net.save_pretrained(tmp_path / "net")
    with pytest.raises(ConfigError, match="emoji-net"):
        load_backbone(str(path))
    with pytest.raises(ConfigError, match="emoji-net"):
        emoji_clip_backbone(net)
    with pytest.raises(ConfigError, match="emoji-net"):
        TappedBackbone(net, ["trunk.stem"], 16)
    with pytest.raises(ConfigError, match="unknown"):
        TappedBackbone(load_clip_model("emoji-clip"), ["trunk.nope"], 64)


def test_config_validation():
    for bad in (dict(kernel_size=4), dict(c_dim=-1), dict(virtual_batch=0), dict(p_crop=1.5), dict(taps=(1, 1)),
                dict(head_channels=0), dict(backbone="")):
        with pytest.raises(ConfigError):
            StyleGANTDiscriminatorConfig(**{**TINY, **bad})
    assert math.isclose(StyleGANTDiscriminatorConfig().p_crop, 0.5) and StyleGANTDiscriminatorConfig().virtual_batch == 8
