"""Popularity statistics and chart figures, each built once and drawn by matplotlib or Plotly.

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

import html
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.models import evaluate
from tracklens.models.popularity import (AUDIO_FEATURES, TARGET, PopularityReport, numeric_frame, pick_features,
                                         popularity_model)

Backend = Literal["matplotlib", "plotly"]


def plotly_text(value) -> str:
    """``value`` shown as typed in a Plotly figure.

    Plotly reads a subset of HTML in every label, legend entry, hover text, title and annotation
    (``<b>``, ``<span style=...>``, ``<a href=...>``, ``<br>``), so a file name or a table cell like
    ``<b style="font-size:90px">BIG.wav`` became 90 px bold text and ``<a href=...>`` a link.
    Plotly decodes ``&lt; &gt; &amp;`` back for display: escaped, the text reads as written.
    Every name that comes from the user's data or an upload goes through this before it reaches
    a Plotly figure (the matplotlib renderers draw text literally and get it unescaped).
    """
    return html.escape(str(value), quote=False)

#: Continuous features worth a scatter, a trend or a distribution (key/mode/explicit are codes).
CONTINUOUS_FEATURES = config.CHART_CONTINUOUS_FEATURES

#: Each chart column's name in words and its unit: the one map every figure, table and control
#: labels a column by (:func:`feature_name`, :func:`feature_label`, :func:`format_feature`).
#: Spotify's descriptors are 0-1 scores; its loudness is the track's integrated level in dB
#: relative to digital full scale (hence negative), not an upload's LUFS. Duration is stored in
#: ms, drawn in minutes with m:ss ticks (:data:`DISPLAY_SCALE`).
COLUMN_LABELS: dict[str, tuple[str, str | None]] = {
    "duration_ms": ("duration", "m:ss"),
    "tempo": ("tempo", "BPM"),
    "loudness": ("loudness", "dB, Spotify"),
    "popularity": ("popularity", "0–100"),
    **{f: (f, "0–1") for f in config.SPOTIFY_PERCEPTUAL_FEATURES},
    "key": ("key", None), "mode": ("mode", None), "explicit": ("explicit", None), "year": ("year", None),
}
#: Units of the columns in axis titles (from :data:`COLUMN_LABELS`).
AXIS_UNITS = {c: unit for c, (_, unit) in COLUMN_LABELS.items() if unit}
#: Columns drawn under another name (from :data:`COLUMN_LABELS`).
DISPLAY_NAMES = {c: name for c, (name, _) in COLUMN_LABELS.items() if name != c}
#: The factor from a column's stored unit to the drawn one.
DISPLAY_SCALE = {"duration_ms": 1 / 60_000}


def feature_name(column: str) -> str:
    """The name a column is drawn under in words (``duration_ms`` is drawn as ``duration``)."""
    return DISPLAY_NAMES.get(column, column)


def feature_label(column: str) -> str:
    """An axis title with the unit: ``"tempo (BPM)"``, ``"duration (m:ss)"``; the name alone without one."""
    unit = AXIS_UNITS.get(column)
    return f"{feature_name(column)} ({unit})" if unit else feature_name(column)


def minutes_text(minutes: float) -> str:
    """Minutes as m:ss: 3.5 -> "3:30"."""
    total = int(round(float(minutes) * 60))
    return f"{'-' if total < 0 else ''}{abs(total) // 60}:{abs(total) % 60:02d}"


def duration_ticks(low: float, high: float, *, target: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions (minutes) at 15 s, 30 s, 1, 2, 5 or 10 min steps over [low, high], about
    ``target`` of them, with their m:ss labels (Plotly formats numbers only)."""
    span = max(float(high) - float(low), 1e-9)
    step = next((s for s in (0.25, 0.5, 1, 2, 5, 10, 20) if span / s <= target), 30.0)
    vals = list(np.arange(np.ceil(low / step) * step, high + 1e-9, step))
    return vals, [minutes_text(v) for v in vals]


def _hover_label(column: str) -> str:
    """A column's label for a hover's plain number: a duration there is decimal minutes, not m:ss."""
    return f"{feature_name(column)} (min)" if column in DISPLAY_SCALE else feature_label(column)


def _axis_ticks_plotly(feature: str, values) -> dict:
    """Plotly axis properties that write a duration axis (in minutes) as m:ss; {} for other columns."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if feature != "duration_ms" or not len(values):
        return {}
    vals, text = duration_ticks(values.min(), values.max())
    return {"tickmode": "array", "tickvals": vals, "ticktext": text}


def _axis_ticks_mpl(axis, feature: str) -> None:
    """Write a matplotlib duration axis (in minutes) as m:ss."""
    if feature == "duration_ms":
        from matplotlib.ticker import FuncFormatter

        axis.set_major_formatter(FuncFormatter(lambda v, _: minutes_text(v)))


# --- shared helpers -----------------------------------------------------------------------


def _render(data, renderers: Mapping[str, Callable], backend: str):
    """Draw prepared ``data`` with the renderer for ``backend``."""
    try:
        renderer = renderers[backend]
    except KeyError:
        raise TracklensError(f"backend={backend!r} is not one of {sorted(renderers)}") from None
    return renderer(data)


def _mpl_figure(n_panels: int, *, ncols: int = 4, panel_size=(3.2, 2.6)):
    """A matplotlib Figure (no pyplot state, so nothing pops up or leaks) with a grid of axes."""
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


#: One fixed colour per genre in every figure and page (the blend bar, the timeline, the map, the
#: ROC curves; the check page's swatches): ranked colours made orange rock for one upload and metal
#: for the next. Okabe & Ito's colour-blind-safe set plus Tol's wine and olive; black stays for
#: "your track". Other names (chart genres, another model's genres) get a stable colour from
#: :data:`OTHER_COLOURS` by a hash of the name.
GENRE_COLOURS = {"blues": "#0072B2", "classical": "#CC79A7", "country": "#E69F00", "disco": "#56B4E9",
                 "hiphop": "#009E73", "jazz": "#882255", "metal": "#4D4D4D", "pop": "#F0E442",
                 "reggae": "#999933", "rock": "#D55E00"}
OTHER_COLOURS = ("#332288", "#44AA99", "#AA4499", "#DDCC77", "#117733", "#88CCEE", "#661100", "#6699CC")


def genre_colour(genre: str) -> str:
    """The genre's fixed colour (hex), the same wherever it is drawn."""
    import zlib

    name = str(genre)
    if name in GENRE_COLOURS:
        return GENRE_COLOURS[name]
    return OTHER_COLOURS[zlib.crc32(name.encode()) % len(OTHER_COLOURS)]


