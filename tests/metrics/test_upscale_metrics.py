"""Upsampler metrics: PSNR / SSIM / lrpsnr values, patch-FD crops (determinism, ~0 for the truth, grows with blur),
the bicubic and Lanczos baselines, records, and the errors a wrong upscaler gets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from fastt2i.data.transforms import downsample_antialiased
from fastt2i.errors import ConfigError, DataError
from fastt2i.metrics import (
    EmojiNetFeatures, bicubic_upscale, crop_positions, evaluate_upscaler, evaluate_upscalers, lanczos_upscale,
    psnr_per_image, ssim_per_image,
)
from fastt2i.metrics.upscale import PSNR_CAP, take_crops

from metrics_testutils import PooledPixels


def shapes(n: int, size: int = 128, seed: int = 0) -> torch.Tensor:
    """[n,3,size,size] in [-1,1]: emoji-like test images (coloured discs and boxes with hard edges on white)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = Image.new("RGB", (size, size), (255, 255, 255))
        d = ImageDraw.Draw(im)
        for _ in range(6):
            x0, y0 = rng.integers(0, size - 16, 2)
            w, h = rng.integers(12, size // 2, 2)
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            box = (int(x0), int(y0), int(min(size - 1, x0 + w)), int(min(size - 1, y0 + h)))
            (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill, outline=(0, 0, 0), width=2)
        out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return torch.stack(out).float() / 127.5 - 1


class Oracle:
    """An upscaler that returns the ground truth (optionally blurred) of the images it is handed, in order."""

    def __init__(self, hr: torch.Tensor, blur: int = 0):
        self.hr, self.blur, self.pos = hr, blur, 0

    def __call__(self, lr: torch.Tensor, captions: list[str]) -> torch.Tensor:
        out = self.hr[self.pos:self.pos + lr.shape[0]]
        self.pos += lr.shape[0]
        if self.blur:
            size = out.shape[-1]
            out = F.interpolate(F.avg_pool2d(out, self.blur), size=(size, size), mode="bilinear", align_corners=False)
        return out


@pytest.fixture(scope="module")
def emojinet():
    return EmojiNetFeatures()


def test_psnr_values():
    x = shapes(2, 32)
    assert psnr_per_image(x, x).tolist() == pytest.approx([PSNR_CAP, PSNR_CAP])
    y = (x + 0.2).clamp(-1, 1)
    shifted = torch.full((1, 3, 8, 8), -0.5)
    assert float(psnr_per_image(shifted + 0.2, shifted)[0]) == pytest.approx(20.0, abs=1e-4)  # 0.1 in [0,1] -> 20 dB
    g = torch.Generator().manual_seed(0)
    light = x + 0.05 * torch.randn(x.shape, generator=g)
    heavy = x + 0.3 * torch.randn(x.shape, generator=g)
    p_light, p_heavy = psnr_per_image(light, x), psnr_per_image(heavy, x)
    assert (p_light > p_heavy).all() and (p_light < PSNR_CAP).all()
    assert psnr_per_image(y, x).shape == (2,)


def test_ssim_values():
    x = shapes(2, 48)
    torch.testing.assert_close(ssim_per_image(x, x), torch.ones(2))
    g = torch.Generator().manual_seed(0)
    s_light = ssim_per_image((x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1), x)
    s_heavy = ssim_per_image((x + 0.4 * torch.randn(x.shape, generator=g)).clamp(-1, 1), x)
    assert (s_light < 0.999).all() and (s_heavy < s_light).all() and (s_heavy < 0.7).all()
    with pytest.raises(DataError, match="smaller than the 11x11 window"):
        ssim_per_image(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(DataError, match="differ in shape"):
        ssim_per_image(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 16, 16))


def test_bicubic_up_then_down_is_consistent_and_a_bad_upscaler_is_not():
    hr = shapes(3, 256)
    kw = dict(metrics="lrpsnr,psnr", progress=False, device="cpu")
    good = evaluate_upscaler(bicubic_upscale, hr, **kw)
    grey = evaluate_upscaler(lambda lr, c: torch.zeros(lr.shape[0], 3, 256, 256), hr, **kw)
    assert good["lrpsnr"] >= 30.0
    assert grey["lrpsnr"] < 15.0
    assert 15.0 < good["psnr"] < good["lrpsnr"]  # the 4x detail is lost, the 16 px content is kept


def test_baselines_shapes_and_agreement():
    lr = downsample_antialiased(shapes(2, 64), 16)
    b, lz = bicubic_upscale(lr, None), lanczos_upscale(lr, ["a", "b"])
    assert b.shape == lz.shape == (2, 3, 64, 64)
    assert float(b.abs().max()) <= 1.0 and float(lz.abs().max()) <= 1.0
    assert float(psnr_per_image(b, lz).min()) > 30.0  # two interpolators of the same input agree closely
    assert not torch.equal(b, lz)
    const = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(lanczos_upscale(const, None, scale=2), torch.full((1, 3, 32, 32), 0.3))


def test_crop_positions_are_deterministic_batch_free_and_in_bounds():
    a = crop_positions(10, 256, 200, crop_size=64, seed=3)
    assert a.shape == (10, 4, 2)
    torch.testing.assert_close(a, crop_positions(10, 256, 200, crop_size=64, seed=3))
    torch.testing.assert_close(a[6:], crop_positions(4, 256, 200, start=6, crop_size=64, seed=3))
    assert not torch.equal(a, crop_positions(10, 256, 200, crop_size=64, seed=4))
    assert int(a[..., 0].min()) >= 0 and int(a[..., 0].max()) <= 256 - 64
    assert int(a[..., 1].max()) <= 200 - 64
    assert len({tuple(p) for p in a.reshape(-1, 2).tolist()}) > 30  # spread out, not one place
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    pos = torch.tensor([[[0, 0], [4, 2]], [[1, 3], [0, 4]]])
    crops = take_crops(x, pos, 4)
    assert crops.shape == (4, 3, 4, 4)
    torch.testing.assert_close(crops[1], x[0, :, 4:8, 2:6])
    torch.testing.assert_close(crops[2], x[1, :, 1:5, 3:7])
    with pytest.raises(ConfigError, match="crop_size 300"):
        crop_positions(1, 256, 256, crop_size=300)


def test_patchfd_is_zero_for_the_truth_and_grows_with_blur(emojinet):
    hr = shapes(8, 128, seed=1)
    kw = dict(metrics="patchfd,fd64", extractor=emojinet, batch_size=4, progress=False, device="cpu")
    res = evaluate_upscalers({"truth": Oracle(hr), "blur2": Oracle(hr, 2), "blur8": Oracle(hr, 8)}, hr, **kw)
    assert set(res["truth"]) == {"patchfd_emojinet", "fd64_emojinet"}
    assert res["truth"]["patchfd_emojinet"] < 1e-6 and res["truth"]["fd64_emojinet"] < 1e-6
    assert 1e-3 < res["blur2"]["patchfd_emojinet"] < res["blur8"]["patchfd_emojinet"]
    # patch FD sees the lost detail more than FD at 64 px, where a 2x blur of 128 px is nearly gone
    assert res["blur2"]["fd64_emojinet"] < res["blur2"]["patchfd_emojinet"]


def test_results_do_not_depend_on_batch_size_or_input_dtype(tmp_path):
    hr = shapes(6, 64, seed=2)
    pool = PooledPixels()
    kw = dict(extractor=pool, progress=False, device="cpu")
    a = evaluate_upscaler(bicubic_upscale, hr, batch_size=6, **kw)
    u8 = ((hr + 1) * 127.5).round().to(torch.uint8)
    b = evaluate_upscaler(bicubic_upscale, u8, batch_size=4, run_dir=tmp_path, step=7, **kw)
    assert set(a) == {"patchfd_pooled", "fd64_pooled", "psnr", "ssim", "lrpsnr"}
    for k in a:  # uint8 rounding of shapes() is exact (they are drawn in uint8)
        assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5), k
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["metric"] for r in recs) == ["fd64_pooled_6", "lrpsnr_6", "patchfd_pooled_6", "psnr_6", "ssim_6"]
    assert all(r["step"] == 7 and r["crops_per_image"] == 4 and r["method"] == "model" for r in recs)
    c = evaluate_upscaler(bicubic_upscale, [(hr[:3], ["x"] * 3), {"image": hr[3:], "caption": ["y"] * 3}], **kw)
    assert c["psnr"] == pytest.approx(a["psnr"], rel=1e-5)


