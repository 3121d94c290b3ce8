"""Atomic file writes: the project's one way to write an output file; and file checksums.

A reader (or a crash, or Ctrl-C) never sees half a file: data goes to a temp file in the
destination folder (same filesystem, so ``os.replace`` is atomic) and replaces the target only
when complete. On any error the temp file is removed and the previous target stays untouched.

A target may also be an fsspec URL (``s3://bucket/x.parquet``, ``gs://...``, ``memory://...``;
``file://`` is a local path): the file is written locally, uploaded under a hidden temp name in
the destination folder and moved onto the target, so readers never see a partial object there
either. Only the local part needs nothing beyond the standard library; URLs need ``fsspec``
(installed with dask) and, for cloud stores, its backend (``s3fs``, ``gcsfs``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path

from tracklens.errors import TracklensError

# --- checksums ---------------------------------------------------------------------------------

_SPECIAL_FILES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def special_file_kind(mode: int) -> str | None:
    """What a path that is not a regular file is ("a named pipe", ...), from its ``st_mode``;
    None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((what for is_kind, what in _SPECIAL_FILES if is_kind(mode)), "not a file")


def file_checksum(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (hex string).

    Raises TracklensError for a FIFO, directory or device (checked before opening: reading a
    FIFO blocks forever, a link to /dev/zero never ends); OSError, as ``open`` does, for a
    missing or unreadable path.
    """
    with suppress(OSError):  # a missing path: open() below raises the usual error
        kind = special_file_kind(os.stat(path).st_mode)
        if kind:
            raise TracklensError(f"{path}: not a regular file ({kind})")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def verified_file(path: str | Path, sha256: str, *, remedy: str, error: type[TracklensError] = TracklensError) -> Path:
    """``path`` once it exists and its SHA-256 is the recorded ``sha256`` (shipped weights);
    else ``error`` saying which, with ``remedy`` (e.g. "run `make musicnn-weights`") for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: missing; {remedy}")
    actual = file_checksum(path)
    if actual != sha256:
        raise error(f"{path}: SHA-256 {actual[:12]}… does not match the recorded {sha256[:12]}…; "
                    "the file is corrupt or was replaced")
    return path


# --- atomic writes -------------------------------------------------------------------------------

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(target: str | Path) -> bool:
    """True for an fsspec URL other than ``file://`` (a ``Path`` never is one: it folds ``//``)."""
    return isinstance(target, str) and bool(_URL.match(target)) and not target.startswith("file://")


def output_target(target: str | Path) -> str | Path:
    """``target`` as the writers here take it: a URL string, else a local ``Path``
    (``file:///x`` -> ``/x``)."""
    if is_url(target):
        return str(target)
    text = str(target)
    return Path(text.removeprefix("file://")) if text.startswith("file://") else Path(target)


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".part", locked: bool = True):
    """Yield a temp path beside ``path`` for a writer that wants a file name (pyarrow, numpy, Keras).

    ``suffix`` lets writers that insist on an extension (e.g. ``.keras``, ``.npz``) keep it.
    ``path`` may be an fsspec URL (see the module docstring). The temp file (``.<name>.XXXXXXXX
    <suffix>``) is ``flock``-ed while it is written, so :func:`remove_stale_temp_files` can tell
    one a killed process left (no lock: the kernel drops it with the process) from one in use.
    ``locked=False`` for a writer that ``flock``-s the file it opens itself (h5py: HDF5 and Keras'
    ``.weights.h5``), whose open our lock would make fail with EAGAIN; such a temp file is marked
    in use only while that writer holds it open, so write it where nothing cleans stale temp files.
    """
    path = output_target(path)
    if isinstance(path, str):
        with _atomic_url_path(path, suffix=suffix) as tmp:
            yield tmp
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    make_temp = locked_temp_file if locked else tempfile.mkstemp
    try:
        fd, tmp = make_temp(dir=path.parent, prefix=temp_prefix(path.name), suffix=suffix)
    except OSError as exc:  # name the file being written, not the temp name
        raise OSError(exc.errno, exc.strerror or _first_line(exc), str(path)) from exc
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be read
        os.replace(tmp, path)
    except OSError as exc:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        # an OS error about our temp file names the file being written instead (library errors
        # that subclass OSError, e.g. requests' ChunkedEncodingError, keep their type for retries)
        if type(exc).__module__ == "builtins" and exc.errno is not None and exc.filename in (None, tmp, str(tmp)):
            raise OSError(exc.errno, exc.strerror or _first_line(exc), str(path)) from exc
        raise
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: What an errno means for a user, in words (the C library's own text otherwise)
_PLAIN_CAUSES = {errno.EROFS: "the file system is read-only", errno.ENOSPC: "no space left on the device (the disk is full)",
                 errno.EDQUOT: "the disk quota is used up", errno.EACCES: "permission denied",
                 errno.EPERM: "permission denied", errno.ENOENT: "no such file or folder"}


def os_error_line(exc: OSError) -> str:
    """One line for an OSError that names the path and the cause: ``"/ro/out.parquet: the file
    system is read-only"``; for a path through a regular file (ENOTDIR, or a folder that could not
    be made because a file has its name) that file: ``"/x/home is a file, not a folder (needed for
    /x/home/data/cache)"``."""
    path = exc.filename
    if path is not None and (exc.errno == errno.ENOTDIR or isinstance(exc, FileExistsError)):
        blocker = next((p for p in [Path(path), *Path(path).parents]
                        if (p.exists() or p.is_symlink()) and not p.is_dir()), None)
        if blocker is not None:
            needed = "" if str(blocker) == str(path) else f" (needed for {path})"
            return f"{blocker} is a file, not a folder{needed}"
    cause = _PLAIN_CAUSES.get(exc.errno) or exc.strerror or _first_line(exc)
    target = path if path is not None else None
    return f"{target}: {cause}" if target is not None else cause


NAME_MAX = 255  # bytes in one file name (ext4, XFS, APFS, NTFS)
_TEMP_ROOM = NAME_MAX - len("..") - 8 - 16  # mkstemp's 8 characters; 16 bytes for any suffix we use


def temp_prefix(name: str) -> str:
    """The ``.<name>.`` prefix of a temp file written beside ``name``. A name too long to carry
    it (a legal 249-byte name made a 264-byte temp name: "File name too long", so no such file
    could be written or sorted) is cut to fit, and a hash of the whole name keeps it apart."""
    if len(os.fsencode(name)) <= _TEMP_ROOM:
        return f".{name}."
    cut = name
    while len(os.fsencode(cut)) > _TEMP_ROOM - 13:
        cut = cut[:-1]
    return f".{cut}~{hashlib.sha256(os.fsencode(name)).hexdigest()[:12]}."


def locked_temp_file(dir: str | Path, *, prefix: str, suffix: str) -> tuple[int, str]:  # noqa: A002 (mkstemp's name)
    """``mkstemp`` in ``dir``, ``flock``-ed: ``(fd, path)``; the lock lasts until ``fd`` (and
    its dups) are closed. Another process's :func:`remove_stale_temp_files` may remove the file
    between its creation and the lock; that is seen (no links left) and a fresh one is made."""
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        lock_fd(fd)
        if os.fstat(fd).st_nlink > 0:
            return fd, name
        os.close(fd)


def lock_fd(fd: int, *, wait: bool = True) -> bool:
    """``flock`` ``fd`` exclusively (a temp file being written: see :func:`remove_stale_temp_files`); without ``wait``, False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # not on Windows: no cleaning of stale temp files there
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Remove the temp files :func:`atomic_path` left beside ``path`` when a process writing it
    was killed (``.<name>.XXXXXXXX<suffix>``, no process holding its lock); returns them.
    A temp file another process is still writing is left alone. URLs: nothing to do."""
    path = output_target(path)
    if isinstance(path, str) or not path.parent.is_dir():
        return []
    removed = []
    pattern = re.compile(re.escape(temp_prefix(path.name)) + r"[A-Za-z0-9_]{8}(\.[A-Za-z0-9]+)?$")
    for candidate in path.parent.iterdir():
        if not pattern.match(candidate.name):
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError:  # a symlink, gone, unreadable: not ours to judge
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and lock_fd(fd, wait=False):
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


@contextmanager
def _atomic_url_path(url: str, *, suffix: str):
    """A local temp file, uploaded on success as a hidden object in the target's folder and then
    moved onto ``url`` (a rename where the store has them, a server-side copy on object stores)."""
    import fsspec

    fs, remote = fsspec.core.url_to_fs(url)
    folder, _, name = remote.rpartition("/")
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(name), suffix=suffix)
    os.close(fd)
    staging = f"{folder}/.{name}.{uuid.uuid4().hex[:12]}.part"
    try:
        yield Path(tmp)
        fs.makedirs(folder, exist_ok=True)
        try:
            fs.put_file(tmp, staging)
            fs.mv(staging, remote)
        except BaseException:
            with suppress(Exception):
                fs.rm(staging)
            raise
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


