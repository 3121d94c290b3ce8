"""Check your track: upload audio and see its own values, its genre blend, its sound, and how it
compares with the chart hits.

The file goes to the server as it is, through the upload route (`dashboard.uploads`, sent by
assets/upload.js; dcc.Upload only draws the drop zone), is checked from its header, analysed
once and cached by content hash (`dashboard.track`); what is compared with the hits, and how,
is `dashboard.compare`'s. All figures come from track_figures.py and librosa_visuals.py. The player
plays the file from the browser's own copy, and only once the server has accepted it.
"""

from __future__ import annotations

import functools
import logging
import time

import dash
import numpy as np
import pandas as pd
from dash import Input, Output, callback, clientside_callback, dcc, html

from tracklens import figure_style, librosa_visuals, track_figures
from tracklens.dashboard import catalogue_audio, compare, data, progress, track, uploads
from tracklens.dashboard.components import figure_panel

LOG = logging.getLogger(__name__)

ACCEPT = ",".join(data.UPLOAD_EXTENSIONS) + ",audio/*"
FORMATS = "WAV, MP3, OGG/Opus, FLAC or M4A"
N_GENRE_HITS = 8  # chart hits listed per chart genre


def limits_text() -> str:
    return (f"{FORMATS}, up to {data.MAX_UPLOAD_SECONDS / 60:g} minutes ({data.byte_cap_text()}). "
            "The file is analysed on the server and deleted right after.")


def layout(**_query) -> html.Div:
    prefix = dash.get_app().config.routes_pathname_prefix
    return html.Div(
        [
            html.H1("Check your track"),
            html.P("Upload a track to see its tempo, key, loudness and estimated descriptors, its genre "
                   "blend (from the shipped default model), its spectrogram and chromagram, and where it "
                   "sits among chart hits.", className="note"),
            html.Div(
                # max_size=0: dcc.Upload never reads a file itself (it would send it base64 in a
                # callback); upload.js sends it to the upload route.
                dcc.Upload(
                    id="check-upload",
                    children=html.Div([html.Strong("Drag and drop an audio file here, or click to browse."),
                                       html.Br(), html.Span(limits_text(), id="check-limits")]),
                    accept=ACCEPT, max_size=0, multiple=False, className="upload", className_reject="upload",
                ),
                id="check-upload-zone",
                **{"data-upload-url": prefix + uploads.ROUTE, "data-progress-url": prefix + progress.ROUTE, "data-max-bytes": str(data.MAX_UPLOAD_BYTES),
                   "data-limit": data.byte_cap_text(), "data-extensions": ",".join(data.UPLOAD_EXTENSIONS)},
            ),
            dcc.Store(id="check-upload-ref"),  # {"id", "name"} of a stored upload, set by upload.js
            dcc.Store(id="check-player-state"),  # {"id", "ok"}: whether the player may play that upload
            html.Div(id="check-status", role="status", **{"aria-live": "polite"}),
            html.Audio(id="check-player", controls=True, style={"display": "none"},
                       **{"aria-label": "the uploaded track"}),
            # What the result is compared with (shown once a track is checked): above the result.
            html.Div([
                html.Div([html.Label("Compare with", htmlFor="check-catalogue", className="control-label"),
                          dcc.Dropdown(id="check-catalogue", clearable=False, searchable=False, value=TOP_HITS,
                                       options=catalogue_options())], className="control"),
                html.Div([html.Span("Which tracks", className="control-label", id="check-scope-label"),
                          html.Div(dcc.RadioItems(id="check-scope", value="genre", inline=True,
                                                  options=[{"label": " its genre", "value": "genre"},
                                                           {"label": " all tracks", "value": "all"}],
                                                  inputClassName="scope-input", labelClassName="scope-option"),
                                   role="radiogroup", **{"aria-labelledby": "check-scope-label"})],
                         className="control"),
                html.Div([html.Label("A/B: compare with another track", htmlFor="check-ab", className="control-label"),
                          dcc.Dropdown(id="check-ab", options=[], searchable=False,
                                       placeholder="upload a second track, or pick one checked earlier")],
                         className="control"),
                html.Div([html.Button("Download this check (HTML)", id="check-download-button", className="button"),
                          html.Button("values (CSV)", id="check-download-csv-button", className="button"),
                          html.Button("everything (JSON)", id="check-download-json-button", className="button"),
                          dcc.Download(id="check-download"), dcc.Download(id="check-download-csv"),
                          dcc.Download(id="check-download-json")], className="control downloads"),
            ], id="check-compare-controls", className="controls", style={"display": "none"}),
            html.Div(id="check-ab-result"),
            dcc.Loading(html.Div(id="check-results"), type="default", delay_show=150),
            dcc.Store(id="check-report-key"),  # {"key", "name"}: the checked report (track.cached_report)
            dcc.Store(id="check-history", storage_type="session"),  # [{"key", "name"}]: this session's checks
            # An empty, hidden graph: the browser fetches and starts Plotly (MBs of script) while
            # the user picks a file, not after the first check has answered (3-6 s more then).
            html.Div(dcc.Graph(id="check-warm-plotly", figure={"data": [], "layout": {"xaxis": {"visible": False},
                                                                                   "yaxis": {"visible": False}}},
                               config={"staticPlot": True}), className="warm-plotly", **{"aria-hidden": "true"}),
        ]
    )


