"""The dashboard server under hostile use (issue 22): slow and oversized bodies, a full temp folder,
abandoned uploads, lying Host headers, deep JSON, long names, rich-text names, SIGTERM.

The server-level tests run the guarded waitress server (`dashboard.server`) in a thread of this
process on a free 127.0.0.1 port and talk to it with raw sockets; every loop is bounded.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

import pytest

from tracklens.errors import TracklensError


@pytest.fixture(scope="module")
def app(demo_catalogue):
    from tracklens.dashboard import app as app_module, data

    data.configure(demo_catalogue)
    return app_module.get_app()


@pytest.fixture
def guarded(app, monkeypatch):
    """Start a guarded server in a thread: ``guarded(**options)`` -> (port, server).

    At teardown each server is stopped by its own loop thread, and the test fails (after the stop)
    when that loop ended early (its exception is shown) or when the server's wake-up pipe was
    closed by anything but the server: see :class:`_ServedInThread`."""
    from tracklens.dashboard import server as server_module, uploads

    started = []
    closes = _WakePipeCloses(monkeypatch)

    def start(budget=None, threads: int = 2, **adjustments):
        server = server_module.create_server(app.server, host="127.0.0.1", port=0, threads=threads,
                                             upload_path="/" + uploads.ROUTE, budget=budget, **adjustments)
        served = _ServedInThread(server)
        closes.watch(served)
        started.append(served)
        return server.effective_port, server

    yield start
    problems = [problem for served in started for problem in served.stop()] + closes.refused
    assert not problems, "\n".join(problems)


def _fd_identity(fd: int) -> tuple[int, int] | None:
    """(device, inode) of what ``fd`` refers to, or None when it is not open."""
    try:
        stat = os.fstat(fd)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "not open"


class _ServedInThread:
    """A guarded server run by a thread of this process as ``server.run()`` runs it, and stopped by
    that thread (closing its sockets from the test's thread raced its poll()).

    The stop does not depend on waitress' wake-up pipe (its ``trigger``, which worker threads and
    ``pull_trigger`` write to): the loop also looks at a flag after each poll(), at least every
    second. A teardown once failed with EBADF writing to that pipe after the test had passed: its
    descriptor had been closed under the running server. Such a pipe is not written to or closed
    here (its number may be another file's by now); it is reported, as is a loop that ended early.
    """

    def __init__(self, server):
        self.server = server
        self.error: BaseException | None = None
        self.problems: list[str] = []
        self._stopping = threading.Event()
        trigger = server.trigger
        self.wake_pipe = _fd_identity(trigger.trigger)  # one pipe: the end written to and the end polled
        self.wake_fds = {"write end": trigger.trigger, "read end": trigger.socket.fd, "raw read end": trigger._fds[0]}
        self.thread = threading.Thread(target=self._run, name=f"guarded-server-{server.effective_port}", daemon=True)
        self.thread.start()

    def wake_pipe_problem(self) -> str | None:
        """Why the server's wake-up pipe is not the one it was made with, or None."""
        for end, fd in self.wake_fds.items():
            if _fd_identity(fd) != self.wake_pipe:
                return (f"the {end} of the server's wake-up pipe (fd {fd}) was closed under the running server "
                        f"by something else in this process (fd {fd} is now: {_fd_target(fd)})")
        if self.server.trigger._closed:  # waitress closes it when poll() reports a hang-up on it
            return "the server's wake-up pipe was closed by its loop: poll() reported a hang-up or a bad descriptor"
        return None

    def _run(self) -> None:
        from waitress import wasyncore

        server = self.server
        try:
            while server._map and not self._stopping.is_set():  # server.run()'s loop, one poll() a turn
                wasyncore.loop(timeout=server.adj.asyncore_loop_timeout, use_poll=server.adj.asyncore_use_poll,
                               map=server._map, count=1)
        except BaseException as exc:  # noqa: BLE001 (reported by stop())
            self.error = exc
        finally:
            problem = self.wake_pipe_problem()
            if problem is not None:
                self.problems.append(problem)
                self._forget_wake_pipe()
            server.task_dispatcher.shutdown()
            wasyncore.close_all(server._map)

    def _forget_wake_pipe(self) -> None:
        """Keep close_all from closing descriptor numbers that are no longer this server's pipe."""
        trigger = self.server.trigger
        trigger._fds = [fd for fd in trigger._fds if _fd_identity(fd) == self.wake_pipe]
        if trigger.socket is not None and _fd_identity(trigger.socket.fd) != self.wake_pipe:
            trigger.socket.fd = -1

    def stop(self) -> list[str]:
        """Stop the server (within ~1 s); what went wrong while it ran, in lines (none: all well)."""
        problems = []
        if not self.thread.is_alive():
            problems.append("the server's loop ended before the test did: "
                            + "".join(traceback.format_exception(self.error) if self.error else ["no exception"]))
        self._stopping.set()
        if self.wake_pipe_problem() is None:
            with contextlib.suppress(OSError):  # a loop that has just ended closed it: reported above
                self.server.trigger.pull_trigger()  # wakes its poll() now rather than within a second
        self.thread.join(timeout=15)
        if self.thread.is_alive():
            problems.append("the server's loop did not stop within 15 s")
        return problems + self.problems


class _WakePipeCloses:
    """While a guarded server runs, a Python-level ``os.close`` of its wake-up pipe's descriptors by
    anything but waitress (the trigger closing itself) is refused with EBADF, what a double close
    elsewhere in the test process gets when the number was not given again, and recorded with its
    stack, so the culprit is named instead of the server's next wake-up failing."""

    def __init__(self, monkeypatch):
        import waitress

        waitress_dir = os.path.dirname(waitress.__file__) + os.sep
        self._watched: list[_ServedInThread] = []
        self.refused: list[str] = []
        real_close = os.close

        def close(fd):
            caller = sys._getframe(1).f_code.co_filename
            if not caller.startswith(waitress_dir) and any(fd in s.wake_fds.values() and s.thread.is_alive()
                                                  for s in self._watched):
                self.refused.append(f"os.close({fd}) of a running server's wake-up pipe, refused, from "
                                    f"{threading.current_thread().name}:\n" + "".join(traceback.format_stack()[:-1]))
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            return real_close(fd)

        monkeypatch.setattr(os, "close", close)

    def watch(self, served: _ServedInThread) -> None:
        self._watched.append(served)


def _connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _head(path: str, length: int, *, method: str = "POST", extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Tracklens-Upload: 1\r\n{extra}"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").encode()


def _read_answer(conn: socket.socket, deadline_s: float = 10.0) -> tuple[int, bytes]:
    """(status, body) of one HTTP answer, read until the connection closes or the body is complete."""
    conn.settimeout(deadline_s)
    raw = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        raw += chunk
        head, _, body = raw.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if length is not None and len(body) >= length:
            break
    if not raw:
        raise AssertionError("no answer")
    status = int(raw.split(b" ", 2)[1])
    return status, raw.partition(b"\r\n\r\n")[2]


def _get_layout(port: int, timeout: float) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=timeout) as answer:
        return answer.status


