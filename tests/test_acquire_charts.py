"""tracklens.acquire.charts: a Top-Hits-style chart CSV checked and copied, bad ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracklens.acquire.charts import acquire_charts
from tracklens.fileio import file_checksum
from tracklens.errors import TracklensError

CHART_HEADER = ("artist,song,duration_ms,explicit,year,popularity,danceability,energy,key,loudness,mode,"
                "speechiness,acousticness,instrumentalness,liveness,valence,tempo,genre")


def write_charts(path: Path) -> Path:
    path.write_text(
        CHART_HEADER + "\n"
        "Beyoncé,Formation,206000,True,2016,78,0.7,0.8,1,-5.1,1,0.2,0.01,0.0,0.1,0.6,123.0,\"pop, R&B\"\n"
        "Sigur Rós,Svefn-g-englar,604000,False,2000,55,0.2,0.3,4,-14.0,0,0.03,0.5,0.8,0.1,0.1,70.0,rock\n"
        "Måneskin,Beggin',211000,False,2017,84,0.7,0.9,11,-4.8,0,0.05,0.1,0.0,0.3,0.6,134.0,rock\n",
        encoding="utf-8")
    return path


def test_charts_are_validated_and_copied_atomically(tmp_path):
    source = write_charts(tmp_path / "hits.csv")
    result = acquire_charts(source, tmp_path / "raw")
    assert result.copied and result.rows == 3 and result.path == tmp_path / "raw" / "hits.csv"
    assert file_checksum(result.path) == file_checksum(source)

    again = acquire_charts(source, tmp_path / "raw")
    assert not again.copied
    renamed = acquire_charts(source, tmp_path / "raw" / "charts.csv")
    assert renamed.path.name == "charts.csv" and renamed.copied


@pytest.mark.parametrize("content, match", [
    (None, "no such file"),
    ("", "empty"),
    ("artist,song\nA,B\n", "popularity|column"),
])
def test_bad_chart_csv_is_refused_naming_the_file(tmp_path, content, match):
    path = tmp_path / "charts.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TracklensError, match=match) as info:
        acquire_charts(path, tmp_path / "raw")
    assert "charts.csv" in str(info.value)
    assert not (tmp_path / "raw").exists() or not list((tmp_path / "raw").iterdir())
