"""Peak memory of the engine's key and tempo on a 10-minute signal (the basic-pitch posteriors are
their largest array): docs/key-no-tonal.md, "Posteriors memory".

Run:  PYTHONPATH=.. python bench/posteriors_memory.py [--minutes 10]
      (one fresh process per measurement; compare two checkouts by pointing PYTHONPATH at each)

Prints, for a synthetic chord sequence of ``--minutes`` at 22 050 Hz: the bytes the Analysis keeps
in ``pitch_posteriors``, tracemalloc's peak of Python/NumPy allocations during
``features.analyze(y).key`` and ``.tempo_estimate``, and the process's peak RSS (ru_maxrss,
including the imports and onnxruntime's own buffers).
"""

from __future__ import annotations

import argparse
import json
import resource
import tracemalloc

import numpy as np


def signal(minutes: float, sr: int = 22_050) -> np.ndarray:
    """Chords of three sine tones changing every 2 s, with a little noise: music-like, reproducible."""
    rng = np.random.default_rng(0)
    n = int(minutes * 60 * sr)
    t = np.arange(2 * sr) / sr
    y = np.empty(n, np.float32)
    for start in range(0, n, len(t)):
        root = rng.integers(48, 60)
        chord = sum(np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * t) for m in (root, root + 4, root + 7))
        y[start:start + len(t)] = (0.2 * chord / 3)[: n - start]
    return y + rng.normal(0, 0.01, n).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    from tracklens import features

    y = signal(args.minutes)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    a = features.analyze(y, sr=22_050)
    key, tempo = a.key, a.tempo_estimate
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    p = a.pitch_posteriors
    kept = sum(x.nbytes for x in (p.note, p.onset, getattr(p, "contour", None)) if x is not None)
    print(json.dumps({"minutes": args.minutes, "posteriors_kept_MB": round(kept / 1e6, 1),
                      "tracemalloc_peak_MB": round(peak / 1e6, 1),
                      "ru_maxrss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "ru_maxrss_before_MB": round(rss_before / 1024, 1),
                      "key": key.name, "bpm": round(tempo.bpm, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
