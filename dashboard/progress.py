"""Where each running check is, for the page's progress line.

The check page's callback answers once, at the end; while it runs, upload.js asks this route
(``GET <prefix>_check_progress?id=<upload id>``) every few hundred milliseconds and shows the
stage: decoding, blending (the genre blend and the analysis, side by side), comparing, drawing.
The upload id is the upload route's random token, so one browser sees only its own check; an
unknown id gets ``{"stage": null}``.
"""

from __future__ import annotations

import threading

ROUTE = "_check_progress"
#: What the page says for each stage (upload.js says "Uploading" itself, before there is an id).
STAGE_TEXT = {"queued": "Waiting for a free slot", "decoding": "Decoding", "blending": "Blending the genres and analysing",
              "comparing": "Comparing", "drawing": "Drawing the figures"}
MAX_TRACKED = 256  # stages kept at most (a check that never ends cannot grow this without bound)

_stages: dict[str, str] = {}
_lock = threading.Lock()


def set_stage(upload_id: str, stage: str) -> None:
    """Record that ``upload_id``'s check entered ``stage`` (one of :data:`STAGE_TEXT`)."""
    with _lock:
        _stages.pop(upload_id, None)
        _stages[upload_id] = stage
        while len(_stages) > MAX_TRACKED:
            _stages.pop(next(iter(_stages)))


def clear(upload_id: str) -> None:
    with _lock:
        _stages.pop(upload_id, None)


def stage_of(upload_id: str) -> str | None:
    with _lock:
        return _stages.get(upload_id)


def install(app) -> None:
    """Add the progress route to ``app``'s Flask server."""
    import flask

    def progress():
        stage = stage_of(str(flask.request.args.get("id", ""))[:64])
        response = flask.jsonify(stage=stage, text=STAGE_TEXT.get(stage) if stage else None)
        response.headers["Cache-Control"] = "no-store"
        return response

    app.server.add_url_rule(app.config.routes_pathname_prefix + ROUTE, "tracklens_check_progress", progress,
                            methods=["GET"])
