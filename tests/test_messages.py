"""Messages that said the wrong thing: a FIFO or a link to /dev/zero called "empty (0 bytes)",
/dev/null called "no such file", and libmpg123's own lines on the terminal."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tracklens import audio


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "charts.csv"
    os.mkfifo(path)
    return path


@pytest.fixture
def zero_link(tmp_path) -> Path:
    path = tmp_path / "zero.csv"
    path.symlink_to("/dev/zero")
    return path


@pytest.mark.parametrize("command", [["prepare"], ["split"]])
def test_a_fifo_is_not_called_empty(command, fifo, tmp_path, run_cli):
    code, _, err = run_cli(*command, fifo, "--out", tmp_path / "out")
    assert code == 2 and err == f"tracklens: error: {fifo}: not a regular file (a named pipe), expected a CSV file\n"


@pytest.mark.parametrize("command", [["prepare"], ["split"]])
def test_a_link_to_dev_zero_is_not_called_empty(command, zero_link, tmp_path, run_cli):
    code, _, err = run_cli(*command, zero_link, "--out", tmp_path / "out")
    assert code == 2 and "not a regular file (a character device)" in err and "empty" not in err


def test_acquire_previews_of_dev_null_is_not_called_missing(run_cli):
    code, _, err = run_cli("acquire", "previews", "/dev/null")
    assert code == 2 and err == "tracklens: error: /dev/null: not a regular file (a character device), expected a tracks CSV\n"


def _damaged_mp3(path: Path) -> Path:
    sr = 22050
    t = np.arange(sr * 3) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format="MP3")
    data = bytearray(path.read_bytes())
    rng = random.Random(1)
    for i in range(2000, len(data), 997):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return path


def _junk_mp3(path: Path) -> Path:
    rng = random.Random(2)
    path.write_bytes(b"ID3" + bytes(rng.randrange(256) for _ in range(5000)))
    return path


def test_libmpg123_lines_never_reach_the_terminal(tmp_path, capfd):
    """`predict` printed a dozen unprefixed libmpg123 lines ("Note: Illegal Audio-MPEG-Header")."""
    for path in (_damaged_mp3(tmp_path / "bad.mp3"), _junk_mp3(tmp_path / "junk.mp3")):
        try:
            audio.probe_audio(path)
            audio.load_audio(path)
        except audio.AudioError:
            pass
    err = capfd.readouterr().err
    assert "Note:" not in err and "libmpg123" not in err and "resync" not in err


def test_other_lines_written_while_decoding_are_kept(capfd):
    with audio.quiet_mpg123():
        os.write(2, b"Note: Trying to resync...\n")
        os.write(2, b"some other library: keep me\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "some other library: keep me\nafter\n"


def test_version_prints_the_package_and_engine_versions(run_cli):
    """`tracklens --version`: which tracklens and which feature engine (what a catalogue or a cached
    table was measured with) in one line, without a command."""
    from importlib.metadata import version

    from tracklens import features

    code, out, err = run_cli("--version")
    assert (code, err) == (0, "")
    assert out == f"tracklens {version('tracklens')} (feature engine version {features.FEATURE_VERSION})\n"
