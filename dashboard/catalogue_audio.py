"""The check page's catalogues: which ones the picker offers, each loaded once, and the route
that plays a neighbour's audio.

``GET <prefix>_catalogue_audio?catalogue=<name>&track=<track id>`` serves the audio file of one
catalogue track. It takes a catalogue's *name* (one of :func:`names`: the folders
``catalogue.available()`` lists in the tracklens home) and a track id of that catalogue, never a
path: the file served is the one the catalogue recorded for that track (``Catalogue.audio_path``),
so a request cannot name any other file. Anything else gets 404 (unknown catalogue or track,
audio no longer on disk) or 400 (a parameter missing, too long or with characters no name has).
"""

from __future__ import annotations

import functools
import mimetypes
import re
import threading

from tracklens.errors import TracklensError

ROUTE = "_catalogue_audio"
#: What a catalogue name or a track id may look like (folder names and file stems; no separators).
NAME_PATTERN = re.compile(r"[\w][\w .()&'+,-]{0,199}")
_lock = threading.Lock()


def names() -> list[str]:
    """The catalogues the picker offers: the folders in the tracklens home, by name."""
    from tracklens import catalogue

    return [path.name for path in catalogue.available()]


@functools.lru_cache(maxsize=4)
def _load(name: str, mtime: float):
    from tracklens import catalogue

    return catalogue.load(catalogue.catalogues_dir() / name)


def load(name: str):
    """The catalogue ``name`` (one of :func:`names`), loaded once per version of its card.
    Raises TracklensError for an unknown name, or one line from ``catalogue.load``."""
    from tracklens import catalogue

    if name not in names():
        raise TracklensError(f"no catalogue named {name!r} in {catalogue.catalogues_dir()}")
    card = catalogue.catalogues_dir() / name / catalogue.CARD_FILE
    with _lock:
        return _load(name, card.stat().st_mtime)


def audio_url(prefix: str, catalogue_name: str, track_id: str) -> str:
    from urllib.parse import urlencode

    return f"{prefix}{ROUTE}?" + urlencode({"catalogue": catalogue_name, "track": track_id})


def install(app) -> None:
    """Add the neighbour-audio route to ``app``'s Flask server."""
    import flask

    def serve_audio():
        args = flask.request.args
        if set(args) != {"catalogue", "track"}:
            return flask.Response("give catalogue and track (a catalogue name and a track id), nothing else\n",
                                  status=400, mimetype="text/plain")
        name, track_id = args["catalogue"], args["track"]
        if not (NAME_PATTERN.fullmatch(name) and NAME_PATTERN.fullmatch(track_id)) or ".." in name + track_id:
            return flask.Response("not a catalogue name or track id\n", status=400, mimetype="text/plain")
        try:
            path = load(name).audio_path(track_id)
        except TracklensError:
            path = None
        if path is None:
            return flask.Response("no such catalogue track, or its audio is no longer on disk\n", status=404,
                                  mimetype="text/plain")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return flask.send_file(path, mimetype=mime, conditional=True, max_age=0)

    app.server.add_url_rule(app.config.routes_pathname_prefix + ROUTE, "tracklens_catalogue_audio", serve_audio,
                            methods=["GET"])
