"""numba's cache race (numba issue #10128): compiles are serialised per host, a poisoned cache is
found and rebuilt, and cold parallel runs never crash."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tracklens import config, features, numba_cache
from tracklens.errors import TracklensError

# Two cached gufuncs, as in numba's own reproducer of #10128: a process that finds `fast` cached
# numbers `slow` differently from one that compiled both.
GUFUNC_MODULE = textwrap.dedent("""\
    from numba import float64, guvectorize

    @guvectorize([(float64[:], float64[:])], "(n)->(n)", cache=True)
    def fast(x, out):
        for i in range(x.shape[0]):
            out[i] = x[i] * 2.0

    @guvectorize([(float64[:], float64[:])], "(n)->(n)", cache=True)
    def slow(x, out):
        for i in range(x.shape[0]):
            out[i] = x[i] + 1.0
""")

# A process that compiles the module under tracklens's compile lock, pausing before each cache
# write until the test says go (the same breakpoint numba's regression test uses).
WORKER = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    import numba.core.caching as caching
    from tracklens.numba_cache import compile_lock

    name, barriers, module_dir = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    save, saves = caching.IndexDataCacheFile._save_data, [0]

    def paused_save(self, filename, data):
        saves[0] += 1
        (barriers / f"{name}_ready_{saves[0]}").write_text(filename)
        deadline = time.monotonic() + 120
        while not (barriers / f"{name}_go_{saves[0]}").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return save(self, filename, data)

    caching.IndexDataCacheFile._save_data = paused_save
    sys.path.insert(0, module_dir)
    (barriers / f"{name}_wants_lock").touch()
    with compile_lock():
        import numpy as np
        import gufunc_module
        assert (gufunc_module.slow(np.arange(3.0)) == [1, 2, 3]).all()
    (barriers / f"{name}_done").touch()
""")
VERIFY = "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, gufunc_module; print(gufunc_module.slow(np.arange(3.0)))"


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[2]} exited ({proc.returncode}) before {path.name}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.slow  # > 10 s on 2 busy cores: cold numba compiles in child processes
def test_compile_lock_prevents_the_gufunc_cache_race(tmp_path):
    """numba #10128's interleaving, forced: A is paused mid-compile (holding the lock) when B
    starts. Without the lock, B compiles `slow` beside A, writes a kernel whose ABI tag A's
    wrapper does not know, and every later load dies by SIGSEGV; with it, B waits, then loads."""
    barriers, module_dir = tmp_path / "barriers", tmp_path / "module"
    barriers.mkdir(), module_dir.mkdir()
    (module_dir / "gufunc_module.py").write_text(GUFUNC_MODULE)
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}  # cold, and not the venv's

    def start(name):
        return subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), name, str(barriers), str(module_dir)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def go(name, n):
        (barriers / f"{name}_go_{n}").touch()

    a = start("A")
    b = None
    try:
        for n in (1, 2):  # A writes `fast` (kernel, wrapper) ...
            assert _wait_for(barriers / f"A_ready_{n}", a)
            go("A", n)
        assert _wait_for(barriers / "A_ready_3", a)  # ... and stops before writing `slow`
        b = start("B")
        assert _wait_for(barriers / "B_wants_lock", b)
        # Unlocked, B finds `fast` cached and compiles `slow` within a second or two.
        b_compiled_beside_a = _wait_for(barriers / "B_ready_1", b, timeout=8.0)
        go("A", 3)
        assert _wait_for(barriers / "A_ready_4", a)
        go("A", 4)
        assert _wait_for(barriers / "A_done", a)
        for n in range(1, 5):  # whatever B still writes, it may write now
            go("B", n)
        assert a.wait(60) == 0 and b.wait(60) == 0, (a.stderr.read(), b.stderr.read())
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
    later = subprocess.run([sys.executable, "-c", VERIFY, str(module_dir)], env=env, capture_output=True, text=True,
                           timeout=120)
    assert later.returncode == 0, f"a later load crashed ({later.returncode}): the cache was poisoned"
    assert not b_compiled_beside_a


