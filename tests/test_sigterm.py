"""SIGTERM stops the CLI as Ctrl-C does: temp files removed, finished work kept, one last line
(the default action killed the process where it stood and left its temp files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CHILD = textwrap.dedent("""\
    import sys, time
    from tracklens import batch, cli

    def slow_table(table, target, run_id=None):
        with batch.atomic_path(target, suffix=".parquet") as tmp:
            tmp.write_bytes(b"half a table")
            time.sleep(120)

    batch._write_table = slow_table
    sys.argv = ["tracklens", *sys.argv[1:]]
    cli.main()
""")


@pytest.mark.slow  # a child process that imports the feature engine (~10 s idle, more on a busy machine)
def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(2 * 22050) / 22050
    for i in range(2):
        sf.write(audio / f"a{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32), 22050)
    out, cache = tmp_path / "out" / "f.parquet", tmp_path / "cache"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, "features", str(audio), "--out", str(out), "--segment", "0",
                              "--cache-dir", str(cache)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    deadline = time.monotonic() + 240
    while not list(out.parent.glob(".f.parquet.*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(out.parent.glob(".f.parquet.*")), "the child never began writing its table"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err[-2000:]
    assert err.rstrip().endswith("tracklens: terminated; work already written is kept."), err[-2000:]
    assert not list(out.parent.glob(".f.parquet.*"))  # the temp file went with the unwinding
    assert not out.exists() and len(list(cache.rglob("*.npz"))) == 2  # finished files stay cached