# The player shows the upload the server just analysed, from the browser's copy (upload.js), and
# nothing after a refused or unreadable one.
clientside_callback(
    """function(state) {
        return window.tracklensUpload ? window.tracklensUpload.player(state) : [null, {display: "none"}];
    }""",
    Output("check-player", "src"), Output("check-player", "style"),
    Input("check-player-state", "data"),
)


TOP_HITS = "top-hits"  # the picker's value for the Top Hits table (a catalogue's is its name)


def catalogue_options() -> list[dict]:
    """The picker: the Top Hits table, then every catalogue in the tracklens home."""
    options = [{"label": "Top Hits table (Spotify's values, no audio)", "value": TOP_HITS}]
    for name in catalogue_audio.names():
        options.append({"label": f"catalogue {name} (measured by tracklens)", "value": name})
    return options


def error_box(message: str) -> html.Div:
    return html.Div(message, className="error", role="alert", id="check-error")


def check_upload(ref: dict | None):
    """Analyse a stored upload and render the results, or explain in one line why it cannot be:
    (status, results, summary for the header, player state), the check callback's first outputs."""
    return _check(ref)[:4]


def _check(ref: dict | None, catalogue_name: str | None = TOP_HITS, scope: str | None = "genre"):
    """check_upload's four values, then the report and its content hash (None, None on failure).
    The results end with the comparison (the picker's choice) in its own container, in the same
    answer: no second round trip after the figures."""
    if not isinstance(ref, dict) or not ref.get("id"):
        raise dash.exceptions.PreventUpdate
    upload_id, filename = str(ref["id"]), ref.get("name")
    stage = functools.partial(progress.set_stage, upload_id)
    try:
        stage("queued")
        with uploads.claim(upload_id) as upload:
            filename = upload.name
            report = track.check_track(upload.path, upload.name, digest=upload.sha256, on_stage=stage)
        stage("drawing")
        started = time.perf_counter()
        results = [*render_report(report), html.Div(comparison(report, catalogue_name, scope), id="check-compare")]
        LOG.info("drew %r in %.3f s (the figures and the comparison, before JSON)", report.filename,
                 time.perf_counter() - started)
        summary = report.summary()
    except Exception as exc:  # the page must answer, whatever a decoder, model or figure does
        return (error_box(track.failure_message(exc, filename)), [], dash.no_update,
                {"id": upload_id, "ok": False}, None, None)
    finally:
        progress.clear(upload_id)
    return status_line(report), results, summary, {"id": upload_id, "ok": True}, report, upload.sha256


@callback(Output("check-status", "children"), Output("check-results", "children"),
          Output("app-track", "data"), Output("check-player-state", "data"), Output("check-report-key", "data"),
          Output("check-history", "data"), Output("check-compare-controls", "style"),
          Input("check-upload-ref", "data"), dash.State("check-history", "data"), dash.State("check-catalogue", "value"),
          dash.State("check-scope", "value"), prevent_initial_call=True)
def check_and_compare(ref: dict | None, history: list | None, catalogue_name: str | None, scope: str | None):
    """The check with its comparison, the compare controls (shown once a track is checked, unless
    it is not music) and the session's list of checked tracks (for A/B)."""
    *first, report, digest = _check(ref, catalogue_name, scope)
    if report is None:
        return (*first, None, dash.no_update, {"display": "none"})
    key = {"key": digest, "name": report.filename}
    earlier = [h for h in (history or []) if isinstance(h, dict) and h.get("key") != digest]
    return (*first, key, (earlier + [key])[-MAX_HISTORY:], {"display": "none"} if report.not_music else {})


@callback(Output("check-compare", "children"), Input("check-catalogue", "value"), Input("check-scope", "value"),
          dash.State("check-report-key", "data"), prevent_initial_call=True)
def show_comparison(catalogue_name: str | None, scope: str | None, key: dict | None):
    """The comparison redrawn from the cached report when the picker or the switch changes."""
    if not isinstance(key, dict) or not key.get("key"):
        raise dash.exceptions.PreventUpdate
    report = track.cached_report(str(key["key"]), str(key.get("name") or ""))
    if report is None:
        return [html.P("That check is no longer in the server's memory; upload the track again to compare it.",
                       className="notice", id="check-compare-gone")]
    return comparison(report, catalogue_name, scope)


MAX_HISTORY = 8  # earlier checks the A/B picker offers (the server keeps fewer reports: it says so)


@callback(Output("check-ab", "options"), Output("check-ab", "value"),
          Input("check-history", "data"), Input("check-report-key", "data"))
def ab_options(history: list | None, key: dict | None):
    """The tracks checked earlier in this session, newest first (not the one shown)."""
    current = key.get("key") if isinstance(key, dict) else None
    earlier = [h for h in (history or []) if isinstance(h, dict) and h.get("key") and h.get("key") != current]
    return [{"label": str(h.get("name") or "upload"), "value": str(h["key"])} for h in reversed(earlier)], None


@callback(Output("check-ab-result", "children"), Input("check-ab", "value"), dash.State("check-report-key", "data"),
          dash.State("check-history", "data"), prevent_initial_call=True)