@contextmanager
def atomic_output(path: str | Path, mode: str = "w", **open_kwargs):
    """Open a temp file beside ``path``; on success it replaces ``path``, on error it vanishes."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path, "wb") as handle:
        handle.write(data)


# --- CSV: every CSV the project writes is safe to open in a spreadsheet ------------------------
# A text cell starting with = + - @ TAB or CR is run as a formula by Excel/LibreOffice/Sheets
# (OWASP "CSV injection"). Such cells are written with a leading apostrophe, which spreadsheets
# show as text; read_csv removes it again, so a round trip gives the original text. A cell that
# already starts with apostrophes before such a character gets one more, so the rule reverses.
# Numbers (also negative ones stored as text, e.g. "-5.3") are left alone: they run nothing.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _needs_quote(text: str) -> bool:
    return text.lstrip("'")[:1] in FORMULA_PREFIXES and not _NUMBER.match(text.lstrip("'"))


def escape_cell(value):
    """``value`` as a spreadsheet will show it as text (strings only; other values unchanged)."""
    if isinstance(value, str) and _needs_quote(value):
        return "'" + value
    return value


def unescape_cell(value):
    """Undo :func:`escape_cell`."""
    if isinstance(value, str) and value[:1] == "'" and _needs_quote(value[1:]):
        return value[1:]
    return value


def _map_text_columns(frame, fn):
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if not (pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column])):
            out[column] = out[column].map(fn, na_action="ignore")
    return out


def csv_safe(frame):
    """A copy of a DataFrame with every formula-like text cell escaped (see FORMULA_PREFIXES)."""
    return _map_text_columns(frame, escape_cell)


def to_csv_text(frame, **to_csv_kwargs) -> str:
    """The CSV text of ``frame`` with formula-like cells escaped (for stdout)."""
    safe = csv_safe(frame)
    to_csv_kwargs.setdefault("index", False)
    # Python's csv writer quotes a field only for the characters of its line terminator, so a
    # cell holding a bare CR would split the row for readers: such tables are written with CRLF.
    has_cr = any(safe[c].astype(str).str.contains("\r", regex=False).any()
                 for c in safe.columns if safe[c].dtype == object or str(safe[c].dtype).startswith("str"))
    to_csv_kwargs.setdefault("lineterminator", "\r\n" if has_cr else "\n")
    return safe.to_csv(**to_csv_kwargs)


def write_csv(frame, path: str | Path, **to_csv_kwargs) -> Path:
    """Write ``frame`` to ``path`` atomically, formula-like cells escaped; returns the path."""
    with atomic_output(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(to_csv_text(frame, **to_csv_kwargs))
    return Path(path)


def has_csv_header(path, columns, *, opener=open) -> bool:
    """Whether ``path`` (opened with ``opener``, e.g. an fsspec filesystem's ``open``) starts with the
    header :func:`write_csv` writes for ``columns``: how a command tells a CSV it wrote before, which
    it may replace, from the user's own, which it never does. False when it cannot be read."""
    try:
        with opener(path, "rb") as handle:
            return handle.readline().rstrip(b"\r\n") == ",".join(columns).encode()
    except OSError:
        return False


def read_csv(path, **read_csv_kwargs):
    """Read a CSV the project wrote (or any CSV), undoing :func:`escape_cell` on text cells."""
    import pandas as pd

    return _map_text_columns(pd.read_csv(path, **read_csv_kwargs), unescape_cell)
