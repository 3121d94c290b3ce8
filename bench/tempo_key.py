"""Benchmark: tempo and key against human annotations, tracklens beside plain librosa.

Run:  PYTHONPATH=.. python bench/tempo_key.py [--fold valid] [--jobs 2] [--limit N]
      (~4 CPU-minutes for the 73 valid clips: plain librosa's beat tracker and CQT are most of it)

Data: ``$TRACKLENS_SHARED_DATA/gtzan``: annotations/tempo_key.csv (GTZAN-Rhythm tempo,
Kraft/Lerch/Zoelzer keys; train and valid folds only, the test fold is kept out) and the audio
in manifest.csv. Full 30 s clips and 15 s excerpts are scored; the 2-3 s snippets are not (too
short for a tempo). A clip whose key is empty ("no single key") counts for tempo only.

Systems, each on the same decoded signal (22 050 Hz mono, as the engine decodes):

- ``tracklens``: the engine's ``Analysis.tempo_estimate`` (``bpm`` column) and ``Analysis.key``
  (FEATURE_VERSION 5: :mod:`tracklens.key_estimation`'s learned model ``KEY_MODEL``, refit on the
  train + valid folds by recipes/key_model.py: **in-sample** on either fold);
- ``key train-only``: the same recipe fitted on the train fold alone (``KEY_MODEL_TRAIN_ONLY``):
  the held-out key score on the valid fold (docs/key.md); key only;
- ``profile key v3``: the engine's key before (FEATURE_VERSION 3): Albrecht-Shanahan/Krumhansl
  profiles with a minor bias on the mean chroma_stft (``features.key_estimate``); key only;
- ``tracklens v2``: what the card showed before (FEATURE_VERSION 2): librosa.feature.tempo of
  the mean-over-bands onset envelope, Krumhansl-Kessler profiles on chroma_stft;
- ``librosa``: plain ``librosa.beat.beat_track(y=, sr=)`` and ``chroma_cqt`` + Krumhansl-Kessler.

Scores: Acc1 (within 4 % of the annotation), Acc2 (also at x2, x3, 1/2, 1/3), key exact, and
MIREX weighted (same key 1.0, a fifth up in the same mode 0.5, relative 0.3, parallel 0.2),
overall and per genre. ``--fold train`` scores the fold the engine's choices were fitted on.
Tempo scores come with bootstrap 95 % intervals over clips (and of each system minus tracklens).
bench/tempo_learned.py scores the learned candidate choice beside the engine (docs/tempo.md).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from tracklens import audio, config, features, key_estimation

KINDS = ("full30s", "full30s_16k", "excerpt15s")


def clips(data: Path, fold: str, limit: int | None) -> list[dict]:
    notes = {r["clip"]: r for r in csv.DictReader(open(data / "gtzan/annotations/tempo_key.csv"))}
    rows = []
    for r in csv.DictReader(open(data / "gtzan/manifest.csv")):
        note = notes.get(r["clip"])
        if r["kind"] in KINDS and note and note["fold"] == fold and note["tempo_bpm"]:
            path = Path(r["path"])
            path = data / path.relative_to("shared/data") if path.parts[:2] == ("shared", "data") else data / path
            rows.append({"clip": r["clip"], "genre": r["genre"], "path": str(path),
                         "tempo": float(note["tempo_bpm"]), "key": features.parse_key(note["key"])})
    return rows[:limit] if limit else rows


def _krumhansl(chroma_mean: np.ndarray) -> tuple[int, int]:
    return features.estimate_key(chroma_mean, profiles="krumhansl", minor_bias=0.0)


def measure(row: dict) -> dict:
    """Every system's tempo and key for one clip, with the CPU seconds each took."""
    import librosa

    clip = audio.load_audio(row["path"], sr=config.SAMPLE_RATE)
    y, sr = clip.y, clip.sr
    out = dict(row)
    t0 = time.process_time()
    a = features.analyze(y, sr=sr)
    tempo, _ = a.tempo_estimate, a.chroma
    t_key = time.process_time()
    key = a.key
    out["tracklens"] = {"tempo": tempo.bpm, "key": (key.key, key.mode)}
    out["tracklens_cpu"] = time.process_time() - t0
    out["key_cpu"] = time.process_time() - t_key  # the learned key: its CQT, basic-pitch's network and the 24 scores (chroma apart)
    f = key_estimation.key_features(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
    train_only = key_estimation.best_keys(key_estimation.KEY_MODEL_TRAIN_ONLY.probabilities(f))[:2] if f \
        else (features.NO_KEY.key, features.NO_KEY.mode)
    out["key train-only"] = {"tempo": float("nan"), "key": train_only}
    out["profile key v3"] = {"tempo": float("nan"), "key": features.estimate_key(a.chroma)}
    out["tracklens v2"] = {"tempo": a.tempo, "key": _krumhansl(a.chroma.mean(axis=1))}
    t0 = time.process_time()
    bpm, _ = librosa.beat.beat_track(y=y, sr=sr)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr)
    out["librosa"] = {"tempo": float(np.atleast_1d(bpm)[0]), "key": _krumhansl(chroma.mean(axis=1))}
    out["librosa_cpu"] = time.process_time() - t0
    return out