# --- (4) slow bodies ------------------------------------------------------------------------


def test_trickling_bodies_are_closed_and_others_are_served(guarded, monkeypatch):
    """99 connections send headers, then one body byte every 0.4 s: waitress' connection limit
    (100, its own two sockets included) would let nobody else in, and a trickle is never idle.
    Each must average MIN_BYTES_PER_S after GRACE_S (here 1 s and 2 kB/s): they are closed, and
    a normal request is answered."""
    from tracklens.dashboard import server as server_module

    monkeypatch.setattr(server_module, "GRACE_S", 1.0)
    monkeypatch.setattr(server_module, "MIN_BYTES_PER_S", 2000)
    port, _ = guarded(threads=2, connection_limit=100)  # waitress' default: what the 99 filled
    assert _get_layout(port, timeout=60) == 200  # the first one loads the data: not what is timed here
    slow = []
    try:
        for _ in range(99):
            conn = _connect(port)
            conn.sendall(_head("/_upload?name=slow.wav", 100_000))
            slow.append(conn)
        answered, closed, started = None, set(), time.monotonic()
        for tick in range(30):  # 12 s at most
            for i, conn in enumerate(slow):
                if i not in closed:
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        closed.add(i)
            if tick == 8 and answered is None:  # 3.2 s in: past every trickle's deadline
                answered = _get_layout(port, timeout=8)
            if answered is not None and len(closed) == len(slow):
                break
            time.sleep(0.4)
        assert answered == 200
        assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow connections still open"
        assert time.monotonic() - started < 12
    finally:
        for conn in slow:
            conn.close()


