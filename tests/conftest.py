"""Shared fixtures. Tests that need ../shared/data use the `shared_data` fixture and skip without it."""

from __future__ import annotations

import os

import pytest

import config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; skips the test cleanly when it is absent."""
    if not config.SHARED_DATA_DIR.is_dir():
        pytest.skip(f"real data not found at {config.SHARED_DATA_DIR}")
    return config.SHARED_DATA_DIR