def show_ab(other: str | None, key: dict | None, history: list | None):
    """This track and another one of the session side by side: blends, values, how alike they sound."""
    if not other or not isinstance(key, dict):
        return []
    names = {str(h.get("key")): str(h.get("name") or "") for h in (history or []) if isinstance(h, dict)}
    a = track.cached_report(str(key["key"]), str(key.get("name") or ""))
    b = track.cached_report(other, names.get(other, ""))
    if a is None or b is None:
        return html.P("The server no longer holds that check (it keeps the last few); upload the track again.",
                      className="notice", id="check-ab-gone")
    rows = compare.ab_rows(a, b)
    body = [html.Tr([html.Th(label, scope="row"), _td(a.filename, left, className="value"), _td(b.filename, right)])
            for label, left, right in rows]
    head = html.Thead(html.Tr([html.Th("", scope="col"), html.Th(a.filename, scope="col"), html.Th(b.filename, scope="col")]))
    return html.Div([
        html.H2("A/B"),
        html.P(compare.sound_likeness(a, b), className="notice", id="check-ab-similarity"),
        html.Table([html.Caption(f"{a.filename} and {b.filename}, side by side"), head, html.Tbody(body)],
                   className="simple stack", id="check-ab-table"),
        html.Div([ab_track_panel(a, "a"), ab_track_panel(b, "b")], className="grid ab-grid", id="check-ab-figures"),
    ], id="check-ab-section")


def ab_track_panel(report: track.TrackReport, side: str) -> html.Div:
    """One side of the A/B figures: the track's blend bars (0-100 % on both sides) above its
    timeline, in one column, so the two tracks sit side by side on a laptop and one after the
    other on a phone (style.css: .ab-grid)."""
    heading = html.H3(f"{side.upper()}: {report.filename}", className="figure-title")
    blend = report.genre_blend
    if blend is None:
        return html.Div([heading, html.P(report.blend_problem, className="note")], className="panel",
                        id=f"check-ab-{side}")
    bars = track_figures.blend_bar(report.blend, top=None)
    bars.update_layout(title=None, margin={"t": 20})
    timeline = track_figures.blend_timeline(blend.timeline, duration_s=report.upload.duration_s)
    timeline.update_layout(title=None, margin={"t": 20})
    return html.Div([
        heading,
        html.Div(dcc.Graph(id=f"check-ab-blend-{side}", figure=bars, config={"displaylogo": False}),
                 role="figure", **{"aria-label": f"genre blend of {report.filename}"}),
        html.P(track_figures.TIMELINE_TITLE, className="note"),
        html.Div(dcc.Graph(id=f"check-ab-timeline-{side}", figure=timeline, config={"displaylogo": False}),
                 role="figure", **{"aria-label": f"genre blend over time of {report.filename}"}),
    ], className="panel", id=f"check-ab-{side}")


def comparison(report: track.TrackReport, catalogue_name: str | None, scope: str | None) -> list:
    """The comparison part of the result: against the Top Hits table or a catalogue, within the
    track's genre or among all tracks; nothing for a track that is not music."""
    if report.not_music:
        return []
    all_tracks = scope == "all"
    try:
        section = (chart_section(report, compare.genre_peers(data.charts(), _chart_genres(report), all_hits=all_tracks))
                   if catalogue_name in (None, TOP_HITS) else
                   catalogue_section(report, catalogue_audio.load(catalogue_name), all_tracks=all_tracks))
    except Exception as exc:  # one line, whatever a catalogue holds
        return [error_box(track.failure_message(exc, catalogue_name))]
    return section


def _chart_genres(report: track.TrackReport):
    return getattr(report.genre_blend, "chart_genres", None)


def status_line(report: track.TrackReport) -> html.P:
    """What was analysed: the whole track, and how much of it the blend read; first, when the
    ten genres do not describe the track, that it does not fit."""
    blended = _blended_note(report.genre_blend)
    text = f"{report.filename}: {compare.minutes(report.duration_s)} analysed"
    if getattr(report.genre_blend, "fit", None) == "poor":
        text = f"{report.filename}: does not fit the ten genres; {compare.minutes(report.duration_s)} analysed"
    return html.P(text + (f"; genre blend: {blended}" if blended else "") + ".", className="note", id="check-ok")


def _blended_note(blend) -> str:
    """The blend's own status line on how much it read ("blended 60 s of the 240 s track: ...")."""
    return next((n for n in getattr(blend, "notes", None) or [] if n.startswith("blended")), "")


# --- your track ---------------------------------------------------------------------------


def your_track_card(report: track.TrackReport, peers: compare.Peers) -> html.Div:
    """The track's own values first: each with its percentile among the hits of its chart genres
    (or all hits), or why it has none."""
    charts = peers.table
    rows = compare.your_track(report.upload, charts)
    if report.not_music:
        rows = [r for r in rows if r.feature in SOUND_ROWS]
    body = [html.Tr([html.Th(r.label, scope="row"), _td("your track", _value_content(r), className="value"),
                     _td("among the hits", _percentile_text(r.percentile), className="rank"),
                     _td("how", r.note, className="how")], id=f"check-card-{r.feature}")
            for r in rows]
    head = html.Thead(html.Tr([html.Th(c, scope="col") for c in ("", "your track", "among the hits", "how")]))
    return html.Div([
        html.H2("Your track"),
        html.Table([html.Caption(f"{report.filename}: loudness and duration only (it does not sound like music, "
                                 "so nothing is ranked)" if report.not_music else
                                 f"{report.filename}, against {peers.description} ({data.chart_label()})"),
                    head, html.Tbody(body)], className="simple stack", id="check-card"),
    ])


