"""Training (models/train.py) on the demo catalogue: every model learns; `tracklens train` refuses unknown names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tracklens import config

from model_helpers import _run_cli


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_every_model_learns(trained):
    _, results = trained
    for name, r in results.items():
        n_genres = r["y_score"].shape[1]
        acc = r["metrics"]["accuracy"]
        assert acc >= 1.0 / n_genres + 0.25, f"{name}: held-out accuracy {acc:.2f} barely beats chance"
        assert r["metrics"]["macro_roc_auc"] > 0.75, name


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_train_cli_refuses_unknown_model(demo_features):
    proc = _run_cli("train", "--features", str(demo_features), "--models", "linear,transformer")
    assert proc.returncode == 2 and "transformer" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow  # > 10 s on 2 busy cores: a child process importing the CLI and model modules
def test_model_modules_and_help_do_not_import_tensorflow():
    code = ("import sys\n"
            "from tracklens import cli\n"
            "from tracklens.models import blend, train, evaluate, datasets, baselines\n"
            "from typer.testing import CliRunner\n"
            "for cmd in ('train', 'evaluate', 'predict'):\n"
            "    assert CliRunner().invoke(cli.app, [cmd, '--help']).exit_code == 0\n"
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=config.PACKAGE_DIR, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
