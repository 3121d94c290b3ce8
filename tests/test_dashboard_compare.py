"""Comparing an upload with the chart hits (dashboard/compare.py): ranks, units, key distance, neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard_helpers import _check, _demo_clip, _figure


def test_loudness_is_never_ranked_among_spotify_loudness(app, pages, demo_catalogue):
    """An upload's LUFS is not Spotify's loudness: the hit profile ranks no loudness (a normally
    mastered -8.4 LUFS track landed at P7 of the Top Hits' Spotify values)."""
    from tracklens.dashboard import compare, data

    clip = _demo_clip(demo_catalogue)
    _, results, _, _ = _check(app, pages, clip.read_bytes(), clip.name)
    profile = _figure(results, "check-profile")
    assert [tick.split("<br>")[0] for tick in profile.data[0].y] == ["tempo", "acousticness", "energy"]
    upload = compare.Upload(comparable={"tempo": 120.0, "loudness": -8.4, "key": 9, "mode": 0, "duration_ms": 200_000},
                            duration_s=200.0)
    loudness = next(r for r in compare.your_track(upload, data.charts()) if r.feature == "loudness")
    assert loudness.value == "-8.4 LUFS" and loudness.percentile is None and "median" in loudness.note


def test_duration_is_ranked_only_for_a_whole_track(app):
    from tracklens.dashboard import compare, data

    charts = data.charts()
    shortest = charts["duration_ms"].min() / 1000
    row = {"tempo": 120.0, "loudness": -9.0, "key": 0, "mode": 1}

    def duration_row(seconds):
        upload = compare.Upload(comparable={**row, "duration_ms": seconds * 1000}, duration_s=seconds)
        return next(r for r in compare.your_track(upload, charts) if r.feature == "duration_ms")

    assert duration_row(30).percentile is None and "excerpt" in duration_row(30).note
    whole = duration_row(shortest + 60)
    assert whole.percentile is not None and whole.value == compare.minutes(shortest + 60)
    # how it was measured, ranked or not (a whole track's "how" said only "among 1924 hits")
    assert all(r.note.startswith("the decoded audio's length") for r in (whole, duration_row(30)))
    assert f"among {len(charts)} hits" in whole.note and "Spotify" in whole.note
    ref = compare.chart_reference()
    assert "duration_ms" not in ref.columns_for({**row, "duration_ms": 30_000}, whole_track=False)
    assert "duration_ms" in ref.columns_for({**row, "duration_ms": 300_000}, whole_track=True)


def _reference(rows: list[tuple[float, int, int]]):
    from tracklens.dashboard import compare

    table = pd.DataFrame(rows, columns=["tempo", "key", "mode"]).assign(name=[f"t{i}" for i in range(len(rows))],
                                                                        group="")
    return compare.Reference(table=table, continuous=["tempo"], kind="chart", source="test rows")


def test_keys_and_durations_read_as_words():
    from tracklens.dashboard import compare

    assert [compare.key_name(9, 0), compare.key_name(0, 1), compare.key_name(6.0, 1.0)] == \
        ["A minor", "C major", "F# major"]
    assert compare.key_name(-1, -1) == "no key detected"
    assert [compare.minutes(s) for s in (223.3, 30.0, 59.6, 600)] == ["3:43", "0:30", "1:00", "10:00"]
    assert compare.fifths_angle(9, 0) == compare.fifths_angle(0, 1)  # A minor sits on C major


def test_key_distance_follows_the_circle_of_fifths_and_mode_is_a_category():
    """Key 0-11 as a number put C (0) nearer F# (6) than G (7); on the circle of fifths G is C's
    neighbour, A minor (C major's relative) sits with C major, and mode counts as a category."""
    ref = _reference([(100.0, 0, 1), (100.0, 7, 1), (100.0, 6, 1), (100.0, 9, 0), (100.0, 11, 1), (90.0, 0, 1),
                      (110.0, 0, 1)])
    nearest = ref.nearest({"tempo": 100.0, "key": 0, "mode": 1}, ["tempo"], k=7)
    assert list(nearest["name"])[:2] == ["t0", "t1"]  # itself, then G major
    distance = dict(zip(nearest["name"], nearest["distance"]))
    assert distance["t1"] == pytest.approx(2 * np.sin(np.pi / 12))  # neighbours on the circle
    assert distance["t3"] == pytest.approx(1.0)  # A minor: same notes, other mode
    assert distance["t1"] < distance["t4"] < distance["t2"] == pytest.approx(2.0)  # G < B < F#


def test_chart_reference_uses_full_audio_features_when_catalogue_has_them(tmp_path, demo_catalogue):
    from tracklens import features
    from tracklens.dashboard import compare, data

    rng = np.random.default_rng(1)
    rows = pd.DataFrame(rng.normal(size=(12, len(features.SUMMARY_COLUMNS))), columns=list(features.SUMMARY_COLUMNS))
    rows = rows.assign(track_id=[f"t{i}" for i in range(12)], label=["a", "b"] * 6, segment=-1,
                       tempo=120.0, loudness=-9.0, key=1, mode=1, duration_ms=30000)
    root = tmp_path / "cat"
    (root / "audio").mkdir(parents=True)
    (root / "charts.csv").write_text((demo_catalogue / "charts.csv").read_text())
    rows.to_parquet(root / "features.parquet")
    try:
        data.configure(root)
        ref = compare.chart_reference()
        assert ref.kind == "audio" and len(ref.table) == 12 and "loudness" in ref.continuous
        assert set(features.SUMMARY_COLUMNS) <= set(ref.continuous)
        row = rows.iloc[3].to_dict()
        columns = ref.columns_for(row, whole_track=False)
        nearest = ref.nearest(row, columns)
        assert nearest["name"].iloc[0] == "t3" and nearest["distance"].iloc[0] == pytest.approx(0.0, abs=1e-6)
        assert ref.chart_map(columns).coords.shape == (12, 2)
    finally:
        data.configure(demo_catalogue)