def _value_content(row: compare.Row):
    """The value's text; a value of several sentences (the streaming services) one per line."""
    if not row.items:
        return row.value
    lines = []
    for i, sentence in enumerate(row.items):
        lines += [html.Br()] if i else []
        lines.append(html.Span(sentence))
    return lines


def _td(label: str, text, **kwargs) -> html.Td:
    """A cell that names its column on a phone, where the table stacks (style.css: table.stack)."""
    return html.Td(text, **{"data-label": label}, **kwargs)


def _percentile_text(percentile: tuple[float, float] | None) -> str:
    if percentile is None:
        return "not ranked"
    low, high = percentile
    return f"P{low:.0f}" if round(low) == round(high) else f"P{low:.0f}-P{high:.0f}"


# --- genre blend ----------------------------------------------------------------------------


def blend_section(report: track.TrackReport) -> list:
    blend = report.genre_blend
    if blend is None:
        return [html.H2("Genre blend"), html.P(report.blend_problem, className="notice", id="check-no-model"),
                tag_list(report)]
    bars = track_figures.blend_bar(report.blend, top=None)
    bars.update_layout(title=None, margin={"t": 20})  # the section heading names it
    timeline = track_figures.blend_timeline(blend.timeline, duration_s=report.upload.duration_s)
    return [
        html.H2("Genre blend"),
        *fit_warning(blend),
        html.P(f"Blend: {report.blend_label}", className="blend-label", id="check-blend-label"),
        html.Div([figure_panel("check-blend", "genre blend bar chart", bars),
                  html.Div([how_sure(blend), tag_list(report)], className="panel")], className="grid"),
        figure_panel("check-timeline", "genre blend over time", timeline, html_title=True),
        html.P(_blended_note(blend), className="note", id="check-blend-status"),
        *([] if report.not_music else chart_genre_section(blend)),
    ]


def swatch(genre: str) -> html.Span:
    """A small square in the genre's fixed colour (the same as in every figure)."""
    return html.Span(className="swatch", style={"backgroundColor": figure_style.genre_colour(genre)},
                     **{"aria-hidden": "true"})


def label_rule(blend) -> str:
    """The blend's label rule in one sentence."""
    margin = getattr(blend, "margin", 0.10)
    return (f"The label is the most likely genre; when the second is within {margin:.2f} of it, the label names "
            "both (\u201ctop-second\u201d). Probabilities are calibrated on the validation fold: of the tracks "
            "given about 60 %, about 60 % were right.")


def how_sure(blend) -> html.Div:
    """How often the shipped model is right for the genres the label names, on its validation
    fold, what it confuses them with, the label rule, and a link to the models page."""
    genres = [blend.top_genre] + [g for g, _ in blend.top(2)[1:] if blend.label != blend.top_genre]
    validation, problem = data.shipped_model_report()
    if validation is None or validation.get("model") != blend.model:
        lines = [html.P(f"No validation numbers for model {blend.model}"
                        + (f": {problem}" if problem else " (it is not the shipped default)") + ".", className="note")]
    else:
        y_true, predicted = np.asarray(validation["y_true"]), np.asarray(validation["y_score"]).argmax(axis=1)
        overall = (f"Overall it named the right genre for {int((y_true == predicted).sum())} of {len(y_true)} "
                   "validation tracks (GTZAN, artist-disjoint fold; full clips and snippets).")
        lines = [html.P([swatch(g), " ", compare.genre_reliability(validation, g).sentence()],
                        id=f"check-sure-{g}", className="sure-line")
                 for g in genres if g in validation["class_names"]]
        lines.append(html.P(overall, className="note"))
    return html.Div([
        html.H3("How sure?", className="figure-title"),
        *lines,
        html.P(label_rule(blend), className="note", id="check-label-rule"),
        html.P(dcc.Link("Per-genre recall, ROC and confusion matrix: the models page",
                        href=dash.get_relative_path("/models")), className="note"),
    ], id="check-how-sure")


def fit_warning(blend) -> list:
    """A warning when the ten genres do not describe the track (models.fit), with the wider
    AudioSet genres it is closest to."""
    if getattr(blend, "fit", None) != "poor":
        return []
    # noise or speech: wider *music* genres (all near 0.00) would describe music that is not there
    not_music = str(getattr(blend, "fit_reason", "")).startswith(track.NOT_MUSIC_REASON)
    wider = "" if not_music else ", ".join(f"{g} ({p:.2f})" for g, p in getattr(blend, "wider_genres", [])[:3])
    return [html.Div([html.Strong("This track does not fit these ten genres"),
                      html.Span(f": {blend.fit_reason}. The blend below is the closest of the ten, not a description."),
                      html.P(f"Closest wider genres (AudioSet likelihoods, uncalibrated): {wider}.") if wider else None],
                     className="warning", id="check-fit-warning", role="status")]


