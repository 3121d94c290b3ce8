"""The charts and models pages, called as plain functions: the shipped model's report out of the
box, figure labels and units, the year span, the correlation layout and the CSP without eval."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tracklens import config, explore, figure_style, track_figures
from tracklens.models import evaluate, store

from dashboard_helpers import _ids, _text


def _find(component, id_: str):
    """The component with ``id_`` inside a Dash component tree (None when absent)."""
    if isinstance(component, (list, tuple)):
        return next((found for child in component if (found := _find(child, id_)) is not None), None)
    if not hasattr(component, "to_plotly_json"):
        return None
    if getattr(component, "id", None) == id_:
        return component
    return _find(getattr(component, "children", None), id_)


def _first_of_type(component, type_name: str):
    """The first component of type ``type_name`` (e.g. "Tbody") inside a Dash component tree."""
    if isinstance(component, (list, tuple)):
        return next((found for child in component if (found := _first_of_type(child, type_name)) is not None), None)
    if not hasattr(component, "to_plotly_json"):
        return None
    if type(component).__name__ == type_name:
        return component
    return _first_of_type(getattr(component, "children", None), type_name)


def _table_rows(table) -> list[list[str]]:
    """The body cells of the table inside ``table`` as text."""
    return [[_text(cell) for cell in row.children] for row in _first_of_type(table, "Tbody").children]


def _figure_in(layout, graph_id: str):
    return _find(layout, graph_id).figure


@pytest.fixture
def no_trained_models(monkeypatch, tmp_path):
    """A tracklens home where nothing was trained or evaluated (the out-of-the-box state)."""
    from tracklens.dashboard import data

    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path / "reports")
    monkeypatch.setattr(data, "_model_dirs", lambda: [])
    return tmp_path


# --- models page: the shipped model out of the box -----------------------------------------------


def test_models_page_shows_the_shipped_model_without_training(pages, no_trained_models):
    layout = pages["models"].layout()
    ids = _ids(layout)
    assert {"models-shipped-card", "models-shipped-metrics", "models-shipped-genres", "models-shipped-roc",
            "models-shipped-confusion", "models-shipped-reliability"} <= ids
    assert "models-empty" in ids  # and it says that nothing trained here has been evaluated yet
    shipped = store.load_model_report(config.DEFAULT_MODEL_DIR)
    genres = shipped["class_names"]
    expected = evaluate.classification_metrics(shipped["y_true"], shipped["y_score"], class_names=genres)
    metrics = {row[0]: row[1] for row in _table_rows(_find(layout, "models-shipped-metrics"))}
    assert metrics["accuracy"] == f"{expected['accuracy']:.3f}"
    assert metrics["macro ROC-AUC"] == f"{expected['macro_roc_auc']:.3f}"
    roc = _figure_in(layout, "models-shipped-roc")
    drawn = {t.name.split()[0] for t in roc.data if t.name}
    assert drawn == {genres[c] for c in np.unique(shipped["y_true"])}  # one curve per genre in the fold
    confusion = np.asarray(_figure_in(layout, "models-shipped-confusion").data[0].text)
    assert confusion.sum() == len(shipped["y_true"])


def test_models_page_flags_genres_the_validation_fold_lacks(pages, no_trained_models):
    """The shipped fold has two hiphop, two pop, three reggae and five rock clips: the first three get
    a rough estimate instead of a bare number (the fold's counts from its predictions)."""
    rows = {row[0]: row for row in _table_rows(_find(pages["models"].layout(), "models-shipped-genres"))}
    counts = store.load_model_report(config.DEFAULT_MODEL_DIR)
    counts = dict(zip(*np.unique(np.asarray(counts["class_names"])[counts["y_true"]], return_counts=True)))
    assert (counts["hiphop"], counts["pop"], counts["reggae"], counts["rock"]) == (2, 2, 3, 5)
    assert rows["hiphop"][1] == "2" and rows["hiphop"][-1] == "2 tracks: rough"
    assert rows["pop"][1] == "2" and rows["pop"][-1] == "2 tracks: rough"
    assert rows["reggae"][1] == "3" and rows["reggae"][-1] == "3 tracks: rough" and rows["reggae"][2] != "–"
    assert rows["rock"][1] == "5" and rows["rock"][-1] == ""
    assert rows["jazz"][-1] == "" and float(rows["jazz"][2]) > 0.9


def test_shipped_model_table_and_reliability_diagram_show_one_ece(pages, no_trained_models):
    layout = pages["models"].layout()
    table = {row[0]: row[1] for row in _table_rows(_find(layout, "models-shipped-metrics"))}
    header = f"ECE ({evaluate.ECE_BINS} bins)"
    title = _figure_in(layout, "models-shipped-reliability").layout.title.text
    assert header in table and header in title
    assert table[header] == re.search(r"ECE[^=]*=\s*([0-9.]+)", title).group(1)


def test_genre_rows_count_tracks_and_give_no_estimate_below_two(pages):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y_true = np.array([0] * 10 + [2] + [3] * 3)  # genre "b" (1) absent, "c" (2) one track, "d" (3) three
    y_score = rng.dirichlet(np.ones(4), size=len(y_true))
    rows = pages["models"].genre_rows({"class_names": list("abcd"), "y_true": y_true, "y_score": y_score})
    assert [r["tracks"] for r in rows] == [10, 0, 1, 3]
    assert rows[0]["roc_auc"] == pytest.approx(roc_auc_score(y_true == 0, y_score[:, 0]))
    assert rows[0]["recall"] == pytest.approx(np.mean(y_score[y_true == 0].argmax(1) == 0))
    assert np.isnan(rows[1]["roc_auc"]) and np.isnan(rows[2]["roc_auc"]) and np.isnan(rows[2]["recall"])
    assert rows[3]["roc_auc"] == pytest.approx(roc_auc_score(y_true == 3, y_score[:, 3]))
    assert [r["note"] for r in rows] == ["", "not in the validation fold", "1 track: no estimate", "3 tracks: rough"]


def test_models_page_shows_a_comparison_beside_the_shipped_model(pages, no_trained_models):
    folder = config.REPORTS_DIR / "evaluation"
    folder.mkdir(parents=True)
    pd.DataFrame({"model": ["knn", "mlp"], "macro_roc_auc": [0.6, 0.9], "ece": [0.2, 0.05]}).to_csv(
        folder / "comparison.csv", index=False)
    layout = pages["models"].layout()
    shipped, trained = _find(layout, "models-shipped"), _find(layout, "models-trained")
    assert "shipped default model" in _text(shipped) and "Check your track" in _text(shipped)
    assert "Models trained here" in _text(trained) and "models-empty" not in _ids(layout)
    comparison = _find(layout, "models-table")
    headers = [_text(th) for th in _first_of_type(comparison, "Thead").children.children]
    assert headers[0] == "model" and f"ECE ({evaluate.ECE_BINS} bins)" in headers
    assert [row[0] for row in _table_rows(comparison)] == ["mlp", "knn"]
    caption = _text(_find(layout, "models-table-caption"))
    assert "trained here" in caption and evaluate.ECE_NOTE in caption


def test_models_page_names_a_broken_shipped_model_and_keeps_the_rest(pages, no_trained_models, monkeypatch):
    from tracklens.dashboard import data

    monkeypatch.setattr(config, "DEFAULT_MODEL_DIR", no_trained_models / "gone")
    layout = pages["models"].layout()
    problem = _text(_find(layout, "models-shipped-problem"))
    assert str(no_trained_models / "gone") in problem and "missing" in problem
    assert "models-empty" in _ids(layout)
    assert data.shipped_model_report()[0] is None


# --- charts page: units, year span, correlations ---------------------------------------------------


def test_charts_page_states_the_year_span_of_the_data(pages):
    from tracklens.dashboard import data

    years = data.charts()["year"]
    text = _text(_find(pages["charts"].layout(), "charts-source"))
    assert f"{int(years.min())}–{int(years.max())}" in text


def test_year_marks_do_not_collide_at_the_end(pages):
    """Marks every 5 years from the first put "2018" over "2020" for Top Hits' 1998-2020."""
    marks = pages["charts"].year_marks
    assert list(marks(1998, 2020)) == [2000, 2005, 2010, 2015, 2020]
    assert list(marks(2001, 2003)) == [2001, 2003]


@pytest.mark.parametrize("feature, axis_title", [("tempo", "tempo (BPM)"), ("loudness", "loudness (dB, Spotify)"),
                                                 ("duration_ms", "duration (m:ss)"), ("energy", "energy (0–1)")])
def test_scatter_axes_carry_units(pages, feature, axis_title):
    from tracklens.dashboard import data

    df = data.charts()
    years = [int(df["year"].min()), int(df["year"].max())]
    scatter, _ = pages["charts"].update_scatter(years, None, "all", feature)
    assert scatter.layout.xaxis.title.text == axis_title
    assert scatter.layout.yaxis.title.text == "popularity (0–100)"
    points = next(t for t in scatter.data if t.mode == "markers")
    scale = 1 / 60_000 if feature == "duration_ms" else 1.0  # drawn in minutes, not ms
    assert max(points.x) == pytest.approx(df[feature].max() * scale)


def test_trends_axes_carry_units(pages):
    from tracklens.dashboard import data

    df = data.charts()
    years = [int(df["year"].min()), int(df["year"].max())]
    trends = pages["charts"].update_trends(years, None, "all", "duration_ms", None)
    assert [a.text for a in trends.layout.annotations] == ["duration", "popularity"]
    assert (trends.layout.yaxis.title.text, trends.layout.yaxis2.title.text) == ("m:ss", "0–100")
    assert all(":" in t for t in trends.layout.yaxis.ticktext)  # minutes drawn, read as m:ss
    means = trends.data[1].y  # the duration panel's yearly means, in minutes
    assert max(means) == pytest.approx(df.groupby("year")["duration_ms"].mean().max() / 60_000)


def test_feature_choice_shows_units_and_a_click_on_either_correlation_figure_picks(pages):
    charts = pages["charts"]
    options = _find(charts.layout(), "charts-feature").options
    assert {"label": "tempo (BPM)", "value": "tempo"} in options
    assert charts.pick_feature({"points": [{"x": "popularity", "y": "tempo"}]}, options) == "tempo"
    assert charts.pick_ranked_feature({"points": [{"x": 0.04, "y": "tempo"}]}, options) == "tempo"


def test_correlations_drawn_as_a_matrix_and_ranked_intervals(pages):
    from tracklens.dashboard import data

    df = data.charts()
    years = [int(df["year"].min()), int(df["year"].max())]
    heatmap = pages["charts"].update_heatmap(years, None, "all", None)
    intervals = pages["charts"].update_intervals(years, None, "all", None)
    assert [t.type for t in heatmap.data] == ["heatmap"]  # the matrix alone: its colour bar covers nothing
    expected = explore.corr_data(df, columns=pages["charts"].feature_columns(df), n_boot=10).target.sort_values("r")
    (ranked,) = intervals.data
    assert list(ranked.y) == [figure_style.feature_name(f) for f in expected.index]  # words: "duration"
    np.testing.assert_allclose(ranked.x, expected["r"])
    assert len(ranked.error_x.array) == len(expected)


def test_combined_heatmap_keeps_its_colour_bar_off_the_interval_labels(charts_sample):
    """Notebook figure (matrix + intervals): the colour bar sits in the gap between the panels and the
    intervals' feature names on the right of theirs (at x=0.66 it covered those names at 1440 px)."""
    fig = explore.corr_heatmap(charts_sample, n_boot=20)
    colorbar = fig.data[0].colorbar
    assert fig.layout.xaxis.domain[1] < colorbar.x < fig.layout.xaxis2.domain[0]
    assert colorbar.xanchor == "left" and fig.layout.yaxis2.side == "right"


@pytest.fixture
def charts_sample(pages):
    from tracklens.dashboard import data

    return data.charts()


# --- no WebGL, no eval ------------------------------------------------------------------------------


def test_csp_allows_no_eval_and_no_figure_needs_it(charts_sample):
    """go.Scattergl's WebGL layer needs 'unsafe-eval'; the figures draw SVG scatters instead."""
    from tracklens.dashboard import security

    script_src = next(d for d in security.content_security_policy(["'sha256-x'"]).split("; ")
                      if d.startswith("script-src"))
    assert "'unsafe-eval'" not in script_src
    scatter = explore.popularity_scatter(charts_sample, feature="energy")
    track_map = track_figures.track_map(np.zeros((3, 2)), list("abc"), (0.0, 0.0))
    assert {t.type for t in [*scatter.data, *track_map.data]} == {"scatter"}
