"""`tracklens predict` batches: no file costs the batch, rows stream out as files finish, and
`--sort-into` never loses or overwrites a file.

A stub genre model (fixed probabilities over the real decode + feature path, no TensorFlow)
keeps these fast: what is tested is the batch, the output and the sorting, not the model.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.models import blend, output

SR = config.SAMPLE_RATE
GENRES = ["pop", "rock"]


class _FixedProbabilities:
    """Stands in for a Keras model: every window is 80 % pop, 20 % rock."""

    def __call__(self, x, training=False):
        return np.tile([0.8, 0.2], (len(x), 1))


@pytest.fixture
def stub_model(monkeypatch) -> blend.GenreModel:
    card = {"name": "stub", "genres": GENRES,
            "input": {"kind": "summary", "window_s": 3.0, "shape": [1], "columns": ["rms_mean"]},
            "calibration": {"temperature": 1.0, "aggregation": "mean_prob"}}
    model = blend.GenreModel(_FixedProbabilities(), card, Path("stub"))
    monkeypatch.setattr(blend, "load_model", lambda *args, **kwargs: model)
    return model


def _wav(path: Path, seconds: float = 2.0, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, subtype="PCM_16")
    return path


def _blend_of(path: Path, genre: str = "pop") -> blend.Blend:
    proba = np.array([0.8, 0.2]) if genre == "pop" else np.array([0.2, 0.8])
    return blend.Blend(path=str(path), genres=GENRES, probabilities=proba, timeline=pd.DataFrame(),
                       duration_s=2.0, model="stub")


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False)


# --- one file never costs the batch -----------------------------------------------------------------


def test_any_failure_on_one_file_is_that_files_error(stub_model, tmp_path, monkeypatch):
    """MemoryError (a decoder asked for a 137 GB block) stopped the whole batch: only OSError,
    ValueError and RuntimeError were caught."""
    good = [_wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav")]
    real = blend.predict_blend
    failures = {"oom.wav": MemoryError(), "odd.wav": ZeroDivisionError("division by zero\nmore")}

    def predict(model, path, **kwargs):
        if Path(path).name in failures:
            raise failures[Path(path).name]
        return real(model, path, **kwargs)

    monkeypatch.setattr(blend, "predict_blend", predict)
    paths = [good[0], tmp_path / "oom.wav", tmp_path / "odd.wav", good[1]]
    results = blend.predict_files(paths, model=stub_model)
    assert [type(r) for r in results] == [blend.Blend, TracklensError, TracklensError, blend.Blend]
    assert str(results[1]) == f"{paths[1]}: not analysed: it needs more memory than is free"
    assert str(results[2]) == f"{paths[2]}: not analysed (ZeroDivisionError: division by zero)"


def test_predict_csv_keeps_every_row_when_files_are_bad(stub_model, tmp_path, run_cli, monkeypatch):
    """The tester's batch: good.wav, a WAV claiming 65535 channels (ffprobe versions that accept
    it made the old decoder raise MemoryError: no CSV at all), good.mp3; plus a FIFO and a
    folder named like audio."""
    from tracklens import audio

    good_wav = _wav(tmp_path / "good.wav")
    good_mp3 = tmp_path / "good.mp3"
    sf.write(good_mp3, sf.read(good_wav, dtype="float32")[0], SR, format="MP3")
    data = bytearray(good_wav.read_bytes())
    data[data.find(b"fmt ") + 10: data.find(b"fmt ") + 12] = struct.pack("<H", 65535)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(bytes(data))
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    (tmp_path / "folder.wav").mkdir()
    real = audio._ffprobe

    def ffprobe_accepting_65535(path, *, why, name=None):
        return {"duration_s": 2.0, "sample_rate": SR, "channels": 65535} if Path(path) == bad else real(path, why=why, name=name)

    monkeypatch.setattr(audio, "_ffprobe", ffprobe_accepting_65535)
    files = [good_wav, bad, good_mp3, fifo, tmp_path / "folder.wav"]
    code, out, err = run_cli("predict", *files, "--format", "csv")
    assert code == 1
    table = _csv(out)
    assert list(table.columns) == ["path", "top_genre", *GENRES, "fit"]
    assert list(table["path"]) == list(map(str, files))
    assert list(table["top_genre"]) == ["pop", "error", "pop", "error", "error"]
    assert list(table["fit"].iloc[[1, 3, 4]]) == ["", "", ""]  # no fit judged for a file that failed
    assert f"{bad}: unsupported channel count 65535" in err
    assert f"{fifo}: not a regular file (a named pipe)" in err
    assert f"{tmp_path / 'folder.wav'}: a folder with no audio files (" in err


def _unreadable(path: Path, monkeypatch) -> Path:
    """``path`` with its read permission gone, for root too (root reads a mode-000 file, and
    os.access says so: both click's check and tracklens' own ask os.access)."""
    path.chmod(0)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == path else real(p, mode, *a, **k))
    return path


def test_an_unreadable_file_is_its_own_row_and_the_batch_goes_on(stub_model, tmp_path, run_cli, monkeypatch):
    """click's readable check refused the whole command (exit 2, `Invalid value for 'paths':
    path 'locked.wav' is not readable`, no row at all) for one chmod-000 file in a batch."""
    files = [_wav(tmp_path / "a.wav"), _unreadable(_wav(tmp_path / "locked.wav"), monkeypatch), _wav(tmp_path / "b.wav")]
    code, out, err = run_cli("predict", *files, "--format", "csv")
    assert code == 1, err
    assert list(_csv(out)["top_genre"]) == ["pop", "error", "pop"]
    assert err.strip() == f"tracklens: {files[1]}: cannot read (permission denied)"


def test_a_newline_or_escape_in_a_file_name_stays_on_its_one_line(stub_model, tmp_path, run_cli):
    """A name with a newline split its table row and its stderr line in two; an escape sequence
    in a name reached a terminal raw. Shown escaped in the table and on stderr; CSV keeps the
    name as it is (quoted)."""
    from tracklens.errors import one_line

    good = _wav(tmp_path / "new\nline.wav")
    missing = tmp_path / "gone\nnow.wav"
    code, out, err = run_cli("predict", good, missing)
    assert code == 1 and len(out.splitlines()) == 2
    assert out.splitlines()[0].startswith(f"{tmp_path}/new\\nline.wav  ")
    assert out.splitlines()[1].endswith(f"ERROR  {tmp_path}/gone\\nnow.wav: no such file")
    code, out, err = run_cli("predict", good, missing, "--format", "csv")
    assert err.splitlines() == [f"tracklens: {tmp_path}/gone\\nnow.wav: no such file"]
    assert list(_csv(out)["path"]) == [str(good), str(missing)]
    assert one_line("a\x1b[2J\tb\x85é—.wav") == "a\\x1b[2J\\tb\\x85é—.wav"


def test_a_file_name_that_is_not_utf8_is_its_error_row(stub_model, tmp_path, run_cli):
    """`predict --format csv` stopped with a pyarrow UnicodeEncodeError traceback at a Latin-1
    name (`caf\\xe9.wav`); now that file is an error row named as `caf\\xe9.wav`, the rest goes on."""
    from tracklens.audio import NAME_NOT_UTF8

    latin = _wav(tmp_path / "cafe.wav").rename(tmp_path / os.fsdecode(b"caf\xe9.wav"))  # soundfile cannot name it
    code, out, err = run_cli("predict", latin, _wav(tmp_path / "b.wav"), "--format", "csv")
    assert code == 1
    table = _csv(out)
    assert list(table["path"]) == [f"{tmp_path}/caf\\xe9.wav", str(tmp_path / "b.wav")]
    assert list(table["top_genre"]) == ["error", "pop"]
    assert err == f"tracklens: {tmp_path}/caf\\xe9.wav: {NAME_NOT_UTF8}\n"


def test_an_unreadable_folder_is_said_so_not_empty(stub_model, tmp_path, run_cli, monkeypatch):
    """A chmod-000 folder among the inputs read "a folder with no audio files" (walking it finds nothing)."""
    locked = tmp_path / "locked"
    _wav(locked / "song.wav")
    locked.chmod(0)
    real = os.access  # root reads a mode-000 folder: deny it for root too, and walk nothing in it
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: Path(p) != locked and real(p, mode, *a, **k))
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: iter(()))
    try:
        code, out, err = run_cli("predict", locked, _wav(tmp_path / "b.wav"), "--format", "csv")
    finally:
        locked.chmod(0o755)
    assert code == 1 and list(_csv(out)["top_genre"]) == ["error", "pop"]
    assert err == f"tracklens: {locked}: cannot read this folder (permission denied)\n"


# --- rows stream out as each file finishes ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "table", "json"])
def test_rows_already_finished_survive_a_stopped_batch(stub_model, tmp_path, run_cli, monkeypatch, fmt):
    """A batch stopped at file 3 keeps the rows of files 1 and 2 (all text used to be rendered
    at the end: a killed run left 0 bytes)."""
    files = [_wav(tmp_path / f"{i}.wav") for i in range(4)]
    real = blend.predict_blend

    def interrupted_at_the_third(model, path, **kwargs):
        if Path(path) == files[2]:
            raise KeyboardInterrupt
        return real(model, path, **kwargs)

    monkeypatch.setattr(blend, "predict_blend", interrupted_at_the_third)
    code, out, _ = run_cli("predict", *files, "--format", fmt)
    assert code != 0
    if fmt == "csv":
        assert list(_csv(out)["path"]) == [str(files[0]), str(files[1])]
    elif fmt == "table":
        assert [line.split()[0] for line in out.splitlines()] == [str(files[0]), str(files[1])]
    else:  # a stopped JSON list still holds each finished item whole
        assert out.startswith("[\n") and out.count('"path"') == 2 and str(files[1]) in out


def test_streamed_output_is_the_same_text_as_one_render(tmp_path):
    names = ["a.wav", "=cmd|' /C calc'!A0.wav", "b.wav"]
    results = [_blend_of(Path(names[0])), TracklensError("=cmd: broken"), _blend_of(Path(names[2]), "rock")]
    as_json = output.format_results(names, results, GENRES, fmt="json")
    assert json.loads(as_json) == [json.loads(json.dumps(item)) for item in
                                   [output._json_item(n, r) for n, r in zip(names, results)]]
    assert as_json == json.dumps([output._json_item(n, r) for n, r in zip(names, results)], indent=1)
    as_csv = output.format_results(names, results, GENRES, fmt="csv")
    table = _csv(as_csv)
    # formula-like cells are escaped in every streamed row, the path column too
    assert list(table["path"]) == ["a.wav", "'=cmd|' /C calc'!A0.wav", "b.wav"]
    assert list(table["top_genre"]) == ["pop", "error", "rock"] and table.loc[1, "pop"] == ""


# --- --sort-into never loses or overwrites a file ---------------------------------------------------


def test_sorting_a_file_already_in_its_place_keeps_it(stub_model, tmp_path, run_cli, monkeypatch):
    """`predict s/pop/good.wav --sort-into s --move` judged the file "identical" to itself and
    deleted the only copy."""
    # a fitting track (a sine tone's own verdict, "poor", would file it under _does-not-fit/)
    monkeypatch.setattr(blend, "_judge", lambda result, evidence: setattr(result, "fit", "ok"))
    song = _wav(tmp_path / "s" / "pop" / "good.wav")
    before = song.read_bytes()
    code, _, err = run_cli("predict", song, "--sort-into", tmp_path / "s", "--move")
    assert code == 0, err
    assert song.read_bytes() == before
    assert "already in" in err and "left where it is" in err


def test_the_same_file_twice_with_move_is_sorted_once(tmp_path):
    song = _wav(tmp_path / "inbox" / "song.wav")
    before = song.read_bytes()
    outcomes = output.sort_into([_blend_of(song), _blend_of(song)], tmp_path / "sorted", move=True)
    assert [o.action for o in outcomes] == ["moved", "skipped"]
    assert "given more than once" in outcomes[1].note
    assert not song.exists() and (tmp_path / "sorted" / "pop" / "song.wav").read_bytes() == before


def test_a_planted_symlink_never_redirects_the_copy(tmp_path):
    song = _wav(tmp_path / "inbox" / "song.wav")
    victim = tmp_path / "precious.txt"
    victim.write_bytes(b"do not overwrite")
    (tmp_path / "sorted" / "pop").mkdir(parents=True)
    (tmp_path / "sorted" / "pop" / ".song.wav.part").symlink_to(victim)
    outcomes = output.sort_into([_blend_of(song)], tmp_path / "sorted")
    assert victim.read_bytes() == b"do not overwrite"
    assert outcomes[0].action == "copied" and outcomes[0].target.read_bytes() == song.read_bytes()


def test_an_existing_file_is_never_overwritten(tmp_path):
    song = _wav(tmp_path / "inbox" / "song.wav", freq=440.0)
    other = _wav(tmp_path / "sorted" / "pop" / "song.wav", freq=220.0)
    other_bytes = other.read_bytes()
    identical = _wav(tmp_path / "inbox2" / "same.wav")
    shutil.copyfile(identical, tmp_path / "sorted" / "pop" / "same.wav")
    outcomes = output.sort_into([_blend_of(song), _blend_of(identical)], tmp_path / "sorted")
    assert other.read_bytes() == other_bytes
    assert outcomes[0].target.name == "song-1.wav" and outcomes[0].target.read_bytes() == song.read_bytes()
    assert outcomes[1].target.name == "same.wav" and sorted(p.name for p in other.parent.iterdir()) == [
        "same.wav", "song-1.wav", "song.wav"]
