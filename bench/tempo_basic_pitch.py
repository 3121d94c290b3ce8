"""Experiment: tempo from pitched onsets (basic-pitch's onset / note posteriors) beside the engine's.

Run:  PYTHONPATH=.. python bench/tempo_basic_pitch.py --bp-cache data/interim/basic_pitch [--jobs 2]
      [--work DIR] [--no-valid] [--variant NAME] [--runtime-check STEP]
      (~1 CPU-minute with the cache, which bench/basic_pitch_cache.py writes; --runtime-check reruns the network)

``--bp-cache``: a folder of basic-pitch (Spotify, ICASSP 2022, Apache-2.0) outputs, one
``<clip>__<kind>.npz`` per GTZAN file (kinds as in gtzan/manifest.csv), float16 arrays
``StatefulPartitionedCall_2`` = onset posterior (T, 88), ``StatefulPartitionedCall_1`` = note
posterior (T, 88), ``StatefulPartitionedCall_0`` = pitch contour (T, 264), at 22050 / 256 = 86.13
frames per second (twice the engine's 22050 / 512).

What it does (docs/tempo.md has the results):

1. Per clip (bench/tempo_key.py's clips and annotations), the engine's median-over-bands onset
   envelope (``Analysis.beat_envelope``) and its tempo, and pitched-onset envelopes from the
   posteriors (ENVELOPES), brought to the engine's frame rate by summing frame pairs.
2. The mean autocorrelation tempogram (the engine's, 384 frames) of each envelope, normalised
   by its highest peak in 30-300 BPM.
3. Variants (``variants()``, 74 of them): one envelope alone with the engine's prior choice;
   sums / products of the normalised tempogram strengths of the engine's and a pitched envelope;
   a per-clip switch; the prior's centre and width re-chosen on train.
4. Every variant is scored on the **train** fold (Acc1, Acc2; classical apart); the one with the
   best train Acc1 + Acc2 (or ``--variant``) is scored once on the valid fold with bootstrap 95 %
   intervals and the paired bootstrap against the engine. Nothing is chosen on valid.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tempo_key import clips  # noqa: E402  (the same clips and annotations as the benchmark)
from tempo_learned import report_per_genre  # noqa: E402

from tracklens import audio, config, feature_kernels, features  # noqa: E402

SR, HOP = config.SAMPLE_RATE, config.HOP_LENGTH
FPS = SR / HOP
ONSET, NOTE, CONTOUR = "StatefulPartitionedCall_2", "StatefulPartitionedCall_1", "StatefulPartitionedCall_0"
TEMPOGRAM_WIN = 384


def _pairs(x: np.ndarray) -> np.ndarray:
    """86.13 fps -> 43.07 fps (the engine's): the sum of each frame pair."""
    n = len(x) // 2
    return (x[:2 * n:2] + x[1:2 * n:2]).astype(np.float32)


def _flux(p: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.maximum(np.diff(p, axis=0), 0.0).sum(axis=1)])


# Pitched-onset envelopes from one clip's posteriors (each at 86.13 fps before _pairs).
ENVELOPES: dict[str, Callable[[dict], np.ndarray]] = {
    "onset sum": lambda p: p[ONSET].sum(axis=1),
    "onset max": lambda p: p[ONSET].max(axis=1),
    "onset sum flux": lambda p: np.concatenate([[0.0], np.maximum(np.diff(p[ONSET].sum(axis=1)), 0.0)]),
    "note flux": lambda p: _flux(p[NOTE]),
    "contour flux": lambda p: _flux(p[CONTOUR]),
}


def strength_curve(envelope: np.ndarray) -> np.ndarray:
    """Mean tempogram of an envelope, normalised by its highest peak in 30-300 BPM."""
    env = np.ascontiguousarray(envelope, dtype=np.float32)
    curve = feature_kernels.tempogram(env, sr=SR, hop_length=HOP, win_length=TEMPOGRAM_WIN).mean(axis=1)
    top = curve[int(60 * FPS / 300):int(60 * FPS / 30)].max()
    return curve / max(float(top), 1e-9)


