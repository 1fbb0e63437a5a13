"""Bad input: every case is a 4xx with a one-line JSON error, and the server is still healthy after all of them."""

from __future__ import annotations

import io
import json
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image
from serverfx import assert_one_line_error

from fastt2i.inference import resolve_model

GEN = "/v1/generate"
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "fastt2i-hypothesis")  # nothing written into the checkout


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height and whose pixel data is a few bytes: what a decompression bomb
    looks like before it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def small_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


# (name, path, raw JSON body, expected status)
JSON_CASES = [
    ("malformed JSON", GEN, '{"prompts": [', 400),
    ("not JSON at all", GEN, "prompts=red heart", 400),
    ("empty body", GEN, "", 422),
    ("a list, not an object", GEN, '["red heart"]', 422),
    ("prompts is a string", GEN, '{"prompts": "red heart"}', 422),
    ("prompts hold a number", GEN, '{"prompts": [3]}', 422),
    ("no prompts", GEN, '{"prompts": []}', 422),
    ("seeds are strings", GEN, '{"prompts": ["a"], "seeds": ["0"]}', 422),
    ("a float seed", GEN, '{"prompts": ["a"], "seeds": [1.5]}', 422),
    ("a negative seed", GEN, '{"prompts": ["a"], "seeds": [-1]}', 422),
    ("a seed above 2**63-1", GEN, '{"prompts": ["a"], "seeds": [9223372036854775808]}', 422),
    ("a bool seed", GEN, '{"prompts": ["a"], "seeds": [true]}', 422),
    ("NaN psi", GEN, '{"prompts": ["a"], "truncation": NaN}', 422),
    ("infinite psi", GEN, '{"prompts": ["a"], "truncation": Infinity}', 422),
    ("psi as a string", GEN, '{"prompts": ["a"], "truncation": "0.7"}', 422),
    ("psi out of range", GEN, '{"prompts": ["a"], "truncation": 1e300}', 422),
    ("an unknown field", GEN, '{"prompts": ["a"], "psi": 0.5}', 422),
    ("a prompt over the limit", GEN, json.dumps({"prompts": ["x" * 5000]}), 422),
    ("a huge prompt", GEN, json.dumps({"prompts": ["x" * 10**6]}), 413),
    ("10^6 seeds", GEN, json.dumps({"prompts": ["a"], "seeds": list(range(10**6))}), 413),
    ("65 seeds", GEN, json.dumps({"prompts": ["a"], "seeds": list(range(65))}), 422),
    ("too many images", GEN, json.dumps({"prompts": ["a"] * 16, "seeds": list(range(5))}), 422),
    ("a path in model", GEN, '{"model": "../../../etc/passwd", "prompts": ["a"]}', 404),
    ("an absolute path in model", GEN, '{"model": "/etc", "prompts": ["a"]}', 404),
    ("a model directory that exists", GEN, json.dumps({"model": str(resolve_model("gigagan-emoji64")),
                                                      "prompts": ["a"]}), 404),
    ("a huge model name", GEN, json.dumps({"model": "m" * 100_000, "prompts": ["a"]}), 404),
    ("paella settings on a GAN", GEN, '{"model": "gigagan-emoji64", "prompts": ["a"], "steps": 4}', 422),
    ("truncation on Paella", GEN, '{"model": "paella-emoji64", "prompts": ["a"], "truncation": 0.5}', 422),
    ("too many steps", GEN, '{"model": "paella-emoji64", "prompts": ["a"], "steps": 5000}', 422),
    ("steps as a float", GEN, '{"model": "paella-emoji64", "prompts": ["a"], "steps": 2.5}', 422),
    ("NaN cfg", GEN, '{"model": "paella-emoji64", "prompts": ["a"], "cfg": NaN}', 422),
    ("a bad temperature", GEN, '{"model": "paella-emoji64", "prompts": ["a"], "temperature": [1, 2, 3]}', 422),
    ("a cutoff above num_ws", GEN, '{"model": "gigagan-emoji64", "prompts": ["a"], "truncation_cutoff": 99}', 422),
    ("a bad format", GEN, '{"prompts": ["a"], "format": "bmp"}', 422),
    ("too many frames", "/v1/edit/interpolate", '{"prompt_a": "a", "prompt_b": "b", "frames": 10000}', 422),
    ("alpha above 1", "/v1/edit/interpolate", '{"prompt_a": "a", "prompt_b": "b", "alpha": 2}', 422),
    ("interpolation without prompts", "/v1/edit/interpolate", '{"frames": 4}', 422),
    ("mixing Paella", "/v1/edit/mix", '{"model": "paella-emoji64", "prompt": "a"}', 400),
    ("a cutoff above num_ws (mix)", "/v1/edit/mix", '{"model": "gigagan-emoji64", "prompt": "a", "cutoff": 15}', 422),
    ("layer ranges that overlap", "/v1/edit/mix", json.dumps(
        {"model": "gigagan-emoji64", "kind": "prompt", "parts": [{"prompt": "a", "start": 0, "stop": 8},
                                                                 {"prompt": "b", "start": 4}]}), 422),
    ("layer ranges past the end", "/v1/edit/mix", json.dumps(
        {"model": "gigagan-emoji64", "kind": "prompt", "parts": [{"prompt": "a", "start": 0, "stop": 99}]}), 422),
    ("truncating Paella", "/v1/edit/truncate", '{"model": "paella-emoji64", "prompt": "a"}', 400),
    ("NaN in a psi list", "/v1/edit/truncate", '{"prompt": "a", "psi": [1, NaN]}', 422),
    ("an unknown route", "/v1/generate/../../etc/passwd", "{}", 404),
]


