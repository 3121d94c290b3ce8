"""The check-your-track page (dashboard/pages/check.py), driven through the upload route as the browser does."""

from __future__ import annotations

import re
import subprocess
import types

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens.errors import TracklensError

from dashboard_helpers import _wav_bytes, _ids, _text, _check, _demo_clip, _by_id, _figure, _walk


def test_check_layout_states_the_limits_once(pages):
    from tracklens.dashboard import data

    layout = pages["check"].layout()
    assert {"check-upload", "check-upload-ref", "check-status", "check-player", "check-results"} <= _ids(layout)
    limits = _text(_by_id(layout, "check-limits"))
    assert "up to 10 minutes (files up to 895 MB (10 minutes of 32-bit 192 kHz stereo WAV))" in limits
    assert limits.count("minutes") == 2 and "MB" in limits
    zone = _by_id(layout, "check-upload-zone")
    assert zone.children.max_size == 0  # dcc.Upload reads nothing; upload.js posts the file to the route
    assert getattr(zone, "data-max-bytes") == str(data.MAX_UPLOAD_BYTES)


def test_check_shows_your_track_first_with_units_and_ranks(app, pages, demo_catalogue):
    from tracklens.models import descriptors

    clip = _demo_clip(demo_catalogue)
    status, results, summary, player = _check(app, pages, clip.read_bytes(), clip.name)
    assert "check-ok" in _ids(status) and player["ok"] is True
    assert results[0].children[0].children == "Your track"  # the first thing shown
    rows = {f: _text(_by_id(results, f"check-card-{f}")) for f in (
        "tempo", "key", "loudness", "duration_ms", *descriptors.DESCRIPTORS)}
    assert re.search(r"tempo \d+ BPM( \(or \d+\))? P\d+ ", rows["tempo"])  # its x2 / half alternative when close
    assert re.search(r"key [A-G]#? (major|minor)(, confidence 0\.\d\d; other candidate [A-G]#? (major|minor))? not ranked .*A category, not a scale",
                     rows["key"])
    assert re.search(r"loudness -?\d+\.\d LUFS not ranked .*Spotify's own dB measure", rows["loudness"])
    assert re.search(r"duration 0:06 not ranked .*excerpt", rows["duration_ms"])
    for name in ("acousticness", "energy"):
        assert re.search(rf"{name} 0\.\d\d ± 0\.\d\d P\d+(-P\d+)? {re.escape(descriptors.DESCRIPTOR_LABEL)}", rows[name])
    for name in ("danceability", "instrumentalness", "liveness", "speechiness", "valence"):
        assert re.search(rf"{name} not available not ranked held-out R² 0\.\d\d", rows[name]), rows[name]
    assert "e+0" not in _text(results)  # no duration as 2.4e+05 ms


def test_hit_profile_draws_p0_and_keeps_labels_on_the_axis(app):
    """A feature at P0 is drawn as a point at 0 (not clipped by the axis) with its label; a label
    near P95 goes left of the mark, not past the axis (it overlapped the bar ends at P94-P96)."""
    from tracklens import track_figures
    from tracklens.dashboard import data

    charts = data.charts()
    tempo = charts["tempo"]
    track = {"tempo": tempo.min() - 1, "energy": float(np.percentile(charts["energy"], 95))}
    fig = track_figures.hit_profile(track, charts, features=["tempo", "energy"])
    widths = dict(zip((t.split("<br>")[0] for t in fig.data[0].y), fig.data[0].x))
    assert widths["tempo"] == 0 and fig.data[0].cliponaxis is False  # a measured value is a point, visible at P0
    labels = {a.y.split("<br>")[0]: a for a in fig.layout.annotations}
    assert labels["tempo"].text == "P0" and labels["tempo"].x > 0
    assert labels["energy"].text == "P95" and labels["energy"].xanchor == "right" and labels["energy"].x < 100
    assert labels["tempo"].y.endswith("BPM")


def test_blend_heading_once_bars_labelled_and_tags_caption_true(app, pages, demo_catalogue):
    clip = _demo_clip(demo_catalogue, 3)
    _, results, summary, _ = _check(app, pages, clip.read_bytes(), clip.name)
    titles = [_text(c) for c in _walk(results) if type(c).__name__ in ("H2", "H3")]
    titles += [_figure(results, i).layout.title.text or "" for i in ("check-blend", "check-timeline")]
    assert sum(t == "Genre blend" for t in titles) == 1, titles
    bars = _figure(results, "check-blend").data[0]
    assert list(bars.text) == [f"{100 * p:.0f}%" for p in summary["blend"].values()]
    caption = _text(_by_id(results, "check-tags-caption"))
    assert "four 3 s excerpts" not in _text(results) and "every window" in caption


def _blend(**fields):
    from tracklens.models.blend import Blend

    timeline = pd.DataFrame({"start_s": [45.0, 48.0, 165.0], "end_s": [48.0, 51.0, 168.0], "rock": [0.6, 0.5, 0.4],
                             "pop": [0.4, 0.5, 0.6]})
    return Blend(path=None, genres=["rock", "pop"], probabilities=np.array([0.5, 0.5]), timeline=timeline,
                 duration_s=240.0, model="test", notes=["blended 9 s of the 240 s track: 45-51 s, 165-168 s"],
                 **fields)