def _kinds() -> dict[str, str]:
    """Audio path -> its manifest kind (full30s, excerpt15s, ...): the cache's file names."""
    import csv

    data = config.SHARED_DATA_DIR
    return {Path(r["path"]).name: r["kind"] for r in csv.DictReader(open(data / "gtzan/manifest.csv"))}


def measure(row: dict, bp_cache: Path, kind: str) -> dict | None:
    """The engine's envelope and tempo, the pitched envelopes and two posteriors, for one clip."""
    npz = bp_cache / f"{row['clip']}__{kind}.npz"
    if not npz.exists():
        return None
    y = audio.load_audio(row["path"], sr=SR).y
    a = features.analyze(y)
    posteriors = {k: v.astype(np.float32) for k, v in np.load(npz).items()}
    envelopes = {"engine": a.beat_envelope, **{name: _pairs(make(posteriors)) for name, make in ENVELOPES.items()}}
    return dict(row, engine_bpm=a.tempo_estimate.bpm, envelopes=envelopes,
                posteriors={k: posteriors[k].astype(np.float16) for k in (ONSET, NOTE)})


def prior_choice(curve: np.ndarray, prior: tuple[float, float] = features.TEMPO_PRIOR) -> float:
    """The engine's choice (peak x log-normal prior) on a mean tempogram, with another prior."""
    bpm, height = features.tempo_candidates(curve, sr=SR, hop_length=HOP)
    if not bpm.size:
        return 0.0
    centre, octaves = prior
    return float(bpm[np.argmax(height * np.exp(-0.5 * (np.log2(bpm / centre) / octaves) ** 2))])


def detrend(envelope: np.ndarray, frames: int) -> np.ndarray:
    """The envelope above its moving average over ``frames`` frames (half-wave rectified): the
    posteriors' slowly varying floor (sustained notes, reverb) would flatten the autocorrelation."""
    from scipy.ndimage import uniform_filter1d

    return np.maximum(envelope - uniform_filter1d(envelope, frames, mode="nearest"), 0.0).astype(np.float32)


def onset_peaks(row: dict, threshold: float) -> np.ndarray:
    """Per key, the onset posterior's local maxima above ``threshold``, summed over keys."""
    from scipy.ndimage import maximum_filter1d

    onset = row["posteriors"][ONSET].astype(np.float32)
    keep = (onset == maximum_filter1d(onset, 3, axis=0)) & (onset > threshold)
    return _pairs((onset * keep).sum(axis=1))


def curve(row: dict, spec: str) -> np.ndarray:
    """The normalised mean tempogram of envelope ``spec`` ("NAME" or "NAME detrend FRAMES"), cached per clip."""
    cache = row.setdefault("curve_cache", {})
    if spec not in cache:
        name, _, frames = spec.partition(" detrend ")
        if name.startswith("onset peaks >"):
            env = onset_peaks(row, float(name.split(">")[1]))
        elif name == "note flux log":
            env = _pairs(_flux(np.log1p(10 * row["posteriors"][NOTE].astype(np.float32))))
        else:
            env = row["envelopes"][name]
        cache[spec] = strength_curve(detrend(env, int(frames)) if frames else env)
    return cache[spec]


def peak_sharpness(c: np.ndarray) -> float:
    """How clearly a normalised mean tempogram's highest peak stands out: 1 - its median over 30-300 BPM."""
    return 1.0 - float(np.median(c[int(60 * FPS / 300):int(60 * FPS / 30)]))


def envelope_sum(row: dict, weight: float, frames: int) -> np.ndarray:
    """The engine's envelope and the detrended onset-sum envelope, each divided by its sd, weighted."""
    engine, pitched = row["envelopes"]["engine"], detrend(row["envelopes"]["onset sum"], frames)
    n = min(len(engine), len(pitched))
    return ((1 - weight) * engine[:n] / max(float(engine.std()), 1e-9)
            + weight * pitched[:n] / max(float(pitched.std()), 1e-9)).astype(np.float32)


Variant = Callable[[dict], float]


