"""Benchmark: how well Spotify-style descriptors are estimated from audio features, on held-out tracks.

Run:  .venv/bin/python bench/descriptors.py [--seed 42]    (about 1 CPU-minute)

Re-runs the procedure ``make descriptors-model`` ships (``evaluate_all`` of recipes/descriptors.py)
on ../shared/data/fma/echonest_librosa_650.csv and prints, per descriptor:

- the final held-out split: 20 % of the 650 tracks drawn with the seed, never used for fitting or
  model choice; the models are fitted on the other 80 %. R² and MAE of predictions clipped to
  [0, 1] (± bootstrap sd over held-out rows) and the MAE of predicting the training mean;
- 5-fold x 5 repeats CV R² (± sd over folds) on the development rows, for ridge and the MLP;
- the same procedure on all 74 feature means (with the 30 CQT-based ones the shipped estimator
  leaves out).

Splits are by track, not by artist (the table has no artist column): possibly optimistic.
Last, it checks that the shipped ``models/descriptors/`` gives the same held-out figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tracklens import config
from tracklens.models import descriptors

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # the model recipes (not installed)
import descriptors as descriptors_recipe  # noqa: E402  (recipes/descriptors.py)


def print_table(results: dict, with_cqt: dict) -> None:
    print(f"{'descriptor':17s} {'model':5s} {'n':>4s} {'R2':>13s} {'MAE':>15s} {'base MAE':>8s}  "
          f"{'CV R2 ridge':>13s} {'CV R2 mlp':>13s}  {'74 cols: CV, held-out R2':>24s}  shipped")
    for name, result in results.items():
        held, cv = result["held_out"], result["cv"]
        print(f"{name:17s} {result['model']:5s} {held['n']:4d} {held['r2']:6.3f}±{held['r2_sd']:.3f} "
              f"{held['mae']:7.4f}±{held['mae_sd']:.4f} {held['baseline_mae']:8.4f}  "
              f"{cv['ridge']['r2']:6.3f}±{cv['ridge']['r2_sd']:.3f} {cv['mlp']['r2']:6.3f}±{cv['mlp']['r2_sd']:.3f}  "
              f"{descriptors_recipe.chosen_cv_r2(with_cqt[name]):17.3f}, {with_cqt[name]['held_out']['r2']:.3f}  "
              f"{'yes' if result['shipped'] else 'no'}")


def check_shipped(table, results: dict, *, seed: int) -> None:
    """The shipped JSON estimator must reproduce this run's held-out R² (same seed, same rows)."""
    estimator = descriptors.load_estimator()
    rows = descriptors_recipe.held_out_mask(len(table), seed=seed)
    predicted = estimator.predict(table.loc[rows, list(estimator.columns)].to_numpy(dtype=float))
    for name, values in predicted.items():
        labelled = table.loc[rows, name].notna().to_numpy()
        r2, _ = descriptors_recipe.r2_and_mae(table.loc[rows, name].to_numpy()[labelled], values[labelled])
        status = "same" if np.isclose(r2, results[name]["held_out"]["r2"], atol=1e-6) else "DIFFERENT: rebuild"
        print(f"shipped {name}: held-out R² {r2:.4f} ({status})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    args = parser.parse_args()
    table = descriptors_recipe.read_training_table(config.SHARED_DATA_DIR / descriptors.TRAINING_TABLE)
    results, with_cqt = descriptors_recipe.evaluate_all(table, seed=args.seed)
    print(f"Held-out: {descriptors_recipe.HELD_OUT_FRACTION:.0%} of {len(table)} tracks (seed {args.seed}); "
          f"CV: {descriptors_recipe.CV_SPLITS}-fold x {descriptors_recipe.CV_REPEATS} on the rest; by track, not artist.")
    print_table(results, with_cqt)
    check_shipped(table, results, seed=args.seed)


if __name__ == "__main__":
    main()
