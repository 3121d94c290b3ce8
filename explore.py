"""Popularity statistics and chart figures, each built once and drawn by matplotlib or Plotly.

The chart table's statistics live here (associations, trends, groups, distributions, yearly
trends, the popularity model's figure, text summaries); one track's or playlist's figures are
:mod:`tracklens.track_figures`'s, a genre model's report figures :mod:`tracklens.model_figures`'s,
and the labels, colours and backend plumbing they share :mod:`tracklens.figure_style`'s.

Every figure is a pair: a public ``*_data`` function that prepares a small, testable table
from a cleaned chart DataFrame (see :func:`prepare.prepare_charts`), and a figure function
``f(df, *, ..., backend="plotly"|"matplotlib")`` that calls it and hands the result to one of
two renderers: Plotly (the default: interactive in Jupyter and the dashboard) or matplotlib
(static PNGs for reports, ``backend="matplotlib"``). This module only takes data and returns
figures: it reads no file, writes no file and shows no window (``tracklens.reports`` writes them).

The numbers are meant to be read with their uncertainty: correlations carry p-values and
bootstrap intervals, trends carry confidence bands, and the popularity model
(:mod:`tracklens.models.popularity`) is scored by cross-validation against a trivial baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.figure_style import (AXIS_UNITS, COMPACT_MARGIN, CONTINUOUS_FEATURES, Backend, axis_ticks_mpl,
                                    axis_ticks_plotly, feature_label, feature_name, hover_label, in_display_units,
                                    mpl_figure, plotly_grid, plotly_text, render)
from tracklens.models.popularity import (AUDIO_FEATURES, TARGET, PopularityReport, numeric_frame, pick_features,
                                         popularity_model)


# --- correlations -------------------------------------------------------------------------


@dataclass
class CorrData:
    """Prepared associations of the features with each other and with the target.

    matrix : DataFrame [target + features]^2, target first (so its row and column stay in view
        on a phone, where the rest scrolls), then the features in clustered order
    pvalues : DataFrame, same shape, two-sided p-values of each coefficient
    measures : DataFrame, same shape, each cell's :data:`MEASURES` key ("pearson"/"spearman" for
        two numbers, "eta" for a category and a number, "cramers_v" for two categories)
    target : DataFrame indexed by feature: r (the coefficient: r/ρ, or η for a category), measure,
        p, q (Benjamini-Hochberg), ci_low, ci_high, sorted by |r| descending
    """

    matrix: pd.DataFrame
    pvalues: pd.DataFrame
    target: pd.DataFrame
    method: str
    target_name: str
    n: int
    ci: float
    measures: pd.DataFrame | None = None


def _corr_pvalues(r: np.ndarray, n: int) -> np.ndarray:
    """Two-sided p-values of correlation coefficients by the t approximation (as scipy does)."""
    from scipy import stats

    r = np.clip(r, -1.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt((n - 2) / np.maximum(1.0 - r**2, 1e-300))
    return np.clip(2 * stats.t.sf(np.abs(t), n - 2), 0.0, 1.0)


def _bootstrap_corr(x: np.ndarray, y: np.ndarray, *, method: str, n_boot: int, ci: float, seed: int):
    """Percentile bootstrap intervals of corr(x[:, j], y) for every column j.

    x : [shape=(n, p)], y : [shape=(n,)] -> (low, high) each [shape=(p,)]
    """
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    n = len(y)
    draws = []
    for start in range(0, n_boot, 100):  # chunks keep memory at ~n*p*100 floats
        idx = rng.integers(0, n, size=(min(100, n_boot - start), n))
        xb, yb = x[idx], y[idx]
        if method == "spearman":
            xb, yb = rankdata(xb, axis=1), rankdata(yb, axis=1)
        xb = xb - xb.mean(axis=1, keepdims=True)
        yb = yb - yb.mean(axis=1, keepdims=True)
        num = np.einsum("bnp,bn->bp", xb, yb)
        den = np.sqrt((xb**2).sum(axis=1) * (yb**2).sum(axis=1)[:, None])
        with np.errstate(invalid="ignore", divide="ignore"):
            draws.append(num / den)
    draws = np.concatenate(draws)
    alpha = (1 - ci) / 2
    return np.nanquantile(draws, alpha, axis=0), np.nanquantile(draws, 1 - alpha, axis=0)


# --- associations: a measure that fits each pair of columns ---------------------------------

#: Chart columns that are categories, not quantities: Spotify's pitch class (0 = C ... 11 = B),
#: its mode (1 major, 0 minor) and the explicit flag. Their codes have no order or distance, so
#: a Pearson r of "key" against popularity measures nothing; they are related to a number by the
#: correlation ratio and to each other by Cramér's V.
CATEGORICAL_FEATURES = ("key", "mode", "explicit")

#: Each measure's symbol (as cells and ticks show it) and its name (as the figures' notes say it).
MEASURES = {
    "pearson": ("r", "Pearson r, two numbers"),
    "spearman": ("ρ", "Spearman ρ, two numbers"),
    "eta": ("η", "correlation ratio, bias-adjusted: a category and a number (0–1)"),
    "cramers_v": ("V", "Cramér's V, bias-adjusted: two categories (0–1)"),
}
#: The measures' short names, for a phone-wide figure's subtitle.
SHORT_MEASURES = {"pearson": "Pearson", "spearman": "Spearman", "eta": "correlation ratio (adjusted)",
                  "cramers_v": "Cramér's V (adjusted)"}


def correlation_ratio(categories, values, *, adjusted: bool = True) -> tuple[float, float]:
    """The correlation ratio η of a number on a category, and the one-way ANOVA p-value.

    η² is the share of the number's variance between the categories' means
    (SS_between / SS_total); η is in 0-1 and unsigned (a category has no direction). Plain η² is
    biased upwards by the number of categories k: under no association it is (k - 1) / (n - 1)
    on average (key's 12 classes on the 1924 Top Hits rows give η ≈ 0.076 from noise alone,
    more than any real feature's r with popularity). ``adjusted`` (default) removes that bias as
    adjusted R² does (ε² = (SS_between - (k - 1) MS_within) / SS_total, clipped at 0), so the
    value is comparable with an |r|.

    Parameters
    ----------
    categories : array-like [shape=(n,)], any hashable codes
    values : array-like [shape=(n,)], finite numbers
    adjusted : remove the small-sample bias (plain η for a two-level category equals |point-biserial r|)

    Returns
    -------
    (eta, p) ; p of the F test (k - 1, n - k degrees of freedom), 1.0 when undefined
    """
    from scipy import stats

    codes, levels = pd.factorize(pd.Series(categories).to_numpy())
    y = np.asarray(values, dtype=float)
    k, n = len(levels), len(y)
    total = ((y - y.mean()) ** 2).sum()
    if total == 0 or k < 2 or n <= k:
        return 0.0, 1.0
    between = _between_sum_of_squares(codes[None, :], y[None, :], k)[0]
    within = total - between
    f = (between / (k - 1)) / max(within / (n - k), 1e-300)
    return float(_eta(between, total, k, n, adjusted=adjusted)), float(stats.f.sf(f, k - 1, n - k))


def _between_sum_of_squares(codes: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """SS_between of each row: codes, y [shape=(b, n)] (codes in 0..k-1) -> [shape=(b,)]."""
    b = len(codes)
    flat = (codes + k * np.arange(b)[:, None]).ravel()  # one bincount for every row's groups
    counts = np.bincount(flat, minlength=b * k).reshape(b, k)
    sums = np.bincount(flat, weights=y.ravel(), minlength=b * k).reshape(b, k)
    between = (sums**2 / np.maximum(counts, 1)).sum(axis=1) - y.sum(axis=1) ** 2 / y.shape[1]
    return np.maximum(between, 0.0)


def _eta(between, total, k: int, n: int, *, adjusted: bool):
    """η (or the bias-adjusted η, see :func:`correlation_ratio`) from the sums of squares."""
    with np.errstate(invalid="ignore", divide="ignore"):
        share = between / total
        if adjusted:
            share = share - (k - 1) / (n - k) * (1 - share)
        return np.sqrt(np.clip(share, 0.0, 1.0))


def cramers_v(a, b, *, adjusted: bool = True) -> tuple[float, float]:
    """Cramér's V of two categories, and the chi-squared test's p-value.

    V = sqrt(chi² / (n (min(r, c) - 1))) of the r x c contingency table, without Yates'
    correction; 0-1, 0 when either has a single level. ``adjusted`` (default) is Bergsma's (2013)
    bias correction (plain V grows with the table's size even without any association); plain
    V of a 2 x 2 table equals |phi|.
    """
    from scipy import stats

    table = pd.crosstab(pd.Series(np.asarray(a)), pd.Series(np.asarray(b))).to_numpy()
    n = table.sum()
    rows, cols = table.shape
    if min(rows, cols) < 2 or n < 2:
        return 0.0, 1.0
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    phi2 = chi2 / n
    if not adjusted:
        return float(np.sqrt(phi2 / (min(rows, cols) - 1))), float(p)
    phi2 = max(0.0, phi2 - (rows - 1) * (cols - 1) / (n - 1))
    rows_c, cols_c = rows - (rows - 1) ** 2 / (n - 1), cols - (cols - 1) ** 2 / (n - 1)
    return float(np.sqrt(phi2 / max(min(rows_c, cols_c) - 1, 1e-12))), float(p)


def association_measure(x_is_category: bool, y_is_category: bool, method: str = "pearson") -> str:
    """The :data:`MEASURES` key that fits a pair: ``method`` for two numbers, ``"eta"`` for a
    category and a number, ``"cramers_v"`` for two categories."""
    if x_is_category and y_is_category:
        return "cramers_v"
    return "eta" if x_is_category or y_is_category else method


def associations(df: pd.DataFrame, columns: Sequence[str], *, categorical: Sequence[str] = CATEGORICAL_FEATURES,
                 method: Literal["pearson", "spearman"] = "pearson") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Association of every pair of ``columns`` by the measure that fits the pair.

    Number-number pairs get ``method`` (Pearson r or Spearman ρ, signed, with the t-test p-value),
    a category and a number the correlation ratio η (:func:`correlation_ratio`; with "spearman",
    η of the number's ranks), two categories Cramér's V (:func:`cramers_v`). Columns named in
    ``categorical`` are categories; the others are read as numbers. Rows with a missing value
    in any of ``columns`` are dropped first (complete cases, as ``DataFrame.corr`` on them).

    Returns
    -------
    (values, pvalues, measures) ; three DataFrames [columns x columns]: the coefficient, its
    two-sided p-value and the :data:`MEASURES` key of each cell (diagonal: 1, 0, the column's own)
    """
    if method not in ("pearson", "spearman"):
        raise TracklensError(f"method={method!r} must be 'pearson' or 'spearman'")
    cols = list(columns)
    data = numeric_frame(df, cols)
    is_cat = {c: c in categorical for c in cols}
    numbers = [c for c in cols if not is_cat[c]]
    as_numbers = data[numbers].rank() if method == "spearman" else data[numbers]
    values = pd.DataFrame(np.eye(len(cols)), index=cols, columns=cols)
    measures = pd.DataFrame(
        [[association_measure(is_cat[a], is_cat[b], method) for b in cols] for a in cols], index=cols, columns=cols)
    pvalues = pd.DataFrame(np.zeros((len(cols), len(cols))), index=cols, columns=cols)
    if numbers:  # one vectorised Pearson on (ranked) numbers, as DataFrame.corr computes it
        r = as_numbers.corr(method="pearson")
        values.loc[numbers, numbers] = r.to_numpy()
        pvalues.loc[numbers, numbers] = _corr_pvalues(r.to_numpy(), len(data))
        for c in numbers:
            pvalues.loc[c, c] = 0.0
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            if not (is_cat[a] or is_cat[b]):
                continue
            if is_cat[a] and is_cat[b]:
                v, p = cramers_v(data[a], data[b])
            else:
                cat, num = (a, b) if is_cat[a] else (b, a)
                v, p = correlation_ratio(data[cat], as_numbers[num])
            values.loc[a, b] = values.loc[b, a] = v
            pvalues.loc[a, b] = pvalues.loc[b, a] = p
    return values, pvalues, measures


def _bootstrap_eta(codes: np.ndarray, y: np.ndarray, *, n_boot: int, ci: float, seed: int):
    """Percentile bootstrap interval of the (adjusted) correlation ratio of ``y`` on each category column.

    codes : [shape=(n, p)] integer category codes, y : [shape=(n,)] -> (low, high) each [shape=(p,)]
    """
    rng = np.random.default_rng(seed)
    n, p = codes.shape
    draws = []
    for start in range(0, n_boot, 100):  # chunks keep memory at ~n*k*100 booleans per column
        idx = rng.integers(0, n, size=(min(100, n_boot - start), n))
        yb = y[idx]
        total = ((yb - yb.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        etas = []
        for j in range(p):
            k = int(codes[:, j].max()) + 1
            etas.append(_eta(_between_sum_of_squares(codes[idx, j], yb, k), total, k, n, adjusted=True))
        draws.append(np.stack(etas, axis=1))
    draws = np.concatenate(draws)
    alpha = (1 - ci) / 2
    return np.nanquantile(draws, alpha, axis=0), np.nanquantile(draws, 1 - alpha, axis=0)


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values)."""
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def corr_data(
    df: pd.DataFrame,
    *,
    target: str = TARGET,
    method: Literal["pearson", "spearman"] = "pearson",
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = CATEGORICAL_FEATURES,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = config.DEFAULT_SEED,
) -> CorrData:
    """Associations of audio features with each other and with ``target``, with their uncertainty.

    Parameters
    ----------
    df : cleaned chart table (one row per track)
    target : the number the features are related to (not a category)
    method : "pearson" (linear) or "spearman" (rank, robust to skew such as speechiness), for
        number-number pairs; see :func:`associations` for the categories' measures
    columns : feature columns to use (``target`` may be among them); default all of
        :data:`AUDIO_FEATURES` present
    categorical : columns read as categories (default :data:`CATEGORICAL_FEATURES`)
    n_boot, ci, seed : percentile bootstrap of the feature-target coefficients

    Returns
    -------
    CorrData ; ``matrix`` is :func:`associations` reordered: the target first, then the features
    clustered hierarchically on 1 - |association|. For number-number pairs it equals
    ``df[cols].corr(method)`` on the complete rows.
    """
    if method not in ("pearson", "spearman"):
        raise TracklensError(f"method={method!r} must be 'pearson' or 'spearman'")
    if target in categorical:
        raise TracklensError(f"target {target!r} is a category; correlate a number such as {TARGET!r}")
    feats = [f for f in pick_features(df, columns, AUDIO_FEATURES) if f != target]
    data = numeric_frame(df, feats + [target])
    varying = [f for f in feats if data[f].nunique() > 1]  # constant columns have no correlation
    if not varying:
        raise TracklensError("every feature is constant; nothing to correlate")
    data = data[varying + [target]]
    full, full_p, full_measures = associations(data, varying + [target], categorical=categorical, method=method)

    order = varying
    if len(varying) > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage
        from scipy.spatial.distance import squareform

        dist = 1.0 - full.loc[varying, varying].abs().to_numpy()
        np.fill_diagonal(dist, 0.0)
        tree = linkage(squareform(np.clip(dist, 0, None), checks=False), method="average")
        order = [varying[i] for i in leaves_list(tree)]
    cols = [target] + order
    matrix, pvalues, measures = (m.loc[cols, cols] for m in (full, full_p, full_measures))
    n = len(data)

    y = data[target].to_numpy()
    low, high = pd.Series(np.nan, index=order), pd.Series(np.nan, index=order)
    numbers = [f for f in order if f not in categorical]
    cats = [f for f in order if f in categorical]
    if numbers:
        lo, hi = _bootstrap_corr(data[numbers].to_numpy(), y, method=method, n_boot=n_boot, ci=ci, seed=seed)
        low[numbers], high[numbers] = lo, hi
    if cats:
        codes = np.stack([pd.factorize(data[c])[0] for c in cats], axis=1)
        y_eta = data[target].rank().to_numpy() if method == "spearman" else y
        lo, hi = _bootstrap_eta(codes, y_eta, n_boot=n_boot, ci=ci, seed=seed)
        low[cats], high[cats] = lo, hi
    p = pvalues.loc[order, target].to_numpy()
    table = pd.DataFrame({"r": matrix.loc[order, target].to_numpy(), "measure": measures.loc[order, target].to_numpy(),
                          "p": p, "q": _bh(p), "ci_low": low.to_numpy(), "ci_high": high.to_numpy()},
                         index=pd.Index(order, name="feature"))
    table = table.reindex(table["r"].abs().sort_values(ascending=False).index)
    return CorrData(matrix, pvalues, table, method, target, n, ci, measures)


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _measures_of(d: CorrData) -> list[str]:
    """The :data:`MEASURES` keys of the matrix's off-diagonal cells, the number-number one first."""
    if d.measures is None:
        return [d.method]
    cells = d.measures.to_numpy()[~np.eye(len(d.measures), dtype=bool)]
    return [m for m in (d.method, "eta", "cramers_v") if m in set(cells)] or [d.method]


def _symbol(measure: str) -> str:
    return MEASURES[measure][0]


def _corr_title(d: CorrData) -> str:
    kinds = _measures_of(d)
    return f"{MEASURES[d.method][1].split(' (')[0]} correlations (n={d.n})" if kinds == [d.method] \
        else f"Associations (n={d.n})"


def _measures_note(d: CorrData, *, sep: str = "; ") -> str:
    """Which measure each symbol is: "r: Pearson r (number–number); η: correlation ratio ..."."""
    return sep.join(f"{_symbol(m)}: {MEASURES[m][1]}" for m in _measures_of(d))


def _corr_note(d: CorrData, *, intervals: bool = True, sep: str = "; ") -> str:
    """The measures, the stars and the bars; ``sep="<br>"`` puts each on a line of its own (Plotly
    does not wrap a subtitle, and one line of all three ran off a 390 px phone)."""
    stars = "* p<.05, ** p<.01, *** p<.001 (uncorrected)"
    parts = [_measures_note(d, sep=sep), stars] + ([f"bars: {d.ci:.0%} bootstrap CI"] if intervals else [])
    return sep.join(parts)


def _target_measure(d: CorrData) -> str:
    """The x-axis title of the ranked coefficients: "r / η with popularity"."""
    used = [m for m in (d.method, "eta") if m in set(d.target["measure"])] if "measure" in d.target else [d.method]
    return f"{' / '.join(_symbol(m) for m in used)} with {feature_name(d.target_name)}"


def _target_measures_note(d: CorrData) -> str:
    """The ranked figure's short key to its symbols, "r: Pearson; η: correlation ratio (adjusted)":
    one line that fits a 390 px phone."""
    used = [m for m in (d.method, "eta") if m in set(d.target["measure"])] if "measure" in d.target else [d.method]
    return "; ".join(f"{_symbol(m)}: {SHORT_MEASURES[m]}" for m in used)


def _cell_text(d: CorrData, i: int, j: int) -> str:
    """A cell's coefficient with its symbol when it is not the number-number measure, and its stars."""
    value = d.matrix.iat[i, j]
    if i == j:
        return f"{value:.2f}"
    measure = d.measures.iat[i, j] if d.measures is not None else d.method
    prefix = f"{_symbol(measure)} " if measure != d.method else ""
    return f"{prefix}{value:.2f}{_stars(d.pvalues.iat[i, j])}"


def _matrix_names(d: CorrData) -> list[str]:
    return [feature_name(c) for c in d.matrix.columns]


def _corr_intervals_axes(ax, d: CorrData) -> None:
    """Each feature's coefficient with the target and its bootstrap interval, ranked, on a matplotlib axes."""
    t = d.target.sort_values("r")
    ypos = np.arange(len(t))
    ax.errorbar(t["r"], ypos, xerr=[t["r"] - t["ci_low"], t["ci_high"] - t["r"]], fmt="o", capsize=3,
                color="tab:blue")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(ypos, [f"{feature_name(f)} {_stars(p)}" for f, p in zip(t.index, t["p"])])
    ax.set_xlabel(_target_measure(d))


def _corr_heatmap_mpl(d: CorrData, *, intervals: bool = True):
    from matplotlib.figure import Figure

    k = len(d.matrix)
    fig = Figure(figsize=(6 + (0.55 if intervals else 0.35) * k, 0.5 * k + 2.4), layout="constrained")
    ax, ax_ci = fig.subplots(1, 2, width_ratios=[k, 0.45 * k]) if intervals else (fig.subplots(), None)
    im = ax.imshow(d.matrix.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(k), _matrix_names(d), rotation=60, ha="right")
    ax.set_yticks(range(k), _matrix_names(d))
    for i in range(k):
        for j in range(k):
            value = d.matrix.iat[i, j]
            ax.text(j, i, _cell_text(d, i, j).replace(" ", "\n", 1) if i != j else "1", ha="center", va="center",
                    fontsize=6, color="white" if abs(value) > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.7, label="association")
    if ax_ci is not None:
        _corr_intervals_axes(ax_ci, d)
        ax_ci.set_title(f"vs {feature_name(d.target_name)}", fontsize=10)
    fig.suptitle(f"{_corr_title(d)}\n{_corr_note(d, intervals=intervals, sep=chr(10))}", fontsize=9)
    return fig


def _corr_intervals_mpl(d: CorrData):
    fig, (ax,) = mpl_figure(1, panel_size=(4.6, 0.3 * len(d.target) + 1.6))
    _corr_intervals_axes(ax, d)
    ax.set_title(f"{_target_measure(d)}, {d.ci:.0%} bootstrap CI (n={d.n})", fontsize=10)
    return fig


def _corr_matrix_trace(d: CorrData, colorbar: dict):
    import plotly.graph_objects as go

    k = len(d.matrix)
    text = [[_cell_text(d, i, j) for j in range(k)] for i in range(k)]
    measures = d.measures.to_numpy() if d.measures is not None else np.full((k, k), d.method, dtype=object)
    names = np.vectorize(lambda m: MEASURES[m][1])(measures)
    return go.Heatmap(
        z=d.matrix.to_numpy(), x=_matrix_names(d), y=_matrix_names(d), zmin=-1, zmax=1,
        colorscale="RdBu_r", text=text, texttemplate="%{text}", textfont={"size": 9},
        colorbar={"title": {"text": "association"}, **colorbar}, customdata=np.dstack([d.pvalues.to_numpy(), names]),
        hovertemplate="%{y} vs %{x}<br>%{customdata[1]}: %{z:.3f}<br>p=%{customdata[0]:.2g}<extra></extra>",
    )


def _corr_interval_trace(d: CorrData):
    import plotly.graph_objects as go

    t = d.target.sort_values("r")
    symbols = [_symbol(m) for m in t["measure"]] if "measure" in t else [_symbol(d.method)] * len(t)
    return go.Scatter(
        x=t["r"], y=[feature_name(f) for f in t.index], mode="markers", marker={"size": 8},
        error_x={"type": "data", "symmetric": False, "array": t["ci_high"] - t["r"], "arrayminus": t["r"] - t["ci_low"]},
        customdata=np.c_[t["p"], t["ci_low"], t["ci_high"], symbols],
        hovertemplate="%{y}: %{customdata[3]}=%{x:.3f} [%{customdata[1]:.3f}, %{customdata[2]:.3f}], "
                      "p=%{customdata[0]:.2g}<extra></extra>",
        showlegend=False,
    )


def _corr_height(d: CorrData) -> int:
    return max(450, 32 * len(d.matrix) + 150)


#: Column widths and gap (paper fractions) of the heatmap + intervals figure: the colourbar sits
#: in the gap and the intervals' feature names on their right, so neither covers the other (with
#: the names on the left, next to a colourbar at x=0.66, they overlapped at 1440 px).
CORR_COLUMNS = (0.7, 0.3)
CORR_GAP = 0.12


def _corr_heatmap_plotly(d: CorrData, *, intervals: bool = True):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    title = {"text": _corr_title(d), "subtitle": {"text": _corr_note(d, intervals=intervals, sep="<br>")}}
    # The target is the first row and column (top, left): on a phone the matrix scrolls sideways
    # inside its panel, and the target's column is the one in view. The subtitle's lines (one per
    # measure) take the top margin, so the column names stay at the bottom.
    room = {"title": title, "height": _corr_height(d) + 90, "margin": {"t": 190}}
    if not intervals:
        fig = go.Figure(_corr_matrix_trace(d, {}))
        fig.update_yaxes(autorange="reversed")
        return fig.update_layout(**room)
    fig = make_subplots(rows=1, cols=2, column_widths=list(CORR_COLUMNS), horizontal_spacing=CORR_GAP,
                        subplot_titles=("", f"vs {feature_name(d.target_name)}"))
    matrix_end = (1 - CORR_GAP) * CORR_COLUMNS[0]
    fig.add_trace(_corr_matrix_trace(d, {"x": matrix_end + 0.01, "xanchor": "left", "thickness": 14}), row=1, col=1)
    fig.add_trace(_corr_interval_trace(d), row=1, col=2)
    fig.add_vline(x=0, line_color="grey", line_width=1, row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_yaxes(side="right", row=1, col=2)
    fig.update_xaxes(title_text=_target_measure(d), row=1, col=2)
    return fig.update_layout(**room)


def _corr_intervals_plotly(d: CorrData):
    import plotly.graph_objects as go

    fig = go.Figure(_corr_interval_trace(d))
    fig.add_vline(x=0, line_color="grey", line_width=1)
    return fig.update_layout(
        title={"text": _target_measure(d),
               "subtitle": {"text": f"n={d.n}; bars: {d.ci:.0%} bootstrap CI<br>{_target_measures_note(d)}"}},
        xaxis_title=_target_measure(d), height=28 * len(d.target) + 170, margin={**COMPACT_MARGIN, "t": 120})


def corr_heatmap(
    df: pd.DataFrame | CorrData,
    target: str = TARGET,
    method: Literal["pearson", "spearman"] = "pearson",
    *,
    columns: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = config.DEFAULT_SEED,
    intervals: bool = True,
    backend: Backend = "plotly",
):
    """Clustered, annotated association heatmap with each feature's coefficient vs ``target`` and its CI.

    Cells show the pair's measure (r or ρ for two numbers, η for a category and a number, V for
    two categories; :func:`associations`) and significance stars (uncorrected p); the target is
    the first row and column. The side panel (``intervals``; False
    leaves it out, see :func:`corr_intervals`) shows r with the bootstrap interval, so "louder
    songs are more popular" is read with its uncertainty. See :func:`corr_data` for the
    parameters; ``df`` may also be a CorrData already computed (the other parameters but
    ``intervals`` and ``backend`` are then ignored). Returns a matplotlib or a plotly Figure.
    """
    d = _corr_data_of(df, target=target, method=method, columns=columns, n_boot=n_boot, ci=ci, seed=seed)
    renderers = {"matplotlib": lambda x: _corr_heatmap_mpl(x, intervals=intervals),
                 "plotly": lambda x: _corr_heatmap_plotly(x, intervals=intervals)}
    return render(d, renderers, backend)


def corr_intervals(df: pd.DataFrame | CorrData, target: str = TARGET,
                   method: Literal["pearson", "spearman"] = "pearson", *, backend: Backend = "plotly", **kwargs):
    """Each feature's correlation with ``target``, ranked, with its bootstrap interval: the
    heatmap's side panel as a figure of its own (readable on a phone, where a 13 x 13 matrix is not).

    Takes what :func:`corr_heatmap` takes.
    """
    d = _corr_data_of(df, target=target, method=method, **kwargs)
    return render(d, {"matplotlib": _corr_intervals_mpl, "plotly": _corr_intervals_plotly}, backend)


def _corr_data_of(df: pd.DataFrame | CorrData, **kwargs) -> CorrData:
    return df if isinstance(df, CorrData) else corr_data(df, **kwargs)


# --- each feature against popularity ------------------------------------------------------


@dataclass
class TrendData:
    """Per feature: the points and an OLS line with its confidence band.

    points : DataFrame (feature, x, y, row) of the plotted points; row is the index in ``df``
    lines : DataFrame (feature, x, fit, low, high) on a grid over each feature's range
    stats : DataFrame indexed by feature: slope, r, p, n
    """

    points: pd.DataFrame
    lines: pd.DataFrame
    stats: pd.DataFrame
    target_name: str
    ci: float


def trend_data(
    df: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    target: str = TARGET,
    ci: float = 0.95,
    n_grid: int = 50,
    max_points: int = 2000,
    seed: int = config.DEFAULT_SEED,
) -> TrendData:
    """Least-squares line of ``target`` on each feature with the band of the mean at level ``ci``.

    The band is the t-interval of the fitted mean, ``fit ± t * s * sqrt(1/n + (x-x̄)²/Sxx)``.
    At most ``max_points`` points per feature are kept for drawing (the fit uses all rows).
    """
    from scipy import stats

    feats = pick_features(df, features, CONTINUOUS_FEATURES)
    points, lines, rows = [], [], []
    for f in feats:
        data = numeric_frame(df, [f, target])
        x, y = data[f].to_numpy(), data[target].to_numpy()
        n = len(x)
        sxx = ((x - x.mean()) ** 2).sum()
        if sxx == 0:
            continue
        slope = ((x - x.mean()) * (y - y.mean())).sum() / sxx
        intercept = y.mean() - slope * x.mean()
        resid = y - (intercept + slope * x)
        s = np.sqrt((resid**2).sum() / (n - 2))
        grid = np.linspace(x.min(), x.max(), n_grid)
        fit = intercept + slope * grid
        half = stats.t.ppf(0.5 + ci / 2, n - 2) * s * np.sqrt(1 / n + (grid - x.mean()) ** 2 / sxx)
        lines.append(pd.DataFrame({"feature": f, "x": grid, "fit": fit, "low": fit - half, "high": fit + half}))
        keep = data.sample(min(n, max_points), random_state=seed) if n > max_points else data
        points.append(pd.DataFrame({"feature": f, "x": keep[f].to_numpy(), "y": keep[target].to_numpy(),
                                    "row": keep.index.to_numpy()}))
        r, p = stats.pearsonr(x, y)
        rows.append({"feature": f, "slope": slope, "r": r, "p": p, "n": n})
    if not rows:
        raise TracklensError("no feature varies; nothing to plot against popularity")
    return TrendData(pd.concat(points, ignore_index=True), pd.concat(lines, ignore_index=True),
                     pd.DataFrame(rows).set_index("feature"), target, ci)


def _trend_label(d: TrendData, f: str) -> str:
    s = d.stats.loc[f]
    return f"{feature_name(f)}: r={s['r']:.2f}{_stars(s['p'])}"


def _trend_title(d: TrendData) -> str:
    feats = list(d.stats.index)
    return _trend_label(d, feats[0]) if len(feats) == 1 else f"Features vs {feature_name(d.target_name)}"


def _trend_note(d: TrendData) -> str:
    return f"line: least squares; band: {d.ci:.0%} confidence"


def _display_trends(d: TrendData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The points and lines with x in each feature's drawn unit."""
    return in_display_units(d.points, ["x"]), in_display_units(d.lines, ["x"])


def _param_viz_mpl(d: TrendData):
    feats = list(d.stats.index)
    points, lines = _display_trends(d)
    fig, axes = mpl_figure(len(feats))
    for ax, f in zip(axes, feats):
        pts, line = points[points.feature == f], lines[lines.feature == f]
        ax.scatter(pts["x"], pts["y"], s=4, alpha=0.25, color="tab:grey", rasterized=True)
        ax.plot(line["x"], line["fit"], color="tab:red")
        ax.fill_between(line["x"], line["low"], line["high"], color="tab:red", alpha=0.25)
        ax.set_title(_trend_label(d, f), fontsize=9)
        ax.set_xlabel(feature_label(f))
        axis_ticks_mpl(ax.xaxis, f)
        ax.set_ylabel(feature_label(d.target_name))
    fig.suptitle(f"{_trend_title(d)} ({_trend_note(d)})")
    return fig


def _param_viz_plotly(d: TrendData):
    import plotly.graph_objects as go

    feats = list(d.stats.index)
    points, lines = _display_trends(d)
    fig, pos = plotly_grid([_trend_label(d, f) for f in feats] if len(feats) > 1 else [""])
    y_title = feature_label(d.target_name)
    for f, (row, col) in zip(feats, pos):
        pts, line = points[points.feature == f], lines[lines.feature == f]
        x_title = feature_label(f)
        # customdata carries the row index so a box/lasso selection maps back to tracks. Plain SVG
        # (go.Scatter), not WebGL: at most trend_data's max_points (2000) points, and WebGL's
        # regl needs 'unsafe-eval' in the dashboard's Content-Security-Policy.
        fig.add_trace(go.Scatter(x=pts["x"], y=pts["y"], mode="markers", customdata=pts[["row"]].to_numpy(),
                                 marker={"size": 4, "color": "grey", "opacity": 0.35}, name=f, showlegend=False,
                                 hovertemplate=f"{hover_label(f)}: %{{x:.3g}}<br>{y_title}: %{{y}}<extra></extra>"),
                      row=row, col=col)
        fig.add_trace(go.Scatter(x=np.r_[line["x"], line["x"][::-1]], y=np.r_[line["high"], line["low"][::-1]],
                                 fill="toself", fillcolor="rgba(214,39,40,0.25)", line={"width": 0},
                                 hoverinfo="skip", showlegend=False), row=row, col=col)
        fig.add_trace(go.Scatter(x=line["x"], y=line["fit"], mode="lines", line={"color": "rgb(214,39,40)"},
                                 showlegend=False), row=row, col=col)
        fig.update_xaxes(title_text=x_title, row=row, col=col, **axis_ticks_plotly(f, line["x"]))
        fig.update_yaxes(title_text=y_title, row=row, col=col)
    fig.update_layout(title={"text": _trend_title(d), "subtitle": {"text": _trend_note(d)}},
                      height=260 * pos[-1][0] + 100, margin=COMPACT_MARGIN)
    return fig


def param_viz(df: pd.DataFrame, *, features: Sequence[str] | None = None, target: str = TARGET,
              ci: float = 0.95, backend: Backend = "plotly"):
    """Scatter of each feature against ``target`` with its OLS trend and confidence band.

    See :func:`trend_data`. Returns a matplotlib Figure or a plotly Figure.
    """
    d = trend_data(df, features=features, target=target, ci=ci)
    return render(d, {"matplotlib": _param_viz_mpl, "plotly": _param_viz_plotly}, backend)


def popularity_scatter(df: pd.DataFrame, *, feature: str = "energy", target: str = TARGET, ci: float = 0.95,
                       backend: Backend = "plotly"):
    """One feature against ``target``: the single-panel :func:`param_viz` (the dashboard's scatter).

    In the Plotly figure each point's ``customdata[0]`` is its row index in ``df``.
    """
    return param_viz(df, features=[feature], target=target, ci=ci, backend=backend)


# --- distributions by group ---------------------------------------------------------------


def explode_genres(df: pd.DataFrame, *, column: str = "genre") -> pd.DataFrame:
    """One row per (track, genre label): the Top Hits ``genre`` is a comma-separated multi-label.

    Rows with no genre (the table's literal ``set()`` or empty) are dropped.
    """
    from tracklens import preprocessing

    if column not in df.columns:
        raise TracklensError(f"chart table lacks column {column!r}")
    out = df.assign(**{column: df[column].map(preprocessing.split_genres)}).explode(column)
    return out[out[column].notna()]


def popularity_bands(popularity: pd.Series) -> pd.Series:
    """Popularity bands as the data engineer defines them (preprocessing.popularity_band)."""
    from tracklens import preprocessing

    return preprocessing.popularity_band(popularity)


def group_data(
    df: pd.DataFrame,
    *,
    by: Literal["genre", "band"] = "genre",
    features: Sequence[str] | None = None,
    top_genres: int = 8,
) -> pd.DataFrame:
    """Long table (group, feature, value) of each feature's values per genre or popularity band.

    by="genre" counts a multi-genre track in each of its genres and keeps the ``top_genres``
    most common; by="band" uses :func:`popularity_bands`. Groups are ordered categoricals.
    """
    feats = pick_features(df, features, CONTINUOUS_FEATURES)
    if by == "genre":
        long = explode_genres(df)
        order = list(long["genre"].value_counts().index[:top_genres])
        groups = long["genre"].where(long["genre"].isin(order))
    elif by == "band":
        long = df
        groups = popularity_bands(df[TARGET])
        order = list(groups.cat.categories) if isinstance(groups.dtype, pd.CategoricalDtype) else sorted(groups.dropna().unique())
    else:
        raise TracklensError(f"by={by!r} must be 'genre' or 'band'")
    wide = long[feats].astype(float).assign(group=groups.to_numpy()).dropna(subset=["group"])
    out = wide.melt(id_vars="group", var_name="feature", value_name="value").dropna()
    if out.empty:
        what = "genre" if by == "genre" else "popularity band"
        raise TracklensError(f"no track with a {what} and a value of {feats}: nothing to draw")
    out["group"] = pd.Categorical(out["group"], categories=order, ordered=True)
    out.attrs["by"] = "genre" if by == "genre" else "popularity band"
    out.attrs["n"] = wide["group"].value_counts().reindex(order, fill_value=0).to_dict()  # tracks per group
    return out


def _group_labels(d: pd.DataFrame) -> list[str]:
    return [f"{g} (n={d.attrs.get('n', {}).get(g, '?')})" for g in d["group"].cat.categories]


def _catplot_mpl(d: pd.DataFrame):
    feats = list(dict.fromkeys(d["feature"]))
    groups = list(d["group"].cat.categories)
    d = in_display_units(d, ["value"])
    fig, axes = mpl_figure(len(feats), ncols=3, panel_size=(4.2, 2.8))
    for ax, f in zip(axes, feats):
        sub = d[d.feature == f]
        values = [sub.loc[sub.group == g, "value"].to_numpy() for g in groups]
        ax.boxplot(values, tick_labels=_group_labels(d), showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "tab:blue", "alpha": 0.4})
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        axis_ticks_mpl(ax.yaxis, f)
        ax.set_title(feature_label(f), fontsize=9)
    fig.suptitle(f"Feature distributions by {d.attrs.get('by', 'group')} (boxes: quartiles, whiskers 1.5 IQR)")
    return fig


def _catplot_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    feats = list(dict.fromkeys(d["feature"]))
    labels = dict(zip(d["group"].cat.categories, map(plotly_text, _group_labels(d))))
    d = in_display_units(d, ["value"])
    fig, pos = plotly_grid([feature_label(f) for f in feats], ncols=3)
    for f, (row, col) in zip(feats, pos):
        sub = d[d.feature == f].sort_values("group")
        fig.add_trace(go.Box(x=sub["group"].map(labels).astype(str), y=sub["value"], name=feature_name(f),
                             boxpoints=False, showlegend=False), row=row, col=col)
        fig.update_yaxes(row=row, col=col, **axis_ticks_plotly(f, sub["value"].quantile([0.0, 1.0])))
    fig.update_layout(title=f"Feature distributions by {d.attrs.get('by', 'group')}", height=300 * pos[-1][0] + 80)
    return fig


def catplot_viz(df: pd.DataFrame, *, by: Literal["genre", "band"] = "genre", features: Sequence[str] | None = None,
                top_genres: int = 8, backend: Backend = "plotly"):
    """Box plots of each feature by genre or by popularity band (see :func:`group_data`)."""
    d = group_data(df, by=by, features=features, top_genres=top_genres)
    return render(d, {"matplotlib": _catplot_mpl, "plotly": _catplot_plotly}, backend)


# --- distributions ------------------------------------------------------------------------


def distribution_data(df: pd.DataFrame, *, features: Sequence[str] | None = None, bins: int = 30) -> pd.DataFrame:
    """Histogram of each feature as density: long table (feature, left, right, density, count)."""
    feats = pick_features(df, features, CONTINUOUS_FEATURES + (TARGET,))
    parts = []
    for f in feats:
        x = pd.to_numeric(df[f], errors="coerce").dropna().to_numpy(dtype=float)
        if len(x) == 0:
            continue
        counts, edges = np.histogram(x, bins=bins)
        width = np.diff(edges)
        density = counts / (counts.sum() * np.where(width > 0, width, 1))
        parts.append(pd.DataFrame({"feature": f, "left": edges[:-1], "right": edges[1:], "density": density, "count": counts}))
    if not parts:
        raise TracklensError("no numeric values to plot")
    return pd.concat(parts, ignore_index=True)


def _distributions_mpl(d: pd.DataFrame):
    feats = list(dict.fromkeys(d["feature"]))
    d = in_display_units(d, ["left", "right"], per_unit=["density"])
    fig, axes = mpl_figure(len(feats))
    for ax, f in zip(axes, feats):
        sub = d[d.feature == f]
        ax.bar(sub["left"], sub["density"], width=sub["right"] - sub["left"], align="edge", color="tab:blue", alpha=0.7)
        ax.set_title(f"{feature_name(f)} (n={int(sub['count'].sum())})", fontsize=9)
        ax.set_xlabel(AXIS_UNITS.get(f, ""))
        axis_ticks_mpl(ax.xaxis, f)
        ax.set_yticks([])
    fig.suptitle("Distributions of the chart hits' features (density)")
    return fig


def _distributions_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    feats = list(dict.fromkeys(d["feature"]))
    d = in_display_units(d, ["left", "right"], per_unit=["density"])
    fig, pos = plotly_grid([feature_name(f) for f in feats])
    for f, (row, col) in zip(feats, pos):
        sub = d[d.feature == f]
        fig.update_xaxes(title_text=AXIS_UNITS.get(f), row=row, col=col,
                         **axis_ticks_plotly(f, np.r_[sub["left"], sub["right"]]))
        fig.add_trace(go.Bar(x=(sub["left"] + sub["right"]) / 2, y=sub["density"], width=sub["right"] - sub["left"],
                             customdata=sub["count"], hovertemplate="%{x:.3g}: %{customdata} tracks<extra></extra>",
                             showlegend=False), row=row, col=col)
    fig.update_layout(title="Distributions of the chart hits' features (density)", bargap=0, height=230 * pos[-1][0] + 80)
    return fig


def distribution_plots(df: pd.DataFrame, *, features: Sequence[str] | None = None, bins: int = 30,
                       backend: Backend = "plotly"):
    """Histograms (density) of each feature and of popularity (see :func:`distribution_data`)."""
    d = distribution_data(df, features=features, bins=bins)
    return render(d, {"matplotlib": _distributions_mpl, "plotly": _distributions_plotly}, backend)


# --- yearly trends ------------------------------------------------------------------------


def yearly_data(
    df: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    years: tuple[int, int] | None = None,
    min_tracks: int = 5,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Per year and feature: mean, t-interval of the mean and n (long table).

    ``years`` limits the range (inclusive; None: every year in ``df``, which for the Top Hits
    table is 1998-2020, not its stated 2000-2019); years with fewer than ``min_tracks`` tracks
    are dropped (Top Hits: 1998 has 1, 2020 has 3).
    """
    from scipy import stats

    feats = pick_features(df, features, CONTINUOUS_FEATURES + (TARGET,))
    data = numeric_frame(df, ["year"] + feats)
    if years is not None:
        data = data[data["year"].between(*years)]
    long = data.melt(id_vars="year", var_name="feature", value_name="value")
    agg = long.groupby(["feature", "year"], sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    agg = agg[agg["count"] >= min_tracks]
    if agg.empty:
        raise TracklensError(f"no year has {min_tracks}+ tracks in the range {years}")
    half = stats.t.ppf(0.5 + ci / 2, agg["count"] - 1) * agg["std"] / np.sqrt(agg["count"])
    agg = agg.assign(low=agg["mean"] - half, high=agg["mean"] + half, year=agg["year"].astype(int)).rename(columns={"count": "n"})
    agg["feature"] = pd.Categorical(agg["feature"], categories=feats, ordered=True)
    agg.attrs["ci"] = ci
    return agg.sort_values(["feature", "year"]).reset_index(drop=True)


def _yearly_features(d: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """The features drawn, in order, and ``d`` with mean and interval in their drawn units."""
    feats = list(d["feature"].cat.categories.intersection(d["feature"].unique()))
    return feats, in_display_units(d, ["mean", "low", "high"])


def _yearly_mpl(d: pd.DataFrame, *, ncols: int = 4):
    feats, d = _yearly_features(d)
    fig, axes = mpl_figure(len(feats), ncols=ncols)
    for ax, f in zip(axes, feats):
        sub = d[d.feature == f]
        ax.plot(sub["year"], sub["mean"], marker="o", ms=3)
        ax.fill_between(sub["year"], sub["low"], sub["high"], alpha=0.25)
        ax.set_title(feature_name(f), fontsize=9)
        ax.set(xlabel="year", ylabel=AXIS_UNITS.get(f, ""))
        axis_ticks_mpl(ax.yaxis, f)
    fig.suptitle(f"Yearly mean of each feature with its {d.attrs.get('ci', 0.95):.0%} confidence interval")
    return fig


def _yearly_plotly(d: pd.DataFrame, *, ncols: int = 4):
    import plotly.graph_objects as go

    feats, d = _yearly_features(d)
    fig, pos = plotly_grid([feature_name(f) for f in feats], ncols=ncols)
    for f, (row, col) in zip(feats, pos):
        sub = d[d.feature == f]
        fig.update_yaxes(title_text=AXIS_UNITS.get(f), row=row, col=col,
                         **axis_ticks_plotly(f, np.r_[sub["low"], sub["high"]]))
        fig.add_trace(go.Scatter(x=np.r_[sub["year"], sub["year"][::-1]], y=np.r_[sub["high"], sub["low"][::-1]],
                                 fill="toself", fillcolor="rgba(31,119,180,0.25)", line={"width": 0},
                                 hoverinfo="skip", showlegend=False), row=row, col=col)
        fig.add_trace(go.Scatter(x=sub["year"], y=sub["mean"], mode="lines+markers", customdata=sub["n"],
                                 hovertemplate="%{x}: %{y:.3g} (n=%{customdata})<extra></extra>", showlegend=False),
                      row=row, col=col)
    fig.update_layout(title={"text": "Yearly means",
                             "subtitle": {"text": f"band: {d.attrs.get('ci', 0.95):.0%} confidence interval"}},
                      height=230 * pos[-1][0] + 120, margin={**COMPACT_MARGIN, "t": 110})  # room for the panel titles
    return fig


def yearly_trends(df: pd.DataFrame, *, features: Sequence[str] | None = None,
                  years: tuple[int, int] | None = None, ncols: int = 4, backend: Backend = "plotly"):
    """Yearly means of each feature with confidence bands (see :func:`yearly_data`), ``ncols``
    panels a row (1 stacks them: each keeps the figure's width and its unit's axis title room)."""
    d = yearly_data(df, features=features, years=years)
    return render(d, {"matplotlib": lambda x: _yearly_mpl(x, ncols=ncols),
                       "plotly": lambda x: _yearly_plotly(x, ncols=ncols)}, backend)


# --- the popularity model's report (fit by models.popularity) -----------------------------


#: The permutation importances' unit, in both renderers.
IMPORTANCE_LABEL = "drop in held-out R² when permuted"


def _popularity_mpl(rep: PopularityReport):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax_r2, ax_auc, ax_imp = fig.subplots(1, 3, width_ratios=[1, 1, 1.4])
    for ax, metric, ref in ((ax_r2, "r2", 0.0), (ax_auc, "auc", 0.5)):
        s = rep.scores[rep.scores.metric == metric]
        ax.bar(s["model"], s["mean"], yerr=s["std"], capsize=4, color=["tab:grey"] + ["tab:blue"] * (len(s) - 1))
        ax.axhline(ref, color="black", lw=0.8)
        ax.set_title(f"{s['task'].iloc[0]}, {rep.n_splits}-fold CV", fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax_auc.set_ylim(0.3, 1.0)
    imp = rep.importances.iloc[::-1]
    ax_imp.barh(imp.index, imp["mean"], xerr=imp["std"], color="tab:orange", alpha=0.8)
    ax_imp.axvline(0, color="black", lw=0.8)
    ax_imp.set_xlabel(IMPORTANCE_LABEL)
    ax_imp.set_title(f"Permutation importance ({rep.best_model})", fontsize=10)
    fig.suptitle(rep.verdict, fontsize=9)
    return fig


def _popularity_plotly(rep: PopularityReport):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, column_widths=[1, 1, 1.4], horizontal_spacing=0.11,
                        subplot_titles=("popularity (R²)", "hit (AUC)", f"permutation importance ({rep.best_model})"))
    for col, metric, ref in ((1, "r2", 0.0), (2, "auc", 0.5)):
        s = rep.scores[rep.scores.metric == metric]
        fig.add_trace(go.Bar(x=s["model"], y=s["mean"], error_y={"type": "data", "array": s["std"]}, showlegend=False), row=1, col=col)
        fig.add_hline(y=ref, line_color="black", line_width=1, row=1, col=col)
    imp = rep.importances.iloc[::-1]
    fig.add_trace(go.Bar(x=imp["mean"], y=list(imp.index), orientation="h", error_x={"type": "data", "array": imp["std"]},
                         showlegend=False), row=1, col=3)
    fig.add_vline(x=0, line_color="black", line_width=1, row=1, col=3)
    fig.update_yaxes(title_text="R², held out", row=1, col=1)
    fig.update_yaxes(title_text="AUC, held out", range=[0.3, 1.0], row=1, col=2)
    fig.update_yaxes(side="right", row=1, col=3)  # the feature names beside their own panel, not on the AUC bars
    fig.update_xaxes(tickangle=90, row=1, col=1)
    fig.update_xaxes(tickangle=90, row=1, col=2)  # slanted, the model names ran under the importances' axis title
    fig.update_xaxes(title_text=IMPORTANCE_LABEL, row=1, col=3)
    # the verdict (~150 characters) as the subtitle, one clause a line: as a title it ran off the figure
    title = f"Popularity from audio features ({rep.n} tracks, {rep.n_splits}-fold CV grouped by artist)"
    note = "bars: mean ± sd over the folds<br>" + rep.verdict.replace(": ", ":<br>", 1).replace("; ", ";<br>")
    fig.update_layout(title={"text": title, "subtitle": {"text": note}}, height=560, margin={"t": 190})
    return fig


def popularity_model_figure(report_or_df: PopularityReport | pd.DataFrame, *, backend: Backend = "plotly", **kwargs):
    """CV scores against the baselines and permutation importances (see :func:`popularity_model`).

    Takes a PopularityReport, or a chart table (then ``kwargs`` go to popularity_model).
    """
    rep = report_or_df if isinstance(report_or_df, PopularityReport) else popularity_model(report_or_df, **kwargs)
    return render(rep, {"matplotlib": _popularity_mpl, "plotly": _popularity_plotly}, backend)


# --- text summaries --------------------------------------------------------------------------


def summarize_correlations(d: CorrData | pd.DataFrame, *, k: int = 3, **kwargs) -> str:
    """The ``k`` strongest and ``k`` weakest feature-target associations with their intervals
    (each with its measure's symbol: r/ρ for a number, η for a category). Takes a CorrData, or a
    chart table (then ``kwargs`` go to :func:`corr_data`)."""
    d = _corr_data_of(d, **kwargs)
    t = d.target

    def line(f, row):
        symbol = _symbol(row.get("measure", d.method))
        return (f"  {feature_name(f):<17} {symbol}={row['r']:+.3f}  {d.ci:.0%} CI [{row['ci_low']:+.3f}, "
                f"{row['ci_high']:+.3f}]  p={row['p']:.2g}  q={row['q']:.2g}")

    out = [f"association with {d.target_name} (n={d.n}; {_measures_note(d)}), strongest:"]
    out += [line(f, r) for f, r in t.head(k).iterrows()]
    out.append("weakest:")
    out += [line(f, r) for f, r in t.tail(k).iloc[::-1].iterrows()]
    return "\n".join(out)


def summarize_popularity(rep: PopularityReport | pd.DataFrame, **kwargs) -> str:
    """CV scores per model and the verdict, as text. Takes a PopularityReport, or a chart table
    (then ``kwargs`` go to :func:`popularity_model`)."""
    rep = rep if isinstance(rep, PopularityReport) else popularity_model(rep, **kwargs)
    lines = [f"popularity model, {rep.n} tracks, {rep.n_splits}-fold CV grouped by artist "
             f"(hit = popularity >= {rep.hit_threshold:.0f}):"]
    for _, r in rep.scores.iterrows():
        lines.append(f"  {r['task']:<16} {r['model']:<18} {r['mean']:+.3f} ± {r['std']:.3f}")
    top = ", ".join(f"{f} {m:+.3f}" for f, m in rep.importances["mean"].head(3).items())
    lines.append(f"  top permutation importances (R² drop): {top}")
    lines.append(rep.verdict)
    return "\n".join(lines)


def example_track(df: pd.DataFrame) -> pd.Series:
    """The most popular track of the table (the example for the hit-profile figure)."""
    return df.loc[pd.to_numeric(df[TARGET], errors="coerce").idxmax()]
