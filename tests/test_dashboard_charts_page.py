"""The charts page (dashboard/pages/charts.py): filters, callbacks, figures, as plain functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard_helpers import _ids


@pytest.fixture
def small_charts():
    return pd.DataFrame({
        "year": [2000, 2005, 2010, 2015, 2019],
        "genre": ["pop", "rock, pop", "hip hop", "set()", "rock"],
        "explicit": [False, True, True, False, False],
        "energy": [0.1, 0.5, 0.9, 0.3, 0.7],
        "popularity": [10, 50, 90, 30, 70],
    }, index=[10, 11, 12, 13, 14])


def test_filter_charts_by_years_genres_explicit(pages, small_charts):
    f = pages["charts"].filter_charts
    assert list(f(small_charts, years=[2004, 2016]).index) == [11, 12, 13]
    assert list(f(small_charts, genres=["rock"]).index) == [11, 14]
    assert list(f(small_charts, genres=["pop", "hip hop"]).index) == [10, 11, 12]
    assert list(f(small_charts, explicit="yes").index) == [11, 12]
    assert list(f(small_charts, explicit="no", genres=["rock"]).index) == [14]
    assert len(f(small_charts)) == 5


def test_genre_options_split_multi_labels_most_frequent_first(pages, small_charts):
    options = pages["charts"].genre_options(small_charts)
    assert options[:2] == ["pop", "rock"] or options[:2] == ["rock", "pop"]
    assert set(options) == {"pop", "rock", "hip hop"}  # "set()" means no genre


def test_selected_rows_follow_scatter_customdata(pages, small_charts):
    sel = pages["charts"].selected_rows
    picked = sel(small_charts, {"points": [{"x": 0.5, "y": 50, "customdata": [11]},
                                           {"x": 0.7, "y": 70, "customdata": [14]}]})
    assert list(picked.index) == [11, 14]
    assert sel(small_charts, None) is small_charts
    assert sel(small_charts, {"points": []}) is small_charts


def test_charts_layout_and_callbacks(pages):
    from tracklens.dashboard import data

    charts = pages["charts"]
    layout = charts.layout()
    assert {"charts-years", "charts-genres", "charts-explicit", "charts-feature", "charts-heatmap",
            "charts-scatter", "charts-trends"} <= _ids(layout)
    df = data.charts()
    years = [int(df["year"].min()), int(df["year"].max())]
    scatter, count = charts.update_scatter(years, None, "yes", "energy")
    assert count == f"{int(df['explicit'].astype(bool).sum())} songs match the filters."
    n_points = sum(len(t.x) for t in scatter.data if t.mode == "markers")
    assert n_points == int(df["explicit"].astype(bool).sum())
    heatmap = charts.update_heatmap(years, None, "all", None)
    trends = charts.update_trends(years, None, "all", "energy", None)
    z = np.asarray(heatmap.data[0].z)
    assert z.shape[0] == z.shape[1] and np.allclose(np.diag(z), 1.0)
    assert "popularity" in list(heatmap.data[0].x)
    assert any("energy" in (a.text or "") for a in trends.layout.annotations)


def test_charts_callbacks_explain_an_empty_selection(pages):
    heatmap = pages["charts"].update_heatmap([1990, 1991], None, "all", None)
    assert "Nothing to draw" in heatmap.layout.annotations[0].text


def test_heatmap_click_picks_feature(pages):
    pick = pages["charts"].pick_feature
    options = ["energy", "tempo"]
    assert pick({"points": [{"x": "popularity", "y": "tempo"}]}, options) == "tempo"
    import dash

    with pytest.raises(dash.exceptions.PreventUpdate):
        pick({"points": [{"x": "popularity", "y": "popularity"}]}, options)
