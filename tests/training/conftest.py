"""Fixtures for the training-core tests (helpers live in toy_runner.py; this dir goes on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from toy_runner import write_npz  # noqa: E402


@pytest.fixture(scope="session")
def npz_data(tmp_path_factory) -> Path:
    """A 48-image 12x12 emoji64-like .npz."""
    return write_npz(tmp_path_factory.mktemp("toydata") / "toy.npz")
