"""Feature engine: values equal plain librosa, Spotify-comparable columns, segments, batches
(cache, resume, bad files, parallel, Dask) and agreement with the published GTZAN table."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tracklens import config
from tracklens import batch, feature_kernels, features
from tracklens.errors import TracklensError

SR = config.SAMPLE_RATE


def synth(seconds: float, *, seed: int = 0, bpm: float = 120.0, root_hz: float = 261.63) -> np.ndarray:
    """A major triad with a click track at ``bpm``: harmonic + percussive content, fast to make."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(0.12 * np.sin(2 * np.pi * root_hz * ratio * t) for ratio in (1.0, 1.26, 1.498))
    clicks = np.zeros_like(t)
    period = int(round(60.0 / bpm * SR))
    clicks[::period] = 1.0
    y = y + np.convolve(clicks, 0.5 * rng.standard_normal(300) * np.exp(-np.arange(300) / 60), mode="same")
    return (0.9 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="module")
def clip_y() -> np.ndarray:
    return synth(8.0)


@pytest.fixture(scope="module")
def analysis(clip_y):
    return features.analyze(clip_y, sr=SR)


# --- single clip ------------------------------------------------------------------------------


def test_summary_columns_follow_the_kaggle_table():
    assert len(features.SUMMARY_COLUMNS) == 57
    assert features.SUMMARY_COLUMNS[:4] == ("chroma_stft_mean", "chroma_stft_var", "rms_mean", "rms_var")
    assert features.SUMMARY_COLUMNS[12:17] == ("harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var", "tempo")
    assert features.SUMMARY_COLUMNS[-1] == "mfcc20_var"


def test_summary_columns_equal_the_published_header(shared_data):
    header = pd.read_csv(shared_data / "gtzan" / "features" / "features_30_sec.csv", nrows=0).columns
    assert tuple(header[2:-1]) == features.SUMMARY_COLUMNS and tuple(header[:2]) == ("filename", "length")


@pytest.mark.parametrize("size", [1, 3, 31])
@pytest.mark.parametrize("axis", [0, 1])
def test_fast_median_filter_equals_scipy(size, axis):
    from scipy.ndimage import median_filter

    x = np.random.default_rng(size).random((40, 57)).astype(np.float32)
    x[5, 10:20] = 0.25  # ties
    shape = [1, 1]
    shape[axis] = size
    np.testing.assert_array_equal(feature_kernels.median_filter_1d(x, size=size, axis=axis),
                                  median_filter(x, size=shape, mode="reflect"))


def test_summary_equals_plain_librosa(clip_y, analysis):
    """Every column from the one shared STFT equals librosa's own call on the waveform."""
    import librosa

    got = features.summary_features(analysis)
    assert list(got) == list(features.SUMMARY_COLUMNS)
    y = clip_y
    harmonic, percussive = librosa.effects.hpss(y)
    plain = {
        "chroma_stft": librosa.feature.chroma_stft(y=y, sr=SR),
        "rms": librosa.feature.rms(y=y),
        "spectral_centroid": librosa.feature.spectral_centroid(y=y, sr=SR),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(y=y, sr=SR),
        "rolloff": librosa.feature.spectral_rolloff(y=y, sr=SR),
        "zero_crossing_rate": librosa.feature.zero_crossing_rate(y),
        "harmony": harmonic, "perceptr": percussive,
    }
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)
    plain.update({f"mfcc{i + 1}": mfcc[i] for i in range(20)})
    for name, values in plain.items():
        assert got[f"{name}_mean"] == pytest.approx(float(np.mean(values)), rel=1e-4, abs=1e-6), name
        assert got[f"{name}_var"] == pytest.approx(float(np.var(values)), rel=1e-4, abs=1e-9), name
    assert got["tempo"] == pytest.approx(float(librosa.feature.tempo(y=y, sr=SR)[0]))


def test_fused_kernels_equal_the_numpy_formulas(clip_y, monkeypatch):
    """The numba kernels (soft mask, rolloff on librosa's frame-major STFT; the inverse STFT's
    overlap-add; RMS and ZCR in one pass over y; piptrack's peak search for the tuning) give
    the same bits as the numpy and librosa code they replace."""
    fast = features.analyze(clip_y, sr=SR)
    fast_values = (fast.rolloff, fast.harmonic, fast.rms, fast.zero_crossing_rate, fast.tuning)
    monkeypatch.setattr(feature_kernels, "_frame_rms_zcr", None)
    monkeypatch.setattr(feature_kernels, "_tuning_peaks", None)
    monkeypatch.setattr(feature_kernels, "_overlap_add", None)
    plain = features.analyze(clip_y, sr=SR)
    plain.stft = np.ascontiguousarray(plain.stft)  # not frame-major: the numpy path
    assert fast.stft.flags.f_contiguous and not plain.stft.flags.f_contiguous
    plain_values = (plain.rolloff, plain.harmonic, plain.rms, plain.zero_crossing_rate, plain.tuning)
    for got, want in zip(fast_values, plain_values):
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(got, want)