def text_colour_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (hex; WCAG relative luminance)."""
    rgb = [int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#1b1b1b" if luminance > 0.179 else "#ffffff"


#: Plotly margins (px) for figures without a legend or colour bar on the right: Plotly's 80 px on
#: each side left a phone-wide (~330 px) figure half its width for the plot.
COMPACT_MARGIN = {"l": 60, "r": 20, "t": 90, "b": 60}


def _plotly_grid(titles: Sequence[str], *, ncols: int = 4, **kwargs):
    from plotly.subplots import make_subplots

    ncols = max(1, min(ncols, len(titles)))
    nrows = int(np.ceil(len(titles) / ncols))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=list(titles), **kwargs)
    positions = [(i // ncols + 1, i % ncols + 1) for i in range(len(titles))]
    return fig, positions


def _in_display_units(d: pd.DataFrame, columns: Sequence[str], *, per_unit: Sequence[str] = ()) -> pd.DataFrame:
    """A long table (with a ``feature`` column) with ``columns`` in each feature's drawn unit
    (:data:`DISPLAY_SCALE`) and ``per_unit`` columns (densities) divided by the same factor."""
    scale = d["feature"].astype(str).map(lambda f: DISPLAY_SCALE.get(f, 1.0)).astype(float)
    out = d.assign(**{c: d[c] * scale for c in columns}, **{c: d[c] / scale for c in per_unit})
    out.attrs.update(d.attrs)
    return out


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
    fig, (ax,) = _mpl_figure(1, panel_size=(4.6, 0.3 * len(d.target) + 1.6))
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
    if not intervals:
        fig = go.Figure(_corr_matrix_trace(d, {}))
        fig.update_yaxes(autorange="reversed")
        return fig.update_layout(title=title, height=_corr_height(d) + 90, margin={"t": 190})
    fig = make_subplots(rows=1, cols=2, column_widths=list(CORR_COLUMNS), horizontal_spacing=CORR_GAP,
                        subplot_titles=("", f"vs {feature_name(d.target_name)}"))
    matrix_end = (1 - CORR_GAP) * CORR_COLUMNS[0]
    fig.add_trace(_corr_matrix_trace(d, {"x": matrix_end + 0.01, "xanchor": "left", "thickness": 14}), row=1, col=1)
    fig.add_trace(_corr_interval_trace(d), row=1, col=2)
    fig.add_vline(x=0, line_color="grey", line_width=1, row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    fig.update_yaxes(side="right", row=1, col=2)
    fig.update_xaxes(title_text=_target_measure(d), row=1, col=2)
    return fig.update_layout(title=title, height=_corr_height(d))


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
    return _render(d, renderers, backend)


def corr_intervals(df: pd.DataFrame | CorrData, target: str = TARGET,
                   method: Literal["pearson", "spearman"] = "pearson", *, backend: Backend = "plotly", **kwargs):
    """Each feature's correlation with ``target``, ranked, with its bootstrap interval: the
    heatmap's side panel as a figure of its own (readable on a phone, where a 13 x 13 matrix is not).

    Takes what :func:`corr_heatmap` takes.
    """
    d = _corr_data_of(df, target=target, method=method, **kwargs)
    return _render(d, {"matplotlib": _corr_intervals_mpl, "plotly": _corr_intervals_plotly}, backend)


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
    return _in_display_units(d.points, ["x"]), _in_display_units(d.lines, ["x"])


def _param_viz_mpl(d: TrendData):
    feats = list(d.stats.index)
    points, lines = _display_trends(d)
    fig, axes = _mpl_figure(len(feats))
    for ax, f in zip(axes, feats):
        pts, line = points[points.feature == f], lines[lines.feature == f]
        ax.scatter(pts["x"], pts["y"], s=4, alpha=0.25, color="tab:grey", rasterized=True)
        ax.plot(line["x"], line["fit"], color="tab:red")
        ax.fill_between(line["x"], line["low"], line["high"], color="tab:red", alpha=0.25)
        ax.set_title(_trend_label(d, f), fontsize=9)
        ax.set_xlabel(feature_label(f))
        _axis_ticks_mpl(ax.xaxis, f)
        ax.set_ylabel(feature_label(d.target_name))
    fig.suptitle(f"{_trend_title(d)} ({_trend_note(d)})")
    return fig


def _param_viz_plotly(d: TrendData):
    import plotly.graph_objects as go

    feats = list(d.stats.index)
    points, lines = _display_trends(d)
    fig, pos = _plotly_grid([_trend_label(d, f) for f in feats] if len(feats) > 1 else [""])
    y_title = feature_label(d.target_name)
    for f, (row, col) in zip(feats, pos):
        pts, line = points[points.feature == f], lines[lines.feature == f]
        x_title = feature_label(f)
        # customdata carries the row index so a box/lasso selection maps back to tracks. Plain SVG
        # (go.Scatter), not WebGL: at most trend_data's max_points (2000) points, and WebGL's
        # regl needs 'unsafe-eval' in the dashboard's Content-Security-Policy.
        fig.add_trace(go.Scatter(x=pts["x"], y=pts["y"], mode="markers", customdata=pts[["row"]].to_numpy(),
                                 marker={"size": 4, "color": "grey", "opacity": 0.35}, name=f, showlegend=False,
                                 hovertemplate=f"{_hover_label(f)}: %{{x:.3g}}<br>{y_title}: %{{y}}<extra></extra>"),
                      row=row, col=col)
        fig.add_trace(go.Scatter(x=np.r_[line["x"], line["x"][::-1]], y=np.r_[line["high"], line["low"][::-1]],
                                 fill="toself", fillcolor="rgba(214,39,40,0.25)", line={"width": 0},
                                 hoverinfo="skip", showlegend=False), row=row, col=col)
        fig.add_trace(go.Scatter(x=line["x"], y=line["fit"], mode="lines", line={"color": "rgb(214,39,40)"},
                                 showlegend=False), row=row, col=col)
        fig.update_xaxes(title_text=x_title, row=row, col=col, **_axis_ticks_plotly(f, line["x"]))
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
    return _render(d, {"matplotlib": _param_viz_mpl, "plotly": _param_viz_plotly}, backend)


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
    out["group"] = pd.Categorical(out["group"], categories=order, ordered=True)
    out.attrs["by"] = "genre" if by == "genre" else "popularity band"
    out.attrs["n"] = wide["group"].value_counts().reindex(order, fill_value=0).to_dict()  # tracks per group
    return out


def _group_labels(d: pd.DataFrame) -> list[str]:
    return [f"{g} (n={d.attrs.get('n', {}).get(g, '?')})" for g in d["group"].cat.categories]


def _catplot_mpl(d: pd.DataFrame):
    feats = list(dict.fromkeys(d["feature"]))
    groups = list(d["group"].cat.categories)
    d = _in_display_units(d, ["value"])
    fig, axes = _mpl_figure(len(feats), ncols=3, panel_size=(4.2, 2.8))
    for ax, f in zip(axes, feats):
        sub = d[d.feature == f]
        values = [sub.loc[sub.group == g, "value"].to_numpy() for g in groups]
        ax.boxplot(values, tick_labels=_group_labels(d), showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "tab:blue", "alpha": 0.4})
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        _axis_ticks_mpl(ax.yaxis, f)
        ax.set_title(feature_label(f), fontsize=9)
    fig.suptitle(f"Feature distributions by {d.attrs.get('by', 'group')} (boxes: quartiles, whiskers 1.5 IQR)")
    return fig


def _catplot_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    feats = list(dict.fromkeys(d["feature"]))
    labels = dict(zip(d["group"].cat.categories, map(plotly_text, _group_labels(d))))
    d = _in_display_units(d, ["value"])
    fig, pos = _plotly_grid([feature_label(f) for f in feats], ncols=3)
    for f, (row, col) in zip(feats, pos):
        sub = d[d.feature == f].sort_values("group")
        fig.add_trace(go.Box(x=sub["group"].map(labels).astype(str), y=sub["value"], name=feature_name(f),
                             boxpoints=False, showlegend=False), row=row, col=col)
        fig.update_yaxes(row=row, col=col, **_axis_ticks_plotly(f, sub["value"].quantile([0.0, 1.0])))
    fig.update_layout(title=f"Feature distributions by {d.attrs.get('by', 'group')}", height=300 * pos[-1][0] + 80)
    return fig


def catplot_viz(df: pd.DataFrame, *, by: Literal["genre", "band"] = "genre", features: Sequence[str] | None = None,
                top_genres: int = 8, backend: Backend = "plotly"):
    """Box plots of each feature by genre or by popularity band (see :func:`group_data`)."""
    d = group_data(df, by=by, features=features, top_genres=top_genres)
    return _render(d, {"matplotlib": _catplot_mpl, "plotly": _catplot_plotly}, backend)


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
    d = _in_display_units(d, ["left", "right"], per_unit=["density"])
    fig, axes = _mpl_figure(len(feats))
    for ax, f in zip(axes, feats):
        sub = d[d.feature == f]
        ax.bar(sub["left"], sub["density"], width=sub["right"] - sub["left"], align="edge", color="tab:blue", alpha=0.7)
        ax.set_title(f"{feature_name(f)} (n={int(sub['count'].sum())})", fontsize=9)
        ax.set_xlabel(AXIS_UNITS.get(f, ""))
        _axis_ticks_mpl(ax.xaxis, f)
        ax.set_yticks([])
    fig.suptitle("Distributions of the chart hits' features (density)")
    return fig


def _distributions_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    feats = list(dict.fromkeys(d["feature"]))
    d = _in_display_units(d, ["left", "right"], per_unit=["density"])
    fig, pos = _plotly_grid([feature_name(f) for f in feats])
    for f, (row, col) in zip(feats, pos):
        sub = d[d.feature == f]
        fig.update_xaxes(title_text=AXIS_UNITS.get(f), row=row, col=col,
                         **_axis_ticks_plotly(f, np.r_[sub["left"], sub["right"]]))
        fig.add_trace(go.Bar(x=(sub["left"] + sub["right"]) / 2, y=sub["density"], width=sub["right"] - sub["left"],
                             customdata=sub["count"], hovertemplate="%{x:.3g}: %{customdata} tracks<extra></extra>",
                             showlegend=False), row=row, col=col)
    fig.update_layout(title="Distributions of the chart hits' features", bargap=0, height=230 * pos[-1][0] + 80)
    return fig


def distribution_plots(df: pd.DataFrame, *, features: Sequence[str] | None = None, bins: int = 30,
                       backend: Backend = "plotly"):
    """Histograms (density) of each feature and of popularity (see :func:`distribution_data`)."""
    d = distribution_data(df, features=features, bins=bins)
    return _render(d, {"matplotlib": _distributions_mpl, "plotly": _distributions_plotly}, backend)


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
    return feats, _in_display_units(d, ["mean", "low", "high"])


def _yearly_mpl(d: pd.DataFrame, *, ncols: int = 4):
    feats, d = _yearly_features(d)
    fig, axes = _mpl_figure(len(feats), ncols=ncols)
    for ax, f in zip(axes, feats):
        sub = d[d.feature == f]
        ax.plot(sub["year"], sub["mean"], marker="o", ms=3)
        ax.fill_between(sub["year"], sub["low"], sub["high"], alpha=0.25)
        ax.set_title(feature_name(f), fontsize=9)
        ax.set(xlabel="year", ylabel=AXIS_UNITS.get(f, ""))
        _axis_ticks_mpl(ax.yaxis, f)
    fig.suptitle(f"Yearly mean of each feature with its {d.attrs.get('ci', 0.95):.0%} confidence interval")
    return fig


def _yearly_plotly(d: pd.DataFrame, *, ncols: int = 4):
    import plotly.graph_objects as go

    feats, d = _yearly_features(d)
    fig, pos = _plotly_grid([feature_name(f) for f in feats], ncols=ncols)
    for f, (row, col) in zip(feats, pos):
        sub = d[d.feature == f]
        fig.update_yaxes(title_text=AXIS_UNITS.get(f), row=row, col=col,
                         **_axis_ticks_plotly(f, np.r_[sub["low"], sub["high"]]))
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
    return _render(d, {"matplotlib": lambda x: _yearly_mpl(x, ncols=ncols),
                       "plotly": lambda x: _yearly_plotly(x, ncols=ncols)}, backend)


# --- hit profile ("check your track") -----------------------------------------------------


def format_feature(feature: str, value: float) -> str:
    """A chart value with its unit (:data:`AXIS_UNITS`): "120 BPM", "-5.3 dB, Spotify", a
    duration as "3:43", a 0-1 score as "0.72"."""
    value = float(value)
    if feature == "duration_ms":
        return minutes_text(value / 60_000)
    unit = AXIS_UNITS.get(feature, "")
    if not unit or unit[0].isdigit():  # a score's range is no unit to repeat after each value
        return f"{value:.3g}"
    return f"{value:.0f} {unit}" if unit == "BPM" else f"{value:.1f} {unit}"


def _percentile_among(ref: np.ndarray, v: float) -> float:
    """Share of ``ref`` below ``v`` in percent, ties counted half."""
    return 100.0 * ((ref < v).sum() + 0.5 * (ref == v).sum()) / len(ref)


def _check_known_columns(df: pd.DataFrame, *named: Mapping | Sequence | None) -> None:
    """One line naming every column of ``named`` (a track's values, the features asked for, the
    errors) that the chart table lacks, with the nearest real name: a typo such as "loudnes"
    was silently left out of the profile."""
    import difflib

    known = [str(c) for c in df.columns]
    unknown = list(dict.fromkeys(str(k) for keys in named if keys for k in keys if k not in df.columns))
    if unknown:
        hints = [f"{u!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, known, n=1)) else repr(u)
                 for u in unknown]
        raise TracklensError(f"hit profile: unknown column(s) {', '.join(hints)}; the chart table has "
                             f"{', '.join(c for c in known if c in CONTINUOUS_FEATURES)}")


def hit_profile_data(track: Mapping[str, float] | pd.Series, df: pd.DataFrame, *,
                     features: Sequence[str] | None = None, label: str | None = None,
                     errors: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Where a track's features sit among the chart hits.

    Parameters
    ----------
    track : feature -> value (e.g. a chart row); features the track lacks are skipped, a name the
        chart table lacks is an error (so a typo is not silently dropped). The values must be the
        chart's own measures (an upload's LUFS is not Spotify's loudness)
    df : the chart table (the reference distribution)
    label : the track's name for titles; default "artist - song" when the track has them
    errors : feature -> uncertainty of an estimated value (e.g. a held-out mean error); such a
        feature is placed as the range from the percentile of value - error to that of value + error

    Returns
    -------
    DataFrame indexed by feature: value, error (0 for a measured value), percentile (0-100, share
    of hits with a lower value, ties counted half), percentile_low, percentile_high (equal to
    percentile without an error), hits_p10, hits_median, hits_p90, n
    """
    track, errors = dict(track), dict(errors or {})
    _check_known_columns(df, track, features, errors)
    candidates = pick_features(df, features, CONTINUOUS_FEATURES)
    feats = [f for f in candidates if f in track and track[f] is not None and np.isfinite(float(track[f]))]
    if not feats:
        raise TracklensError(f"track has none of the features {candidates}")
    rows = []
    for f in feats:
        ref = pd.to_numeric(df[f], errors="coerce").dropna().to_numpy(dtype=float)
        v, e = float(track[f]), abs(float(errors.get(f, 0.0)))
        p10, med, p90 = np.percentile(ref, [10, 50, 90])
        rows.append({"feature": f, "value": v, "error": e, "percentile": _percentile_among(ref, v),
                     "percentile_low": _percentile_among(ref, v - e), "percentile_high": _percentile_among(ref, v + e),
                     "hits_p10": p10, "hits_median": med, "hits_p90": p90, "n": len(ref)})
    out = pd.DataFrame(rows).set_index("feature")
    if label is None and track.get("song") is not None:
        label = f"{track.get('artist', '?')} - {track['song']}"
    out.attrs["label"] = label or "the track"
    return out