@pytest.mark.slow  # ~80 s on 2 cores: one cold compile (53 s of CPU) while 7 more processes wait, then load
def test_two_cold_parallel_feature_runs_at_once_never_crash(tmp_path):
    """The failing first run: an empty numba cache and `tracklens features --jobs 2`, twice at once
    (8 processes that need the same compiled code: 2 runs, their checks, 4 workers), then a
    later load of that cache."""
    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(int(3.5 * config.SAMPLE_RATE)) / config.SAMPLE_RATE
    for i in range(4):
        sf.write(audio / f"clip{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t)).astype(np.float32),
                 config.SAMPLE_RATE)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    tracklens = Path(sys.executable).parent / "tracklens"
    runs = [subprocess.Popen([str(tracklens), "features", str(audio), "--out", str(tmp_path / f"f{k}.parquet"),
                              "--jobs", "2", "--cache-dir", str(tmp_path / f"cache{k}")],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for k in range(2)]
    outcomes = [(run.wait(600), run.stderr.read()[-2000:]) for run in runs]
    later = subprocess.run([sys.executable, "-c", "from tracklens import features; features.warm_numba()"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert later.returncode == 0, later.stderr[-2000:]
    assert "damaged" not in "".join(err for _, err in outcomes)


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    """A stand-in librosa tree and feature_kernels.py under tmp_path, cached in-tree (``__pycache__``
    beside them): clearing the cache in a test never touches the real (shared) one."""
    from numba.core import config as numba_config

    src = tmp_path / "src"
    for name in ("librosa/core/pitch.py", "librosa/util/utils.py", "tracklens/feature_kernels.py"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("")
    monkeypatch.setattr(numba_config, "CACHE_DIR", "")
    monkeypatch.setattr(numba_cache, "_librosa_dir", lambda: src / "librosa")
    monkeypatch.setattr(numba_cache, "_source_files", lambda: [*(src / "librosa").rglob("*.py"),
                                                               src / "tracklens" / "feature_kernels.py"])
    return src


def test_a_warm_up_killed_by_a_signal_clears_the_cache_and_warms_again(fake_sources, monkeypatch, capsys):
    caches = {"librosa/core": ["pitch._pi_wrapper-430.py311.nbi", "pitch._pi_wrapper-430.py311.1.nbc",
                               "guf-pitch._pi_wrapper-430.py311.nbi", "guf-pitch._pi_wrapper-430.py311.2.nbc"],
              "librosa/util": ["utils._localmax-1035.py311.nbi", "guf-utils._localmax-1035.py311.3.nbc"],
              "tracklens": ["feature_kernels._rolloff_bins-155.py311.nbi", "feature_kernels._rolloff_bins-155.py311.1.nbc"]}
    kept = {"librosa/core": ["pitch.cpython-311.pyc", "notes.txt", "tracklens-numba.lock"],
            "tracklens": ["other._f-3.py311.nbi", "feature_kernels.cpython-311.pyc"]}
    for group in (caches, kept):
        for folder, names in group.items():
            (fake_sources / folder / "__pycache__").mkdir(exist_ok=True)
            for name in names:
                (fake_sources / folder / "__pycache__" / name).write_text("x")
    children = iter([
        "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",  # what a poisoned cache does
        "pass",
    ])
    monkeypatch.setattr(numba_cache, "_run_warm_child",
                        lambda workload: subprocess.run([sys.executable, "-c", next(children)], capture_output=True, text=True))

    assert numba_cache.check_cache(features.warm_kernels) is True
    left = sorted(p.relative_to(fake_sources).as_posix() for p in fake_sources.rglob("__pycache__/*")
                  if not p.name.startswith("tracklens-warm-"))
    assert left == sorted(f"{folder}/__pycache__/{name}" for folder, names in kept.items() for name in names)
    err = capsys.readouterr().err.strip()
    assert "damaged" in err and "SIGSEGV" in err and "removed 8 cache files" in err and "\n" not in err
    assert numba_cache._is_checked()  # the stamp: the next `features` skips the child check


def test_only_the_folders_numba_uses_are_cleared(monkeypatch, tmp_path):
    """With NUMBA_CACHE_DIR set, numba never reads the ``__pycache__`` caches: a repair must
    leave them (another environment's, maybe in use) alone."""
    from numba.core import config as numba_config

    monkeypatch.setattr(numba_config, "CACHE_DIR", str(tmp_path))
    folders = numba_cache._cache_folders()
    assert any("pitch" in stems for stems in folders.values())
    assert all(tmp_path in folder.parents for folder in folders)


def test_a_warm_up_that_keeps_crashing_is_one_clear_error(fake_sources, monkeypatch):
    monkeypatch.setattr(numba_cache, "_run_warm_child", lambda workload: subprocess.run(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"], capture_output=True, text=True))
    with pytest.raises(TracklensError, match=r"numba warm-up failed \(died by signal 11 \(SIGSEGV\)\)"):
        numba_cache.check_cache(features.warm_kernels)
    assert not numba_cache._is_checked()


def test_warm_numba_runs_once_per_process_holding_the_host_lock(fake_sources, monkeypatch):
    import fcntl

    monkeypatch.setattr(numba_cache, "_warmed", False)
    lock_file = numba_cache._numba_cache_dir() / numba_cache.LOCK_NAME
    held = []

    def analyse():
        with open(lock_file, "a+b") as other:  # another process's view: the lock is taken
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        time.sleep(0.2)  # long enough for the other threads to pile up behind it

    threads = [threading.Thread(target=numba_cache.warm_numba, args=(analyse,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert held == [True]


def test_warm_numba_checks_in_a_child_only_without_a_stamp(fake_sources, monkeypatch):
    checks = []
    monkeypatch.setattr(numba_cache, "check_cache", lambda workload: checks.append(1) or numba_cache._write_stamp())
    for _ in range(2):
        monkeypatch.setattr(numba_cache, "_warmed", False)
        numba_cache.warm_numba(lambda: None, check=True)
    assert checks == [1]


def test_make_venv_warms_the_cache():
    recipe = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    install = recipe[recipe.index("$(STAMP):"):recipe.index("@touch $(STAMP)")]
    assert "-m tracklens.numba_cache" in install
