"""Where numba caches tracklens' own kernels: never inside an installed package (the wheel wrote
16 files into site-packages/tracklens/__pycache__), in the user cache folder instead; a checkout
keeps its in-tree cache, and NUMBA_CACHE_DIR still wins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

KERNEL = textwrap.dedent("""\
    import numba

    @numba.njit(cache=True)
    def double(x):
        return 2 * x
""")

CHILD = textwrap.dedent("""\
    import sys
    from pathlib import Path
    from tracklens import numba_cache

    package, checkout, cache = Path(sys.argv[1]), sys.argv[2] == "checkout", Path(sys.argv[3])
    numba_cache.use_user_cache(package, checkout=checkout, cache_dir=cache)
    sys.path.insert(0, str(package.parent))
    from pkg.kern import double
    assert double(21) == 42
""")


def _numba_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.suffix in (".nbi", ".nbc")) if folder.is_dir() else []


def _compile(tmp_path: Path, how: str, **env) -> tuple[list[str], list[str]]:
    package = tmp_path / "site-packages" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "kern.py").write_text(KERNEL)
    cache = tmp_path / "user-cache"
    child_env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    child_env.update(PYTHONDONTWRITEBYTECODE="1", **env)
    done = subprocess.run([sys.executable, "-c", CHILD, str(package), how, str(cache)], env=child_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return _numba_files(package), _numba_files(cache)


def test_an_installed_package_caches_in_the_user_cache_folder(tmp_path):
    in_package, in_user_cache = _compile(tmp_path, "installed")
    assert in_package == [] and in_user_cache


def test_a_checkout_keeps_its_in_tree_cache(tmp_path):
    in_package, in_user_cache = _compile(tmp_path, "checkout")
    assert in_package and in_user_cache == []


def test_numba_cache_dir_still_wins(tmp_path):
    chosen = tmp_path / "chosen"
    in_package, in_user_cache = _compile(tmp_path, "installed", NUMBA_CACHE_DIR=str(chosen))
    assert in_package == [] and in_user_cache == [] and _numba_files(chosen)


def test_the_user_cache_folder_is_the_platform_one():
    import platformdirs

    from tracklens import numba_cache

    assert numba_cache.user_cache_dir() == Path(platformdirs.user_cache_dir("tracklens", appauthor=False)) / "numba"