def _hit_title(d: pd.DataFrame) -> str:
    return f"Hit profile: {d.attrs.get('label', 'the track')} against {int(d['n'].max())} chart hits"


#: The chart hits' bands drawn behind every hit profile (with a legend entry each).
HIT_BANDS = ((25.0, 75.0, "middle half of the hits (P25–P75)"),)
HIT_MEDIAN_LABEL = "median hit (P50)"
MEASURED_LABEL = "measured value (point)"
ESTIMATE_LABEL = "estimate ± held-out error (range)"


def _hit_marks(d: pd.DataFrame) -> pd.DataFrame:
    """What both renderers draw per feature: a measured value is a point at its percentile, an
    estimate a range from the percentile of value - error to that of value + error (``low``,
    ``high``; equal for a point); the tick label (name, then the value in its unit on a second
    line, so the labels stay narrow on a phone); and the percentile label with where it goes
    (right of the mark while it ends at or below 70, else left of it) so it never runs off the
    axis or over a range's end."""
    ranged = (d["error"] > 0).to_numpy()
    low = np.where(ranged, d["percentile_low"], d["percentile"])
    high = np.where(ranged, d["percentile_high"], d["percentile"])
    tick = [f"{feature_name(f)}\n{v:.2f} ± {e:.2f}" if e > 0 else f"{feature_name(f)}\n{format_feature(f, v)}"
            for f, v, e in zip(d.index, d["value"], d["error"])]
    text = [f"P{lo:.0f}-P{hi:.0f}" if r and round(lo) != round(hi) else f"P{p:.0f}"
            for r, lo, hi, p in zip(ranged, d["percentile_low"], d["percentile_high"], d["percentile"])]
    spot = np.where(high <= 70, "right", "left")
    x = np.where(spot == "right", high + 2.5, low - 2.5)
    return pd.DataFrame({"ranged": ranged, "low": low, "high": high, "percentile": d["percentile"].to_numpy(),
                         "tick": tick, "text": text, "spot": spot, "x": x}, index=d.index)


