"""The demo catalogue: layout, audio format, determinism, genre separability, chart schema."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tracklens import config
from tracklens import demo_data
from tracklens.errors import TracklensError


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layout_and_audio_format(demo_catalogue):
    genres = sorted(p.name for p in (demo_catalogue / "audio").iterdir())
    assert genres == sorted(demo_data.DEMO_GENRES[:6])
    for genre in genres:
        clips = sorted((demo_catalogue / "audio" / genre).glob("*.wav"))
        assert [c.name for c in clips] == [f"{genre}.{i:05d}.wav" for i in range(8)]
    info = sf.info(str(demo_catalogue / "audio" / "metal" / "metal.00003.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (config.SAMPLE_RATE, 1, "PCM_16")
    assert info.frames == 6 * config.SAMPLE_RATE
    assert not list(demo_catalogue.rglob(".*"))  # atomic writes leave no hidden temp files
    assert (demo_catalogue / "charts.csv").stat().st_mode & 0o044 == 0o044  # readable, not 0600


def test_clips_are_audible_and_unclipped(demo_catalogue):
    for path in list((demo_catalogue / "audio").rglob("*.00000.wav")):
        y, _ = sf.read(str(path))
        peak = np.max(np.abs(y))
        assert 0.25 < peak < 0.95, path
        assert np.sqrt(np.mean(y**2)) > 0.01, path


def test_same_seed_same_files_other_seed_differs(tmp_path):
    kw = dict(genres=("rock", "reggae"), clips_per_genre=2, clip_seconds=2.0, chart_rows=60)
    a = demo_data.make_demo_catalogue(tmp_path / "a", seed=3, **kw)
    b = demo_data.make_demo_catalogue(tmp_path / "b", seed=3, **kw)
    c = demo_data.make_demo_catalogue(tmp_path / "c", seed=4, **kw)
    for rel in ("audio/rock/rock.00001.wav", "audio/reggae/reggae.00000.wav", "charts.csv"):
        assert _digest(a.root / rel) == _digest(b.root / rel)
        assert _digest(a.root / rel) != _digest(c.root / rel)


def test_rerun_with_fewer_clips_removes_only_stale_demo_clips(tmp_path):
    kw = dict(clip_seconds=1.0, chart_rows=60)
    demo_data.make_demo_catalogue(tmp_path, genres=("rock", "metal"), clips_per_genre=3, **kw)
    mine = tmp_path / "audio" / "metal" / "my_take.wav"
    mine.write_bytes(b"not ours")
    demo_data.make_demo_catalogue(tmp_path, genres=("rock",), clips_per_genre=2, **kw)
    left = sorted(str(p.relative_to(tmp_path / "audio")) for p in (tmp_path / "audio").rglob("*.wav"))
    assert left == ["metal/my_take.wav", "rock/rock.00000.wav", "rock/rock.00001.wav"]


def test_clip_does_not_depend_on_catalogue_size():
    # A clip is seeded by (seed, genre, index): asking for more clips never changes earlier ones.
    one = demo_data.synthesize_clip("disco", duration_s=1.0, rng=demo_data._clip_rng(5, "disco", 1))
    two = demo_data.synthesize_clip("disco", duration_s=1.0, rng=demo_data._clip_rng(5, "disco", 1))
    other = demo_data.synthesize_clip("disco", duration_s=1.0, rng=demo_data._clip_rng(5, "disco", 2))
    assert np.array_equal(one, two) and not np.array_equal(one, other)


def _cheap_features(y: np.ndarray, sr: int) -> np.ndarray:
    """Band energies + onset-rate proxies: enough to see whether genres are learnable."""
    spec = np.abs(np.fft.rfft(y.reshape(-1, 1024) * np.hanning(1024), axis=1))
    bands = np.array_split(spec, 16, axis=1)
    band_db = np.log10(np.stack([b.mean(axis=1) for b in bands], axis=1) + 1e-6)
    flux = np.maximum(np.diff(spec, axis=0), 0).sum(axis=1)
    return np.concatenate([band_db.mean(0), band_db.std(0), [flux.mean(), flux.std()]])


def test_genres_are_learnable_but_not_trivial(demo_catalogue):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = [], []
    for path in sorted((demo_catalogue / "audio").rglob("*.wav")):
        audio, sr = sf.read(str(path))
        X.append(_cheap_features(audio[: (audio.size // 1024) * 1024], sr))
        y.append(path.parent.name)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    acc = cross_val_score(clf, np.array(X), np.array(y), cv=4).mean()
    assert acc > 2.5 / 6, f"held-out accuracy {acc:.2f} is too close to chance (0.17)"


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(TracklensError, match="unknown demo genre"):
        demo_data.make_demo_catalogue(tmp_path, genres=("polka",))
    with pytest.raises(TracklensError, match="clips_per_genre"):
        demo_data.make_demo_catalogue(tmp_path, clips_per_genre=0)
    with pytest.raises(TracklensError, match="clip_seconds"):
        demo_data.make_demo_catalogue(tmp_path, clip_seconds=0.1)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TracklensError, match="cannot create"):
        demo_data.make_demo_catalogue(blocker / "sub", clips_per_genre=1, clip_seconds=1.0)


# --- chart table ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def charts(demo_catalogue):
    return pd.read_csv(demo_catalogue / "charts.csv")


def test_chart_schema_matches_top_hits(charts):
    assert tuple(charts.columns) == config.CHART_COLUMNS
    assert charts["explicit"].dtype == bool
    for col in ("duration_ms", "year", "popularity", "key", "mode"):
        assert pd.api.types.is_integer_dtype(charts[col]), col
    for col in ("danceability", "energy", "speechiness", "acousticness", "instrumentalness",
                "liveness", "valence"):
        assert charts[col].between(0, 1).all(), col
    assert charts["year"].between(1998, 2020).all()
    assert charts["popularity"].between(0, 100).all()
    assert charts["key"].between(0, 11).all() and set(charts["mode"]) <= {0, 1}
    assert charts["tempo"].between(50, 220).all() and charts["loudness"].lt(0).all()


def test_chart_distributions_are_plausible(charts):
    # Targets from the real table (songs_normalize.csv): medians and spreads, loosely.
    assert 200_000 < charts["duration_ms"].median() < 250_000
    assert 0.6 < charts["danceability"].mean() < 0.75
    assert 0.65 < charts["energy"].mean() < 0.8
    assert -7 < charts["loudness"].median() < -4
    assert 55 < charts["popularity"].median() < 75
    assert 0.02 < (charts["popularity"] == 0).mean() < 0.15
    genres = charts["genre"].str.split(", ").explode()
    assert {"pop", "hip hop", "R&B", "Dance/Electronic", "rock"} <= set(genres)
    assert charts["song"].str.contains(r"\((?:feat\.|with) ", regex=True).mean() > 0.05


def test_chart_has_the_real_tables_faults(charts):
    assert charts.duplicated().sum() >= 1
    assert charts.duplicated(["artist", "song"]).sum() > charts.duplicated().sum()
    assert (charts["genre"] == "set()").sum() >= 1
    assert charts["song"].isna().sum() == 1  # the empty title, read as NaN like the real one
    assert (~charts["artist"].map(str.isascii)).any()  # unicode artist names


def test_chart_csv_escapes_formula_cells(tmp_path, monkeypatch):
    from tracklens import fileio

    table = demo_data.make_chart_table(50, seed=1)
    table.loc[0, "artist"], table.loc[1, "song"] = "=cmd|' /C calc'!A0", "@SUM(1+1)"
    monkeypatch.setattr(demo_data, "make_chart_table", lambda n_rows, seed: table)
    demo_data.make_demo_catalogue(tmp_path, genres=2, clips_per_genre=1, clip_seconds=1.0, chart_rows=50)
    raw = pd.read_csv(tmp_path / "charts.csv", dtype=str, keep_default_na=False)
    assert (raw.loc[0, "artist"], raw.loc[1, "song"]) == ("'=cmd|' /C calc'!A0", "'@SUM(1+1)")
    pd.testing.assert_frame_equal(fileio.read_csv(tmp_path / "charts.csv", keep_default_na=False), table)


def test_popularity_correlations_are_real_but_modest():
    df = demo_data.make_chart_table(2000, seed=11)
    nonzero = df[df["popularity"] > 0]
    r = nonzero[["danceability", "loudness", "popularity"]].corr()["popularity"]
    assert 0.1 < r["danceability"] < 0.5
    assert 0.05 < r["loudness"] < 0.5
    assert abs(nonzero["key"].corr(nonzero["popularity"])) < 0.1  # key is pure noise


def test_chart_table_is_deterministic():
    pd.testing.assert_frame_equal(demo_data.make_chart_table(200, seed=1), demo_data.make_chart_table(200, seed=1))
    assert not demo_data.make_chart_table(200, seed=1).equals(demo_data.make_chart_table(200, seed=2))


def test_example_sources_prefer_real_data_else_build_the_small_demo(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    monkeypatch.setattr(config, "SHARED_DATA_DIR", shared)
    src = demo_data.example_sources(demo_dir=tmp_path / "demo")
    assert src["kind"] == "demo"
    clips = sorted(src["audio"].rglob("*.wav"))
    size = demo_data.NOTEBOOK_DEMO_SIZE
    assert len(clips) == size["genres"] * size["clips_per_genre"] and src["charts"].is_file()

    (shared / "spotify").mkdir(parents=True)
    (shared / "spotify" / "songs_normalize.csv").write_text("artist\n")
    (shared / "gtzan" / "audio").mkdir(parents=True)
    real = demo_data.example_sources(demo_dir=tmp_path / "demo")
    assert real["kind"] == "real" and real["charts"] == shared / "spotify" / "songs_normalize.csv"
