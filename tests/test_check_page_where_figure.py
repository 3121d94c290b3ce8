"""The check page's "where you sit" figure beside the sentences (issue 18), against an audio
catalogue: each comparable value's percentile within the group and the group's middle half
(P25-P75), each row naming the value and the middle half in its own unit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard_helpers import _by_id, _ids, _text
from test_check_page_catalogue import CATALOGUE, metal_report, mini_home, with_catalogues  # noqa: F401


def test_each_value_sits_at_its_percentile_with_its_unit_and_middle_half(pages):
    from tracklens.dashboard import compare

    # 10 tracks: the card's tempo (bpm) P25 102.5, P75 147.5; the summary's tempo (a model input) is not it
    table = pd.DataFrame({"bpm": np.arange(80.0, 180.0, 10.0), "tempo": np.full(10, 60.0),
                          "loudness": np.linspace(-20.0, -5.0, 10), "energy_est": np.linspace(0.1, 1.0, 10)})
    found = compare.positions({"tempo": 175.0, "loudness": -12.0, "energy_est": 0.05}, table, compare.CATALOGUE_VALUES)
    fig = pages["check"].where_figure(found, "the 10 rock tracks of refs")
    points = fig.data[0]
    assert list(points.x) == [p.percentile for p in found] == [100.0, 50.0, 0.0]
    assert points.y[0] == "tempo 175 BPM<br>middle half 102 to 148 BPM"  # "{:.0f}": 102.5 rounds to even
    assert points.y[1].startswith("loudness -12.0 LUFS<br>middle half -16.2 to -8.8 LUFS")
    assert points.y[2] == "energy (estimated) 0.05<br>middle half 0.33 to 0.78"
    band = fig.layout.shapes[0]
    assert (band.x0, band.x1) == (25, 75) and band.name == pages["check"].WHERE_BAND_LABEL
    assert fig.layout.xaxis.title.text == "percentile (%)" and list(fig.layout.xaxis.range) == [0, 100]
    rows, marks = fig.layout.annotations[:3], fig.layout.annotations[3:]
    assert [a.text for a in rows] == list(points.y) and all(a.yanchor == "bottom" for a in rows)  # above each point
    assert [a.text for a in marks] == ["P100", "P50", "P0"]
    assert [a.xanchor for a in marks] == ["right", "left", "left"]  # never off the axis


def test_the_catalogue_comparison_draws_it_beside_the_sentences(with_catalogues, pages, metal_report):  # noqa: F811
    report, key = metal_report
    everyone = pages["check"].show_comparison(CATALOGUE, "all", key)
    assert {"check-where", "check-where-figure"} <= _ids(everyone)
    fig = _by_id(everyone, "check-where-figure").figure
    sentences = [i for i in _ids(_by_id(everyone, "check-where")) if i.startswith("check-where-") and i != "check-where-few"]
    assert len(fig.data[0].x) == len(sentences) >= 3
    heads = [_text(item).split(":")[0] for item in _by_id(everyone, "check-where").children[1].children]
    assert heads == [row.split("<br>")[0] for row in fig.data[0].y]  # the figure prints the sentences' numbers
    within = pages["check"].show_comparison(CATALOGUE, "genre", key)  # 2 tracks of its genre: too few, no figure
    assert "check-where-few" in _ids(within) and "check-where-figure" not in _ids(within)


def test_the_tempo_is_placed_among_the_catalogue_s_bpm(with_catalogues, pages, metal_report):  # noqa: F811
    """The upload's tempo (the engine's bpm) was placed among the catalogue's `tempo` column, the
    GTZAN-table feature from another estimator: the figure's middle half is now the bpm's."""
    from tracklens import catalogue

    report, key = metal_report
    everyone = pages["check"].show_comparison(CATALOGUE, "all", key)
    row = next(y for y in _by_id(everyone, "check-where-figure").figure.data[0].y if y.startswith("tempo"))
    tracks = catalogue.load(with_catalogues / "data" / "catalogues" / CATALOGUE).tracks
    halves = {column: "middle half {:.0f} to {:.0f} BPM".format(*np.percentile(tracks[column], [25, 75]))
              for column in ("bpm", "tempo")}
    assert halves["bpm"] != halves["tempo"] and halves["bpm"] in row, (row, halves)
