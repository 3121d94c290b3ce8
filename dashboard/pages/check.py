"""Check your track: upload audio and see its genre blend, its sound, and how it compares with
chart hits.

The upload is decoded from memory (`dashboard.track`), analysed once, and cached by content hash;
all figures come from explore.py and librosa_visuals.py. The audio player is fed client-side
from the upload itself, so the file does not travel back from the server.
"""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, clientside_callback, dcc, html

from tracklens import explore
from tracklens import librosa_visuals
from tracklens.dashboard import data, track
from tracklens.dashboard.components import figure_panel


ACCEPT = ",".join(data.UPLOAD_EXTENSIONS) + ",audio/*"
FORMATS = "WAV, MP3, OGG, FLAC or M4A"


def limits_text() -> str:
    return (f"{FORMATS}; up to {data.MAX_UPLOAD_MB} MB and {data.MAX_UPLOAD_SECONDS / 60:g} minutes. "
            "The file is analysed in memory and not stored.")


def layout(**_query) -> html.Div:
    return html.Div(
        [
            html.H1("Check your track"),
            html.P("Upload a track to see its genre blend (from the shipped default model), its "
                   "spectrogram and chromagram, and where it sits among chart hits.", className="note"),
            html.Div(
                dcc.Upload(
                    id="check-upload",
                    children=html.Div([html.Strong("Drag and drop an audio file here, or click to browse."),
                                       html.Br(), html.Span(limits_text(), id="check-limits")]),
                    accept=ACCEPT, max_size=data.MAX_UPLOAD_BYTES, multiple=False, className="upload",
                    className_reject="upload", style_reject={"borderColor": "#D55E00"},
                ),
                id="check-upload-zone", **{"data-max-bytes": str(data.MAX_UPLOAD_BYTES),
                                          "data-max-mb": str(data.MAX_UPLOAD_MB)},
            ),
            html.Div(id="check-status", role="status", **{"aria-live": "polite"}),
            html.Audio(id="check-player", controls=True, style={"display": "none", "marginTop": "0.6rem"},
                       **{"aria-label": "the uploaded track"}),
            dcc.Loading(html.Div(id="check-results"), type="default", delay_show=150),
        ]
    )


# The player gets the data URI straight from the upload component: no server round trip.
clientside_callback(
    """function(contents) {
        if (!contents) { return [window.dash_clientside.no_update, {display: "none"}]; }
        return [contents, {display: "block", marginTop: "0.6rem"}];
    }""",
    Output("check-player", "src"), Output("check-player", "style"),
    Input("check-upload", "contents"),
)


def error_box(message: str) -> html.Div:
    return html.Div(message, className="error", role="alert", id="check-error")


@callback(Output("check-status", "children"), Output("check-results", "children"),
          Output("app-track", "data"),
          Input("check-upload", "contents"), State("check-upload", "filename"),
          prevent_initial_call=True)
def check_upload(contents: str | None, filename: str | None):
    """Analyse an upload and render the results, or explain in one line why it cannot be."""
    if not contents:
        raise dash.exceptions.PreventUpdate
    try:
        raw = track.decode_contents(contents, filename)
        report = track.check_track(raw, filename)
        results, summary = render_report(report), report.summary()
    except Exception as exc:  # the page must answer, whatever a decoder, model or figure does
        return error_box(track.failure_message(exc, filename)), [], dash.no_update
    status = html.P(f"{report.filename}: {report.duration_s:.1f} s analysed.", className="note",
                    id="check-ok")
    return status, results, summary


def comparison_note(report: track.TrackReport) -> html.Div:
    """Say which features the comparison used and which Spotify-only ones an upload lacks."""
    ranked = ", ".join(c for c in explore.CONTINUOUS_FEATURES if c in report.comparable)
    missing = ", ".join(track.SPOTIFY_ONLY_COLUMNS)
    return html.Div(
        [html.P(f"Percentiles among the chart hits: {ranked} (key and mode are categories, shown in "
                f"the table); the map and the nearest tracks use {report.reference_description}."),
         html.P(f"Not available for an upload (Spotify-only descriptors): {missing}.")],
        className="notice", id="check-comparison-note",
    )


