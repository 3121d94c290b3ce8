"""Fit and score the learned key estimator (tracklens.key_estimation) on the GTZAN key annotations.

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/key_fit.py [--jobs 2] [--cache F.pkl]
      (~2 CPU-minutes: one STFT chroma and one CQT per clip; the fits take seconds)

1. Features of every keyed clip with audio: the **train** fold's full 30 s clips (108) and 2-3 s
   snippets (131; weighted below a full clip), the **valid** fold's full clips (61; snippets are
   not scored, as in bench/tempo_key.py).
2. Train-fold cross-validation (10 folds, 5 shuffles) of each candidate (templates' L2, snippet
   weight), grouped by blocks of 10 consecutive clip numbers per genre: the data names no artists,
   and GTZAN's clips of one artist tend to be neighbours, so this keeps most of an artist's clips
   on one side. The profile method (the engine's key) is scored beside it.
3. The candidate with the best cross-validated MIREX score is refitted on the whole train fold;
   its constants are printed (paste into key_estimation.KEY_MODEL), then it is scored **once**
   on the valid fold with a paired bootstrap against the profile method, overall and per genre.
"""

from __future__ import annotations

import argparse
import csv
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

from tracklens import audio, config, features, key_estimation as ke

FULL = ("full30s", "full30s_16k")
SNIPPET = "snippet2to3s"


def clips(data: Path) -> list[dict]:
    notes = {r["clip"]: r for r in csv.DictReader(open(data / "gtzan/annotations/tempo_key.csv"))}
    rows = []
    for r in csv.DictReader(open(data / "gtzan/manifest.csv")):
        note = notes.get(r["clip"])
        if not note or not note["key"] or note["fold"] not in ("train", "valid"):
            continue
        if r["kind"] in FULL or (r["kind"] == SNIPPET and note["fold"] == "train"):
            path = Path(r["path"])
            path = data / path.relative_to("shared/data") if path.parts[:2] == ("shared", "data") else data / path
            key, mode = features.parse_key(note["key"])
            rows.append({"clip": r["clip"], "genre": r["genre"], "fold": note["fold"], "kind": r["kind"],
                         "path": str(path), "key": (key, mode), "label": key + ke.N_PITCH * (1 - mode)})
    return rows


def extract(row: dict) -> dict:
    warnings.filterwarnings("ignore", message="n_fft=")  # librosa on the 2-3 s snippets' low octaves
    clip = audio.load_audio(row["path"], sr=config.SAMPLE_RATE)
    a = features.analyze(clip.y, sr=clip.sr)
    return {**row, "features": ke.key_features(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning),
            "profile_key": features.estimate_key(a.chroma)}


def group_of(row: dict) -> str:
    """Proxy for the artist: genre and block of 10 consecutive clip numbers."""
    genre, number = row["clip"].split(".")
    return f"{genre}.{int(number) // 10}"


def mirex(keys, rows) -> np.ndarray:
    return np.array([features.mirex_key_score(k, r["key"]) for k, r in zip(keys, rows)])


def model_keys(model: ke.KeyModel, rows) -> list[tuple[int, int]]:
    return [ke.best_keys(model.probabilities(r["features"]))[:2] for r in rows]


def cross_validate(full, snippets, *, l2, snippet_weight, n_splits=10, seeds=range(5)) -> tuple[float, float]:
    groups = np.array([group_of(r) for r in full])
    snippet_groups = np.array([group_of(r) for r in snippets])
    scores, exact = [], []
    for seed in seeds:
        unique = np.unique(groups)
        np.random.default_rng(seed).shuffle(unique)
        fold = dict(zip(unique, np.arange(len(unique)) % n_splits))
        keys = [None] * len(full)
        for i in range(n_splits):
            held = {g for g in unique if fold[g] == i}
            train = [r for r, g in zip(full, groups) if g not in held]
            extra = [r for r, g in zip(snippets, snippet_groups) if g not in held] if snippet_weight else []
            fitted = train + extra
            model = ke.fit_key_model([r["features"] for r in fitted], np.array([r["label"] for r in fitted]),
                                     l2=l2, weights=np.r_[np.ones(len(train)), np.full(len(extra), snippet_weight)])
            test = [j for j, g in enumerate(groups) if g in held]
            for j, k in zip(test, model_keys(model, [full[j] for j in test])):
                keys[j] = k
        scores.append(mirex(keys, full).mean())
        exact.append(np.mean([k == r["key"] for k, r in zip(keys, full)]))
    return float(np.mean(scores)), float(np.mean(exact))


