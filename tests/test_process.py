"""process: the one place the allocator is tuned, for a batch worker and for the dashboard server."""

from __future__ import annotations

import ast

from test_architecture import package_modules
from tracklens import process


def test_only_process_talks_to_the_c_library():
    """Allocator tuning in a second module is the bug this module removed (two places, opposite effects)."""
    found = [module for module, path in package_modules().items() if module != "process"
             and any(isinstance(n, ast.Attribute) and n.attr in ("mallopt", "malloc_trim", "CDLL")
                     for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))]
    assert found == []


def test_each_setting_reaches_glibc(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append(("mallopt", param, value))

        def malloc_trim(self, pad):
            calls.append(("malloc_trim", pad))

    monkeypatch.setattr(process, "_glibc", lambda: FakeLibc())
    process.keep_freed_memory.cache_clear()
    process.keep_freed_memory()
    process.keep_freed_memory()  # once per process
    process.limit_malloc_arenas()
    process.return_freed_memory()
    process.keep_freed_memory.cache_clear()  # the real one runs again in a later test's worker
    assert calls == [("mallopt", process.M_MMAP_THRESHOLD, 64 << 20), ("mallopt", process.M_TRIM_THRESHOLD, 256 << 20),
                     ("mallopt", process.M_ARENA_MAX, 2), ("malloc_trim", 0)]
    assert (process.M_TRIM_THRESHOLD, process.M_MMAP_THRESHOLD, process.M_ARENA_MAX) == (-1, -3, -8)  # malloc.h

