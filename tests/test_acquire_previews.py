"""tracklens.acquire.previews (and deezer by ISRC) offline with `responses`: Spotify's preview
links, Deezer by ISRC, failures explained, atomic and resumable downloads, bounded concurrency; the
recorded Deezer responses of ../shared/data/api."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import responses

from tracklens.acquire.deezer import deezer_track_by_isrc
from tracklens.acquire.previews import download_file, download_previews
from tracklens.acquire.web import AcquireError, RetryPolicy
from tracklens.errors import TracklensError

from test_acquire_spotify import T1, T2, T3, T4, T6, fixture, policy, sleeps  # noqa: F401  (fixtures)

MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8  # ID3 tag + filler bytes
DEEZER = "https://api.deezer.com/track/isrc:{}"
DEEZER_PREVIEW = fixture("deezer_track_isrc.json")["preview"]


def preview_rows():
    return [
        {"id": T3, "isrc": "GBAAA9900003", "preview_url": ""},          # Deezer by ISRC
        {"id": T6, "isrc": "", "preview_url": "https://p.scdn.co/mp3-preview/abc123"},  # Spotify's own URL
        {"id": T1, "isrc": "USSM11600001", "preview_url": ""},          # not on Deezer
        {"id": T2, "isrc": "", "preview_url": ""},                      # nothing to go on
        {"id": T4, "isrc": "JPTO01800004", "preview_url": ""},          # on Deezer without a preview
    ]


def add_deezer(mock, *, preview_body: bytes = MP3, preview_headers: dict | None = None):
    mock.get(DEEZER.format("GBAAA9900003"), json=fixture("deezer_track_isrc.json"))
    mock.get(DEEZER.format("USSM11600001"), json=fixture("deezer_error_not_found.json"))  # HTTP 200 + error body
    mock.get(DEEZER.format("JPTO01800004"), json={**fixture("deezer_track_isrc.json"), "id": 4, "preview": ""})
    mock.get(DEEZER_PREVIEW.split("?")[0], body=preview_body, headers=preview_headers,
             auto_calculate_content_length=preview_headers is None)


def test_previews_download_skip_and_explain_failures(policy, tmp_path):
    out = tmp_path / "previews"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        add_deezer(mock)
        mock.get("https://p.scdn.co/mp3-preview/abc123", body=MP3)
        report = download_previews(preview_rows(), out, workers=3, policy=policy, progress=False)

    assert sorted(report.downloaded) == sorted([T3, T6])
    assert (out / f"{T3}.mp3").read_bytes() == MP3 and (out / f"{T6}.mp3").read_bytes() == MP3
    assert set(report.failed) == {T1, T2, T4}
    assert report.failed[T1].startswith("not found: Deezer has no track with ISRC USSM11600001")
    assert report.failed[T2].startswith("no preview:") and "no ISRC" in report.failed[T2]
    assert report.failed[T4].startswith("no preview:")
    summary = "\n".join(report.summary_lines())
    assert "2 downloaded, 0 already there, 3 failed" in summary and "2 no preview" in summary
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{T3}.mp3", f"{T6}.mp3"])

    with responses.RequestsMock() as mock:  # second run: nothing to fetch for the two files
        mock.get(DEEZER.format("USSM11600001"), json=fixture("deezer_error_not_found.json"))
        mock.get(DEEZER.format("JPTO01800004"), json={**fixture("deezer_track_isrc.json"), "preview": ""})
        again = download_previews(preview_rows(), out, workers=2, policy=policy, progress=False)
    assert sorted(again.skipped) == sorted([T3, T6]) and not again.downloaded


def test_interrupted_download_never_leaves_a_final_file_and_rerun_completes(tmp_path, sleeps):
    rows = [preview_rows()[0]]
    out = tmp_path / "previews"
    one_try = RetryPolicy(max_attempts=1, sleep=sleeps.append)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        add_deezer(mock, preview_body=MP3[:1000], preview_headers={"Content-Length": str(len(MP3))})
        report = download_previews(rows, out, policy=one_try, progress=False)

    assert report.failed[T3].startswith("network/server error:") and "cut off" in report.failed[T3]
    assert list(out.iterdir()) == []  # neither the final name nor a temp file

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        add_deezer(mock)
        report = download_previews(rows, out, policy=one_try, progress=False)
    assert report.downloaded == [T3] and (out / f"{T3}.mp3").read_bytes() == MP3


def test_cut_download_is_retried_within_a_run(policy, sleeps, tmp_path):
    dest = tmp_path / "x.mp3"
    with responses.RequestsMock() as mock:
        mock.get("https://cdn.test/x.mp3", body=MP3[:100], headers={"Content-Length": str(len(MP3))},
                 auto_calculate_content_length=False)
        mock.get("https://cdn.test/x.mp3", body=MP3)
        assert download_file("https://cdn.test/x.mp3", dest, policy=policy) == len(MP3)
    assert dest.read_bytes() == MP3 and sleeps == [1.0]


def test_deezer_quota_error_in_a_200_body_is_retried(policy, sleeps):
    with responses.RequestsMock() as mock:
        mock.get(DEEZER.format("GBAAA9900003"), json=fixture("deezer_error_quota.json"))
        mock.get(DEEZER.format("GBAAA9900003"), json=fixture("deezer_track_isrc.json"))
        track = deezer_track_by_isrc("gbaaa9900003", policy=policy)
    assert track["preview"] == DEEZER_PREVIEW and sleeps == [1.0]


def test_non_audio_body_is_refused(policy, tmp_path):
    with responses.RequestsMock() as mock:
        mock.get("https://cdn.test/x.mp3", body=b"<html>expired</html>")
        with pytest.raises(AcquireError, match="not an MP3"):
            download_file("https://cdn.test/x.mp3", tmp_path / "x.mp3", policy=policy)
    assert list(tmp_path.iterdir()) == []


def test_download_concurrency_is_bounded(policy, tmp_path):
    active, peak, lock = [0], [0], threading.Lock()

    def slow_mp3(request):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)  # long enough for the pool to overlap calls on a loaded machine
        with lock:
            active[0] -= 1
        return 200, {}, MP3

    rows = [{"id": f"Track{i:017d}", "isrc": "", "preview_url": f"https://cdn.test/{i}.mp3"} for i in range(12)]
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, re.compile(r"https://cdn\.test/\d+\.mp3"), callback=slow_mp3)
        report = download_previews(rows, tmp_path, workers=3, policy=policy, progress=False)
    assert len(report.downloaded) == 12
    assert 1 < peak[0] <= 3


def test_previews_csv_needs_id_and_isrc_or_url(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("id,name\nx,y\n", encoding="utf-8")
    with pytest.raises(TracklensError, match="isrc"):
        download_previews(bad, tmp_path / "p", progress=False)
    with pytest.raises(TracklensError, match="no such file"):
        download_previews(tmp_path / "missing.csv", tmp_path / "p", progress=False)


@pytest.mark.realdata
def test_recorded_deezer_responses_parse(shared_data, policy):
    recorded = json.loads((shared_data / "api" / "deezer-track-by-isrc.json").read_text(encoding="utf-8"))
    error = json.loads((shared_data / "api" / "deezer-error.json").read_text(encoding="utf-8"))
    with responses.RequestsMock() as mock:
        mock.get(DEEZER.format(recorded["isrc"]), json=recorded)
        mock.get(DEEZER.format("XXAAA0000000"), json=error)
        track = deezer_track_by_isrc(recorded["isrc"], policy=policy)
        with pytest.raises(AcquireError, match="Deezer error 200"):
            deezer_track_by_isrc("XXAAA0000000", policy=policy)
    assert track["preview"].startswith("https://") and ".mp3" in track["preview"]
