"""Chart tables: a Top-Hits-style chart CSV (the Kaggle "Top Hits Spotify 2000-2019" schema),
checked and copied into ``data/raw``."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.fileio import atomic_output


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
