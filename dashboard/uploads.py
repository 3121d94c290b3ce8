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
  503 too many tracks being analysed, or too many uploads waiting for their check;
- 507 the server's disk is full.

Every error body is ``{"error": "<file name>: <reason>"}``. A stored upload lives until its check
:func:`claim`\\ s it (then it is deleted when the check ends). The page claims it within a second
or so of the answer, so an upload nobody claimed was abandoned (a closed tab): it is deleted after
:data:`UNCLAIMED_TTL_S`, and sooner, after :data:`UNCLAIMED_GRACE_S`, when a new upload needs its
place. The places: :data:`MAX_UNCLAIMED_PER_CLIENT` per client (its address and the page's
``X-Tracklens-Client`` token), :data:`MAX_UNCLAIMED` in all. What makes the server busy (503) is
what it is analysing: at most :data:`MAX_ANALYSING` claimed uploads at once; and what it holds
on disk: at most :data:`STORE_BUDGET_BYTES` of uploads. All are removed when the server stops
(Ctrl-C, SIGTERM, or at exit). docs/dashboard-security.md lists the guarantees.
"""

from __future__ import annotations

import atexit
import dataclasses
import errno
import hashlib
import math
import re
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
CLIENT_HEADER = "X-Tracklens-Client"  # upload.js: a random token per page load (one client per tab)
CHUNK_BYTES = 1 << 20  # copied to disk in 1 MiB pieces: the body never sits in memory whole
MAX_ANALYSING = 8  # claimed uploads being checked (running, or waiting for a core); more: 503
MAX_UNCLAIMED = 8  # stored uploads whose check has not claimed them yet, all clients together
MAX_UNCLAIMED_PER_CLIENT = 4  # the same for one client (a page has one; bench clients share an address)
UNCLAIMED_GRACE_S = 10.0  # an unclaimed upload keeps its place this long, whatever comes in...
UNCLAIMED_TTL_S = 60.0  # ...and is deleted after this (the page claims it within a second or so)
# Bytes in the private folder at once: uploads stored, being checked or being copied (their
# Content-Length; the byte cap when they announce none). With the server's spool budget
# (dashboard.server.SPOOL_BUDGET_BYTES, the same) uploads hold at most 4 x the cap of disk.
STORE_BUDGET_BYTES = 2 * data.MAX_UPLOAD_BYTES
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
FFMPEG_CONTEXT = re.compile(r"\[[\w:.-]+ @ 0x[0-9a-f]+\] ")


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
    client: str = ""


_lock = threading.Lock()
_pending: dict[str, StoredUpload] = {}  # stored, not yet claimed, oldest first
_analysing: set[str] = set()  # claimed, check not finished
_held: dict[str, int] = {}  # bytes on disk of each stored upload (unclaimed or being checked)
_copying = [0]  # bytes announced by the uploads being copied now
_folder: list[Path] = []


def _private_folder() -> Path:
    """This process's upload folder (mode 0700, removed at exit)."""
    with _lock:
        if not _folder:
            folder = Path(tempfile.mkdtemp(prefix="tracklens-uploads-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _folder.append(folder)
        return _folder[0]


def store(stream, *, filename: str | None, content_length: int | None, client: str = "") -> StoredUpload:
    """Copy an upload's body from ``stream`` to a private file and check it; see the module docstring.

    ``client`` tells whose upload it is (the route passes the address and the page's token).
    Raises UploadRefused (with its HTTP status) for anything the route refuses; nothing is left on disk then.
    """
    from tracklens.dashboard.track import display_name

    name = display_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in data.UPLOAD_EXTENSIONS:
        allowed = ", ".join(e.lstrip(".").upper() for e in data.UPLOAD_EXTENSIONS)
        raise UploadRefused(f"{name}: unsupported file type '{suffix or 'none'}'; upload {allowed}", 415)
    if content_length is not None and content_length > data.MAX_UPLOAD_BYTES:
        raise UploadRefused(too_large_line(name, content_length), 413)
    announced = data.MAX_UPLOAD_BYTES if content_length is None else content_length
    _make_room(name, client, announced)
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
    finally:
        with _lock:
            _copying[0] -= announced
    upload = StoredUpload(upload_id, name, path, digest, duration_s, time.monotonic(), client)
    with _lock:
        _pending[upload_id] = upload
        _held[upload_id] = size
    return upload


def _make_room(name: str, client: str, announced: int) -> None:
    """Refuse (503) when too much is being analysed; drop the expired unclaimed uploads, and the
    oldest past their grace where this client or the server has no free place (503 if none is);
    refuse (503) when ``announced`` more bytes would pass STORE_BUDGET_BYTES, else count them."""
    now = time.monotonic()
    with _lock:
        if len(_analysing) >= MAX_ANALYSING:
            raise UploadRefused(f"{name}: the server is busy analysing {len(_analysing)} tracks; "
                                "try again in a minute", 503)
        dropped = [u for u in _pending.values() if now - u.created > UNCLAIMED_TTL_S]
        for upload in dropped:
            del _pending[upload.id]
        for limit, mine in ((MAX_UNCLAIMED_PER_CLIENT, lambda u: u.client == client), (MAX_UNCLAIMED, None)):
            waiting = [u for u in _pending.values() if mine is None or mine(u)]  # oldest first
            if len(waiting) < limit:
                continue
            oldest = waiting[0]
            if now - oldest.created <= UNCLAIMED_GRACE_S:
                wait_s = UNCLAIMED_GRACE_S - (now - oldest.created)
                refusal = UploadRefused(f"{name}: {len(waiting)} uploads are waiting for their check; "
                                        f"try again in {max(1, round(wait_s + 0.5))} s", 503)
                break
            del _pending[oldest.id]
            dropped.append(oldest)
        else:
            refusal = None
        for upload in dropped:
            _held.pop(upload.id, None)
        held = sum(_held.values()) + _copying[0]
        if refusal is None and held + announced > STORE_BUDGET_BYTES:
            refusal = UploadRefused(f"{name}: the server holds {held / 2**20:.0f} MB of uploads being checked; "
                                    "try again in a minute", 503)
        elif refusal is None:
            _copying[0] += announced
    for upload in dropped:
        upload.path.unlink(missing_ok=True)
    if refusal is not None:
        raise refusal


def too_large_line(name: str, size: int, *, more: bool = False) -> str:
    """The one line for an upload over the byte cap ("song.wav: too large (170.0 MB); files up to ...")."""
    amount = f"{'over ' if more else ''}{size / 2**20:.1f} MB"
    return f"{name}: too large ({amount}); {data.byte_cap_text()}"


def _copy(stream, path: Path, name: str) -> tuple[str, int]:
    """Write ``stream`` to ``path`` (a new file) in CHUNK_BYTES pieces; (SHA-256, size).
    Stops with 413 as soon as the body passes the byte cap, with 507 when the disk is full."""
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "xb") as out:
            while chunk := stream.read(CHUNK_BYTES):
                size += len(chunk)
                if size > data.MAX_UPLOAD_BYTES:
                    raise UploadRefused(too_large_line(name, size, more=True), 413)
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise UploadRefused(f"{name}: the server's disk is full; the upload could not be stored — "
                                "try again later", 507) from None
        raise
    return digest.hexdigest(), size


def _header_duration(path: Path, name: str) -> float:
    """The duration its header announces (NaN when it announces none); 422 when there is no
    readable audio header, 413 when longer than the limit."""
    from tracklens import audio

    try:
        duration_s = float(audio.probe_audio(path)["duration_s"])
    except audio.AudioError as exc:
        # ffmpeg's log prefix names its decoder's address in memory ("[flac @ 0x55fde7886c80] "):
        # not for the user (found by bench/fuzz_upload.py)
        reason = FFMPEG_CONTEXT.sub("", str(exc).replace(str(path), name))
        raise UploadRefused(reason, 422) from None
    if data.is_too_long(duration_s):
        raise UploadRefused(data.too_long_line(name, duration_s), 413)
    return duration_s


def announced_duration(head: bytes) -> float:
    """The duration (s) that the first bytes of a PCM WAV, an AIFF or a FLAC file announce; NaN
    when they announce none (other formats, RF64, a streamed WAV's open-ended size, a header
    not within ``head``). The server's guard reads it from an upload's first bytes, so a long
    master is refused before the rest of it is sent."""
    import struct

    if head[:4] == b"fLaC" and len(head) >= 26 and head[4] & 0x7F == 0:  # STREAMINFO comes first
        fields = int.from_bytes(head[18:26], "big")  # 20 bits rate, 3 channels, 5 bits, 36 frames
        rate, frames = fields >> 44, fields & ((1 << 36) - 1)
        return frames / rate if rate and frames else math.nan
    riff = head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    aiff = head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")
    order = "<" if riff else ">"
    pos, frame_bytes, rate = 12, 0, 0
    while (riff or aiff) and pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], struct.unpack_from(order + "I", head, pos + 4)[0]
        if riff and chunk == b"fmt " and pos + 24 <= len(head):
            tag, _, rate, _, frame_bytes = struct.unpack_from("<HHIIH", head, pos + 8)
            if tag not in (1, 3, 0xFFFE):  # PCM, float, extensible: a frame is block_align bytes
                return math.nan
        elif riff and chunk == b"data":
            open_ended = size in (0, 0xFFFFFFFF)  # a recorder's stream: the size comes at the end
            return size / frame_bytes / rate if rate and frame_bytes and not open_ended else math.nan
        elif aiff and chunk == b"COMM" and pos + 26 <= len(head):
            frames = struct.unpack_from(">I", head, pos + 10)[0]
            exponent, mantissa = struct.unpack_from(">HQ", head, pos + 16)  # 80-bit extended float
            try:
                rate = math.ldexp(mantissa, (exponent & 0x7FFF) - 16383 - 63)
            except OverflowError:  # an exponent past any float (a hostile header): no rate
                return math.nan
            return frames / rate if rate > 0 and frames else math.nan
        pos += 8 + size + (size & 1)
    return math.nan


