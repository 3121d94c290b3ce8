"""tracklens.acquire.folder: manifests of a folder of audio (labels, unreadable and non-regular files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tracklens.acquire.folder import MANIFEST_COLUMNS, folder_manifest, write_manifest
from tracklens.fileio import file_checksum
from tracklens.errors import TracklensError

from test_acquire_spotify import read_rows


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory) -> Path:
    """rock/ and jazz/ sub-folders, GTZAN names at the root, and three unusable .wav files."""
    root = tmp_path_factory.mktemp("audio")
    sr = 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr)).astype(np.float32)
    (root / "rock").mkdir()
    (root / "jazz").mkdir()
    sf.write(root / "rock" / "song one.wav", tone, sr)
    sf.write(root / "jazz" / "jazz.00042.flac", np.stack([tone, tone], axis=1), sr)
    sf.write(root / "blues.00001.wav", tone[:sr], sr)
    good = (root / "rock" / "song one.wav").read_bytes()
    (root / "rock" / "corrupt.wav").write_bytes(good[:20] + bytes(range(256)) * 4)  # header cut into noise
    (root / "rock" / "empty.wav").write_bytes(b"")
    (root / "notes.wav").write_text("these are my notes, not audio\n", encoding="utf-8")
    (root / "README.txt").write_text("ignored", encoding="utf-8")
    (root / ".hidden.wav").write_bytes(b"junk")
    return root


def test_folder_manifest_labels_and_lists_unreadable_files(audio_folder):
    frame = folder_manifest(audio_folder, progress=False)

    assert list(frame.columns) == list(MANIFEST_COLUMNS)
    names = {Path(p).name: row for p, row in zip(frame["path"], frame.to_dict("records"))}
    assert set(names) == {"song one.wav", "jazz.00042.flac", "blues.00001.wav", "corrupt.wav", "empty.wav", "notes.wav"}
    assert names["song one.wav"]["label"] == "rock"
    assert names["jazz.00042.flac"]["label"] == "jazz" and names["jazz.00042.flac"]["channels"] == 2
    assert names["blues.00001.wav"]["label"] == "blues"  # GTZAN-style file name at the root
    assert names["song one.wav"]["duration_s"] == pytest.approx(2.0) and names["song one.wav"]["sample_rate"] == 8000
    assert names["song one.wav"]["checksum"] == file_checksum(audio_folder / "rock" / "song one.wav")
    assert names["empty.wav"]["error"] == "empty file (0 bytes)"
    assert names["corrupt.wav"]["error"]  # the decoder's reason (a noise header: a wild channel count)
    assert "not readable as audio" in names["notes.wav"]["error"]
    assert names["notes.wav"]["label"] == ""
    assert frame.loc[frame["error"] != "", "duration_s"].isna().all()
    assert frame.loc[frame["error"] == "", "duration_s"].notna().all()


def test_folder_manifest_decode_catches_silence(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 8000)
    header_only = folder_manifest(tmp_path, progress=False)
    decoded = folder_manifest(tmp_path, decode=True, progress=False)
    assert header_only["error"].tolist() == [""]
    assert "silent" in decoded["error"].iloc[0]


def test_folder_manifest_lists_non_regular_files_and_never_hangs(tmp_path):
    from tracklens import fileio

    root = tmp_path / "music"
    (root / "x.wav").mkdir(parents=True)  # a folder named like audio; its clip still counts
    sf.write(root / "x.wav" / "inside.wav", np.full(8000, 0.1, dtype=np.float32), 8000)
    os.mkfifo(root / "fifo.wav")  # opening it for reading blocks until a writer comes: never
    (root / "zero.wav").symlink_to("/dev/zero")  # endless bytes: checksumming never ends
    (root / "loop.wav").symlink_to(root / "loop.wav")
    (root / "dangling.wav").symlink_to(root / "gone.wav")
    out = tmp_path / "manifest.csv"
    code = f"from tracklens.acquire.folder import write_manifest; write_manifest({str(root)!r}, {str(out)!r}, progress=False)"
    try:  # in a child process: a regression must fail this test, not hang the suite
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("acquire folder hung on a FIFO or an endless device file")
    assert proc.returncode == 0, proc.stderr
    manifest = fileio.read_csv(out, keep_default_na=False)
    errors = dict(zip(manifest["path"].map(lambda p: Path(p).name), manifest["error"]))
    assert errors == {"x.wav": "not a regular file (a folder)", "inside.wav": "",
                      "fifo.wav": "not a regular file (a FIFO)", "zero.wav": "not a regular file (a device)",
                      "loop.wav": "broken link (a loop of symlinks)",
                      "dangling.wav": "broken link (points to nothing)"}


def test_manifest_escapes_formula_file_names_and_reads_back(tmp_path, monkeypatch):
    from tracklens import fileio

    tone = np.full(8000, 0.1, dtype=np.float32)
    (tmp_path / "=cmd").mkdir()
    for name in ("=cmd.wav", "+x.wav", "@x.wav", "=cmd/-2+3.wav"):
        sf.write(tmp_path / name, tone, 8000)
    monkeypatch.chdir(tmp_path)  # paths are written as found: "=cmd.wav", not "/tmp/.../=cmd.wav"
    write_manifest(".", tmp_path / "manifest.csv", progress=False)

    raw = read_rows(tmp_path / "manifest.csv")
    assert sorted(r["path"] for r in raw) == ["'+x.wav", "'=cmd.wav", "'=cmd/-2+3.wav", "'@x.wav"]
    assert {r["label"] for r in raw} == {"", "'=cmd"}
    back = fileio.read_csv(tmp_path / "manifest.csv", keep_default_na=False)
    assert sorted(back["path"]) == ["+x.wav", "=cmd.wav", "=cmd/-2+3.wav", "@x.wav"]
    assert set(back["label"]) == {"", "=cmd"} and (back["error"] == "").all()


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: p, "no audio files"),
])
def test_folder_errors(tmp_path, make, match):
    with pytest.raises(TracklensError, match=match):
        folder_manifest(make(tmp_path), progress=False)


def test_an_unreadable_folder_is_said_so_not_empty(tmp_path, monkeypatch):
    """`acquire folder` / `features` / `catalogue build` of a chmod-000 folder said "no audio files
    found" (os.walk finds nothing in it)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "song.wav").write_bytes(b"RIFF")
    locked.chmod(0)
    real_access, real_walk = os.access, os.walk  # root lists a mode-000 folder: as a user's listing would, see nothing
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: Path(p) != locked and real_access(p, mode, *a, **k))
    monkeypatch.setattr(os, "walk", lambda root, *a, **k: iter(()) if Path(root) == locked else real_walk(root, *a, **k))
    try:
        with pytest.raises(TracklensError, match=r"locked: cannot read this folder \(permission denied\)"):
            folder_manifest(locked, progress=False)
    finally:
        locked.chmod(0o755)



def test_write_manifest_never_replaces_a_csv_it_did_not_write(audio_folder, tmp_path):
    """`acquire folder music/ --out my.csv` replaced the user's own my.csv; a rerun still replaces its manifest."""
    mine = tmp_path / "my.csv"
    mine.write_text("artist,song\nme,mine\n")
    with pytest.raises(TracklensError, match="my.csv: already there and not a manifest tracklens wrote"):
        write_manifest(audio_folder, mine, progress=False)
    assert mine.read_text() == "artist,song\nme,mine\n"
    out = tmp_path / "manifest.csv"
    for _ in range(2):
        assert len(write_manifest(audio_folder, out, progress=False)) == len(folder_manifest(audio_folder, progress=False))