def test_poor_fit_warns_and_names_wider_and_chart_genres(app, pages, demo_catalogue):
    import dataclasses

    from tracklens.dashboard import track
    from tracklens.models import chart_genres

    clip = _demo_clip(demo_catalogue)
    report = track.check_track(clip.read_bytes(), clip.name)
    poor = _blend(fit="poor", fit_reason="a wider genre far ahead of the ten (Soul music)",
                  wider_genres=[("Soul music", 0.41), ("Funk", 0.2)], chart_genres=[("R&B", 0.45), ("pop", 0.3)])
    section = pages["check"].blend_section(dataclasses.replace(report, genre_blend=poor))
    warning = _text(_by_id(section, "check-fit-warning"))
    assert "does not fit these ten genres" in warning and "Soul music (0.41)" in warning and "uncalibrated" in warning
    genres = _by_id(section, "check-chart-genres")
    assert chart_genres.LABEL in _text(genres) and "R&B 0.45" in _text(genres)
    assert re.search(r"R&B: \d+ chart hits", _text(genres)) and " — " in _text(genres)  # artist — song
    ok = pages["check"].blend_section(dataclasses.replace(report, genre_blend=_blend(fit="ok")))
    assert _by_id(ok, "check-fit-warning") is None


def test_timeline_draws_only_the_analysed_windows_on_the_whole_track(pages):
    from tracklens import track_figures

    blend = _blend()
    fig = track_figures.blend_timeline(blend.timeline, duration_s=240.0)
    assert list(fig.layout.xaxis.range) == [0, 240.0]
    rock = next(t for t in fig.data if t.name == "rock")
    assert list(rock.x) == [46.5, 49.5, 166.5] and list(rock.width) == [3.0, 3.0, 3.0]
    assert fig.layout.legend.orientation == "h"  # below the plot: a vertical one took half a phone's width
    line = _text(pages["check"].status_line(types.SimpleNamespace(filename="song.mp3", duration_s=240.0,
                                                                    genre_blend=blend)))
    assert line == "song.mp3: 4:00 analysed; genre blend: blended 9 s of the 240 s track: 45-51 s, 165-168 s."


@pytest.mark.parametrize("name, make, expected", [
    ("silence.wav", lambda: _wav_bytes(np.zeros(3 * config.SAMPLE_RATE, np.float32)), "silent"),
    ("blip.wav", lambda: _wav_bytes(0.5 * np.ones(2000, np.float32)), "too short"),
])
def test_check_refuses_bad_audio_with_one_line(app, pages, name, make, expected):
    status, results, summary, player = _check(app, pages, make(), name)
    assert results == [] and "check-error" in _ids(status) and player["ok"] is False
    message = _text(status)
    assert message.startswith(name) and expected in message and "\n" not in message
    assert "tracklens-uploads-" not in message


@pytest.mark.parametrize("error, shown", [
    (TracklensError("song.wav: unsupported channel count (3000)"), "song.wav: unsupported channel count (3000)"),
    (TracklensError("no audio stream"), "song.wav: no audio stream"),
])
def test_check_upload_shows_a_tracklens_error_as_it_is(app, pages, demo_catalogue, monkeypatch, error, shown):
    from tracklens.dashboard import track

    monkeypatch.setattr(track, "_check_track", _raises(error))
    status, results, _, _ = _check(app, pages, _demo_clip(demo_catalogue, 4).read_bytes(), "song.wav")
    assert _text(status) == shown and results == []


@pytest.mark.parametrize("error, detail", [(MemoryError(), "MemoryError"), (ValueError("Input must be finite"), "finite"),
                                           (KeyError("tempo"), "tempo")], ids=["MemoryError", "ValueError", "KeyError"])
def test_check_upload_hides_an_unexpected_error_and_logs_it(app, pages, demo_catalogue, monkeypatch, caplog,
                                                            error, detail):
    from tracklens.dashboard import track

    monkeypatch.setattr(track, "_check_track", _raises(error))
    with caplog.at_level("ERROR", logger=track.LOG.name):
        status, results, _, _ = _check(app, pages, _demo_clip(demo_catalogue, 5).read_bytes(), "song.wav")
    assert _text(status) == f"song.wav: {track.GENERIC_FAILURE}" and results == []
    assert detail not in _text(status) and type(error).__name__ not in _text(status)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
    assert len(logged) == 1 and "song.wav" in logged[0].getMessage()  # the traceback is in the server log


def _raises(error: BaseException):
    def fail(source, name):
        raise error
    return fail


def test_check_upload_decodes_m4a(app, pages, demo_catalogue, tmp_path):
    """M4A goes through ffmpeg; the page treats it like any upload."""
    import os
    import shutil

    if shutil.which("ffmpeg") is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg missing in CI: `.ci/system-deps` should have installed it")
        pytest.skip("ffmpeg not installed")
    clip = _demo_clip(demo_catalogue, 2)
    m4a = tmp_path / "song.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c:a", "aac", "-b:a", "96k", str(m4a)], check=True,
                   timeout=60)
    status, results, summary, _ = _check(app, pages, m4a.read_bytes(), "song.m4a")
    assert "check-ok" in _ids(status), _text(status)
    assert _text(status).startswith("song.m4a: 0:06 analysed")