def _hit_profile_mpl(d: pd.DataFrame):
    from matplotlib.figure import Figure

    marks = _hit_marks(d)
    fig = Figure(figsize=(7, 0.45 * len(d) + 2.0), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(d))[::-1]
    for lo, hi, label in HIT_BANDS:
        ax.axvspan(lo, hi, color="tab:green", alpha=0.12, label=label)
    ax.axvline(50, color="tab:green", lw=1, label=HIT_MEDIAN_LABEL)
    ranged = marks["ranged"].to_numpy()
    if ranged.any():
        ax.barh(y[ranged], (marks["high"] - marks["low"])[ranged].clip(lower=0.8), left=marks["low"][ranged],
                color="tab:blue", alpha=0.45, height=0.35, label=ESTIMATE_LABEL)
    if (~ranged).any():
        ax.plot(marks["percentile"][~ranged], y[~ranged], "o", color="tab:blue", ms=7, label=MEASURED_LABEL,
                clip_on=False)
    for yi, (_, m) in zip(y, marks.iterrows()):
        ax.text(m["x"], yi, m["text"], va="center", fontsize=8, ha="left" if m["spot"] == "right" else "right")
    ax.set_yticks(y, marks["tick"])
    ax.set_xlim(0, 100)
    ax.set_xlabel("percentile among hits (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=7, frameon=False)
    ax.set_title(_hit_title(d), fontsize=10)
    return fig


def _hit_profile_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    marks = _hit_marks(d)
    spread = [f"hits P10 {format_feature(f, a)}, median {format_feature(f, b)}, P90 {format_feature(f, c)}"
              for f, a, b, c in zip(d.index, d["hits_p10"], d["hits_median"], d["hits_p90"])]
    ticks = [t.replace("\n", "<br>") for t in marks["tick"]]
    ranged = marks["ranged"].to_numpy()
    # The first trace holds every feature (its y is the axis' order): measured values as points,
    # an estimate's own percentile as a small tick inside its range.
    fig = go.Figure(go.Scatter(
        x=marks["percentile"], y=ticks, mode="markers", name=MEASURED_LABEL, text=list(marks["text"]),
        customdata=spread, cliponaxis=False, showlegend=bool((~ranged).any()),
        marker={"size": np.where(ranged, 9, 11), "symbol": np.where(ranged, "line-ns", "circle"),
                "color": "rgb(31,119,180)", "line": {"width": 2, "color": "rgb(31,119,180)"}},
        hovertemplate="%{y}: %{text}<br>%{customdata}<extra></extra>",
    ))
    if ranged.any():
        fig.add_trace(go.Bar(
            x=(marks["high"] - marks["low"])[ranged].clip(lower=0.8), base=marks["low"][ranged],
            y=[t for t, r in zip(ticks, ranged) if r], orientation="h", width=0.35, name=ESTIMATE_LABEL,
            marker={"color": "rgba(31,119,180,0.45)"}, text=list(marks["text"][ranged]), textposition="none",
            hovertemplate="%{y}: %{text}<extra></extra>"))
    for tick, m in zip(ticks, marks.itertuples()):
        fig.add_annotation(x=m.x, y=tick, text=m.text, showarrow=False,
                           xanchor="left" if m.spot == "right" else "right", font={"color": "#1b1b1b"})
    for lo, hi, label in HIT_BANDS:
        fig.add_vrect(x0=lo, x1=hi, fillcolor="green", opacity=0.12, line_width=0, layer="below",
                      showlegend=True, name=label)
    fig.add_vline(x=50, line_color="green", line_width=1, showlegend=True, name=HIT_MEDIAN_LABEL)
    fig.update_layout(title=plotly_text(_hit_title(d)), barmode="overlay",
                      xaxis={"range": [0, 100], "title": "percentile among hits (%)"},
                      yaxis={"autorange": "reversed", "automargin": True}, height=50 * len(d) + 230,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return fig


def hit_profile(track: Mapping[str, float] | pd.Series, df: pd.DataFrame, *, features: Sequence[str] | None = None,
                label: str | None = None, errors: Mapping[str, float] | None = None, backend: Backend = "plotly"):
    """Percentile of each of a track's features among the chart hits (see :func:`hit_profile_data`)."""
    d = hit_profile_data(track, df, features=features, label=label, errors=errors)
    return _render(d, {"matplotlib": _hit_profile_mpl, "plotly": _hit_profile_plotly}, backend)


# --- the popularity model's report (fit by models.popularity) -----------------------------


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
    ax_imp.set_xlabel("drop in held-out R² when permuted")
    ax_imp.set_title(f"Permutation importance ({rep.best_model})", fontsize=10)
    fig.suptitle(rep.verdict, fontsize=9)
    return fig


def _popularity_plotly(rep: PopularityReport):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("popularity (R²)", "hit (AUC)", f"permutation importance ({rep.best_model})"))
    for col, metric in ((1, "r2"), (2, "auc")):
        s = rep.scores[rep.scores.metric == metric]
        fig.add_trace(go.Bar(x=s["model"], y=s["mean"], error_y={"type": "data", "array": s["std"]}, showlegend=False), row=1, col=col)
    imp = rep.importances.iloc[::-1]
    fig.add_trace(go.Bar(x=imp["mean"], y=list(imp.index), orientation="h", error_x={"type": "data", "array": imp["std"]},
                         showlegend=False), row=1, col=3)
    fig.update_layout(title={"text": rep.verdict, "font": {"size": 12}}, height=420)
    return fig


def popularity_model_figure(report_or_df: PopularityReport | pd.DataFrame, *, backend: Backend = "plotly", **kwargs):
    """CV scores against the baselines and permutation importances (see :func:`popularity_model`).

    Takes a PopularityReport, or a chart table (then ``kwargs`` go to popularity_model).
    """
    rep = report_or_df if isinstance(report_or_df, PopularityReport) else popularity_model(report_or_df, **kwargs)
    return _render(rep, {"matplotlib": _popularity_mpl, "plotly": _popularity_plotly}, backend)


# --- genre model reports (ROC, confusion, reliability, training curves) --------------------


def _report_scores(report: Mapping) -> tuple[str, list[str], np.ndarray, np.ndarray]:
    """(model name, class names, y_true as class indices, y_score [n, k]) of an evaluation report.

    A report is a mapping with ``model``, ``class_names``, ``y_true`` (indices or names) and
    ``y_score`` (per-track probabilities, rows in ``class_names`` order).
    """
    name = str(report.get("model", "model"))
    missing = [k for k in ("class_names", "y_true", "y_score") if k not in report]
    if missing:
        raise TracklensError(f"evaluation report of {name!r} lacks {missing}; re-run `tracklens evaluate`")
    classes = [str(c) for c in report["class_names"]]
    y_score = np.asarray(report["y_score"], dtype=float)
    y_true = list(report["y_true"])
    if y_true and isinstance(y_true[0], str):
        unknown = sorted(set(y_true) - set(classes))
        if unknown:
            raise TracklensError(f"evaluation report of {name!r}: labels {unknown} are not in class_names")
        y_true = [classes.index(c) for c in y_true]
    y_true = np.asarray(y_true, dtype=int)
    if y_score.ndim != 2 or y_score.shape != (len(y_true), len(classes)):
        raise TracklensError(f"evaluation report of {name!r}: y_score shape {y_score.shape} does not match "
                             f"{len(y_true)} tracks x {len(classes)} classes")
    return name, classes, y_true, y_score


def roc_data(report: Mapping) -> pd.DataFrame:
    """One-vs-rest ROC curve of each class present: long table (class, fpr, tpr, auc, n), where
    ``n`` is the class's number of tracks (a curve from 1-3 tracks is no estimate of its AUC)."""
    from sklearn.metrics import auc, roc_curve

    name, classes, y_true, y_score = _report_scores(report)
    parts = []
    for c, cls in enumerate(classes):
        positives = y_true == c
        if positives.all() or not positives.any():
            continue  # no curve without both positives and negatives
        fpr, tpr, _ = roc_curve(positives, y_score[:, c])
        parts.append(pd.DataFrame({"class": cls, "fpr": fpr, "tpr": tpr, "auc": auc(fpr, tpr),
                                   "n": int(positives.sum())}))
    if not parts:
        raise TracklensError(f"evaluation report of {name!r}: no class has both positives and negatives")
    out = pd.concat(parts, ignore_index=True)
    out.attrs["model"] = name
    return out


def confusion_data(report: Mapping) -> pd.DataFrame:
    """Confusion counts (rows: true class, columns: predicted = argmax of the scores)."""
    name, classes, y_true, y_score = _report_scores(report)
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(counts, (y_true, y_score.argmax(axis=1)), 1)
    out = pd.DataFrame(counts, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))
    out.attrs["model"] = name
    return out


