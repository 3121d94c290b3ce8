"""Folders of audio (GTZAN or your own): one manifest row per file, with its label and what is
wrong with it (:func:`folder_manifest`, :func:`write_manifest`)."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from tracklens import fileio
from tracklens.errors import TracklensError, path_text

MANIFEST_COLUMNS = ("path", "label", "duration_s", "sample_rate", "channels", "checksum", "error")

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
    from tracklens.audio import NAME_NOT_UTF8, AudioError, load_audio, probe_audio
    from tracklens.fileio import file_checksum

    row = {"path": path_text(path), "label": path_text(label_for(path, root)), "duration_s": None,
           "sample_rate": None, "channels": None, "checksum": "", "error": ""}
    if row["path"] != str(path):  # a table cannot hold the name: an error row, never a crash of the batch
        row["error"] = NAME_NOT_UTF8
        return row
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
    if not os.access(root, os.R_OK | os.X_OK):  # os.walk finds nothing in it: it is not "no audio files"
        raise TracklensError(f"{root}: cannot read this folder (permission denied)")
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
    atomic, formula-like cells escaped); returns the frame. An existing ``out`` is replaced only
    when it is a manifest (an earlier run's): the user's own CSV there is refused, before the walk."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not (out.is_file() and fileio.has_csv_header(out, MANIFEST_COLUMNS)):
            raise TracklensError(f"--out {out}: already there and not a manifest tracklens wrote; it is never "
                                 "replaced: choose another --out")
    frame = folder_manifest(path, decode=decode, progress=progress)
    fileio.write_csv(frame, out)
    return frame
