"""The dashboard's waitress server, guarded against slow, oversized and piled-up request bodies.

waitress reads a request's whole body (to memory, then a temporary file past ``inbuf_overflow``)
before the application sees the request, so the app's own checks came too late: a request
announcing the byte cap + 1000 bytes waited for all of them, twelve 160 MB uploads held 2.6 GiB
of temp space at once, and a body trickling one byte every 5 s never met waitress' idle timeout
(99 of them filled its connection limit). The guard acts while the request is being *received*:

- **Size, before reading**: as soon as the headers are in, a body announced larger than its
  route allows (the upload route: ``data.MAX_UPLOAD_BYTES``; anything else: 1 MiB) gets 413
  without a byte of it read; a chunked body is stopped when it passes the same limit.
- **Spool budget**: the bodies being received at once may announce at most
  :data:`SPOOL_BUDGET_BYTES` together; a request beyond it gets 503 at once (the page says
  "busy, try again"), so the temp folder holds at most that much of bodies in flight.
- **Duration, from the first bytes**: an upload whose WAV/AIFF/FLAC header (in its first
  :data:`HEAD_BYTES`) announces more than ``data.MAX_UPLOAD_SECONDS`` gets 413 at once; the rest
  of its body is not received (the byte cap, far above 10 minutes of any common master, is only
  a backstop).
- **Receiving rate**: a request must arrive at :data:`MIN_BYTES_PER_S` on average after a
  :data:`GRACE_S` start (headers included); a slower one is closed (408). A connection that sends
  nothing is closed after :data:`IDLE_TIMEOUT_S` (waitress' ``channel_timeout``; requests being
  answered are exempt, however long a check takes). Up to :data:`CONNECTION_LIMIT` connections
  are served at once (waitress' default of 100 was what 99 slow clients filled).
- **Full temp folder**: a spool that cannot be written gets 507 with one line instead of a reset
  connection.

Refusals are answered ``{"error": "<one line>"}`` (what the upload page shows) with
``Connection: close``; the connection then reads and drops what the client still sends for up
to :data:`LINGER_S` before closing, so the client reads the answer instead of a TCP reset.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
import urllib.parse

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.utilities import Error

from tracklens.dashboard import data

LOG = logging.getLogger(__name__)

MAX_OTHER_BODY_BYTES = 1 << 20  # everything but an upload is small JSON
# waitress' own limit, kept above the guard's (the guard answers first, in one line)
MAX_REQUEST_BODY_BYTES = data.MAX_UPLOAD_BYTES + (64 << 10)
# Bodies received at once, all connections together: two uploads at the byte cap (1.8 GiB), or
# dozens of ordinary ones (a body counts what it announces). The cap is a backstop for 10 minutes
# of 32-bit 192 kHz stereo; with the store's budget, uploads hold at most 4 x the cap of temp space.
SPOOL_BUDGET_BYTES = 2 * data.MAX_UPLOAD_BYTES
GRACE_S = 5.0  # any request may take this long before the rate counts...
MIN_BYTES_PER_S = 16 << 10  # ...then it must have averaged 16 KiB/s (a 200 MB master: under 4 h)
IDLE_TIMEOUT_S = 20  # a connection with no request being answered and nothing received is closed
CHECK_INTERVAL_S = 1  # how often the idle connections are looked for (waitress' cleanup_interval)
HEAD_BYTES = 64 << 10  # an upload's first bytes, where a WAV/AIFF/FLAC header says its duration
LINGER_S = 5.0  # after a refusal, read and drop the rest of the body this long at most
# Connections at once (waitress: 100). With poll() instead of select() (limited to descriptors
# below 1024), a few hundred cost little; the receiving deadline frees the places of slow ones.
CONNECTION_LIMIT = 250


class Refusal(Error):
    """A waitress error answered as the upload route answers: one JSON line."""

    def __init__(self, code: int, reason: str, line: str):
        super().__init__(line)
        self.code, self.reason = code, reason

    def to_response(self, ident=None):
        body = (json.dumps({"error": self.body}) + "\n").encode()
        return f"{self.code} {self.reason}", [("Content-Type", "application/json")], body


class SpoolBudget:
    """Bytes that the bodies being received may announce together (thread-safe)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.used -= n


def _upload_name(query: str) -> str:
    from tracklens.dashboard.track import display_name

    return display_name(urllib.parse.parse_qs(query or "").get("name", [None])[0])