def chart_genre_section(blend) -> list:
    """The chart genres the track sounds like (AudioSet tags mapped onto the chart's genre words,
    uncalibrated) and, for the first few, chart hits of that genre."""
    from tracklens.models import chart_genres

    scores = list(getattr(blend, "chart_genres", None) or [])[:3]
    if not scores:
        return []
    charts = data.charts()
    lists = [_genre_hits(genre, charts) for genre, _ in scores]
    return [html.Div([
        html.P(f"Chart genres it sounds like — {chart_genres.LABEL}: "
               + ", ".join(f"{g} {p:.2f}" for g, p in scores) + ".", className="note"),
        *[x for x in lists if x is not None],
    ], id="check-chart-genres")]


def _genre_hits(genre: str, charts: pd.DataFrame) -> html.Details | None:
    from tracklens.prepare import split_genres

    if "genre" not in charts.columns:
        return None
    tagged = charts[charts["genre"].map(lambda value: genre in split_genres(value))]
    if not len(tagged):
        return None
    if "popularity" in tagged.columns:
        tagged = tagged.sort_values("popularity", ascending=False)
    items = [html.Li(f"{r.get('artist', '?')} — {r.get('song', '?')} ({r.get('year', '?')})")
             for _, r in tagged.head(N_GENRE_HITS).iterrows()]
    return html.Details([html.Summary(f"{genre}: {len(tagged)} chart hits, the most popular"), html.Ul(items)])


def tag_list(report: track.TrackReport) -> html.Div:
    if not report.tags:
        return html.Div(html.P("Tags: the pretrained tagger (musicnn) is not installed.", className="note"),
                        id="check-tags")
    return html.Div([html.H3("Tags", className="figure-title"),
                     html.P(report.tags_caption, className="note", id="check-tags-caption"),
                     html.Div([html.Span(f"{t} {p:.0%}", className="tag") for t, p in report.tags.items()],
                              className="tags")], id="check-tags")


# --- against the chart hits -----------------------------------------------------------------


def comparison_note(report: track.TrackReport) -> html.Div:
    """Say what is compared with the hits, how, and what is not."""
    ref = compare.chart_reference()
    distance = ref.describe(report.distance_columns) if ref is not None else "nothing (no chart table)"
    return html.Div(
        [html.P("Percentiles compare like with like: tempo, and duration for a whole track, with the hits' own "
                "values; acousticness and energy as the range their estimate's error allows. Loudness is shown, "
                "never ranked (LUFS is not Spotify's loudness); key and mode are categories."),
         html.P(f"The map and the nearest tracks use {distance}.")],
        className="notice", id="check-comparison-note",
    )


def nearest_table(report: track.TrackReport) -> html.Table:
    """The upload first, then its nearest chart tracks, in the features the distance used."""
    ref = compare.chart_reference()
    columns = [*report.distance_columns, *(["key"] if ref is not None and ref.has_key else [])]
    shown = [c for c in columns if c in figure_style.CONTINUOUS_FEATURES or c == "key"]
    group = "genre" if ref is not None and ref.kind == "audio" else "year"
    you = {**report.comparable, **{k: v for k, (v, _) in report.upload.estimates.items()}}
    rows = [_neighbour_row(report.filename, (group, "your track"), "—", you, shown, report.upload.estimates, you=True)]
    rows += [_neighbour_row(r["name"], (group, r["group"]), f"{r['distance']:.2f}", r, shown, {})
             for _, r in report.nearest.iterrows()]
    head = [html.Th(c, scope="col") for c in ("track", group, "distance", *map(_column_title, shown))]
    return html.Table(
        [html.Caption(f"Your track and the {len(report.nearest)} nearest chart tracks"),
         html.Thead(html.Tr(head)), html.Tbody(rows)],
        className="simple stack", id="check-nearest",
    )


def _column_title(column: str) -> str:
    return {"duration_ms": "duration", "key": "key"}.get(column, column)


def _neighbour_row(name, group: tuple[str, str], distance, values, shown, estimates, *, you: bool = False) -> html.Tr:
    cells = [_td("track", name, className="value"), _td(*group), _td("distance", distance)]
    for c in shown:
        if c == "key":
            text = compare.key_name(values["key"], values["mode"])
        elif c in estimates:
            text = f"{estimates[c][0]:.2f} ± {estimates[c][1]:.2f}"
        else:
            text = figure_style.format_feature(c, values[c])
        cells.append(_td(_column_title(c), text))
    return html.Tr(cells, className="you" if you else None)


NO_AUDIO_NEIGHBOURS = (
    "No nearest hits by sound: the Top Hits table holds Spotify's values but no audio, so there is nothing to "
    "compare your track's sound with. Neighbours by three numbers (tempo, energy, acousticness) were no better "
    "than chance (genre precision@5 0.12 against 0.10 on held-out GTZAN clips), so they are not shown.")