def _assert_healthy(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize("name,path,body,status", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_json_requests_get_a_one_line_4xx(client, name, path, body, status):
    r = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert_one_line_error(r, status)
    _assert_healthy(client)


def test_a_get_on_a_post_route(client):
    assert_one_line_error(client.get(GEN), 405)


UPLOAD_CASES = [
    ("a 20000x20000 PNG", png_header_only(20000, 20000), 413, "pixels"),
    ("a 3000x3000 PNG", png_header_only(3000, 3000), 413, "3000x3000"),  # under Pillow's own bomb limit
    ("a non-image", b"#!/bin/sh\necho this is not an image\n" * 10, 415, "not an image"),
    ("a pickle", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.", 415,
     "not an image"),
    ("an empty file", b"", 422, "empty"),
    ("a truncated PNG", small_png()[:60], 422, "decoded"),
    ("an upload over the byte limit", b"\x89PNG" + b"\0" * (4 * 2**20 + 10), 413, "limit"),
]


@pytest.mark.parametrize("name,data,status,words", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_bad_uploads_get_a_one_line_4xx(client, name, data, status, words):
    params = json.dumps({"model": "paella-emoji64", "prompt": "a", "steps": 1})
    for op, files in (("variation", {"image": ("x.png", data, "image/png")}),
                      ("inpaint", {"image": ("x.png", small_png(), "image/png"), "mask": ("m.png", data, "image/png")})):
        r = client.post(f"/v1/edit/{op}", files=files, data={"params": params})
        assert words in assert_one_line_error(r, status), (op, r.text)
    _assert_healthy(client)


@pytest.mark.parametrize("params,status", [
    ("not json", 400),
    ('{"model": "paella-emoji64", "prompt": "a", "seeds": [1e9999]}', 422),
    ('{"model": "gigagan-emoji64", "prompt": "a"}', 400),  # a GAN cannot inpaint
    ('{"model": "paella-emoji64"}', 422),  # no prompt
    ('{"model": "paella-emoji64", "prompt": "a", "pad": [1, 2]}', 422),
])
def test_bad_upload_params(client, params, status):
    r = client.post("/v1/edit/inpaint", data={"params": params},
                    files={"image": ("x.png", small_png(), "image/png"), "mask": ("m.png", small_png(), "image/png")})
    assert_one_line_error(r, status)


def test_missing_upload_and_wrong_content_type(client):
    assert_one_line_error(client.post("/v1/edit/inpaint", data={"params": '{"prompt": "a"}'}), 422)
    assert_one_line_error(client.post("/v1/edit/variation", content=b"{}",
                                      headers={"content-type": "application/json"}), 422)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                       | st.text(max_size=20), lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["gigagan-emoji64", "paella-emoji64", "nope", "../x"]) | JSONISH,
    "prompts": st.lists(st.text(max_size=30), max_size=3) | JSONISH,
    "seeds": st.lists(st.integers(-5, 2**64), max_size=3) | JSONISH,
    "truncation": st.floats(allow_nan=True, allow_infinity=True) | JSONISH,
    "steps": st.integers(-3, 3) | JSONISH,
    "temperature": JSONISH,
    "format": st.sampled_from(["png", "json", "gif"]) | JSONISH,
})


@settings(max_examples=60, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=FIELDS | JSONISH)
def test_fuzzed_generate_bodies_never_5xx(client, body):
    r = client.post(GEN, content=json.dumps(body, allow_nan=True), headers={"content-type": "application/json"})
    if r.status_code == 200:
        assert r.headers["content-type"] in ("image/png", "application/json")
    else:
        assert_one_line_error(r, tuple(range(400, 500)))
