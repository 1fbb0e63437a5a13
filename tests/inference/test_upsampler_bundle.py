"""The bundled upsampler-emoji256: the default of `--upscale`, 64 -> 256 px after any bundled base model, with a card."""

from __future__ import annotations

import json

import torch
from PIL import Image

from fastt2i.assets import ROOT
from fastt2i.cli import main
from fastt2i.inference import DEFAULT_UPSAMPLER, bundled_models, bundled_upsamplers, load_upsampler


def test_bundled_upsampler_is_the_default_and_not_a_text_to_image_model():
    assert DEFAULT_UPSAMPLER in bundled_upsamplers() and DEFAULT_UPSAMPLER not in bundled_models()
    up = load_upsampler()
    assert (up.input_resolution, up.resolution) == (64, 256)
    card = json.loads((ROOT / DEFAULT_UPSAMPLER / "card.json").read_text())
    for base in ("bicubic", "lanczos"):  # the bundle is there because it beats both on patch FD
        assert card["metrics"]["patchfd_emojinet_551"] < card["baselines"][base]["patchfd_emojinet_551"]
    assert card["metrics"]["lrpsnr_551"] >= 30


def test_generate_upscale_writes_256_px_images(tmp_path):
    out = tmp_path / "up.png"
    assert main(["generate", "red heart", "--model", "stylegan-t-emoji64", "--seeds", "0", "--upscale",
                 "-o", str(out)]) == 0
    with Image.open(out) as im:
        assert min(im.size) >= 256  # one 256 px tile (plus the grid's padding)


def test_upscaled_image_stays_close_to_its_input():
    """It starts as bicubic interpolation: downsampled back, the output is near its input (lrpsnr in the card)."""
    up = load_upsampler()
    coarse = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    lr = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)  # smooth
    hr = up.upscale(lr, ["red heart"])
    back = torch.nn.functional.interpolate(hr, size=(64, 64), mode="bicubic", antialias=True, align_corners=False)
    err = (back - lr).abs().mean()
    assert err < 0.05, err