SYSTEMS = ("tracklens", "key train-only", "profile key v3", "tracklens v2", "librosa")
KEY_ONLY = ("key train-only", "profile key v3")  # key methods: no tempo of their own


def score(results: list[dict], system: str) -> dict:
    acc = np.array([features.tempo_scores(r[system]["tempo"], r["tempo"]) if np.isfinite(r[system]["tempo"])
                    else (np.nan, np.nan) for r in results], dtype=float)
    keyed = [r for r in results if r["key"] is not None]
    exact = np.array([r[system]["key"] == r["key"] for r in keyed], dtype=float)
    mirex = np.array([features.mirex_key_score(r[system]["key"], r["key"]) for r in keyed])
    return {"n": len(results), "acc1": acc[:, 0].mean(), "acc2": acc[:, 1].mean(), "n_key": len(keyed),
            "key_exact": exact.mean() if keyed else np.nan, "mirex": mirex.mean() if keyed else np.nan}


def print_table(results: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'system':14s} {'n':>3s} {'Acc1':>6s} {'Acc2':>6s} {'n key':>5s} {'exact':>6s} {'MIREX':>6s}")
    for system in SYSTEMS:
        s = score(results, system)
        print(f"{system:14s} {s['n']:3d} {s['acc1']:6.3f} {s['acc2']:6.3f} {s['n_key']:5d} "
              f"{s['key_exact']:6.3f} {s['mirex']:6.3f}")


def tempo_intervals(results: list[dict], system: str, draws: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap 95 % intervals (resampling clips) of ``system``'s Acc1 and Acc2: [[low, high], ...]
    and the same for its difference to ``tracklens`` on the same resampled clips."""
    rng = np.random.default_rng(0)
    acc = np.array([features.tempo_scores(r[system]["tempo"], r["tempo"]) for r in results], dtype=float)
    ours = np.array([features.tempo_scores(r["tracklens"]["tempo"], r["tempo"]) for r in results], dtype=float)
    idx = rng.integers(0, len(results), (draws, len(results)))
    return (np.percentile(acc[idx].mean(axis=1), [2.5, 97.5], axis=0).T,
            np.percentile((acc - ours)[idx].mean(axis=1), [2.5, 97.5], axis=0).T)


def main(argv=None) -> int:
    from joblib import Parallel, delayed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fold", default="valid", choices=("valid", "train"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N clips (quick runs)")
    parser.add_argument("--per-genre", action="store_true", help="also print one table per genre")
    args = parser.parse_args(argv)
    data = config.SHARED_DATA_DIR
    rows = clips(data, args.fold, args.limit)
    if not rows:
        print(f"no annotated clips of the {args.fold} fold under {data}", file=sys.stderr)
        return 2
    results = Parallel(n_jobs=args.jobs)(delayed(measure)(r) for r in rows)
    print_table(results, f"{args.fold} fold, {len(results)} clips (GTZAN full 30 s clips and 15 s excerpts)")
    print("(tracklens' key: the shipped model, refit on train + valid, so in-sample here; key train-only: held out "
          "on the valid fold)")
    print("\ntempo, bootstrap 95 % intervals over clips (Acc1; Acc2; and minus tracklens on the same clips):")
    for system in SYSTEMS:
        if system in KEY_ONLY:
            continue
        ci, diff = tempo_intervals(results, system)
        print(f"  {system:14s} Acc1 {ci[0, 0]:.3f}-{ci[0, 1]:.3f}  Acc2 {ci[1, 0]:.3f}-{ci[1, 1]:.3f}"
              + ("" if system == "tracklens" else
                 f"  diff Acc1 {diff[0, 0]:+.3f}..{diff[0, 1]:+.3f}  Acc2 {diff[1, 0]:+.3f}..{diff[1, 1]:+.3f}"))
    print(f"\nCPU s per clip (tempo + key after decoding; mean): tracklens "
          f"{np.mean([r['tracklens_cpu'] for r in results]):.3f} (the whole analysis of tempo and key), "
          f"plain librosa {np.mean([r['librosa_cpu'] for r in results]):.3f}, "
          f"the learned key's part of tracklens (CQT + model) {np.mean([r['key_cpu'] for r in results]):.3f}")
    if args.per_genre:
        for genre in sorted({r["genre"] for r in results}):
            print_table([r for r in results if r["genre"] == genre], genre)
    else:
        print("\nper genre (tracklens Acc1 / Acc2 / MIREX; librosa Acc1 / Acc2 / MIREX; key train-only / profile key v3 "
              "MIREX):")
        for genre in sorted({r["genre"] for r in results}):
            sub = [r for r in results if r["genre"] == genre]
            ours, plain = score(sub, "tracklens"), score(sub, "librosa")
            train_only, profile = score(sub, "key train-only"), score(sub, "profile key v3")
            print(f"  {genre:10s} n={len(sub):2d}  {ours['acc1']:.2f} / {ours['acc2']:.2f} / {ours['mirex']:.2f}   "
                  f"{plain['acc1']:.2f} / {plain['acc2']:.2f} / {plain['mirex']:.2f}   {train_only['mirex']:.2f} / {profile['mirex']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
