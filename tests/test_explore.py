"""explore.py and the popularity model it draws: figures are checked by the data they draw.
(One track's figures: test_track_figures.py; a genre model's: test_model_figures.py.)

Writing figures (PNGs, the ``figures`` command) is tested in test_reports.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tracklens import explore
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


def test_misuse_gives_clear_errors(charts):
    with pytest.raises(TracklensError, match="backend"):
        explore.distribution_plots(charts, backend="svg")
    with pytest.raises(TracklensError, match="method"):
        explore.corr_data(charts, method="kendall")
    with pytest.raises(TracklensError, match="lacks column"):
        explore.corr_data(charts.drop(columns="popularity"))


@pytest.mark.parametrize("draw", [explore.corr_heatmap, explore.param_viz, explore.catplot_viz, explore.yearly_trends,
                                  explore.distribution_plots, explore.popularity_model])
def test_a_path_where_a_chart_table_goes_is_one_line(draw):
    # a notebook's first try: explore.corr_heatmap("songs_normalize.csv") was AttributeError: 'str' object has no attribute 'columns'
    with pytest.raises(TracklensError, match=r"expected a chart table \(a pandas DataFrame\), got str.*prepare_charts") as err:
        draw("../shared/data/spotify/songs_normalize.csv")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("by", ["genre", "band"])
def test_distributions_of_an_empty_table_are_one_line(charts, by):
    # was plotly's multi-line ValueError: "The 'rows' argument to make_subplots must be an int greater than 0"
    for backend in ("plotly", "matplotlib"):
        with pytest.raises(TracklensError, match=f"no track with a {'genre' if by == 'genre' else 'popularity band'}") as err:
            explore.catplot_viz(charts.iloc[:0], by=by, backend=backend)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("intervals", [True, False])
def test_the_heatmaps_subtitle_has_its_own_top_margin(planted, intervals):
    # with the side panel (the default) the subtitle's lines were drawn over the matrix's first row,
    # the target's own (Plotly's default 100 px top margin; the static PNG in a notebook showed it)
    rng = np.random.default_rng(1)
    with_categories = planted.assign(key=rng.integers(0, 12, len(planted)), mode=rng.integers(0, 2, len(planted)))
    fig = explore.corr_heatmap(with_categories, n_boot=50, intervals=intervals)
    lines = fig.layout.title.subtitle.text.count("<br>") + 1
    assert lines >= 3 and (fig.layout.margin.t or 100) >= 40 + 20 * lines


def test_the_text_summaries_take_a_chart_table_as_the_figures_do(planted):
    # summarize_popularity(charts) was AttributeError: 'DataFrame' object has no attribute 'n'
    # (popularity_model_figure and corr_heatmap take the table or the computed result alike)
    text = explore.summarize_popularity(planted, n_repeats=1)
    assert text.startswith(f"popularity model, {len(planted)} tracks") and "energy" in text
    assert explore.summarize_correlations(planted, n_boot=50) == explore.summarize_correlations(
        explore.corr_data(planted, n_boot=50))
    with pytest.raises(TracklensError, match="expected a chart table"):
        explore.summarize_popularity("charts.csv")


def test_the_plotly_popularity_figure_labels_what_the_matplotlib_one_does(planted):
    # the Plotly version had no axis titles (the importances' unit missing), its one-line title ran
    # off a 700 px figure, and the importances' feature names sat on the AUC panel
    rep = explore.popularity_model(planted, n_repeats=1)
    fig = explore.popularity_model_figure(rep)
    assert fig.layout.xaxis3.title.text == "drop in held-out R² when permuted"
    assert fig.layout.yaxis.title.text.startswith("R²") and fig.layout.yaxis2.title.text.startswith("AUC")
    assert fig.layout.yaxis3.side == "right"  # names beside their own panel
    assert len(fig.layout.title.text) <= 90 and fig.layout.title.subtitle.text.replace("<br>", " ").endswith(rep.verdict)
    mpl = explore.popularity_model_figure(rep, backend="matplotlib")
    assert mpl.axes[2].get_xlabel() == fig.layout.xaxis3.title.text


def test_both_histogram_renderers_say_the_bars_are_densities(planted):
    # the Plotly version's title and axes did not say what the bar heights are
    assert explore.distribution_plots(planted).layout.title.text.endswith("(density)")
    assert explore.distribution_plots(planted, backend="matplotlib")._suptitle.get_text().endswith("(density)")


@pytest.mark.parametrize("draw", [explore.catplot_viz, explore.distribution_plots, explore.param_viz,
                                  explore.yearly_trends])
def test_a_mistyped_feature_is_named_with_the_nearest_column_in_every_figure(charts, draw):
    # catplot_viz and distribution_plots raised KeyError "None of [Index(['tempoo'])] are in the [columns]"
    with pytest.raises(TracklensError, match=r"lacks column\(s\) \['tempoo'\].*did you mean 'tempo'") as err:
        draw(charts, features=["tempoo"])
    assert "\n" not in str(err.value)


def test_one_feature_may_be_named_without_a_list(charts):
    # features="tempo" was read letter by letter: "chart table lacks column(s) ['t']"
    d = explore.trend_data(charts, features="tempo")
    assert list(d.stats.index) == ["tempo"]
