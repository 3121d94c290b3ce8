"""Experiment: the expected-MIREX decision's calibration (issue 19, item 2; docs/key.md).

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data nice python bench/key_decision.py \
          --cache /tmp/keyfeat.pkl --jobs 2 [--valid]
      (the recipe's feature pickle; ~2-4 minutes of fits on 2 busy cores)

The engine names the key of highest expected MIREX weight, ``argmax(MIREX_CREDIT @ p)``
(``key_estimation.best_keys``), so the decision depends on how well the probabilities are
calibrated. Variants, each scored with the recipe's grouped 10-fold CV on the **train** fold alone
(5 shuffles, ``key_model.cv_splits``), all on the recipe's features (templates on all 11 blocks,
snippets at weight 0.5):

- ``T <t>``: the shipped model (L2 300), ``p ** (1 / t)`` renormalised before the expected-MIREX
  decision (t < 1 sharpens toward the most probable key, t > 1 leans on the partial credit);
  ``T 1`` is the shipped decision, the reference every gain is paired against;
- ``L2 <l2>``: the plain fit at another L2 (the recipe's grid chose 300 at its edge), expected MIREX;
- ``smooth <a>, L2 <l2>``: the fit against soft targets, share ``a`` of each clip's target moved
  from its key to the keys MIREX gives partial credit, in proportion to that credit
  (``fit_key_model(smoothing=a)``); ``credit, L2 <l2>``: the fit minimising
  ``-log sum_k MIREX_CREDIT[k, y] p_k`` (``credit_loss``). Each decided by expected MIREX and,
  ``(most probable)``, by argmax p (these fits already put the credit into p).

The variant of highest train CV MIREX is chosen (ties: higher exact, then earlier). Decision rule,
fixed before any valid number was looked at: score it on the valid fold (``--valid``, once,
fitted on the train fold) only if it beats ``T 1`` by more than one paired SE on train CV; ship it
only if its valid MIREX is then at least 0.693 (the shipped decision's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # the model recipes (not installed)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import key_model  # noqa: E402  (recipes/key_model.py)
import key_rerank  # noqa: E402  (bench/key_rerank.py: the CV table, the valid report)

from tracklens import config, key_estimation as ke  # noqa: E402

SHIPPED = key_rerank.SHIPPED
REFERENCE = "T 1"
TEMPERATURES = (0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
L2_GRID = (100.0, 300.0, 1000.0)
SMOOTHINGS = (0.25, 0.5)


def fits() -> dict[str, key_model.Choice]:
    """{name: the fit's Choice}: the plain fit at each L2 and the two decision-aware losses."""
    out = {}
    for l2 in L2_GRID:
        out[f"L2 {l2:g}"] = key_model.Choice(l2, SHIPPED.snippet_weight, SHIPPED.feature_set)
        for a in SMOOTHINGS:
            out[f"smooth {a:g}, L2 {l2:g}"] = key_model.Choice(l2, SHIPPED.snippet_weight, SHIPPED.feature_set,
                                                               smoothing=a)
        out[f"credit, L2 {l2:g}"] = key_model.Choice(l2, SHIPPED.snippet_weight, SHIPPED.feature_set,
                                                     credit_loss=True)
    return out


FITS = fits()
SHIPPED_FIT = f"L2 {SHIPPED.l2:g}"
# {variant: (fit name, decision)}; decision: a temperature for the expected-MIREX decision, None for argmax p
VARIANTS = {f"T {t:g}": (SHIPPED_FIT, t) for t in TEMPERATURES}
VARIANTS.update({name: (name, 1.0) for name in FITS if name.startswith("L2") and name != SHIPPED_FIT})
VARIANTS.update({v: spec for name in FITS if not name.startswith("L2")
                 for v, spec in ((name, (name, 1.0)), (f"{name} (most probable)", (name, None)))})


def decide(p: np.ndarray, temperature: float | None) -> list[tuple[int, int]]:
    """The key named for each row of ``p`` [n, 24]: argmax of the expected MIREX weight under
    ``p ** (1 / temperature)`` renormalised, or the most probable key (``temperature`` None)."""
    if temperature is None:
        best = p.argmax(axis=1)
    else:
        q = np.exp(np.log(p + 1e-300) / temperature)
        q /= q.sum(axis=1, keepdims=True)
        best = (q @ ke.MIREX_CREDIT.T).argmax(axis=1)
    return [ke._key_of(int(b)) for b in best]


def probabilities(model: ke.KeyModel, rows: list[dict]) -> np.ndarray:
    return np.array([model.probabilities(r["features"]) for r in rows])


def fold_keys(train, train_snippets, held, seed) -> dict[str, list[tuple[int, int]]]:
    p = {name: probabilities(key_model.fit(train, train_snippets, c), held) for name, c in FITS.items()}
    return {v: decide(p[fit_name], t) for v, (fit_name, t) in VARIANTS.items()}


def cross_validate(full, snippets, *, jobs: int, seeds=range(5), n_splits: int = 10) -> dict[str, np.ndarray]:
    """{variant: [len(seeds), len(full)] per-clip MIREX} of the recipe's grouped CV."""
    return key_rerank.grouped_cv(full, snippets, fold_keys, VARIANTS, jobs=jobs, seeds=seeds, n_splits=n_splits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="recipes/key_model.py's feature pickle")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=5, help="CV shuffles")
    parser.add_argument("--valid", action="store_true",
                        help="score the train-CV choice once on the valid fold (only if it beats T 1 by > 1 SE)")
    args = parser.parse_args(argv)
    rows = key_model.load_rows(config.SHARED_DATA_DIR, jobs=args.jobs, cache=args.cache)
    train, train_snippets = key_model.split(rows, ("train",))
    valid, _ = key_model.split(rows, ("valid",))
    print(f"train: {len(train)} full clips + {len(train_snippets)} snippets; valid: {len(valid)} full clips")

    per_clip = cross_validate(train, train_snippets, jobs=args.jobs, seeds=range(args.seeds))
    print(f"\ntrain fold, grouped 10-fold CV (mean of {args.seeds} shuffles; recipes/key_model.py's folds); "
          f"gain paired against the shipped decision ({REFERENCE}: L2 300, expected MIREX):")
    chosen, qualifies = key_rerank.cv_table(per_clip, list(VARIANTS), REFERENCE)

    if args.valid:
        if not qualifies:
            print("valid fold not scored: the train-CV choice does not beat the shipped decision by more than one SE")
            return 0
        print("\nvalid fold, scored once (fitted on the train fold alone):")
        ref_p = probabilities(ke.KEY_MODEL_TRAIN_ONLY, valid)
        ref_keys = decide(ref_p, 1.0)
        ref = key_rerank.report_valid("KEY_MODEL_TRAIN_ONLY, expected MIREX", ref_keys, valid, None)
        fit_name, t = VARIANTS[chosen]
        model = (ke.KEY_MODEL_TRAIN_ONLY if fit_name == SHIPPED_FIT
                 else key_model.fit(train, train_snippets, FITS[fit_name]))
        keys = decide(probabilities(model, valid), t)
        key_rerank.report_valid(f"chosen: {chosen}", keys, valid, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