def variants() -> dict[str, Variant]:
    """Every variant tried, in the order of docs/tempo.md's table."""
    out: dict[str, Variant] = {"engine": lambda r: prior_choice(curve(r, "engine"))}
    for frames in (11, 22, 43):
        out[f"engine detrend {frames}"] = lambda r, f=frames: prior_choice(curve(r, f"engine detrend {f}"))
    for name in ENVELOPES:
        out[f"{name} alone"] = lambda r, n=name: prior_choice(curve(r, n))
    for spec in ("onset sum detrend 11", "onset sum detrend 16", "onset sum detrend 22", "onset sum detrend 32",
                 "onset sum detrend 43", "onset sum detrend 86", "onset sum flux detrend 11",
                 "onset sum flux detrend 22", "note flux detrend 11", "note flux detrend 22", "onset max detrend 11",
                 "onset max detrend 22", "onset peaks >0.1", "onset peaks >0.1 detrend 22", "onset peaks >0.3",
                 "onset peaks >0.3 detrend 22", "onset peaks >0.5", "onset peaks >0.5 detrend 22", "note flux log",
                 "note flux log detrend 22"):
        out[f"{spec} alone"] = lambda r, s=spec: prior_choice(curve(r, s))
    # combinations with the engine's tempogram (normalised mean tempograms: (1 - w) engine + w pitched)
    for name in ("onset sum", "note flux", "onset sum flux"):
        for w in (0.25, 0.5, 0.75):
            out[f"engine + {w} x {name} (tempogram sum)"] = \
                lambda r, n=name, w=w: prior_choice((1 - w) * curve(r, "engine") + w * curve(r, n))
        out[f"engine x {name} (tempogram product)"] = \
            lambda r, n=name: prior_choice(np.maximum(curve(r, "engine"), 0) * np.maximum(curve(r, n), 0))
    for frames in (16, 22, 32, 43):
        for w in (0.25, 0.4, 0.5, 0.6, 0.75):
            out[f"engine + {w} x onset sum detrend {frames} (tempogram sum)"] = \
                lambda r, f=frames, w=w: prior_choice((1 - w) * curve(r, "engine")
                                                      + w * curve(r, f"onset sum detrend {f}"))
    out["engine x onset sum detrend 22 (tempogram product)"] = lambda r: prior_choice(
        np.maximum(curve(r, "engine"), 0) * np.maximum(curve(r, "onset sum detrend 22"), 0))
    for w in (0.25, 0.5, 0.75):
        out[f"engine + {w} x onset sum detrend 22 (envelope sum, sd-normalised)"] = \
            lambda r, w=w: prior_choice(strength_curve(envelope_sum(r, w, 22)))
    for threshold in (0.5, 0.6, 0.7, 0.8):
        out[f"onset sum detrend 22 when engine's peak sharpness < {threshold}, else engine"] = \
            lambda r, th=threshold: prior_choice(curve(r, "onset sum detrend 22")
                                                 if peak_sharpness(curve(r, "engine")) < th else curve(r, "engine"))
    for prior in ((100.0, 1.0), (110.0, 1.0), (130.0, 1.0), (120.0, 0.7), (120.0, 1.4)):
        out[f"engine + 0.5 x onset sum detrend 22 (tempogram sum), prior {prior[0]:.0f} BPM, {prior[1]} oct"] = \
            lambda r, p=prior: prior_choice(0.5 * curve(r, "engine") + 0.5 * curve(r, "onset sum detrend 22"), p)
    return out


def accuracy(rows: list[dict], tempos: list[float]) -> np.ndarray:
    return np.array([features.tempo_scores(t, r["tempo"]) for r, t in zip(rows, tempos)], dtype=float)


def summary(rows: list[dict], acc: np.ndarray) -> str:
    classical = np.array([r["genre"] == "classical" for r in rows])
    return (f"{acc[:, 0].mean():.3f} {acc[:, 1].mean():.3f}   "
            f"{acc[~classical, 0].mean():.3f} {acc[~classical, 1].mean():.3f}   "
            f"{acc[classical, 0].mean():.3f} {acc[classical, 1].mean():.3f}")


