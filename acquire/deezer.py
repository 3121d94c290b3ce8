"""Deezer: a track (and its 30 s preview link) by ISRC, or by artist + title for chart rows.

Deezer's public API needs no credentials. It reports errors as HTTP 200 with an ``error`` body,
which is mapped onto the errors of :mod:`tracklens.acquire.web` like an HTTP status.
"""

from __future__ import annotations

import re

from tracklens.acquire.rows import first_artist, normalise_name
from tracklens.acquire.web import (AcquireError, NotFoundError, RetryPolicy, Transient, default_session,
                                   http_get, retry_call)

DEEZER_ISRC_URL = "https://api.deezer.com/track/isrc:{isrc}"
DEEZER_SEARCH_URL = "https://api.deezer.com/search?q={query}&limit={limit}"
DEEZER_SEARCH_LIMIT = 10  # candidates read per search; the best exact artist + title match wins

# Deezer answers HTTP 200 with {"error": {...}}; these codes are worth a retry.
DEEZER_TRANSIENT_CODES = {4, 700}  # 4 = quota (50 requests / 5 s), 700 = service busy
DEEZER_NOT_FOUND_CODES = {800}


def deezer_track_by_isrc(isrc: str, *, session=None, policy: RetryPolicy | None = None) -> dict:
    """Deezer's public track object for an ISRC (``preview``, ``id``, ``title``, ...).

    Deezer reports errors as HTTP 200 with ``{"error": {"type", "message", "code"}}``: code 800
    becomes NotFoundError, quota (4) and busy (700) are retried, others are AcquireError.
    """
    policy = policy or RetryPolicy()
    session = session or default_session()
    isrc = isrc.strip().upper()
    what = f"Deezer ISRC {isrc}"

    def attempt():
        body = _deezer_body(http_get(session, DEEZER_ISRC_URL.format(isrc=isrc), what=what), what,
                            not_found=f"Deezer has no track with ISRC {isrc}")
        if "id" not in body:
            raise AcquireError(f"{what}: unexpected answer (no track id)")
        return body

    return retry_call(attempt, what=what, policy=policy)


def _deezer_body(response, what: str, *, not_found: str | None = None) -> dict:
    """A Deezer answer's JSON object; its HTTP-200 error bodies raised as Transient / NotFound / AcquireError."""
    try:
        body = response.json()
    except ValueError:
        raise Transient("answer is not JSON") from None
    error = body.get("error") if isinstance(body, dict) else None
    if error:
        code, message = error.get("code"), error.get("message") or error.get("type") or "error"
        if code in DEEZER_TRANSIENT_CODES:
            raise Transient(f"Deezer error {code} ({message})", status=429 if code == 4 else None)
        if code in DEEZER_NOT_FOUND_CODES:
            raise NotFoundError(not_found or f"{what}: Deezer has no such track")
        raise AcquireError(f"{what}: Deezer error {code} ({message})")
    if not isinstance(body, dict):
        raise AcquireError(f"{what}: unexpected answer (not a JSON object)")
    return body


def _matches(track: dict, artist: str, title: str) -> bool:
    """Whether a Deezer track object is the chart row's song: the same normalised title (full
    or short) and the first credited artist equal to, or contained in, Deezer's artist name."""
    names = {normalise_name(track.get("title")), normalise_name(track.get("title_short"))}
    theirs = normalise_name((track.get("artist") or {}).get("name"))
    ours = first_artist(artist)
    return normalise_name(title) in names and bool(ours) and (ours == theirs or ours in theirs or theirs in ours)


def deezer_search_track(artist: str, title: str, *, session=None, policy: RetryPolicy | None = None) -> dict:
    """Deezer's track object for a song named by artist + title (charts carry no ISRC).

    Asks Deezer's search (``artist:"..." track:"..."``) and takes the first result whose
    normalised title and artist match (:func:`normalise_name`, :func:`first_artist`): a cover or
    a karaoke version under another artist's name is not taken. Raises NotFoundError when no
    result matches; quota / busy errors and 429 / 5xx / timeouts are retried like every call.
    """
    from urllib.parse import quote

    policy = policy or RetryPolicy()
    session = session or default_session()
    artist_q = re.split(r";|,| & | feat\.? | ft\.? ", str(artist), maxsplit=1, flags=re.I)[0].strip()
    title_q = re.sub(r"\s*[\(\[].*?[\)\]]", "", str(title)).strip()
    query = f'artist:"{artist_q}" track:"{title_q}"'
    what = f"Deezer search {artist_q} - {title_q}"
    url = DEEZER_SEARCH_URL.format(query=quote(query, safe=""), limit=DEEZER_SEARCH_LIMIT)

    def attempt() -> dict:
        body = _deezer_body(http_get(session, url, what=what), what)
        results = body.get("data")
        if not isinstance(results, list):
            raise AcquireError(f"{what}: unexpected answer (no data list)")
        for track in results:
            if isinstance(track, dict) and track.get("id") and _matches(track, artist, title):
                return track
        raise NotFoundError(f"Deezer search found no track by {artist_q!r} titled {title_q!r}"
                            + (f" ({len(results)} other results)" if results else ""))

    return retry_call(attempt, what=what, policy=policy)