def bootstrap(a: np.ndarray, b: np.ndarray | None = None, n: int = 10000) -> tuple[float, float]:
    idx = np.random.default_rng(0).integers(0, len(a), (n, len(a)))
    d = a[idx].mean(axis=1) - (0 if b is None else b[idx].mean(axis=1))
    return tuple(np.percentile(d, [2.5, 97.5]))


def main(argv=None) -> int:
    from joblib import Parallel, delayed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="pickle of the extracted features (reused if present)")
    args = parser.parse_args(argv)
    if args.cache and args.cache.exists():
        rows = pickle.load(open(args.cache, "rb"))
    else:
        todo = clips(config.SHARED_DATA_DIR)
        if not todo:
            print(f"no keyed clips under {config.SHARED_DATA_DIR}", file=sys.stderr)
            return 2
        rows = Parallel(n_jobs=args.jobs)(delayed(extract)(r) for r in todo)
        if args.cache:
            pickle.dump(rows, open(args.cache, "wb"))
    full = [r for r in rows if r["fold"] == "train" and r["kind"] in FULL]
    snippets = [r for r in rows if r["fold"] == "train" and r["kind"] == SNIPPET]
    valid = [r for r in rows if r["fold"] == "valid"]
    print(f"train: {len(full)} full clips + {len(snippets)} snippets; valid: {len(valid)} full clips")

    base = mirex([r["profile_key"] for r in full], full).mean()
    print(f"\ntrain fold, profile method (engine's key; its 3 constants were chosen on this fold): MIREX {base:.3f}")
    print("train-fold grouped 10-fold CV (mean of 5 shuffles), learned estimator:")
    print(f"{'L2':>6s} {'snippet w':>9s} {'MIREX':>6s} {'exact':>6s}")
    results = []
    for l2 in (30.0, 100.0, 300.0):
        for snippet_weight in (0.0, 0.5):
            score, exact = cross_validate(full, snippets, l2=l2, snippet_weight=snippet_weight)
            results.append((score, exact, l2, snippet_weight))
            print(f"{l2:6.0f} {snippet_weight:9.1f} {score:6.3f} {exact:6.3f}", flush=True)
    score, exact, l2, snippet_weight = max(results)
    print(f"chosen: L2 {l2:g}, snippet weight {snippet_weight:g} (CV MIREX {score:.3f}, exact {exact:.3f})")

    train = full + (snippets if snippet_weight else [])
    model = ke.fit_key_model([r["features"] for r in train], np.array([r["label"] for r in train]), l2=l2,
                             weights=np.r_[np.ones(len(full)), np.full(len(train) - len(full), snippet_weight)])
    np.set_printoptions(precision=4, suppress=True, linewidth=110)
    print(f"\nKEY_MODEL = KeyModel(profile_weight={model.profile_weight:.4f}, minor_bias={model.minor_bias:.4f}, "
          f"templates=\n{np.round(model.templates, 4).tolist()})")
    shipped = ke.KEY_MODEL.vector if hasattr(ke, "KEY_MODEL") else None
    if shipped is not None:
        print(f"max |refit - shipped KEY_MODEL| = {np.abs(model.vector - shipped).max():.2e}")

    print("\nvalid fold (scored once), shipped model vs profile method:")
    ours_model = ke.KEY_MODEL if shipped is not None else model
    learned_keys, profile_keys = model_keys(ours_model, valid), [r["profile_key"] for r in valid]
    ours, theirs = mirex(learned_keys, valid), mirex(profile_keys, valid)
    for name, keys, s in (("learned", learned_keys, ours), ("profile", profile_keys, theirs)):
        lo, hi = bootstrap(s)
        ex = np.mean([k == r["key"] for k, r in zip(keys, valid)])
        print(f"  {name:8s} n={len(valid)} exact {ex:.3f}  MIREX {s.mean():.3f} (95 % bootstrap CI {lo:.3f}-{hi:.3f}; "
              f"SE {s.std(ddof=1) / np.sqrt(len(s)):.3f})")
    lo, hi = bootstrap(ours, theirs)
    print(f"  difference {ours.mean() - theirs.mean():+.3f} (paired bootstrap 95 % CI {lo:+.3f} to {hi:+.3f}); "
          f"{int((ours > theirs).sum())} clips better, {int((ours < theirs).sum())} worse")
    print("  per genre (n, MIREX learned / profile):")
    for genre in sorted({r["genre"] for r in valid}):
        m = np.array([r["genre"] == genre for r in valid])
        print(f"    {genre:9s} {m.sum():2d}  {ours[m].mean():.2f} / {theirs[m].mean():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