def chart_section(report: track.TrackReport, peers: compare.Peers) -> list:
    charts = peers.table
    ref = compare.chart_reference()
    by_sound = ref is not None and ref.kind == "audio"
    children = [html.H2("Against the chart hits"),
                comparison_note(report) if by_sound else
                html.P(NO_AUDIO_NEIGHBOURS, className="notice", id="check-no-neighbours")]
    grid = []
    values, errors = report.upload.ranked(charts)
    if len(charts) and values:
        profile = track_figures.hit_profile(values, charts, features=list(values), errors=errors, label=report.filename)
        profile.update_layout(title=f"{report.filename}: percentiles among {peers.description}")
        grid.append(figure_panel("check-profile", "percentiles among chart hits", profile, html_title=True))
    words = where_you_sit(compare.positions(compare.upload_values(report.upload), charts, compare.CHART_VALUES),
                          peers.description)
    if not by_sound:
        return children + [words, html.Div(grid, className="grid")]
    if report.map_xy is not None:
        chart_map = ref.chart_map(report.distance_columns)
        groups = ref.table["group"] if ref.kind == "audio" else None  # genres; chart years would be noise
        grid.append(figure_panel("check-map", "map of chart tracks with the upload",
                                 track_figures.track_map(chart_map.coords, ref.table["name"], report.map_xy, groups=groups,
                                                   label=report.filename, axis_titles=chart_map.axis_titles),
                                 html_title=True))
    return children + [html.Div(grid, className="grid"), nearest_table(report)]


def whole_decibels(figure):
    """The spectrogram's dB values rounded to whole dB and sent as 1-byte integers (Plotly ships
    numpy arrays as typed arrays): a quarter of the float32 bytes, and a 1 dB step is finer than
    the colour scale shows over its 80 dB."""
    z = np.asarray(figure.data[0].z, dtype=np.float32)
    if np.isfinite(z).all() and z.size and -128 <= z.min() and z.max() <= 127:
        figure.data[0].z = np.round(z).astype(np.int8)
    return figure


def render_report(report: track.TrackReport) -> list:
    """The result section for one analysed upload."""
    peers = compare.genre_peers(data.charts(), _chart_genres(report))
    title = figure_style.plotly_text(report.filename)  # a Plotly title reads HTML; the name is the user's
    spectrogram = whole_decibels(librosa_visuals.spectrogram_figure(report.log_mel, frame_seconds=report.frame_seconds,
                                                                    title=title))
    chromagram = librosa_visuals.chromagram_figure(report.chroma, frame_seconds=report.frame_seconds, title=title)
    return [
        *not_music_note(report),
        your_track_card(report, peers),
        *blend_section(report),
        html.H2("Sound"),
        html.Div([figure_panel("check-spectrogram", "mel spectrogram", spectrogram, html_title=True),
                  figure_panel("check-chromagram", "chromagram", chromagram, html_title=True)], className="grid"),
    ]


#: The card rows that describe any sound; the others (tempo, key, descriptors) assume music.
SOUND_ROWS = ("loudness", "true_peak_dbtp", "loudness_range_lu", "normalisation", "duration_ms")


def not_music_note(report: track.TrackReport) -> list:
    """One sentence on why the music analysis is hidden when AudioSet hears no music."""
    if not report.not_music:
        return []
    heard = report.genre_blend.fit_reason[len(track.NOT_MUSIC_REASON):].lstrip(": ")
    return [html.P(f"{report.filename} does not sound like music ({heard}), so its tempo, key, estimated "
                   "descriptors, chart genres and chart neighbours are not shown: they would describe music "
                   "that is not there.", className="warning", id="check-not-music", role="status")]



# --- where you sit, and catalogues ----------------------------------------------------------


def where_you_sit(found: list, group: str) -> html.Div:
    """One sentence per comparable value against the middle half of ``group``; no hit score."""
    items = [html.Li(p.sentence(group), id=f"check-where-{p.feature}") for p in found]
    return html.Div([
        html.H3("Where you sit, in words", className="figure-title"),
        html.Ul(items) if items else html.P(f"Nothing to say: {group} are too few (fewer than {compare.MIN_GROUP} "
                                            "with each value); try all tracks.", className="note", id="check-where-few"),
        html.P("No hit score: hit prediction from audio is not reliable (Pachet & Roy 2008); these sentences "
               "only say where each value sits.", className="note"),
    ], id="check-where", className="panel")


def catalogue_section(report: track.TrackReport, cat, *, all_tracks: bool) -> list:
    """Against a catalogue measured by tracklens: neighbours by sound (with a play button when the
    neighbour's audio is on disk) and where each value sits, within the track's genre or all tracks."""
    from tracklens import catalogue

    genre = report.genre_blend.top_genre if report.genre_blend is not None else None
    mask, group = None, f"the {len(cat)} tracks of {cat.name}"
    scope_note = "all tracks"
    if not all_tracks and genre:
        try:
            mask = cat.within(genre)
            group, scope_note = f"the {int(mask.sum())} {genre} tracks of {cat.name}", f"its genre ({genre})"
        except catalogue.CatalogueError:
            scope_note = f"all tracks (no {genre} track in {cat.name})"
    table = cat.tracks if mask is None else cat.tracks[mask]
    neighbours = page_neighbours(report, cat, within=genre if mask is not None else None)
    how = ""
    if neighbours is not None:  # the rule catalogue.similar used: with the catalogue's genre labels when it has them
        why = ("the catalogue was built with the page's genre model" if neighbours.attrs[catalogue.WITH_BLEND_ATTR]
               else "the catalogue's blends come from another genre model than the page's")
        how = f" Neighbours: {neighbours.attrs[catalogue.RULE_ATTR]} ({why})."
    children = [html.H2(f"Against {cat.name}: {len(cat)} tracks measured by tracklens"),
                html.P(f"Compared with {scope_note}. Values on both sides come from the same engine.{how}",
                       className="notice", id="check-catalogue-note")]
    if neighbours is None:
        children.append(html.P("No neighbours by sound: the genre model's pass gave no sound embedding.",
                               className="note", id="check-no-neighbours"))
    else:
        children.append(neighbour_table(report, cat, neighbours))
    found = compare.positions(compare.upload_values(report.upload), table, compare.CATALOGUE_VALUES)
    figure = ([figure_panel("check-where-figure", f"where each value sits among {group}", where_figure(found, group),
                            html_title=True)] if found else [])
    children.append(html.Div([where_you_sit(found, group), *figure], className="grid"))
    return children


