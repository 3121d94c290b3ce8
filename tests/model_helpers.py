"""Helpers shared by the genre-model tests: toy feature tables, the CLI run in a child process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.models import datasets


RNG = np.random.default_rng(0)


def _toy_table(counts: dict[str, int]) -> pd.DataFrame:
    columns = datasets.summary_columns()
    rows = []
    for genre, n in counts.items():
        for i in range(n):
            rows.append({"filename": f"{genre}.{i:05d}.wav", "length": 661794, "label": genre,
                         **{c: RNG.normal() for c in columns}})
    return pd.DataFrame(rows)


def _write(folder, frame):
    path = folder / "features.csv"
    frame.to_csv(path, index=False)
    return path


def _run_cli(*args):
    """``tracklens ARGS`` in a child, with the user's environment (conftest quiets TensorFlow for the tests)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "tracklens.cli", *args], capture_output=True, text=True,
                          cwd=config.PACKAGE_DIR, timeout=300, env=env)
