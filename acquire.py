"""Acquire raw inputs: Spotify track metadata, 30 s previews, chart CSVs and folders of audio.

Everything here writes into ``data/raw`` (or a path the caller names) and nothing else in the
project is imported except config, errors, fileio and audio.

Writes are atomic (:mod:`fileio`: a temp file in the destination folder, then ``os.replace``), so an
interrupted run never leaves a half-written file under its final name, and every writer
resumes: re-running skips what is already there.

Network faults are handled in one place (:func:`retry_call`): 429 honours ``Retry-After``;
5xx, timeouts and dropped connections get a bounded exponential back-off; everything else is
a :class:`errors.TracklensError` with a one-line message. Sleeps go through
:class:`RetryPolicy` so tests run instantly.
"""

from __future__ import annotations

import csv
import email.utils
import errno
import itertools
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tracklens import config
from tracklens.errors import CredentialsError, TracklensError
from tracklens import fileio
from tracklens.fileio import atomic_output, escape_cell, unescape_cell

logger = logging.getLogger("tracklens.acquire")

# --- output schemas -------------------------------------------------------------------------

#: Audio-feature columns filled only when Spotify's audio-features endpoint answers (it is
#: closed to apps created after Nov 2024, so these are usually empty).
AUDIO_FEATURE_COLUMNS = (
    "danceability", "energy", "key", "loudness", "mode", "speechiness",
    "acousticness", "instrumentalness", "liveness", "valence", "tempo",
)
#: One row per track. List-valued fields are joined with LIST_SEP ("; "), because artist
#: names themselves contain commas ("Tyler, The Creator").
TRACK_COLUMNS = (
    "id", "name", "artists", "artist_ids", "album", "release_date", "popularity", "explicit",
    "duration_ms", "isrc", "preview_url", "artist_genres", "source",
) + AUDIO_FEATURE_COLUMNS
LIST_SEP = "; "

MANIFEST_COLUMNS = ("path", "label", "duration_s", "sample_rate", "channels", "checksum", "error")

SPOTIFY_SOURCES = ("playlist", "album", "artist", "search")
SPOTIFY_DEFAULT_OUT = config.RAW_DATA_DIR / "spotify_tracks.csv"
PREVIEWS_DIR = config.RAW_DATA_DIR / "previews"
DEEZER_ISRC_URL = "https://api.deezer.com/track/isrc:{isrc}"
DEEZER_SEARCH_URL = "https://api.deezer.com/search?q={query}&limit={limit}"
DEEZER_SEARCH_LIMIT = 10  # candidates read per search; the best exact artist + title match wins
#: written into a previews folder: which file is which track (id, artist, title, isrc), so
#: `tracklens catalogue build FOLDER --meta TABLE` can name the files and join the table
PREVIEWS_INDEX = "previews.csv"
PREVIEWS_INDEX_COLUMNS = ("id", "artist", "title", "isrc", "file")
#: column names a chart or tracks table uses for the artist and the title (first found wins)
ARTIST_COLUMNS = ("artist", "artists", "artist_name")
TITLE_COLUMNS = ("title", "song", "name", "track", "track_name")

# Page sizes: the 2026 Web API caps search at 10 per page; several-artists at 50 ids;
# audio-features at 100 ids; several-tracks at 50 ids.
SEARCH_PAGE = 10
PLAYLIST_PAGE = 100
ARTIST_BATCH = 50
TRACK_BATCH = 50
FEATURE_BATCH = 100
SEARCH_MAX_OFFSET = 1000  # Spotify refuses offsets beyond this

# Deezer answers HTTP 200 with {"error": {...}}; these codes are worth a retry.
DEEZER_TRANSIENT_CODES = {4, 700}  # 4 = quota (50 requests / 5 s), 700 = service busy
DEEZER_NOT_FOUND_CODES = {800}

# RFC 6749 error codes of the token endpoint that mean "these credentials will not work".
OAUTH_CLIENT_ERRORS = {"invalid_client", "unauthorized_client", "invalid_grant", "invalid_request",
                       "unsupported_grant_type", "invalid_scope"}

MISSING_CREDENTIALS = (
    "Spotify credentials are not set: put SPOTIPY_CLIENT_ID=... and SPOTIPY_CLIENT_SECRET=... "
    "in the environment or in {env} (from an app at https://developer.spotify.com/dashboard); "
    "everything except `acquire spotify` works without them"
)


class AcquireError(TracklensError):
    """A remote service refused or failed a request in a way retrying will not fix."""


class NotFoundError(AcquireError):
    """The service has no such item (HTTP 404 or an equivalent error body)."""


class ForbiddenError(AcquireError):
    """The service refused the request (HTTP 403)."""


class RateLimitError(AcquireError):
    """Still rate-limited (HTTP 429) after the allowed retries."""


class ServiceError(AcquireError):
    """Server errors (5xx), timeouts or dropped connections outlasted the allowed retries."""


class NoPreviewError(AcquireError):
    """A track has no preview to download (no URL, no ISRC, or none on Deezer)."""


def failure_kind(exc: Exception) -> str:
    """A short category for grouping failures in summaries."""
    for kind, name in ((RateLimitError, "rate-limited"), (ServiceError, "network/server error"),
                       (NotFoundError, "not found"), (ForbiddenError, "forbidden"),
                       (NoPreviewError, "no preview")):
        if isinstance(exc, kind):
            return name
    return "failed"


# --- retries ---------------------------------------------------------------------------------


