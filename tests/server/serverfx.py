"""Helpers of the server tests: a real uvicorn server on 127.0.0.1 in a thread, PNG decoding, error checks."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from typing import Iterator

import numpy as np
from PIL import Image

GAN_MODELS = ("gigagan-emoji64", "stylegan-t-emoji64")
PAELLA = "paella-emoji64"


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 (a free port) in a daemon thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn exited at start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 [H,W,3] (fails the test when they are not a PNG)."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def png_of(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def assert_one_line_error(response, status: int | tuple[int, ...]) -> str:
    """The response has the status (one of them) and a body {"error": "<one line>"}; returns the message."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"}, body
    message = body["error"]
    assert isinstance(message, str) and message and "\n" not in message and len(message) <= 300, message
    return message
