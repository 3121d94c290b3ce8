"""Compile numba's cached functions in one process at a time, before any worker starts.

numba can poison its own on-disk cache when two processes compile the same cached
``@guvectorize`` function at once (numba issue #10128; fix proposed in numba PR #10545, not in
numba 0.68): each process numbers the functions it compiles in its own order, so a kernel file
(``pitch._pi_wrapper-430.py311.1.nbc``) and its wrapper (``guf-pitch._pi_wrapper-...``) can
come from two processes with different ABI tags, and every later call jumps to a null pointer
(SIGSEGV). librosa caches its gufuncs (``estimate_tuning``'s parabolic interpolation,
``localmax``, ...) and tracklens.feature_kernels caches its kernels, so a cold ``features --jobs 2``
crashed 1 run in 6.

- :func:`warm_numba` runs a warm-up workload (the feature engine's ``features.warm_kernels``: a
  tiny analysis, passed in by its caller) in this process, once, holding an exclusive lock
  file in numba's cache folder: sibling processes on the same host (joblib or Dask workers, a
  second CLI run, the dashboard) wait, then load the finished cache instead of compiling beside
  it. Cold, it compiles for 40 s of CPU; warm, it costs 0.17 s of CPU where the analysis
  modules are loaded (4 s in a fresh process, nearly all imports and cache loads that any
  analysing process pays anyway).
- :func:`check_cache` runs that warm-up in a child process (at install, after a worker crash,
  and once per numba/librosa version and cache folder): a child killed by a signal means a
  poisoned cache, whose ``.nbi``/``.nbc`` files are removed before the warm-up runs again.

``python -m tracklens.numba_cache`` runs the check on :data:`DEFAULT_WORKLOAD` (``make venv``
does, so a fresh clone starts warm). This module imports no project code beyond errors: the
workload comes from the caller, so the engine can call it without an import cycle.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from tracklens.errors import TracklensError

LOCK_NAME = "tracklens-numba.lock"
LOCK_TIMEOUT_S = 1800  # a cold compile: 53 s of CPU with EXTRA_MODULES, ~3 min on a busy 2-core machine
CHECK_TIMEOUT_S = 1800
# What `python -m tracklens.numba_cache` warms: the feature engine's kernels and librosa's it calls.
DEFAULT_WORKLOAD = "tracklens.features:warm_kernels"
# librosa modules the project reaches outside the per-file analysis (librosa_visuals' beat_track).
# Warmed by the child check and at install only: importing librosa.beat costs 2.7 s of CPU even
# from a warm cache, more than the whole analysis loads (3.0 s), too much for every worker.
EXTRA_MODULES = ("librosa.beat",)
# A numba cache file: "<module>.<function>-<line>.py311.nbi" / ".<n>.nbc", and the same with a
# "<tag>-" prefix for the gufunc/ufunc wrappers ("guf-pitch._pi_wrapper-430.py311.1.nbc").
_CACHE_FILE = re.compile(r"^(?:[a-z]+-)?(?P<module>[^.]+)\..+\.(?:nbi|\d+\.nbc)$")

_thread_lock = threading.Lock()
_warmed = False


def warm_numba(workload: Callable[[], None], *, check: bool = False) -> None:
    """Compile (or load from numba's cache) every numba function ``workload`` reaches, in this
    process, once per process; sibling processes on this host wait on a lock meanwhile.

    workload : a module-level function that runs the kernels once (``features.warm_kernels``)
    check : first run :func:`check_cache` in a child process unless a stamp says it already
        passed for this numba/librosa version and cache folder (costs one warm-up, once)
    """
    global _warmed
    with _thread_lock:  # threads of one process: one warms, the others wait and skip
        if _warmed:
            return
        if check and not _is_checked():
            check_cache(workload)
        with compile_lock():
            workload()
        _warmed = True


def check_cache(workload: Callable[[], None]) -> bool:
    """Run the warm-up in a child process; if the child dies by a signal (a poisoned cache),
    remove the cache files of librosa and tracklens, say so on stderr and warm up again.

    Returns True when the cache had to be rebuilt. Raises TracklensError when the warm-up still
    fails. Writes the stamp that :func:`warm_numba` (``check=True``) looks for.
    """
    repaired = False
    for attempt in (1, 2):
        child = _run_warm_child(workload)
        if child.returncode == 0:
            _write_stamp()
            return repaired
        if child.returncode > 0 or attempt == 2:
            break
        removed = clear_cache()
        repaired = True
        print(f"tracklens: numba's compiled-code cache was damaged (a warm-up process died by "
              f"{_signal_name(-child.returncode)}); removed {removed} cache files, compiling again "
              f"(about 30 s)", file=sys.stderr)
    last = (child.stderr or "").strip().splitlines()[-1:] or ["no message"]
    how = f"died by {_signal_name(-child.returncode)}" if child.returncode < 0 else f"exit status {child.returncode}"
    raise TracklensError(f"numba warm-up failed ({how}): {last[0]}")


def clear_cache() -> int:
    """Remove numba's cache files (``*.nbi``, ``*.nbc`` only) of librosa and of tracklens's
    numba kernels from every folder numba may keep them in; returns how many were removed."""
    removed = 0
    for folder, modules in _cache_folders().items():
        for entry in folder.iterdir() if folder.is_dir() else ():
            match = _CACHE_FILE.match(entry.name)
            if match and match["module"] in modules and entry.is_file():
                entry.unlink(missing_ok=True)
                removed += 1
        for stamp in folder.glob("tracklens-warm-*.ok") if folder.is_dir() else ():
            stamp.unlink(missing_ok=True)
    return removed


@contextmanager
def compile_lock(timeout_s: float = LOCK_TIMEOUT_S):
    """Hold the host-wide numba compile lock (``fcntl.flock`` on a file in numba's cache folder).

    The kernel releases it when the holder exits, however it exits, so a crash never leaves it
    stuck. Without a writable cache folder (or fcntl) numba caches nothing, so there is nothing
    to race on and no lock is taken.
    """
    try:
        import fcntl

        handle = open(_numba_cache_dir() / LOCK_NAME, "a+b")
    except (ImportError, OSError):
        yield
        return
    with handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TracklensError(f"{handle.name}: another process has held numba's compile lock for "
                                         f"{timeout_s:.0f} s; stop it or delete the file") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- where tracklens' own kernels are cached -------------------------------------------------------
# numba caches a function in ``__pycache__`` beside its source when that folder is writable: an
# installed wheel in a virtualenv wrote 16 files into site-packages/tracklens/__pycache__. A
# locator placed before numba's in-tree one sends the kernels of an installed package (no
# checkout), or of a checkout whose folder is not writable, to the user cache folder instead
# (platformdirs, e.g. ~/.cache/tracklens/numba). NUMBA_CACHE_DIR, when set, still wins (numba's
# own first locator), and a checkout keeps its in-tree cache.

_installed: list = []  # the locator class installed in this process (at most one)


def user_cache_dir() -> Path:
    """Where an installed tracklens keeps numba's cache of its own kernels."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("tracklens", appauthor=False)) / "numba"


def use_user_cache(package_dir: str | Path, *, checkout: bool, cache_dir: str | Path | None = None):
    """Cache the numba functions defined under ``package_dir`` in ``cache_dir`` (default
    :func:`user_cache_dir`) unless ``checkout`` and ``package_dir`` is writable; returns the
    locator class. Call before the ``@njit(cache=True)`` decorators run (numba picks a function's
    cache folder when it is decorated). Idempotent per process."""
    from numba.core import caching, config as numba_config

    if _installed:
        return _installed[0]
    package = Path(package_dir).resolve()
    target = Path(cache_dir) if cache_dir is not None else None

    class TracklensUserCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
        """numba's cache of tracklens' kernels in the user cache folder (see module comment)."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str((target or user_cache_dir()) / self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            source = Path(py_file).resolve()
            if numba_config.CACHE_DIR or package not in source.parents:
                return None
            if checkout and _writable(source.parent):
                return None  # a checkout: numba's in-tree cache, as before
            return super().from_function(py_func, py_file)

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.60-ish
    classes = impl._locator_classes  # the list numba walks, shared by its function and library caches
    classes.insert(classes.index(caching.InTreeCacheLocator), TracklensUserCacheLocator)
    _installed.append(TracklensUserCacheLocator)
    return TracklensUserCacheLocator


def _writable(folder: Path) -> bool:
    import os

    pycache = folder / "__pycache__"
    return os.access(pycache if pycache.is_dir() else folder, os.W_OK)


# --- internals ----------------------------------------------------------------------------------


def _warm_everything(workload: Callable[[], None]) -> None:
    """What the child of :func:`check_cache` runs: the workload, then EXTRA_MODULES."""
    warm_numba(workload)
    with compile_lock():
        for name in EXTRA_MODULES:
            importlib.import_module(name)  # their gufuncs have signatures: compiled on import


def _run_warm_child(workload: Callable[[], None]) -> subprocess.CompletedProcess:
    code = (f"from {workload.__module__} import {workload.__qualname__} as workload\n"
            "from tracklens.numba_cache import _warm_everything\n"
            "_warm_everything(workload)")
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TracklensError(f"numba warm-up took longer than {CHECK_TIMEOUT_S} s; is another process holding "
                             f"{_numba_cache_dir() / LOCK_NAME}?") from None


def _signal_name(number: int) -> str:
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


# The project's modules that define ``cache=True`` numba functions (tests/test_feature_kernels.py
# fails when another module defines one and is not listed).
KERNEL_MODULES = ("tracklens.feature_kernels",)


def _source_files() -> list[Path]:
    """Every librosa module, and KERNEL_MODULES: the sources whose numba caches we warm and clear."""
    return [*_librosa_dir().rglob("*.py"), *(Path(importlib.util.find_spec(name).origin) for name in KERNEL_MODULES)]


def _librosa_dir() -> Path:
    return Path(importlib.util.find_spec("librosa").submodule_search_locations[0])


def _locators():
    """numba's source-file locators in its own order (with ours, when installed)."""
    from numba.core import caching, config as numba_config

    classes = [*_installed, caching.InTreeCacheLocator, caching.UserWideCacheLocator]
    return [caching.UserProvidedCacheLocator, *classes] if numba_config.CACHE_DIR else classes


def _cache_folders() -> dict[Path, set[str]]:
    """The folder numba caches each source's functions in -> the module stems cached there."""
    folders: dict[Path, set[str]] = {}
    for source in _source_files():
        folder = _cache_folder(source)
        if folder is not None:
            folders.setdefault(folder, set()).add(source.stem)
    return folders


def _cache_folder(source: Path) -> Path | None:
    """Where numba caches the functions of ``source``: the first locator that can, as numba
    picks it (NUMBA_CACHE_DIR, else ``__pycache__`` beside it, else the user cache folder)."""
    for locator_class in _locators():
        locator = locator_class.from_function(_cache_folder, str(source))  # None: not writable
        if locator is not None:
            return Path(locator.get_cache_path())
    return None


def _numba_cache_dir() -> Path:
    """The folder numba caches librosa's pitch module in (our lock and stamp live there)."""
    folder = _cache_folder(_librosa_dir() / "core" / "pitch.py")
    if folder is None:
        raise OSError("numba has no writable cache folder")
    return folder


def _stamp_path() -> Path | None:
    """The file saying :func:`check_cache` passed for these versions (None: numba caches nothing
    here, so nothing can be poisoned)."""
    versions = [sys.version, *(importlib.metadata.version(p) for p in ("numba", "llvmlite", "librosa", "numpy"))]
    key = hashlib.sha256("|".join(versions).encode()).hexdigest()[:16]
    try:
        return _numba_cache_dir() / f"tracklens-warm-{key}.ok"
    except OSError:
        return None


def _is_checked() -> bool:
    stamp = _stamp_path()
    return stamp is None or stamp.exists()


def _write_stamp() -> None:
    stamp = _stamp_path()
    if stamp is not None:
        stamp.write_text("numba warm-up passed\n")


if __name__ == "__main__":  # `python -m tracklens.numba_cache [module:function]`: check, repair, warm (make venv)
    started = time.perf_counter()
    module, _, function = (sys.argv[1] if len(sys.argv) > 1 else DEFAULT_WORKLOAD).partition(":")
    try:
        check_cache(getattr(importlib.import_module(module), function))
    except TracklensError as exc:
        sys.exit(f"tracklens: error: {exc}")
    print(f"numba cache warm ({_numba_cache_dir()}, {time.perf_counter() - started:.1f} s)")