def reliability_data(report: Mapping) -> pd.DataFrame:
    """Accuracy against mean confidence (top-class probability) per confidence bin.

    The bins and the ECE (in ``attrs``, with ``n_bins``) are :func:`models.evaluate.calibration_bins`
    and :func:`models.evaluate.expected_calibration_error`'s: the number the cards and the
    comparison table show.
    """
    name, _, y_true, y_score = _report_scores(report)
    out = pd.DataFrame(evaluate.calibration_bins(y_true, y_score))
    out.attrs.update(model=name, n_bins=evaluate.ECE_BINS, ece=evaluate.expected_calibration_error(y_true, y_score))
    return out


def training_data(history: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Loss and accuracy per epoch (a ``keras.callbacks.History.history``) as a long table:
    ``metric`` (loss / accuracy), ``split`` (train / valid), ``epoch`` (from 1), ``value``."""
    parts = [pd.DataFrame({"metric": metric, "split": "valid" if key.startswith("val_") else "train",
                           "epoch": np.arange(1, len(history[key]) + 1), "value": np.asarray(history[key], float)})
             for metric in ("loss", "accuracy") for key in (metric, f"val_{metric}") if key in history]
    if not parts:
        raise TracklensError("training history holds no loss or accuracy per epoch")
    return pd.concat(parts, ignore_index=True)


def _roc_name(cls: str, curve: pd.DataFrame) -> str:
    n = curve["n"].iloc[0]
    if n < 2:  # one track's rank among the rest: a curve, but not an estimate of anything
        return f"{cls} (n={n}: no AUC)"
    return f"{cls} {curve['auc'].iloc[0]:.2f} (n={n})"


def _roc_mpl(d):
    fig, (ax,) = _mpl_figure(1, panel_size=(5.2, 4.4))
    for cls, sub in d.groupby("class", sort=False):
        ax.plot(sub["fpr"], sub["tpr"], lw=1.2, label=_roc_name(cls, sub), color=genre_colour(cls))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{d.attrs['model']}: ROC (one vs rest), AUC")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _roc_plotly(d):
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=sub["fpr"], y=sub["tpr"], mode="lines", name=plotly_text(_roc_name(cls, sub)),
                                line={"color": genre_colour(cls)})
                     for cls, sub in d.groupby("class", sort=False)])
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, showlegend=False))
    # The legend goes below the plot: on the right it took half of a phone-wide figure. On a phone
    # it is one entry per row (ten rows): the height leaves the plot >= 300 px even then, so the
    # legend's offset (a share of the plot's height) stays clear of the axis title.
    fig.update_layout(title={"text": f"{d.attrs['model']}: ROC, one vs rest",
                             "subtitle": {"text": "legend: AUC (n = tracks of the genre)"}},
                      xaxis_title="false positive rate", yaxis_title="true positive rate",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22}, height=680, margin=COMPACT_MARGIN)
    return fig


def _row_share(d: pd.DataFrame) -> np.ndarray:
    rows = d.to_numpy().sum(axis=1, keepdims=True)
    return np.divide(d.to_numpy(), rows, out=np.zeros(d.shape), where=rows > 0)


def _true_labels(d: pd.DataFrame) -> list[str]:
    """Row labels with the number of tracks of each true class: an empty row reads "hiphop (0)"."""
    return [f"{cls} ({n})" for cls, n in zip(d.index, d.to_numpy().sum(axis=1))]


def _confusion_mpl(d):
    fig, (ax,) = _mpl_figure(1, panel_size=(5.6, 5.0))
    share = _row_share(d)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(d.to_numpy()):
        if count:
            ax.text(j, i, count, ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(d.shape[1]), d.columns, rotation=60, fontsize=7)
    ax.set_yticks(range(d.shape[0]), _true_labels(d), fontsize=7)
    ax.set(xlabel="predicted", ylabel="true (tracks)", title=f"{d.attrs['model']}: confusion (colour: share of row)")
    fig.colorbar(im, ax=ax, shrink=0.7)
    return fig


def _confusion_plotly(d):
    import plotly.graph_objects as go

    # No colour bar (the cells hold the counts) and every genre labelled: on a phone the bar took
    # a quarter of the width and Plotly dropped every other genre name.
    rows, columns = [plotly_text(r) for r in _true_labels(d)], [plotly_text(c) for c in d.columns]
    fig = go.Figure(go.Heatmap(z=_row_share(d), x=columns, y=rows, colorscale="Blues", zmin=0, zmax=1,
                               showscale=False, text=d.to_numpy(), texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.0%})<extra></extra>"))
    fig.update_layout(title={"text": f"{d.attrs['model']}: confusion",
                             "subtitle": {"text": "colour: share of the row (true genre)"}},
                      xaxis={"title": "predicted", "tickmode": "array", "tickvals": columns},
                      yaxis={"title": "true (tracks)", "autorange": "reversed", "tickmode": "array", "tickvals": rows},
                      margin=COMPACT_MARGIN)
    return fig


def _ece_text(d) -> str:
    """The ECE as every table and figure states it: with its bin count, 3 decimals."""
    return f"ECE ({d.attrs['n_bins']} bins) = {d.attrs['ece']:.3f}"


def _reliability_title(d) -> str:
    return f"{d.attrs['model']}: reliability, {_ece_text(d)}"


def _reliability_mpl(d):
    fig, (ax,) = _mpl_figure(1, panel_size=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.plot(d["confidence"], d["accuracy"], marker="o")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence", ylabel="accuracy", title=_reliability_title(d))
    return fig


def _reliability_plotly(d):
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, showlegend=False),
                     go.Scatter(x=d["confidence"], y=d["accuracy"], mode="lines+markers", customdata=d["count"],
                                marker={"size": 4 + 2 * np.sqrt(d["count"].to_numpy())},  # a 2-track bin is no evidence
                                hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} tracks)<extra></extra>",
                                showlegend=False)])
    fig.update_layout(title={"text": f"Reliability: {_ece_text(d)}",
                             "subtitle": {"text": f"{d.attrs['model']}; dot area: tracks in the bin"}},
                      margin=COMPACT_MARGIN, xaxis={"range": [0, 1], "title": "mean confidence"},
                      yaxis={"range": [0, 1], "title": "accuracy"})
    return fig


def _training_mpl(d):
    groups = list(d.groupby("metric", sort=False))
    fig, axes = _mpl_figure(len(groups), ncols=2, panel_size=(3.6, 3.0))
    for ax, (metric, part) in zip(axes, groups):
        for split, curve in part.groupby("split", sort=False):
            ax.plot(curve["epoch"], curve["value"], label=split)
        ax.set(xlabel="epoch", title=f"{d.attrs['model']}: {metric}")
        ax.legend(fontsize=7)
    return fig


def _training_plotly(d):
    import plotly.graph_objects as go

    metrics = list(dict.fromkeys(d["metric"]))
    fig, positions = _plotly_grid([f"{d.attrs['model']}: {m}" for m in metrics], ncols=2)
    for (row, col), metric in zip(positions, metrics):
        for split, curve in d[d["metric"] == metric].groupby("split", sort=False):
            fig.add_trace(go.Scatter(x=curve["epoch"], y=curve["value"], mode="lines", name=f"{metric} {split}"),
                          row=row, col=col)
    return fig.update_xaxes(title="epoch")


def roc_curves(report: Mapping, *, backend: Backend = "plotly"):
    """One-vs-rest ROC curves of an evaluation report (see :func:`roc_data`)."""
    return _render(roc_data(report), {"matplotlib": _roc_mpl, "plotly": _roc_plotly}, backend)


def confusion_matrix(report: Mapping, *, backend: Backend = "plotly"):
    """Confusion matrix of an evaluation report, coloured by row share (see :func:`confusion_data`)."""
    return _render(confusion_data(report), {"matplotlib": _confusion_mpl, "plotly": _confusion_plotly}, backend)


def reliability_diagram(report: Mapping, *, backend: Backend = "plotly"):
    """Reliability diagram of an evaluation report, its ECE in the title (see :func:`reliability_data`)."""
    return _render(reliability_data(report), {"matplotlib": _reliability_mpl, "plotly": _reliability_plotly}, backend)


def training_curves(history: Mapping[str, Sequence[float]], *, model: str = "model", backend: Backend = "plotly"):
    """Loss and accuracy per epoch of one training run (see :func:`training_data`)."""
    d = training_data(history)
    d.attrs["model"] = model
    return _render(d, {"matplotlib": _training_mpl, "plotly": _training_plotly}, backend)


# --- genre blend of one track --------------------------------------------------------------


def blend_data(blend: Mapping[str, float], *, top: int | None = None) -> pd.Series:
    """Genre -> probability, largest first (the ``top`` largest when given)."""
    if not blend:
        raise TracklensError("empty genre blend")
    out = pd.Series({str(k): float(v) for k, v in blend.items()}).sort_values(ascending=False)
    return out.head(top) if top else out


def timeline_data(timeline: pd.DataFrame, *, duration_s: float | None = None) -> pd.DataFrame:
    """Per-window genre probabilities indexed by window start (s), genres by mean probability.

    ``attrs``: ``end_s`` (each window's end, in the index's order; start + the median window
    length without an ``end_s`` column) and ``duration_s`` (the track's length, default the last end),
    so a figure can draw exactly the analysed windows on the whole track's time axis.
    """
    if "start_s" not in timeline.columns:
        raise TracklensError(f"blend timeline needs a start_s column; has {list(timeline.columns)}")
    skip = {"start_s", "end_s", "segment", "top_genre", "label"}
    genres = [c for c in timeline.columns if c not in skip and pd.api.types.is_numeric_dtype(timeline[c])]
    ordered = timeline.sort_values("start_s")
    out = ordered.set_index("start_s")[genres].astype(float)
    out = out[out.mean().sort_values(ascending=False).index]
    if "end_s" in ordered.columns:
        ends = ordered["end_s"].astype(float).to_numpy()
    else:
        step = float(np.median(np.diff(out.index))) if len(out) > 1 else 1.0
        ends = out.index.to_numpy(dtype=float) + step
    out.attrs["end_s"] = [float(e) for e in ends]
    out.attrs["duration_s"] = float(duration_s) if duration_s is not None else float(ends.max(initial=0.0))
    return out


def _value_labels(values: np.ndarray, *, inside_from: float) -> tuple[list[str], list[str]]:
    """Percent labels for bars on a 0-100 axis, and where each goes: inside a long bar, beyond a
    short one (so no label runs off the axis)."""
    return ([f"{v:.0f}%" for v in values], ["inside" if v >= inside_from else "outside" for v in values])


def _blend_mpl(d: pd.Series):
    fig, (ax,) = _mpl_figure(1, panel_size=(5.5, 0.3 * len(d) + 1.2))
    values = d.to_numpy()[::-1] * 100
    colours = [genre_colour(g) for g in d.index[::-1]]
    bars = ax.barh(d.index[::-1], values, color=colours)
    texts, spots = _value_labels(values, inside_from=70)
    for bar, text, spot, colour in zip(bars, texts, spots, colours):
        inside = spot == "inside"
        ax.text(bar.get_width() + (-1 if inside else 1), bar.get_y() + bar.get_height() / 2, text, va="center",
                ha="right" if inside else "left", fontsize=8, color=text_colour_on(colour) if inside else "black")
    ax.set(xlim=(0, 100), xlabel="probability (%)", title="Genre blend")
    return fig


def _blend_plotly(d: pd.Series):
    import plotly.graph_objects as go

    values = d.to_numpy() * 100
    texts, spots = _value_labels(values, inside_from=70)
    colours = [genre_colour(g) for g in d.index]
    fig = go.Figure(go.Bar(x=values, y=[plotly_text(g) for g in d.index], orientation="h", text=texts, textposition=spots,
                           marker={"color": colours}, cliponaxis=False,
                           insidetextfont={"color": [text_colour_on(c) for c in colours]},
                           outsidetextfont={"color": "#1b1b1b"}, hovertemplate="%{y}: %{x:.1f}%<extra></extra>"))
    fig.update_layout(title="Genre blend", xaxis={"range": [0, 100], "title": "probability (%)"},
                      yaxis={"autorange": "reversed"}, height=30 * len(d) + 160)
    return fig


TIMELINE_TITLE = "Genre blend over time (analysed windows)"


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at least ``raw`` (a tick spacing)."""
    power = 10.0 ** np.floor(np.log10(max(raw, 1e-9)))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _timeline_mpl(d: pd.DataFrame):
    fig, (ax,) = _mpl_figure(1, panel_size=(8, 3.2))
    starts = d.index.to_numpy(dtype=float)
    widths = np.asarray(d.attrs["end_s"]) - starts
    bottom = np.zeros(len(d))
    for g in d.columns:
        ax.bar(starts, d[g].to_numpy() * 100, width=widths, bottom=bottom, align="edge", label=g, color=genre_colour(g))
        bottom += d[g].to_numpy() * 100
    ax.set(xlabel="time (s)", ylabel="probability (%)", ylim=(0, 100), xlim=(0, d.attrs["duration_s"]),
           title=TIMELINE_TITLE)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=5)
    return fig


def _timeline_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    starts = d.index.to_numpy(dtype=float)
    ends = np.asarray(d.attrs["end_s"])
    fig = go.Figure([go.Bar(x=(starts + ends) / 2, width=ends - starts, y=d[g] * 100, name=plotly_text(g),
                            marker={"color": genre_colour(g)}, customdata=np.stack([starts, ends], axis=1),
                            hovertemplate=f"{plotly_text(g)}: %{{y:.0f}}%<br>%{{customdata[0]:.0f}}-%{{customdata[1]:.0f}} s"
                                          "<extra></extra>")
                     for g in d.columns])
    # A horizontal legend below the plot, entries of fixed width: on a phone it wraps into rows
    # instead of taking half the plot's width.
    fig.update_layout(title=TIMELINE_TITLE, barmode="stack", bargap=0,
                      xaxis={"range": [0, d.attrs["duration_s"]], "title": "time in the track (s)",
                             "dtick": _nice_step(d.attrs["duration_s"] / 6)},  # else Plotly ticks each bar
                      yaxis={"range": [0, 100], "title": "probability (%)"},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.4, "x": 0, "traceorder": "normal",
                              "entrywidth": 80, "entrywidthmode": "pixels"})
    return fig