def test_a_too_slow_request_is_told_why(guarded, monkeypatch):
    from tracklens.dashboard import server as server_module

    monkeypatch.setattr(server_module, "GRACE_S", 0.5)
    port, _ = guarded()
    with _connect(port) as conn:
        conn.sendall(_head("/_upload?name=slow.wav", 1000))
        status, body = _read_answer(conn, deadline_s=6)
    assert status == 408 and "too slowly" in json.loads(body)["error"]


def test_a_failing_deadline_check_closes_its_connection_not_the_server(guarded, monkeypatch, caplog):
    """The deadline check runs in waitress' loop outside the error handling of its event handlers:
    an exception there (here the 408 answer cannot be queued, as when the output buffer spills to a
    full disk) ended the loop, and the server stopped answering anyone."""
    from tracklens.dashboard import server as server_module

    def disk_full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(server_module, "GRACE_S", 0.3)
    monkeypatch.setattr(server_module.GuardedChannel, "_answer_too_slow", disk_full)
    port, _ = guarded()
    with _connect(port, timeout=5) as conn:
        conn.sendall(_head("/_upload?name=slow.wav", 1000))
        try:
            assert conn.recv(100) == b""  # closed, with no answer (none could be queued)
        except ConnectionResetError:
            pass
    assert _get_layout(port, timeout=30) == 200
    assert "its deadline check failed" in caplog.text and "No space left on device" in caplog.text


def test_a_spool_that_cannot_be_closed_still_closes_its_connection(guarded, monkeypatch, caplog):
    """A client gone mid-body: closing its request's spool fails (an I/O error on the temp folder).
    The error escaped waitress' error handling (it came again from the close that handles errors)
    and ended the server's loop."""
    from waitress.parser import HTTPRequestParser

    def failing_close(self):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(HTTPRequestParser, "close", failing_close)
    port, _ = guarded()
    with _connect(port) as conn:
        conn.sendall(_head("/_upload?name=gone.wav", 100_000) + bytes(1000))
        time.sleep(0.3)  # received: a request being read, with its spool
    deadline = time.monotonic() + 5
    while "could not close the spool" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "could not close the spool of a request from" in caplog.text and "Input/output error" in caplog.text
    assert _get_layout(port, timeout=30) == 200


@pytest.mark.parametrize("foreign", ["closed", "reused"])
def test_a_wake_up_pipe_closed_under_the_server_is_reported_and_the_stop_still_works(app, foreign):
    """How a quick-tier teardown once failed after its test had passed (OSError EBADF in waitress'
    ``trigger._physical_pull``): a descriptor of the running server's wake-up pipe was closed by
    something else in the process (a double close of a number the pipe had been given). The stop
    needs no wake-up, says what happened, and writes nothing to the number, which may be another
    file's by then (``reused``: another pipe's write end)."""
    from tracklens.dashboard import server as server_module, uploads

    server = server_module.create_server(app.server, host="127.0.0.1", port=0, threads=1,
                                         upload_path="/" + uploads.ROUTE)
    served = _ServedInThread(server)
    write_end = server.trigger.trigger
    if foreign == "closed":
        os.close(write_end)
        with pytest.raises(OSError) as err:
            server.trigger.pull_trigger()  # what the teardown did
        assert err.value.errno == errno.EBADF
    else:
        other_read, other_write = os.pipe()
        os.dup2(other_write, write_end)
        os.close(other_write)
    try:
        problems = served.stop()
        assert not served.thread.is_alive()
        assert len(problems) == 1 and f"the write end of the server's wake-up pipe (fd {write_end}) was closed" in \
            problems[0], problems
        if foreign == "reused":
            os.set_blocking(other_read, False)
            with contextlib.suppress(BlockingIOError):
                assert os.read(other_read, 100) == b""  # no wake-up byte went into the other pipe
    finally:
        if foreign == "reused":
            if _fd_identity(write_end) == _fd_identity(other_read):  # waitress closes it on the pipe's hang-up
                os.close(write_end)
            os.close(other_read)


# --- (12) size before reading, spool budget -------------------------------------------------


