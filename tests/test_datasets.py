"""Feature tables and folds (models/datasets.py), and `--features-csv` scoring such a table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.models import datasets

from model_helpers import _toy_table, _write, _run_cli


def test_genre_with_one_track_is_named(tmp_path):
    path = tmp_path / "f.csv"
    _toy_table({"rock": 5, "jazz": 1, "pop": 4}).to_csv(path, index=False)
    with pytest.raises(TracklensError, match="'jazz' \\(1 track\\)"):
        datasets.assign_folds(datasets.read_feature_table(path))


def test_split_files_decide_folds_and_test_list_is_ignored(tmp_path):
    (tmp_path / "train_filtered.txt").write_text("rock/rock.00000.wav\nrock/rock.00001.wav\npop/pop.00000.wav\npop/pop.00001.wav\n")
    (tmp_path / "valid_filtered.txt").write_text("rock/rock.00002.wav\npop/pop.00002.wav\n")
    (tmp_path / "test_filtered.txt").write_text("rock/rock.00003.wav\n")
    table = datasets.read_feature_table(_write(tmp_path, _toy_table({"rock": 4, "pop": 3})))
    folded = datasets.assign_folds(table, split_dir=tmp_path)
    assert "rock.00003" not in set(folded["track_id"])  # in no train/valid list: excluded
    assert dict(zip(folded["track_id"], folded["fold"]))["pop.00002"] == "valid"


def test_missing_columns_named(tmp_path):
    frame = _toy_table({"rock": 3}).drop(columns=["tempo"])
    with pytest.raises(TracklensError, match="tempo"):
        datasets.read_feature_table(_write(tmp_path, frame))


@pytest.mark.slow  # > 10 s on 2 busy cores: two CLI runs in child processes, each loading TensorFlow
def test_predict_and_evaluate_on_a_feature_table(tmp_path):
    """`--features-csv` scores published-schema rows with the shipped model; same csv contract."""
    path = _write(tmp_path, _toy_table({"rock": 2, "jazz": 2}))
    proc = _run_cli("predict", "--features-csv", str(path), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert "cpu_feature_guard" not in proc.stderr and "absl" not in proc.stderr  # TensorFlow's start-up notices
    table = pd.read_csv(__import__("io").StringIO(proc.stdout))
    assert list(table.columns) == ["path", "top_genre", *config.GTZAN_GENRES, "fit"]
    assert list(table["path"]) == ["rock.00000", "rock.00001", "jazz.00000", "jazz.00001"]
    np.testing.assert_allclose(table[list(config.GTZAN_GENRES)].sum(axis=1), 1.0, atol=1e-4)
    proc = _run_cli("evaluate", "--features-csv", str(path))
    assert proc.returncode == 0 and "macro_roc_auc" in proc.stdout, proc.stderr
