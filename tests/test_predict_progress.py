"""`tracklens predict` shows progress from its first second, model loading included (issue 19.8):
a bar on stderr, drawn before the model loads, that stays off the rows."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracklens.errors import TracklensError

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class _FakeModel:
    name, genres = "fake", ("blues", "rock")


def _fake_predict(monkeypatch, tmp_path, *, bar: bool) -> tuple[list[Path], list[str]]:
    """predict with a model that only records when it was asked for; every file gets an error row."""
    from tracklens import cli
    from tracklens.models import blend

    events: list[str] = []

    def load_model(model, *, table=False):
        print("<model loads now>", file=sys.stderr, flush=True)
        events.append("load")
        return _FakeModel()

    def iter_predictions(paths, *, model):
        for path in paths:
            events.append(f"file {Path(path).name}")
            yield TracklensError(f"{path}: not analysed (a test)")

    monkeypatch.setattr(blend, "load_model", load_model)
    monkeypatch.setattr(blend, "iter_predictions", iter_predictions)
    monkeypatch.setattr(cli, "_show_progress", lambda fmt: bar)
    files = []
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
        files.append(tmp_path / name)
    return files, events


def test_the_bar_says_the_model_is_loading_before_it_loads(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tracklens import cli

    files, events = _fake_predict(monkeypatch, tmp_path, bar=True)
    result = CliRunner().invoke(cli.app, ["predict", *map(str, files)])
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert "loading model default" in err and err.index("loading model default") < err.index("<model loads now>")
    assert "predict (fake)" in err[err.index("<model loads now>"):]
    assert "1/2" in err  # advanced per file (and gone at the end: the rows stay)
    assert events == ["load", "file a.wav", "file b.wav"]
    rows = result.stdout.splitlines()
    assert len(rows) == 2 and all(row.startswith(str(f)) for row, f in zip(rows, files))  # rows untouched


def test_no_bar_when_nobody_watches(monkeypatch, tmp_path):
    """Piped or redirected stderr (scripts, CI logs): the rows only, no bar."""
    from typer.testing import CliRunner

    from tracklens import cli

    files, _ = _fake_predict(monkeypatch, tmp_path, bar=False)
    result = CliRunner().invoke(cli.app, ["predict", *map(str, files), "--format", "csv"])
    assert "loading model" not in result.stderr and "file/s" not in result.stderr
    assert result.stdout.splitlines()[0].startswith("path,top_genre")


def test_who_watches(monkeypatch):
    from tracklens import cli

    def terminals(stdout: bool, stderr: bool):
        monkeypatch.setattr(sys, "stdout", type("Out", (), {"isatty": lambda self: stdout})())
        monkeypatch.setattr(sys, "stderr", type("Err", (), {"isatty": lambda self: stderr})())

    terminals(stdout=False, stderr=True)
    assert cli._show_progress("table") and cli._show_progress("json")
    terminals(stdout=True, stderr=True)
    assert cli._show_progress("table") and cli._show_progress("csv")
    assert not cli._show_progress("json")  # json's "[" has no line of its own
    terminals(stdout=True, stderr=False)
    assert not cli._show_progress("table")


def _in_a_terminal(args: list[str], timeout: float = 300) -> list[tuple[float, str]]:
    """Run ``args`` with stdout and stderr on a pseudo-terminal (100 columns); (seconds, text) read."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    start = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append((time.monotonic() - start, data.decode("utf-8", errors="replace")))
            elif proc.poll() is not None:
                break
    finally:
        proc.kill() if proc.poll() is None else None
        proc.wait()
        os.close(master)
    return chunks


@pytest.mark.slow
def test_predict_in_a_terminal_shows_the_bar_first_and_no_tensorflow_line(tmp_path):
    import numpy as np
    import soundfile as sf

    sr = 22_050
    t = np.arange(sr * 6) / sr
    clip = tmp_path / "tone.wav"
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype("float32"), sr)
    chunks = _in_a_terminal([sys.executable, "-c", "from tracklens.cli import main; main()", "predict", str(clip)])
    text = "".join(c for _, c in chunks)
    assert str(clip) in text, text
    first_at, first = chunks[0]
    assert first.lstrip("\r").startswith("loading model default"), text  # before anything else
    row_at = next(at for at, c in chunks if str(clip) in c)
    assert first_at < row_at
    assert not [w for w in ("oneDNN", "absl", "I0000", "cpu_feature_guard") if w in text], text
