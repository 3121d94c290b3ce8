"""`predict --sort-into`: no file is ever lost or overwritten, also with two sorts at once; a
poor-fit track is never filed under a genre; the counts say what happened.

Blends are built by hand (no model): what is tested is the sorting.
"""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracklens.models import blend, output

GENRES = ["pop", "rock"]


def _blend_of(path: Path, genre: str = "pop", fit: str | None = "ok") -> blend.Blend:
    proba = np.array([0.8, 0.2]) if genre == "pop" else np.array([0.2, 0.8])
    return blend.Blend(path=str(path), genres=GENRES, probabilities=proba, timeline=pd.DataFrame(),
                       duration_s=2.0, model="stub", fit=fit)


def _files(folder: Path, n: int, tag: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"song{i:03d}.wav"
        path.write_bytes(f"{tag}:{i}:".encode() * 50)
        paths.append(path)
    return paths


def _contents(folder: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _sort_in_child(paths, dest, move, barrier, queue):
    barrier.wait()
    outcomes = output.sort_into([_blend_of(p) for p in paths], dest, move=move)
    queue.put([o.action for o in outcomes])


def _sort_at_once(batches: list[list[Path]], dest: Path, *, move: bool) -> list[list[str]]:
    """Run sort_into on each batch in its own process, all starting at the same moment."""
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(len(batches)), context.Queue()
    children = [context.Process(target=_sort_in_child, args=(batch, dest, move, barrier, queue)) for batch in batches]
    for child in children:
        child.start()
    actions = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    return actions


@pytest.mark.parametrize("round_", range(3))
def test_two_sorts_of_same_named_files_at_once_lose_none(tmp_path, round_):
    """Two processes moving 400 files each, same names, different bytes, into one folder: the
    check-then-replace lost ~61 of 400 files in 9 of 10 rounds, both saying "moved"."""
    a = _files(tmp_path / "a", 400, "a")
    b = _files(tmp_path / "b", 400, "b")
    expected = sorted(p.read_bytes() for p in a + b)
    actions = _sort_at_once([a, b], tmp_path / "sorted", move=True)
    assert actions == [["moved"] * 400] * 2
    assert _contents(tmp_path / "sorted") == expected
    assert not any(p.exists() for p in a + b)
    assert not list((tmp_path / "sorted").rglob(".*.part"))  # no temp copies left


def test_two_sorts_of_the_same_400_files_at_once_lose_none(tmp_path):
    """The same 400 sources moved by two processes at once: each file ends in the folder once."""
    songs = _files(tmp_path / "inbox", 400, "x")
    expected = sorted(p.read_bytes() for p in songs)
    actions = _sort_at_once([songs, songs], tmp_path / "sorted", move=True)
    assert _contents(tmp_path / "sorted") == expected
    assert not any(p.exists() for p in songs)
    assert all(a in ("moved", "already there", "skipped") for run in actions for a in run)


def test_two_copies_at_once_lose_nothing_and_keep_the_sources(tmp_path):
    a = _files(tmp_path / "a", 200, "a")
    b = _files(tmp_path / "b", 200, "b")
    expected = sorted(p.read_bytes() for p in a + b)
    _sort_at_once([a, b], tmp_path / "sorted", move=False)
    assert _contents(tmp_path / "sorted") == expected
    assert all(p.exists() for p in a + b)


def test_a_name_taken_between_look_and_write_is_never_replaced(tmp_path, monkeypatch):
    """Another process places a file at the target after the name looked free: it stays."""
    song = _files(tmp_path / "inbox", 1, "mine")[0]
    target = tmp_path / "sorted" / "pop" / song.name
    real_copy = output._verified_copy

    def copy_while_another_process_claims_the_name(src, folder, held):
        copy = real_copy(src, folder, held)
        target.write_bytes(b"theirs")
        return copy

    monkeypatch.setattr(output, "_verified_copy", copy_while_another_process_claims_the_name)
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "sorted")
    assert target.read_bytes() == b"theirs"
    assert outcome.action == "copied" and outcome.target.name == "song000-1.wav"
    assert outcome.target.read_bytes() == song.read_bytes()


def test_a_copy_that_does_not_match_keeps_the_source(tmp_path, monkeypatch):
    """A copy is verified before the source is removed: a bad copy fails, the source stays."""
    song = _files(tmp_path / "inbox", 1, "x")[0]
    before = song.read_bytes()
    monkeypatch.setattr(output, "_same_device", lambda *a: False)  # take the copy path, not a hard link
    monkeypatch.setattr(output.fileio, "file_checksum", lambda path: "0" * 64)
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "sorted", move=True)
    assert outcome.action == "failed" and "does not match" in outcome.note
    assert song.read_bytes() == before
    assert not [p for p in (tmp_path / "sorted").rglob("*") if p.is_file()]