@pytest.mark.parametrize("path, limit, message", [
    ("/_upload?name=big.wav", "MAX_UPLOAD_BYTES", "big.wav: too large"),
    ("/_dash-update-component", "MAX_OTHER_BODY_BYTES", "request body too large"),
])
def test_a_body_over_its_limit_is_refused_from_its_content_length(guarded, path, limit, message):
    """Only the headers are sent: the answer must come without waiting for the announced body
    (waitress read cap + 1000 bytes before the app's check ran, so this got no answer in 20 s)."""
    from tracklens.dashboard import data, server as server_module

    size = getattr(data, limit, None) or getattr(server_module, limit)
    port, _ = guarded()
    started = time.monotonic()
    with _connect(port) as conn:
        conn.sendall(_head(path, size + 1000))
        status, body = _read_answer(conn, deadline_s=5)
    assert status == 413 and json.loads(body)["error"].startswith(message)
    assert "\n" not in json.loads(body)["error"] and time.monotonic() - started < 5


def test_bodies_received_at_once_stay_within_the_spool_budget(guarded):
    """Two bodies of 600 kB fit a 1.5 MB budget, a third waits its turn with 503 at once; the
    budget comes back when a request ends, whether answered or abandoned mid-body."""
    from tracklens.dashboard import server as server_module

    budget = server_module.SpoolBudget(1_500_000)
    port, _ = guarded(budget=budget)
    first, second = _connect(port), _connect(port)
    try:
        for conn in (first, second):
            conn.sendall(_head("/_upload?name=a.wav", 600_000) + bytes(100_000))
        deadline = time.monotonic() + 5
        while budget.used < 1_200_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert budget.used == 1_200_000
        with _connect(port) as third:
            third.sendall(_head("/_upload?name=third.wav", 600_000))
            status, body = _read_answer(third, deadline_s=5)
        assert status == 503 and json.loads(body)["error"].startswith("third.wav: the server is busy receiving")
        first.sendall(bytes(500_000))  # completed: the app answers (zeros are no audio: 422)
        status, _ = _read_answer(first)
        assert status == 422
        second.close()  # abandoned mid-body
        deadline = time.monotonic() + 5
        while budget.used and time.monotonic() < deadline:
            time.sleep(0.05)
        assert budget.used == 0
    finally:
        first.close()
        second.close()


# --- (8) full temp folder -------------------------------------------------------------------


def test_a_full_temp_folder_answers_507_not_a_reset(guarded, monkeypatch):
    """waitress spools a body over 512 kB to a temporary file: when that cannot be written, the
    client reads one line with 507 (it got a reset connection), even while still sending."""
    import waitress.buffers

    def disk_full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(waitress.buffers.TempfileBasedBuffer, "newfile", disk_full)
    port, _ = guarded()
    with _connect(port) as conn:
        conn.sendall(_head("/_upload?name=song.wav", 3_000_000))
        sent = 0
        try:
            for _ in range(30):
                conn.sendall(bytes(100_000))
                sent += 100_000
        except OSError:
            pass  # the server stopped reading once it answered; what matters is the answer
        status, body = _read_answer(conn)
    assert status == 507
    assert json.loads(body)["error"] == ("song.wav: the server's temporary folder is full; the upload could not "
                                         "be received — try again later")


def test_a_full_upload_folder_answers_507(app, monkeypatch):
    """The spool was written, the private upload folder is full: 507 with one line, nothing kept."""
    from tracklens.dashboard import uploads

    class FullDisk(io.BytesIO):
        def write(self, chunk):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_open = open

    def open_on_full_disk(path, mode="r", *args, **kwargs):
        if "x" in mode:
            real_open(path, mode).close()  # the file is made, its first write fails
            return FullDisk()
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(uploads, "open", open_on_full_disk, raising=False)
    before = uploads.pending_count()
    response = app.server.test_client().post("/_upload?name=song.wav", data=b"RIFF" + bytes(5000),
                                             headers={uploads.HEADER: "1"})
    assert response.status_code == 507
    assert response.get_json()["error"] == ("song.wav: the server's disk is full; the upload could not be stored "
                                            "— try again later")
    assert uploads.pending_count() == before and list(uploads._private_folder().iterdir()) == []


# --- (5) abandoned uploads ------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """uploads' monotonic clock, moved by hand."""
    from tracklens.dashboard import uploads

    now = [time.monotonic()]
    monkeypatch.setattr(uploads.time, "monotonic", lambda: now[0])
    return now