def blend_bar(blend: Mapping[str, float], *, top: int | None = 10, backend: Backend = "plotly"):
    """Bar chart of a track's genre blend, each bar labelled with its percent (see :func:`blend_data`)."""
    return _render(blend_data(blend, top=top), {"matplotlib": _blend_mpl, "plotly": _blend_plotly}, backend)


def blend_timeline(timeline: pd.DataFrame, *, duration_s: float | None = None, backend: Backend = "plotly"):
    """Stacked genre probabilities of each analysed window, on the whole track's time axis: parts
    the blend did not read stay empty (see :func:`timeline_data`)."""
    d = timeline_data(timeline, duration_s=duration_s)
    return _render(d, {"matplotlib": _timeline_mpl, "plotly": _timeline_plotly}, backend)


def track_map_data(coords, names, point, *, groups=None, label: str = "your track",
                   axis_titles: Sequence[str] = ("component 1", "component 2")) -> pd.DataFrame:
    """Chart tracks in a 2-D map (x, y, name, group) plus the given point as the last row (group=label).

    ``axis_titles`` (in ``attrs``) say what the map's axes are, e.g. what a PCA component loads on.
    """
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) != len(names):
        raise TracklensError(f"track map needs coords of shape (n, 2) for n names; got {coords.shape} for {len(names)}")
    ref = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "name": list(names),
                        "group": list(groups) if groups is not None else "chart"})
    you = pd.DataFrame({"x": [float(point[0])], "y": [float(point[1])], "name": [label], "group": [label]})
    out = pd.concat([ref, you], ignore_index=True)
    out.attrs["label"] = label
    out.attrs["axis_titles"] = tuple(axis_titles)
    return out


