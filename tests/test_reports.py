"""reports.py writes the figures (atomically) and the model store reads model reports back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import config, explore, model_figures, reports, track_figures
from tracklens.errors import TracklensError
from tracklens.models import popularity, store

SR = config.SAMPLE_RATE


@pytest.fixture(scope="module")
def charts(demo_catalogue):
    from tracklens import prepare

    df, _ = prepare.prepare_charts(demo_catalogue / "charts.csv")
    return df


def _tone(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


# --- save_figure ------------------------------------------------------------------------------


def test_rendered_png_is_not_empty(charts, tmp_path):
    import matplotlib.image

    path = reports.save_figure(explore.corr_heatmap(charts, n_boot=100, backend="matplotlib"), tmp_path / "corr.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_plotly_figures_are_written_as_html_only(tmp_path):
    fig = track_figures.blend_bar({"rock": 0.7, "jazz": 0.3})
    path = reports.save_figure(fig, tmp_path / "blend.html")
    assert "<html>" in path.read_text(encoding="utf-8")[:500] and "jazz" in path.read_text(encoding="utf-8")
    with pytest.raises(TracklensError, match="blend.png"):
        reports.save_figure(fig, tmp_path / "blend.png")


def test_a_figure_that_fails_to_render_keeps_the_old_file(tmp_path):
    class Broken:
        def savefig(self, handle, **kwargs):
            handle.write(b"half a png")
            raise RuntimeError("renderer crashed")

    old = tmp_path / "corr.png"
    old.write_bytes(b"the previous figure")
    with pytest.raises(RuntimeError, match="renderer crashed"):
        reports.save_figure(Broken(), old)
    assert old.read_bytes() == b"the previous figure" and sorted(tmp_path.iterdir()) == [old]


# --- the figures command ----------------------------------------------------------------------


def test_misuse_gives_clear_errors():
    with pytest.raises(TracklensError, match="nothing to draw"):
        reports.write_main_figures("out")
    with pytest.raises(TracklensError, match="not a folder"):
        reports.write_audio_figures("/nonexistent/audio", "out")


def test_default_folder_is_read_when_called(demo_catalogue, tmp_path, monkeypatch):
    """`--data-dir` rebinds config.FIGURES_DIR after import; the default must follow it."""
    seen = {}

    def capture(df, out_dir, *, seed):
        seen["out_dir"] = out_dir
        return [], ""

    monkeypatch.setattr(reports, "write_chart_figures", capture)
    monkeypatch.setattr(config, "FIGURES_DIR", tmp_path / "figures")
    reports.write_main_figures(charts=demo_catalogue / "charts.csv")
    assert seen["out_dir"] == tmp_path / "figures"


@pytest.mark.slow  # decodes and renders audio figures (11 s in make test-fast)
def test_unreadable_clips_are_skipped_or_named(tmp_path):
    import soundfile as sf

    (tmp_path / "rock").mkdir()
    (tmp_path / "rock" / "rock.00000.wav").write_bytes(b"not audio at all")
    with pytest.raises(TracklensError, match="rock.00000.wav"):
        reports.write_audio_figures(tmp_path, tmp_path / "out")
    sf.write(tmp_path / "rock" / "rock.00001.wav", _tone(), SR)  # the next file of the genre is used
    paths = reports.write_audio_figures(tmp_path, tmp_path / "out")
    assert len(paths) == 4 and all(p.is_file() for p in paths)


@pytest.mark.slow  # decodes and analyses one clip per demo genre, renders four figures
def test_write_audio_figures_on_demo_catalogue(demo_catalogue, tmp_path):
    paths = reports.write_audio_figures(demo_catalogue / "audio", tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        ["audio_genre_gallery.png", "audio_overview.png", "audio_hpss.png", "audio_chromagram_spectrogram.png"])
    assert all(p.stat().st_size > 10_000 for p in paths)


@pytest.mark.slow  # ~20 s: renders all nine figures
def test_figures_command_writes_pngs(demo_catalogue, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from tracklens import cli

    monkeypatch.setattr(popularity, "popularity_model", _fast_model)  # 3 folds, 1 repeat: the CLI path, quicker
    result = CliRunner().invoke(cli.app, ["figures", "--charts", str(demo_catalogue / "charts.csv"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "strongest:" in result.output and "baseline (mean)" in result.output
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "charts_corr_pearson.png" in pngs and "charts_popularity_model.png" in pngs and len(pngs) == 9


_real_model = popularity.popularity_model


def _fast_model(df, seed):
    return _real_model(df, seed=seed, n_splits=3, n_repeats=1)


@pytest.mark.realdata
def test_realdata_correlations_use_prepared_charts(shared_data, monkeypatch):
    """The figures command correlates the cleaned table: duplicates and untitled rows dropped."""
    csv = shared_data / "spotify" / "songs_normalize.csv"
    raw = pd.read_csv(csv)
    seen = {}

    def capture(df, out_dir, *, seed):
        seen["df"] = df
        return [], ""

    monkeypatch.setattr(reports, "write_chart_figures", capture)
    reports.write_main_figures("unused", charts=csv)
    df = seen["df"]
    assert len(df) < len(raw) - 59  # at least the 59 exact duplicates are gone
    assert not df.duplicated().any() and not df.duplicated(["artist", "song"]).any()
    d = explore.corr_data(df, n_boot=100)
    assert d.n == len(df)
    cols = [c for c in d.matrix.columns if c not in explore.CATEGORICAL_FEATURES]  # number-number cells: r
    pd.testing.assert_frame_equal(d.matrix.loc[cols, cols], df[cols].astype(float).corr().loc[cols, cols])
    assert not np.allclose(d.matrix.loc[cols, cols], raw[cols].astype(float).corr().loc[cols, cols])


# --- model reports read from a model folder (models.store) ------------------------------------

GENRES = ["blues", "rock"]


@pytest.fixture
def model_dir(tmp_path):
    """A baseline's model folder (card, no weights) with 4 validation tracks."""
    folder = tmp_path / "logreg"
    card = {"name": "logreg", "architecture": "logreg", "genres": GENRES, "input": {}, "data": {}, "split": {},
            "parameters": {}, "metrics": {"accuracy": 0.75}, "calibration": {"temperature": 1.0}}
    store.save_model_dir(folder, card)
    raw = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    result = {"tracks": np.array(["=cmd|' /C calc'!A0.wav", "b.wav", "-c.wav", "d.wav"]),
              "y_true": np.array([0, 1, 1, 1]), "y_score_raw": raw, "y_score": raw * 0.5 + 0.25}
    store.write_predictions(folder / store.PREDICTIONS_NAME, result, GENRES)
    return folder, result