def report(name: str, rows: list[dict], chosen: np.ndarray, engine: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(rows), (10_000, len(rows)))
    ci = np.percentile(chosen[draws].mean(axis=1), [2.5, 97.5], axis=0)
    diff = (chosen - engine)[draws].mean(axis=1)
    print(f"\n{name}: {len(rows)} clips   chosen Acc1 {chosen[:, 0].mean():.3f} ({ci[0, 0]:.3f} .. {ci[1, 0]:.3f}) "
          f"Acc2 {chosen[:, 1].mean():.3f} ({ci[0, 1]:.3f} .. {ci[1, 1]:.3f})   "
          f"engine Acc1 {engine[:, 0].mean():.3f} Acc2 {engine[:, 1].mean():.3f}")
    for i, score in enumerate(("Acc1", "Acc2")):
        low, high = np.percentile(diff[:, i], [2.5, 97.5])
        print(f"  chosen - engine {score}: {(chosen - engine)[:, i].mean():+.3f} "
              f"(paired bootstrap 95 % CI {low:+.3f} .. {high:+.3f}; "
              f"clips won {int(((chosen - engine)[:, i] > 0).sum())}, lost {int(((chosen - engine)[:, i] < 0).sum())})")
    report_per_genre("chosen", rows, chosen, engine)


def nested_selection(scored: dict[str, np.ndarray], n: int, folds: int = 5) -> np.ndarray:
    """Each clip's scores under the variant chosen (best Acc1 + Acc2) on the other folds."""
    order = np.random.default_rng(0).permutation(n)
    out = np.zeros((n, 2))
    for k in range(folds):
        held = order[k::folds]
        fit = np.setdiff1d(order, held)
        best = max(scored, key=lambda name: scored[name][fit].mean(axis=0).sum())
        out[held] = scored[best][held]
    return out


def choose_on_train(train: list[dict], table: dict, *, variant: str | None = None,
                    width: int = 52) -> tuple[str, dict[str, np.ndarray]]:
    """Score every variant of ``table`` on the ``train`` rows (printed, one line each), check the
    choice by :func:`nested_selection` and report the chosen one (best Acc1 + Acc2, or
    ``variant``) against the engine; the chosen name and every variant's per-clip scores."""
    scored = {}
    for name, pick in table.items():
        scored[name] = accuracy(train, [pick(r) for r in train])
        print(f"  {name:{width}s} {summary(train, scored[name])}")
    best = variant or max(scored, key=lambda n: scored[n].mean(axis=0).sum())
    nested = nested_selection(scored, len(train))
    engine = scored["engine"].mean(axis=0)
    print(f"\nchoosing the variant on 4/5 of train, scoring it on the other 1/5 (5 folds): "
          f"Acc1 {nested[:, 0].mean():.3f} Acc2 {nested[:, 1].mean():.3f} (engine {engine[0]:.3f} {engine[1]:.3f}): "
          "the train gain less the optimism of choosing among these variants")
    print(f"\nchosen on train: {best}")
    report("train fold", train, scored[best], scored["engine"])
    return best, scored


def load(fold: str, bp_cache: Path, jobs: int, work: Path | None) -> list[dict]:
    """The fold's measured clips (pickled under ``work`` so variants can be rerun cheaply)."""
    from joblib import Parallel, delayed

    cached = work / f"tempo_basic_pitch_{fold}.pkl" if work else None
    if cached and cached.exists():
        return pickle.loads(cached.read_bytes())
    kinds = _kinds()
    rows = Parallel(n_jobs=jobs)(delayed(measure)(r, bp_cache, kinds[Path(r["path"]).name])
                            for r in clips(config.SHARED_DATA_DIR, fold, None))
    missing = sum(r is None for r in rows)
    if missing:
        print(f"{fold}: {missing} clips have no basic-pitch output in {bp_cache}; left out", file=sys.stderr)
    rows = [r for r in rows if r is not None]
    if cached:
        cached.write_bytes(pickle.dumps(rows))
    return rows