def _map_mpl(d: pd.DataFrame):
    fig, (ax,) = _mpl_figure(1, panel_size=(6, 4.6))
    ref, you = d.iloc[:-1], d.iloc[-1]
    for g, sub in ref.groupby("group", sort=False):
        ax.scatter(sub["x"], sub["y"], s=8, alpha=0.5, label=str(g), color=genre_colour(g))
    ax.scatter([you["x"]], [you["y"]], marker="*", s=250, color="black", label=d.attrs["label"])
    xlabel, ylabel = d.attrs["axis_titles"]
    ax.set(xlabel=xlabel, ylabel=ylabel, title="Chart tracks and the track (2-D map)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return fig


def _map_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    ref, you = d.iloc[:-1], d.iloc[-1]
    fig = go.Figure([go.Scatter(x=sub["x"], y=sub["y"], mode="markers", name=plotly_text(g),
                                text=[plotly_text(n) for n in sub["name"]],
                                marker={"size": 5, "opacity": 0.6, "color": genre_colour(g)},
                                hovertemplate="%{text}<extra></extra>")
                     for g, sub in ref.groupby("group", sort=False)])
    fig.add_trace(go.Scatter(x=[you["x"]], y=[you["y"]], mode="markers", name=plotly_text(d.attrs["label"]),
                             marker={"symbol": "star", "size": 18, "color": "black"}))
    xlabel, ylabel = (t.replace(": ", ":<br>", 1) for t in d.attrs["axis_titles"])  # narrow on a phone
    fig.update_layout(title="Chart tracks and the track (2-D map)",
                      xaxis={"title": xlabel, "automargin": True}, yaxis={"title": ylabel, "automargin": True},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0})
    return fig


def track_map(coords, names, point, *, groups=None, label: str = "your track",
              axis_titles: Sequence[str] = ("component 1", "component 2"), backend: Backend = "plotly"):
    """Scatter of chart tracks in a 2-D map with one track highlighted (see :func:`track_map_data`)."""
    d = track_map_data(coords, names, point, groups=groups, label=label, axis_titles=axis_titles)
    return _render(d, {"matplotlib": _map_mpl, "plotly": _map_plotly}, backend)


# --- a playlist's tracks (tracklens playlist) ------------------------------------------------

#: Labels of the playlist table's measured columns (whose measure, and its unit).
PLAYLIST_LABELS = {
    "tracklens_tempo_bpm": "tempo (BPM, tracklens)",
    "tracklens_energy_est": "energy (0–1, tracklens estimate)",
    "tracklens_acousticness_est": "acousticness (0–1, tracklens estimate)",
    "tracklens_loudness_lufs": "loudness (LUFS of the preview, tracklens)",
    "spotify_popularity": "popularity (0–100, Spotify)",
}
CAMELOT_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def playlist_points_data(table: pd.DataFrame, *, x: str = "tracklens_tempo_bpm",
                         y: str = "tracklens_energy_est") -> pd.DataFrame:
    """The analysed tracks of a playlist table as points: x, y, y_err (the estimate's held-out
    error, 0 without one), label ("artist - title"), camelot. ``attrs``: axis labels and
    ``n_without`` (tracks without both values, e.g. no preview)."""
    for column in (x, y):
        if column not in table.columns:
            raise TracklensError(f"playlist table lacks column {column!r}; has {list(table.columns)}")
    err = y.removesuffix("_est") + "_err" if y.endswith("_est") else None
    values = pd.DataFrame({
        "x": pd.to_numeric(table[x], errors="coerce"), "y": pd.to_numeric(table[y], errors="coerce"),
        "y_err": pd.to_numeric(table[err], errors="coerce") if err and err in table.columns else 0.0,
        "label": table.get("artists", pd.Series("", index=table.index)).astype(str) + " - "
        + table.get("title", pd.Series("", index=table.index)).astype(str),
        "camelot": table.get("tracklens_camelot", pd.Series("", index=table.index)).fillna("").astype(str),
    })
    out = values.dropna(subset=["x", "y"]).fillna({"y_err": 0.0}).reset_index(drop=True)
    if out.empty:
        raise TracklensError(f"no track has both {x} and {y} (were the previews analysed?)")
    out.attrs.update(x_label=PLAYLIST_LABELS.get(x, x), y_label=PLAYLIST_LABELS.get(y, y),
                     n_without=int(len(table) - len(out)))
    return out


