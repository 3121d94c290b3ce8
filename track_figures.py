"""Figures of one track or one playlist: the hit profile against the chart hits, the genre blend
bar and timeline, the map of neighbours by sound, the playlist scatter and the Camelot wheel.

Callers: the dashboard's check page and comparison, :mod:`tracklens.reports`, notebooks 01, 03
and 04. Takes data and returns figures; reads and writes no file.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from tracklens.errors import TracklensError
from tracklens.figure_style import (COMPACT_MARGIN, CONTINUOUS_FEATURES, Backend, feature_name, format_feature,
                                    genre_colour, mpl_figure, plotly_text, render, text_colour_on)
from tracklens.models.popularity import check_chart_table, pick_features


# --- hit profile ("check your track") -----------------------------------------------------


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
    features : the features to place (default: the chart table's continuous audio features, those
        the track has), each in the chart's own unit (tempo BPM, loudness dB, duration ms, 0-1 for
        the descriptors)
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
    check_chart_table(df)
    _check_known_columns(df, track, features, errors)
    candidates = pick_features(df, features, CONTINUOUS_FEATURES)
    feats = [f for f in candidates if f in track and track[f] is not None and np.isfinite(float(track[f]))]
    if not feats:
        raise TracklensError(f"track has none of the features {candidates}")
    refs = {f: pd.to_numeric(df[f], errors="coerce").dropna().to_numpy(dtype=float) for f in feats}
    if not any(len(ref) for ref in refs.values()):
        raise TracklensError(f"hit profile: the chart table has no values of {feats} to compare with ({len(df)} rows)")
    rows = []
    for f, ref in refs.items():
        if not len(ref):  # no hit has this value: no percentile to give
            continue
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
    return render(d, {"matplotlib": _hit_profile_mpl, "plotly": _hit_profile_plotly}, backend)


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
    fig, (ax,) = mpl_figure(1, panel_size=(5.5, 0.3 * len(d) + 1.2))
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
    fig, (ax,) = mpl_figure(1, panel_size=(8, 3.2))
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
    return render(blend_data(blend, top=top), {"matplotlib": _blend_mpl, "plotly": _blend_plotly}, backend)


def blend_timeline(timeline: pd.DataFrame, *, duration_s: float | None = None, backend: Backend = "plotly"):
    """Stacked genre probabilities of each analysed window, on the whole track's time axis: parts
    the blend did not read stay empty (see :func:`timeline_data`)."""
    d = timeline_data(timeline, duration_s=duration_s)
    return render(d, {"matplotlib": _timeline_mpl, "plotly": _timeline_plotly}, backend)


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
    fig, (ax,) = mpl_figure(1, panel_size=(6, 4.6))
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
    return render(d, {"matplotlib": _map_mpl, "plotly": _map_plotly}, backend)


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
    fig, (ax,) = mpl_figure(1, panel_size=(7.0, 4.8))
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
    return render(d, {"matplotlib": _playlist_scatter_mpl, "plotly": _playlist_scatter_plotly}, backend)


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
    return render(d, {"matplotlib": _camelot_wheel_mpl, "plotly": _camelot_wheel_plotly}, backend)