def test_a_poor_fit_is_never_filed_under_a_genre(tmp_path):
    """`--sort-into` filed a spoken podcast under classical/ and techno under hiphop/."""
    podcast, song = _files(tmp_path / "inbox", 2, "x")
    outcomes = output.sort_into([_blend_of(podcast, fit="poor"), _blend_of(song, fit="ok")], tmp_path / "sorted")
    assert outcomes[0].target == tmp_path / "sorted" / output.POOR_FIT_FOLDER / podcast.name
    assert outcomes[0].poor_fit and not outcomes[1].poor_fit
    assert outcomes[1].target == tmp_path / "sorted" / "pop" / song.name


def test_counts_say_what_happened(tmp_path):
    """A rerun printed "copied 19 file(s)" when nothing was copied."""
    songs = _files(tmp_path / "inbox", 3, "x")
    results = [_blend_of(songs[0]), _blend_of(songs[1], fit="poor"), _blend_of(songs[2]), _blend_of(songs[2])]
    first = output.sort_into(results, tmp_path / "sorted")
    assert output.sort_summary(first, "D") == ("sorted into D/<genre>/: 3 copied, 1 skipped; 1 of them in "
                                        "_does-not-fit/ (the ten genres do not describe them)")
    again = output.sort_into(results[:3], tmp_path / "sorted")
    assert [o.action for o in again] == ["already there"] * 3
    assert output.sort_summary(again, "D").startswith("sorted into D/<genre>/: 3 already there")


def test_a_genre_folder_that_is_a_file_gets_a_clear_line(tmp_path):
    """`D/<genre>` a file said "not sorted (File exists)"."""
    song = _files(tmp_path / "inbox", 1, "x")[0]
    (tmp_path / "sorted").mkdir()
    (tmp_path / "sorted" / "pop").write_bytes(b"a file")
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "sorted", move=True)
    assert outcome.action == "failed"
    assert outcome.note == f"{song}: not sorted: {tmp_path / 'sorted' / 'pop'} is a file, not a folder"
    assert song.exists()


def test_a_destination_that_is_a_file_gets_a_clear_line(tmp_path):
    song = _files(tmp_path / "inbox", 1, "x")[0]
    (tmp_path / "dest").write_bytes(b"a file")
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "dest")
    assert outcome.note.endswith(f"{tmp_path / 'dest'} is a file, not a folder")


def test_a_move_whose_original_cannot_be_removed_says_it_was_copied(tmp_path, monkeypatch):
    """`--move` out of a read-only folder placed the file in its genre folder, then said
    "not sorted (Permission denied)" and counted it failed."""
    song = _files(tmp_path / "inbox", 1, "x")[0]
    real = Path.unlink

    def read_only_inbox(self, missing_ok=False):
        if self.parent == song.parent:
            raise PermissionError(13, "Permission denied")
        return real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", read_only_inbox)
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "sorted", move=True)
    target = tmp_path / "sorted" / "pop" / song.name
    assert (outcome.action, outcome.target) == ("copied", target)
    assert outcome.note == (f"{song}: copied to {target}, not moved: the original could not be removed "
                            "(Permission denied); both are kept")
    assert song.exists() and target.read_bytes() == song.read_bytes()


def test_a_file_with_a_long_name_is_sorted(tmp_path):
    """`A 245-character name.wav --sort-into`: "not sorted (File name too long)", from its temp copy's name."""
    song = tmp_path / "inbox" / ("a" * 245 + ".wav")
    song.parent.mkdir()
    song.write_bytes(b"x" * 100)
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "sorted")
    assert outcome.action == "copied" and outcome.target.read_bytes() == song.read_bytes()


def test_sorted_copies_keep_bytes_and_mode(tmp_path):
    song = _files(tmp_path / "inbox", 1, "x")[0]
    song.chmod(0o640)
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "sorted")
    assert outcome.target.read_bytes() == song.read_bytes()
    assert outcome.target.stat().st_mode & 0o777 == 0o640
    assert hashlib.sha256(outcome.target.read_bytes()).hexdigest() == hashlib.sha256(song.read_bytes()).hexdigest()


