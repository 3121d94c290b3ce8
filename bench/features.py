"""Benchmark: plain librosa (one call per feature, each with its own STFT; librosa.effects.hpss;
one file at a time) vs tracklens' feature engine with 1 job and with all cores, in one run.

Run:  .venv/bin/python bench/features.py [--clips 12]    (also `make bench`)

Each approach runs in its own process (so peak memory is its own: the process plus its
workers, sampled every 20 ms) on the same real GTZAN clips from ../shared/data, after one
untimed warm-up clip (numba compilation, imports); single-process approaches run with thread
pools of 1 (OMP/BLAS/numba), so their CPU time is one core's work. Timings include decoding
(Opus; the MP3 rows repeat plain librosa and 1 job on the same clips as 44.1 kHz stereo MP3 at
192 kbit/s, the usual download, made with ffmpeg; the WAV rows on the same clips written as
22 050 Hz float WAV, where decoding is nearly free). The machine is shared, so compare the
ratios within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tracklens import config

# One core per single-process approach: no BLAS/OpenMP/numba thread pools, so CPU time per clip
# is one core's work (the all-cores run parallelises over files instead).
ONE_THREAD_ENV = {**os.environ, **{v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                     "NUMBA_NUM_THREADS")}}


def plain_librosa(path: str) -> dict:
    """The 57 GTZAN features the way the Kaggle table was made: a separate call per feature."""
    import librosa
    import numpy as np

    y, sr = librosa.load(path, sr=config.SAMPLE_RATE, mono=True)
    out = {}
    for name, values in (
        ("chroma_stft", librosa.feature.chroma_stft(y=y, sr=sr)),
        ("rms", librosa.feature.rms(y=y)),
        ("spectral_centroid", librosa.feature.spectral_centroid(y=y, sr=sr)),
        ("spectral_bandwidth", librosa.feature.spectral_bandwidth(y=y, sr=sr)),
        ("rolloff", librosa.feature.spectral_rolloff(y=y, sr=sr)),
        ("zero_crossing_rate", librosa.feature.zero_crossing_rate(y)),
    ):
        out[f"{name}_mean"], out[f"{name}_var"] = float(np.mean(values)), float(np.var(values))
    harmony, perceptr = librosa.effects.hpss(y)
    out["harmony_mean"], out["harmony_var"] = float(np.mean(harmony)), float(np.var(harmony))
    out["perceptr_mean"], out["perceptr_var"] = float(np.mean(perceptr)), float(np.var(perceptr))
    out["tempo"] = float(librosa.feature.tempo(y=y, sr=sr)[0])
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=config.N_MFCC)
    for i, row in enumerate(mfcc, start=1):
        out[f"mfcc{i}_mean"], out[f"mfcc{i}_var"] = float(np.mean(row)), float(np.var(row))
    return out


def stage_times(files: list[str]) -> dict:
    """CPU seconds per clip of each stage, from decoded audio (no decoding, no I/O)."""
    import librosa
    import numpy as np

    from tracklens import features
    from tracklens.audio import load_audio

    clips = [load_audio(f).y for f in files]
    spectral_plain = lambda y: [  # noqa: E731 - the plain approach minus HPSS
        librosa.feature.chroma_stft(y=y, sr=config.SAMPLE_RATE), librosa.feature.rms(y=y),
        librosa.feature.spectral_centroid(y=y, sr=config.SAMPLE_RATE),
        librosa.feature.spectral_bandwidth(y=y, sr=config.SAMPLE_RATE),
        librosa.feature.spectral_rolloff(y=y, sr=config.SAMPLE_RATE), librosa.feature.zero_crossing_rate(y),
        librosa.feature.tempo(y=y, sr=config.SAMPLE_RATE), librosa.feature.mfcc(y=y, sr=config.SAMPLE_RATE, n_mfcc=20)]

    def spectral_ours(y):
        a = features.analyze(y)
        return a, [a.chroma, a.rms, a.spectral_centroid, a.spectral_bandwidth, a.rolloff,
                   a.zero_crossing_rate, a.tempo, a.mfcc]

    spectral_plain(clips[0])
    spectral_ours(clips[0])[0].harmonic  # warm-up: numba, filter banks
    out = {"plain_spectral": 0.0, "ours_spectral": 0.0, "plain_hpss": 0.0, "ours_hpss": 0.0}
    for y in clips:
        t = time.process_time()
        spectral_plain(y)
        out["plain_spectral"] += time.process_time() - t
        t = time.process_time()
        a, _ = spectral_ours(y)
        out["ours_spectral"] += time.process_time() - t
        t = time.process_time()
        librosa.effects.hpss(y)
        out["plain_hpss"] += time.process_time() - t
        t = time.process_time()
        np.var(a.harmonic)
        out["ours_hpss"] += time.process_time() - t
    return {k: v / len(clips) for k, v in out.items()}


def _peak_sampler(stop: threading.Event, peak: list) -> None:
    import psutil

    me = psutil.Process()
    while not stop.is_set():
        try:
            procs = [me, *me.children(recursive=True)]
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        stop.wait(0.02)


def run_one(approach: str, files: list[str]) -> dict:
    """Time one approach on ``files`` (after an untimed warm-up on the first) in this process."""
    import pandas as pd

    from tracklens import features

    cache = tempfile.mkdtemp(prefix="tracklens-bench-cache-")
    out = Path(cache) / "features.parquet"
    jobs = 1 if approach == "tracklens_1job" else -1

    def tracklens(paths: list[str], tag: str) -> dict:
        manifest = pd.DataFrame({"path": paths, "label": ""})
        features.extract_features(manifest, out=out, segment_seconds=None, jobs=jobs,
                                  cache_dir=Path(cache) / tag, progress=False)
        table = pd.read_parquet(out)
        return {row["path"]: {c: float(row[c]) for c in features.SUMMARY_COLUMNS} for _, row in table.iterrows()}

    def decode_only(path: str) -> dict:
        from tracklens.audio import load_audio

        load_audio(path)
        return {}

    warm = files[:1] if approach in ("plain", "decode") else files[: max(1, os.cpu_count() or 1)]
    if approach == "decode":
        decode_only(warm[0])
    elif approach == "plain":
        plain_librosa(warm[0])
    else:
        tracklens(warm, "warm")  # numba compile; loky keeps its warm workers for the timed call
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_peak_sampler, args=(stop, peak), daemon=True)
    sampler.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    if approach in ("plain", "decode"):
        values = {p: (plain_librosa if approach == "plain" else decode_only)(p) for p in files}
    else:
        values = tracklens(files, "timed")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    stop.set()
    sampler.join()
    # CPU time of this process only: meaningful for the in-process approaches (plain, 1 job),
    # and robust to other users of the machine, unlike wall time.
    return {"seconds": seconds, "cpu": cpu if approach != "tracklens_all_cores" else None,
            "peak_mb": peak[0] / 2**20, "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=12, help="number of 30 s GTZAN clips (default 12)")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:  # child mode
        print(json.dumps(stage_times(args.files) if args.run == "stages" else run_one(args.run, args.files)))
        return

    audio_dir = config.SHARED_DATA_DIR / "gtzan" / "audio"
    if not audio_dir.is_dir():
        sys.exit(f"bench/features.py: real data not found at {audio_dir}")
    import numpy as np
    import soundfile as sf

    by_genre = {g: sorted((audio_dir / g).glob("*.opus")) for g in config.GTZAN_GENRES}
    files = [str(p) for i in range(100) for g in config.GTZAN_GENRES if i < len(by_genre[g]) for p in [by_genre[g][i]]]
    files = files[: args.clips]
    audio_s = sum(sf.info(f).duration for f in files)
    print(f"{len(files)} GTZAN clips ({audio_s:.0f} s of audio, Opus) on {os.cpu_count()} cores; "
          "57 GTZAN summary features per clip, decoding included")

    # The same clips as 22 050 Hz float WAV: decoding becomes nearly free, so these two rows show
    # the engine's own ratio with a file as input (Opus decoding is ~0.1 s per clip for both).
    from tracklens.audio import load_audio

    wav_dir = Path(tempfile.mkdtemp(prefix="tracklens-bench-wav-"))
    wavs, mp3s = [], []
    for f in files:
        wavs.append(str(wav_dir / (Path(f).stem + ".wav")))
        sf.write(wavs[-1], load_audio(f).y, config.SAMPLE_RATE, subtype="FLOAT")
        mp3s.append(str(wav_dir / (Path(f).stem + ".mp3")))
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", f, "-ar", "44100", "-ac", "2", "-b:a", "192k",
                        mp3s[-1]], check=True)

    results = {}
    for approach, paths in (("decode", files), ("plain", files), ("tracklens_1job", files),
                            ("tracklens_all_cores", files), ("decode_mp3", mp3s), ("plain_mp3", mp3s),
                            ("tracklens_1job_mp3", mp3s), ("plain_wav", wavs), ("tracklens_1job_wav", wavs)):
        child = approach.removesuffix("_wav").removesuffix("_mp3")
        done = subprocess.run([sys.executable, __file__, "--run", child, "--files", *paths],
                              capture_output=True, text=True, check=False,
                              env=None if approach == "tracklens_all_cores" else ONE_THREAD_ENV)
        if done.returncode != 0:
            sys.exit(f"{approach} failed:\n{done.stderr[-2000:]}")
        results[approach] = json.loads(done.stdout.strip().splitlines()[-1])

    bases = {kind: (results[f"plain{kind}"]["seconds"], results[f"plain{kind}"]["cpu"]) for kind in ("", "_mp3", "_wav")}
    print()
    print("| approach | clips/s | audio s/s | speed-up (wall) | CPU s/clip | speed-up (CPU) | peak memory (MB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    labels = {"decode": "decode only (the floor: soundfile + soxr)", "plain": "plain librosa, 1 file at a time", "tracklens_1job": "tracklens, 1 job",
              "tracklens_all_cores": f"tracklens, {os.cpu_count()} jobs",
              "decode_mp3": "decode only, MP3 input (44.1 kHz stereo)", "plain_mp3": "plain librosa, MP3 input",
              "tracklens_1job_mp3": "tracklens, 1 job, MP3 input",
              "plain_wav": "plain librosa, WAV input (22 050 Hz float)", "tracklens_1job_wav": "tracklens, 1 job, WAV input"}
    for approach, res in results.items():
        ref, ref_cpu = bases[next((k for k in ("_mp3", "_wav") if approach.endswith(k)), "")]
        s = res["seconds"]
        cpu = res["cpu"]
        cpu_cells = f"{cpu / len(files):.3f} | {ref_cpu / cpu:.1f}x" if cpu else "(workers) | -"
        print(f"| {labels[approach]} | {len(files) / s:.2f} | {audio_s / s:.1f} | {ref / s:.1f}x | {cpu_cells} "
              f"| {res['peak_mb']:.0f} |")
    print("(speed-ups: each input's rows against plain librosa on that input)")
    print(f"{os.cpu_count()} jobs vs 1 job (wall, Opus): "
          f"{results['tracklens_1job']['seconds'] / results['tracklens_all_cores']['seconds']:.2f}x")

    done = subprocess.run([sys.executable, __file__, "--run", "stages", "--files", *files[:4]],
                          capture_output=True, text=True, check=False, env=ONE_THREAD_ENV)
    if done.returncode != 0:
        sys.exit(f"stages failed:\n{done.stderr[-2000:]}")
    st = json.loads(done.stdout.strip().splitlines()[-1])
    print()
    print("| stage (from decoded audio, 4 clips, CPU s/clip) | plain librosa | tracklens | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name, plain_key, ours_key in (("spectral set: chroma, rms, centroid, bandwidth, rolloff, zcr, tempo, mfcc "
                                       "(tracklens: incl. its one STFT)", "plain_spectral", "ours_spectral"),
                                      ("HPSS -> harmony/perceptr", "plain_hpss", "ours_hpss")):
        print(f"| {name} | {st[plain_key]:.3f} | {st[ours_key]:.3f} | {st[plain_key] / st[ours_key]:.1f}x |")
    total_plain, total_ours = st["plain_spectral"] + st["plain_hpss"], st["ours_spectral"] + st["ours_hpss"]
    print(f"| all 57 features | {total_plain:.3f} | {total_ours:.3f} | {total_plain / total_ours:.1f}x |")

    # Deviation of tracklens' values from the plain approach, per column (relative to the
    # column's spread over the clips, so near-zero means do not blow up).
    from tracklens import features

    plain, ours = results["plain"]["values"], results["tracklens_1job"]["values"]
    print()
    print("| columns | max deviation vs plain (fraction of the column's range over the clips) |")
    print("| --- | ---: |")
    groups = {"chroma_stft": [c for c in features.SUMMARY_COLUMNS if c.startswith("chroma")],
              "harmony / perceptr (fast exact HPSS)": [c for c in features.SUMMARY_COLUMNS if c.startswith(("harmony", "perceptr"))],
              "tempo": ["tempo"]}
    groups["all other (rms, spectral, zcr, mfcc)"] = [c for c in features.SUMMARY_COLUMNS
                                                     if not any(c in cols for cols in groups.values())]
    for name, cols in groups.items():
        worst = 0.0
        for c in cols:
            a = np.array([plain[f][c] for f in files])
            b = np.array([ours[f][c] for f in files])
            spread = max(np.ptp(a), np.max(np.abs(a)) * 1e-6, 1e-12)
            worst = max(worst, float(np.max(np.abs(a - b)) / spread))
        print(f"| {name} | {worst:.2e} |")


if __name__ == "__main__":
    main()