def _assert_tuning_is_librosas(a: features.Analysis) -> None:
    """piptrack's peaks, bit for bit, then librosa.estimate_tuning's value."""
    import librosa

    pitches, mags = librosa.piptrack(S=a.power, sr=a.sr, n_fft=a.n_fft)
    frames, bins = np.nonzero(pitches.T)
    got_pitch, got_mag = feature_kernels.piptrack_peaks(a.power, sr=a.sr, n_fft=a.n_fft)
    assert len(frames) > 100
    np.testing.assert_array_equal(got_pitch, pitches.T[frames, bins])
    np.testing.assert_array_equal(got_mag, mags.T[frames, bins])
    assert a.tuning == librosa.estimate_tuning(S=a.power, sr=a.sr, bins_per_octave=12)


def test_tuning_estimate_equals_librosas(analysis):
    """The numba peak search gives the tuning chroma_stft estimates."""
    _assert_tuning_is_librosas(analysis)


def test_tuning_estimate_equals_librosas_on_real_clips(gtzan_clip):
    from tracklens.audio import load_audio

    for clip_id in ("blues.00003", "classical.00003", "country.00003", "disco.00003"):
        _assert_tuning_is_librosas(features.analyze(load_audio(gtzan_clip(clip_id, "full30s")).y))


def test_tempogram_equals_librosas(analysis):
    """The sliding-sum tempogram equals librosa's FFT one to rounding, across the frames where
    it recomputes its sums directly (every 128) and those it slides."""
    import librosa

    want = librosa.feature.tempogram(onset_envelope=analysis.onset_envelope, sr=SR, hop_length=config.HOP_LENGTH,
                                     win_length=384)
    assert analysis.n_frames > 2 * feature_kernels.TEMPOGRAM_REFRESH and analysis.tempogram.flags.c_contiguous
    np.testing.assert_allclose(analysis.tempogram, want, rtol=0, atol=1e-12)


def test_spotify_comparable_features(analysis):
    import pyloudnorm

    got = features.spotify_comparable_features(analysis, duration_s=8.25)
    assert set(got) == set(features.SPOTIFY_COLUMNS)
    assert got["tempo"] == pytest.approx(120.0, abs=3.0)
    assert got["key"] in range(12) and got["mode"] in (0, 1)
    assert got["duration_ms"] == 8250
    # BS.1770-4 over the one channel (tracklens.loudness, libebur128's filter design as ffmpeg's
    # ebur128); pyloudnorm designs the 38 Hz high-pass differently, 0.1 LU apart at 22 050 Hz
    assert got["loudness"] == features.mono_meter(analysis.y, sr=SR).integrated()
    reference = pyloudnorm.Meter(SR).integrated_loudness(analysis.y.astype(np.float64))
    assert got["loudness"] == pytest.approx(reference, abs=0.15)


def test_loudness_of_a_sine_and_key_of_a_minor_chord():
    t = np.arange(5 * SR) / SR
    sine = (0.1 * np.sin(2 * np.pi * 997 * t)).astype(np.float32)
    # BS.1770: a full-scale 997 Hz sine reads -3.01 LUFS, so amplitude 0.1 reads about -23
    assert features.mono_meter(sine, sr=SR).integrated() == pytest.approx(-23.0, abs=0.2)
    def progression(*chords):  # one second per chord, MIDI note numbers
        tt = np.arange(SR) / SR
        return np.concatenate([sum(0.2 * np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * tt) for n in chord)
                               for chord in chords]).astype(np.float32)

    c_major = progression((60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67))  # I IV V I
    a_minor = progression((57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64))  # i iv V i
    assert features.estimate_key(features.analyze(c_major).chroma) == (0, 1)
    assert features.estimate_key(features.analyze(a_minor).chroma) == (9, 0)
    assert features.estimate_key(np.zeros((12, 4))) == (-1, -1)


def test_analyze_rejects_bad_signals():
    with pytest.raises(TracklensError, match="mono"):
        features.analyze(np.zeros((2, 5000), np.float32))
    with pytest.raises(TracklensError, match="shorter than n_fft"):
        features.analyze(np.zeros(100, np.float32))
    with pytest.raises(TracklensError, match="NaN"):
        features.analyze(np.full(5000, np.nan, np.float32))


