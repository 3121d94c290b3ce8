"""`acquire previews` for a chart table: Deezer search by artist + title (charts carry no ISRC),
with responses shaped like Deezer's (../shared/data/api/deezer-track-by-*.json: a search answer
is ``{"data": [track, ...], "total": n}``), incl. 429 Retry-After, 5xx, timeouts and Deezer's
HTTP-200 error bodies. No network."""

from __future__ import annotations

import csv

import pytest
import requests
import responses
from responses import matchers

from tracklens.acquire.deezer import DEEZER_SEARCH_LIMIT, deezer_search_track
from tracklens.acquire.previews import PREVIEWS_INDEX, download_previews
from tracklens.acquire.rows import chart_track_id, first_artist, normalise_name
from tracklens.acquire.web import AcquireError, ForbiddenError, NotFoundError, RetryPolicy, ServiceError
from tracklens.errors import TracklensError

SEARCH = "https://api.deezer.com/search"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8
PREVIEW = "https://cdnt-preview.dzcdn.net/api/1/1/c/4/d/0/c4d7.mp3"


def track(track_id: int, title: str, artist: str, *, preview: str = PREVIEW, **extra) -> dict:
    """A Deezer track object as search returns it (fields as in the recorded track-by-id answer)."""
    return {"id": track_id, "readable": True, "title": title, "title_short": extra.pop("title_short", title),
            "title_version": "", "link": f"https://www.deezer.com/track/{track_id}", "duration": 211, "rank": 835029,
            "explicit_lyrics": False, "preview": preview, "md5_image": "", "type": "track",
            "artist": {"id": 27, "name": artist, "type": "artist"},
            "album": {"id": 302127, "title": "Album", "type": "album"}, **extra}


def search_answer(*tracks: dict) -> dict:
    return {"data": list(tracks), "total": len(tracks)}


def query(artist: str, title: str) -> dict:
    return {"q": f'artist:"{artist}" track:"{title}"', "limit": str(DEEZER_SEARCH_LIMIT)}


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def policy(sleeps):
    return RetryPolicy(max_attempts=3, base_delay=0.5, sleep=sleeps.append)


def test_search_takes_the_matching_track_not_a_cover(policy):
    with responses.RequestsMock() as mock:
        mock.get(SEARCH, match=[matchers.query_param_matcher(query("Britney Spears", "Oops!...I Did It Again"))],
                 json=search_answer(track(1, "Oops!...I Did It Again", "Karaoke Hits Band"),
                                    track(2, "Oops!... I Did It Again (Remastered)", "Britney Spears",
                                          title_short="Oops!... I Did It Again")))
        found = deezer_search_track("Britney Spears", "Oops!...I Did It Again", policy=policy)
    assert found["id"] == 2


def test_search_with_no_matching_result_is_not_found(policy):
    with responses.RequestsMock() as mock:
        mock.get(SEARCH, json=search_answer(track(1, "Another Song", "Britney Spears")))
        with pytest.raises(NotFoundError, match="no track by 'Britney Spears' titled 'Toxic' .1 other results"):
            deezer_search_track("Britney Spears", "Toxic", policy=policy)


def test_search_retries_429_with_retry_after_then_5xx_then_answers(policy, sleeps):
    with responses.RequestsMock() as mock:
        mock.get(SEARCH, status=429, headers={"Retry-After": "7"})
        mock.get(SEARCH, status=503)
        mock.get(SEARCH, json=search_answer(track(5, "Toxic", "Britney Spears")))
        assert deezer_search_track("Britney Spears", "Toxic", policy=policy)["id"] == 5
    assert sleeps == [7.0, 1.0]  # the server's Retry-After, then the back-off's second step


def test_search_quota_error_in_a_200_body_is_retried(policy, sleeps):
    with responses.RequestsMock() as mock:
        mock.get(SEARCH, json={"error": {"type": "Exception", "message": "Quota limit exceeded", "code": 4}})
        mock.get(SEARCH, json=search_answer(track(5, "Toxic", "Britney Spears")))
        assert deezer_search_track("Britney Spears", "Toxic", policy=policy)["id"] == 5
    assert len(sleeps) == 1


def test_search_timeouts_give_up_with_one_line(policy):
    with responses.RequestsMock() as mock:
        for _ in range(3):
            mock.get(SEARCH, body=requests.exceptions.ReadTimeout("slow"))
        with pytest.raises(ServiceError) as err:
            deezer_search_track("Britney Spears", "Toxic", policy=policy)
    assert "timed out" in str(err.value) and "gave up after 3 attempts" in str(err.value) and "\n" not in str(err.value)


