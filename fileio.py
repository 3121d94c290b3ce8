"""Atomic file writes: the project's one way to write an output file.

A reader (or a crash, or Ctrl-C) never sees half a file: data goes to a temp file in the
destination folder (same filesystem, so ``os.replace`` is atomic) and replaces the target only
when complete. On any error the temp file is removed and the previous target stays untouched.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".part"):
    """Yield a temp path beside ``path`` for a writer that wants a file name (pyarrow, numpy, Keras).

    ``suffix`` lets writers that insist on an extension (e.g. ``.keras``, ``.npz``) keep it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are meant to be read
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
