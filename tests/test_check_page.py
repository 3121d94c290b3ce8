"""The check page's "your track" answers (issues 18 and 19), without a browser: how sure the blend
is (the shipped model's validation numbers beside it), one fixed colour per genre, what a track
that does not fit is told, percentiles within the track's chart genres. The browser checks of the
same elements are in test_check_page_elements_browser.py.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from dashboard_helpers import _by_id, _ids, _session_checks, _text, _walk


def _shipped_blend(probabilities: dict, **fields):
    """A Blend as the shipped default model would give it (its name and genres)."""
    from tracklens.dashboard import data
    from tracklens.models.blend import Blend

    report, _ = data.shipped_model_report()
    genres = list(report["class_names"])
    proba = np.array([probabilities.get(g, 0.0) for g in genres])
    proba = proba / proba.sum()
    timeline = pd.DataFrame({"start_s": [0.0], "end_s": [30.0], **{g: [p] for g, p in zip(genres, proba)}})
    return Blend(path=None, genres=genres, probabilities=proba, timeline=timeline, duration_s=30.0,
                 model=report["model"], **fields)


def test_genre_reliability_counts_right_found_and_the_commonest_swap():
    from tracklens.dashboard import compare

    names = ["blues", "country", "rock"]
    y_true = np.array([0, 0, 1, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 0, 0, 2, 1])  # country<->blues swapped 3 times, country<->rock once
    report = {"class_names": names, "y_true": y_true, "y_score": np.eye(3)[predicted]}
    country = compare.genre_reliability(report, "country")
    assert (country.named, country.right, country.tracks, country.found) == (3, 1, 3, 1)
    assert country.confused_with == ("blues", 3)
    assert country.sentence() == ("When the model says country, it is right for 1 of the 3 validation tracks it called "
                                  "country (33%); it found 1 of the 3 country tracks. It most often confuses country "
                                  "and blues (3 tracks either way).")
    assert compare.genre_reliability(report, "jazz") is None


def test_how_sure_gives_the_shipped_models_validation_numbers_for_the_label_genres(app, pages):
    from tracklens.dashboard import compare, data

    blend = _shipped_blend({"country": 0.45, "blues": 0.40, "rock": 0.15})  # label "country-blues"
    section = pages["check"].how_sure(blend)
    validation, _ = data.shipped_model_report()
    for genre in ("country", "blues"):
        assert _text(_by_id(section, f"check-sure-{genre}")).strip() == \
            compare.genre_reliability(validation, genre).sentence()
    assert _by_id(section, "check-sure-rock") is None
    rule = _text(_by_id(section, "check-label-rule"))
    assert "within 0.10" in rule and "names both" in rule
    link = next(c for c in _walk(section) if type(c).__name__ == "Link")
    assert link.href.endswith("/models")


def test_how_sure_says_when_the_model_is_not_the_shipped_one(app, pages):
    blend = _shipped_blend({"rock": 1.0})
    blend.model = "my-own-model"
    text = _text(pages["check"].how_sure(blend))
    assert "No validation numbers for model my-own-model" in text and "When the model says" not in text


def test_each_genre_keeps_its_colour_whatever_its_rank():
    from tracklens import figure_style, track_figures

    first = track_figures.blend_bar({"rock": 0.6, "metal": 0.3, "pop": 0.1})
    second = track_figures.blend_bar({"metal": 0.7, "pop": 0.2, "rock": 0.1})
    colours = [dict(zip(f.data[0].y, f.data[0].marker.color)) for f in (first, second)]
    assert colours[0] == colours[1] == {g: figure_style.GENRE_COLOURS[g] for g in ("rock", "metal", "pop")}
    timeline = pd.DataFrame({"start_s": [0.0], "end_s": [10.0], "metal": [0.7], "rock": [0.3]})
    drawn = {t.name: t.marker.color for t in track_figures.blend_timeline(timeline, duration_s=10.0).data}
    assert drawn == {"metal": figure_style.GENRE_COLOURS["metal"], "rock": figure_style.GENRE_COLOURS["rock"]}
    assert len(set(figure_style.GENRE_COLOURS.values())) == len(figure_style.GENRE_COLOURS)
    assert figure_style.genre_colour("Dance/Electronic") == figure_style.genre_colour("Dance/Electronic")



@pytest.fixture(scope="module")
def demo_report(app, demo_catalogue):
    """One demo clip's real report (the demo catalogue's chart table)."""
    from tracklens.dashboard import track

    clip = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0]
    return track.check_track(clip.read_bytes(), clip.name)


SPEECH = dict(fit="poor", fit_reason="does not sound like music: AudioSet hears Speech 0.71 (Music 0.08)",
              chart_genres=[("pop", 0.01)])
WIDER = dict(fit="poor", fit_reason="sounds like Techno (0.41), outside the ten genres: 8x their closest AudioSet genre",
             chart_genres=[("Dance/Electronic", 0.3)])


@pytest.mark.parametrize("fields, music_hidden", [(SPEECH, True), (WIDER, False)])
def test_a_track_that_does_not_fit_is_said_so_everywhere(app, pages, demo_report, fields, music_hidden):
    import dataclasses

    from tracklens.dashboard import app as app_module

    report = dataclasses.replace(demo_report, genre_blend=_shipped_blend({"classical": 0.9, "jazz": 0.1}, **fields))
    assert report.blend_label == "does not fit the ten genres (closest: classical)"
    assert app_module.show_last_track(report.summary()).endswith("— does not fit the ten genres (closest: classical)")
    assert "does not fit the ten genres" in _text(pages["check"].status_line(report))
    results = pages["check"].render_report(report)
    ids = _ids(results)
    music = {"check-card-tempo", "check-card-key", "check-card-energy", "check-chart-genres", "check-profile"}
    assert ("check-not-music" in ids) is music_hidden
    assert (music & ids == set()) is music_hidden, music & ids
    assert {"check-card-loudness", "check-card-duration_ms", "check-blend", "check-spectrogram"} <= ids
    if music_hidden:
        note = _text(_by_id(results, "check-not-music"))
        assert "Speech 0.71" in note and "tempo, key" in note
        assert note.endswith(".") and not re.search(r"\.\s+[A-Z]", note)  # one sentence


def test_a_track_that_is_not_music_is_offered_no_genres_and_no_chart_hits(app, pages, demo_report):
    """White noise on the page: the warning listed "Closest wider genres: Electronic music (0.00),
    Techno (0.00), House music (0.00)" and the card's caption said "against all 1924 chart hits"
    while every row said "not ranked". Music that does not fit keeps its wider genres."""
    import dataclasses

    wider = [("Electronic music", 0.004), ("Techno", 0.002)]
    noise = dataclasses.replace(demo_report, genre_blend=_shipped_blend({"classical": 1.0}, **SPEECH, wider_genres=wider))
    warning = _text(pages["check"].fit_warning(noise.genre_blend))
    assert "Speech 0.71" in warning and "wider genres" not in warning and "Techno" not in warning
    caption = _text(_by_id(pages["check"].render_report(noise), "check-card").children[0])
    assert "chart hits" not in caption and "does not sound like music" in caption, caption
    techno = dataclasses.replace(demo_report, genre_blend=_shipped_blend({"classical": 1.0}, **WIDER, wider_genres=wider))
    assert "Closest wider genres (AudioSet likelihoods, uncalibrated): Electronic music (0.00)" in \
        _text(pages["check"].fit_warning(techno.genre_blend))
    assert "against" in _text(_by_id(pages["check"].render_report(techno), "check-card").children[0])


def test_a_track_that_fits_is_labelled_by_its_blend(app, pages, demo_report):
    import dataclasses

    report = dataclasses.replace(demo_report, genre_blend=_shipped_blend({"classical": 0.9, "jazz": 0.1}, fit="ok"))
    assert report.blend_label == "classical" and "does not fit" not in _text(pages["check"].status_line(report))


def test_genre_peers_are_the_hits_of_the_tracks_chart_genres():
    from tracklens.dashboard import compare

    charts = pd.DataFrame({"genre": ["rock"] * 20 + ["rock, metal"] * 15 + ["pop"] * 40 + ["metal"] * 5,
                           "tempo": np.arange(80.0)})
    peers = compare.genre_peers(charts, [("rock", 0.30), ("metal", 0.12), ("pop", 0.11)])
    assert len(peers.table) == 40 and peers.genres == ("rock", "metal")
    assert peers.description == "the 40 chart hits tagged rock or metal, the chart genres it sounds like"
    assert len(compare.genre_peers(charts, [("rock", 0.3)], all_hits=True).table) == 80
    few = compare.genre_peers(charts, [("metal", 0.3)])  # 20 hits: too few to rank among
    assert len(few.table) == 80 and "only 20 are tagged metal" in few.description
    faint = compare.genre_peers(charts, [("rock", 0.01)])  # below models.chart_genres.SHOWN_FROM
    assert len(faint.table) == 80 and faint.genres == ()


def test_top_hits_rank_within_the_chart_genres_and_show_no_three_number_neighbours(app, pages, demo_report,
                                                                                  shared_data, demo_catalogue):
    import dataclasses

    from tracklens.dashboard import compare, data

    report = dataclasses.replace(demo_report, genre_blend=_shipped_blend({"rock": 1.0}, fit="ok",
                                                                         chart_genres=[("rock", 0.3), ("pop", 0.01)]))
    try:
        data.configure(None)  # the real Top Hits table: no audio
        charts = data.charts()
        peers = compare.genre_peers(charts, report.genre_blend.chart_genres)
        results = pages["check"].render_report(report) + pages["check"].chart_section(report, peers)
    finally:
        data.configure(demo_catalogue)
    ids = _ids(results)
    assert {"check-nearest", "check-map", "check-comparison-note"} & ids == set()
    assert "no audio" in _text(_by_id(results, "check-no-neighbours"))
    rock = compare.genre_peers(charts, [("rock", 0.3)]).table
    assert 30 <= len(rock) < len(charts)
    caption = _text(_by_id(results, "check-card"))
    assert f"against the {len(rock)} chart hits tagged rock" in caption
    tempo = compare.your_track(report.upload, rock)[0]
    assert _text(_by_id(results, "check-card-tempo").children[2]) == pages["check"]._percentile_text(tempo.percentile)
    assert f"among the {len(rock)} chart hits tagged rock" in _text(results)  # the profile's title
    where = _text(_by_id(results, "check-where-tempo"))
    assert where.startswith("tempo ") and f"the {len(rock)} chart hits tagged rock" in where


def test_the_page_blends_the_whole_file_as_predict_blend_does(app, tmp_path, monkeypatch):
    """One blend for one file (issue 19): the page decoded at 22 050 Hz, resampled twice and read
    60 s; now it gives `predict_blend(model, path)`'s probabilities (what `tracklens predict`
    prints), on a generated 44.1 kHz stereo clip longer than one 30 s block."""
    import soundfile as sf

    from tracklens.dashboard import data, track
    from tracklens.models import blend

    sr, seconds = 44_100, 34.0
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(7)
    left = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.05 * rng.standard_normal(len(t))
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(len(t))
    path = tmp_path / "generated.wav"
    sf.write(path, np.stack([left, right], axis=1).astype(np.float32), sr, subtype="PCM_16")
    stages, page_reads = [], []
    predict_blend = blend.predict_blend
    monkeypatch.setattr(blend, "predict_blend", lambda model, source, **kwargs: page_reads.append(
        kwargs.get("max_seconds", blend.MAX_BLEND_S)) or predict_blend(model, source, **kwargs))
    report = track.check_track(path, path.name, digest="generated-clip-for-this-test", on_stage=stages.append)
    expected = predict_blend(data.default_model(), path)
    np.testing.assert_allclose(report.genre_blend.probabilities, expected.probabilities, rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(report.genre_blend.timeline, expected.timeline, check_exact=False, atol=1e-6)
    # the whole track up to the upload limit (None: all of it), not 60 s: the clip above is too short to tell
    assert len(page_reads) == 1 and (page_reads[0] is None or page_reads[0] >= data.MAX_UPLOAD_SECONDS)
    assert stages == ["decoding", "blending", "comparing"]



def test_where_you_sit_says_typical_lower_or_higher_against_the_middle_half():
    from tracklens.dashboard import compare

    group = pd.DataFrame({"tempo": np.arange(100.0, 200.0), "energy": np.linspace(0, 1, 100)})
    columns = {"tempo": ("tempo", "tempo", "BPM"), "energy_est": ("energy", "energy", "")}
    found = {p.feature: p for p in compare.positions({"tempo": 150.0, "energy_est": 0.1}, group, columns)}
    assert found["tempo"].sentence("rock tracks") == "tempo 150 BPM: typical for rock tracks (middle half 125 to 174 BPM)."
    assert found["energy_est"].sentence("rock tracks") == "energy 0.10: lower than 90% of rock tracks."
    high = compare.positions({"tempo": 195.0}, group, columns)[0]
    assert high.sentence("them") == "tempo 195 BPM: higher than 96% of them."
    assert compare.positions({"tempo": 150.0}, group.head(4), columns) == []  # too few to say


def test_ab_puts_two_checks_of_the_session_side_by_side(app, pages, demo_catalogue):
    from tracklens.dashboard import track

    keys = _session_checks(demo_catalogue, 2)
    options, value = pages["check"].ab_options(keys, keys[1])
    assert options == [{"label": keys[0]["name"], "value": keys[0]["key"]}] and value is None
    section = pages["check"].show_ab(keys[0]["key"], keys[1], keys)
    rows = {r.children[0].children: [_text(c) for c in r.children[1:]]
            for r in _by_id(section, "check-ab-table").children[2].children}
    a, b = (track.cached_report(k["key"]) for k in (keys[1], keys[0]))
    assert rows["blend"] == [a.blend_label, b.blend_label]
    assert rows["tempo"] == [f"{r.comparable['tempo']:.0f} BPM" for r in (a, b)]
    likeness = _text(_by_id(section, "check-ab-similarity"))
    assert f"How alike {keys[1]['name']} and {keys[0]['name']}" in likeness and "alike (the share" in likeness
    gone = pages["check"].show_ab("0" * 64, keys[1], keys)
    assert "no longer holds" in _text(gone)
