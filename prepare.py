"""Chart-table cleaning: schema and dtype checks, nulls, ranges, duplicates, and a report.

The input is a table in the Kaggle "Top Hits Spotify from 2000-2019" schema
(:data:`CHART_COLUMNS`), from ``acquire charts``, the demo catalogue or any CSV in that shape.
:func:`load_charts` validates it (a missing or mistyped column is an error that names the column
and the file); :func:`prepare_charts` cleans it and says what it dropped or filled and why.

Cleaning, in order (each step is a line of the :class:`PrepareReport`):

1. Columns outside the schema (index columns such as ``Unnamed: 0``, ids, URLs) are dropped:
   they are not features. ``artist`` and ``song`` stay as identifiers (duplicates, ``has_feat``,
   display); :data:`preprocessing.FEATURE_COLUMNS` lists what a model uses.
2. Text is stripped and Unicode-normalised (NFC), so ``Beyoncé`` typed two ways is one artist.
   ``genre`` ``set()`` (the real table's "no genre" marker) becomes the empty string.
3. Values outside a column's valid range (:data:`VALID_RANGES`) drop the row.
4. Nulls follow :data:`NULL_STRATEGY`: rows without an identity or target are dropped, audio
   features are filled with the column median, categorical ones with the most frequent value.
5. Exact duplicate rows are dropped, then rows with the same artist and song (compared
   case-, space- and accent-insensitively) keep only the most popular one.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tracklens import config, fileio
from tracklens.errors import TracklensError

_FLOAT = "float"
_INT = "int"
_BOOL = "bool"
_STR = "str"

# Column -> kind, in the file's order. Kinds map to final dtypes int64/float64/bool/str.
_KINDS = {
    "artist": _STR, "song": _STR, "duration_ms": _INT, "explicit": _BOOL, "year": _INT,
    "popularity": _INT, "danceability": _FLOAT, "energy": _FLOAT, "key": _INT, "loudness": _FLOAT,
    "mode": _INT, "speechiness": _FLOAT, "acousticness": _FLOAT, "instrumentalness": _FLOAT,
    "liveness": _FLOAT, "valence": _FLOAT, "tempo": _FLOAT, "genre": _STR,
}
assert tuple(_KINDS) == config.CHART_COLUMNS
_DTYPES = {_FLOAT: "float64", _INT: "int64", _BOOL: "bool", _STR: "str"}

#: The Top Hits schema: column name -> dtype of the cleaned table, in file order.
CHART_COLUMNS: dict[str, str] = {name: _DTYPES[kind] for name, kind in _KINDS.items()}

#: Inclusive valid ranges (Spotify's documented ones); a value outside drops the row.
VALID_RANGES: dict[str, tuple[float, float]] = {
    "duration_ms": (1, 3_600_000),
    "year": (1900, 2100),
    "popularity": (0, 100),
    **{col: (0, 1) for col in config.SPOTIFY_PERCEPTUAL_FEATURES},
    "key": (0, 11),  # Spotify's -1 ("no key detected") is read as missing, see load_charts
    "mode": (0, 1),
    "loudness": (-60, 5),
    "tempo": (0, 300),
}

#: What happens to a missing value, per column, and why.
NULL_STRATEGY: dict[str, tuple[str, str]] = {
    "artist": ("drop", "no artist: the track cannot be identified"),
    "song": ("drop", "no song title: the track cannot be identified"),
    "popularity": ("drop", "no popularity: it is the target"),
    "year": ("drop", "no year: decade and era features need it"),
    "explicit": ("false", "unknown explicit flag counts as not explicit (as Spotify does)"),
    "genre": ("empty", "no genre: kept, with no genre flags"),
    "key": ("most_frequent", "categorical"),
    "mode": ("most_frequent", "categorical"),
    **{
        col: ("median", "audio feature; the median is robust to the skewed ones")
        for col in ("duration_ms", *config.SPOTIFY_CONTINUOUS_FEATURES)
    },
}
assert set(NULL_STRATEGY) == set(CHART_COLUMNS)

_TRUE = {"true", "t", "1", "yes", "y", "1.0"}
_FALSE = {"false", "f", "0", "no", "n", "0.0"}
#: What the Top Hits table writes for "no genre" (its literal ``set()``, and blanks), lower-cased.
NO_GENRE = frozenset({"", "set()", "[]", "none", "nan"})


def split_genres(genre) -> list[str]:
    """The genres of one row's comma-separated ``genre`` string (``set()`` and blanks -> []).

    The one genre parser: cleaning, the split's ``genre_*`` flags, the figures and the
    dashboard's genre filter all read genres through it.
    """
    if not isinstance(genre, str) or genre.strip().lower() in NO_GENRE:
        return []
    return [g.strip() for g in genre.split(",") if g.strip()]


@dataclass
class PrepareReport:
    """What :func:`prepare_charts` did: counts and reasons, printable with :meth:`lines`."""

    source: str
    rows_in: int = 0
    rows_out: int = 0
    dropped_columns: list[tuple[str, str]] = field(default_factory=list)  # (column, reason)
    dropped_rows: list[tuple[int, str]] = field(default_factory=list)  # (count, reason)
    filled: list[tuple[int, str]] = field(default_factory=list)  # (count, what was done)
    notes: list[str] = field(default_factory=list)  # facts about the kept table, e.g. no genres

    @property
    def n_dropped(self) -> int:
        return sum(n for n, _ in self.dropped_rows)

    def lines(self) -> list[str]:
        """One human-readable line per action, first and last lines give the totals."""
        out = [f"read {self.rows_in} rows from {self.source}"]
        out += [f"dropped column {col!r}: {why}" for col, why in self.dropped_columns]
        out += [f"dropped {n} row{'s' * (n != 1)}: {why}" for n, why in self.dropped_rows if n]
        out += [f"filled {n} value{'s' * (n != 1)}: {what}" for n, what in self.filled if n]
        out += self.notes
        out.append(f"kept {self.rows_out} rows x {len(CHART_COLUMNS)} columns")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


# --- loading and validation -------------------------------------------------------------------


def _first_bad(source: str, col: str, raw: pd.Series, bad: pd.Series, expected: str) -> TracklensError:
    """Error naming the file, the column, how many values are bad and the first one (file line)."""
    first = bad.idxmax()
    # Header is line 1; pandas' default index is the 0-based data row.
    where = f"line {first + 2}" if isinstance(first, (int, np.integer)) else f"row {first!r}"
    return TracklensError(
        f"{source}: column {col!r} should hold {expected} but has {int(bad.sum())} bad "
        f"value(s), e.g. {raw[first]!r} on {where}"
    )


def _coerce(df: pd.DataFrame, source: str, bad_values: str) -> tuple[pd.DataFrame, pd.Series]:
    """Convert schema columns to nullable typed columns; returns (df, mask of rows with bad values)."""
    out = df.copy()
    bad_rows = pd.Series(False, index=df.index)
    for col, kind in _KINDS.items():
        raw = df[col]
        present = raw.notna() & (raw.astype("str").str.strip() != "")
        if kind == _STR:
            out[col] = raw.astype("str").where(present, None).str.strip()
            continue
        if kind == _BOOL:
            text = raw.astype("str").str.strip().str.lower()
            conv = pd.Series(pd.NA, index=df.index, dtype="boolean")
            conv[text.isin(_TRUE)] = True
            conv[text.isin(_FALSE)] = False
            bad = present & conv.isna()
            expected = "True/False"
        else:
            conv = pd.to_numeric(raw.where(present), errors="coerce")
            bad = present & conv.isna()
            expected = "numbers"
            if kind == _INT:
                fractional = conv.notna() & (conv != np.floor(conv))
                if fractional.any() and not bad.any():
                    expected = "whole numbers"
                bad |= fractional
                if col == "key":
                    conv = conv.where(conv != -1)  # Spotify: -1 = no key detected
                conv = conv.astype("Float64").round().astype("Int64")
            else:
                conv = conv.astype("Float64")
        if bad.any():
            if bad_values == "raise":
                raise _first_bad(source, col, raw, bad, expected)
            bad_rows |= bad
        out[col] = conv
    return out, bad_rows


def _validate(df: pd.DataFrame, source: str, bad_values: str = "raise") -> tuple[pd.DataFrame, pd.Series]:
    df = df.rename(columns=lambda c: str(c).strip())
    missing = [c for c in CHART_COLUMNS if c not in df.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        only = str(df.columns[0]) if len(df.columns) == 1 else ""
        for sep in (";", "\t", "|"):
            if sep in only:
                raise TracklensError(
                    f"{source}: missing columns; the header looks {sep!r}-separated, expected commas"
                )
        raise TracklensError(
            f"{source}: missing column{'s' * (len(missing) > 1)} {names} "
            f"(a chart table needs: {', '.join(CHART_COLUMNS)})"
        )
    dupes = df.columns[df.columns.duplicated()].unique().tolist()
    if dupes:
        raise TracklensError(f"{source}: column {dupes[0]!r} appears more than once")
    if df.empty:
        raise TracklensError(f"{source}: has a header but no data rows")
    return _coerce(df, source, bad_values)


def _read_csv(path) -> tuple[pd.DataFrame, str]:
    if not isinstance(path, (str, os.PathLike)):
        kind = "None" if path is None else type(path).__name__
        raise TracklensError(f"expected a chart CSV's path or a pandas DataFrame, got {kind}")
    p = Path(path)
    source = str(p)
    if not p.exists():
        raise TracklensError(f"{source}: file not found")
    if p.is_dir():
        raise TracklensError(f"{source}: is a folder, expected a CSV file")
    kind = fileio.special_file_kind(p.stat().st_mode)  # a FIFO or /dev/zero has size 0 but is not empty
    if kind:
        raise TracklensError(f"{source}: not a regular file ({kind}), expected a CSV file")
    if p.stat().st_size == 0:
        raise TracklensError(f"{source}: file is empty (0 bytes)")
    try:
        # Everything as text: typing is done (and explained) by _coerce, not guessed by pandas.
        # fileio.read_csv undoes the spreadsheet escaping of a CSV this project wrote.
        df = fileio.read_csv(p, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise TracklensError(f"{source}: file is empty (no header line)") from None
    except UnicodeDecodeError:
        raise TracklensError(f"{source}: not UTF-8 text; is it really a CSV file?") from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise TracklensError(f"{source}: not a valid CSV ({reason})") from None
    except OSError as exc:
        raise TracklensError(f"{source}: cannot read ({exc.strerror})") from None
    return df, source


def load_charts(path) -> pd.DataFrame:
    """Read and validate a chart CSV in the Top Hits schema.

    Parameters
    ----------
    path : str or Path
        A CSV with at least the columns of :data:`CHART_COLUMNS` (extra columns are kept).

    Returns
    -------
    pandas.DataFrame [shape=(n_rows, n_columns)]
        Schema columns typed with nullable dtypes (``Int64``, ``Float64``, ``boolean``, ``str``);
        missing values stay missing (:func:`prepare_charts` deals with them). Spotify's
        ``key = -1`` ("no key") is read as missing.

    Raises
    ------
    TracklensError
        The file is missing, empty, not a CSV, lacks a column, or a column holds values of the
        wrong type (the message names the file, the column and the first bad value's line).
    """
    df, source = _read_csv(path)
    return _validate(df, source)[0]


# --- cleaning ---------------------------------------------------------------------------------


def _nfc(s: pd.Series) -> pd.Series:
    # The str accessor keeps the str dtype even when every value is missing (map would not).
    return s.str.normalize("NFC")


def duplicate_key(artist: pd.Series, song: pd.Series) -> pd.Series:
    """A comparison key for "the same track": case-, accent-, space- and punctuation-insensitive."""

    def norm(text):
        text = unicodedata.normalize("NFKD", str(text).casefold())
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        return re.sub(r"[\W_]+", " ", text).strip()

    return artist.map(norm) + "\x1f" + song.map(norm)


def prepare_charts(data, *, bad_values: str = "raise") -> tuple[pd.DataFrame, PrepareReport]:
    """Clean a chart table: schema, dtypes, ranges, nulls, duplicates (see the module docstring).

    Parameters
    ----------
    data : str, Path or pandas.DataFrame
        A chart CSV path or an already loaded table (raw or from :func:`load_charts`).
    bad_values : {"raise", "drop"}
        A value of the wrong type (``"abc"`` as popularity) raises :class:`TracklensError`
        naming the column, or drops its row with a line in the report.

    Returns
    -------
    clean : pandas.DataFrame [shape=(n_kept, 18)]
        Exactly :data:`CHART_COLUMNS`, dtypes as given there, no nulls, index 0..n-1.
    report : PrepareReport
    """
    if bad_values not in ("raise", "drop"):
        raise TracklensError(f"bad_values={bad_values!r} must be 'raise' or 'drop'")
    if isinstance(data, pd.DataFrame):
        raw, source = data.reset_index(drop=True), "<DataFrame>"
    else:
        raw, source = _read_csv(data)
    df, bad_rows = _validate(raw, source, bad_values)
    report = PrepareReport(source=source, rows_in=len(df))

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal df
        report.dropped_rows.append((int(mask.sum()), reason))
        df = df[~mask]

    drop(bad_rows, "a value of the wrong type (e.g. text where a number belongs)")
    for col in df.columns:
        if col not in CHART_COLUMNS:
            report.dropped_columns.append((col, "not in the Top Hits schema, not a feature"))
    df = df[list(CHART_COLUMNS)]

    for col in ("artist", "song", "genre"):
        df[col] = _nfc(df[col])
    no_genre = df["genre"].str.strip().str.lower().isin(NO_GENRE - {""})
    df.loc[no_genre, "genre"] = ""
    report.filled.append((int(no_genre.sum()), "genre 'set()' (no genre) -> empty; rows kept"))

    for col, (lo, hi) in VALID_RANGES.items():
        drop(df[col].notna() & ~df[col].between(lo, hi), f"{col} outside [{lo:g}, {hi:g}]")

    for col, (strategy, why) in NULL_STRATEGY.items():
        missing = df[col].isna()
        if not missing.any():
            continue
        if strategy == "drop":
            if missing.all():  # an empty output would only fail later, less clearly
                raise TracklensError(f"{source}: column {col!r} has no values at all ({why})")
            drop(missing, why)
            continue
        if strategy == "false":
            value = False
        elif strategy == "empty":
            value = ""
        elif strategy == "median":
            value = df[col].median()
        else:
            value = df[col].mode().iloc[0] if df[col].notna().any() else 0
        if pd.isna(value):  # the whole column is empty: nothing to learn a fill value from
            raise TracklensError(f"{source}: column {col!r} has no values at all")
        df[col] = df[col].fillna(value)
        shown = f"{value:g}" if isinstance(value, (float, np.floating)) else repr(value)
        report.filled.append((int(missing.sum()), f"missing {col} -> {strategy} ({shown}); {why}"))

    drop(df.duplicated(keep="first"), "exact duplicate of an earlier row")
    key = duplicate_key(df["artist"], df["song"])
    # Stable sort: among equally popular copies the first in the file wins.
    order = df.assign(_key=key).sort_values("popularity", ascending=False, kind="stable")
    keep = ~order["_key"].duplicated(keep="first")
    drop(~keep.reindex(df.index), "same artist and song as a more popular row")

    df = df.astype(CHART_COLUMNS).reset_index(drop=True)
    report.rows_out = len(df)
    if len(df) and (df["genre"] == "").all():
        report.notes.append("genre: no genres known (every genre is empty; split adds no genre_* flags)")
    return df, report


# --- writing ----------------------------------------------------------------------------------


def write_csv_atomic(df: pd.DataFrame, path) -> Path:
    """:func:`fileio.write_csv` (atomic, formula-like cells escaped) with a one-line error."""
    path = Path(path)
    try:
        return fileio.write_csv(df, path)
    except OSError as exc:
        raise TracklensError(f"{path}: cannot write ({exc.strerror or exc})") from None


def prepare_file(src, out, *, bad_values: str = "raise") -> PrepareReport:
    """Clean the chart CSV `src` and write it to `out` atomically; returns the report."""
    if Path(src).resolve() == Path(out).resolve():
        raise TracklensError(f"{out}: output would overwrite the input; choose another --out")
    clean, report = prepare_charts(src, bad_values=bad_values)
    write_csv_atomic(clean, out)
    return report