def test_analyze_names_a_file_or_a_clip_given_for_samples_and_a_bad_rate():
    # a notebook's slips: analyze(path) was ValueError "could not convert string to float", analyze(clip)
    # TypeError "float() argument must be ... not 'AudioClip'", and sr=0 was accepted
    y = np.sin(np.linspace(0, 2000, 8000)).astype(np.float32)
    for given, words in (("song.mp3", r"a file name, not samples.*audio\.load_audio"),
                         (_clip(y), r"an AudioClip: pass clip\.y, sr=clip\.sr")):
        with pytest.raises(TracklensError, match=words):
            features.analyze(given)
    for bad in ({"sr": 0}, {"sr": -22050}, {"hop_length": 0}, {"n_fft": 0}):
        with pytest.raises(TracklensError, match=f"{next(iter(bad))}=.* must be a positive"):
            features.analyze(y, **bad)


def _clip(y, path="x.wav"):
    from tracklens.audio import AudioClip

    return AudioClip(y=y, sr=SR, path=path, source_sr=SR, channels=1, source_duration_s=len(y) / SR)


def test_segments_are_slices_of_one_analysis(clip_y):
    cf = features.featurize_clip(_clip(clip_y), segment_seconds=3.0)
    assert [s["segment"] for s in cf.segments] == [0, 1]  # 8 s: two full 3 s windows
    assert [(s["start_s"], s["end_s"]) for s in cf.segments] == [(0.0, 3.0), (3.0, 6.0)]
    n_t = features.segment_n_frames(3.0)
    assert n_t == 130
    assert cf.frames["log_mel"].shape == (2, 128, n_t) and cf.frames["mfcc"].shape == (2, 20, n_t)
    assert cf.frames["sequence"].shape == (2, len(features.SEQUENCE_ROWS), n_t)
    f0 = int(round(3.0 * SR / config.HOP_LENGTH))
    np.testing.assert_array_equal(cf.frames["log_mel"][1], cf.analysis.log_mel[:, f0:f0 + n_t])
    np.testing.assert_array_equal(cf.frames["sequence"][0][:20], cf.analysis.mfcc[:, :n_t])
    seg = cf.segments[1]
    assert seg["length"] == 3 * SR and seg["duration_ms"] == 3000
    assert seg["rms_mean"] == pytest.approx(float(cf.analysis.rms[0, f0:f0 + n_t].mean()))
    assert seg["harmony_var"] == pytest.approx(float(cf.analysis.harmonic[3 * SR:6 * SR].var()))
    assert cf.track["segment"] == -1 and cf.track["length"] == len(clip_y)

    overlapped = features.featurize_clip(_clip(clip_y), segment_seconds=3.0, overlap=0.5)
    assert [s["start_s"] for s in overlapped.segments] == [0.0, 1.5, 3.0, 4.5]
    assert features.featurize_clip(_clip(clip_y), segment_seconds=None).frames["mfcc"].shape[0] == 0
    with pytest.raises(TracklensError, match="overlap"):
        features.segment_bounds(SR * 10, sr=SR, segment_seconds=3.0, overlap=1.0)


# --- batches ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """3 good tracks (different lengths, one 48 kHz stereo, one with a unicode name) + bad files."""
    root = tmp_path_factory.mktemp("batch")
    (root / "jazz").mkdir()
    (root / "rock").mkdir()
    sf.write(root / "jazz" / "jazz.00000.wav", synth(7.0, seed=1), SR)
    stereo = synth(4.0, seed=2, bpm=100.0)
    sf.write(root / "rock" / "rock.00000.wav", np.stack([stereo, stereo], 1)[:: 1], SR)
    sf.write(root / "rock" / "rock é ♫ 1.wav", synth(3.5, seed=3, root_hz=220.0), SR, subtype="PCM_U8")
    (root / "rock" / "empty.wav").write_bytes(b"")
    (root / "rock" / "noise.wav").write_bytes(np.random.default_rng(1).bytes(4000))
    sf.write(root / "jazz" / "blip.wav", synth(0.2), SR)
    sf.write(root / "jazz" / "quiet.wav", np.zeros(SR * 2, np.float32), SR)
    return root


GOOD = {"jazz.00000", "rock.00000", "rock é ♫ 1"}
BAD = {"empty.wav": "empty", "noise.wav": "not readable", "blip.wav": "too short", "quiet.wav": "silent"}


