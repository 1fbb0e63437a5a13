"""Shared fixtures for the text-encoder tests: tiny-random encoders built once per module."""

import pytest

from fastt2i.text import load_text_encoder


@pytest.fixture(scope="session")
def tiny_clip():
    return load_text_encoder("clip-tiny-random")


@pytest.fixture(scope="session")
def tiny_t5():
    return load_text_encoder("t5-tiny-random")


@pytest.fixture(scope="session")
def tiny_byt5():
    return load_text_encoder("byt5-tiny-random")