def _store(app, client: str, demo_catalogue, name: str = "song.wav"):
    from tracklens.dashboard import uploads

    raw = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0].read_bytes()
    return app.server.test_client().post(f"/_upload?name={name}", data=raw,
                                         headers={uploads.HEADER: "1", uploads.CLIENT_HEADER: client})


@pytest.fixture
def empty_store():
    from tracklens.dashboard import uploads

    uploads.remove_all()
    yield uploads
    uploads.remove_all()


def test_abandoned_uploads_lock_nobody_out_for_long(app, demo_catalogue, clock, empty_store):
    """Eight tabs upload and close before their check: the ninth user waits seconds, not 10 minutes
    (PENDING_TTL_S was 600 s), and the abandoned files are deleted."""
    uploads = empty_store
    for tab in range(uploads.MAX_UNCLAIMED):
        assert _store(app, f"tab{tab}", demo_catalogue).status_code == 200
    refused = _store(app, "late", demo_catalogue)
    assert refused.status_code == 503
    assert refused.get_json()["error"].startswith("song.wav: 8 uploads are waiting for their check; try again in ")
    wait_s = int(refused.get_json()["error"].rsplit(" in ", 1)[1].split()[0])
    assert wait_s <= uploads.UNCLAIMED_GRACE_S + 1
    clock[0] += uploads.UNCLAIMED_GRACE_S + 0.1
    assert _store(app, "late", demo_catalogue).status_code == 200  # took the oldest abandoned one's place
    assert uploads.pending_count() == uploads.MAX_UNCLAIMED
    clock[0] += 60.1  # a minute on: every abandoned upload is gone
    assert _store(app, "later", demo_catalogue).status_code == 200
    assert uploads.pending_count() == 1  # every expired upload dropped...
    assert len(list(uploads._private_folder().iterdir())) == 1  # ...and deleted


def test_one_client_cannot_hold_every_place(app, demo_catalogue, clock, empty_store):
    uploads = empty_store
    for _ in range(uploads.MAX_UNCLAIMED_PER_CLIENT):
        assert _store(app, "greedy", demo_catalogue).status_code == 200
    assert _store(app, "greedy", demo_catalogue).status_code == 503
    assert _store(app, "someone-else", demo_catalogue).status_code == 200
    clock[0] += uploads.UNCLAIMED_GRACE_S + 0.1
    assert _store(app, "greedy", demo_catalogue).status_code == 200  # replaces its own oldest
    assert uploads.pending_count() == uploads.MAX_UNCLAIMED_PER_CLIENT + 1


def test_busy_means_tracks_being_analysed(app, demo_catalogue, empty_store):
    """Claimed uploads (checks running or waiting for a core) make the server busy; waiting
    uploads do not count there."""
    import contextlib

    uploads = empty_store
    ids = [_store(app, f"tab{i}", demo_catalogue).get_json()["id"] for i in range(uploads.MAX_ANALYSING)]
    with contextlib.ExitStack() as checks:
        for upload_id in ids:
            checks.enter_context(uploads.claim(upload_id))
        assert uploads.analysing_count() == uploads.MAX_ANALYSING and uploads.pending_count() == 0
        refused = _store(app, "new", demo_catalogue)
        assert refused.status_code == 503
        assert refused.get_json()["error"] == "song.wav: the server is busy analysing 8 tracks; try again in a minute"
    assert uploads.analysing_count() == 0
    assert _store(app, "new", demo_catalogue).status_code == 200


# --- (7) deep JSON, (14) Host header --------------------------------------------------------


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"output": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001])
def test_deeply_nested_callback_json_gets_400(app, body):
    response = app.server.test_client().post("/_dash-update-component", data=body,
                                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_data(as_text=True).startswith("bad callback request")


@pytest.fixture
def host_rules(monkeypatch):
    from tracklens.dashboard import security

    monkeypatch.setitem(security._allowed, "names", set(security._allowed["names"]))
    monkeypatch.setitem(security._allowed, "any_address", False)
    return security


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8050", True), ("localhost:8050", True), ("LOCALHOST", True), ("[::1]:8050", True),
    ("evil.example", False), ("evil.example:8050", False), ("127.0.0.1.evil.example", False),
    ("localhost.", False), ("192.168.1.5:8050", False), ("", False),
])
def test_only_this_servers_host_names_are_answered(app, host_rules, host, allowed):
    """DNS rebinding: a page on evil.example, its name pointed at 127.0.0.1, sends Host: evil.example."""
    response = app.server.test_client().get("/_dash-layout", headers={"Host": host})
    assert response.status_code == (200 if allowed else 421)
    if not allowed:
        assert response.get_data(as_text=True).count("\n") == 1


