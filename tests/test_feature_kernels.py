"""The feature engine's numba kernels (tracklens.feature_kernels): the analysis reaches every one
of them, numba caches them on disk, and numba_cache warms and clears that cache. Their values
against numpy / librosa / scipy are checked in tests/test_features.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tracklens
from tracklens import feature_kernels, features, numba_cache
from tracklens.errors import TracklensError

PACKAGE_DIR = Path(tracklens.__file__).resolve().parent
CACHED_NUMBA = re.compile(r"@numba\.(?:njit|jit|vectorize|guvectorize)\([^)]*\bcache=True")


def _kernels() -> dict[str, object]:
    from numba.core.registry import CPUDispatcher

    return {name: value for name, value in vars(feature_kernels).items() if isinstance(value, CPUDispatcher)}


def test_every_module_with_cached_numba_functions_is_one_numba_cache_warms_and_clears():
    """numba_cache clears (after a poisoned-cache crash) the cache files of KERNEL_MODULES only:
    a module with cached kernels missing there would keep its poisoned files."""
    defining = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        relative = path.relative_to(PACKAGE_DIR)
        if relative.parts[0] in ("tests", "bench", "recipes", "notebooks") or ".venv" in relative.parts:
            continue
        if CACHED_NUMBA.search(path.read_text(encoding="utf-8")):
            defining.add(".".join(("tracklens", *relative.with_suffix("").parts)))
    assert defining == set(numba_cache.KERNEL_MODULES)
    assert {p.name for p in numba_cache._source_files() if p.parent == PACKAGE_DIR} == {"feature_kernels.py"}


def test_the_warm_up_runs_every_kernel(monkeypatch):
    """features.warm_kernels is what numba_cache compiles under its lock: a kernel it does not
    reach would be compiled later, by workers at once (numba #10128's race)."""
    kernels = _kernels()
    assert len(kernels) == 7
    called = set()
    for name, kernel in kernels.items():
        monkeypatch.setattr(feature_kernels, name,
                            lambda *args, _name=name, _kernel=kernel: called.add(_name) or _kernel(*args))
    features.warm_kernels()
    assert called == set(kernels)


CHILD = textwrap.dedent("""\
    import sys
    import numpy as np
    from tracklens import feature_kernels, numba_cache

    magnitude = np.asfortranarray(np.random.default_rng(0).random((9, 5), dtype=np.float32))
    feature_kernels.rolloff_bins(magnitude)  # float32, frame-major: the kernel's path
    print(len(feature_kernels._rolloff_bins.stats.cache_hits))
    if sys.argv[1] == "clear":
        print(numba_cache.clear_cache())
""")


def test_the_kernels_are_cached_on_disk_and_cleared_by_numba_cache(tmp_path):
    """A second process loads a kernel from numba's cache instead of compiling it, and
    numba_cache.clear_cache removes its files (the moved kernels keep cache=True and are found)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def child(what: str) -> list[int]:
        done = subprocess.run([sys.executable, "-c", CHILD, what], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return [int(line) for line in done.stdout.split()]

    def cache_files() -> list[str]:
        return sorted(p.name for p in tmp_path.rglob("feature_kernels._rolloff_bins-*") if p.suffix in (".nbi", ".nbc"))

    assert child("compile") == [0]  # cold: compiled, nothing loaded
    written = cache_files()
    assert written and any(name.endswith(".nbi") for name in written)
    hits, removed = child("clear")
    assert hits == 1 and removed >= len(written)  # warm: loaded from the cache; then cleared
    assert cache_files() == []


@pytest.mark.parametrize("size", [0, 2, -3])
def test_the_median_filter_refuses_an_even_or_empty_size(size):
    with pytest.raises(TracklensError, match=f"size={size} must be a positive odd integer"):
        feature_kernels.median_filter_1d(np.zeros((4, 4), np.float32), size=size, axis=0)