def test_predictions_round_trip_with_formula_like_track_ids(model_dir):
    folder, result = model_dir
    text = (folder / store.PREDICTIONS_NAME).read_text()
    assert "'=cmd" in text and "'-c.wav" in text  # a spreadsheet shows them as text
    back = store.read_predictions(folder / store.PREDICTIONS_NAME, GENRES)
    assert list(back["tracks"]) == list(result["tracks"])
    np.testing.assert_array_equal(back["y_true"], result["y_true"])
    np.testing.assert_allclose(back["y_score_raw"], result["y_score_raw"], atol=1e-6)
    np.testing.assert_allclose(back["y_score"], result["y_score"], atol=1e-6)


def test_model_report_feeds_the_figures(model_dir):
    folder, result = model_dir
    report = store.load_model_report(folder)
    assert report["model"] == "logreg" and report["class_names"] == GENRES and report["metrics"] == {"accuracy": 0.75}
    roc = model_figures.roc_data(report)
    assert set(roc["class"]) == set(GENRES) and roc["auc"].iloc[0] == pytest.approx(1.0)  # blues ranked first


@pytest.mark.parametrize("content, problem", [
    ("track_id,label,raw_blues\na.wav,blues,0.5\n", "lack column"),
    ("track_id,label,raw_blues,raw_rock,cal_blues,cal_rock\na.wav,jazz,0.5,0.5,0.5,0.5\n", "jazz"),
    ("track_id,label,raw_blues,raw_rock,cal_blues,cal_rock\na.wav,blues,high,0.5,0.5,0.5\n", "non-numeric"),
    ("", "unreadable"),
])
def test_broken_predictions_give_one_line_naming_the_file(model_dir, content, problem):
    folder, _ = model_dir
    (folder / store.PREDICTIONS_NAME).write_text(content)
    with pytest.raises(TracklensError, match=problem) as err:
        store.load_model_report(folder)
    assert store.PREDICTIONS_NAME in str(err.value) and "\n" not in str(err.value)


