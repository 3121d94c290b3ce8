"""What ``tracklens predict`` writes: the output contract of a batch of blends, and sorting files by them.

The model (:mod:`models.blend`) returns :class:`models.blend.Blend` objects; this module presents
them, for the CLI and for anyone who wants the same bytes (the dashboard, notebooks):

- :func:`csv_frame`: the stable CSV contract, ``path, top_genre, <one column per genre>, fit[, tags]``
  (written with ``fileio.to_csv_text``: formula-like cells escaped);
- :func:`format_pieces` / :func:`format_results`: ``table``, ``csv`` or ``json`` text, streamed one
  file at a time so a batch stopped part-way has written every finished file;
- :func:`sort_into`: copy or move each classified file into ``DEST/<genre>/`` (or
  ``DEST/_does-not-fit/``) without ever losing or overwriting a file, also with other processes
  sorting into the same folder (docs/reliability.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from tracklens import fileio
from tracklens.errors import TracklensError, one_line
from tracklens.models.blend import Blend

N_TAGS = 5  # tags per file with --tags
N_CHART = 3  # chart-genre tags per file in the table format


def _tag_text(r: Blend, k: int = N_TAGS) -> str:
    return ";".join(f"{t}:{p:.3f}" for t, p in r.top_tags(k))


def csv_frame(names: Sequence[str], results: Sequence[Blend | Exception], genres: Sequence[str], *,
              tags: bool = False) -> pd.DataFrame:
    """The stable CSV contract, the one place rows are made: ``path, top_genre, <one column per
    genre>`` (model genre order), ``fit`` (``ok`` / ``poor``, empty when not judged) and, with
    ``tags``, ``tags`` (``tag:likelihood;...``, the top 5). A file that failed gets ``top_genre``
    = ``error`` and empty cells. Write it with ``fileio.to_csv_text`` (formula-like cells escaped)."""
    genres = list(genres)
    failed = np.full(len(genres), np.nan)
    proba = np.array([r.probabilities if isinstance(r, Blend) else failed for r in results],
                     dtype=np.float64).reshape(len(results), len(genres))
    frame = pd.DataFrame({"path": [str(n) for n in names],
                          "top_genre": [genres[int(np.argmax(p))] if isinstance(r, Blend) else "error"
                                        for p, r in zip(proba, results)]})
    for j, g in enumerate(genres):
        frame[g] = np.round(proba[:, j], 6)
    frame["fit"] = [(r.fit or "") if isinstance(r, Blend) else "" for r in results]
    if tags:
        frame["tags"] = [_tag_text(r) if isinstance(r, Blend) else "" for r in results]
    return frame


# --- output formats and sorting ---------------------------------------------------------------------

OUTPUT_FORMATS = ("table", "csv", "json")


def _error_text(err: Exception) -> str:
    return str(err).strip() or type(err).__name__


def check_format(fmt: str) -> None:
    if fmt not in OUTPUT_FORMATS:
        raise TracklensError(f"--format {fmt!r}: choose one of {', '.join(OUTPUT_FORMATS)}")


def format_results(names: Sequence[str], results: Sequence[Blend | Exception], genres: Sequence[str], *,
                   fmt: str = "table", top: int = 3, tags: bool = False) -> str:
    """Render blends (or per-file errors) as ``table``, ``csv`` or ``json`` text (see :func:`format_pieces`)."""
    return "".join(format_pieces(names, results, genres, fmt=fmt, top=top, tags=tags)).rstrip("\n")


def format_pieces(names: Sequence[str], results: Iterable[Blend | Exception], genres: Sequence[str], *,
                  fmt: str = "table", top: int = 3, tags: bool = False) -> Iterator[str]:
    """The output text in pieces, one per result as soon as ``results`` yields it, so a batch
    stopped part-way has written every finished file: first the csv header (json: ``[``), then
    one piece per file, then json's ``]``; joined, the text of one whole render.

    csv keeps the stable contract of :func:`csv_frame`; json is one list of objects (an error:
    ``{"path", "error"}``); table is one line per file (and its tags on the next, with ``tags``).
    Every format carries the fit verdict; table and json the chart-genre tags too.
    """
    check_format(fmt)
    names = [str(n) for n in names]
    if fmt == "csv":
        yield fileio.to_csv_text(csv_frame([], [], genres, tags=tags))
        for name, r in zip(names, results):
            yield fileio.to_csv_text(csv_frame([name], [r], genres, tags=tags), header=False)
    elif fmt == "json":
        yield "["
        separator = "\n"
        for name, r in zip(names, results):  # each item as json.dumps(whole list, indent=1) would write it
            item = json.dumps(_json_item(name, r, tags=tags), indent=1)
            yield separator + "\n".join(" " + line for line in item.splitlines())
            separator = ",\n"
        yield "]\n" if separator == "\n" else "\n]\n"
    else:  # one line per file: a newline or escape sequence in a name is shown escaped
        names = [one_line(n) for n in names]
        width = max([len(n) for n in names] + [4])
        for name, r in zip(names, results):
            yield _table_line(name, r, width=width, top=top, tags=tags) + "\n"


def _pairs(items: Iterable[tuple[str, float]]) -> list[list]:
    return [[name, round(float(score), 4)] for name, score in items]


def _json_item(name: str, r: Blend | Exception, *, tags: bool = False) -> dict:
    from tracklens.models.chart_genres import LABEL

    if not isinstance(r, Blend):
        return {"path": name, "error": _error_text(r)}
    item = {"path": name, "top_genre": r.top_genre, "label": r.label,
            "probabilities": {g: round(float(p), 6) for g, p in zip(r.genres, r.probabilities)},
            "fit": r.fit, "fit_reason": r.fit_reason, "wider_genres": _pairs(r.wider_genres),
            "chart_genres": _pairs(r.chart_genres), "chart_genres_note": LABEL,
            "duration_s": round(r.duration_s, 3), "analysed_s": round(r.analysed_s, 3), "model": r.model,
            "notes": r.notes, "timeline": r.timeline.round(4).to_dict(orient="records")}
    if tags:
        item.update(tags=_pairs(r.top_tags()), tags_source=r.tags_source)
    return item


def _table_line(name: str, r: Blend | Exception, *, width: int, top: int, tags: bool = False) -> str:
    if not isinstance(r, Blend):
        return f"{name:<{width}}  ERROR  {one_line(_error_text(r))}"
    blend = "  ".join(f"{g} {p:5.1%}" for g, p in r.top(top))
    line = f"{name:<{width}}  {r.label:<20}  {blend}"
    if r.fit == "poor":
        line += f"  | fit: POOR, {r.fit_reason}"
    elif r.fit:
        line += "  | fit: ok"
    if r.chart_genres:
        from tracklens.models.chart_genres import SHOWN_FROM

        shown = [f"{g} {p:.2f}" for g, p in r.chart_genres[:N_CHART] if p >= SHOWN_FROM]
        line += "  | chart genres (AudioSet, uncalibrated): " + (", ".join(shown) or f"none from {SHOWN_FROM:.2f}")
    if tags:
        line += f"\n{'':<{width}}  {r.tags_source or 'no'} tags: " + ", ".join(f"{t} {p:.2f}" for t, p in r.top_tags())
    return line


#: --sort-into files a track the ten genres do not describe (``Blend.fit == "poor"``) here, never under a genre
POOR_FIT_FOLDER = "_does-not-fit"
#: What :func:`sort_into` can do with a file, in the order the summary counts them
SORT_ACTIONS = ("copied", "moved", "already there", "skipped", "failed")


@dataclass(frozen=True)
class Sorted:
    """What :func:`sort_into` did with one file. ``action``: "copied" / "moved" (a new copy was
    placed), "already there" (the file, or an identical copy, was in its folder before; with
    ``move`` the duplicate source is removed), "skipped" (given twice, or gone before it could be
    sorted) or "failed" (``note`` says why). ``poor_fit``: filed under :data:`POOR_FIT_FOLDER`."""

    source: str
    target: Path | None
    action: str
    note: str = ""
    poor_fit: bool = False


def sort_folder(result: Blend, dest: str | Path) -> Path:
    """Where :func:`sort_into` files ``result``: ``dest/<top genre>``, or ``dest/_does-not-fit``
    when the fit verdict says the ten genres do not describe the track."""
    return Path(dest) / (POOR_FIT_FOLDER if result.fit == "poor" else result.top_genre)


def sort_into(results: Sequence[Blend | Exception], dest: str | Path, *, move: bool = False) -> list[Sorted]:
    """Copy (or with ``move=True`` move) each classified file into :func:`sort_folder`.

    Never loses or overwrites a file, also with other processes sorting into ``dest`` at the same
    time. A target name is claimed atomically (``os.link`` onto a name that must not exist yet:
    it fails rather than replace), never checked and then written; a name taken by a different
    file gets a ``-1``, ``-2``... suffix. A copy is written under a fresh ``mkstemp`` name in the
    genre folder (a planted symlink never redirects it) and its bytes are checked against what
    was read from the source before it gets its name; a source is removed (``move``) only after
    that. On one filesystem a move is a hard link plus unlink, no copy. An identical regular file
    already there is kept as the copy; a file already at its place, or given twice, is left
    where it is. A file that cannot be sorted gets a "failed" entry and the others go on.
    """
    outcomes: list[Sorted] = []
    placed: dict[str, Path] = {}  # real path of each source sorted in this run -> where it went
    for r in results:
        if not isinstance(r, Blend) or not r.path:
            continue
        folder = sort_folder(r, dest)
        try:
            outcome = _sort_one(Path(r.path), folder, move=move, placed=placed)
        except OSError as exc:
            outcome = Sorted(str(r.path), None, "failed", f"{r.path}: not sorted ({exc.strerror or exc})")
        if r.fit == "poor" and outcome.action != "failed":
            from dataclasses import replace

            outcome = replace(outcome, poor_fit=True)
        outcomes.append(outcome)
    return outcomes


def sort_summary(outcomes: Sequence[Sorted], dest: str | Path) -> str:
    """One line that counts what :func:`sort_into` did, e.g. ``"sorted into D/<genre>/: 3 copied,
    1 already there; 1 of them in _does-not-fit/ (...)"``."""
    counts = [f"{n} {action}" for action in SORT_ACTIONS if (n := sum(o.action == action for o in outcomes))]
    line = f"sorted into {dest}/<genre>/: " + (", ".join(counts) or "nothing to sort")
    poor = sum(o.poor_fit for o in outcomes)
    if poor:
        line += f"; {poor} of them in {POOR_FIT_FOLDER}/ (the ten genres do not describe them)"
    return line


def _sort_one(src: Path, folder: Path, *, move: bool, placed: dict[str, Path]) -> Sorted:
    import os

    key = os.path.realpath(src)
    if key in placed:
        return Sorted(str(src), placed[key], "skipped", f"{src}: given more than once; sorted once, into {placed[key]}")
    if not src.is_file():
        return Sorted(str(src), None, "skipped", f"{src}: no longer there (moved or deleted during the run); not sorted")
    blocker = _not_a_folder(folder)
    if blocker is not None:
        return Sorted(str(src), None, "failed", f"{src}: not sorted: {blocker} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        target, how = _claim(src, folder, move=move)
    except FileNotFoundError:
        if src.exists():
            raise
        return Sorted(str(src), None, "skipped", f"{src}: no longer there (moved by another process?); not sorted")
    placed[key] = target
    if how == "same":
        return Sorted(str(src), target, "already there", f"{src}: already in {folder}; left where it is")
    kept = ""  # why a moved file's original is still there
    if move:
        try:
            src.unlink(missing_ok=True)  # another process moving the same file may have removed it already
        except OSError as exc:  # a read-only source folder: the copy is in place, it was not "not sorted"
            kept = f"the original could not be removed ({exc.strerror or exc}); both are kept"
    if how == "identical":
        return Sorted(str(src), target, "already there", f"{src}: an identical copy is already {target}"
                      + (f"; {kept}" if kept else "; removed the source" if move else ""))
    if kept:
        return Sorted(str(src), target, "copied", f"{src}: copied to {target}, not moved: {kept}")
    return Sorted(str(src), target, "moved" if move else "copied")


def check_sort_destination(dest: str | Path) -> None:
    """Refuse in one line, before any file is analysed, a ``--sort-into`` folder that can hold no
    file: a file (or a path through one), or a folder this user cannot write into. Found only
    after the batch, it cost a whole run to learn ("N failed")."""
    import os

    dest = Path(dest)
    blocker = _not_a_folder(dest)
    if blocker is not None:
        raise TracklensError(f"--sort-into {dest}: {blocker} is a file, not a folder")
    existing = next((p for p in [dest, *dest.parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise TracklensError(f"--sort-into {dest}: cannot write into {existing} (no permission, or a read-only disk)")


def _not_a_folder(folder: Path) -> Path | None:
    """The first of ``folder`` and its parents that exists but is not a directory (None: none)."""
    for path in [folder, *folder.parents]:
        if path.exists() or path.is_symlink():
            return None if path.is_dir() else path
    return None


def _claim(src: Path, folder: Path, *, move: bool) -> tuple[Path, str]:
    """Give ``src``'s bytes a name in ``folder`` that no other file had: ``(target, how)``, how
    "placed" (a new file), "identical" (an identical regular file already had a candidate name)
    or "same" (``src`` itself is already there). Raises FileNotFoundError when ``src`` vanished."""
    import os

    staged: Path | None = None  # the bytes to link under the target name
    own_copy = False  # staged is a temp copy of ours, to remove afterwards
    held: list[int] = []  # fds holding the lock on our temp copies (a killed run's are removed here)
    fileio.remove_stale_temp_files(folder / src.name)
    try:
        n = 0
        while True:
            target = folder / (src.name if n == 0 else f"{src.stem}-{n}{src.suffix}")
            if os.path.lexists(target):
                if target.exists() and os.path.samefile(src, target):
                    return target, "same"
                if _identical_regular_file(src, target):
                    return target, "identical"
                n += 1
                continue
            if staged is None:
                if move and not src.is_symlink() and _same_device(src, folder):
                    staged = src  # a hard link moves it: no copy, nothing to verify
                else:
                    staged, own_copy = _verified_copy(src, folder, held), True
            try:
                os.link(staged, target, follow_symlinks=False)  # fails when the name exists: never replaces
            except FileExistsError:
                continue  # taken since we looked: look at that name again
            except OSError:
                if own_copy:
                    raise
                staged, own_copy = _verified_copy(src, folder, held), True  # no hard links there: copy
                continue
            return target, "placed"
    finally:
        if own_copy and staged is not None:
            staged.unlink(missing_ok=True)
        for fd in held:
            os.close(fd)


def _same_device(src: Path, folder: Path) -> bool:
    import os

    return os.stat(src).st_dev == os.stat(folder).st_dev


def _verified_copy(src: Path, folder: Path, held: list[int]) -> Path:
    """A copy of ``src`` (bytes, mode and times) under a fresh hidden temp name in ``folder``,
    its bytes read back and compared with the bytes read from ``src``; raises OSError when they
    differ (a failing disk), so no source is removed for a bad copy. The copy is ``flock``-ed
    through an fd appended to ``held`` (the caller closes it), so a later run can tell a copy a
    killed run left (:func:`fileio.remove_stale_temp_files`) from one in use."""
    import hashlib
    import os
    import shutil

    fd, name = fileio.locked_temp_file(folder, prefix=fileio.temp_prefix(src.name), suffix=".part")
    tmp = Path(name)
    held.append(os.dup(fd))  # keeps the lock after the writer below closes fd
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as writer, open(src, "rb") as reader:
            while block := reader.read(1 << 20):
                digest.update(block)
                writer.write(block)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(src, tmp)
        if fileio.file_checksum(tmp) != digest.hexdigest():
            import errno

            raise OSError(errno.EIO, f"the copy in {folder} does not match the source")
        return tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _identical_regular_file(src: Path, target: Path) -> bool:
    """True when ``target`` itself (not through a symlink) is a regular file with ``src``'s bytes;
    a FIFO or device is never opened (reading a FIFO blocks forever)."""
    import filecmp
    import stat

    return stat.S_ISREG(target.lstat().st_mode) and filecmp.cmp(src, target, shallow=False)
