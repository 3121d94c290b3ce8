"""track_figures.py: one track's figures (hit profile, genre blend, map), checked by the data they draw.

The hit profile's labels and units: test_figure_labels.py; the playlist's figures: test_playlist.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import track_figures
from tracklens.errors import TracklensError


@pytest.fixture(scope="module")
def charts(demo_catalogue):
    from tracklens import prepare

    df, _ = prepare.prepare_charts(demo_catalogue / "charts.csv")
    return df


def test_hit_profile_percentiles(charts):
    median_track = {"tempo": charts["tempo"].median(), "loudness": charts["loudness"].max() + 1, "key": 3}
    d = track_figures.hit_profile_data(median_track, charts)
    assert list(d.index) == ["loudness", "tempo"]  # only continuous features the track has
    assert d.loc["tempo", "percentile"] == pytest.approx(50, abs=2)
    assert d.loc["loudness", "percentile"] == 100
    fig = track_figures.hit_profile(median_track, charts)
    np.testing.assert_allclose(fig.data[0].x, d["percentile"])
    with pytest.raises(TracklensError, match="none of the features"):
        track_figures.hit_profile_data({"key": 3}, charts)


def test_blend_and_map_figures():
    blend = {"rock": 0.2, "jazz": 0.7, "pop": 0.1}
    assert list(track_figures.blend_data(blend).index) == ["jazz", "rock", "pop"]
    timeline = pd.DataFrame({"start_s": [3.0, 0.0], "end_s": [6.0, 3.0], "rock": [0.9, 0.1], "jazz": [0.1, 0.9]})
    d = track_figures.timeline_data(timeline)
    assert list(d.index) == [0.0, 3.0] and set(d.columns) == {"rock", "jazz"}
    fig = track_figures.track_map(np.zeros((4, 2)), list("abcd"), (1.0, 2.0), groups=list("xxyy"), label="mine.wav")
    assert fig.data[-1].name == "mine.wav" and tuple(fig.data[-1].x) == (1.0,)
    assert track_figures.blend_timeline(timeline, backend="matplotlib").axes


def test_hit_profile_against_no_hits_or_no_table_is_one_line(charts):
    # an empty chart table was IndexError: index -1 is out of bounds for axis 0 with size 0
    for table, words in ((charts.iloc[:0], "the chart table has no values of"),
                         (charts.assign(tempo=np.nan), "the chart table has no values of"),
                         ("songs_normalize.csv", r"expected a chart table \(a pandas DataFrame\), got str")):
        for backend in ("plotly", "matplotlib"):
            with pytest.raises(TracklensError, match=words) as err:
                track_figures.hit_profile({"tempo": 128.0}, table, backend=backend)
            assert "\n" not in str(err.value)
