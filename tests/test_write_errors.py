"""`features` when it cannot write (read-only or full disk, a path through a regular file, a
home that is a file): one line naming the path and the cause, never a traceback; finished
work stays cached."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tracklens import config, fileio


def _audio(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(3 * config.SAMPLE_RATE) / config.SAMPLE_RATE
    sf.write(folder / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), config.SAMPLE_RATE)
    return folder


def _refuse_temp_files_in(monkeypatch, folder: Path, code: int) -> None:
    """Make writes into ``folder`` fail as a read-only (EROFS) or full (ENOSPC) disk would."""
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise OSError(code, "simulated", str(Path(dir) / "tmpname"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("code, cause", [(errno.EROFS, "the file system is read-only"),
                                         (errno.ENOSPC, "no space left on the device (the disk is full)")])
def test_an_unwritable_out_is_one_line_and_the_work_stays_cached(tmp_path, run_cli, monkeypatch, code, cause):
    """`OSError: [Errno 30]` / `[Errno 28]` came out as a full traceback."""
    audio = _audio(tmp_path / "audio")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _refuse_temp_files_in(monkeypatch, out_dir, code)
    status, _, err = run_cli("features", audio, "--out", out_dir / "f.parquet", "--cache-dir", tmp_path / "cache")
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("tracklens:")]
    assert lines == [f"tracklens: error: cannot write: {out_dir / 'f.frames.npz'}: {cause}; files finished so far "
                     f"are kept in the cache ({tmp_path / 'cache'}); rerun once it can be written"]
    assert "Traceback" not in err
    assert list((tmp_path / "cache" / "features").rglob("*.npz"))  # the finished file is cached


def test_an_unwritable_cache_says_to_choose_another(tmp_path, run_cli, monkeypatch):
    audio = _audio(tmp_path / "audio")
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    status, _, err = run_cli("features", audio, "--out", tmp_path / "f.parquet", "--cache-dir", tmp_path / "cache")
    assert status == 2 and "Traceback" not in err
    assert (f"tracklens: error: cannot write: {tmp_path / 'cache'} is a file, not a folder (needed for "
            in err) and "choose a writable --cache-dir" in err


def test_an_out_through_a_regular_file_is_one_line(tmp_path, run_cli):
    audio = _audio(tmp_path / "audio")
    (tmp_path / "afile").write_text("x")
    status, _, err = run_cli("features", audio, "--out", tmp_path / "afile" / "f.parquet",
                             "--cache-dir", tmp_path / "cache")
    assert status == 2 and "Traceback" not in err
    assert f"cannot write: {tmp_path / 'afile'} is a file, not a folder" in err


def test_a_home_that_is_a_file_is_one_line(tmp_path, run_cli, monkeypatch):
    """`TRACKLENS_HOME` / `--data-dir` naming a regular file: NotADirectoryError traceback."""
    home = tmp_path / "home"
    home.write_text("x")
    status, _, err = run_cli("--data-dir", home, "features", _audio(tmp_path / "audio"), "--out", tmp_path / "f.parquet")
    assert status == 2 and err.strip() == f"tracklens: error: --data-dir / TRACKLENS_HOME {home}: a file, not a folder"
    monkeypatch.setenv("TRACKLENS_HOME", str(home))
    status, _, err = run_cli("features", _audio(tmp_path / "audio"), "--out", tmp_path / "f.parquet")
    assert status == 2 and "a file, not a folder" in err and "Traceback" not in err


def test_any_os_error_reaching_the_cli_is_one_line(run_cli, monkeypatch):
    from tracklens import cli

    def fail(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", "/somewhere/x.csv")

    monkeypatch.setattr(cli, "_hoist_debug", fail)
    status, _, err = run_cli("prepare")
    assert status == 2 and err == "tracklens: error: /somewhere/x.csv: permission denied\n"


@pytest.mark.parametrize("exc, line", [
    (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "/ro/x: the file system is read-only"),
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on the device (the disk is full)"),
    (OSError(errno.EIO, "Input/output error", "/d/x"), "/d/x: Input/output error"),
])
def test_os_error_lines(exc, line):
    assert fileio.os_error_line(exc) == line


def test_a_failed_atomic_write_names_the_target_not_the_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "t.csv"

    with pytest.raises(OSError) as caught:
        with fileio.atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # and the temp file is gone