def _playlist_title(d: pd.DataFrame) -> str:
    without = f"; {d.attrs['n_without']} without a value left out" if d.attrs["n_without"] else ""
    return f"{len(d)} tracks{without}"


def _playlist_scatter_mpl(d: pd.DataFrame):
    fig, (ax,) = _mpl_figure(1, panel_size=(7.0, 4.8))
    ax.errorbar(d["x"], d["y"], yerr=d["y_err"], fmt="o", color="tab:blue", ecolor="tab:blue", alpha=0.7,
                capsize=2, label="track (bar: ± held-out error)")
    for _, row in d.iterrows():
        ax.annotate(row["label"][:28], (row["x"], row["y"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel=d.attrs["x_label"], ylabel=d.attrs["y_label"], title=f"Playlist: {_playlist_title(d)}")
    ax.legend(fontsize=7, loc="best")
    return fig


def _playlist_scatter_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=d["x"], y=d["y"], mode="markers", text=d["label"], customdata=d[["y_err", "camelot"]].to_numpy(),
        error_y={"type": "data", "array": d["y_err"], "thickness": 1}, marker={"size": 9},
        name="track (bar: ± held-out error)",
        hovertemplate="%{text}<br>%{x:.0f}, %{y:.2f} ± %{customdata[0]:.2f}, key %{customdata[1]}<extra></extra>"))
    return fig.update_layout(title={"text": "Playlist", "subtitle": {"text": _playlist_title(d)}},
                             xaxis_title=d.attrs["x_label"], yaxis_title=d.attrs["y_label"], margin=COMPACT_MARGIN)


def playlist_scatter(table: pd.DataFrame, *, x: str = "tracklens_tempo_bpm", y: str = "tracklens_energy_est",
                     backend: Backend = "plotly"):
    """A playlist's tracks by tempo and estimated energy (or any two measured columns), each
    estimate with its held-out error bar (see :func:`playlist_points_data`)."""
    d = playlist_points_data(table, x=x, y=y)
    return _render(d, {"matplotlib": _playlist_scatter_mpl, "plotly": _playlist_scatter_plotly}, backend)


def camelot_key(code: str) -> str:
    """The key a Camelot code names: "8A" -> "A minor", "8B" -> "C major"."""
    number, letter = int(code[:-1]), code[-1]
    major = (7 * (number - 8)) % 12  # each step round the wheel is a fifth (7 semitones)
    return f"{CAMELOT_NAMES[major]} major" if letter == "B" else f"{CAMELOT_NAMES[(major - 3) % 12]} minor"


def camelot_wheel_data(table: pd.DataFrame, *, column: str = "tracklens_camelot") -> pd.DataFrame:
    """The 24 Camelot keys (1A..12B) with how many tracks of the playlist are in each: code,
    number, letter, key, angle (degrees clockwise from the top, 1 at 30°... 12 at the top),
    tracks (count) and titles ("artist - title; ...")."""
    if column not in table.columns:
        raise TracklensError(f"playlist table lacks column {column!r}; were the previews analysed?")
    codes = table[column].fillna("").astype(str)
    labels = (table.get("artists", pd.Series("", index=table.index)).astype(str) + " - "
              + table.get("title", pd.Series("", index=table.index)).astype(str))
    rows = []
    for number in range(1, 13):
        for letter in "AB":
            code = f"{number}{letter}"
            mask = codes == code
            rows.append({"code": code, "number": number, "letter": letter, "key": camelot_key(code),
                         "angle": (number % 12) * 30.0, "tracks": int(mask.sum()),
                         "titles": "; ".join(labels[mask])})
    out = pd.DataFrame(rows)
    out.attrs["n_unknown"] = int((codes == "").sum())
    return out


def _wheel_note(d: pd.DataFrame, *, sep: str = "<br>") -> str:
    """What the rings mean (each part on a line of its own: one line ran off a phone-wide figure)."""
    n = d.attrs.get("n_unknown", 0)
    unknown = [f"{n} track{'s' if n != 1 else ''} without a key left out"] if n else []
    return sep.join(["inner ring minor (A), outer major (B)", "neighbouring keys mix harmonically", *unknown])


def _camelot_wheel_mpl(d: pd.DataFrame):
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.2, 6.6), layout="constrained")
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    cmap, top = colormaps["Blues"], max(1, int(d["tracks"].max()))
    for _, row in d.iterrows():
        theta, bottom = np.deg2rad(row["angle"]), 1.0 if row["letter"] == "A" else 2.0
        ax.bar(theta, 1.0, width=np.deg2rad(30), bottom=bottom, color=cmap(0.1 + 0.8 * row["tracks"] / top),
               edgecolor="white")
        short = row["key"].replace(" minor", "m").replace(" major", "")
        ax.text(theta, bottom + 0.5, f"{row['code']}\n{short}" + (f"\n({row['tracks']})" if row["tracks"] else ""),
                ha="center", va="center", fontsize=7, color="white" if row["tracks"] / top > 0.6 else "black")
    ax.set_ylim(0, 3)
    ax.set_axis_off()
    ax.set_title(f"Key wheel (Camelot): tracks per key\n{_wheel_note(d, sep=chr(10))}", fontsize=9)
    return fig


def _camelot_wheel_plotly(d: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure()
    for letter, base, name in (("A", 1.0, "minor (A)"), ("B", 2.0, "major (B)")):
        ring = d[d["letter"] == letter]
        fig.add_trace(go.Barpolar(
            r=[1.0] * len(ring), base=base, theta=ring["angle"], width=[30] * len(ring), name=name,
            marker={"color": ring["tracks"], "colorscale": "Blues", "cmin": 0, "cmax": max(1, int(d["tracks"].max())),
                    "line": {"color": "white", "width": 1}},
            customdata=ring[["code", "key", "tracks", "titles"]].to_numpy(),
            hovertemplate="%{customdata[0]} %{customdata[1]}: %{customdata[2]} tracks<br>%{customdata[3]}<extra></extra>"))
        fig.add_trace(go.Scatterpolar(r=[base + 0.5] * len(ring), theta=ring["angle"], mode="text",
                                      text=ring["code"], showlegend=False, hoverinfo="skip"))
    return fig.update_layout(
        title={"text": "Key wheel (Camelot)", "subtitle": {"text": _wheel_note(d)}},
        polar={"radialaxis": {"visible": False, "range": [0, 3]},
               "angularaxis": {"direction": "clockwise", "rotation": 90, "showticklabels": False}},
        legend={"orientation": "h", "y": -0.1}, margin={**COMPACT_MARGIN, "t": 140})


def camelot_wheel(table: pd.DataFrame, *, column: str = "tracklens_camelot", backend: Backend = "plotly"):
    """The playlist's keys on the Camelot wheel, each key coloured by its number of tracks
    (see :func:`camelot_wheel_data`)."""
    d = camelot_wheel_data(table, column=column)
    return _render(d, {"matplotlib": _camelot_wheel_mpl, "plotly": _camelot_wheel_plotly}, backend)


# --- text summaries --------------------------------------------------------------------------


def summarize_correlations(d: CorrData, *, k: int = 3) -> str:
    """The ``k`` strongest and ``k`` weakest feature-target associations with their intervals
    (each with its measure's symbol: r/ρ for a number, η for a category)."""
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


def summarize_popularity(rep: PopularityReport) -> str:
    """CV scores per model and the verdict, as text."""
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
