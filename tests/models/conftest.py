"""Fixtures for the model-family tests (helpers in emojifx.py; this dir goes on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from emojifx import make_emoji_npz  # noqa: E402


@pytest.fixture(scope="session")
def emoji_npz(tmp_path_factory) -> Path:
    return make_emoji_npz(tmp_path_factory.mktemp("emoji") / "emoji.npz")