def test_host_given_with_host_is_answered(app, host_rules):
    client = app.server.test_client()
    host_rules.allow_host("tracks.lan")
    assert client.get("/_dash-layout", headers={"Host": "tracks.lan:8050"}).status_code == 200
    assert client.get("/_dash-layout", headers={"Host": "192.168.1.5:8050"}).status_code == 421
    host_rules.allow_host("0.0.0.0")  # every interface: reached by any address and this machine's name
    assert client.get("/_dash-layout", headers={"Host": "192.168.1.5:8050"}).status_code == 200
    assert client.get("/_dash-layout", headers={"Host": f"{socket.gethostname()}:8050"}).status_code == 200
    assert client.get("/_dash-layout", headers={"Host": "evil.example"}).status_code == 421


# --- (9) long names -------------------------------------------------------------------------


def test_a_long_name_keeps_its_type(app, demo_catalogue, empty_store):
    from tracklens.dashboard.track import MAX_NAME_CHARS, display_name

    name = "a" * 200 + ".wav"
    shown = display_name(name)
    assert len(shown) == MAX_NAME_CHARS and shown.endswith("aaa.wav") and "…" in shown
    response = _store(app, "tab", demo_catalogue, name=name)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == shown
    assert display_name("b" * 300) == "b" * 90 + "…" + "b" * 29  # no extension: cut in the middle too


# --- (11) rich text in figures --------------------------------------------------------------

HOSTILE = ('<b style="font-size:90px">BIG', '<a href="mailto:x@evil.example">mail me</a>', "<br>", "<span style='x'>")


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)
    elif hasattr(node, "tolist"):
        yield from _strings(node.tolist())


def _markup(figure) -> list[str]:
    """Every string of a Plotly figure that Plotly would read as one of the HOSTILE tags."""
    tags = ("<b ", "<a ", "<span", "<b>")
    return [s for s in _strings(figure.to_plotly_json()) if any(t in s for t in tags)]


def test_names_and_cells_reach_plotly_as_plain_text():
    import numpy as np
    import pandas as pd

    from tracklens import figure_style, track_figures

    names = [f"{h} — song {i}" for i, h in enumerate(HOSTILE)]
    track_map = track_figures.track_map(np.arange(8.0).reshape(4, 2), names, (0.5, 0.5), groups=list(HOSTILE),
                                  label=HOSTILE[0] + ".wav")
    charts = pd.DataFrame({"energy": np.linspace(0, 1, 20), "valence": np.linspace(1, 0, 20)})
    profile = track_figures.hit_profile({"energy": 0.4, "valence": 0.3}, charts, label=HOSTILE[1])
    blend = track_figures.blend_bar({HOSTILE[0]: 0.7, "rock": 0.3})
    for figure in (track_map, profile, blend):
        assert _markup(figure) == []
    legend = [trace.name for trace in track_map.data]
    assert legend[0] == figure_style.plotly_text(HOSTILE[0]) == '&lt;b style="font-size:90px"&gt;BIG'
    assert figure_style.plotly_text("Tom & Jerry <3") == "Tom &amp; Jerry &lt;3"


def test_the_check_page_shows_a_hostile_file_name_as_text(app, demo_catalogue, empty_store):
    import plotly.graph_objects as go

    from tracklens.dashboard.pages import check

    name = HOSTILE[0] + ".wav"
    answer = _store(app, "tab", demo_catalogue, name=name).get_json()
    _, results, _, state = check.check_upload({"id": answer["id"], "name": name})
    assert state["ok"]
    figures = []

    def walk(node):
        if isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
        elif hasattr(node, "to_plotly_json"):
            if getattr(node, "figure", None) is not None:
                figures.append(node.figure)
            walk(getattr(node, "children", None))

    walk(results)
    assert len(figures) >= 4
    for figure in figures:
        assert _markup(go.Figure(figure)) == []


# --- (13) SIGTERM, and the real server end to end ------------------------------------------


