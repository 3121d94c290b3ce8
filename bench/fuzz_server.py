"""Hostile clients against a served dashboard (`tracklens dashboard` in a child process, loopback):
the scenarios of issue 22, each timed, with the temp folder's peak use.

Run:  .venv/bin/python bench/fuzz_server.py [--data DIR] [--slow 99] [--big 12] [--big-mb 160]

Scenarios (every loop is bounded; raw sockets on 127.0.0.1 only):

- ``slow``: ``--slow`` connections send their headers, then one body byte every 5 s; 1 s later
  a normal request is timed, and the time until the server closed every slow one is measured.
- ``announce``: a request announcing the byte cap + 1000 bytes sends no body: time to its answer.
- ``big``: ``--big`` concurrent uploads of ``--big-mb`` MB (a 24-bit 48 kHz stereo WAV header, then
  zeros: 160 MB is 9.7 minutes) sent at full
  speed; the answers by status and the peak size of the server's temp folder (its own TMPDIR,
  sampled every 0.1 s).
- ``host``: ``Host: evil.example`` and ``Host: 127.0.0.1``; ``deep``: JSON nested 100,000 deep to the
  callback route.
- ``sigterm``: an upload nobody checks, then SIGTERM: whether its private folder is gone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path


def _connect(port: int, timeout: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _status(conn: socket.socket, timeout: float) -> int | None:
    """The status of the answer on ``conn``, or None when none came within ``timeout``."""
    conn.settimeout(timeout)
    try:
        head = conn.recv(4096)
    except (socket.timeout, OSError):
        return None
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None


def _request(port: int, raw: bytes, timeout: float) -> tuple[int | None, float]:
    started = time.monotonic()
    with _connect(port, timeout) as conn:
        conn.sendall(raw)
        return _status(conn, timeout), time.monotonic() - started


def _post_head(path: str, length: int, host: str = "127.0.0.1") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Tracklens-Upload: 1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").encode()


def slow_clients(port: int, n: int, limit_s: float = 60.0) -> dict:
    conns = []
    for _ in range(n):
        conn = _connect(port)
        conn.sendall(_post_head("/_upload?name=slow.wav", 1_000_000))
        conns.append(conn)
    opened = time.monotonic()
    time.sleep(1.0)
    get = b"GET /_dash-layout HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    status, answer_s = _request(port, get, timeout=limit_s)
    closed, next_byte = set(), time.monotonic()
    while len(closed) < n and time.monotonic() - opened < limit_s:
        if time.monotonic() >= next_byte:
            next_byte += 5.0
            for i, conn in enumerate(conns):
                if i not in closed:
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        closed.add(i)
        for i, conn in enumerate(conns):  # a closed connection reads as EOF (or a reset)
            if i not in closed:
                conn.setblocking(False)
                try:
                    if conn.recv(4096) == b"":
                        closed.add(i)
                except BlockingIOError:
                    pass
                except OSError:
                    closed.add(i)
        time.sleep(0.2)
    for conn in conns:
        conn.close()
    return {"normal request": status, "answered after s": round(answer_s, 2),
            "slow ones closed": f"{len(closed)}/{n}", "all closed after s": round(time.monotonic() - opened, 1)
            if len(closed) == n else None}


def announce(port: int, cap: int) -> dict:
    status, seconds = _request(port, _post_head("/_upload?name=big.wav", cap + 1000), timeout=20)
    return {"status": status, "answered after s": round(seconds, 3)}


def _wav_header(n_bytes: int) -> bytes:
    data = n_bytes - 44
    # 24-bit 48 kHz stereo: 160 MB is 9.7 minutes, under the duration limit
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data, b"WAVE", b"fmt ", 16, 1, 2, 48000,
                       48000 * 6, 6, 24, b"data", data - data % 6)


def big_uploads(port: int, n: int, size: int, temp: Path) -> dict:
    statuses, peak = [], [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            total = sum(f.stat().st_size for f in temp.rglob("*") if f.is_file()) if temp.exists() else 0
            total += _deleted_open_temp_bytes()
            peak[0] = max(peak[0], total)
            time.sleep(0.1)

    def one():
        chunk = bytes(1 << 20)
        try:
            with _connect(port, timeout=120) as conn:
                conn.sendall(_post_head("/_upload?name=big.wav", size) + _wav_header(size)[: min(44, size)])
                left = size - 44
                try:
                    while left > 0:
                        sent = conn.send(chunk[: min(left, len(chunk))])
                        left -= sent
                except OSError:
                    pass  # refused early: the answer is waiting
                statuses.append(_status(conn, 120))
        except OSError as exc:
            statuses.append(f"error {exc.errno}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    done.set()
    watcher.join()
    counts = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return {"answers": counts, "seconds": round(time.monotonic() - started, 1),
            "peak temp MB": round(peak[0] / 2**20)}


_server_pid = [0]


def _deleted_open_temp_bytes() -> int:
    """waitress' spool files are unlinked temporary files: count them through the server's open files."""
    total = 0
    fd_dir = Path(f"/proc/{_server_pid[0]}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
                if target.endswith("(deleted)"):
                    total += fd.stat().st_size
            except OSError:
                pass
    except OSError:
        pass
    return total


def host_and_deep(port: int) -> dict:
    out = {}
    for host in ("evil.example", "127.0.0.1"):
        raw = f"GET /_dash-layout HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        out[f"Host: {host}"] = _request(port, raw, timeout=20)[0]
    body = b"[" * 100_000
    raw = (f"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    out["JSON nested 100,000 deep"] = _request(port, raw, timeout=20)[0]
    return out


def sigterm(served, port: int, temp: Path) -> dict:
    wav = _wav_header(44 + 48000 * 6) + bytes(48000 * 6)
    with _connect(port) as conn:
        conn.sendall(_post_head("/_upload?name=kept.wav", len(wav)) + wav)
        status = _status(conn, 30)
    before = len(list(temp.glob("tracklens-uploads-*/*")))
    os.kill(served.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{served.pid}").exists() and \
            Path(f"/proc/{served.pid}/stat").read_text().split()[2] != "Z":
        time.sleep(0.2)
    return {"upload": status, "files before": before, "upload folders after": len(list(temp.glob("tracklens-uploads-*")))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="chart data folder (default: the shared data or the demo)")
    parser.add_argument("--slow", type=int, default=99, help="slow connections (default 99)")
    parser.add_argument("--big", type=int, default=12, help="concurrent big uploads (default 12)")
    parser.add_argument("--big-mb", type=float, default=160, help="size of each big upload in MB (default 160)")
    parser.add_argument("--skip", nargs="*", default=[], help="scenarios to leave out")
    args = parser.parse_args(argv)

    from tracklens.dashboard import data
    from tracklens.tests.dashboard_server import serve_in_subprocess

    temp = Path(tempfile.mkdtemp(prefix="tracklens-bench-tmp-"))
    results = {}
    try:
        with serve_in_subprocess(data_dir=args.data, env={"TMPDIR": str(temp)}) as served:
            _server_pid[0] = served.pid
            port = int(served.url.rsplit(":", 1)[1])
            scenarios = {
                "slow": lambda: slow_clients(port, args.slow),
                "announce": lambda: announce(port, data.MAX_UPLOAD_BYTES),
                "big": lambda: big_uploads(port, args.big, int(args.big_mb * 2**20), temp),
                "host+deep": lambda: host_and_deep(port),
                "sigterm": lambda: sigterm(served, port, temp),
            }
            for name, run in scenarios.items():
                if name in args.skip:
                    continue
                started = time.monotonic()
                results[name] = run()
                print(f"{name:<10} {json.dumps(results[name], ensure_ascii=False)}  ({time.monotonic() - started:.0f} s)",
                      flush=True)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