def nearest_table(report: track.TrackReport) -> html.Table:
    rows = report.nearest
    # The chart-unit columns read best; the full audio set has 60+ columns, too many for a table.
    show = [c for c in track.COMPARABLE_COLUMNS if c in rows.columns]
    group = "genre" if report.reference_kind == "audio" else "year"
    return html.Table(
        [html.Caption("Five nearest chart tracks by audio features (standardised distance)"),
         html.Thead(html.Tr([html.Th("track", scope="col"), html.Th(group, scope="col"),
                             html.Th("distance", scope="col")] + [html.Th(c, scope="col") for c in show])),
         html.Tbody([html.Tr([html.Td(r["name"]), html.Td(r["group"]), html.Td(f"{r['distance']:.2f}")]
                             + [html.Td(_cell(c, r[c])) for c in show]) for _, r in rows.iterrows()])],
        className="simple", id="check-nearest",
    )


def _cell(column: str, value) -> str:
    """A table cell in the chart's units: key as a pitch class, mode as major/minor."""
    value = float(value)
    if column == "key":
        return librosa_visuals.PITCH_CLASSES[int(value)] if 0 <= value < 12 else "none"
    if column == "mode":
        return "major" if value >= 0.5 else "minor"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def tag_list(tags: dict | None) -> html.Div:
    if not tags:
        return html.Div(html.P("Tags: the pretrained tagger (musicnn) is not installed.", className="note"),
                        id="check-tags")
    return html.Div([html.H2("Tags (musicnn, from four 3 s excerpts)"),
                     html.Div([html.Span(f"{t} {p:.0%}", className="tag") for t, p in tags.items()],
                              className="tags")], id="check-tags")


def render_report(report: track.TrackReport) -> list:
    """The result section for one analysed upload."""
    charts = data.charts()
    if report.blend:
        blend_section = [
            html.P(f"Blend: {report.blend_label}", className="blend-label", id="check-blend-label"),
            html.Div([figure_panel("check-blend", "genre blend bar chart", explore.blend_bar(report.blend, top=None)),
                      html.Div([tag_list(report.tags)], className="panel")], className="grid"),
            figure_panel("check-timeline", "genre blend over time", explore.blend_timeline(report.timeline)),
        ]
    else:
        blend_section = [html.P(report.notes[0] if report.notes else "No genre blend available.",
                                className="notice", id="check-no-model"), tag_list(report.tags)]
    spectrogram = librosa_visuals.spectrogram_figure(report.log_mel, frame_seconds=report.frame_seconds,
                                                     title=report.filename)
    chromagram = librosa_visuals.chromagram_figure(report.chroma, frame_seconds=report.frame_seconds,
                                                   title=report.filename)
    children = [
        html.H2("Genre blend"),
        *blend_section,
        html.Div([figure_panel("check-spectrogram", "mel spectrogram", spectrogram),
                  figure_panel("check-chromagram", "chromagram", chromagram)], className="grid"),
        html.H2("Against the chart hits"),
        comparison_note(report),
    ]
    grid = []
    if len(charts):
        grid.append(figure_panel("check-profile", "percentiles among chart hits",
                                 explore.hit_profile(report.comparable, charts, backend="plotly")))
    if report.map_xy is not None:
        ref = track.chart_reference()
        groups = ref.table["group"] if ref.kind == "audio" else None  # genres; chart years would be noise
        grid.append(figure_panel("check-map", "map of chart tracks with the upload",
                                 explore.track_map(ref.coords, ref.table["name"], report.map_xy, groups=groups,
                                                   label=report.filename)))
    children += [html.Div(grid, className="grid"), nearest_table(report)]
    notes = report.notes if report.blend else report.notes[1:]  # the first is shown above
    children += [html.P(n, className="note") for n in notes]
    return children


# Registered last: pages imported as ordinary modules must hand Dash their layout explicitly.
dash.register_page(__name__, path="/check", name="Check your track", title="tracklens · check your track",
                   order=2, layout=layout)
