"""Uploads for "check your track": a plain HTTP route streams the file to a private temporary
file, checks its header before anything is decoded, and hands the page's callback an opaque id.

Why not dcc.Upload's ``contents``: that sends the file base64-encoded inside a JSON callback
body (4/3 of its size, parsed whole in the server's memory), so the limit had to be a byte count
that contradicted the duration limit (50 MB is 4:57 of 16-bit stereo WAV).

``POST <prefix>_upload?name=<file name>`` with the file's bytes as the body and the header
``X-Tracklens-Upload: 1`` (a cross-site page cannot send it without a CORS preflight, which
this server never grants) answers JSON:

- 200 ``{"id", "name", "duration_s"}``;
- 413 over the byte cap (from Content-Length, before reading; or while reading a chunked body)
  or longer than ``data.MAX_UPLOAD_SECONDS`` by its header;
- 415 not an audio file type, 422 no readable audio header, 400 empty or malformed request,
  503 too many uploads waiting for their check.

Every error body is ``{"error": "<file name>: <reason>"}``. A stored upload lives until its check
:func:`claim`\\ s it (then it is deleted), at most :data:`PENDING_TTL_S`; all are removed at exit.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import math
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from tracklens.dashboard import data
from tracklens.errors import TracklensError

ROUTE = "_upload"
HEADER = "X-Tracklens-Upload"
CHUNK_BYTES = 1 << 20  # copied to disk in 1 MiB pieces: the body never sits in memory whole
MAX_PENDING = 8  # uploads stored and not yet checked (disk: 8 x the byte cap at most)
PENDING_TTL_S = 600.0  # an upload whose page never asked for its check is removed after this


class UploadRefused(TracklensError):
    """An upload refused by the route, with the HTTP status that says why."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class StoredUpload:
    """One upload on disk: its id, display name, path, SHA-256 and header duration (NaN: unknown)."""

    id: str
    name: str
    path: Path
    sha256: str
    duration_s: float
    created: float


_lock = threading.Lock()
_pending: dict[str, StoredUpload] = {}
_folder: list[Path] = []


def _private_folder() -> Path:
    """This process's upload folder (mode 0700, removed at exit)."""
    with _lock:
        if not _folder:
            folder = Path(tempfile.mkdtemp(prefix="tracklens-uploads-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _folder.append(folder)
        return _folder[0]


def store(stream, *, filename: str | None, content_length: int | None) -> StoredUpload:
    """Copy an upload's body from ``stream`` to a private file and check it; see the module docstring.

    Raises UploadRefused (with its HTTP status) for anything the route refuses; nothing is left on disk then.
    """
    from tracklens.dashboard.track import display_name

    name = display_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in data.UPLOAD_EXTENSIONS:
        allowed = ", ".join(e.lstrip(".").upper() for e in data.UPLOAD_EXTENSIONS)
        raise UploadRefused(f"{name}: unsupported file type '{suffix or 'none'}'; upload {allowed}", 415)
    if content_length is not None and content_length > data.MAX_UPLOAD_BYTES:
        raise UploadRefused(_too_large(name, content_length), 413)
    _expire_old()
    with _lock:
        if len(_pending) >= MAX_PENDING:
            raise UploadRefused(f"{name}: the server is busy with {len(_pending)} uploads; try again in a minute", 503)
    upload_id = secrets.token_urlsafe(16)
    path = _private_folder() / f"{upload_id}{suffix}"
    try:
        digest, size = _copy(stream, path, name)
        if size == 0:
            raise UploadRefused(f"{name}: empty file (0 bytes)", 400)
        duration_s = _header_duration(path, name)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    upload = StoredUpload(upload_id, name, path, digest, duration_s, time.monotonic())
    with _lock:
        _pending[upload_id] = upload
    return upload


def _too_large(name: str, size: int, *, more: bool = False) -> str:
    amount = f"{'over ' if more else ''}{size / 2**20:.1f} MB"
    return f"{name}: too large ({amount}); {data.byte_cap_text()}"


def _copy(stream, path: Path, name: str) -> tuple[str, int]:
    """Write ``stream`` to ``path`` (a new file) in CHUNK_BYTES pieces; (SHA-256, size).
    Stops with 413 as soon as the body passes the byte cap."""
    digest, size = hashlib.sha256(), 0
    with open(path, "xb") as out:
        while chunk := stream.read(CHUNK_BYTES):
            size += len(chunk)
            if size > data.MAX_UPLOAD_BYTES:
                raise UploadRefused(_too_large(name, size, more=True), 413)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _header_duration(path: Path, name: str) -> float:
    """The duration its header announces (NaN when it announces none); 422 when there is no
    readable audio header, 413 when longer than the limit."""
    from tracklens import audio

    try:
        duration_s = float(audio.probe_audio(path)["duration_s"])
    except audio.AudioError as exc:
        raise UploadRefused(str(exc).replace(str(path), name), 422) from None
    if math.isfinite(duration_s) and duration_s > data.MAX_UPLOAD_SECONDS + 0.5:
        raise UploadRefused(f"{name}: too long ({duration_s / 60:.1f} min); the limit is "
                            f"{data.MAX_UPLOAD_SECONDS / 60:g} min — trim it and upload again", 413)
    return duration_s


def _expire_old() -> None:
    now = time.monotonic()
    with _lock:
        old = [u for u in _pending.values() if now - u.created > PENDING_TTL_S]
        for upload in old:
            del _pending[upload.id]
    for upload in old:
        upload.path.unlink(missing_ok=True)


@contextmanager
def claim(upload_id: str):
    """The stored upload ``upload_id`` for one check; its file is deleted when the block ends.

    Raises TracklensError when there is no such upload (expired, already checked, or never made).
    """
    with _lock:
        upload = _pending.pop(str(upload_id), None)
    if upload is None:
        raise TracklensError("the upload is no longer on the server (it expired or was already checked); "
                             "upload the file again")
    try:
        yield upload
    finally:
        upload.path.unlink(missing_ok=True)


def pending_count() -> int:
    with _lock:
        return len(_pending)


def install(app) -> None:
    """Add the upload route to ``app``'s Flask server."""
    import flask

    def receive():
        if flask.request.headers.get(HEADER) != "1":
            return flask.jsonify(error=f"uploads need the {HEADER} header"), 400
        try:
            upload = store(flask.request.stream, filename=flask.request.args.get("name"),
                           content_length=flask.request.content_length)
        except UploadRefused as exc:
            return flask.jsonify(error=str(exc)), exc.status
        duration = upload.duration_s if math.isfinite(upload.duration_s) else None
        return flask.jsonify(id=upload.id, name=upload.name, duration_s=duration)

    app.server.add_url_rule(app.config.routes_pathname_prefix + ROUTE, "tracklens_upload", receive,
                            methods=["POST"])