def test_shipped_model_shows_one_ece_in_card_table_and_reliability_diagram():
    """models/default: the card's ECE, the comparison table's and the reliability diagram's title
    (both backends) agree to 3 decimals (they were 0.139 in the card and table, 0.091 in the title)."""
    import re

    from tracklens.models import evaluate

    report = store.load_model_report(config.DEFAULT_MODEL_DIR)
    card_ece = report["metrics"]["valid_track_level"]["ece"]
    table = evaluate.comparison_table([{"name": report["model"], **report}], class_names=report["class_names"])
    titles = [model_figures.reliability_diagram(report, backend="matplotlib").axes[0].get_title(),
              model_figures.reliability_diagram(report).layout.title.text]
    shown = [float(re.search(r"ECE[^=]*=\s*([0-9.]+)", title).group(1)) for title in titles]
    assert [f"{v:.3f}" for v in (table["ece"].item(), *shown)] == [f"{card_ece:.3f}"] * 3, titles
    assert all(f"{evaluate.ECE_BINS} bins" in title for title in titles)


def test_model_without_predictions_is_named(model_dir):
    folder, _ = model_dir
    (folder / store.PREDICTIONS_NAME).unlink()
    with pytest.raises(TracklensError, match="no valid_predictions.csv"):
        store.load_model_report(folder)


# --- the files `tracklens check` writes -----------------------------------------------------------


def test_check_never_replaces_a_file_it_did_not_write(tmp_path, run_cli, monkeypatch):
    """`tracklens check song.wav --out song.html` replaced the user's song.json (and any
    song.html or song.values.csv) without a word; now only an earlier check's own files are
    replaced, and a file in the way is refused in one line before the track is analysed."""
    from test_catalogue import fake_analyse, tone, write

    from tracklens import catalogue

    monkeypatch.setattr(catalogue, "analyse", fake_analyse)
    song = write(tmp_path / "rock" / "song.wav", tone(220))
    mine = {"song.json": b'{"tempo map": [1, 2]}', "notes.html": b"<html>my notes</html>",
            "notes.values.csv": b"name,value\n"}
    for name, raw in mine.items():
        (song.parent / name).write_bytes(raw)
    for out, blocker in ((song.with_suffix(".html"), "song.json"), (song.parent / "notes.html", "notes.html")):
        code, _, err = run_cli("check", song, "--out", out)
        assert code == 2 and f"{song.parent / blocker} is already there" in err and len(err.splitlines()) == 1
    assert {name: (song.parent / name).read_bytes() for name in mine} == mine
    assert not song.with_suffix(".html").exists() and not (song.parent / "song.values.csv").exists()

    report = tmp_path / "out" / "song-check.html"
    for _ in range(2):  # a rerun replaces its own three files
        code, out, err = run_cli("check", song, "--out", report)
        assert code in (0, None), err
    assert sorted(p.name for p in report.parent.iterdir()) == ["song-check.html", "song-check.json",
                                                               "song-check.values.csv"]
    with pytest.raises(TracklensError, match="is already there"):  # the library refuses too
        reports.check_report_paths(song.parent / "notes.htm")


def test_out_with_a_tilde_after_equals_goes_home(tmp_path, run_cli, monkeypatch):
    """`check song.wav --out=~/r.html` (the shell leaves a tilde after `=`) wrote ./~/r.html: a
    folder named `~` in the current one."""
    from test_catalogue import fake_analyse, tone, write

    from tracklens import catalogue

    monkeypatch.setattr(catalogue, "analyse", fake_analyse)
    song = write(tmp_path / "rock" / "song.wav", tone(220))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("check", song, "--out=~/reports/r.html")
    assert code in (0, None), err
    assert (tmp_path / "home" / "reports" / "r.html").is_file() and not (tmp_path / "~").exists()
