"""Charts & popularity: what goes with popularity in the chart table, and how it changed by year.

Filters (year range, genre, explicit) apply to every figure. Cross-filtering: clicking a cell of
the correlation heatmap (or a feature in the ranked correlations) picks the scatter's feature; a
box/lasso selection in the scatter restricts the correlations and the yearly trends to the
selected songs. On a phone the ranked correlations come first and the 13 x 13 matrix keeps
readable cells, scrolling sideways inside its panel (dashboard/assets/style.css); popularity is
its first row and column, so what scrolls away is feature-feature pairs, and a note says so.

Key, mode and explicit are categories: each pair is related by the measure that fits it
(:func:`explore.associations`: r for two numbers, η for a category and a number, Cramér's V for two
categories), and the figures say which.
"""

from __future__ import annotations

import functools

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from tracklens import config, explore, figure_style
from tracklens.dashboard import data
from tracklens.dashboard.components import figure_panel
from tracklens.errors import TracklensError
from tracklens.prepare import split_genres  # the one genre parser


# Audio-descriptor columns of the Top Hits schema that make sense against popularity.
FEATURE_COLUMNS = (*config.CHART_CONTINUOUS_FEATURES, *config.SPOTIFY_CODED_FEATURES)
HEATMAP_BOOTSTRAP = 200  # bootstrap resamples per interval: enough for a 95% CI, fast per callback
EXPLICIT_OPTIONS = [{"label": "all", "value": "all"}, {"label": "explicit only", "value": "yes"},
                    {"label": "clean only", "value": "no"}]


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The numeric feature columns present in ``df`` (in the schema's order)."""
    return [c for c in FEATURE_COLUMNS if c in df.columns and pd.api.types.is_numeric_dtype(df[c])]


def genre_options(df: pd.DataFrame) -> list[str]:
    """Every genre name in the table, most frequent first."""
    if "genre" not in df.columns or df.empty:
        return []
    return df["genre"].map(split_genres).explode().dropna().value_counts().index.tolist()


def filter_charts(df: pd.DataFrame, *, years: list | tuple | None = None, genres: list | None = None,
                  explicit: str = "all") -> pd.DataFrame:
    """Rows of ``df`` within ``years`` (inclusive [lo, hi]), holding any of ``genres`` (None or
    empty: all) and matching ``explicit`` ("all", "yes" or "no")."""
    mask = pd.Series(True, index=df.index)
    if years and "year" in df.columns:
        lo, hi = years
        mask &= df["year"].between(lo, hi)
    if genres and "genre" in df.columns:
        wanted = set(genres)
        mask &= df["genre"].map(split_genres).map(lambda gs: bool(wanted.intersection(gs)))
    if explicit in ("yes", "no") and "explicit" in df.columns:
        mask &= df["explicit"].astype(bool) == (explicit == "yes")
    return df[mask]


def selected_rows(df: pd.DataFrame, selection: dict | None) -> pd.DataFrame:
    """Rows of ``df`` picked by a box/lasso selection in the scatter.

    The scatter's points carry their row index in ``customdata[0]``
    (:func:`explore.popularity_scatter`); a missing or empty selection leaves ``df`` as it is.
    """
    points = (selection or {}).get("points") or []
    index = []
    for p in points:
        custom = p.get("customdata")
        value = custom[0] if isinstance(custom, (list, tuple)) and custom else custom
        if value is not None and value in df.index:
            index.append(value)
    return df.loc[sorted(set(index))] if index else df


def year_marks(first: int, last: int, *, step: int = 5) -> dict[int, str]:
    """Slider labels on the multiples of ``step`` within [first, last] (the ends only when none
    falls inside): labels at both ends and every 5 years from the first collided at the end
    ("2018" over "2020" for 1998-2020)."""
    marks = {y: str(y) for y in range(first, last + 1) if y % step == 0}
    return marks or {first: str(first), last: str(last)}


def message_figure(text: str):
    """An empty figure that says why there is nothing to draw."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=300)
    return fig


def safe_figure(make, *args, **kwargs):
    """``make(*args, **kwargs)``, or a message figure when the selection is too small to draw."""
    try:
        return make(*args, **kwargs)
    except TracklensError as exc:
        return message_figure(f"Nothing to draw for this selection: {exc}")


@functools.lru_cache(maxsize=4)
def _correlations_of(source: data.ChartSource, rows: tuple) -> explore.CorrData:
    df = data.charts().loc[list(rows)]
    return explore.corr_data(df, columns=feature_columns(df), n_boot=HEATMAP_BOOTSTRAP)


def correlations(years, genres, explicit, selection) -> explore.CorrData:
    """Correlations of the filtered (and scatter-selected) songs, computed once for the heatmap
    and the ranked intervals (~150 ms with the bootstrap on the 1924 Top Hits songs)."""
    df = selected_rows(filter_charts(data.charts(), years=years, genres=genres, explicit=explicit), selection)
    return _correlations_of(data.chart_source(), tuple(df.index))


def layout(**_query) -> html.Div:
    df = data.charts()
    source = data.chart_source()
    features = feature_columns(df)
    years = (int(df["year"].min()), int(df["year"].max())) if len(df) else (2000, 2020)
    span = f", {years[0]}–{years[1]}" if len(df) else ""  # from the data: Top Hits holds 1998-2020
    notes = [html.P(n, className="notice") for n in source.notes]
    return html.Div(
        [
            html.H1("Charts & popularity"),
            html.P(f"Chart table: {source.label}, {len(df)} songs{span} after cleaning. Click a heatmap "
                   "cell or a ranked feature to pick the scatter's feature; select points in the scatter "
                   "(box or lasso) to restrict the correlations and the trends to them.", className="note",
                   id="charts-source"),
            *notes,
            html.Div(
                [
                    html.Div([html.Label("Years", htmlFor="charts-years"),
                              dcc.RangeSlider(id="charts-years", min=years[0], max=years[1], step=1,
                                              value=list(years), marks=year_marks(*years),
                                              tooltip={"placement": "bottom"}, allowCross=False)],
                             className="control", style={"flex": "2 1 320px"}),
                    html.Div([html.Label("Genres (empty = all)", htmlFor="charts-genres"),
                              dcc.Dropdown(id="charts-genres", options=genre_options(df), multi=True,
                                           placeholder="all genres")], className="control"),
                    html.Div([html.Label("Explicit lyrics", htmlFor="charts-explicit"),
                              dcc.RadioItems(id="charts-explicit", options=EXPLICIT_OPTIONS, value="all",
                                             inline=True)], className="control"),
                    html.Div([html.Label("Feature for scatter and trends", htmlFor="charts-feature"),
                              dcc.Dropdown(id="charts-feature", clearable=False,
                                           options=[{"label": figure_style.feature_label(f), "value": f} for f in features],
                                           value="energy" if "energy" in features else (features[0] if features else None))],
                             className="control"),
                ],
                className="controls", role="group", **{"aria-label": "chart filters"},
            ),
            html.P(id="charts-count", className="note", **{"aria-live": "polite"}),
            html.Div(
                [
                    scrolling_figure_panel("charts-heatmap", "association heatmap of the features and popularity",
                                           hint=SCROLL_HINT),
                    figure_panel("charts-intervals", "each feature's correlation with popularity, ranked, "
                                 "with its bootstrap interval"),
                ],
                className="grid corr-row",
            ),
            html.Div(
                [
                    figure_panel("charts-scatter", "feature against popularity with trend"),
                    figure_panel("charts-trends", "feature trends by year"),
                ],
                className="grid",
            ),
        ]
    )


SCROLL_HINT = ("Popularity is the first row and column. On a narrow screen the matrix scrolls sideways "
               "(swipe it) for the other pairs.")


def scrolling_figure_panel(id_: str, label: str, *, hint: str | None = None) -> html.Div:
    """A figure panel whose graph keeps a minimum width (style.css ``.scroll-x``) and scrolls
    sideways inside the panel on a narrow screen, so the page itself never does; ``hint`` is a
    note above it that says so (a scrolling region gives no sign of itself on a touch screen)."""
    panel = figure_panel(id_, label)
    notes = [html.P(hint, className="note", id=f"{id_}-hint")] if hint else []
    panel.children = [*notes, html.Div(panel.children, className="scroll-x")]
    return panel


@callback(Output("charts-feature", "value"), Input("charts-heatmap", "clickData"),
          State("charts-feature", "options"), prevent_initial_call=True)
def pick_feature(click: dict | None, options: list) -> str:
    """A click on a heatmap cell picks that cell's feature (whichever axis is not popularity).

    The figures name the columns in words (:func:`figure_style.feature_name`: "duration", not
    "duration_ms"); a click maps the drawn name back to the column."""
    if not click or not click.get("points"):
        raise dash.exceptions.PreventUpdate
    values = [o["value"] if isinstance(o, dict) else o for o in options]
    by_name = {**{figure_style.feature_name(v): v for v in values}, **{v: v for v in values}}
    point = click["points"][0]
    for name in (point.get("x"), point.get("y")):
        column = by_name.get(name)
        if column is not None and column != "popularity":
            return column
    raise dash.exceptions.PreventUpdate


@callback(Output("charts-feature", "value", allow_duplicate=True), Input("charts-intervals", "clickData"),
          State("charts-feature", "options"), prevent_initial_call=True)
def pick_ranked_feature(click: dict | None, options: list) -> str:
    """A click on a feature of the ranked correlations picks it, as a heatmap click does."""
    return pick_feature(click, options)


@callback(Output("charts-scatter", "figure"), Output("charts-count", "children"),
          Input("charts-years", "value"), Input("charts-genres", "value"),
          Input("charts-explicit", "value"), Input("charts-feature", "value"))
def update_scatter(years, genres, explicit, feature):
    """Feature vs popularity for the filtered songs, with its trend line and band."""
    df = filter_charts(data.charts(), years=years, genres=genres, explicit=explicit)
    count = f"{len(df)} songs match the filters."
    return safe_figure(explore.popularity_scatter, df, feature=feature), count


# The correlations do not depend on the chosen feature, so they have their own callbacks: picking a
# feature (or clicking a heatmap cell) must not redo them and their bootstrap.
@callback(Output("charts-heatmap", "figure"),
          Input("charts-years", "value"), Input("charts-genres", "value"),
          Input("charts-explicit", "value"), Input("charts-scatter", "selectedData"))
def update_heatmap(years, genres, explicit, selection):
    """Association heatmap for the filtered (and scatter-selected) songs."""
    return safe_figure(lambda: explore.corr_heatmap(correlations(years, genres, explicit, selection), intervals=False))


@callback(Output("charts-intervals", "figure"),
          Input("charts-years", "value"), Input("charts-genres", "value"),
          Input("charts-explicit", "value"), Input("charts-scatter", "selectedData"))
def update_intervals(years, genres, explicit, selection):
    """Each feature's correlation with popularity, ranked, with its interval (same songs as the heatmap)."""
    return safe_figure(lambda: explore.corr_intervals(correlations(years, genres, explicit, selection)))


@callback(Output("charts-trends", "figure"),
          Input("charts-years", "value"), Input("charts-genres", "value"),
          Input("charts-explicit", "value"), Input("charts-feature", "value"),
          Input("charts-scatter", "selectedData"))
def update_trends(years, genres, explicit, feature, selection):
    """Yearly trends of the chosen feature and popularity for the filtered (and selected) songs."""
    df = selected_rows(filter_charts(data.charts(), years=years, genres=genres, explicit=explicit), selection)
    span = tuple(years) if years else None
    # Stacked (one panel a row): side by side, on a phone, each panel's unit title ran into the other.
    return safe_figure(explore.yearly_trends, df, features=[feature, "popularity"], years=span, ncols=1,
                       backend="plotly")


# Registered last: pages imported as ordinary modules must hand Dash their layout explicitly.
dash.register_page(__name__, path="/", name="Charts & popularity", title="tracklens · charts", order=0, layout=layout)