class GuardedParser(HTTPRequestParser):
    """waitress' request parser with the guard's size, budget and disk checks (see the module)."""

    upload_path = "/_upload"  # set by guarded_channel()
    budget: SpoolBudget = SpoolBudget(SPOOL_BUDGET_BYTES)
    reserved = 0
    limit = MAX_OTHER_BODY_BYTES
    refused_body = False  # answered before its body was read: the connection drains before closing
    head: bytes | None = None  # an upload's first body bytes, until its header's duration is read

    def received(self, chunk: bytes) -> int:
        in_header = self.body_rcv is None and not self.completed
        try:
            consumed = super().received(chunk)
        except OSError as exc:  # the spool's temporary file could not be written
            LOG.warning("refused a request body: %s", exc)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            self._refuse(507 if full else 500, "Insufficient Storage" if full else "Internal Server Error",
                         self._named("the server's temporary folder is full; the upload could not be "
                                     "received — try again later" if full else
                                     "the server could not store the upload; try again later"))
            return len(chunk)
        if self.error is None and self.headers_finished:
            if in_header:
                self._check_announced_body()
            elif self.chunked and self.body_bytes_received > self.limit:
                self._refuse(413, "Request Entity Too Large", self._too_large(self.body_bytes_received, more=True))
            elif self.head is not None:
                self._check_duration(chunk[:consumed])
        return consumed

    def _check_duration(self, body: bytes) -> None:
        """Refuse an upload whose header announces more than the duration limit as soon as the
        header is in (:data:`HEAD_BYTES`), not after the whole body: the byte cap is only a backstop,
        so a 20-minute 96 kHz master (691 MB) would otherwise be received whole before its 413."""
        from tracklens.dashboard import uploads

        self.head += body
        if len(self.head) < HEAD_BYTES and not self.completed:
            return
        duration_s, self.head = uploads.announced_duration(self.head), None
        if data.is_too_long(duration_s):
            self._refuse(413, "Request Entity Too Large", data.too_long_line(_upload_name(self.query), duration_s))

    def _named(self, text: str) -> str:
        return f"{_upload_name(self.query)}: {text}" if self.path == self.upload_path else text

    def _too_large(self, size: int, *, more: bool = False) -> str:
        if self.path == self.upload_path:
            from tracklens.dashboard import uploads

            return uploads.too_large_line(_upload_name(self.query), size, more=more)
        return f"request body too large ({'over ' if more else ''}{size} bytes; at most {self.limit})"

    def _check_announced_body(self) -> None:
        self.limit = data.MAX_UPLOAD_BYTES if self.path == self.upload_path else MAX_OTHER_BODY_BYTES
        announced = self.limit if self.chunked else self.content_length
        if not self.chunked and announced > self.limit:
            self._refuse(413, "Request Entity Too Large", self._too_large(announced))
        elif announced > 0 and not self.completed:
            if not self.budget.reserve(announced):
                self._refuse(503, "Service Unavailable",
                             self._named("the server is busy receiving other uploads; try again in a minute"))
            else:
                self.reserved = announced
                if self.path == self.upload_path and not self.chunked:
                    self.head = b""

    def _refuse(self, code: int, reason: str, line: str) -> None:
        self.error = Refusal(code, reason, line)
        self.completed = True
        self.refused_body = True
        self._release()

    def _release(self) -> None:
        if self.reserved:
            self.budget.release(self.reserved)
            self.reserved = 0

    def close(self) -> None:
        self._release()
        super().close()


