"""The Dash app: navigation from the page registry, the page container and app-level stores.

Build it with :func:`get_app` (once per process: Dash's `@callback`s are registered globally, so a
second app would get none) and run it with :func:`serve`, which uses waitress unless ``debug``.
"""

from __future__ import annotations

import functools
import os

import dash
from dash import Dash, Input, Output, callback, dcc, html

from tracklens import process
from tracklens.dashboard import data
from tracklens.dashboard.server import MAX_OTHER_BODY_BYTES, MAX_REQUEST_BODY_BYTES  # noqa: F401  (the limits)
from tracklens.errors import TracklensError

TITLE = "tracklens"


#: TensorFlow settings the server starts with unless the environment sets them (measured on the
#: 2-core machine): no start-up chatter for users; oneDNN's kernels, which run the shipped musicnn
#: blend of a 30 s clip ~3x faster (0.6-0.8 s against 2.1-3.2 s wall; a check is mostly that
#: blend); one thread per TensorFlow op, since each check already runs its analysis beside the
#: blend: 4 checks at once in one process took 3.6-3.7x one check's time instead of 4.2-4.3x.
SERVER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1", "TF_NUM_INTRAOP_THREADS": "1"}

#: Colour-blind-safe qualitative palette (Okabe & Ito 2008) for every figure without its own colours.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
             "#999999", "#882255")


def use_accessible_template() -> None:
    """Make Plotly's default template white with the Okabe-Ito colourway (process-wide)."""
    import plotly.graph_objects as go
    import plotly.io as pio

    own = go.layout.Template(layout={"colorway": list(OKABE_ITO), "font": {"size": 13}})
    # Merged once: a default of "plotly_white+tracklens" is merged again for every figure, 17 ms
    # each under the GIL (half of a check page's rendering); a merged template costs 0.7 ms.
    pio.templates["tracklens"] = pio.templates.merge_templates("plotly_white", own)
    pio.templates.default = "tracklens"


@functools.lru_cache(maxsize=1)
def get_app() -> Dash:
    """Create the Dash app and import its pages (cached: one app per process)."""
    use_accessible_template()
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="",  # pages are imported below as ordinary modules
        title=TITLE,
        suppress_callback_exceptions=True,  # each page's components exist only on that page
    )
    from tracklens.dashboard.pages import charts, check, models  # noqa: F401  (registers the pages)
    from tracklens.dashboard import catalogue_audio, progress, security, uploads

    app.layout = layout
    _limit_bodies(app)  # first: nothing reads an oversized body (the waitress guard refuses them earlier still)
    uploads.install(app)  # POST <prefix>_upload: the file, streamed to a private temporary file
    progress.install(app)  # GET <prefix>_check_progress?id=: the stage of that upload's check
    catalogue_audio.install(app)  # GET <prefix>_catalogue_audio?catalogue=&track=: a neighbour's audio
    security.install(app)  # Host check, security headers; malformed callback requests get 400
    return app


def _limit_bodies(app) -> None:
    """413 for a body over MAX_OTHER_BODY_BYTES on any route but the upload route."""
    import flask

    from tracklens.dashboard import uploads

    upload_path = app.config.routes_pathname_prefix + uploads.ROUTE

    @app.server.before_request
    def refuse_large_body():
        length = flask.request.content_length
        if flask.request.path != upload_path and length is not None and length > MAX_OTHER_BODY_BYTES:
            return flask.Response(f"request body too large ({length} bytes; at most {MAX_OTHER_BODY_BYTES})\n",
                                  status=413, mimetype="text/plain")
        return None


def nav_links() -> list:
    """One link per registered page, in the pages' ``order``."""
    pages = sorted(dash.page_registry.values(), key=lambda page: page.get("order") or 0)
    return [dcc.Link(page["name"], href=page["relative_path"], className="nav-link") for page in pages]


def layout() -> html.Div:
    """The frame around every page: header with navigation, page container, footer."""
    source = data.source_info()
    return html.Div(
        [
            dcc.Store(id="app-source", data=source),
            dcc.Store(id="app-track", storage_type="session"),
            html.Header(
                [
                    html.Div([html.Span("tracklens", className="brand"),
                              html.Span("genre blends and chart hits", className="tagline")]),
                    html.Nav(nav_links(), className="nav", **{"aria-label": "pages"}),
                    html.Div(id="app-last-track", className="last-track", **{"aria-live": "polite"}),
                ],
                className="header",
            ),
            html.Main(dash.page_container, className="main"),
            html.Footer(
                [html.Span(f"Chart data: {source['label']}"),
                 html.Span(f" · model: {source['model']}")],
                className="footer", id="app-footer",
            ),
        ],
        className="app",
    )


@callback(Output("app-last-track", "children"), Input("app-track", "data"))
def show_last_track(track: dict | None) -> str:
    """Header line naming the last checked track and its blend, kept across pages."""
    if not track:
        return ""
    return f"Last checked: {track.get('filename', 'upload')} — {track.get('blend_label', '')}"


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise TracklensError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port "
                                 "or stop what is using it") from exc


def serve(*, host: str = "127.0.0.1", port: int = 8050, data_dir=None, debug: bool = False,
          threads: int = 4) -> None:
    """Load data and model once, then serve the app until Ctrl-C or SIGTERM.

    Non-debug runs use waitress behind the guard of `dashboard.server` (body size, spool budget,
    receiving rate); ``debug`` uses Dash's dev server. Either way the app answers only requests
    whose Host names this server (`security.allow_host`), and the users' uploads are removed
    when the server stops, by Ctrl-C or by SIGTERM.
    """
    from tracklens.dashboard import security, uploads

    for name, value in SERVER_ENV.items():
        os.environ.setdefault(name, value)
    data.configure(data_dir)
    _check_port_free(host, port)  # before the slow warm-up, so a clash is reported at once
    security.allow_host(host)
    process.limit_malloc_arenas()  # before TensorFlow's and waitress's threads exist
    # numba's kernels compiled once, here, before any thread pool starts (waitress's threads, the
    # check's blend thread); check=True repairs a damaged numba cache in a child process first
    # instead of crashing the server (SIGSEGV) at its first analysis.
    from tracklens import features
    from tracklens.dashboard import track

    previous_handler = _stop_on_sigterm()  # before the warm-up: a SIGTERM then cleans up too
    try:
        features.warm_numba(check=True)
        summary = track.warm_up()
        app = get_app()
        url = f"http://{host}:{port}/"
        print(f"tracklens dashboard: {summary}")
        print(f"tracklens dashboard: serving on {url} (Ctrl-C stops it)", flush=True)
        if debug:
            app.run(host=host, port=port, debug=True)
            return
        from tracklens.dashboard import server

        server.create_server(app.server, host=host, port=port, threads=threads,
                             upload_path=app.config.routes_pathname_prefix + uploads.ROUTE).run()
    finally:
        uploads.remove_all()  # also at exit; here first, before the interpreter's slow shutdown
        if previous_handler is not None:
            import signal

            signal.signal(signal.SIGTERM, previous_handler)


def _stop_on_sigterm():
    """SIGTERM stops the server as Ctrl-C does (waitress' loop ends on SystemExit), so the
    `finally` and ``atexit`` clean-ups run; by default SIGTERM ended the process without them.
    Returns the handler it replaced (None off the main thread, where none can be set)."""
    import signal
    import threading

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, stop)