@contextmanager
def claim(upload_id: str):
    """The stored upload ``upload_id`` for one check; its file is deleted when the block ends.

    Raises TracklensError when there is no such upload (expired, already checked, or never made).
    """
    with _lock:
        upload = _pending.pop(str(upload_id), None)
        if upload is not None:
            _analysing.add(upload.id)
    if upload is None:
        raise TracklensError("the upload is no longer on the server (it expired or was already checked); "
                             "upload the file again")
    try:
        yield upload
    finally:
        upload.path.unlink(missing_ok=True)
        with _lock:
            _analysing.discard(upload.id)
            _held.pop(upload.id, None)


def pending_count() -> int:
    """Uploads stored and not yet claimed."""
    with _lock:
        return len(_pending)


def analysing_count() -> int:
    """Uploads claimed by a check that has not finished."""
    with _lock:
        return len(_analysing)


def remove_all() -> None:
    """Delete every stored upload and the private folder (the server is stopping)."""
    with _lock:
        _pending.clear()
        _held.clear()
        folders = list(_folder)
        _folder.clear()  # a later upload (tests) makes a new folder
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def install(app) -> None:
    """Add the upload route to ``app``'s Flask server."""
    import flask
    import werkzeug.exceptions

    def receive():
        if flask.request.headers.get(HEADER) != "1":
            return flask.jsonify(error=f"uploads need the {HEADER} header"), 400
        client = f"{flask.request.remote_addr}/{flask.request.headers.get(CLIENT_HEADER, '')[:64]}"
        try:
            upload = store(flask.request.stream, filename=flask.request.args.get("name"),
                           content_length=flask.request.content_length, client=client)
        except UploadRefused as exc:
            return flask.jsonify(error=str(exc)), exc.status
        except werkzeug.exceptions.ClientDisconnected:  # the body ended before its Content-Length
            from tracklens.dashboard.track import display_name

            name = display_name(flask.request.args.get("name"))
            return flask.jsonify(error=f"{name}: the upload was cut off before its end; try again"), 400
        duration = upload.duration_s if math.isfinite(upload.duration_s) else None
        return flask.jsonify(id=upload.id, name=upload.name, duration_s=duration)

    app.server.add_url_rule(app.config.routes_pathname_prefix + ROUTE, "tracklens_upload", receive,
                            methods=["POST"])