class GuardedChannel(HTTPChannel):
    """waitress' connection with a deadline on receiving each request and a lingering close."""

    parser_class = GuardedParser
    request_started: float | None = None
    request_bytes = 0
    lingering_until: float | None = None
    refused_body = False

    def received(self, chunk: bytes) -> bool:
        if self.lingering_until is not None:
            return False  # the rest of a refused body: dropped
        if self.request is None and chunk and not chunk.isspace():
            self.request_started, self.request_bytes = time.monotonic(), 0
        if self.request_started is not None:
            self.request_bytes += len(chunk)
        accepted = super().received(chunk)
        for request in self.requests:
            self.refused_body |= request.refused_body
        if self.request is None:  # nothing half-received (requests in self.requests are complete)
            self.request_started = None
        return accepted

    def too_slow(self, now: float) -> bool:
        """The request being received is behind the minimum rate."""
        started = self.request_started
        return (started is not None and self.request is not None
                and now - started > GRACE_S + self.request_bytes / MIN_BYTES_PER_S)

    def readable(self) -> bool:
        # Called on every turn of waitress' loop (at least once a second): the deadline check. It runs
        # outside the error handling waitress gives its event handlers: an exception here ended the
        # loop, and every connection with it. A failing check closes its own connection only.
        try:
            return self._check_deadline()
        except Exception:  # noqa: BLE001 (logged with its traceback; the server goes on)
            LOG.exception("closed a connection from %s: its deadline check failed", self.addr)
            self._close_now()
            return False

    def _check_deadline(self) -> bool:
        now = time.monotonic()
        if self.lingering_until is not None:
            if now > self.lingering_until:
                self._close_now()
                return False
            return True
        if self.too_slow(now) and not self.will_close:
            LOG.warning("closed a connection from %s: the request arrived slower than %d bytes/s",
                        self.addr, MIN_BYTES_PER_S)
            self._answer_too_slow()
            return False
        return super().readable()

    def _answer_too_slow(self) -> None:
        body = (json.dumps({"error": "the request arrived too slowly; the server closed the connection"})
                + "\n").encode()
        head = (f"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                "\r\nConnection: close\r\n\r\n").encode()
        with self.requests_lock:
            if self.request is not None:
                self.request.close()
                self.request = None
            self.request_started = None
            self.refused_body = False  # no lingering for a client this slow: it would hold its place longer
            if not self.requests:  # no answer of an earlier request is being written: ours goes out
                with self.outbuf_lock:
                    self.outbufs[-1].append(head + body)
                    self.total_outbufs_len += len(head) + len(body)
            self.close_when_flushed = True

    def writable(self) -> bool:
        return False if self.lingering_until is not None else super().writable()

    def handle_read(self) -> None:
        if self.lingering_until is None:
            return super().handle_read()
        try:
            if not self.recv(1 << 16):
                self._close_now()  # the client closed its side
        except OSError:
            self._close_now()

    def handle_close(self) -> None:
        # Closing with unread input makes the kernel reset the connection, and the client may lose
        # the answer it has not read yet: after a refusal, stop writing, then drain for a while.
        if self.refused_body and self.lingering_until is None and self.connected and not self.total_outbufs_len:
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                return self._close_now()
            self.lingering_until = time.monotonic() + LINGER_S
            self.will_close = False
            return None
        return self._close_now()

    def _close_now(self) -> None:
        self.lingering_until = None
        request, self.request = self.request, None
        if request is not None:
            try:
                request.close()  # frees its share of the budget, then its spool
            except OSError as exc:  # a spool file that cannot be closed still closes the connection
                LOG.warning("could not close the spool of a request from %s: %s", self.addr, exc)
        super().handle_close()


def guarded_channel(upload_path: str, budget: SpoolBudget | None = None) -> type:
    """A channel class whose parser knows the upload route (and, for tests, its own budget)."""
    parser = type("GuardedParser", (GuardedParser,),
                  {"upload_path": upload_path, "budget": budget or SpoolBudget(SPOOL_BUDGET_BYTES)})
    return type("GuardedChannel", (GuardedChannel,), {"parser_class": parser})


def create_server(wsgi_app, *, host: str, port: int, threads: int, upload_path: str,
                  budget: SpoolBudget | None = None, **adjustments):
    """A waitress server (not yet running: call ``.run()``) whose connections are guarded."""
    import waitress.server

    options = {"connection_limit": CONNECTION_LIMIT, "asyncore_use_poll": True, "channel_timeout": IDLE_TIMEOUT_S,
               "cleanup_interval": CHECK_INTERVAL_S, **adjustments}
    server = waitress.server.create_server(
        wsgi_app, host=host, port=port, threads=threads, ident="tracklens", clear_untrusted_proxy_headers=True,
        max_request_body_size=MAX_REQUEST_BODY_BYTES, **options)
    channel = guarded_channel(upload_path, budget)
    for listener in _listeners(server):
        listener.channel_class = channel
    return server


def _listeners(server) -> list:
    """The listening servers behind ``create_server``'s answer (one, or several for several addresses)."""
    from waitress.server import BaseWSGIServer

    if isinstance(server, BaseWSGIServer):
        return [server]
    return [s for s in server.map.values() if isinstance(s, BaseWSGIServer)]
