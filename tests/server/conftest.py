"""Fixtures for the server tests: the bundled 64 px models loaded once and a TestClient over them."""

from __future__ import annotations

import pytest
from serverfx import GAN_MODELS, PAELLA

from fastt2i.server import ServerConfig, create_app, load_models


@pytest.fixture(scope="session")
def models():
    return load_models([*GAN_MODELS, PAELLA])


@pytest.fixture(scope="session")
def client(models):
    from fastapi.testclient import TestClient

    with TestClient(create_app(models, ServerConfig()), raise_server_exceptions=False) as c:
        yield c
