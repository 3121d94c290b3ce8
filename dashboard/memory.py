"""Keep the dashboard server's resident memory near its start-up size (glibc malloc tuning).

Measured with ``bench/dashboard.py --clients 4`` (2 cores): glibc gives each thread that meets
a locked heap its own arena (up to 8 per core) and keeps freed blocks there, so after 14 x 30 s,
6 x 4-minute and 25 mixed uploads the server stayed at 1.11 GB (start 0.92 GB) even with
:func:`return_freed_memory` after every check; with two arenas it went back to 0.96-0.99 GB
(1.31 GB before either). Both are no-ops on a C library other than glibc.
"""

from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
MAX_ARENAS = 2  # the main heap and one shared by all other threads


@functools.lru_cache(maxsize=1)
def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def limit_malloc_arenas(max_arenas: int = MAX_ARENAS) -> None:
    """Cap glibc's malloc arenas (call before the server starts its threads)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, max_arenas)


def return_freed_memory() -> None:
    """Hand the heap pages freed since the last call back to the system (``malloc_trim(0)``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