@pytest.mark.slow
def test_sigterm_removes_the_uploads(demo_catalogue, tmp_path):
    """A served dashboard (the CLI in a child process) holding an unchecked upload: SIGTERM ends it
    and the private upload folder goes with it, as with Ctrl-C. On the way, the real server
    refuses a foreign Host and an oversized Content-Length."""
    from tracklens.tests.dashboard_server import serve_in_subprocess

    temp = tmp_path / "tmp"
    temp.mkdir()
    raw = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0].read_bytes()
    with serve_in_subprocess(data_dir=demo_catalogue, env={"TMPDIR": str(temp)}) as served:
        request = urllib.request.Request(served.url + "/_upload?name=kept.wav", data=raw, method="POST",
                                         headers={"X-Tracklens-Upload": "1"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        folders = list(temp.glob("tracklens-uploads-*"))
        assert len(folders) == 1 and len(list(folders[0].iterdir())) == 1
        port = int(served.url.rsplit(":", 1)[1])
        with _connect(port) as conn:
            conn.sendall(b"GET /_dash-layout HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
            assert _read_answer(conn)[0] == 421
        with _connect(port) as conn:
            conn.sendall(_head("/_upload?name=big.wav", 10**12))
            assert _read_answer(conn, deadline_s=5)[0] == 413
        os.kill(served.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(served.pid, 0)
            except ProcessLookupError:
                break
            if Path(f"/proc/{served.pid}/stat").exists() and \
                    Path(f"/proc/{served.pid}/stat").read_text().split()[2] == "Z":
                break  # exited, not yet reaped
            time.sleep(0.2)
        assert list(temp.glob("tracklens-uploads-*")) == [], Path(served.log_path).read_text()[-2000:]


def test_a_body_cut_off_before_its_length_gets_one_line(app, empty_store):
    """Found by bench/fuzz_upload.py: a Content-Length over the bytes that came got werkzeug's HTML 400 page."""
    response = app.server.test_client().post("/_upload?name=cut.wav", data=b"RIFF" + bytes(100),
                                             headers={"X-Tracklens-Upload": "1"},
                                             environ_overrides={"CONTENT_LENGTH": "5000"})
    assert response.status_code == 400
    assert response.get_json() == {"error": "cut.wav: the upload was cut off before its end; try again"}
    assert empty_store.pending_count() == 0 and list(empty_store._private_folder().iterdir()) == []


def test_uploads_on_disk_stay_within_the_store_budget(app, demo_catalogue, empty_store, monkeypatch):
    """Stored and being-checked uploads share STORE_BUDGET_BYTES of disk: one more gets 503 until
    a check ends and frees its bytes."""
    uploads = empty_store
    clip = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0].stat().st_size
    monkeypatch.setattr(uploads, "STORE_BUDGET_BYTES", int(clip * 2.5))
    first, second = (_store(app, f"tab{i}", demo_catalogue).get_json()["id"] for i in range(2))
    refused = _store(app, "tab3", demo_catalogue)
    assert refused.status_code == 503 and "MB of uploads being checked; try again in a minute" in \
        refused.get_json()["error"]
    with uploads.claim(first):
        assert _store(app, "tab3", demo_catalogue).status_code == 503  # being checked: still on disk
    assert _store(app, "tab3", demo_catalogue).status_code == 200


def test_a_refusal_names_no_memory_address(app, empty_store, monkeypatch):
    """Found by bench/fuzz_upload.py (seed 0, input 2990, a FLAC with two overwritten ranges):
    ffmpeg's reason came with its decoder's address ("[flac @ 0x55fde7886c80] invalid bps: 1")."""
    from tracklens import audio

    def probe(path):
        raise audio.AudioError(f"{path}: not readable as audio: no audio stream found (soundfile: File contains "
                               "data in an unimplemented format; ffmpeg: [flac @ 0x55fde7886c80] invalid bps: 1)")

    monkeypatch.setattr(audio, "probe_audio", probe)
    response = app.server.test_client().post("/_upload?name=seed.flac", data=b"fLaC" + bytes(100),
                                             headers={"X-Tracklens-Upload": "1"})
    assert response.status_code == 422
    assert response.get_json()["error"] == ("seed.flac: not readable as audio: no audio stream found (soundfile: File "
                                            "contains data in an unimplemented format; ffmpeg: invalid bps: 1)")
