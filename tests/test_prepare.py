"""prepare.py: schema validation, every bad input of issue 3, cleaning rules, the report, the CLI."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens import prepare
from tracklens.errors import TracklensError


def _row(**over):
    base = dict(
        artist="Artist", song="Song", duration_ms=200000, explicit=False, year=2010, popularity=60,
        danceability=0.6, energy=0.7, key=5, loudness=-5.0, mode=1, speechiness=0.05,
        acousticness=0.1, instrumentalness=0.0, liveness=0.1, valence=0.5, tempo=120.0, genre="pop",
    )
    base.update(over)
    return base


def _write(tmp_path, rows, name="charts.csv", **kw):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False, **kw)
    return path




# --- schema -----------------------------------------------------------------------------------


@pytest.mark.realdata
def test_chart_columns_match_config_and_real_header(shared_data):
    assert tuple(prepare.CHART_COLUMNS) == config.CHART_COLUMNS
    header = (shared_data / "spotify" / "songs_normalize.csv").read_text(encoding="utf-8").splitlines()[0]
    assert tuple(header.split(",")) == config.CHART_COLUMNS


def test_load_charts_types_the_demo_table(demo_catalogue):
    df = prepare.load_charts(demo_catalogue / "charts.csv")
    assert str(df["popularity"].dtype) == "Int64"
    assert str(df["danceability"].dtype) == "Float64"
    assert str(df["explicit"].dtype) == "boolean"
    assert df["song"].isna().sum() == 1  # load validates; it does not clean


# --- bad input: one clear error naming the file and the problem ----------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(TracklensError, match=r"nope\.csv: file not found"):
        prepare.load_charts(tmp_path / "nope.csv")


@pytest.mark.parametrize("value, kind", [(None, "None"), ({"artist": ["a"]}, "dict"), (np.zeros((2, 18)), "ndarray")])
def test_something_else_than_a_path_or_a_table_is_one_line(value, kind):
    # was TypeError: expected str, bytes or os.PathLike object, not NoneType
    for read in (prepare.prepare_charts, prepare.load_charts):
        with pytest.raises(TracklensError, match=f"expected a chart CSV's path or a pandas DataFrame, got {kind}") as err:
            read(value)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, message", [
    ("", "file is empty"),
    ("\n\n", "file is empty"),
    (",".join(config.CHART_COLUMNS) + "\n", "no data rows"),
])
def test_empty_csv(tmp_path, content, message):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(TracklensError, match=message) as exc:
        prepare.load_charts(path)
    assert str(path) in str(exc.value)


def test_folder_and_binary_file(tmp_path):
    with pytest.raises(TracklensError, match="is a folder"):
        prepare.load_charts(tmp_path)
    binary = tmp_path / "song.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(TracklensError, match="song.csv"):
        prepare.load_charts(binary)


def test_missing_column_is_named(tmp_path):
    path = _write(tmp_path, [_row()])
    df = pd.read_csv(path).drop(columns=["popularity", "tempo"])
    df.to_csv(path, index=False)
    with pytest.raises(TracklensError) as exc:
        prepare.load_charts(path)
    msg = str(exc.value)
    assert str(path) in msg and "'popularity'" in msg and "'tempo'" in msg and "missing" in msg


def test_wrong_columns_entirely(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("name,age\nann,3\n")
    with pytest.raises(TracklensError, match="missing columns 'artist'"):
        prepare.load_charts(path)


def test_semicolon_separated_file_gets_a_hint(tmp_path):
    path = _write(tmp_path, [_row()], sep=";")
    with pytest.raises(TracklensError, match="';'-separated"):
        prepare.load_charts(path)


def test_non_numeric_popularity_names_column_value_and_line(tmp_path):
    path = _write(tmp_path, [_row(), _row(song="B"), _row(song="C", popularity="very high")])
    with pytest.raises(TracklensError) as exc:
        prepare.load_charts(path)
    msg = str(exc.value)
    assert str(path) in msg and "'popularity'" in msg and "'very high'" in msg and "line 4" in msg
    assert "\n" not in msg


def test_fractional_int_and_bad_boolean(tmp_path):
    with pytest.raises(TracklensError, match="'year' should hold whole numbers"):
        prepare.load_charts(_write(tmp_path, [_row(year=2010.5)]))
    with pytest.raises(TracklensError, match="'explicit' should hold True/False.*'maybe'"):
        prepare.load_charts(_write(tmp_path, [_row(explicit="maybe")]))


def test_bad_values_can_be_dropped_instead(tmp_path):
    path = _write(tmp_path, [_row(), _row(song="B", popularity="n/a?"), _row(song="C")])
    clean, report = prepare.prepare_charts(path, bad_values="drop")
    assert list(clean["song"]) == ["Song", "C"]
    assert any("1 row" in line and "wrong type" in line for line in report.lines())


# --- cleaning rules ---------------------------------------------------------------------------


def test_duplicates_keep_the_most_popular(tmp_path):
    rows = [
        _row(artist="A", song="Hit", popularity=40, year=2001),
        _row(artist="A", song="Hit", popularity=40, year=2001),  # exact duplicate
        _row(artist="a ", song="HIT", popularity=75, year=2003),  # same track, re-released
        _row(artist="A", song="Hit (feat. B)", popularity=10),  # a different track
        _row(artist="C", song="Hit", popularity=0),  # same title, other artist
    ]
    clean, report = prepare.prepare_charts(_write(tmp_path, rows))
    assert len(clean) == 3
    hit = clean[clean["song"].str.casefold() == "hit"]
    assert sorted(hit["popularity"]) == [0, 75]
    text = str(report)
    assert "dropped 1 row: exact duplicate" in text
    assert "dropped 1 row: same artist and song as a more popular row" in text


def test_unicode_artist_names_survive_and_deduplicate(tmp_path):
    nfc = "Beyoncé"
    nfd = unicodedata.normalize("NFD", nfc)
    rows = [_row(artist=nfc, popularity=50), _row(artist=nfd, popularity=70),
            _row(artist="Sigur Rós", song="Hoppípolla"), _row(artist="MØ", song="Lean On"),
            _row(artist="周杰伦", song="晴天")]
    src = _write(tmp_path, rows)
    out = tmp_path / "clean.csv"
    prepare.prepare_file(src, out)
    back = pd.read_csv(out)
    assert set(back["artist"]) == {nfc, "Sigur Rós", "MØ", "周杰伦"}
    assert back.loc[back["artist"] == nfc, "popularity"].item() == 70
    assert "晴天" in set(back["song"])


def test_null_strategy_per_column(tmp_path):
    rows = [
        _row(song="A", tempo=100.0, key=2, explicit=None),
        _row(song="B", tempo=None, key=None, genre=None),
        _row(song="C", tempo=140.0, key=2),
        _row(song="D", popularity=None),  # target missing -> dropped
        _row(song=None),  # identity missing -> dropped
        _row(song="E", key=-1),  # Spotify's "no key" -> most frequent key
    ]
    clean, report = prepare.prepare_charts(_write(tmp_path, rows))
    by_song = clean.set_index("song")
    assert list(by_song.index) == ["A", "B", "C", "E"]
    assert by_song.loc["B", "tempo"] == pytest.approx(120.0)  # median of 100, 120 (E), 140
    assert by_song.loc["B", "key"] == 2 and by_song.loc["E", "key"] == 2
    assert by_song.loc["B", "genre"] == "" and not by_song.loc["A", "explicit"]
    assert clean.notna().all().all()
    text = str(report)
    assert "no popularity" in text and "no song title" in text and "missing tempo -> median" in text


def test_ranges_extra_columns_and_dtypes(tmp_path):
    rows = [_row(song="A", popularity=101), _row(song="B", danceability=1.5), _row(song="C")]
    df = pd.DataFrame(rows)
    df.insert(0, "Unnamed: 0", range(3))
    clean, report = prepare.prepare_charts(df)
    assert list(clean["song"]) == ["C"]
    assert list(clean.columns) == list(prepare.CHART_COLUMNS)
    assert clean.dtypes.astype(str).to_dict() == prepare.CHART_COLUMNS
    assert "dropped column 'Unnamed: 0'" in str(report)
    assert "popularity outside [0, 100]" in str(report)


def test_prepare_is_idempotent(demo_catalogue, tmp_path):
    once = tmp_path / "once.csv"
    prepare.prepare_file(demo_catalogue / "charts.csv", once)
    twice, report = prepare.prepare_charts(once)
    pd.testing.assert_frame_equal(twice, prepare.prepare_charts(demo_catalogue / "charts.csv")[0])
    assert report.n_dropped == 0


def test_failed_prepare_keeps_existing_output(tmp_path):
    out = tmp_path / "clean.csv"
    out.write_text("previous result\n")
    bad = _write(tmp_path, [_row(popularity="x")], name="bad.csv")
    with pytest.raises(TracklensError):
        prepare.prepare_file(bad, out)
    assert out.read_text() == "previous result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "clean.csv"]  # no temp files
    with pytest.raises(TracklensError, match="overwrite the input"):
        prepare.prepare_file(bad, bad)


def test_all_empty_genre_is_valid_and_reported(tmp_path, run_cli):
    src = _write(tmp_path, [_row(song=f"S{i}", popularity=10 * i, genre="") for i in range(8)])
    clean, report = prepare.prepare_charts(src)
    assert len(clean) == 8 and (clean["genre"] == "").all() and clean["genre"].dtype == "str"
    assert "genre: no genres known" in str(report)
    code, stdout, stderr = run_cli("prepare", src, "--out", tmp_path / "clean.csv")
    assert code == 0, stderr
    assert "genre: no genres known" in stdout


@pytest.mark.parametrize("column, why", [("artist", "no artist"), ("song", "no song title"),
                                         ("popularity", "no popularity"), ("year", "no year")])
def test_a_column_rows_cannot_live_without_being_all_empty_is_one_line(tmp_path, column, why):
    src = _write(tmp_path, [{**_row(song=f"S{i}", artist=f"A{i}"), column: None} for i in range(3)])
    with pytest.raises(TracklensError) as exc:
        prepare.prepare_charts(src)
    assert str(exc.value).startswith(f"{src}: column {column!r} has no values at all ({why}")
    assert "\n" not in str(exc.value)


# Cells a spreadsheet would run as formulas (OWASP CSV injection). The tab one is trimmed by
# prepare's whitespace rule, which is exactly what made it a live formula before.
FORMULA_CELLS = {
    "artist": ["=cmd|' /C calc'!A0", '=HYPERLINK("http://evil.example","click")', "Plain", "Plain"],
    "song": ["+SUM(1,2)", "@SUM(1+1)", "\t=1+1", "-2+3"],
    "genre": ["=evil, pop", "pop", "@rock", "pop"],
}
FORMULA_CLEANED = {**FORMULA_CELLS, "song": ["+SUM(1,2)", "@SUM(1+1)", "=1+1", "-2+3"]}


def formula_rows():
    return [_row(**{col: values[i] for col, values in FORMULA_CELLS.items()}, popularity=20 * i)
            for i in range(4)]


def test_formula_cells_are_escaped_in_the_cleaned_csv_and_read_back(tmp_path):
    src = _write(tmp_path, formula_rows())
    out = tmp_path / "clean.csv"
    prepare.prepare_file(src, out)
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)  # what a spreadsheet gets
    for col, values in FORMULA_CLEANED.items():
        shown = ["'" + v if v[0] in "=+-@" else v for v in values]
        assert list(raw[col]) == shown, col
    again, report = prepare.prepare_charts(out)  # prepare reads its own output back unchanged
    for col, values in FORMULA_CLEANED.items():
        assert list(again[col]) == values, col
    assert report.n_dropped == 0


# --- CLI --------------------------------------------------------------------------------------


def test_cli_prepare_prints_report(demo_catalogue, tmp_path, run_cli):
    out = tmp_path / "clean.csv"
    code, stdout, stderr = run_cli("prepare", demo_catalogue / "charts.csv", "--out", out)
    assert code == 0, stderr
    assert "exact duplicate" in stdout and f"wrote {out}" in stdout
    assert len(pd.read_csv(out)) == int(stdout.split("kept ")[1].split()[0])


def test_cli_prepare_errors_are_one_line(tmp_path, run_cli):
    bad = _write(tmp_path, [_row(popularity="lots")])
    code, stdout, stderr = run_cli("prepare", bad, "--out", tmp_path / "o.csv")
    assert code == 2
    assert stderr.count("\n") == 1 and "'popularity'" in stderr and str(bad) in stderr
    assert "Traceback" not in stderr


def test_cli_prepare_no_traceback_in_a_real_process(tmp_path):
    missing = tmp_path / "missing.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "tracklens.cli", "prepare", str(missing), "--out", str(tmp_path / "o.csv")],
        capture_output=True, text=True, cwd=config.PACKAGE_DIR, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"tracklens: error: {missing}: file not found"
