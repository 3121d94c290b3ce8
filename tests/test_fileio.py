import pytest

from tracklens import fileio


def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with fileio.atomic_output(target) as handle:
            handle.write("half")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left behind

    with fileio.atomic_output(target) as handle:
        handle.write("new")
    assert target.read_text(encoding="utf-8") == "new"
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_path_keeps_suffix_and_cleans_up(tmp_path):
    target = tmp_path / "sub" / "frames.npz"
    with pytest.raises(ValueError):
        with fileio.atomic_path(target, suffix=".npz") as tmp:
            assert tmp.suffix == ".npz" and tmp.parent == target.parent
            tmp.write_bytes(b"partial")
            raise ValueError("interrupted")
    assert not target.exists() and list(target.parent.iterdir()) == []
    fileio.atomic_write_bytes(target, b"done")
    assert target.read_bytes() == b"done"


def test_a_writer_that_locks_its_own_file_writes_through_an_unlocked_temp_file(tmp_path, monkeypatch):
    """h5py (HDF5, Keras' .weights.h5) flock-s the file it creates: the caller asks for no lock of
    ours (``locked=False``); with one, h5py's open fails. The suffix no longer decides."""
    h5py = pytest.importorskip("h5py")
    monkeypatch.delenv("HDF5_USE_FILE_LOCKING", raising=False)  # HDF5 locks unless told not to
    target = tmp_path / "w.weights.h5"
    with pytest.raises(OSError, match="unable to lock file"):
        with fileio.atomic_path(target, suffix=".weights.h5") as tmp:
            h5py.File(tmp, "w").close()
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with fileio.atomic_path(target, suffix=".weights.h5", locked=False) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle["x"] = [1, 2, 3]
    with h5py.File(target, "r") as handle:
        assert list(handle["x"][:]) == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights.h5"]


FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1+1)", "@SUM(1+1)", '=HYPERLINK("http://x","y")', "\t=1+1", "\r=1",
            "-2+3"]
HARMLESS = ["-5.3", "plain", "'quoted", "a\nb", "", "'=already", "''@twice"]


def test_csv_cells_a_spreadsheet_would_run_are_escaped_and_read_back(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"text": FORMULAS + HARMLESS, "n": range(len(FORMULAS) + len(HARMLESS))})
    path = fileio.write_csv(frame, tmp_path / "out.csv")
    raw = pd.read_csv(path, keep_default_na=False, dtype=str)  # what a spreadsheet would get
    assert list(raw["text"][: len(FORMULAS)]) == ["'" + f for f in FORMULAS]
    assert list(raw["text"][len(FORMULAS):]) == ["-5.3", "plain", "'quoted", "a\nb", "", "''=already", "'''@twice"]
    back = fileio.read_csv(path, keep_default_na=False, dtype={"text": str})
    assert list(back["text"]) == FORMULAS + HARMLESS
    assert list(back["n"]) == list(frame["n"])


@pytest.mark.parametrize("name", ["a" * 250 + ".wav", "é" * 125 + ".wav", "b" * 230 + ".wav"])
def test_a_long_but_legal_name_is_written_and_its_stale_temp_file_found(tmp_path, name):
    """A 249-byte name made a 264-byte temp name (`.<name>.XXXXXXXX.part`): "File name too long",
    so no file of that name could be written atomically or sorted by `predict --sort-into`."""
    import os

    target = tmp_path / name
    assert len(os.fsencode(target.name)) <= fileio.NAME_MAX
    fileio.atomic_write_bytes(target, b"done")
    assert target.read_bytes() == b"done" and [p.name for p in tmp_path.iterdir()] == [name]
    fd, orphan = fileio.locked_temp_file(tmp_path, prefix=fileio.temp_prefix(name), suffix=".part")
    os.close(fd)  # its writer is gone: the lock with it
    assert len(os.fsencode(os.path.basename(orphan))) <= fileio.NAME_MAX
    assert [str(p) for p in fileio.remove_stale_temp_files(target)] == [orphan]
    assert fileio.temp_prefix("a" * 250 + ".wav") != fileio.temp_prefix("a" * 250 + ".mp3")  # cut, still apart


def test_has_csv_header_recognises_what_write_csv_wrote_and_nothing_else(tmp_path):
    import pandas as pd

    ours = fileio.write_csv(pd.DataFrame({"path": ["a.wav"], "reason": ["=bad"]}), tmp_path / "errors.csv")
    assert fileio.has_csv_header(ours, ("path", "reason"))
    assert not fileio.has_csv_header(ours, ("path", "reason", "extra"))
    (tmp_path / "crlf.csv").write_bytes(b"path,reason\r\nx,y\r\n")
    assert fileio.has_csv_header(tmp_path / "crlf.csv", ("path", "reason"))
    (tmp_path / "mine.csv").write_text("path,reason and more\n")
    assert not fileio.has_csv_header(tmp_path / "mine.csv", ("path", "reason"))
    assert not fileio.has_csv_header(tmp_path / "missing.csv", ("path", "reason"))
    assert not fileio.has_csv_header(tmp_path, ("path", "reason"))  # a folder cannot be read as one
