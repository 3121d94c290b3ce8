"""Spotify: track metadata from the Web API into a tracks CSV (:func:`acquire_spotify`).

The client (:func:`spotify_client`, Client Credentials from the environment or ``.env``), the
reader that pages through a playlist, album, artist's top tracks or search
(:class:`SpotifyCatalog`), and the writer that appends new tracks to a CSV, resuming.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tracklens import config
from tracklens.acquire.rows import read_csv_rows, write_csv_rows
from tracklens.acquire.web import (AcquireError, ForbiddenError, NotFoundError, RetryPolicy, Transient,
                                   retry_after_seconds, retry_call)
from tracklens.errors import CredentialsError, TracklensError

logger = logging.getLogger("tracklens.acquire")

#: Audio-feature columns filled only when Spotify's audio-features endpoint answers (it is
#: closed to apps created after Nov 2024, so these are usually empty).
AUDIO_FEATURE_COLUMNS = config.SPOTIFY_AUDIO_FEATURES
#: One row per track. List-valued fields are joined with LIST_SEP ("; "), because artist
#: names themselves contain commas ("Tyler, The Creator").
TRACK_COLUMNS = (
    "id", "name", "artists", "artist_ids", "album", "release_date", "popularity", "explicit",
    "duration_ms", "isrc", "preview_url", "artist_genres", "source",
) + AUDIO_FEATURE_COLUMNS
LIST_SEP = "; "

SPOTIFY_SOURCES = ("playlist", "album", "artist", "search")


def spotify_default_out() -> Path:
    """Where :func:`acquire_spotify` writes by default; read when called, so ``config.set_home`` moves it."""
    return config.RAW_DATA_DIR / "spotify_tracks.csv"


# Page sizes: the 2026 Web API caps search at 10 per page; several-artists at 50 ids;
# audio-features at 100 ids; several-tracks at 50 ids.
SEARCH_PAGE = 10
PLAYLIST_PAGE = 100
ARTIST_BATCH = 50
TRACK_BATCH = 50
FEATURE_BATCH = 100
SEARCH_MAX_OFFSET = 1000  # Spotify refuses offsets beyond this

# RFC 6749 error codes of the token endpoint that mean "these credentials will not work".
OAUTH_CLIENT_ERRORS = {"invalid_client", "unauthorized_client", "invalid_grant", "invalid_request",
                       "unsupported_grant_type", "invalid_scope"}

MISSING_CREDENTIALS = (
    "Spotify credentials are not set: put SPOTIPY_CLIENT_ID=... and SPOTIPY_CLIENT_SECRET=... "
    "in the environment or in {env} (from an app at https://developer.spotify.com/dashboard); "
    "only `acquire spotify` and `playlist` need them"
)


_SPOTIFY_ID = re.compile(r"^[0-9A-Za-z]{22}$")
_SPOTIFY_URI = re.compile(r"^spotify:(?P<type>[a-z]+):(?P<id>[0-9A-Za-z]{22})$")
_SPOTIFY_URL = re.compile(
    r"^https?://open\.spotify\.com/(?:intl-[a-z]{2}/)?(?P<type>[a-z]+)/(?P<id>[0-9A-Za-z]{22})(?:[/?#].*)?$"
)


def parse_spotify_ref(kind: str, ref: str) -> str:
    """The bare Spotify ID from an ID, ``spotify:<kind>:<id>`` URI or open.spotify.com URL.

    Raises TracklensError when ``ref`` is none of these or names another kind of object.
    """
    if not isinstance(ref, str):  # e.g. os.environ.get(...) of an unset variable
        raise TracklensError(f"not a Spotify {kind} ID, URI or URL: got {'None' if ref is None else type(ref).__name__} "
                             f"(give a string such as spotify:{kind}:<22 characters>)")
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
        return Transient("rate-limited (HTTP 429)", status=429, retry_after=retry_after_seconds(exc.headers))
    if status is not None and status >= 500:
        return Transient(f"server error (HTTP {status})", status=status, retry_after=retry_after_seconds(exc.headers))
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
    ids: list[str] = field(default_factory=list)  # the source's tracks this run, in its order (new and already present)


def acquire_spotify(
    source: str,
    ref: str,
    out: str | Path | None = None,
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
    out : CSV path (default :func:`spotify_default_out`); an existing file is resumed: tracks whose id is
        already there are skipped
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
    out = Path(out) if out is not None else spotify_default_out()
    rows, header = read_csv_rows(out, required=("id",), purpose="a tracklens tracks CSV") if out.exists() else ([], [])
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
                    continue
                result.ids.append(track["id"])
                if track["id"] in known:
                    result.already_present += 1
                else:
                    known.add(track["id"])
                    new.append(track)
            if new:
                genres = catalog.artist_genres(a.get("id") for t in new for a in t.get("artists") or [] if a)
                features = catalog.audio_features([t["id"] for t in new])
                rows.extend(_track_row(t, genres=genres, features=features, source=tag) for t in new)
                write_csv_rows(out, rows, columns)
                result.added += len(new)
            if limit is not None and seen >= limit:
                break
    if not out.exists():  # nothing new and no earlier file: still leave a header-only CSV
        write_csv_rows(out, rows, columns)
    result.total_rows = len(rows)
    return result
