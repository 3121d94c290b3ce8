"""The dashboard served in a child process, for the browser tests and the benchmarks
(``from tracklens.tests.dashboard_server import serve_in_subprocess``; moved out of the app, which
never used it)."""

from __future__ import annotations

import contextlib
import dataclasses
import os

from tracklens.dashboard.app import SERVER_ENV
from tracklens.errors import TracklensError


@dataclasses.dataclass(frozen=True)
class ServedDashboard:
    """A dashboard running in a child process: its base URL, process id and log file."""

    url: str
    pid: int
    log_path: object


@contextlib.contextmanager
def serve_in_subprocess(*, data_dir=None, env: dict | None = None, log_path=None, timeout: float = 180.0):
    """Run `tracklens dashboard` in a child process on a free loopback port (for tests and benchmarks).

    Yields a :class:`ServedDashboard` once ``/_dash-layout`` answers; stops the process on exit.
    Raises TracklensError with the end of the server's log when it exits or does not answer in time.
    """
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request
    from pathlib import Path

    from tracklens import config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tracklens.cli", "dashboard", "--port", str(port)]
    if data_dir is not None:
        command += ["--data", str(data_dir)]
    child_env = {**SERVER_ENV, **os.environ, **(env or {})}
    log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="tracklens-dashboard-", suffix=".log")[1])
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=config.PACKAGE_DIR, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise TracklensError(f"the dashboard exited with status {proc.returncode}:\n"
                                     f"{log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/_dash-layout", timeout=5):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TracklensError(f"the dashboard did not answer within {timeout:.0f} s:\n"
                                     f"{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield ServedDashboard(url=url, pid=proc.pid, log_path=log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