@pytest.fixture(scope="module")
def extracted(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "features.parquet"
    cache = tmp_path_factory.mktemp("cache")
    result = features.extract_features(folder, out=out, cache_dir=cache, progress=False)
    return result, cache


def test_batch_rows_errors_and_frames(extracted):
    result, _ = extracted
    table = pd.read_parquet(result.out)
    assert list(table.columns) == list(features.FEATURE_COLUMNS)
    assert set(table["track_id"]) == GOOD and result.n_tracks == 3
    assert {row.track_id: row.label for row in table.itertuples()} == {"jazz.00000": "jazz", "rock.00000": "rock",
                                                                        "rock é ♫ 1": "rock"}
    errors = pd.read_csv(result.errors)
    assert {Path(p).name for p in errors["path"]} == set(BAD)
    for path, reason in zip(errors["path"], errors["reason"]):
        assert BAD[Path(path).name] in reason
    # segments never straddle tracks: inside their own track, one track's rows together
    tracks = table[table["segment"] == -1].set_index("track_id")
    segments = table[table["segment"] >= 0]
    assert segments.groupby("track_id").size().to_dict() == {"jazz.00000": 2, "rock.00000": 1, "rock é ♫ 1": 1}
    assert (segments["end_s"] <= segments["track_id"].map(tracks["end_s"]) + 1e-9).all()
    assert (segments["path"] == segments["track_id"].map(tracks["path"])).all()
    assert table["track_id"].ne(table["track_id"].shift()).sum() == 3  # contiguous blocks

    frames = features.load_frames(result.out)
    assert list(frames["track_id"]) == list(segments["track_id"])
    assert list(frames["segment"]) == list(segments["segment"])
    assert frames["log_mel"].shape == (4, 128, 130) and frames["log_mel"].dtype == np.float32
    assert frames["meta"]["sequence_rows"] == list(features.SEQUENCE_ROWS)
    # stored float16: equal to a fresh analysis of that segment within float16 precision
    from tracklens.audio import load_audio

    cf = features.featurize_clip(load_audio(tracks.loc["jazz.00000", "path"]))
    np.testing.assert_allclose(frames["log_mel"][1], cf.frames["log_mel"][1], rtol=2e-3, atol=0.05)


def test_cache_hit_miss_and_invalidation(folder, extracted, tmp_path, monkeypatch):
    result, cache = extracted
    first = pd.read_parquet(result.out)
    calls = []
    real = features.featurize_file
    monkeypatch.setattr(features, "featurize_file", lambda path, params: calls.append(path) or real(path, params))
    work = tmp_path / "audio"
    shutil.copytree(folder, work)
    out = tmp_path / "again.parquet"
    # moved files, same bytes: every good file is a cache hit (bad files are retried, cheaply)
    again = features.extract_features(work, out=out, cache_dir=cache, progress=False)
    assert again.n_cached == 3 and {Path(c).name for c in calls} <= set(BAD)
    pd.testing.assert_frame_equal(pd.read_parquet(out).drop(columns="path"), first.drop(columns="path"))
    # a changed file is recomputed, the others are not
    calls.clear()
    sf.write(work / "jazz" / "jazz.00000.wav", synth(7.0, seed=9), SR)
    changed = features.extract_features(work, out=out, cache_dir=cache, progress=False)
    assert changed.n_cached == 2 and [Path(c).name for c in calls if Path(c).name not in BAD] == ["jazz.00000.wav"]
    # other parameters: everything recomputed
    calls.clear()
    features.extract_features(work, out=out, cache_dir=cache, segment_seconds=2.0, progress=False)
    assert {Path(c).stem for c in calls} >= GOOD


def test_interrupted_run_resumes(folder, tmp_path, monkeypatch):
    real = features.featurize_file
    calls = []

    def crash_on_third(path, params):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, params)

    monkeypatch.setattr(features, "featurize_file", crash_on_third)
    out = tmp_path / "f.parquet"
    with pytest.raises(KeyboardInterrupt):
        features.extract_features(folder, out=out, cache_dir=tmp_path / "c", segment_seconds=None, progress=False)
    assert not out.exists() and not list(tmp_path.rglob(".*.part"))  # fileio.atomic_path's temp names
    done_before = {p for p in calls[:2]}
    calls.clear()
    monkeypatch.setattr(features, "featurize_file", lambda p, params: calls.append(p) or real(p, params))
    result = features.extract_features(folder, out=out, cache_dir=tmp_path / "c", segment_seconds=None,
                                       progress=False)
    finished_good = {p for p in done_before if Path(p).name not in BAD}
    assert finished_good and not finished_good & set(calls)  # done before the crash: not redone
    assert result.n_tracks == 3 and not (tmp_path / "f.frames.npz").exists()


