"""Benchmark: the Dask path as the catalogue grows (250, 500, 1,000 synthetic tracks) on a
2-process LocalCluster: wall time, cost per track, the client's peak memory and the output size.

Run:  .venv/bin/python bench/scale.py [--sizes 250 500 1000] [--workers 2] [--part-size 50]

The tracks are 3-5 s of synthesised audio (a chord with vibrato over a click track at a random
tempo, with noise; root, chord, tempo, length and level vary per track), written once as 22 050 Hz
16-bit WAV into a temp folder; each size takes the first N and an empty cache of its own, so
every track is computed. The workers are warmed (imports, numba's cache) before the first size.
Each size runs its client in a fresh process connected to the one cluster, so its peak RSS
(``ru_maxrss``) is that size's own; the client's one-time start (imports, numba's cache check,
constant whatever the size) is timed apart from the run. Worker CPU s: user + system time the
worker processes spent during the size's run (what a busy shared machine does not inflate). Output MB: the partitioned table folder
(parquet parts, frames per part, markers) and the errors file. The machine is shared: compare
the rows of one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracklens import config

SIZES = (250, 500, 1000)


def write_tracks(folder: Path, n: int, *, seed: int = 0) -> list[str]:
    """``n`` varied 3-5 s tracks as WAV files; returns their paths in order."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    sr = config.SAMPLE_RATE
    paths = []
    for i in range(n):
        seconds = rng.uniform(3.0, 5.0)
        t = np.arange(int(seconds * sr)) / sr
        root = rng.uniform(110.0, 440.0)
        ratios = (1.0, 1.26 if rng.random() < 0.5 else 1.19, 1.498)  # major or minor triad
        vibrato = 1 + 0.003 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
        y = sum(np.sin(2 * np.pi * root * r * vibrato * t) for r in ratios) / 3
        clicks = np.zeros_like(t)
        clicks[::int(sr * 60 / rng.uniform(70, 180))] = 1.0
        y += np.convolve(clicks, rng.standard_normal(200) * np.exp(-np.arange(200) / 40), mode="same")
        y += rng.uniform(0.001, 0.05) * rng.standard_normal(len(t))
        path = folder / f"track{i:05d}.wav"
        sf.write(path, (rng.uniform(0.2, 0.9) * y / np.max(np.abs(y))).astype(np.float32), sr, subtype="PCM_16")
        paths.append(str(path))
    return paths


def warm_worker() -> None:
    """Run on each worker before timing: imports and numba's cache (under its host lock)."""
    from tracklens import features

    features.features_task()
    features.warm_numba()


def cpu_seconds() -> float:
    """This process's CPU time (user + system); run on each worker."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_size(args) -> None:
    """The client of one size (a fresh process): prints its measurements as one JSON line."""
    import resource

    import pandas as pd

    started = time.perf_counter()
    from tracklens import batch, features

    task = features.features_task()
    task.warm(check=True)  # what batch.run does first; constant per run, so timed apart
    paths = sorted(str(p) for p in Path(args.audio).glob("*.wav"))[:args.n]
    manifest = pd.DataFrame({"path": paths, "label": ""})
    ready = time.perf_counter()
    result = batch.run(task, manifest, out=args.out, scheduler=args.scheduler, cache_dir=args.cache,
                       part_size=args.part_size, progress=False)
    wall = time.perf_counter() - ready
    out = Path(args.out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) + Path(result.errors).stat().st_size
    print(json.dumps({"tracks": result.n_tracks, "errors": result.n_errors, "computed": result.n_computed,
                      "start_s": ready - started, "wall_s": wall,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "output_mb": size / 1e6, "parts": len(list(out.glob("part-*.parquet")))}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part-size", type=int, default=None, help="files per part (default batch.PART_FILES)")
    # one size's client (run by main in a fresh process)
    parser.add_argument("--scheduler", help=argparse.SUPPRESS)
    parser.add_argument("--audio", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from tracklens import batch

    args.part_size = args.part_size or batch.PART_FILES
    if args.scheduler:
        one_size(args)
        return

    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(prefix="tracklens-scale-") as tmp:
        work = Path(tmp)
        (work / "audio").mkdir()
        started = time.perf_counter()
        write_tracks(work / "audio", max(args.sizes))
        print(f"{max(args.sizes)} tracks written in {time.perf_counter() - started:.0f} s; "
              f"{args.workers} worker processes, {args.part_size} files per part", flush=True)
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.run(warm_worker)
            rows = []
            for n in args.sizes:
                cpu_before = sum(client.run(cpu_seconds).values())
                run = subprocess.run([sys.executable, __file__, "--scheduler", cluster.scheduler_address,
                                      "--audio", str(work / "audio"), "--n", str(n), "--out",
                                      str(work / f"out{n}" / "features.parquet"), "--cache", str(work / f"cache{n}"),
                                      "--part-size", str(args.part_size)], capture_output=True, text=True)
                if run.returncode:
                    sys.exit(f"size {n} failed:\n{run.stderr[-3000:]}")
                row = json.loads(run.stdout.strip().splitlines()[-1])
                row["worker_cpu_s"] = sum(client.run(cpu_seconds).values()) - cpu_before
                rows.append(row)
                print(f"  {n} done: {row}", flush=True)
    print("\n| tracks | parts | wall s | s per track | worker CPU s per track | client start s | client peak RSS MB "
          "| output MB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['tracks']} | {row['parts']} | {row['wall_s']:.1f} | {row['wall_s'] / row['tracks']:.4f} | "
              f"{row['worker_cpu_s'] / row['tracks']:.4f} | {row['start_s']:.1f} | {row['peak_rss_mb']:.0f} | "
              f"{row['output_mb']:.1f} |")
    per_track = [r["wall_s"] / r["tracks"] for r in rows]
    rss = [r["peak_rss_mb"] for r in rows]
    print(f"\ncost per track: max/min {max(per_track) / min(per_track):.2f}x (target <= 1.5x); "
          f"client peak RSS: max/min {max(rss) / min(rss):.3f}x (target <= 1.10x)")


if __name__ == "__main__":
    main()