def test_search_answer_that_is_not_a_track_list_is_an_error(policy):
    with responses.RequestsMock() as mock:
        mock.get(SEARCH, json={"unexpected": True})
        with pytest.raises(AcquireError, match="no data list"):
            deezer_search_track("A", "B", policy=policy)
        mock.get(SEARCH, status=403)
        with pytest.raises(ForbiddenError):
            deezer_search_track("A", "B", policy=policy)


def test_chart_table_previews_by_search_with_an_index_of_names(policy, tmp_path):
    charts = tmp_path / "charts.csv"
    charts.write_text("artist,song,year,energy,genre\n"
                      "Britney Spears,Toxic,2003,0.84,pop\n"
                      "Britney Spears,Toxic,2003,0.84,pop\n"  # the Top Hits table repeats songs
                      "Beyoncé & JAY-Z,Crazy In Love,2003,0.78,pop\n"
                      "Nobody,Unknown,2001,0.1,rock\n", encoding="utf-8")
    out = tmp_path / "previews"
    with responses.RequestsMock() as mock:
        mock.get(SEARCH, match=[matchers.query_param_matcher(query("Britney Spears", "Toxic"))],
                 json=search_answer(track(5, "Toxic", "Britney Spears")))
        mock.get(SEARCH, match=[matchers.query_param_matcher(query("Beyoncé", "Crazy In Love"))],
                 json=search_answer(track(6, "Crazy In Love (feat. Jay-Z)", "Beyoncé", preview="")))
        mock.get(SEARCH, match=[matchers.query_param_matcher(query("Nobody", "Unknown"))], json=search_answer())
        mock.get(PREVIEW, body=MP3)
        report = download_previews(charts, out, workers=2, policy=policy, progress=False)

    toxic = chart_track_id("Britney Spears", "Toxic")
    assert report.downloaded == [toxic] and (out / f"{toxic}.mp3").read_bytes() == MP3
    assert toxic.startswith("britney-spears-toxic-")
    crazy, nobody = chart_track_id("Beyoncé & JAY-Z", "Crazy In Love"), chart_track_id("Nobody", "Unknown")
    assert report.failed[crazy].startswith("no preview: Deezer track 6 (Beyoncé & JAY-Z - Crazy In Love) has no preview")
    assert report.failed[nobody].startswith("not found: Deezer search found no track")
    with open(out / PREVIEWS_INDEX, newline="", encoding="utf-8") as handle:
        index = list(csv.DictReader(handle))
    assert index == [{"id": toxic, "artist": "Britney Spears", "title": "Toxic", "isrc": "", "file": f"{toxic}.mp3"}]

    with responses.RequestsMock() as mock:  # a rerun asks nothing for what is there, keeps the index
        mock.get(SEARCH, json=search_answer())
        again = download_previews(charts, out, workers=1, policy=policy, progress=False)
    assert again.skipped == [toxic]
    with open(out / PREVIEWS_INDEX, newline="", encoding="utf-8") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == [toxic]


def test_an_isrc_deezer_does_not_know_falls_back_to_search(policy, tmp_path):
    rows = [{"id": "t1", "isrc": "USSM11600001", "name": "Toxic", "artists": "Britney Spears", "preview_url": ""}]
    with responses.RequestsMock() as mock:
        mock.get("https://api.deezer.com/track/isrc:USSM11600001",
                 json={"error": {"type": "DataException", "message": "no data", "code": 800}})
        mock.get(SEARCH, json=search_answer(track(5, "Toxic", "Britney Spears")))
        mock.get(PREVIEW, body=MP3)
        report = download_previews(rows, tmp_path, workers=1, policy=policy, progress=False)
    assert report.downloaded == ["t1"]


def test_a_table_without_ids_names_or_isrcs_is_refused(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("song,year\nToxic,2003\n", encoding="utf-8")
    with pytest.raises(TracklensError, match="'artist' and a title"):
        download_previews(bad, tmp_path / "p", progress=False)


@pytest.mark.parametrize("a, b", [
    ("Oops!...I Did It Again", "Oops!... I Did It Again"),
    ("Crazy In Love (feat. Jay-Z)", "crazy in love"),
    ("Beyoncé", "Beyonce"),
    ("Song - Radio Edit", "song"),
])
def test_names_normalise_alike(a, b):
    assert normalise_name(a) == normalise_name(b)


def test_first_artist_of_a_credit():
    assert first_artist("Beyoncé & JAY-Z") == first_artist("Beyonce; Jay-Z") == "beyonce"
    assert first_artist("Tyler, The Creator") == "tyler"  # a known limit: commas split credits
