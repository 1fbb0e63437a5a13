"""Every loss, discriminator backbone and conditioning that loads an image-text model refuses the metric networks:
emoji-net (the FD network) and emoji-clip-eval (any export or model whose config says eval_only)."""

from __future__ import annotations

import pytest
import torch

from fastt2i.assets import metric_network_refusal
from fastt2i.errors import ConfigError
from fastt2i.losses.clip_guidance import clip_guidance_loss
from fastt2i.losses.perceptual import load_perceptual_network
from fastt2i.losses.vision_aided import VisionAidedDiscriminator, generator_clip_loss
from fastt2i.models.emoji import EmojiCLIP, EmojiCLIPConfig
from fastt2i.models.image_text import load_clip_model
from fastt2i.models.stylegan_t.backbones import TappedBackbone, emoji_clip_backbone, load_backbone


def tiny_clip(eval_only: bool, arch: str = "cnn") -> EmojiCLIP:
    torch.manual_seed(0)
    return EmojiCLIP(EmojiCLIPConfig(resolution=16, channels=(8, 16), blocks=1, text_encoder="t5-tiny-random",
                                     embed_dim=32, arch=arch, patch=4, width=16, depth=1, heads=2,
                                     eval_only=eval_only))


@pytest.fixture(scope="module")
def eval_export(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("clip-eval") / "eval-only"
    tiny_clip(True).save_pretrained(path, text_encoder="t5-tiny-random")
    return str(path)


@pytest.mark.parametrize("loader", [load_clip_model, load_perceptual_network, load_backbone],
                         ids=["clip_model (CLIP loss, vision-aided D, Paella conditioning, CLIP guidance)",
                              "perceptual network (VQGAN)", "StyleGAN-T D backbone"])
def test_loaders_refuse_emoji_clip_eval_by_name_and_by_export(loader, eval_export):
    for spec in ("emoji-clip-eval", eval_export):
        with pytest.raises(ConfigError, match="evaluation-only") as e:
            loader(spec)
        assert "\n" not in str(e.value)


def test_losses_refuse_an_eval_only_model_in_memory():
    model = tiny_clip(True).eval()
    images, text = torch.zeros(2, 3, 16, 16), torch.randn(2, 32)
    with pytest.raises(ConfigError, match="CLIP guidance refused: .*evaluation-only"):
        clip_guidance_loss(model, images, text)
    with pytest.raises(ConfigError, match="CLIP loss refused"):
        generator_clip_loss(model, images, text)
    with pytest.raises(ConfigError, match="vision-aided discriminator refused"):
        VisionAidedDiscriminator(model, text_dim=32, probe_resolution=16)
    with pytest.raises(ConfigError, match="D backbone refused"):
        emoji_clip_backbone(model)
    with pytest.raises(ConfigError, match="D backbone refused"):
        TappedBackbone(model, ["trunk.stem"], 16)


def test_an_ordinary_emoji_clip_passes_and_the_reason_names_the_network():
    assert metric_network_refusal(tiny_clip(False)) is None
    assert "evaluation-only" in metric_network_refusal(tiny_clip(True))
    VisionAidedDiscriminator(tiny_clip(False).eval(), text_dim=32, probe_resolution=16)  # no error


def test_vit_tower_round_trip(tmp_path):
    model = tiny_clip(False, arch="vit").eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.save_pretrained(tmp_path / "vit", text_encoder="t5-tiny-random")
    again = EmojiCLIP.from_pretrained(tmp_path / "vit").eval()
    torch.testing.assert_close(again.encode_image(x), model.encode_image(x))
    assert again.config.arch == "vit" and again.encode_image(x).norm(dim=-1).allclose(torch.ones(2))
    with pytest.raises(ValueError, match="arch"):
        EmojiCLIPConfig(arch="mlp")