WHERE_BAND_LABEL = "middle half of the group (P25–P75)"
WHERE_NUMBER_FORMATS = {"BPM": "{:.0f}", "s": "{:.0f}", "LUFS": "{:.1f}"}  # else 0-1 descriptors: two decimals


def where_figure(found: list, group: str):
    """Each value's percentile within ``group`` (0-100 %) against the group's middle half, like
    the hit profile; each row names the value and the middle half in its own unit (LUFS, BPM, s)
    above its point.
    Not track_figures.hit_profile: that one speaks of chart hits and Spotify's units (its loudness is
    Spotify's dB), and the catalogue's values are the engine's own."""
    import plotly.graph_objects as go

    def number(p, value):  # as the sentences print it (compare.Position.sentence)
        return WHERE_NUMBER_FORMATS.get(p.unit, "{:.2f}").format(value)

    def unit(p):
        return f" {p.unit}" if p.unit else ""

    ticks = [f"{p.label} {number(p, p.value)}{unit(p)}<br>middle half {number(p, p.low)} to {number(p, p.high)}{unit(p)}"
             for p in found]
    spots = ["right" if p.percentile <= 70 else "left" for p in found]
    fig = go.Figure(go.Scatter(
        x=[p.percentile for p in found], y=ticks, mode="markers", name="your track", cliponaxis=False,
        marker={"size": 11, "color": "rgb(31,119,180)"},
        customdata=[p.n for p in found], hovertemplate="%{y}<br>P%{x:.0f} of %{customdata} tracks<extra></extra>"))
    for tick in ticks:
        fig.add_annotation(x=0, xref="paper", y=tick, text=tick, showarrow=False, xanchor="left", yanchor="bottom",
                           yshift=7, align="left", font={"color": "#1b1b1b", "size": 12})
    for tick, p, spot in zip(ticks, found, spots):
        fig.add_annotation(x=p.percentile + (2.5 if spot == "right" else -2.5), y=tick, text=f"P{p.percentile:.0f}",
                           showarrow=False, xanchor="left" if spot == "right" else "right", font={"color": "#1b1b1b"})
    fig.add_vrect(x0=25, x1=75, fillcolor="green", opacity=0.12, line_width=0, layer="below", showlegend=True,
                  name=WHERE_BAND_LABEL)
    fig.add_vline(x=50, line_color="green", line_width=1, showlegend=True, name="median of the group (P50)")
    fig.update_layout(title=figure_style.plotly_text(f"Where each value sits among {group}"),
                      xaxis={"range": [0, 100], "title": "percentile (%)"},
                      # each row's label above its point, not beside the axis: the percentile axis keeps
                      # the panel's whole width on a phone (beside it, the labels left ~70 px of 330)
                      yaxis={"showticklabels": False, "range": [len(found) - 0.5, -0.95]},
                      margin={"l": 24, "r": 24}, height=70 * len(found) + 190,
                      legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0})
    return fig


def neighbour_table(report: track.TrackReport, cat, neighbours: pd.DataFrame) -> html.Table:
    """The nearest catalogue tracks by sound, each with a play button when its audio is on disk
    (served by catalogue name and track id only: dashboard.catalogue_audio)."""
    prefix = dash.get_app().config.routes_pathname_prefix
    rows = []
    for _, n in neighbours.iterrows():
        track_id = str(n["track_id"])
        name = " — ".join(str(n[c]) for c in ("artist", "title") if c in n and str(n[c]) not in ("", "nan")) or track_id
        play = (html.Audio(src=catalogue_audio.audio_url(prefix, cat.name, track_id), controls=True, preload="none",
                           className="neighbour-audio", **{"aria-label": f"play {name}"})
                if cat.audio_path(track_id) is not None else "audio not on disk")
        rows.append(html.Tr([_td("track", name, className="value"), _td("genre", str(n.get("blend_label", ""))),
                             _td("similarity", f"{float(n['similarity']):.2f}"),
                             _td("tempo", f"{float(n['bpm']):.0f} BPM"), _td("key", str(n.get("key_name", ""))),
                             _td("loudness", f"{float(n['loudness']):.1f} LUFS"), _td("play", play)]))
    head = html.Thead(html.Tr([html.Th(c, scope="col") for c in
                               ("track", "genre", "similarity", "tempo", "key", "loudness", "play")]))
    return html.Table([html.Caption(f"The {len(neighbours)} tracks of {cat.name} that sound most like {report.filename}"),
                       head, html.Tbody(rows)], className="simple stack", id="check-neighbours")