class Transient(Exception):
    """A failure worth retrying. ``retry_after`` (seconds) comes from the server when known."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def _sleep(seconds: float) -> None:  # module-level so tests can replace it in one place
    time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure.

    max_attempts : int >= 1, tries in all (the first call included)
    base_delay, max_delay : seconds; the n-th retry waits ``min(max_delay, base_delay * 2**(n-1))``
    max_retry_after : seconds; a ``Retry-After`` longer than this gives up at once instead of
        blocking for minutes (Spotify sends hours when an app is throttled hard)
    sleep : called with the seconds to wait; None means ``time.sleep``
    """

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] | None = None

    def backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1-based) when the server gave no hint."""
        return min(self.max_delay, self.base_delay * 2 ** (retry - 1))

    def wait(self, seconds: float) -> None:
        (self.sleep or _sleep)(seconds)


def retry_call(fn: Callable[[], object], *, what: str, policy: RetryPolicy):
    """Call ``fn()`` until it stops raising :class:`Transient`, within ``policy``.

    Raises RateLimitError (still 429) or ServiceError (5xx/timeouts) naming ``what`` once the
    attempts are used up; any other exception passes straight through.
    """
    last: Transient | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except Transient as exc:
            last = exc
            if attempt == policy.max_attempts:
                break
            if exc.retry_after is not None:
                if exc.retry_after > policy.max_retry_after:
                    raise RateLimitError(
                        f"{what}: the server asks to wait {exc.retry_after:.0f} s (Retry-After), longer "
                        f"than the {policy.max_retry_after:.0f} s limit; try again later (re-running resumes)"
                    ) from None
                delay = max(0.0, exc.retry_after)
            else:
                delay = policy.backoff(attempt)
            logger.info("%s: %s; retry %d/%d in %.1f s", what, exc.reason, attempt,
                        policy.max_attempts - 1, delay)
            policy.wait(delay)
    assert last is not None
    if last.status == 429:
        raise RateLimitError(
            f"{what}: still rate-limited (HTTP 429) after {policy.max_attempts} attempts; "
            "try again later (re-running resumes)"
        )
    raise ServiceError(f"{what}: {last.reason} (gave up after {policy.max_attempts} attempts)")


def _retry_after(headers) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    value = (headers or {}).get("Retry-After")
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _write_csv(path: Path, rows: list[dict], columns: Iterable[str]) -> None:
    """Rows as CSV, cells a spreadsheet would run escaped (:func:`fileio.escape_cell`)."""
    with atomic_output(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({key: escape_cell(value) for key, value in row.items()} for row in rows)


def _read_csv_rows(path: Path, *, required: Iterable[str], purpose: str) -> tuple[list[dict], list[str]]:
    """Rows (as str dicts) and header of a CSV we wrote earlier, checking ``required`` columns."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = [{key: unescape_cell(value) for key, value in row.items()} for row in reader]
    except UnicodeDecodeError as exc:
        raise TracklensError(f"{path}: not a UTF-8 CSV ({exc.reason})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise TracklensError(f"{path}: not {purpose} (missing column(s) {', '.join(missing)})")
    return rows, header


# --- Spotify ---------------------------------------------------------------------------------

_SPOTIFY_ID = re.compile(r"^[0-9A-Za-z]{22}$")
_SPOTIFY_URI = re.compile(r"^spotify:(?P<type>[a-z]+):(?P<id>[0-9A-Za-z]{22})$")
_SPOTIFY_URL = re.compile(
    r"^https?://open\.spotify\.com/(?:intl-[a-z]{2}/)?(?P<type>[a-z]+)/(?P<id>[0-9A-Za-z]{22})(?:[/?#].*)?$"
)


def parse_spotify_ref(kind: str, ref: str) -> str:
    """The bare Spotify ID from an ID, ``spotify:<kind>:<id>`` URI or open.spotify.com URL.

    Raises TracklensError when ``ref`` is none of these or names another kind of object.
    """
    ref = ref.strip()
    if _SPOTIFY_ID.match(ref):
        return ref
    match = _SPOTIFY_URI.match(ref) or _SPOTIFY_URL.match(ref)
    if match is None:
        raise TracklensError(f"{ref!r} is not a Spotify {kind} ID, URI or URL (e.g. spotify:{kind}:<22 characters>)")
    if match["type"] != kind:
        raise TracklensError(f"{ref!r} is a Spotify {match['type']}, not a {kind}")
    return match["id"]


def spotify_client(*, credentials: tuple[str, str] | None = None, timeout: float = 10.0):
    """A spotipy client using the Client Credentials flow, with spotipy's own retries off.

    Credentials come from ``config.spotify_credentials()`` (environment or `.env`) unless given.
    Raises CredentialsError, saying how to set them, when they are missing.
    """
    import requests
    import spotipy
    from spotipy.cache_handler import MemoryCacheHandler
    from spotipy.oauth2 import SpotifyClientCredentials

    credentials = credentials or config.spotify_credentials()
    if credentials is None:
        raise CredentialsError(MISSING_CREDENTIALS.format(env=config.HOME / ".env"))
    # spotipy logs every HTTP error at ERROR level (and the bearer token at DEBUG); errors are
    # reported once, by us, so keep its logger quiet.
    logging.getLogger("spotipy").setLevel(logging.CRITICAL)
    # A plain Session has no urllib3 retry adapter: spotipy's built-in retries would turn a
    # 503 storm into "429 Max Retries" and ignore Retry-After, so retry_call does it instead.
    session = requests.Session()
    client_id, client_secret = credentials
    auth = SpotifyClientCredentials(
        client_id=client_id, client_secret=client_secret, requests_session=session,
        requests_timeout=timeout, cache_handler=MemoryCacheHandler(),  # no `.cache` file on disk
    )
    return spotipy.Spotify(auth_manager=auth, requests_session=session, requests_timeout=timeout,
                           retries=0, status_retries=0)


def _spotify_message(exc) -> str:
    # SpotifyException.msg is "<url>:\n <message>"; keep the message only, on one line.
    text = str(getattr(exc, "msg", "") or "").strip().splitlines()
    return text[-1].strip() if text else ""


class SpotifyCatalog:
    """Reads tracks from the Spotify Web API through a spotipy client, with retries.

    Optional endpoints (audio-features, several-artists, several-tracks) that answer 403 are
    reported once in the log and skipped for the rest of the session; ``unavailable`` records
    which and why.
    """

    def __init__(self, client, *, policy: RetryPolicy | None = None, market: str | None = None):
        self.client = client
        self.policy = policy or RetryPolicy()
        self.market = market
        self.unavailable: dict[str, str] = {}
        self._genres: dict[str, list[str]] = {}

    # -- plumbing --

    def call(self, what: str, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` with Spotify's errors mapped and transient ones retried."""
        import requests
        from spotipy.exceptions import SpotifyException
        from spotipy.oauth2 import SpotifyOauthError

        def attempt():
            try:
                return fn(*args, **kwargs)
            except SpotifyException as exc:
                raise _map_spotify_error(exc, what) from None
            except SpotifyOauthError as exc:
                detail = (": ".join(str(p) for p in (exc.error, exc.error_description) if p) or "no details")[:200]
                if exc.error not in OAUTH_CLIENT_ERRORS:  # 5xx/429 pages from the token endpoint
                    raise Transient(f"access token request failed ({detail[:80]})") from None
                raise CredentialsError(
                    f"Spotify refused the client credentials ({detail}); check SPOTIPY_CLIENT_ID and "
                    "SPOTIPY_CLIENT_SECRET in the environment or .env"
                ) from None
            except requests.Timeout as exc:
                raise Transient(f"timed out ({type(exc).__name__})") from None
            except requests.ConnectionError as exc:
                raise Transient(f"connection failed ({type(exc).__name__})") from None

        return retry_call(attempt, what=f"Spotify {what}", policy=self.policy)

    def optional(self, endpoint: str, what: str, fn: Callable, *args, **kwargs):
        """Like :meth:`call`, but a 403 disables ``endpoint`` (said once) and returns None."""
        if endpoint in self.unavailable:
            return None
        try:
            return self.call(what, fn, *args, **kwargs)
        except ForbiddenError as exc:
            self.unavailable[endpoint] = str(exc)
            logger.warning("Spotify's %s endpoint answered 403 Forbidden (closed to apps created after "
                           "Nov 2024 or in development mode); continuing without it", endpoint)
            return None

    def _pages(self, what: str, first: dict, unwrap: Callable[[dict], dict] = lambda page: page):
        """Follow ``next`` links from a paging object, yielding each page's ``items``."""
        page = first
        while page:
            yield page.get("items") or []
            if not page.get("next"):
                return
            page = unwrap(self.call(f"{what} (next page)", self.client.next, page))

    # -- sources: each yields pages (lists) of full or simplified track objects --

    def playlist_tracks(self, playlist: str) -> Iterator[list[dict]]:
        pid = parse_spotify_ref("playlist", playlist)
        what = f"playlist {pid}"
        try:
            first = self.call(what, self.client.playlist_items, pid, limit=PLAYLIST_PAGE,
                              market=self.market, additional_types=("track",))
        except (ForbiddenError, NotFoundError) as exc:
            raise type(exc)(f"{exc} (new apps cannot read Spotify's editorial or algorithmic playlists, "
                            "and playlist items are served only for playlists the signed-in user owns; "
                            "try an album, an artist or a search)") from None
        for items in self._pages(what, first):
            # The 2026 API returns the track under "item"; older responses under "track".
            yield [entry.get("item") or entry.get("track") for entry in items if entry]

    def album_tracks(self, album: str) -> Iterator[list[dict]]:
        aid = parse_spotify_ref("album", album)
        what = f"album {aid}"
        info = self.call(what, self.client.album, aid, market=self.market)
        album_part = {"name": info.get("name", ""), "release_date": info.get("release_date", "")}
        for items in self._pages(what, info.get("tracks") or {}):
            simple = [{**t, "album": album_part} for t in items if t]
            yield self._full_tracks(simple)

    def artist_top_tracks(self, artist: str) -> Iterator[list[dict]]:
        aid = parse_spotify_ref("artist", artist)
        result = self.call(f"artist {aid} top tracks", self.client.artist_top_tracks, aid,
                           country=self.market or "US")
        yield result.get("tracks") or []

    def search_tracks(self, query: str) -> Iterator[list[dict]]:
        if not query.strip():
            raise TracklensError("the search query is empty")
        what = f"search {query!r}"
        first = self.call(what, self.client.search, query, limit=SEARCH_PAGE, offset=0,
                          type="track", market=self.market)
        pages = self._pages(what, first.get("tracks") or {}, unwrap=lambda r: (r or {}).get("tracks") or {})
        yield from itertools.islice(pages, SEARCH_MAX_OFFSET // SEARCH_PAGE)

    def _full_tracks(self, simple: list[dict]) -> list[dict]:
        """Swap simplified tracks (no popularity, no ISRC) for full ones, 50 ids per call."""
        by_id = {}
        ids = [t["id"] for t in simple if t.get("id")]
        for start in range(0, len(ids), TRACK_BATCH):
            chunk = ids[start:start + TRACK_BATCH]
            result = self.optional("tracks", f"tracks ({len(chunk)} ids)", self.client.tracks, chunk,
                                   market=self.market)
            for track in (result or {}).get("tracks") or []:
                if track and track.get("id"):
                    by_id[track["id"]] = track
        return [by_id.get(t.get("id")) or t for t in simple]

    # -- enrichment --

    def artist_genres(self, artist_ids: Iterable[str]) -> dict[str, list[str]]:
        """Genres per artist id, looked up 50 ids per call and cached for the session."""
        todo = list(dict.fromkeys(a for a in artist_ids if a and a not in self._genres))
        for start in range(0, len(todo), ARTIST_BATCH):
            chunk = todo[start:start + ARTIST_BATCH]
            result = self.optional("artists", f"artists ({len(chunk)} ids)", self.client.artists, chunk)
            if result is None:
                break
            for artist in result.get("artists") or []:
                if artist and artist.get("id"):
                    self._genres[artist["id"]] = list(artist.get("genres") or [])
        return self._genres

    def audio_features(self, track_ids: list[str]) -> dict[str, dict]:
        """Audio features per track id (100 ids per call); {} once the endpoint said 403."""
        features = {}
        for start in range(0, len(track_ids), FEATURE_BATCH):
            chunk = track_ids[start:start + FEATURE_BATCH]
            result = self.optional("audio-features", f"audio-features ({len(chunk)} ids)",
                                   self.client.audio_features, chunk)
            if result is None:
                break
            for item in result or []:
                if item and item.get("id"):
                    features[item["id"]] = item
        return features


def _map_spotify_error(exc, what: str) -> Exception:
    status = getattr(exc, "http_status", None)
    message = _spotify_message(exc)
    detail = f": {message}" if message else ""
    if status == 401:
        return CredentialsError(
            f"Spotify answered 401 Unauthorized for {what}{detail}; the access token was rejected - "
            "check SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET in the environment or .env"
        )
    if status == 403:
        return ForbiddenError(f"Spotify answered 403 Forbidden for {what}{detail}")
    if status == 404:
        return NotFoundError(f"Spotify has no {what} (404 Not Found{detail})")
    if status == 429:
        return Transient("rate-limited (HTTP 429)", status=429, retry_after=_retry_after(exc.headers))
    if status is not None and status >= 500:
        return Transient(f"server error (HTTP {status})", status=status, retry_after=_retry_after(exc.headers))
    return AcquireError(f"Spotify rejected {what} (HTTP {status}{detail})")


def _track_row(track: dict, *, genres: dict[str, list[str]], features: dict[str, dict], source: str) -> dict:
    artists = [a for a in track.get("artists") or [] if a]
    album = track.get("album") or {}
    artist_genres = dict.fromkeys(g for a in artists for g in genres.get(a.get("id"), []))
    row = {
        "id": track["id"],
        "name": track.get("name") or "",
        "artists": LIST_SEP.join(a.get("name") or "" for a in artists),
        "artist_ids": LIST_SEP.join(a.get("id") or "" for a in artists),
        "album": album.get("name") or "",
        "release_date": album.get("release_date") or "",
        "popularity": track.get("popularity", ""),
        "explicit": bool(track.get("explicit", False)),
        "duration_ms": track.get("duration_ms", ""),
        "isrc": (track.get("external_ids") or {}).get("isrc") or "",
        "preview_url": track.get("preview_url") or "",
        "artist_genres": LIST_SEP.join(artist_genres),
        "source": source,
    }
    feats = features.get(track["id"]) or {}
    row.update({c: feats.get(c, "") for c in AUDIO_FEATURE_COLUMNS})
    return row


@dataclass
class SpotifyResult:
    """What :func:`acquire_spotify` did. ``unavailable`` maps skipped endpoints to the reason."""

    path: Path
    added: int = 0
    already_present: int = 0
    skipped: int = 0  # local files, podcast episodes, removed tracks
    total_rows: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)


def acquire_spotify(
    source: str,
    ref: str,
    out: str | Path = SPOTIFY_DEFAULT_OUT,
    *,
    client=None,
    market: str | None = None,
    limit: int | None = None,
    policy: RetryPolicy | None = None,
    progress: bool = True,
) -> SpotifyResult:
    """Append the tracks of a playlist, album, artist's top tracks or search to a CSV.

    Parameters
    ----------
    source : one of SPOTIFY_SOURCES ("playlist", "album", "artist", "search")
    ref : a Spotify ID, URI or URL (or the query text for "search")
    out : CSV path; an existing file is resumed: tracks whose id is already there are skipped
    client : a spotipy client (default: :func:`spotify_client`, credentials from env/.env)
    market : ISO 3166-1 alpha-2 country for availability (top tracks default to "US")
    limit : stop after this many tracks from the source (search defaults to 50)
    policy : retries for 429/5xx/timeouts

    The file is rewritten atomically after every page, so a failure mid-way (a 429 storm,
    Ctrl-C) keeps every row written so far. Columns: TRACK_COLUMNS.
    """
    from tqdm.auto import tqdm

    if source not in SPOTIFY_SOURCES:
        raise TracklensError(f"unknown Spotify source {source!r}; use one of {', '.join(SPOTIFY_SOURCES)}")
    if limit is not None and limit < 1:
        raise TracklensError(f"limit={limit} must be a positive integer")
    out = Path(out)
    rows, header = _read_csv_rows(out, required=("id",), purpose="a tracklens tracks CSV") if out.exists() else ([], [])
    columns = list(TRACK_COLUMNS) + [c for c in header if c not in TRACK_COLUMNS]
    known = {r["id"] for r in rows if r.get("id")}

    catalog = SpotifyCatalog(client if client is not None else spotify_client(), policy=policy, market=market)
    pages = {
        "playlist": catalog.playlist_tracks,
        "album": catalog.album_tracks,
        "artist": catalog.artist_top_tracks,
        "search": catalog.search_tracks,
    }[source](ref)
    if source == "search" and limit is None:
        limit = 50
    tag = f"{source}:{ref.strip()}"
    result = SpotifyResult(path=out, unavailable=catalog.unavailable)
    seen = 0
    with tqdm(desc=f"Spotify {source}", unit="track", total=limit, disable=not progress) as bar:
        for page in pages:
            if limit is not None:
                page = page[: max(0, limit - seen)]
            seen += len(page)
            bar.update(len(page))
            new = []
            for track in page:
                if not track or track.get("type", "track") != "track" or track.get("is_local") or not track.get("id"):
                    result.skipped += 1
                elif track["id"] in known:
                    result.already_present += 1
                else:
                    known.add(track["id"])
                    new.append(track)
            if new:
                genres = catalog.artist_genres(a.get("id") for t in new for a in t.get("artists") or [] if a)
                features = catalog.audio_features([t["id"] for t in new])
                rows.extend(_track_row(t, genres=genres, features=features, source=tag) for t in new)
                _write_csv(out, rows, columns)
                result.added += len(new)
            if limit is not None and seen >= limit:
                break
    if not out.exists():  # nothing new and no earlier file: still leave a header-only CSV
        _write_csv(out, rows, columns)
    result.total_rows = len(rows)
    return result


# --- previews (Deezer) -----------------------------------------------------------------------

_SAFE_NAME = re.compile(r"^[0-9A-Za-z_-]+$")
_thread_local = threading.local()


def _default_session():
    import requests

    session = getattr(_thread_local, "session", None)
    if session is None:  # one Session per worker thread: Session is not documented thread-safe
        session = _thread_local.session = requests.Session()
    return session


def _http_get(session, url: str, *, what: str, stream: bool = False, timeout: float = 15.0):
    """One GET: returns the response for 2xx, raises Transient for 429/5xx/network faults and
    AcquireError (NotFoundError/ForbiddenError) for the rest."""
    import requests

    try:
        response = session.get(url, stream=stream, timeout=timeout)
    except requests.Timeout as exc:
        raise Transient(f"timed out ({type(exc).__name__})") from None
    except requests.ConnectionError as exc:
        raise Transient(f"connection failed ({type(exc).__name__})") from None
    status = response.status_code
    if status < 300:
        return response
    response.close()
    if status == 429 or status >= 500:
        raise Transient(f"HTTP {status}", status=status, retry_after=_retry_after(response.headers))
    if status == 404:
        raise NotFoundError(f"{what}: HTTP 404 Not Found")
    if status == 403:
        raise ForbiddenError(f"{what}: HTTP 403 Forbidden (an expired signed link?)")
    raise AcquireError(f"{what}: HTTP {status}")


def deezer_track_by_isrc(isrc: str, *, session=None, policy: RetryPolicy | None = None) -> dict:
    """Deezer's public track object for an ISRC (``preview``, ``id``, ``title``, ...).

    Deezer reports errors as HTTP 200 with ``{"error": {"type", "message", "code"}}``: code 800
    becomes NotFoundError, quota (4) and busy (700) are retried, others are AcquireError.
    """
    policy = policy or RetryPolicy()
    session = session or _default_session()
    isrc = isrc.strip().upper()
    what = f"Deezer ISRC {isrc}"

    def attempt():
        body = _deezer_body(_http_get(session, DEEZER_ISRC_URL.format(isrc=isrc), what=what), what,
                            not_found=f"Deezer has no track with ISRC {isrc}")
        if "id" not in body:
            raise AcquireError(f"{what}: unexpected answer (no track id)")
        return body

    return retry_call(attempt, what=what, policy=policy)


def normalise_name(text) -> str:
    """Artist / title text reduced for matching: accents, case, punctuation, "feat. ..." and
    bracketed or dashed versions ("(Remastered 2011)", "- Radio Edit") removed."""
    import unicodedata

    if text is None or (isinstance(text, float) and text != text):
        return ""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[\(\[].*?[\)\]]", " ", text)
    text = re.sub(r"\s+-\s+.*$", " ", text)  # "Song - Radio Edit"
    text = re.sub(r"\b(feat|ft|featuring)\b.*$", " ", text)
    text = text.replace("&", " and ")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def first_artist(text) -> str:
    """The first credited artist, normalised ("A; B", "A, B", "A & B" and "A feat. B" name several)."""
    return normalise_name(re.split(r";|,| & | x | feat\.? | ft\.? ", str(text or ""), maxsplit=1, flags=re.I)[0])


def pick_column(columns: Iterable[str], names: Iterable[str]) -> str | None:
    """The first of ``names`` among ``columns`` (any case), as spelled in ``columns``."""
    lower = {str(c).lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def chart_track_id(artist: str, title: str) -> str:
    """A file-name-safe id for a chart row without one: ``artist-title`` slug + 8 hex of its hash."""
    import hashlib

    key = f"{first_artist(artist)}|{normalise_name(title)}"
    slug = re.sub(r"[^0-9A-Za-z]+", "-", f"{first_artist(artist)} {normalise_name(title)}").strip("-")[:60]
    return f"{slug or 'track'}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


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
    session = session or _default_session()
    artist_q = re.split(r";|,| & | feat\.? | ft\.? ", str(artist), maxsplit=1, flags=re.I)[0].strip()
    title_q = re.sub(r"\s*[\(\[].*?[\)\]]", "", str(title)).strip()
    query = f'artist:"{artist_q}" track:"{title_q}"'
    what = f"Deezer search {artist_q} - {title_q}"
    url = DEEZER_SEARCH_URL.format(query=quote(query, safe=""), limit=DEEZER_SEARCH_LIMIT)

    def attempt() -> dict:
        body = _deezer_body(_http_get(session, url, what=what), what)
        results = body.get("data")
        if not isinstance(results, list):
            raise AcquireError(f"{what}: unexpected answer (no data list)")
        for track in results:
            if isinstance(track, dict) and track.get("id") and _matches(track, artist, title):
                return track
        raise NotFoundError(f"Deezer search found no track by {artist_q!r} titled {title_q!r}"
                            + (f" ({len(results)} other results)" if results else ""))

    return retry_call(attempt, what=what, policy=policy)


def _looks_like_mp3(head: bytes) -> bool:
    # An ID3 tag, or an MPEG audio frame sync (11 set bits).
    return head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0)


def download_file(url: str, dest: str | Path, *, session=None, policy: RetryPolicy | None = None,
                  check: Callable[[bytes], bool] | None = _looks_like_mp3, what: str | None = None) -> int:
    """Stream ``url`` into ``dest`` atomically; returns the byte count.

    A download cut half-way (short read against Content-Length, dropped connection) is retried
    within ``policy`` and never leaves a file under ``dest``. ``check`` vets the first bytes.
    """
    import requests

    policy = policy or RetryPolicy()
    session = session or _default_session()
    dest = Path(dest)
    what = what or f"download {url.split('?')[0]}"

    def attempt() -> int:
        response = _http_get(session, url, what=what, stream=True)
        expected = response.headers.get("Content-Length")
        written = 0
        try:
            with atomic_output(dest, "wb") as handle:
                for chunk in response.iter_content(chunk_size=64 * 1024):
                    if written == 0 and check is not None and not check(chunk[:16]):
                        raise AcquireError(f"{what}: not an MP3 (starts with {chunk[:8]!r})")
                    handle.write(chunk)
                    written += len(chunk)
                if written == 0:
                    raise AcquireError(f"{what}: empty body")
                if expected is not None and expected.isdigit() and written != int(expected):
                    raise Transient(f"cut off at {written} of {expected} bytes")
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as exc:
            raise Transient(f"cut off after {written} bytes ({type(exc).__name__})") from None
        finally:
            response.close()
        return written

    return retry_call(attempt, what=what, policy=policy)


@dataclass
class PreviewReport:
    """Outcome of :func:`download_previews`: ids downloaded, already there, and failed (with why)."""

    out_dir: Path
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary_lines(self, max_failures: int = 10) -> list[str]:
        """A short human summary: counts, failures grouped by reason, the first few ids."""
        lines = [f"{len(self.downloaded)} downloaded, {len(self.skipped)} already there, "
                 f"{len(self.failed)} failed -> {self.out_dir}"]
        if self.failed:
            kinds = Counter(reason.split(":")[0] for reason in self.failed.values())
            lines.append("failures: " + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()))
            for track_id, reason in list(self.failed.items())[:max_failures]:
                lines.append(f"  {track_id}: {reason}")
            if len(self.failed) > max_failures:
                lines.append(f"  ... and {len(self.failed) - max_failures} more")
        return lines


def _fetch_preview(row: dict, out_dir: Path, *, session, policy: RetryPolicy) -> str:
    """Download one track's preview; returns "downloaded" or "skipped", raises with a reason."""
    track_id = (row.get("id") or "").strip()
    dest = out_dir / f"{track_id}.mp3"
    if dest.is_file() and dest.stat().st_size > 0:  # only ever complete: written via rename
        return "skipped"
    reasons = []
    url = (row.get("preview_url") or "").strip()
    if url:
        try:
            download_file(url, dest, session=session, policy=policy, what="Spotify preview")
            return "downloaded"
        except AcquireError as exc:  # an old Spotify link may be dead; Deezer may still have it
            reasons.append(str(exc))
    isrc = (row.get("isrc") or "").strip()
    artist, title = (row.get("artist") or "").strip(), (row.get("title") or "").strip()
    if not isrc and not (artist and title):
        raise NoPreviewError("; ".join(reasons) + "; no ISRC (or artist + title) to look up on Deezer" if reasons
                             else "no preview_url and no ISRC (or artist + title) to look up on Deezer")
    track = None
    if isrc:
        try:
            track = deezer_track_by_isrc(isrc, session=session, policy=policy)
        except NotFoundError:
            if not (artist and title):
                raise
    if track is None:  # a chart row: no ISRC, or one Deezer does not know
        track = deezer_search_track(artist, title, session=session, policy=policy)
    preview = (track.get("preview") or "").strip()
    if not preview:
        raise NoPreviewError(f"Deezer track {track.get('id')} ({f'ISRC {isrc}' if isrc else f'{artist} - {title}'}) "
                             "has no preview")
    download_file(preview, dest, session=session, policy=policy, what="Deezer preview")
    return "downloaded"


def download_previews(
    tracks: str | Path | Iterable[dict],
    out_dir: str | Path = PREVIEWS_DIR,
    *,
    workers: int = 4,
    limit: int | None = None,
    session=None,
    policy: RetryPolicy | None = None,
    progress: bool = True,
) -> PreviewReport:
    """Download 30 s MP3 previews to ``out_dir/<track id>.mp3`` for each track.

    Parameters
    ----------
    tracks : a tracks CSV (from :func:`acquire_spotify`) or dicts with ``id`` and ``isrc``
        and/or ``preview_url``
    out_dir : destination folder; existing files are skipped (they are always complete)
    workers : int >= 1, parallel downloads (Deezer allows ~50 requests per 5 s)
    limit : only the first ``limit`` tracks
    session : a requests.Session shared by all workers (default: one per worker thread)

    Where ``preview_url`` is empty (Spotify stopped serving them to new apps in Nov 2024) the
    ISRC is looked up on Deezer. Failures never stop the run; they are in ``report.failed``.
    """
    from tqdm.auto import tqdm

    if workers < 1:
        raise TracklensError(f"workers={workers} must be at least 1")
    if isinstance(tracks, (str, Path)):
        path = Path(tracks)
        if not path.is_file():
            raise TracklensError(f"{path}: no such file")
        rows, header = _read_csv_rows(path, required=(), purpose="a tracks CSV")
        searchable = pick_column(header, ARTIST_COLUMNS) and pick_column(header, TITLE_COLUMNS)
        if "isrc" not in header and "preview_url" not in header and not searchable:
            raise TracklensError(f"{path}: needs an 'isrc' or 'preview_url' column, or 'artist' and a title "
                                 "('song', 'title' or 'name') to search Deezer, to find previews")
        if "id" not in header and not searchable:
            raise TracklensError(f"{path}: not a tracks CSV (missing column(s) id)")
    else:
        rows = list(tracks)
    rows = [_with_names(row) for row in rows]
    if limit is not None:
        rows = rows[:limit]
    policy = policy or RetryPolicy()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.mp3.*.part"):  # temp files of a killed run
        with suppress(OSError):
            stale.unlink()

    report = PreviewReport(out_dir=out_dir)
    todo = {}
    for row in rows:
        track_id = (row.get("id") or "").strip()
        if not _SAFE_NAME.match(track_id):
            report.failed[track_id or "<empty>"] = f"bad id: {track_id!r} cannot be a file name"
        elif track_id not in todo:
            todo[track_id] = row

    def work(row: dict) -> str:
        return _fetch_preview(row, out_dir, session=session or _default_session(), policy=policy)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preview")
    try:
        futures = {pool.submit(work, row): track_id for track_id, row in todo.items()}
        for future in tqdm(as_completed(futures), total=len(futures), desc="previews", unit="track",
                           disable=not progress):
            track_id = futures[future]
            try:
                outcome = future.result()
            except TracklensError as exc:
                report.failed[track_id] = f"{failure_kind(exc)}: {exc}"
                continue
            (report.downloaded if outcome == "downloaded" else report.skipped).append(track_id)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # running downloads clean up their temp files
        raise
    pool.shutdown(wait=True)
    _write_previews_index(out_dir, todo, report)
    return report


def _with_names(row: dict) -> dict:
    """A tracks or chart row with ``artist`` / ``title`` under those names and an ``id`` (a chart
    row has none: :func:`chart_track_id`)."""
    artist_col, title_col = pick_column(row, ARTIST_COLUMNS), pick_column(row, TITLE_COLUMNS)
    row = {**row, "artist": str(row.get(artist_col) or "") if artist_col else "",
           "title": str(row.get(title_col) or "") if title_col else ""}
    if not (row.get("id") or "").strip() and row["artist"].strip() and row["title"].strip():
        row["id"] = chart_track_id(row["artist"], row["title"])
    return row


def _write_previews_index(out_dir: Path, todo: dict[str, dict], report: PreviewReport) -> None:
    """Add the tracks whose preview is in ``out_dir`` to its :data:`PREVIEWS_INDEX` (id, artist,
    title, isrc, file), keeping the rows of earlier runs; only for rows that name their songs
    (the ids alone are the file names already)."""
    if not any(row.get("artist") or row.get("title") for row in todo.values()):
        return
    index = out_dir / PREVIEWS_INDEX
    rows = {}
    if index.is_file():
        with suppress(TracklensError, OSError):
            rows = {r["id"]: r for r in _read_csv_rows(index, required=("id",), purpose="a previews index")[0]}
    for track_id in (*report.downloaded, *report.skipped):
        row = todo[track_id]
        rows[track_id] = {"id": track_id, "artist": row.get("artist", ""), "title": row.get("title", ""),
                          "isrc": row.get("isrc", "") or "", "file": f"{track_id}.mp3"}
    if rows:
        _write_csv(index, list(rows.values()), PREVIEWS_INDEX_COLUMNS)


# --- local sources ---------------------------------------------------------------------------


@dataclass
class ChartsResult:
    """What :func:`acquire_charts` did: where the copy is, its row count, whether it was copied."""

    path: Path
    rows: int
    copied: bool


def chart_rows(path: Path) -> int:
    """Rows of a chart CSV whose header holds every Top Hits column (config.CHART_COLUMNS).

    The light check ``acquire`` can make without the cleaning rules; ``prepare.load_charts`` is
    the full schema (types, ranges), which ``tracklens acquire charts`` passes as ``validate``.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TracklensError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in config.CHART_COLUMNS if c not in frame.columns]
    if missing:
        raise TracklensError(f"{path}: column(s) {', '.join(missing)} missing (a Top Hits chart CSV has "
                             f"{', '.join(config.CHART_COLUMNS)})")
    return len(frame)


def acquire_charts(path: str | Path, out: str | Path | None = None, *,
                   validate: Callable[[Path], object] | None = None) -> ChartsResult:
    """Check a Top-Hits-style chart CSV and copy it, byte for byte, into ``data/raw``.

    ``out`` is a folder (the file keeps its name) or a ``.csv`` path; default RAW_DATA_DIR.
    ``validate(path)`` returns the validated table (e.g. ``prepare.load_charts``, which the CLI
    passes: one-line errors naming the file and column); without it only the header is checked
    (:func:`chart_rows`), since acquiring comes before cleaning in the flow. An identical copy
    already at the destination is left alone.
    """
    from tracklens.fileio import file_checksum

    path = Path(path)
    if not path.is_file():
        raise TracklensError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise TracklensError(f"{path}: empty file (0 bytes)")
    rows = len(validate(path)) if validate is not None else chart_rows(path)
    out = Path(out) if out is not None else config.RAW_DATA_DIR
    dest = out if out.suffix.lower() == ".csv" and not out.is_dir() else out / path.name
    if dest.exists() and (dest.resolve() == path.resolve() or file_checksum(dest) == file_checksum(path)):
        return ChartsResult(path=dest, rows=rows, copied=False)
    with open(path, "rb") as source, atomic_output(dest, "wb") as target:
        shutil.copyfileobj(source, target)
    return ChartsResult(path=dest, rows=rows, copied=True)


_GTZAN_NAME = re.compile(r"^(?P<label>[A-Za-z][A-Za-z0-9_-]*)\.\d{3,6}\.[A-Za-z0-9]+$")


def label_for(path: Path, root: Path) -> str:
    """A file's label: its sub-folder's name under ``root``, else a GTZAN-style file name
    ``genre.00042.wav``, else ""."""
    relative = path.relative_to(root)
    if len(relative.parts) > 1:
        return relative.parent.name
    match = _GTZAN_NAME.match(path.name)
    return match["label"] if match else ""


def _audio_files(root: Path) -> list[Path]:
    """Every non-hidden path under ``root`` named like audio, folders too (``x.wav/`` gets an
    error row rather than vanishing; its files are still listed)."""
    from tracklens.audio import AUDIO_EXTENSIONS

    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / name for name in (*dirnames, *filenames)
                     if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS)
    return sorted(files)


def _not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` is not a regular file, or None. Checked before anything opens it: a FIFO
    blocks a read forever and a link to /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a regular file is fine
    except FileNotFoundError:
        return "broken link (points to nothing)" if path.is_symlink() else "vanished while listing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "broken link (a loop of symlinks)"
        return f"cannot read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
             (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))
    return "not a regular file (" + next((kind for test, kind in kinds if test(mode)), "special") + ")"


def _manifest_row(path: Path, root: Path, *, decode: bool) -> dict:
    from tracklens.audio import AudioError, load_audio, probe_audio
    from tracklens.fileio import file_checksum

    row = {"path": str(path), "label": label_for(path, root), "duration_s": None,
           "sample_rate": None, "channels": None, "checksum": "", "error": ""}
    if reason := _not_a_regular_file(path):
        row["error"] = reason
        return row
    try:
        row["checksum"] = file_checksum(path)
        info = probe_audio(path)
        if decode:  # catches damage past the header; decoding at the file's own rate is cheap
            load_audio(path, sr=info["sample_rate"])
    except AudioError as exc:
        row["error"] = str(exc).removeprefix(f"{path}: ")
        return row
    except OSError as exc:
        row["error"] = f"cannot read ({exc.strerror or type(exc).__name__})"
        return row
    row.update(duration_s=round(info["duration_s"], 3), sample_rate=info["sample_rate"], channels=info["channels"])
    return row


def folder_manifest(path: str | Path, *, decode: bool = False, progress: bool = True):
    """One row per audio file under ``path``: MANIFEST_COLUMNS, sorted by path.

    Labels come from the file's sub-folder (``rock/song.mp3``) or a GTZAN-style name
    (``rock.00042.wav``). Files that cannot be used (corrupt, empty, not audio, not a regular
    file: a FIFO, a device, a folder named like audio, a broken link) are listed with the reason
    in ``error`` and no duration. ``decode=True`` also decodes every file fully
    (slower; catches damage the header does not show). Hidden files and folders are ignored.
    Paths are as found under ``path`` (relative to the current folder when ``path`` is).

    Returns a pandas DataFrame; raises TracklensError when ``path`` is not a folder or holds
    no audio files.
    """
    from tracklens.audio import AUDIO_EXTENSIONS

    root = Path(path)
    if not root.is_dir():
        raise TracklensError(f"{root}: {'not a folder' if root.exists() else 'no such folder'}")
    files = _audio_files(root)
    if not files:
        raise TracklensError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) found")
    import pandas as pd  # after the checks: a wrong path fails in a blink
    from tqdm.auto import tqdm
    rows = [_manifest_row(f, root, decode=decode)
            for f in tqdm(files, desc="manifest", unit="file", disable=not progress)]
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    frame["duration_s"] = frame["duration_s"].astype("float64")
    frame["sample_rate"] = frame["sample_rate"].astype("Int64")
    frame["channels"] = frame["channels"].astype("Int64")
    return frame


def write_manifest(path: str | Path, out: str | Path, *, decode: bool = False, progress: bool = True):
    """:func:`folder_manifest` of ``path`` written to the CSV ``out`` (:func:`fileio.write_csv`:
    atomic, formula-like cells escaped); returns the frame."""
    frame = folder_manifest(path, decode=decode, progress=progress)
    fileio.write_csv(frame, out)
    return frame