# --- a folder argument is walked; nothing to do is said before the model loads -----------------------


class _FixedProbabilities:
    def __call__(self, x, training=False):
        return np.tile([0.8, 0.2], (len(x), 1))


def _wav(path: Path) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(2 * 22050) / 22050
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    return path


def test_a_folder_argument_is_walked_for_audio(tmp_path, run_cli, monkeypatch):
    """`predict FOLDER --sort-into ...` failed ("not a regular file") after 24 s of model loading."""
    card = {"name": "stub", "genres": GENRES,
            "input": {"kind": "summary", "window_s": 3.0, "shape": [1], "columns": ["rms_mean"]},
            "calibration": {"temperature": 1.0, "aggregation": "mean_prob"}}
    model = blend.GenreModel(_FixedProbabilities(), card, Path("stub"))
    monkeypatch.setattr(blend, "load_model", lambda *args, **kwargs: model)
    monkeypatch.setattr(blend, "_judge", lambda result, evidence: setattr(result, "fit", "ok"))
    songs = [_wav(tmp_path / "inbox" / "b.wav"), _wav(tmp_path / "inbox" / "sub" / "a.wav")]
    (tmp_path / "inbox" / "notes.txt").write_text("not audio")
    _wav(tmp_path / "inbox" / ".hidden" / "c.wav")
    code, out, err = run_cli("predict", tmp_path / "inbox", "--format", "csv", "--sort-into", tmp_path / "sorted")
    assert code == 0, err
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == [str(songs[0]), str(songs[1])]
    assert sorted(p.name for p in (tmp_path / "sorted" / "pop").iterdir()) == ["a.wav", "b.wav"]
    assert err.strip().splitlines()[-1] == f"sorted into {tmp_path / 'sorted'}/<genre>/: 2 copied"


def test_nothing_to_predict_is_said_before_the_model_loads(tmp_path, run_cli, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(blend, "load_model", never)
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("predict", tmp_path / "empty", tmp_path / "missing.wav")
    assert code == 2
    assert err.startswith(f"tracklens: error: nothing to predict: {tmp_path / 'empty'}: a folder with no audio files")
    assert f"{tmp_path / 'missing.wav'}: no such file" in err


@pytest.mark.parametrize("blocked", ["a file", "read-only"])
def test_a_sort_folder_that_can_hold_nothing_is_refused_before_the_model_loads(tmp_path, run_cli, monkeypatch, blocked):
    """`predict ... --sort-into FILE` (or a folder it cannot write into) analysed the whole batch,
    then said "not sorted" for every file."""
    import os

    monkeypatch.setattr(blend, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("model loaded")))
    song = _wav(tmp_path / "inbox" / "a.wav")
    dest = tmp_path / "dest"
    if blocked == "a file":
        dest.write_bytes(b"the user's file")
        expected = f"tracklens: error: --sort-into {dest / 'new'}: {dest} is a file, not a folder"
        dest = dest / "new"
    else:
        dest.mkdir()
        real = os.access  # root writes anywhere: deny writing where the check asks
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: not (Path(p) == dest and mode & os.W_OK)
                            and real(p, mode, *a, **k))
        expected = f"tracklens: error: --sort-into {dest}: cannot write into {dest} (no permission, or a read-only disk)"
    code, out, err = run_cli("predict", song, "--sort-into", dest)
    assert (code, out, err.strip()) == (2, "", expected)
    if blocked == "a file":
        assert (tmp_path / "dest").read_bytes() == b"the user's file"  # the user's file, untouched
    else:
        assert list((tmp_path / "dest").iterdir()) == []  # nothing written into the refused folder


def test_a_killed_sorts_temp_copy_is_removed_by_the_next(tmp_path):
    song = _files(tmp_path / "inbox", 1, "x")[0]
    folder = tmp_path / "sorted" / "pop"
    folder.mkdir(parents=True)
    left = folder / f".{song.name}.k1ll3d_x.part"
    left.write_bytes(b"half a copy")  # no process holds its lock: its writer is gone
    outcome, = output.sort_into([_blend_of(song)], tmp_path / "sorted")
    assert outcome.action == "copied" and not left.exists()
    assert sorted(p.name for p in folder.iterdir()) == [song.name]