# --- download this check ----------------------------------------------------------------------


def page_neighbours(report: track.TrackReport, cat, *, within: str | None) -> pd.DataFrame | None:
    """The catalogue tracks nearest ``report`` (within its genre when ``within`` names one the
    catalogue has, else among all tracks), as the page, its downloads and `tracklens check` rank
    them (the blend takes part only when ``cat`` was built with the page's genre model:
    ``Catalogue.built_with``); None when the genre model's pass gave no sound embedding."""
    from tracklens import catalogue

    if getattr(report.genre_blend, "embedding", None) is None:
        return None
    query = report_track(report)
    try:
        return catalogue.similar(query, cat, top=compare.N_NEAREST, within=within)
    except catalogue.CatalogueError:  # no track of that genre in the catalogue
        return catalogue.similar(query, cat, top=compare.N_NEAREST)


def report_track(report: track.TrackReport):
    """The page's report as the ``catalogue.Track`` that ``reports.check_report_html`` (the
    report `tracklens check` writes) takes: the same values, blend and embedding as the page."""
    from tracklens import catalogue

    c = report.upload.comparable
    values = {"bpm": c["tempo"], "key": c["key"], "mode": c["mode"], "loudness": c["loudness"],
              "true_peak_dbtp": c["true_peak_dbtp"], "loudness_range_lu": c["loudness_range_lu"],
              "duration_ms": c["duration_ms"], **{f"{k}_est": v for k, (v, _) in report.upload.estimates.items()}}
    blend = report.genre_blend
    embedding = getattr(blend, "embedding", None)
    return catalogue.Track(path=report.filename, values=values, blend=blend,
                           embedding=np.zeros(catalogue.EMBEDDING_SIZE, np.float32) if embedding is None else embedding,
                           audioset=getattr(blend, "audioset", None),
                           model_dir=getattr(data.default_model(), "model_dir", None))  # the model that blended it


def check_exports(key: dict | None, catalogue_name: str | None, scope: str | None) -> tuple[dict, str]:
    """This check's report as ``reports.check_report_texts`` gives it (the files `tracklens check`
    writes: HTML, values CSV, JSON), with the neighbours the page shows when a catalogue is picked;
    and the download's file stem."""
    from tracklens import reports

    report = track.cached_report(str(key["key"]), str(key.get("name") or "")) if isinstance(key, dict) else None
    if report is None or report.genre_blend is None:
        raise dash.exceptions.PreventUpdate
    neighbours, name = None, None
    if catalogue_name not in (None, TOP_HITS) and not report.not_music:
        cat = catalogue_audio.load(catalogue_name)
        neighbours = page_neighbours(report, cat, within=report.genre_blend.top_genre if scope != "all" else None)
        name = cat.name
    # ranked as catalogue_section ranks them; the caption reads the rule catalogue.similar recorded
    texts = reports.check_report_texts(report_track(report), neighbours=neighbours, catalogue_name=name, figures=False)
    stem = (report.filename.rsplit(".", 1)[0] or "track") + ".tracklens-check"
    return texts, stem


_DOWNLOAD_STATES = (dash.State("check-report-key", "data"), dash.State("check-catalogue", "value"),
                    dash.State("check-scope", "value"))


@callback(Output("check-download", "data"), Input("check-download-button", "n_clicks"), *_DOWNLOAD_STATES,
          prevent_initial_call=True)
def download_check(_clicks, key: dict | None, catalogue_name: str | None, scope: str | None):
    """The self-contained HTML report of this check (the one `tracklens check` writes), with the
    neighbours the page shows when a catalogue is picked."""
    texts, stem = check_exports(key, catalogue_name, scope)
    return dash.dcc.send_string(texts["html"], f"{stem}.html", type="text/html")


@callback(Output("check-download-csv", "data"), Input("check-download-csv-button", "n_clicks"), *_DOWNLOAD_STATES,
          prevent_initial_call=True)
def download_values_csv(_clicks, key: dict | None, catalogue_name: str | None, scope: str | None):
    """The check's values as CSV (name, value, unit, source; spreadsheet-safe), as `tracklens check`
    writes beside its report."""
    texts, stem = check_exports(key, catalogue_name, scope)
    return dash.dcc.send_string(texts["csv"], f"{stem}.values.csv", type="text/csv")


@callback(Output("check-download-json", "data"), Input("check-download-json-button", "n_clicks"), *_DOWNLOAD_STATES,
          prevent_initial_call=True)
def download_values_json(_clicks, key: dict | None, catalogue_name: str | None, scope: str | None):
    """Everything the report shows (values, blend, timeline, fit, chart genres, neighbours) as JSON."""
    texts, stem = check_exports(key, catalogue_name, scope)
    return dash.dcc.send_string(texts["json"], f"{stem}.json", type="application/json")


# Registered last: pages imported as ordinary modules must hand Dash their layout explicitly.
dash.register_page(__name__, path="/check", name="Check your track", title="tracklens · check your track",
                   order=2, layout=layout)
