"""A local run's table, frames and errors file are one unit: a run killed (or stopped by a full
disk) between two writes never leaves a table that reads with another run's frames, and the temp
files a killed run leaves are removed by the next run."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracklens import batch, fileio
from tracklens.errors import TracklensError


def _size_rows(path: str, params: dict) -> batch.FileResult:
    n = len(Path(path).read_bytes())
    rows = [{"segment": -1, "start_s": 0.0, "end_s": float(n), "size": n},
            {"segment": 0, "start_s": 0.0, "end_s": 1.0, "size": n}]
    return batch.FileResult(rows=rows, frames={"grid": np.full((1, 2, 4), n % 11, np.float32)})


TASK = batch.Task(name="sizes", run_file=_size_rows, params={}, version=1,
                  columns=(*batch.ID_COLUMNS, "segment", "start_s", "end_s", "size"),
                  dtypes={"segment": "int64", "size": "int64"}, frames={"grid": (2, 4)}, frames_meta={})


def _sources(folder: Path, sizes) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(sizes):
        (folder / f"f{i}.wav").write_bytes(bytes(n))
        paths.append(str(folder / f"f{i}.wav"))
    return pd.DataFrame({"path": paths, "label": ["a"] * len(paths)})


def _run(sources, out, tmp_path):
    return batch.run(TASK, sources, out=out, cache_dir=tmp_path / "cache", progress=False)


def test_a_finished_run_is_one_unit(tmp_path):
    out = tmp_path / "t.parquet"
    _run(_sources(tmp_path / "a", [10, 20]), out, tmp_path)
    batch.check_unit(out, checksums=True)
    assert batch.table_run_id(out) and batch.load_frames(out)["grid"].shape == (2, 2, 4)
    assert pd.read_parquet(out)["size"].tolist() == [10, 10, 20, 20]  # the table reads as before


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()])
def test_a_run_stopped_after_the_frames_never_pairs_them_with_the_old_table(tmp_path, monkeypatch, failure):
    """A SIGKILL (or a full disk) during the final writes left the new table beside the previous
    run's frames; both read fine and nothing flagged the mismatch."""
    out = tmp_path / "t.parquet"
    _run(_sources(tmp_path / "a", [10, 20]), out, tmp_path)

    def stop(*args, **kwargs):
        raise failure

    monkeypatch.setattr(batch, "_write_table", stop)  # the frames of run 2 are written, its table is not
    with pytest.raises(type(failure)):
        _run(_sources(tmp_path / "b", [30, 40, 50]), out, tmp_path)
    monkeypatch.undo()
    with pytest.raises(TracklensError, match="from another run"):
        batch.load_frames(out)
    with pytest.raises(TracklensError, match="from another run"):
        batch.check_unit(out)
    _run(_sources(tmp_path / "b", [30, 40, 50]), out, tmp_path)  # the rerun mends it
    assert len(batch.load_frames(out)["track_id"]) == 3


def test_a_run_stopped_before_its_manifest_reads_as_unfinished(tmp_path, monkeypatch):
    out = tmp_path / "t.parquet"
    _run(_sources(tmp_path / "a", [10]), out, tmp_path)
    real = fileio.atomic_write_bytes

    def full_disk_on_the_manifest(path, data):
        if str(path).endswith(".manifest.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(batch, "atomic_write_bytes", full_disk_on_the_manifest)
    with pytest.raises(OSError):
        _run(_sources(tmp_path / "b", [30, 40]), out, tmp_path)
    with pytest.raises(TracklensError, match="from another run"):
        batch.check_unit(out)


def test_a_changed_side_file_fails_the_checksum_check(tmp_path):
    out = tmp_path / "t.parquet"
    _run(_sources(tmp_path / "a", [10]), out, tmp_path)
    batch.errors_path(out).write_text("path,reason\nx,y\n")
    batch.check_unit(out)  # ids still agree
    with pytest.raises(TracklensError, match="SHA-256 differs"):
        batch.check_unit(out, checksums=True)


def test_tables_written_before_run_ids_read_as_before(tmp_path):
    out = tmp_path / "old.parquet"
    pd.DataFrame({"track_id": ["x"], "segment": [-1]}).to_parquet(out, index=False)
    assert batch.table_run_id(out) is None
    batch.check_unit(out)


def _killed_while_writing_errors(sources, out, cache):
    """A child run that is SIGKILLed half-way through writing its errors file."""
    def write_and_die(frame, path, **kwargs):
        with fileio.atomic_output(path, "w") as handle:
            handle.write("path,reason\n")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    batch.write_csv = write_and_die
    batch.run(TASK, sources, out=out, cache_dir=cache, progress=False)


def test_temp_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    """Each kill left a hidden `.OUT.errors.csv.*.part` that reruns never removed."""
    out = tmp_path / "t.parquet"
    sources = _sources(tmp_path / "a", [10, 20])
    child = multiprocessing.get_context("fork").Process(target=_killed_while_writing_errors,
                                                        args=(sources, out, tmp_path / "cache"))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    left = list(tmp_path.glob(".t.errors.csv.*.part"))
    assert len(left) == 1
    _run(sources, out, tmp_path)
    assert not list(tmp_path.glob(".t.*")), "a killed run's temp files are cleaned by the next run"
    batch.check_unit(out, checksums=True)


def test_a_temp_file_still_being_written_is_left_alone(tmp_path):
    target = tmp_path / "x.csv"
    with fileio.atomic_path(target) as tmp:
        tmp.write_text("half")
        assert fileio.remove_stale_temp_files(target) == []  # its writer holds the lock
        assert tmp.exists()
    assert target.read_text() == "half"
    orphan = tmp_path / ".x.csv.abcd1234.part"
    orphan.write_text("left by a killed process")
    assert fileio.remove_stale_temp_files(target) == [orphan] and not orphan.exists()
