"""The association measures of the correlation figures: a category (key, mode, explicit) is related
to a number by the correlation ratio η and to another category by Cramér's V, never by a Pearson r
of its codes; the charts page and the notebooks' figures draw the same numbers and say which
measure each is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tracklens import explore, figure_style


@pytest.fixture(scope="module")
def planted_key():
    """600 tracks whose popularity depends on the key (F and F# +15) but not on its code's size:
    Pearson r of the key codes is ~0, while the key explains a clear share of the variance."""
    rng = np.random.default_rng(7)
    n = 600
    key = rng.integers(0, 12, n)
    mode = rng.integers(0, 2, n)
    energy = rng.uniform(0, 1, n)
    popularity = 50 + 15 * np.isin(key, [5, 6]) + 20 * energy + rng.normal(0, 5, n)
    return pd.DataFrame({"key": key, "mode": mode, "energy": energy, "tempo": rng.normal(120, 15, n),
                         "popularity": popularity, "artist": [f"a{i % 90}" for i in range(n)]})


def _eta_by_hand(groups: pd.Series, y: pd.Series) -> float:
    means = y.groupby(groups).transform("mean")
    return float(np.sqrt(((means - y.mean()) ** 2).sum() / ((y - y.mean()) ** 2).sum()))


def test_correlation_ratio_is_the_share_of_variance_between_groups(planted_key):
    df = planted_key
    eta, p = explore.correlation_ratio(df["key"], df["popularity"], adjusted=False)
    assert eta == pytest.approx(_eta_by_hand(df["key"], df["popularity"]), rel=1e-9)
    assert p == pytest.approx(stats.f_oneway(*[g for _, g in df.groupby("key")["popularity"]]).pvalue, rel=1e-6)
    # a two-level category: plain η is |point-biserial r|
    eta_mode, _ = explore.correlation_ratio(df["mode"], df["energy"], adjusted=False)
    assert eta_mode == pytest.approx(abs(stats.pearsonr(df["mode"], df["energy"])[0]), rel=1e-9)


def test_adjusted_eta_removes_the_many_categories_bias():
    """Under no association plain η of a 12-level category sits near sqrt(11/n); adjusted, near 0."""
    rng = np.random.default_rng(3)
    plain, adjusted = [], []
    for _ in range(40):
        key, y = rng.integers(0, 12, 500), rng.normal(size=500)
        plain.append(explore.correlation_ratio(key, y, adjusted=False)[0])
        adjusted.append(explore.correlation_ratio(key, y)[0])
    assert np.mean(plain) == pytest.approx(np.sqrt(11 / 499), rel=0.2)
    assert np.mean(adjusted) < 0.5 * np.mean(plain)


def test_cramers_v_matches_phi_and_the_chi_squared_test():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2, 400)
    b = np.where(rng.uniform(size=400) < 0.7, a, 1 - a)
    v, p = explore.cramers_v(a, b, adjusted=False)
    assert v == pytest.approx(abs(np.corrcoef(a, b)[0, 1]), rel=1e-9)
    table = pd.crosstab(a, b).to_numpy()
    assert p == pytest.approx(stats.chi2_contingency(table, correction=False)[1], rel=1e-9)
    assert 0 < explore.cramers_v(a, b)[0] < v  # the bias correction only shrinks
    assert explore.cramers_v(a, np.zeros(400))[0] == 0.0  # one level: no association


def test_associations_pick_the_measure_that_fits_each_pair(planted_key):
    cols = ["popularity", "energy", "tempo", "key", "mode"]
    values, pvalues, measures = explore.associations(planted_key, cols, method="spearman")
    assert measures.loc["energy", "tempo"] == "spearman"
    assert measures.loc["key", "popularity"] == measures.loc["popularity", "mode"] == "eta"
    assert measures.loc["key", "mode"] == "cramers_v"
    numbers = ["popularity", "energy", "tempo"]
    pd.testing.assert_frame_equal(values.loc[numbers, numbers], planted_key[numbers].corr("spearman"))
    assert ((values.to_numpy() >= -1) & (values.to_numpy() <= 1)).all()
    assert (values.loc[["key", "mode"]].drop(columns=["key", "mode"]).to_numpy() >= 0).all()  # η is unsigned
    np.testing.assert_allclose(values.to_numpy(), values.to_numpy().T)
    np.testing.assert_allclose(pvalues.to_numpy(), pvalues.to_numpy().T)


def test_corr_data_reads_key_as_a_category(planted_key):
    df = planted_key
    d = explore.corr_data(df, columns=["energy", "tempo", "key", "mode"], n_boot=200)
    code_r = abs(stats.pearsonr(df["key"], df["popularity"])[0])
    row = d.target.loc["key"]
    assert row["measure"] == "eta" and code_r < 0.1 < row["r"]  # r of the codes misses what η finds
    assert row["r"] == pytest.approx(explore.correlation_ratio(df["key"], df["popularity"])[0])
    assert row["ci_low"] < row["r"] < row["ci_high"] and row["p"] < 1e-6
    assert d.target.loc["energy", "measure"] == "pearson"
    assert list(d.matrix.columns)[0] == "popularity"  # the target first: in view where the rest scrolls


def test_figures_say_which_measure_each_number_is(planted_key):
    d = explore.corr_data(planted_key, columns=["energy", "tempo", "key", "mode"], n_boot=50)
    heatmap = explore.corr_heatmap(d, intervals=False)
    note = heatmap.layout.title.subtitle.text
    assert "r: Pearson" in note and "η: correlation ratio" in note and "V: Cramér's V" in note
    names = list(heatmap.data[0].x)
    assert names[0] == "popularity"
    cells = np.asarray(heatmap.data[0].text)
    assert cells[names.index("key"), names.index("popularity")].startswith("η ")
    assert cells[names.index("key"), names.index("mode")].startswith("V ")
    assert not cells[names.index("energy"), names.index("popularity")][0].isalpha()  # r: the plain number
    ranked = explore.corr_intervals(d)
    assert ranked.layout.xaxis.title.text == "r / η with popularity"
    assert "η: correlation ratio (adjusted)" in ranked.layout.title.subtitle.text
    summary = explore.summarize_correlations(d)
    assert "key               η=" in summary and "energy            r=" in summary
    mpl = explore.corr_heatmap(d, backend="matplotlib")
    assert "η: correlation ratio" in mpl._suptitle.get_text()


def test_charts_page_maps_drawn_names_back_to_columns_and_says_the_matrix_scrolls(pages):
    charts = pages["charts"]
    options = [{"label": figure_style.feature_label(f), "value": f} for f in ("duration_ms", "key", "popularity")]
    assert charts.pick_feature({"points": [{"x": "popularity", "y": "duration"}]}, options) == "duration_ms"
    assert charts.pick_feature({"points": [{"x": "key", "y": "popularity"}]}, options) == "key"
    panel = charts.scrolling_figure_panel("charts-heatmap", "label", hint=charts.SCROLL_HINT)
    assert panel.children[0].children == charts.SCROLL_HINT and "first row and column" in charts.SCROLL_HINT
