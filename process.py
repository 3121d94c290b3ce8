"""Process set-up: glibc's allocator tuned for the two kinds of process tracklens runs.

The two callers want opposite things, on purpose; each function says which caller it is for:

- **A batch worker** (the ``features`` task's ``warm`` hook, :func:`keep_freed_memory`) analyses
  one file after another on one thread. One analysis allocates ~100 MB of short-lived arrays;
  handed back to the kernel, every clip faulted them in again (9 500 page faults, 37 ms of system
  CPU per 30 s clip; 1 job from Opus 0.28 -> 0.26 s per clip, the same peak memory). So it keeps
  freed blocks: speed per file is what it is for, and it exits when the batch is done.
- **The dashboard server** (:func:`limit_malloc_arenas` at start, :func:`return_freed_memory`
  after each check) lives for days with many threads, and its resident size is what matters.
  Measured with ``bench/dashboard.py --clients 4`` (2 cores): glibc gives each thread that meets
  a locked heap its own arena (up to 8 per core) and keeps freed blocks there, so after 14 x 30 s,
  6 x 4-minute and 25 mixed uploads the server stayed at 1.11 GB (start 0.92 GB) even with
  :func:`return_freed_memory` after every check; with two arenas it went back to 0.96-0.99 GB
  (1.31 GB before either).

Every function is a no-op where the C library is not glibc (that allocator's defaults stay).
"""

from __future__ import annotations

import ctypes
import functools

# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MAX_ARENAS = 2  # the server's main heap and one shared by all its other threads


@functools.lru_cache(maxsize=1)
def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


@functools.cache
def keep_freed_memory() -> None:
    """Batch workers: keep freed arrays in the process for the next file (once per process)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)  # arrays up to 64 MB come from the heap
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)  # up to 256 MB freed at its top stay


def limit_malloc_arenas(max_arenas: int = MAX_ARENAS) -> None:
    """The dashboard server: cap glibc's malloc arenas (call before the server starts its threads)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, max_arenas)


def return_freed_memory() -> None:
    """The dashboard server: hand the heap pages freed since the last call back to the system
    (``malloc_trim(0)``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
