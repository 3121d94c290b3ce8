"""The models page (dashboard/pages/models.py): comparison table, ROC, confusion, reliability."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracklens import config

from dashboard_helpers import _ids, _text


def test_models_page_says_when_no_report(pages, monkeypatch, tmp_path):
    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path)
    layout = pages["models"].layout()
    assert "models-empty" in _ids(layout) and "No evaluation report yet" in _text(layout)


def test_models_page_picks_up_a_report_written_while_running(pages, monkeypatch, tmp_path):
    from tracklens.dashboard import data

    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path)
    monkeypatch.setattr(data, "_model_dirs", lambda: [tmp_path / "no-models"])  # ignore real trained models
    assert "models-empty" in _ids(pages["models"].layout())
    pd.DataFrame({"model": ["knn", "mlp"], "accuracy": [0.5, 0.7]}).to_csv(tmp_path / "comparison.csv", index=False)
    layout = pages["models"].layout()
    assert "models-table" in _ids(layout) and "No saved validation predictions" in _text(layout)
    assert _text(layout).index("mlp") < _text(layout).index("knn")  # best first


def test_models_page_table_and_figures(pages, monkeypatch):
    from tracklens.dashboard import data

    rng = np.random.default_rng(0)
    genres = ["blues", "rock", "jazz"]
    y_true = np.repeat([0, 1, 2], 20)
    y_score = rng.dirichlet(np.ones(3), size=60) + np.eye(3)[y_true]
    y_score /= y_score.sum(axis=1, keepdims=True)
    table = pd.DataFrame({"model": ["mlp", "cnn"], "accuracy": [0.6, 0.8], "macro_roc_auc": [0.7, 0.9],
                          "weird_extra": [1, 2]})
    report = data.ModelReport(table=table, path=config.REPORTS_DIR / "comparison.csv",
                              predictions={"cnn": {"y_true": y_true, "y_score": y_score, "genres": genres}})
    monkeypatch.setattr(data, "model_report", lambda: report)
    models = pages["models"]
    rows = models.comparison_rows(table)
    assert [r["model"] for r in rows] == ["cnn", "mlp"] and "weird_extra" not in rows[0]
    layout = models.layout()
    assert {"models-table", "models-choice", "models-roc"} <= _ids(layout)
    roc, confusion, reliability = models.show_model("cnn")
    assert len([t for t in roc.data if t.name and t.name.split()[0] in genres]) == 3
    counts = np.asarray(confusion.data[0].text)
    assert counts.sum() == 60 and counts.trace() == int((y_score.argmax(1) == y_true).sum())
    assert "ECE" in reliability.layout.title.text
