"""Shared test fixtures. Tests stay fast: tiny data, 1-2 epochs, small widths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: real datasets for tests, beside the checkout (absent on a user's machine)
SHARED_DATA = Path(os.environ.get("ZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def mnist_dir(shared_data: Path) -> Path:
    """A data directory holding mnist/ with the four IDX files."""
    if not (shared_data / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("MNIST IDX files not in shared data")
    return shared_data


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"
