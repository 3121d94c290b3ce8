"""30 s MP3 previews: Spotify's ``preview_url``, else Deezer's preview by ISRC or by artist + title.

:func:`download_previews` fetches them in parallel into ``<track id>.mp3`` files, atomically
(a cut download never leaves a file), resuming (files already there are skipped), and records
which file is which song in the folder's :data:`PREVIEWS_INDEX`.
"""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tracklens import config
from tracklens.acquire.deezer import deezer_search_track, deezer_track_by_isrc
from tracklens.acquire.rows import (ARTIST_COLUMNS, TITLE_COLUMNS, chart_track_id, pick_column, read_csv_rows,
                                    write_csv_rows)
from tracklens.acquire.web import (AcquireError, NoPreviewError, NotFoundError, RetryPolicy, Transient,
                                   default_session, failure_kind, http_get, retry_call)
from tracklens.errors import TracklensError
from tracklens.fileio import atomic_output

#: written into a previews folder: which file is which track (id, artist, title, isrc), so
#: `tracklens catalogue build FOLDER --meta TABLE` can name the files and join the table
PREVIEWS_INDEX = "previews.csv"
PREVIEWS_INDEX_COLUMNS = ("id", "artist", "title", "isrc", "file")


def previews_dir() -> Path:
    """Where :func:`download_previews` writes by default; read when called, so ``config.set_home`` moves it."""
    return config.RAW_DATA_DIR / "previews"


_SAFE_NAME = re.compile(r"^[0-9A-Za-z_-]+$")


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
    session = session or default_session()
    dest = Path(dest)
    what = what or f"download {url.split('?')[0]}"

    def attempt() -> int:
        response = http_get(session, url, what=what, stream=True)
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
    out_dir: str | Path | None = None,
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
    out_dir : destination folder (default :func:`previews_dir`); existing files are skipped (they are always complete)
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
            from tracklens.fileio import special_file_kind

            kind = special_file_kind(path.stat().st_mode) if path.exists() else None  # /dev/null is there
            raise TracklensError(f"{path}: not a regular file ({kind}), expected a tracks CSV" if kind
                                 else f"{path}: no such file")
        rows, header = read_csv_rows(path, required=(), purpose="a tracks CSV")
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
    out_dir = Path(out_dir) if out_dir is not None else previews_dir()
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
        return _fetch_preview(row, out_dir, session=session or default_session(), policy=policy)

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
            rows = {r["id"]: r for r in read_csv_rows(index, required=("id",), purpose="a previews index")[0]}
    for track_id in (*report.downloaded, *report.skipped):
        row = todo[track_id]
        rows[track_id] = {"id": track_id, "artist": row.get("artist", ""), "title": row.get("title", ""),
                          "isrc": row.get("isrc", "") or "", "file": f"{track_id}.mp3"}
    if rows:
        write_csv_rows(index, list(rows.values()), PREVIEWS_INDEX_COLUMNS)
