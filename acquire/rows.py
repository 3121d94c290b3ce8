"""The rows the sources read and write: CSV files of dict rows, and how a row names its song.

A tracks CSV, a chart table and a previews index name a song by artist and title under one of
several column names; :func:`normalise_name` and :func:`first_artist` reduce those names for
matching (Deezer's search, a catalogue joining its metadata table), and :func:`chart_track_id`
gives a chart row, which has no id, a file-name-safe one.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable

from tracklens.errors import TracklensError
from tracklens.fileio import atomic_output, escape_cell, unescape_cell

#: column names a chart or tracks table uses for the artist and the title (first found wins)
ARTIST_COLUMNS = ("artist", "artists", "artist_name")
TITLE_COLUMNS = ("title", "song", "name", "track", "track_name")


def write_csv_rows(path: Path, rows: list[dict], columns: Iterable[str]) -> None:
    """Rows as CSV, cells a spreadsheet would run escaped (:func:`fileio.escape_cell`)."""
    with atomic_output(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({key: escape_cell(value) for key, value in row.items()} for row in rows)


def read_csv_rows(path: Path, *, required: Iterable[str], purpose: str) -> tuple[list[dict], list[str]]:
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
