"""Measure the learned key estimator (tracklens.key_estimation) on the GTZAN key annotations.

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/key_fit.py [--jobs 2] [--cache F.pkl]
      (~1 CPU-minute of features, ~3 minutes of fits; the cache is recipes/key_model.py's)

The model is built by recipes/key_model.py (``make key-model``): its choices (L2, snippet weight,
feature set) by grouped cross-validation on the **train** fold, then ``KEY_MODEL`` (shipped) refit
on train + valid and ``KEY_MODEL_TRAIN_ONLY`` fitted on train alone. This measures, with the
recipe's own functions:

1. the train-fold CV table of the candidates (the recipe's choice), the profile method beside it;
2. the train-only fit, refitted here and compared with ``KEY_MODEL_TRAIN_ONLY``, scored **once**
   on the valid fold (61 full clips; snippets are not scored, as in bench/tempo_key.py) with
   bootstrap intervals and a paired bootstrap against the profile method, overall and per genre:
   the honest number of the shipped recipe;
3. the shipped ``KEY_MODEL`` on the same clips, labelled in-sample (it was fitted on them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # the model recipes (not installed)
import key_model  # noqa: E402  (recipes/key_model.py)

from tracklens import config, key_estimation as ke  # noqa: E402


def bootstrap(a: np.ndarray, b: np.ndarray | None = None, n: int = 10000) -> tuple[float, float]:
    idx = np.random.default_rng(0).integers(0, len(a), (n, len(a)))
    d = a[idx].mean(axis=1) - (0 if b is None else b[idx].mean(axis=1))
    return tuple(np.percentile(d, [2.5, 97.5]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="pickle of the extracted features (reused if present)")
    args = parser.parse_args(argv)
    rows = key_model.load_rows(config.SHARED_DATA_DIR, jobs=args.jobs, cache=args.cache)
    if not rows:
        print(f"no keyed clips under {config.SHARED_DATA_DIR}", file=sys.stderr)
        return 2
    full, snippets = key_model.split(rows, ("train",))
    valid, _ = key_model.split(rows, ("valid",))
    mirex = key_model.mirex
    print(f"train: {len(full)} full clips + {len(snippets)} snippets; valid: {len(valid)} full clips")

    base = mirex([r["profile_key"] for r in full], full).mean()
    print(f"\ntrain fold, profile method (engine's key until FEATURE_VERSION 3; its 3 constants were chosen on "
          f"this fold): MIREX {base:.3f}")
    print("train-fold grouped 10-fold CV (mean of 5 shuffles), learned estimator:")
    choice, results = key_model.choose(full, snippets, jobs=args.jobs)
    score, exact, _ = next(r for r in results if r[2] == choice)
    print(f"chosen: {choice} (CV MIREX {score:.3f}, exact {exact:.3f})")

    model = key_model.fit(full, snippets, choice)
    print(f"max |train-only refit - KEY_MODEL_TRAIN_ONLY| = {np.abs(model.vector - ke.KEY_MODEL_TRAIN_ONLY.vector).max():.2e}")

    print("\nvalid fold (scored once), train-only fit (KEY_MODEL_TRAIN_ONLY) vs profile method:")
    learned_keys, profile_keys = key_model.model_keys(ke.KEY_MODEL_TRAIN_ONLY, valid), [r["profile_key"] for r in valid]
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

    print("\nshipped KEY_MODEL (refit on train + valid), in-sample on both folds (not a held-out score):")
    for fold, scored in (("train", full), ("valid", valid)):
        keys = key_model.model_keys(ke.KEY_MODEL, scored)
        print(f"  {fold} fold full clips (in-sample): MIREX {mirex(keys, scored).mean():.3f}, "
              f"exact {np.mean([k == r['key'] for k, r in zip(keys, scored)]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