@pytest.mark.slow  # ~5-20 s: mostly starting 2 worker processes that import librosa
def test_one_bad_file_among_fifty_in_parallel(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(49):
        sf.write(root / f"clip{i:02d}.wav", synth(1.2, seed=i, bpm=90 + i), SR)
    (root / "clip49.wav").write_bytes(b"RIFF" + bytes(100))
    result = features.extract_features(root, out=tmp_path / "many.parquet", cache_dir=tmp_path / "c",
                                       segment_seconds=None, jobs=2, progress=False)
    table = pd.read_parquet(result.out)
    assert len(table) == 49 and result.n_errors == 1
    assert list(table["track_id"]) == [f"clip{i:02d}" for i in range(49)]  # source order, not finish order
    assert (table["length"] == int(1.2 * SR)).all() and table[list(features.SUMMARY_COLUMNS)].notna().all().all()
    assert "clip49.wav" in pd.read_csv(result.errors)["path"].iloc[0]


def test_numba_is_warmed_before_any_worker_pool_starts(folder, tmp_path, monkeypatch):
    """numba issue #10128: workers compiling the same cached gufuncs at once can poison the cache."""
    import joblib

    from tracklens import numba_cache

    events = []
    monkeypatch.setattr(numba_cache, "warm_numba", lambda *args, **kwargs: events.append("warm"))

    def pool(*args, **kwargs):
        events.append("pool")
        return lambda tasks: (fn(*a, **kw) for fn, a, kw in tasks)

    monkeypatch.setattr(joblib, "Parallel", pool)
    features.extract_features(folder, out=tmp_path / "f.parquet", cache_dir=tmp_path / "c", segment_seconds=None,
                              jobs=2, progress=False)
    assert events[:2] == ["warm", "pool"]


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_warm_hook_keeps_freed_arrays_for_the_next_file():
    """Without it, every clip faulted its ~100 MB of arrays in again from the kernel."""
    import subprocess
    import sys

    code = ("import resource, numpy as np\n"
            "from tracklens import features, numba_cache\n"
            "numba_cache.warm_numba = lambda *args, **kwargs: None\n"
            "features.features_task().warm()\n"
            "np.ones(20 << 20, np.uint8).sum()\n"  # a 20 MB array, used and freed
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "np.ones(20 << 20, np.uint8)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert faults < 50  # 0 here; 500-1000 when the freed 20 MB went back to the kernel


@pytest.mark.slow  # a worker pool that loses a process (16 s in make test-fast)
def test_a_worker_crash_keeps_finished_files_and_is_one_line(folder, tmp_path, monkeypatch, run_cli):
    from tracklens import numba_cache

    real = features.featurize_file
    crash_on = str(folder / "rock" / "rock.00000.wav")

    def segfault_on_one_file(path, params, **extras):  # a closure: pickled by value into the workers
        if path == crash_on:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGSEGV)
        return real(path, params, **extras)

    checks = []
    monkeypatch.setattr(features, "featurize_file", segfault_on_one_file)
    monkeypatch.setattr(numba_cache, "check_cache", lambda workload: checks.append(workload))
    cache = tmp_path / "c"
    args = ("features", folder, "--out", tmp_path / "f.parquet", "--segment", "0", "--cache-dir", cache, "--jobs", "2")
    code, _, err = run_cli(*args)
    line = err.strip().splitlines()[-1]  # the lines above it are the progress bar
    assert code == 2 and "Traceback" not in err, err
    assert line.startswith("tracklens: error: a worker process crashed (signal 11 (SIGSEGV)) on ") and "rock.00000.wav" in line
    done = re.search(r"; (\d+) of (\d+) files are done and cached; rerun the same command to resume$", line)
    assert done and int(done[1]) < int(done[2]), line
    assert checks == [features.warm_kernels]  # numba's cache, the usual cause, was checked (and rebuilt if poisoned)
    n_done = int(done[1])
    assert n_done == len(list(cache.rglob("*.npz"))) and not (tmp_path / "f.parquet").exists()

    from tracklens.models import descriptors

    monkeypatch.setattr(features, "featurize_file", real)
    # the CLI's run: the same extra columns, so the same cache keys
    result = features.extract_features(folder, out=tmp_path / "f.parquet", cache_dir=cache, segment_seconds=None,
                                       extras=descriptors.feature_extras(), progress=False)
    assert result.n_cached == n_done and result.n_tracks == len(GOOD)


@pytest.mark.slow  # ~15-30 s: a real `tracklens features --jobs 2` process, stopped with Ctrl-C
def test_ctrl_c_exits_130_says_so_and_keeps_finished_files(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    audio = tmp_path / "audio"
    audio.mkdir()
    n_files = 240  # ~12 s of work at 20 clips/s (2 jobs, quiet machine): still running when Ctrl-C comes
    for i in range(n_files):
        sf.write(audio / f"clip{i:03d}.wav", synth(3.0, seed=i), SR)
    cache = tmp_path / "c"
    tracklens = Path(sys.executable).parent / "tracklens"
    run = subprocess.Popen([str(tracklens), "features", str(audio), "--out", str(tmp_path / "f.parquet"), "--jobs", "2",
                            "--segment", "0", "--cache-dir", str(cache)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           # as in a terminal: a suite started in the background (`make test &`)
                           # hands its children SIGINT ignored, and Python then keeps it ignored
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while len(list(cache.rglob("*.npz"))) < 2 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, err = run.communicate(timeout=120)
    kept = len(list(cache.rglob("*.npz")))
    assert run.returncode == 130, err[-2000:]
    assert err.rstrip().endswith("tracklens: interrupted; work already written is kept."), err[-2000:]
    assert 2 <= kept < n_files and not (tmp_path / "f.parquet").exists()


def test_debug_works_after_the_verb_too(tmp_path, run_cli):
    missing = tmp_path / "nope"
    code, _, err = run_cli("features", missing, "--out", tmp_path / "x.parquet")
    assert code == 2 and "no such file or folder" in err
    with pytest.raises(TracklensError, match="no such file or folder"):  # --debug: the traceback
        run_cli("features", missing, "--debug", "--out", tmp_path / "x.parquet")
    with pytest.raises(TracklensError, match="no such file or folder"):
        run_cli("--debug", "features", missing, "--out", tmp_path / "x.parquet")


def test_dashboard_keeps_its_own_debug_option():
    from tracklens import cli

    assert cli._hoist_debug(["dashboard", "--debug"]) == ["dashboard", "--debug"]
    assert cli._hoist_debug(["features", "a", "--debug"]) == ["--debug", "features", "a"]
    assert cli._hoist_debug(["features", "a", "--", "--debug"]) == ["features", "a", "--", "--debug"]


def test_fifos_and_devices_get_an_error_row_and_the_run_finishes(tmp_path, folder):
    """A FIFO blocks a reader forever and /dev/zero never ends: neither may be opened."""
    import os
    import signal

    from tracklens import fileio

    audio = tmp_path / "audio"
    (audio / "jazz").mkdir(parents=True)
    shutil.copy(folder / "jazz" / "jazz.00000.wav", audio / "jazz" / "jazz.00000.wav")
    os.mkfifo(audio / "jazz" / "fifo.wav")
    (audio / "jazz" / "zero.wav").symlink_to("/dev/zero")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [str(audio / "jazz" / n) for n in ("jazz.00000.wav", "fifo.wav", "zero.wav")]
                  + ["=HYPERLINK(1).wav"], "label": "jazz"}).to_csv(manifest, index=False)

    def hung(*_):
        raise TimeoutError("extract_features hung on a non-regular file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        for source in (manifest, audio):
            out = tmp_path / f"{source.stem}.parquet"
            result = features.extract_features(source, out=out, cache_dir=tmp_path / "c", segment_seconds=None,
                                               progress=False)
            assert result.n_tracks == 1
            errors = fileio.read_csv(result.errors)
            reasons = dict(zip(errors["path"].map(lambda p: Path(p).name), errors["reason"]))
            assert "not a regular file" in reasons["fifo.wav"] and "not a regular file" in reasons["zero.wav"]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    # the errors side file is written formula-safe (fileio.write_csv) and reads back unchanged
    assert "'=HYPERLINK(1).wav" in (tmp_path / "manifest.errors.csv").read_text()
    manifest_errors = fileio.read_csv(tmp_path / "manifest.errors.csv")
    assert "=HYPERLINK(1).wav" in set(manifest_errors["path"])


def test_long_file_is_truncated_with_a_note(tmp_path):
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", samplerate=8000, channels=1) as handle:
        for _ in range(20):  # 20 minutes of a repeated 1 s pattern
            handle.write(np.tile(synth(1.0)[::2][:8000], 60))
    result = features.extract_features(path, out=tmp_path / "l.parquet", cache_dir=tmp_path / "c",
                                       max_duration=20.0, segment_seconds=None, progress=False)
    row = pd.read_parquet(result.out).iloc[0]
    assert bool(row["truncated"]) and row["length"] == 20 * SR and row["duration_ms"] == 1_200_000


def test_dask_scheduler_equals_local(folder, extracted, tmp_path):
    from distributed import LocalCluster

    result, _ = extracted
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = features.extract_features(folder, out=tmp_path / "d.parquet", cache_dir=tmp_path / "c",
                                           scheduler=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(remote.out), pd.read_parquet(result.out))
    local, dist = features.load_frames(result.out), features.load_frames(remote.out)
    for kind in features.FRAME_KINDS:
        np.testing.assert_array_equal(local[kind], dist[kind])
    assert pd.read_csv(remote.errors).equals(pd.read_csv(result.errors))


def test_misuse_is_reported(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(batch, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(TracklensError, match="parquet"):
        features.extract_features(folder, out=tmp_path / "x.csv")
    with pytest.raises(TracklensError, match="no such file or folder"):
        features.extract_features(tmp_path / "nope", out=tmp_path / "x.parquet")
    with pytest.raises(TracklensError, match="jobs"):
        features.extract_features(folder, out=tmp_path / "x.parquet", jobs=0)
    with pytest.raises(TracklensError, match="no frame matrices"):
        features.load_frames(tmp_path / "x.parquet")
    with pytest.raises(TracklensError, match="Dask scheduler"):
        features.extract_features(folder, out=tmp_path / "x.parquet", cache_dir=tmp_path / "c",
                                  scheduler="tcp://127.0.0.1:1", progress=False)


def test_manifest_input_and_cli(folder, tmp_path, run_cli):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [str(folder / "jazz" / "jazz.00000.wav"), "missing.wav", str(folder / "rock" / "empty.wav")],
                  "label": ["jazz", "pop", "rock"], "error": ["", "", "empty file (0 bytes)"]}).to_csv(manifest, index=False)
    code, out, err = run_cli("features", manifest, "--out", tmp_path / "m.parquet", "--segment", "0",
                             "--cache-dir", tmp_path / "c")
    assert code == 0, err
    assert "1 tracks, 0 segments" in out and "2 files skipped" in out
    # one line per bad input on the terminal too (it said only "2 files skipped, reasons in m.errors.csv")
    assert out.splitlines()[-2:] == [f"  {folder / 'rock' / 'empty.wav'}: empty file (0 bytes)", "  missing.wav: no such file"]
    errors = pd.read_csv(tmp_path / "m.errors.csv")
    assert set(errors["reason"].str.split(" ").str[0]) == {"empty", "no"}
    code, out, err = run_cli("features", manifest, "--out", tmp_path / "m.parquet", "--overlap", "2")
    assert code == 2 and "overlap" in err and "\n" not in err.strip()
    # --segment inf was an OverflowError traceback; --max-duration nan / inf failed every file one by one
    for option, value in (("--segment", "inf"), ("--segment", "nan"), ("--max-duration", "nan"), ("--max-duration", "inf")):
        code, out, err = run_cli("features", manifest, "--out", tmp_path / "m.parquet", option, value)
        assert code == 2 and err.startswith("tracklens: error: ") and "must be > 0" in err and "\n" not in err.strip()


# --- real data --------------------------------------------------------------------------------

# Agreement with the published table (librosa, an older version, on the original WAVs; ours on the
# 32 kbit/s Opus re-encodings in ../shared: on the same samples ours equal plain librosa's, see
# test_summary_equals_plain_librosa, so the codec is what is left). The bounds are what that
# difference allows a 30-clip sample, measured on all 172 full clips (`bench/published_features.py`,
# docs/development.md): per column, the 1st percentile of Pearson r and the 99th of the median
# errors over 2000 random 30-clip samples; each bound is its group's worst column, rounded outwards.
# The sample is fixed (clip ids, not a glob: the old `[::2][:32]` of `audio/` changed as ../shared
# grew, and mfcc20_mean's 0.35, set from one sample, failed at 0.3505).
PUBLISHED_SAMPLE = [f"{genre}.{n:05d}" for genre in ("blues", "classical", "country", "jazz", "metal", "reggae", "rock")
                    for n in (0, 1, 2)] + ["disco.00000", "disco.00002", "disco.00003", "hiphop.00002", "hiphop.00003",
                                           "hiphop.00004", "pop.00002", "pop.00003", "pop.00004"]  # each genre's first 3
MIN_R = 0.96            # chroma, rms, spectral, zcr, MFCC 1-9 means, every variance (p01 0.965: mfcc17_var)
MIN_R_HIGH_MFCC = 0.85  # MFCC 10-20 means: fine spectral detail the codec alters most (p01 0.868: mfcc19_mean)
MAX_MEDIAN_REL_ERR = 0.12  # every variance and the chroma/rms/spectral/zcr/MFCC 1-2 means (p99 0.109: mfcc18_var)
MAX_MEDIAN_ABS_ERR_STD = 0.46  # the other MFCC means cross zero, so relative error is unstable (p99 0.451: mfcc20_mean)
MIN_TEMPO_MATCH = 0.5   # share of clips within 1 % of the published tempo (0.70 of all 172; p01 0.50)
NO_CORRELATION = {
    "harmony_mean": "mean of a zero-mean waveform: the DC offset (~1e-5), which the codec sets",
    "perceptr_mean": "mean of a zero-mean waveform: the DC offset (~1e-5), which the codec sets",
    "tempo": "an argmax over tempogram peaks: small onset changes (codec, and the older librosa the "
             "table was made with) flip some clips to another peak; checked as a share of exact matches",
}


@pytest.mark.realdata
@pytest.mark.slow  # ~15 s on 2 free cores (30 clips x 30 s, 2 jobs); up to ~50 s on a busy machine
def test_agrees_with_published_gtzan_features(gtzan_clip, shared_data, tmp_path):
    table = pd.read_csv(shared_data / "gtzan" / "features" / "features_30_sec.csv")
    chosen = [gtzan_clip(clip_id, "full30s") for clip_id in PUBLISHED_SAMPLE]
    assert set(PUBLISHED_SAMPLE) <= set(table["filename"].str.removesuffix(".wav"))
    manifest = pd.DataFrame({"path": [str(p) for p in chosen], "label": [p.parent.name for p in chosen]})
    result = features.extract_features(manifest, out=tmp_path / "g.parquet", cache_dir=tmp_path / "c",
                                       segment_seconds=None, jobs=-1, progress=False)
    ours = pd.read_parquet(result.out)
    assert result.n_errors == 0 and len(ours) == len(chosen) == 30
    cmp = features.compare_with_reference(ours, table)
    print("\n" + cmp.to_string(float_format=lambda v: f"{v:.4f}"))
    for col, row in cmp.iterrows():
        if col in NO_CORRELATION:
            continue
        high_mfcc_mean = col.endswith("_mean") and col.startswith("mfcc") and int(col[4:-5]) >= 10
        assert row["pearson_r"] >= (MIN_R_HIGH_MFCC if high_mfcc_mean else MIN_R), (col, row.to_dict())
        if col.endswith("_var") or (col.endswith("_mean") and not col.startswith("mfcc")) or col in ("mfcc1_mean", "mfcc2_mean"):
            assert row["median_rel_err"] <= MAX_MEDIAN_REL_ERR, (col, row.to_dict())
        else:
            assert row["median_abs_err_std"] <= MAX_MEDIAN_ABS_ERR_STD, (col, row.to_dict())
    ref = table.set_index(table["filename"].str.removesuffix(".wav")).loc[ours["track_id"]]
    assert np.mean(np.abs(ours["tempo"].to_numpy() / ref["tempo"].to_numpy() - 1) < 0.01) >= MIN_TEMPO_MATCH
    assert np.all(np.abs(ours[["harmony_mean", "perceptr_mean"]].to_numpy()) < 1e-3)
    assert (np.abs(ours["length"].to_numpy() - ref["length"].to_numpy()) < 0.02 * SR).all()


def test_one_job_runs_in_this_process(tmp_path, folder, monkeypatch):
    """--jobs 1 computes in this process: no worker pool to start, nothing to pickle across."""
    import joblib

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for jobs=1")

    monkeypatch.setattr(joblib, "Parallel", no_pool)
    result = features.extract_features(folder, out=tmp_path / "one.parquet", cache_dir=tmp_path / "c",
                                       segment_seconds=None, jobs=1, progress=False)
    assert result.n_computed >= 2


def test_cache_holds_no_pickles_and_a_damaged_entry_is_recomputed(tmp_path, folder):
    import pickle

    kwargs = dict(out=tmp_path / "f.parquet", cache_dir=tmp_path / "c", segment_seconds=3.0, progress=False)
    first = features.extract_features(folder, **kwargs)
    entries = sorted((tmp_path / "c").rglob("*.npz"))
    assert len(entries) == len(GOOD)
    for entry in entries:
        with np.load(entry, allow_pickle=False) as data:  # raises on any object (pickled) array
            assert "meta" in data.files
    reference = pd.read_parquet(first.out)
    # A pickle planted under an entry's name is never unpickled: the entry counts as damaged.
    entries[0].write_bytes(pickle.dumps({"rows": [], "frames": None, "error": None}))
    again = features.extract_features(folder, **kwargs)
    assert again.n_computed == 1 and again.n_cached == len(GOOD) - 1
    pd.testing.assert_frame_equal(pd.read_parquet(again.out), reference)
