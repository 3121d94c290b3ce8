"""preprocessing.py: engineered features, bands, the stratified split, the train-only scaler."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens import prepare
from tracklens import preprocessing as pp
from tracklens.errors import TracklensError


@pytest.fixture(scope="module")
def demo_engineered(demo_catalogue):
    clean, _ = prepare.prepare_charts(demo_catalogue / "charts.csv")
    return pp.engineer_features(clean)


# --- features ---------------------------------------------------------------------------------


@pytest.mark.parametrize("title, expected", [
    ("Crazy In Love (feat. Jay-Z)", True),
    ("Rapture (feat.Nadia Ali)", True),
    ("Touch Me (Radio Edit) [feat. Cassandra]", True),
    ("Southern Hospitality (Featuring Pharrell)", True),
    ("Him & I (with Halsey)", True),
    ("Song ft. Someone", True),
    ("Stay With Me", False),
    ("Dance with Me", False),
    ("Featherweight", False),
    ("Left", False),
])
def test_has_feat(title, expected):
    df = pd.DataFrame({"song": [title], "duration_ms": [180000], "year": [2005], "genre": ["pop"], "popularity": [50]})
    assert bool(pp.engineer_features(df)["has_feat"].iloc[0]) is expected


def test_engineered_columns():
    df = pd.DataFrame({
        "song": ["A", "B (feat. C)", None],
        "duration_ms": [180000, 240000, 90000],
        "year": [1999, 2000, 2019],
        "genre": ["hip hop, pop, R&B", "set()", "Dance/Electronic"],
        "popularity": [0, 65, 90],
    })
    out = pp.engineer_features(df)
    assert out["duration_min"].tolist() == [3.0, 4.0, 1.5]
    assert out["decade"].tolist() == [1990, 2000, 2010]
    assert out["has_feat"].tolist() == [False, True, False]
    flags = out.filter(like="genre_")
    assert list(flags.columns) == ["genre_dance_electronic", "genre_hip_hop", "genre_pop", "genre_r_and_b"]
    assert flags.to_numpy().tolist() == [[False, True, True, True], [False] * 4, [True, False, False, False]]
    assert out["n_genres"].tolist() == [3, 0, 1]
    assert out["popularity_band"].astype(str).tolist() == ["zero", "mid", "high"]
    assert "duration_min" not in df.columns  # input untouched


def test_fixed_genre_vocabulary_gives_same_columns():
    df = pd.DataFrame({"song": ["A"], "duration_ms": [1], "year": [2000], "genre": ["rock"], "popularity": [1]})
    out = pp.engineer_features(df, genres=["pop", "rock", "hip hop"])
    assert [c for c in out.columns if c.startswith("genre_")] == ["genre_pop", "genre_rock", "genre_hip_hop"]
    assert out["genre_rock"].item() and not out["genre_pop"].item()


def test_popularity_bands_cut_points():
    assert [pp.popularity_band(v) for v in (0, 1, 59, 60, 71, 72, 100)] == [
        "zero", "low", "low", "mid", "mid", "high", "high"]
    series = pp.popularity_band(pd.Series([5, 80], index=[10, 11]))
    assert list(series.index) == [10, 11] and series.cat.ordered
    for bad in (101, -1, None, "x"):
        with pytest.raises(TracklensError, match="popularity"):
            pp.popularity_band([50, bad])


def test_feature_columns_exclude_targets_and_identifiers(demo_engineered):
    cols = pp.feature_columns(demo_engineered)
    assert {"popularity", "popularity_band", "artist", "song", "genre"}.isdisjoint(cols)
    assert "danceability" in cols and any(c.startswith("genre_") for c in cols)
    assert demo_engineered[cols].select_dtypes(exclude=["number", "bool"]).empty


# --- split ------------------------------------------------------------------------------------


def test_split_is_stratified_complete_and_disjoint(demo_engineered):
    splits = pp.split_by_popularity(demo_engineered, seed=1)
    n = len(demo_engineered)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == n
    assert abs(sizes["train"] - 0.7 * n) <= 4 and abs(sizes["test"] - 0.15 * n) <= 4
    keys = {k: set(zip(v["artist"], v["song"])) for k, v in splits.items()}
    assert not (keys["train"] & keys["test"]) and not (keys["train"] & keys["validate"])
    shares = pp.band_shares(splits)
    for split in pp.SPLIT_NAMES:
        # within one row of the band's share in that split
        assert (shares[split] - shares["whole"]).abs().max() <= 100 / sizes[split] + 0.01


def test_split_depends_on_seed_only(demo_engineered):
    a = pp.split_by_popularity(demo_engineered, seed=3)
    b = pp.split_by_popularity(demo_engineered, seed=3)
    c = pp.split_by_popularity(demo_engineered, seed=4)
    pd.testing.assert_frame_equal(a["test"], b["test"])
    assert not a["test"]["song"].equals(c["test"]["song"])


def test_split_custom_fractions_and_errors(demo_engineered):
    splits = pp.split_by_popularity(demo_engineered, seed=0, fractions=(0.5, 0.25, 0.25))
    assert abs(len(splits["train"]) - len(demo_engineered) / 2) <= 4
    for bad in [(0.7, 0.3), (0.7, 0.3, 0.0), (0.5, 0.5, 0.5)]:
        with pytest.raises(TracklensError, match="fractions"):
            pp.split_by_popularity(demo_engineered, seed=0, fractions=bad)
    with pytest.raises(TracklensError, match="cannot split"):
        pp.split_by_popularity(demo_engineered.head(2), seed=0)


# --- scaler -----------------------------------------------------------------------------------


def test_scaler_standardises_train(demo_engineered):
    splits = pp.split_by_popularity(demo_engineered, seed=0)
    scaler = pp.fit_scaler(splits["train"])
    scaled = pp.apply_scaler(scaler, splits["train"])
    cols = list(pp.SCALED_COLUMNS)
    assert np.allclose(scaled[cols].mean(), 0, atol=1e-9)
    assert np.allclose(scaled[cols].std(ddof=0).where(lambda s: s > 0, 1), 1, atol=1e-9)
    assert scaled["song"].equals(splits["train"]["song"])  # other columns untouched


def test_scaler_does_not_leak_test_rows(demo_engineered):
    splits = pp.split_by_popularity(demo_engineered, seed=0)
    before = pp.fit_scaler(splits["train"])
    # Corrupt every test row wildly: a scaler that saw test rows would change.
    poisoned = dict(splits)
    poisoned["test"] = splits["test"].assign(**{c: 1e6 for c in pp.SCALED_COLUMNS})
    after = pp.fit_scaler(poisoned["train"])
    assert np.array_equal(before.mean_, after.mean_) and np.array_equal(before.scale_, after.scale_)
    # ... and the check is able to fail: fitting on train + test does move the statistics.
    leaky = pp.fit_scaler(pd.concat([poisoned["train"], poisoned["test"]]))
    assert not np.allclose(leaky.mean_, before.mean_)
    # Test rows are transformed with train statistics, not their own.
    test_scaled = pp.apply_scaler(before, splits["test"])
    expected = (splits["test"]["tempo"] - splits["train"]["tempo"].mean()) / splits["train"]["tempo"].std(ddof=0)
    assert np.allclose(test_scaled["tempo"], expected)


def test_scaler_needs_its_columns(demo_engineered):
    with pytest.raises(TracklensError, match="lacks column"):
        pp.fit_scaler(demo_engineered.drop(columns=["tempo"]))


# --- files and CLI ----------------------------------------------------------------------------




def test_cli_demo_prepare_split_chain(tmp_path, run_cli):
    demo = tmp_path / "demo"
    code, out, err = run_cli("demo-data", "--out", demo, "--genres", 2, "--clips", 1,
                             "--seconds", 1, "--chart-rows", 200, "--seed", 5)
    assert code == 0, err
    assert sorted(p.name for p in (demo / "audio").iterdir()) == ["blues", "classical"]
    code, out, err = run_cli("prepare", demo / "charts.csv", "--out", demo / "clean.csv")
    assert code == 0, err
    code, out, err = run_cli("split", demo / "clean.csv", "--out", demo / "splits")
    assert code == 0, err
    parts = {n: pd.read_csv(demo / "splits" / f"{n}.csv") for n in pp.SPLIT_NAMES}
    assert sum(len(p) for p in parts.values()) == len(pd.read_csv(demo / "clean.csv"))
    assert all(list(p.columns) == list(parts["train"].columns) for p in parts.values())
    assert f"train: {len(parts['train'])} rows" in out and "popularity band shares" in out
    assert "note:" not in out  # the input was already clean


def test_cli_split_errors(tmp_path, run_cli):
    code, _, err = run_cli("split", tmp_path / "none.csv", "--out", tmp_path / "s")
    assert code == 2 and err.strip() == f"tracklens: error: {tmp_path / 'none.csv'}: file not found"
    code, _, err = run_cli("split", tmp_path / "none.csv", "--out", tmp_path / "s",
                           "--fractions", "a,b,c")
    assert code == 2 and "--fractions" in err and err.count("\n") == 1
    code, _, err = run_cli("demo-data", "--out", tmp_path, "--genres", 1)
    assert code == 2 and "Traceback" not in err  # Typer's own usage error for a bad range
    assert not (tmp_path / "s").exists()
    emptied = _chart_csv(tmp_path / "all_out_of_range.csv", popularity=101)
    code, _, err = run_cli("split", emptied, "--out", tmp_path / "s")
    assert code == 2 and err.strip() == f"tracklens: error: {emptied}: 0 row(s) left after cleaning; cannot split three ways"


def _chart_csv(path, **columns):
    """A small valid chart CSV: 9 rows spread over the popularity bands, ``columns`` overriding."""
    n = 9
    table = pd.DataFrame({
        "artist": [f"Artist {i}" for i in range(n)], "song": [f"Song {i}" for i in range(n)],
        "duration_ms": 200000, "explicit": False, "year": 2010, "popularity": [0, 10, 30, 50, 60, 65, 70, 80, 90],
        "danceability": 0.6, "energy": 0.7, "key": 5, "loudness": -5.0, "mode": 1, "speechiness": 0.05,
        "acousticness": 0.1, "instrumentalness": 0.0, "liveness": 0.1, "valence": 0.5, "tempo": 120.0,
        "genre": "pop", **columns,
    })
    table.to_csv(path, index=False)
    return path


def test_cli_split_without_any_genre_says_so(tmp_path, run_cli):
    src = _chart_csv(tmp_path / "charts.csv", genre="")
    code, out, err = run_cli("prepare", src, "--out", tmp_path / "clean.csv")
    assert code == 0, err
    code, out, err = run_cli("split", tmp_path / "clean.csv", "--out", tmp_path / "splits")
    assert code == 0, err
    assert "genre: no genres known" in out
    parts = [pd.read_csv(tmp_path / "splits" / f"{n}.csv") for n in pp.SPLIT_NAMES]
    assert sum(map(len, parts)) == 9 and not any(c.startswith("genre_") for c in parts[0].columns)
    assert (parts[0]["n_genres"] == 0).all()


def test_split_files_escape_formula_cells_and_read_back(tmp_path):
    from tracklens import fileio

    formulas = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "@SUM(1+1)", '=HYPERLINK("http://evil.example","x")']
    names = formulas + [f"Song {i}" for i in range(len(formulas), 9)]
    src = _chart_csv(tmp_path / "charts.csv", song=names, artist=["-2+3"] * 9)
    clean = tmp_path / "clean.csv"
    prepare.prepare_file(src, clean)
    result = pp.split_file(clean, tmp_path / "splits")
    assert result.cleaned_rows == 0  # the escaped cleaned file reads back as the same table
    raw = pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in result.paths.values()])
    assert sorted(raw["song"]) == sorted(["'" + f for f in formulas] + names[len(formulas):])
    assert set(raw["artist"]) == {"'-2+3"}
    back = pd.concat([fileio.read_csv(p) for p in result.paths.values()])
    assert sorted(back["song"]) == sorted(names) and set(back["artist"]) == {"-2+3"}


# --- real data --------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_top_hits_prepare_and_split(shared_data, tmp_path):
    src = shared_data / "spotify" / "songs_normalize.csv"
    raw = pd.read_csv(src)
    clean, report = prepare.prepare_charts(src)
    # Known faults of the real table (shared/data/README.md): 59 exact duplicate rows, one empty
    # song, 74 duplicate (artist, song) pairs; the normalised key finds those and a few more.
    assert len(raw) == 2000
    assert report.rows_in == 2000
    dropped = {why: n for n, why in report.dropped_rows if n}
    assert dropped["exact duplicate of an earlier row"] == 59
    assert dropped["no song title: the track cannot be identified"] == 1
    assert 74 <= 59 + dropped["same artist and song as a more popular row"] <= 80
    assert len(clean) == 2000 - sum(dropped.values())
    assert clean.dtypes.astype(str).to_dict() == prepare.CHART_COLUMNS
    assert not clean.duplicated(["artist", "song"]).any() and clean.notna().all().all()
    assert (clean["genre"] == "").sum() == 22

    result = pp.split_file(src, tmp_path, seed=config.DEFAULT_SEED)
    parts = {n: pd.read_csv(tmp_path / f"{n}.csv") for n in pp.SPLIT_NAMES}
    assert sum(len(p) for p in parts.values()) == len(clean)
    for name, frac in zip(pp.SPLIT_NAMES, pp.DEFAULT_FRACTIONS):
        assert abs(len(parts[name]) - frac * len(clean)) <= 4
    assert (parts["train"]["popularity_band"] == "zero").sum() > 50  # the 0s are a band of their own
    whole = pd.concat(parts.values())["popularity_band"].value_counts(normalize=True)
    for name, part in parts.items():
        share = part["popularity_band"].value_counts(normalize=True).reindex(whole.index, fill_value=0)
        assert (share - whole).abs().max() * 100 <= 2.0, name
    assert result.shares.loc["zero", "whole"] == pytest.approx(100 * (clean["popularity"] == 0).mean(), abs=0.01)
    for col in ("popularity", "year", "duration_ms"):
        assert pd.api.types.is_integer_dtype(parts["test"][col])
    assert parts["test"]["explicit"].dtype == bool and parts["test"]["has_feat"].dtype == bool
