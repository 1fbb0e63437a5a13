"""The /v1 API over the bundled models: each route returns what the library's pipeline or editing function returns."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fastt2i.editing import prompt_interpolation, prompt_mixing, seed_interpolation, style_mixing_grid
from fastt2i.editing import paella as paella_edits
from fastt2i.inference import bundle_card
from fastt2i.server import ServerConfig, create_app, renderer
from fastt2i.utils.images import to_uint8

from serverfx import GAN_MODELS, PAELLA, decode_png


def post(client, path, **body):
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    return r


def test_models_lists_names_families_resolution_and_card_metrics(client):
    body = client.get("/v1/models").json()
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {*GAN_MODELS, PAELLA}
    for name, m in by_name.items():
        card = bundle_card(name)
        assert m["family"] == card["family"] and m["resolution"] == 64
        assert m["metrics"] == card["metrics"] and m["metrics"]  # the card's numbers, not empty
    assert by_name["gigagan-emoji64"]["num_ws"] == 14 and by_name["stylegan-t-emoji64"]["num_ws"] == 11
    assert by_name[PAELLA]["sampler"]["cfg"] == 3.0  # the bundle's own sampler setting
    assert body["upsamplers"] == []


def test_healthz(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and set(body["models"]) == {*GAN_MODELS, PAELLA}


@pytest.mark.parametrize("name", GAN_MODELS)
def test_generate_is_the_pipelines_image(client, models, name):
    r = post(client, "/v1/generate", model=name, prompts=["red heart"], seeds=[3], truncation=0.7)
    assert r.headers["content-type"] == "image/png"
    got = decode_png(r.content)
    want = to_uint8(models[name].pipe.generate(["red heart"], [3], truncation_psi=0.7))[0]
    np.testing.assert_array_equal(got, want)
    other = decode_png(post(client, "/v1/generate", model=name, prompts=["red heart"], seeds=[4],
                            truncation=0.7).content)
    assert np.abs(got.astype(int) - other).mean() > 1  # another seed, another image


def test_generate_grid_and_json(client):
    r = post(client, "/v1/generate", model="gigagan-emoji64", prompts=["red heart", "sushi"], seeds=[0, 1, 2])
    grid = decode_png(r.content)
    assert grid.shape == (2 + 2 * 66, 2 + 3 * 66, 3)  # 2 rows (prompts) x 3 columns (seeds), 2 px gaps
    j = post(client, "/v1/generate", model="gigagan-emoji64", prompts=["red heart", "sushi"], seeds=[0, 1, 2],
             format="json").json()
    assert [(im["prompt"], im["seed"]) for im in j["images"]] == [(p, s) for p in ("red heart", "sushi")
                                                                  for s in (0, 1, 2)]
    first = decode_png(base64.b64decode(j["images"][0]["png"]))
    np.testing.assert_array_equal(first, grid[2:66, 2:66])


def test_paella_generate_takes_sampler_settings(client, models):
    body = dict(model=PAELLA, prompts=["red heart"], seeds=[5], steps=3, cfg=2.0, temperature=[0.6, 0.2])
    got = decode_png(post(client, "/v1/generate", **body).content)
    want = to_uint8(models[PAELLA].pipe.generate(["red heart"], [5], steps=3, cfg=2.0, temperature=(0.6, 0.2)))[0]
    np.testing.assert_array_equal(got, want)
    hot = decode_png(post(client, "/v1/generate", **{**body, "temperature": 2.0}).content)
    assert not np.array_equal(got, hot)


def test_truncate_strip(client, models):
    r = post(client, "/v1/edit/truncate", model="stylegan-t-emoji64", prompt="red heart", seed=2, psi=[1.0, 0.0],
             format="json")
    a, b = (decode_png(base64.b64decode(im["png"])) for im in r.json()["images"])
    pipe = models["stylegan-t-emoji64"].pipe
    np.testing.assert_array_equal(a, to_uint8(pipe.generate(["red heart"], [2]))[0])
    np.testing.assert_array_equal(b, to_uint8(pipe.generate(["red heart"], [2], truncation_psi=0.0))[0])
    assert not np.array_equal(a, b)


def test_interpolate_alpha_frames_are_the_editing_functions_and_cached(client, models, monkeypatch):
    calls = []
    real = renderer.prompt_interpolation

    def counted(*args, **kw):
        calls.append(args[1:3])
        return real(*args, **kw)

    monkeypatch.setattr(renderer, "prompt_interpolation", counted)
    body = dict(model="gigagan-emoji64", prompt_a="red heart", prompt_b="blue star", seed=7, frames=5)
    first = post(client, "/v1/edit/interpolate", **body, alpha=0.0)
    last = post(client, "/v1/edit/interpolate", **body, alpha=1.0)
    mid = post(client, "/v1/edit/interpolate", **body, alpha=0.49)  # nearest of 0, .25, .5, .75, 1: frame 2
    assert calls == [("red heart", "blue star")]  # one computation for the three slider positions
    assert (first.headers["x-frames-cached"], last.headers["x-frames-cached"]) == ("0", "1")
    want = to_uint8(prompt_interpolation(models["gigagan-emoji64"].pipe, "red heart", "blue star", 7, steps=5))
    for r, i in ((first, 0), (mid, 2), (last, 4)):
        np.testing.assert_array_equal(decode_png(r.content), want[i])


def test_interpolation_gif(client):
    r = post(client, "/v1/edit/interpolate", model="stylegan-t-emoji64", prompt_a="red heart", prompt_b="sushi",
             frames=4, format="gif", boomerang=True)
    assert r.headers["content-type"] == "image/gif" and "interpolation.gif" in r.headers["content-disposition"]
    with Image.open(io.BytesIO(r.content)) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6  # 4 frames forward, 2 back


def test_paella_interpolation(client, models):
    r = post(client, "/v1/edit/interpolate", model=PAELLA, prompt_a="red heart", prompt_b="sushi", frames=2,
             steps=2, format="json")
    frames = [decode_png(base64.b64decode(im["png"])) for im in r.json()["images"]]
    want = to_uint8(paella_edits.interpolate(models[PAELLA].pipe, "red heart", "sushi", num=2, seed=0, steps=2))
    np.testing.assert_array_equal(np.stack(frames), want)


def test_seed_interpolation_is_the_editing_function(client, models):
    r = post(client, "/v1/edit/interpolate", model="gigagan-emoji64", kind="seed", prompt="red heart", seed=1,
             seed_b=4, frames=3, format="json")
    frames = np.stack([decode_png(base64.b64decode(im["png"])) for im in r.json()["images"]])
    want = to_uint8(seed_interpolation(models["gigagan-emoji64"].pipe, "red heart", 1, 4, 3))
    np.testing.assert_array_equal(frames, want)


def test_style_and_prompt_mixing_are_the_editing_functions(client, models):
    pipe = models["gigagan-emoji64"].pipe
    r = post(client, "/v1/edit/mix", model="gigagan-emoji64", kind="style", prompt="red heart", seed_a=1, seed_b=2,
             cutoff=4, grid=True, format="json")
    got = np.stack([decode_png(base64.b64decode(im["png"])) for im in r.json()["images"]])
    grid = to_uint8(style_mixing_grid(pipe, "red heart", [1], [2], 4).flatten(0, 1))  # [blank, b, a, mix]
    np.testing.assert_array_equal(got, grid[[2, 1, 3]])
    parts = [{"prompt": "red heart", "start": 0, "stop": 6}, {"prompt": "blue star", "start": 6, "stop": None}]
    r = post(client, "/v1/edit/mix", model="gigagan-emoji64", kind="prompt", parts=parts, seed=3)
    want = to_uint8(prompt_mixing(pipe, [("red heart", 0, 6), ("blue star", 6, None)], 3))[0]
    np.testing.assert_array_equal(decode_png(r.content), want)


def _upload(client, op, image, params, mask=None):
    files = {"image": ("image.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post(f"/v1/edit/{op}", files=files, data={"params": json.dumps(params)})


def _png(color, size=64):
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def test_paella_inpaint_keeps_the_unmasked_tokens(client):
    image = post(client, "/v1/generate", model=PAELLA, prompts=["red heart"], seeds=[0], steps=2).content
    params = {"model": PAELLA, "prompt": "blue heart", "seeds": [0, 1], "steps": 2, "format": "json"}

    def results(mask):
        r = _upload(client, "inpaint", image, params, mask)
        assert r.status_code == 200, r.text
        return [decode_png(base64.b64decode(im["png"])) for im in r.json()["images"]]

    kept = results(_png("black"))  # nothing to regenerate: both seeds decode the image's own tokens
    np.testing.assert_array_equal(kept[0], kept[1])
    redrawn = results(_png("white"))  # everything regenerated: the seeds differ
    assert not np.array_equal(redrawn[0], redrawn[1])


def test_paella_variation_and_outpaint(client):
    image = post(client, "/v1/generate", model=PAELLA, prompts=["sushi"], seeds=[1], steps=2).content
    r = _upload(client, "variation", image, {"model": PAELLA, "seeds": [0], "steps": 2})
    assert r.status_code == 200, r.text
    assert decode_png(r.content).shape == (64, 64, 3)
    r = _upload(client, "outpaint", image, {"model": PAELLA, "prompt": "sushi", "pad": [16, 0, 16, 0], "steps": 2})
    assert r.status_code == 200, r.text
    assert decode_png(r.content).shape == (64, 96, 3)


def test_text_embeddings_and_mean_w_are_cached_per_prompt(client, models, monkeypatch):
    entry = models["gigagan-emoji64"]
    cache = entry.pipe.text_encoder
    calls = []
    real = cache.encoder.encode
    monkeypatch.setattr(cache.encoder, "encode", lambda texts: calls.append(list(texts)) or real(texts))
    prompt = "a prompt only this test uses"
    for psi in (0.9, 0.5, 0.1):  # three slider moves
        post(client, "/v1/generate", model=entry.name, prompts=[prompt], seeds=[0], truncation=psi)
    assert calls == [[prompt]]  # encoded once, the two later moves hit the cache
    assert prompt in entry.pipe._w_means  # the text-conditioned mean w is cached by the pipeline


def test_openapi_documents_the_api_and_the_page_is_served(client):
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/v1/models", "/v1/generate", "/v1/edit/interpolate", "/v1/edit/mix", "/v1/edit/truncate",
            "/v1/edit/variation", "/v1/edit/inpaint", "/v1/edit/outpaint", "/healthz"} <= paths
    assert "/v1/upscale" not in paths and client.post("/v1/upscale").status_code == 404
    assert client.get("/docs").status_code == 200
    page = client.get("/").text
    for element in ('id="psi"', 'id="alpha"', 'id="cutoff"', 'id="steps"', 'id="mask-canvas"', 'id="seed-strip"',
                    'id="download-gif"', "/static/app.js"):
        assert element in page
    assert client.get("/static/app.js").status_code == 200


class NearestUpsampler:
    """A stand-in with the interface of the upsampler pipeline that another issue builds: nearest-neighbour x2, and
    a prompt that must arrive."""

    input_resolution, resolution = 64, 128

    def __init__(self):
        self.calls = []

    def upscale(self, images, prompts, seeds=None, truncation_psi=1.0):
        self.calls.append((tuple(images.shape), list(prompts), list(seeds), truncation_psi))
        return torch.nn.functional.interpolate(images, scale_factor=2, mode="nearest")


def test_upscale_route_exists_only_with_an_upsampler(models):
    from fastapi.testclient import TestClient

    up = NearestUpsampler()
    app = create_app({"gigagan-emoji64": models["gigagan-emoji64"]}, ServerConfig(), upsamplers={"nearest-x2": up})
    with TestClient(app) as c:
        assert "/v1/upscale" in c.get("/openapi.json").json()["paths"]
        params = json.dumps({"prompt": "red heart", "seed": 3, "truncation": 0.5})
        r = c.post("/v1/upscale", files={"image": ("a.png", _png((200, 10, 10), size=32), "image/png")},
                   data={"params": params})
        assert r.status_code == 200, r.text
        out = decode_png(r.content)
        assert out.shape == (128, 128, 3) and tuple(out[5, 5]) == (200, 10, 10)
        assert up.calls == [((1, 3, 64, 64), ["red heart"], [3], 0.5)]  # resized to its input, the prompt passed
        assert c.get("/v1/models").json()["upsamplers"] == ["nearest-x2"]
        r = c.post("/v1/upscale", files={"image": ("a.png", _png((0, 0, 0)), "image/png")}, data={"params": "{}"})
        assert r.status_code == 422 and "prompt" in r.json()["error"]


def test_upscale_route_serves_a_real_upsampler_from_the_cli_loader(models, tmp_path):
    """`fastt2i serve --upsampler PATH` loads an upsampler export (here the tiny preset, random weights) with
    `load_upsampler`; /v1/upscale returns exactly what its pipeline computes."""
    from fastapi.testclient import TestClient

    from fastt2i.cli.serve import load_upsamplers
    from fastt2i.models.gigagan import UPSAMPLER_PRESETS, GigaGANUpsampler

    torch.manual_seed(0)
    GigaGANUpsampler(UPSAMPLER_PRESETS.build("tiny")).save_pretrained(tmp_path / "up-tiny",
                                                                     text_encoder="t5-tiny-random")
    ups = load_upsamplers([str(tmp_path / "up-tiny")], "cpu")
    assert list(ups) == ["up-tiny"] and list(load_upsamplers(None, "cpu")) == ["upsampler-emoji256"]  # the bundle
    app = create_app({"gigagan-emoji64": models["gigagan-emoji64"]}, ServerConfig(), upsamplers=ups)
    with TestClient(app) as c:
        params = json.dumps({"prompt": "red heart", "seed": 2})
        r = c.post("/v1/upscale", files={"image": ("a.png", _png((30, 120, 200), size=16), "image/png")},
                   data={"params": params})
        assert r.status_code == 200, r.text
        got = decode_png(r.content)
    lr = torch.tensor([30, 120, 200], dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 16, 16) / 127.5 - 1
    want = to_uint8(ups["up-tiny"].upscale(lr, ["red heart"], [2]))[0]
    assert got.shape == (32, 32, 3)
    np.testing.assert_allclose(got.astype(int), want.astype(int), atol=1)


def test_without_a_model_the_librarys_default_serves(client):
    from fastt2i.inference import DEFAULT_MODEL

    r = post(client, "/v1/generate", prompts=["red heart"], steps=1)
    assert r.headers["x-model"] == DEFAULT_MODEL == PAELLA
    r = post(client, "/v1/edit/mix", prompt="red heart")  # mixing needs a GAN: the first one loaded
    assert r.headers["x-model"] == GAN_MODELS[0]