def test_captions_reach_the_upscaler_and_num_limits_the_images():
    hr = shapes(5, 64)
    seen: list[str] = []

    def spy(lr, captions):
        seen.extend(captions)
        return bicubic_upscale(lr)

    evaluate_upscaler(spy, hr, [f"c{i}" for i in range(5)], num=3, batch_size=2, metrics="psnr",
                      progress=False, device="cpu")
    assert seen == ["c0", "c1", "c2"]


def test_shape_and_name_errors_are_clear():
    hr = shapes(3, 64)
    kw = dict(metrics="psnr", progress=False, device="cpu")
    with pytest.raises(DataError, match=r"returned \(3, 3, 32, 32\); expected \(3, 3, 64, 64\) \(4x\)"):
        evaluate_upscaler(lambda lr, c: bicubic_upscale(lr, scale=2), hr, **kw)
    with pytest.raises(DataError, match="returned NaN"):
        evaluate_upscaler(lambda lr, c: torch.full((lr.shape[0], 3, 64, 64), float("nan")), hr, **kw)
    with pytest.raises(DataError, match=r"hr_images: expected images \[B,3,H,W\]"):
        evaluate_upscaler(bicubic_upscale, torch.zeros(3, 64, 64), **kw)
    with pytest.raises(DataError, match="not divisible by scale 4"):
        evaluate_upscaler(bicubic_upscale, torch.zeros(2, 3, 62, 62), **kw)
    with pytest.raises(ConfigError, match="choose from: patchfd, fd64, psnr, ssim, lrpsnr"):
        evaluate_upscaler(bicubic_upscale, hr, metrics="fid", progress=False)
    with pytest.raises(DataError, match="3 hr_images but 2 captions"):
        evaluate_upscaler(bicubic_upscale, hr, ["a", "b"], **kw)
    with pytest.raises(DataError, match="at least 2"):
        evaluate_upscaler(bicubic_upscale, hr[:1], **kw)
