"""Analysing an upload (dashboard/track.py): memory in blocks, the report cache, concurrent checks."""

from __future__ import annotations

import collections
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tracklens import config


def test_analysis_memory_does_not_grow_with_the_track(monkeypatch):
    """Blocks of ANALYSIS_BLOCK_S: 2 minutes peak at the memory of one block, where one whole
    analysis (STFT, chroma, descriptor features of all of it) peaked ~3x higher."""
    import tracemalloc

    from tracklens import audio
    from tracklens.dashboard import track

    sr = config.SAMPLE_RATE
    t = np.arange(120 * sr) / sr
    y = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)
    clip = audio.AudioClip(y=y, sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=120.0)
    track.analyse(audio.AudioClip(y=y[: 5 * sr], sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=5.0))
    tracemalloc.start()
    try:
        result = track.analyse(clip)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak_mb < 120, peak_mb  # whole-track analysis of the same 2 minutes: ~270 MB
    assert result.comparable["duration_ms"] == 120_000 and result.log_mel.shape[1] <= track.MAX_DISPLAY_FRAMES
    assert result.comparable["key"] == 9 and result.frame_seconds * result.log_mel.shape[1] == pytest.approx(120, abs=1)


def test_the_pitch_network_runs_beside_the_analysis_one_block_ahead(monkeypatch):
    """basic-pitch runs in its own thread (onnxruntime lets go of the GIL), once per block, at most
    one block ahead of the rest of the analysis: the check page's 6-minute master went 7.1 -> 5.9 s
    (bench/check_stages.py) without holding more than two blocks of posteriors."""
    from tracklens import audio, pitch_posteriors
    from tracklens.dashboard import track

    sr = config.SAMPLE_RATE
    t = np.arange(int(2.5 * track.ANALYSIS_BLOCK_S * sr)) / sr
    y = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    clip = audio.AudioClip(y=y, sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=len(y) / sr)
    real, calls, in_flight, most = pitch_posteriors.posteriors, [], [0], [0]
    lock = threading.Lock()

    def recorded(block, *, sr):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        calls.append(threading.current_thread().name)
        try:
            return real(block, sr=sr)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(pitch_posteriors, "posteriors", recorded)
    result = track.analyse(clip)
    assert len(calls) == len(track.block_bounds(len(y), sr)) >= 2  # once per block, never again in the engine
    assert all(name.startswith("pitch") for name in calls) and most[0] == 1
    assert result.comparable["key"] == 9  # A (220 Hz)


def test_a_failure_in_the_pitch_thread_is_the_checks_one_error_and_leaves_no_thread(monkeypatch):
    """The network's error on the second block reaches the caller as it was raised (the page shows a
    TracklensError's line), and the pitch thread is joined before analyse returns."""
    from tracklens import audio, pitch_posteriors
    from tracklens.dashboard import track
    from tracklens.errors import TracklensError

    sr = config.SAMPLE_RATE
    y = (0.2 * np.sin(2 * np.pi * 220 * np.arange(int(2.5 * track.ANALYSIS_BLOCK_S * sr)) / sr)).astype(np.float32)
    clip = audio.AudioClip(y=y, sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=len(y) / sr)
    real, calls = pitch_posteriors.posteriors, []

    def failing_on_the_second_block(block, *, sr):
        calls.append(len(block))
        if len(calls) == 2:
            raise TracklensError("pitch posteriors: the network failed on this block")
        return real(block, sr=sr)

    monkeypatch.setattr(pitch_posteriors, "posteriors", failing_on_the_second_block)
    with pytest.raises(TracklensError, match="the network failed on this block"):
        track.analyse(clip)
    assert len(calls) == 2  # nothing submitted after the failure
    assert not [t for t in threading.enumerate() if t.name.startswith("pitch")]


def test_block_bounds_cover_the_signal_without_short_blocks():
    from tracklens.dashboard import track

    sr = 100
    assert track.block_bounds(40 * sr, sr) == [(0, 4000)]
    bounds = track.block_bounds(50 * sr, sr)
    assert bounds == [(0, 2500), (2500, 5000)]
    long = track.block_bounds(601 * sr, sr)
    assert long[0][0] == 0 and long[-1][1] == 601 * sr and all(a[1] == b[0] for a, b in zip(long, long[1:]))
    assert min(b - a for a, b in long) >= 20 * sr


def test_report_cache_keeps_only_the_last_few_uploads(monkeypatch):
    from tracklens.dashboard import track

    analysed = []
    monkeypatch.setattr(track, "_cache", collections.OrderedDict())
    monkeypatch.setattr(track, "_check_track",
                        lambda source, name: analysed.append(name) or types.SimpleNamespace(filename=name))
    for i in range(6):
        track.check_track(f"upload {i}".encode(), f"{i}.wav")
    assert len(track._cache) == track._CACHE_SIZE <= 3
    track.check_track(b"upload 5", "5.wav")  # the newest is still cached
    assert len(analysed) == 6
    track.check_track(b"upload 0", "0.wav")  # the oldest was dropped
    assert len(analysed) == 7


def test_checks_beyond_the_limit_wait_for_a_free_slot(monkeypatch):
    from tracklens.dashboard import track

    running, peak, lock = 0, 0, threading.Lock()

    def slow_check(source, name):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return types.SimpleNamespace(filename=name)

    monkeypatch.setattr(track, "_cache", collections.OrderedDict())
    monkeypatch.setattr(track, "_check_track", slow_check)
    n = track.MAX_CONCURRENT_CHECKS + 3
    with ThreadPoolExecutor(n) as pool:
        reports = list(pool.map(lambda i: track.check_track(f"upload {i}".encode(), f"{i}.wav"), range(n)))
    assert [r.filename for r in reports] == [f"{i}.wav" for i in range(n)]
    assert peak == track.MAX_CONCURRENT_CHECKS


def test_one_check_per_core_runs_at_once():
    """One check per two cores ran four uploads on 2 cores one after another (p95 4-7x one check)."""
    import os

    from tracklens.dashboard import track

    assert os.cpu_count() and track.MAX_CONCURRENT_CHECKS == os.cpu_count()


def test_display_name_never_keeps_a_path():
    from tracklens.dashboard import track

    assert track.display_name("../../etc/passwd.wav") == "passwd.wav"
    assert track.display_name("C:\\music\\song.mp3") == "song.mp3"
    assert track.display_name(None) == "upload"


