"""Figures a data scientist can reuse: columns named in words with units from one label map
(duration drawn as m:ss), gallery waveforms on one amplitude scale, the hit profile drawing a
measured value as a point and an estimate as a range with a legend for the hits' bands, and a
mistyped column named instead of silently left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import explore, figure_style, track_figures
from tracklens.errors import TracklensError


@pytest.fixture(scope="module")
def charts():
    rng = np.random.default_rng(2)
    n = 300
    return pd.DataFrame({
        "artist": [f"a{i % 60}" for i in range(n)], "song": [f"s{i}" for i in range(n)],
        "duration_ms": rng.normal(210_000, 30_000, n), "tempo": rng.normal(120, 25, n),
        "energy": rng.uniform(0, 1, n), "acousticness": rng.uniform(0, 1, n), "loudness": rng.normal(-6, 2, n),
        "year": rng.integers(1998, 2021, n), "popularity": rng.integers(0, 90, n), "genre": "pop",
    })


def test_one_label_map_names_every_column_in_words_and_units():
    assert figure_style.feature_label("duration_ms") == "duration (m:ss)"
    assert figure_style.feature_label("tempo") == "tempo (BPM)" and figure_style.feature_label("energy") == "energy (0–1)"
    assert figure_style.feature_name("duration_ms") == "duration" and figure_style.feature_name("key") == "key"
    assert figure_style.format_feature("duration_ms", 223_000) == "3:43"
    vals, text = figure_style.duration_ticks(2.0, 5.0)
    assert vals == [2.0, 3.0, 4.0, 5.0] and text == ["2:00", "3:00", "4:00", "5:00"]
    assert figure_style.duration_ticks(3.1, 3.9)[1] == ["3:15", "3:30", "3:45"]


def test_duration_axes_read_m_ss_in_both_renderers(charts):
    trend = explore.param_viz(charts, features=["duration_ms", "tempo"])
    axis = trend.layout.xaxis
    assert axis.title.text == "duration (m:ss)" and all(":" in t for t in axis.ticktext)
    np.testing.assert_allclose(np.diff(axis.tickvals), 1.0)  # whole minutes over a 2-5 min range
    assert trend.layout.xaxis2.ticktext is None  # tempo keeps numbers
    yearly = explore.yearly_trends(charts, features=["duration_ms"], years=None)
    assert all(":" in t for t in yearly.layout.yaxis.ticktext)
    dist = explore.distribution_plots(charts, features=["duration_ms"])
    assert all(":" in t for t in dist.layout.xaxis.ticktext)
    mpl = explore.param_viz(charts, features=["duration_ms"], backend="matplotlib")
    formatter = mpl.axes[0].xaxis.get_major_formatter()
    assert formatter(3.5, 0) == "3:30"


def test_hit_profile_draws_points_as_points_and_ranges_as_ranges_with_a_legend(charts):
    track = {"tempo": 200.0, "energy": 0.5, "acousticness": 0.3}
    errors = {"energy": 0.1, "acousticness": 0.2}
    d = track_figures.hit_profile_data(track, charts, errors=errors)
    fig = track_figures.hit_profile(track, charts, errors=errors)
    points, ranges = fig.data
    assert points.type == "scatter" and points.mode == "markers"
    np.testing.assert_allclose(np.asarray(points.x, dtype=float), d["percentile"])  # every feature's own percentile
    symbols = dict(zip((t.split("<br>")[0] for t in points.y), points.marker.symbol))
    assert symbols["tempo"] == "circle" and symbols["energy"] == "line-ns"
    assert ranges.type == "bar" and [t.split("<br>")[0] for t in ranges.y] == ["energy", "acousticness"]
    np.testing.assert_allclose(np.asarray(ranges.base, dtype=float), d.loc[["energy", "acousticness"], "percentile_low"])
    np.testing.assert_allclose(np.asarray(ranges.base, dtype=float) + np.asarray(ranges.x, dtype=float),
                               d.loc[["energy", "acousticness"], "percentile_high"])
    legend = {t.name for t in fig.data if t.showlegend is not False} | {s.name for s in fig.layout.shapes if s.showlegend}
    assert {track_figures.MEASURED_LABEL, track_figures.ESTIMATE_LABEL, track_figures.HIT_MEDIAN_LABEL, track_figures.HIT_BANDS[0][2]} <= legend
    mpl = track_figures.hit_profile(track, charts, errors=errors, backend="matplotlib")
    labels = mpl.axes[0].get_legend_handles_labels()[1]
    assert set(labels) == {track_figures.MEASURED_LABEL, track_figures.ESTIMATE_LABEL, track_figures.HIT_MEDIAN_LABEL,
                           track_figures.HIT_BANDS[0][2]}
    assert len(mpl.axes[0].patches) == 2 + 1  # two ranges (bars) and the band; the point is a line marker


def test_a_mistyped_column_is_named_with_the_nearest_real_one(charts):
    with pytest.raises(TracklensError, match=r"unknown column\(s\) 'loudnes' \(did you mean 'loudness'\?\)") as err:
        track_figures.hit_profile({"loudnes": -5.0, "tempo": 120.0}, charts)
    assert "\n" not in str(err.value)
    with pytest.raises(TracklensError, match="'tempi'"):
        track_figures.hit_profile_data({"tempo": 120.0}, charts, features=["tempi"])
    with pytest.raises(TracklensError, match="'energie'"):
        track_figures.hit_profile_data({"tempo": 120.0}, charts, errors={"energie": 0.1})
    row = charts.iloc[0]  # a chart row's own columns (artist, song, year ...) are all known
    assert "tempo" in track_figures.hit_profile_data(row, charts).index


def test_gallery_waveforms_share_one_amplitude_scale():
    from tracklens import config, features
    from tracklens import librosa_visuals as lv

    t = np.arange(config.SAMPLE_RATE) / config.SAMPLE_RATE
    loud = features.analyze((0.8 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr=config.SAMPLE_RATE)
    quiet = features.analyze((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr=config.SAMPLE_RATE)
    fig = lv.genre_gallery({"rock": loud, "folk": quiet}, views=("waveform", "mel"))
    waves = [ax for ax in fig.axes if ax.get_title().endswith("waveform")]
    assert len(waves) == 2
    assert waves[0].get_ylim() == waves[1].get_ylim()
    assert waves[0].get_ylim()[1] == pytest.approx(1.05 * 0.8, rel=0.01)
    alone = lv.plot_waveform(quiet).axes[0].get_ylim()  # drawn alone, a clip fills its own axis
    assert alone[1] == pytest.approx(1.05 * 0.1, rel=0.01)
