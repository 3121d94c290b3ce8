"""explore.py and the popularity model it draws: figures are checked by the data they draw.

Writing figures (PNGs, the ``figures`` command) is tested in test_reports.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tracklens import explore, model_figures, track_figures
from tracklens.errors import TracklensError
from tracklens.models import popularity


@pytest.fixture(scope="module")
def charts(demo_catalogue):
    from tracklens import prepare

    df, _ = prepare.prepare_charts(demo_catalogue / "charts.csv")
    return df


@pytest.fixture(scope="module")
def planted():
    """400 tracks where popularity follows energy (r ~ 0.8) and nothing else."""
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({
        "artist": [f"artist {i % 120}" for i in range(n)],
        "energy": rng.uniform(0, 1, n),
        "valence": rng.uniform(0, 1, n),
        "tempo": rng.normal(120, 20, n),
        "year": rng.integers(2000, 2020, n),
    })
    df["popularity"] = np.clip(40 + 40 * df["energy"] + rng.normal(0, 6, n), 0, 100).round()
    return df


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_heatmap_matrix_equals_df_corr(charts, method):
    """Number-number cells are DataFrame.corr's; category cells (key, mode, explicit) are η or V
    (tests/test_associations.py)."""
    d = explore.corr_data(charts, method=method, n_boot=200)
    cols = list(d.matrix.columns)
    assert cols[0] == "popularity" and len(cols) == len(set(cols))
    numbers = [c for c in cols if c not in explore.CATEGORICAL_FEATURES]
    expected = charts[cols].astype(float).corr(method=method).loc[numbers, numbers]
    pd.testing.assert_frame_equal(d.matrix.loc[numbers, numbers], expected)
    at = [cols.index(c) for c in numbers]
    fig = explore.corr_heatmap(charts, method=method, n_boot=200)
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float)[np.ix_(at, at)], expected.to_numpy())
    mpl = explore.corr_heatmap(charts, method=method, n_boot=200, backend="matplotlib")
    np.testing.assert_allclose(mpl.axes[0].images[0].get_array()[np.ix_(at, at)], expected.to_numpy())
    drawn = explore.corr_heatmap(d, backend="matplotlib")  # a CorrData already computed is drawn as it is
    np.testing.assert_allclose(drawn.axes[0].images[0].get_array(), d.matrix.to_numpy())


def test_corr_pvalues_and_intervals(planted):
    d = explore.corr_data(planted, columns=["energy", "valence", "tempo"], n_boot=500)
    r, p = stats.pearsonr(planted["energy"], planted["popularity"])
    row = d.target.loc["energy"]
    assert row["r"] == pytest.approx(r) and row["p"] == pytest.approx(p, rel=1e-6)
    assert d.target.index[0] == "energy"  # sorted by |r|
    assert row["ci_low"] > 0.6 and row["ci_low"] < row["r"] < row["ci_high"]
    for f in ("valence", "tempo"):  # no planted link: the interval straddles 0
        assert d.target.loc[f, "ci_low"] < 0 < d.target.loc[f, "ci_high"]
    assert (d.target["q"] >= d.target["p"] - 1e-12).all()


def test_trend_line_and_band(planted):
    d = explore.trend_data(planted, features=["energy"])
    slope, intercept = np.polyfit(planted["energy"], planted["popularity"], 1)
    assert d.stats.loc["energy", "slope"] == pytest.approx(slope)
    line = d.lines
    np.testing.assert_allclose(line["fit"], intercept + slope * line["x"], rtol=1e-9)
    width = line["high"] - line["low"]
    assert (width > 0).all() and width.idxmin() not in (line.index[0], line.index[-1])  # narrowest inside
    fig = explore.popularity_scatter(planted, feature="energy")
    assert set(np.asarray(fig.data[0].customdata)[:, 0]) <= set(planted.index)  # rows for selections


def test_group_distribution_and_yearly_data(charts):
    by_genre = explore.group_data(charts, by="genre", features=["energy"], top_genres=3)
    exploded = explore.explode_genres(charts)
    top = exploded["genre"].value_counts().head(3)
    assert by_genre.groupby("group", observed=True).size().sort_values(ascending=False).to_dict() == top.to_dict()
    by_band = explore.group_data(charts, by="band", features=["energy"])
    from tracklens import preprocessing

    assert list(by_band["group"].cat.categories) == list(preprocessing.BAND_NAMES)
    dist = explore.distribution_data(charts, features=["tempo"], bins=12)
    assert dist["count"].sum() == charts["tempo"].notna().sum() and len(dist) == 12
    yearly = explore.yearly_data(charts, features=["energy"], years=None, min_tracks=1)
    expected = charts.groupby("year")["energy"].mean()
    np.testing.assert_allclose(yearly.set_index("year")["mean"], expected.loc[yearly["year"]])
    assert (yearly["low"] <= yearly["mean"]).all() and (yearly["mean"] <= yearly["high"]).all()
    for fn, kw in ((explore.catplot_viz, {"by": "band"}), (explore.distribution_plots, {}), (explore.yearly_trends, {})):
        assert fn(charts, backend="matplotlib", **kw).axes and fn(charts, **kw).data


def test_hit_profile_percentiles(charts):
    median_track = {"tempo": charts["tempo"].median(), "loudness": charts["loudness"].max() + 1, "key": 3}
    d = track_figures.hit_profile_data(median_track, charts)
    assert list(d.index) == ["loudness", "tempo"]  # only continuous features the track has
    assert d.loc["tempo", "percentile"] == pytest.approx(50, abs=2)
    assert d.loc["loudness", "percentile"] == 100
    fig = track_figures.hit_profile(median_track, charts)
    np.testing.assert_allclose(fig.data[0].x, d["percentile"])
    with pytest.raises(TracklensError, match="none of the features"):
        track_figures.hit_profile_data({"key": 3}, charts)


def test_popularity_model_finds_planted_signal(planted):
    rep = popularity.popularity_model(planted, features=["energy", "valence", "tempo"], n_splits=4, n_repeats=3)
    r2, _ = rep.score("popularity (R²)", rep.best_model)
    base, _ = rep.score("popularity (R²)", "baseline (mean)")
    auc, _ = rep.score("hit (AUC)", "logistic")
    assert r2 > 0.5 and base < 0.05 and auc > 0.85
    assert rep.importances.index[0] == "energy"
    assert "explain part" in rep.verdict


def test_popularity_model_says_when_features_explain_little(planted):
    noise = planted.assign(popularity=np.random.default_rng(1).permutation(planted["popularity"].to_numpy()))
    rep = popularity.popularity_model(noise, features=["energy", "valence", "tempo"], n_splits=4, n_repeats=2)
    assert rep.score("popularity (R²)", rep.best_model)[0] < 0.1
    assert rep.verdict.startswith("Audio features explain little")
    fig = explore.popularity_model_figure(rep, backend="matplotlib")
    assert len(fig.axes) == 3


def test_model_report_figures_match_sklearn():
    from sklearn.metrics import confusion_matrix, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 90)
    score = rng.dirichlet([1, 1, 1], 90)
    score[np.arange(90), y] += 0.6
    score /= score.sum(axis=1, keepdims=True)
    report = {"model": "m", "class_names": ["a", "b", "c"], "y_true": y.tolist(), "y_score": score.tolist()}
    roc = model_figures.roc_data(report)
    for c, name in enumerate("abc"):
        assert roc[roc["class"] == name]["auc"].iloc[0] == pytest.approx(roc_auc_score(y == c, score[:, c]))
    np.testing.assert_array_equal(model_figures.confusion_data(report).to_numpy(), confusion_matrix(y, score.argmax(1)))
    rel = model_figures.reliability_data(report)
    assert rel["count"].sum() == 90 and 0 <= rel.attrs["ece"] <= 1
    assert model_figures.roc_curves(report).data and model_figures.confusion_matrix(report, backend="matplotlib").axes
    with pytest.raises(TracklensError, match="lacks"):
        model_figures.roc_curves({"model": "m"})


def test_blend_and_map_figures():
    blend = {"rock": 0.2, "jazz": 0.7, "pop": 0.1}
    assert list(track_figures.blend_data(blend).index) == ["jazz", "rock", "pop"]
    timeline = pd.DataFrame({"start_s": [3.0, 0.0], "end_s": [6.0, 3.0], "rock": [0.9, 0.1], "jazz": [0.1, 0.9]})
    d = track_figures.timeline_data(timeline)
    assert list(d.index) == [0.0, 3.0] and set(d.columns) == {"rock", "jazz"}
    fig = track_figures.track_map(np.zeros((4, 2)), list("abcd"), (1.0, 2.0), groups=list("xxyy"), label="mine.wav")
    assert fig.data[-1].name == "mine.wav" and tuple(fig.data[-1].x) == (1.0,)
    assert track_figures.blend_timeline(timeline, backend="matplotlib").axes


def test_misuse_gives_clear_errors(charts):
    with pytest.raises(TracklensError, match="backend"):
        explore.distribution_plots(charts, backend="svg")
    with pytest.raises(TracklensError, match="method"):
        explore.corr_data(charts, method="kendall")
    with pytest.raises(TracklensError, match="lacks column"):
        explore.corr_data(charts.drop(columns="popularity"))
