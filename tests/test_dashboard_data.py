"""The dashboard's data layer (dashboard/data.py): which chart table, which model report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens.errors import TracklensError


def test_configure_rejects_missing_folder_and_folder_without_table(tmp_path):
    from tracklens.dashboard import data

    with pytest.raises(TracklensError, match="no such folder"):
        data.configure(tmp_path / "nope")
    with pytest.raises(TracklensError, match="no chart table found"):
        data.configure(tmp_path)


def test_chart_source_prefers_data_dir_then_shared_then_demo(tmp_path, monkeypatch, demo_catalogue):
    from tracklens.dashboard import data

    try:
        data.configure(demo_catalogue)
        assert data.chart_source().kind == "demo" and data.chart_source().path == demo_catalogue / "charts.csv"

        shared = tmp_path / "shared"
        (shared / "spotify").mkdir(parents=True)
        (shared / "spotify" / "songs_normalize.csv").write_text((demo_catalogue / "charts.csv").read_text())
        monkeypatch.setattr(config, "SHARED_DATA_DIR", shared)
        data.configure(None)
        assert data.chart_source().kind == "top_hits"

        monkeypatch.setattr(config, "SHARED_DATA_DIR", tmp_path / "absent")
        monkeypatch.setattr(config, "DATA_DIR", tmp_path / "no-data")  # no demo catalogue below it
        data.configure(None)
        source = data.chart_source()
        assert source.kind == "none" and "make demo" in source.notes[0]
        assert data.charts().empty
    finally:
        data.configure(demo_catalogue)


def test_charts_are_the_prepared_table(app, demo_catalogue):
    from tracklens import prepare
    from tracklens.dashboard import data

    expected, _ = prepare.prepare_charts(demo_catalogue / "charts.csv")
    assert len(data.charts()) == len(expected)
    assert len(data.charts()) < len(pd.read_csv(demo_catalogue / "charts.csv"))  # duplicates dropped


def test_chart_label_years_come_from_the_data(app):
    from tracklens.dashboard import data

    years = data.charts()["year"]
    label = data.source_info()["label"]
    assert label.endswith(f", {years.min()}–{years.max()}") and "2000–2019" not in label


def test_model_report_reads_saved_validation_predictions(monkeypatch, tmp_path):
    from tracklens.dashboard import data
    from tracklens.models import store

    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path)
    monkeypatch.setattr(data, "_model_dirs", lambda: [config.MODELS_DIR])  # the shipped models/default
    (tmp_path / "comparison.csv").write_text("model,accuracy\ndefault,0.7\nnot-saved,0.5\n")
    report = data.model_report()
    expected = store.load_validation_result(config.DEFAULT_MODEL_DIR)
    assert list(report.predictions) == ["default"]
    saved = report.predictions["default"]
    assert saved["genres"] == list(expected["genres"]) and np.array_equal(saved["y_true"], expected["y_true"])
    assert saved["y_score"].shape == (len(expected["y_true"]), len(expected["genres"]))
