"""The check page's downloads (issue 18): the HTML report, the values as CSV and everything as
JSON, the same three files `tracklens check` writes (reports.check_report_texts for both), the CSV
spreadsheet-safe (fileio.to_csv_text)."""

from __future__ import annotations

import hashlib
import io
import json

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def checked(app, demo_catalogue):
    """A demo clip checked by the page under a name a spreadsheet would read as a formula."""
    from tracklens.dashboard import track

    clip = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0]
    raw = clip.read_bytes()
    name = "=cmd()" + clip.name
    report = track.check_track(raw, name)
    return report, {"key": hashlib.sha256(raw).hexdigest(), "name": name}


def test_the_page_sends_the_html_csv_and_json_that_tracklens_check_writes(pages, checked, tmp_path):
    from tracklens import reports

    report, key = checked
    check = pages["check"]
    html = check.download_check(1, key, check.TOP_HITS, "genre")
    csv = check.download_values_csv(1, key, check.TOP_HITS, "genre")
    as_json = check.download_values_json(1, key, check.TOP_HITS, "genre")
    stem = key["name"].rsplit(".", 1)[0] + ".tracklens-check"
    assert [d["filename"] for d in (html, csv, as_json)] == [f"{stem}.html", f"{stem}.values.csv", f"{stem}.json"]
    written = reports.write_check_report(check.report_track(report), tmp_path / "out.html", figures=False)
    assert csv["content"] == written["csv"].read_text(encoding="utf-8")
    assert json.loads(as_json["content"]) == json.loads(written["json"].read_text(encoding="utf-8"))
    assert html["content"] == written["html"].read_text(encoding="utf-8")

    values = pd.read_csv(io.StringIO(csv["content"])).set_index("name")["value"]
    data = json.loads(as_json["content"])
    assert float(values["tempo"]) == pytest.approx(report.comparable["tempo"], abs=1e-9)
    assert {v["name"]: v["value"] for v in data["values"]}["tempo"] == pytest.approx(float(values["tempo"]), abs=1e-9)
    # the card's loudness numbers, in the download too: the same floats written and read back in
    # one process (the CSV keeps repr precision), so only the text round trip can differ
    for name in ("loudness", "true_peak_dbtp", "loudness_range_lu"):
        assert float(values[name]) == pytest.approx(report.comparable[name], abs=1e-9), name
    assert {n.removeprefix("blend_"): float(v) for n, v in values.items() if n.startswith("blend_")} == data["blend"]
    assert data["file"] == key["name"] and data["label"] == report.genre_blend.label


def test_the_values_csv_is_spreadsheet_safe(pages, checked, monkeypatch):
    from tracklens import reports

    report, _ = checked
    monkeypatch.setitem(reports.CHECK_VALUE_SOURCES, "bpm", ("BPM", '=HYPERLINK("x")'))  # a cell a spreadsheet runs
    text = reports.check_report_texts(pages["check"].report_track(report), figures=False)["csv"]
    assert ",=HYPERLINK" not in text and "'=HYPERLINK" in text


def test_the_neighbours_caption_says_how_similarity_was_measured(pages, checked):
    from tracklens import reports

    report, _ = checked
    track = pages["check"].report_track(report)
    neighbours = pd.DataFrame({"rank": [1], "similarity": [0.9], "track_id": ["a"]})
    command = reports.check_report_html(track, neighbours=neighbours, catalogue_name="refs", figures=False)
    page = reports.check_report_html(track, neighbours=neighbours, catalogue_name="refs", figures=False,
                                     by_sound_alone=True)
    assert "centred on the catalogue&#x27;s mean, half the cosine of the genre blends" in command
    assert "centred on the catalogue&#x27;s mean (by sound alone)" in page and "genre blends" not in page