def runtime_check(rows: list[dict], bp_cache: Path) -> None:
    """The chosen combination from tracklens.pitch_posteriors (onnxruntime) against the cache's
    (tflite) posteriors on the same clips, and CPU seconds per clip of each step, in one run."""
    import time

    from tracklens import pitch_posteriors

    kinds, same, cpu, changed = _kinds(), 0, np.zeros(4), []
    for row in rows:
        y = audio.load_audio(row["path"], sr=SR).y
        t0 = time.process_time()
        a = features.analyze(y)
        t1 = time.process_time()
        a.tempo_estimate
        t2 = time.process_time()
        onset = pitch_posteriors.posteriors(y, sr=SR).onset
        t3 = time.process_time()
        bpm = prior_choice(0.5 * strength_curve(a.beat_envelope) + 0.5 * pitched_curve(onset))
        t4 = time.process_time()
        cpu += (t1 - t0, t2 - t1, t3 - t2, t4 - t3)
        cached = np.load(bp_cache / f"{row['clip']}__{kinds[Path(row['path']).name]}.npz")[ONSET].astype(np.float32)
        from_cache = prior_choice(0.5 * strength_curve(a.beat_envelope) + 0.5 * pitched_curve(cached))
        if abs(np.log2(bpm / from_cache)) < 0.01:
            same += 1
        else:
            changed.append(f"{row['clip']} (annotated {row['tempo']:.1f}): {bpm:.1f} "
                           f"{features.tempo_scores(bpm, row['tempo'])}, from the cache {from_cache:.1f} "
                           f"{features.tempo_scores(from_cache, row['tempo'])}")
    cpu /= len(rows)
    print(f"\nruntime check, {len(rows)} clips: the same tempo from pitch_posteriors and from the cache on {same}")
    for line in changed:
        print("  " + line)
    print(f"  CPU s per clip (mean, one thread): analyze (STFT) {cpu[0]:.4f}, engine tempo after it {cpu[1]:.4f}, "
          f"posteriors {cpu[2]:.4f}, pitched envelope + tempograms + choice {cpu[3]:.4f}")


def pitched_curve(onset: np.ndarray) -> np.ndarray:
    """The chosen pitched tempogram (the engine's since FEATURE_VERSION 6): onset posterior summed
    over keys, to 43 fps, detrended over 22 frames."""
    return strength_curve(features.pitched_onset_envelope(onset))


def variant_arguments(description: str) -> argparse.ArgumentParser:
    """The options every tempo research bench takes: the posteriors' cache, jobs, the measured
    clips' folder, and a variant to score instead of the train fold's choice."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bp-cache", type=Path, required=True, help="folder of <clip>__<kind>.npz posteriors")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None, help="folder to keep the measured clips in (reruns)")
    parser.add_argument("--variant", default=None, help="score this variant on valid instead of train's best")
    return parser


def main(argv=None) -> int:
    parser = variant_arguments(__doc__.splitlines()[0])
    parser.add_argument("--no-valid", action="store_true", help="train fold only")
    parser.add_argument("--runtime-check", type=int, default=0, metavar="STEP",
                        help="also run tracklens.pitch_posteriors on every STEP-th train + valid clip: "
                             "agreement with the cache and CPU cost")
    args = parser.parse_args(argv)
    train = load("train", args.bp_cache, args.jobs, args.work)
    if not train:
        print(f"no annotated train clips under {config.SHARED_DATA_DIR}", file=sys.stderr)
        return 2
    table = variants()
    print(f"train fold, {len(train)} clips: Acc1 Acc2 / non-classical Acc1 Acc2 / classical Acc1 Acc2")
    best, _ = choose_on_train(train, table, variant=args.variant)
    if not args.no_valid:
        valid = load("valid", args.bp_cache, args.jobs, args.work)
        report("valid fold (scored once)", valid, accuracy(valid, [table[best](r) for r in valid]),
               accuracy(valid, [table["engine"](r) for r in valid]))
    if args.runtime_check:
        data = config.SHARED_DATA_DIR
        runtime_check((clips(data, "train", None) + clips(data, "valid", None))[::args.runtime_check], args.bp_cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
