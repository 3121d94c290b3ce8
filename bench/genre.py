"""Benchmark: the genre heads compared (musicnn, EfficientAT mn04, fusions), the fit rule's rates,
and what a blend costs.

Run:  .venv/bin/python bench/genre.py [--seed 42] [--skip-timing]
      (about 10 CPU-minutes the first time: every shared file's inputs are cached under
      data/interim/genre_windows/; then about 4 minutes)

Data: ../shared/data/gtzan (train and valid folds of the fault-filtered split; the test fold is
not there). Two protocols per model (models.heads.compare):

- ``valid``: regularisation, fusion weights and temperature chosen by 5-fold CV grouped by clip
  on the train fold alone; fitted on train; scored on the artist-disjoint valid fold. Honest, but
  small: its whole clips hold 6 genres (no pop; 1 hiphop, 3 reggae, 2 rock clips), so balanced
  accuracy and macro ROC-AUC are over the genres present.
- ``cv``: 5-fold CV grouped by clip over train + valid with the same choices, temperature
  cross-fitted. All ten genres, but GTZAN repeats artists across clips: optimistic.

Lengths are scored apart: ``clips`` = whole 30 s clips and 15 s classical excerpts (track level:
window log-probabilities averaged), ``snippets`` = the 2-3 s snippets (one short window each).
Per-genre recall and ROC-AUC follow the headline table. ``ECE (floor)``: the measured ECE, and
the ECE a perfectly calibrated model with the same confidences would show on that many tracks
(15 bins; at 70 tracks it is about 0.12, so the valid fold cannot show ECE <= 0.05).
``ms/30 s`` is one 30 s clip's blend (decode + network + head, no fit verdict), on one core,
median of 3; ``+fit`` adds the fit verdict and chart-genre tags (free for EfficientAT models: the
same pass). Then a 4-minute track: today's musicnn path (60 s, as the check page blended, and
whole) against the shipped models, whole.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.models import blend, heads, registry

LENGTHS = ("clips", "snippets")
CLIP = "gtzan/audio/rock/rock.00000.opus"
FOUR_MINUTES = [f"gtzan/audio/{g}/{g}.0000{i}.opus" for g, i in
                (("blues", 0), ("blues", 1), ("country", 2), ("disco", 2), ("jazz", 0), ("metal", 2), ("rock", 0), ("rock", 3))]


def one_core() -> None:
    """Pin this process to one CPU and TensorFlow to one thread (the issue's budget is per core)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def stub_model(candidate: heads.Candidate, rows: dict) -> blend.GenreModel:
    """The candidate's head shape with untrained weights: timings do not depend on the weights."""
    from tracklens.models import builders

    name = heads.REGISTRY_NAMES[candidate.name]
    spec = registry.spec(name)
    columns = [c for input_set, _ in candidate.parts for c in rows[input_set].columns]
    keras_model = getattr(builders, spec.factory)((len(columns),), 10)
    window_s = 10.0 if spec.input_kind in blend.EFFICIENTAT_KINDS else 3.0
    card = {"name": candidate.name, "genres": list(config.GTZAN_GENRES),
            "input": {"kind": spec.input_kind, "columns": columns, "shape": [len(columns)], "window_s": window_s,
                      "sample_rate": registry.sample_rate(spec.input_kind)},
            "calibration": {"temperature": 1.0, "aggregation": "mean_logprob"}}
    return blend.GenreModel(keras_model, card, config.MODELS_DIR)


def median_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm: graph tracing, weights loading
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timings(rows: dict) -> dict[str, tuple[float, float]]:
    clip = config.SHARED_DATA_DIR / CLIP
    out = {}
    for candidate in heads.CANDIDATES:
        model = stub_model(candidate, rows)
        alone = median_seconds(lambda: blend.predict_blend(model, clip, judge_fit=False))
        judged = median_seconds(lambda: blend.predict_blend(model, clip))
        out[candidate.name] = (1000 * alone, 1000 * judged)
        print(f"  {candidate.name}: {1000 * alone:.0f} ms per 30 s clip, {1000 * judged:.0f} ms with the fit verdict")
    return out


def four_minute_track(model: blend.GenreModel, *, max_seconds: float | None = None) -> None:
    """The check page's case: a decoded 4-minute track (8 GTZAN clips end to end), blended whole
    (or ``max_seconds`` of it, as the check page did), fit verdict included."""
    from tracklens.audio import AudioClip, load_audio

    parts = [load_audio(config.SHARED_DATA_DIR / p, sr=model.sample_rate).y for p in FOUR_MINUTES]
    y = np.concatenate(parts)
    clip = AudioClip(y=y, sr=model.sample_rate, path=None, source_sr=model.sample_rate, channels=1,
                     source_duration_s=len(y) / model.sample_rate)
    seconds = median_seconds(lambda: blend.predict_blend(model, clip, max_seconds=max_seconds), repeats=1)
    result = blend.predict_blend(model, clip, max_seconds=max_seconds)
    print(f"  {model.name} ({model.input_kind}): {seconds:.2f} s; {result.notes[-1]}")


def ece_floor(track: dict, length: str, *, seed: int, n_draws: int = 200) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many tracks
    (labels drawn from its own probabilities): below it, a measured ECE is noise."""
    from tracklens.models import evaluate

    rng = np.random.default_rng(seed)
    probs = track["probs"][track["length"] == length]
    draws = [np.array([rng.choice(probs.shape[1], p=row / row.sum()) for row in probs]) for _ in range(n_draws)]
    return float(np.mean([evaluate.expected_calibration_error(y, probs) for y in draws]))


def markdown(table: pd.DataFrame, timing: dict[str, tuple[float, float]]) -> str:
    """The README's table: one row per model, headline metrics for each protocol x length."""
    lines = ["| model | protocol | length | n | accuracy | balanced acc. | macro AUC | ECE (floor) | ms/30 s (+fit) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in table.itertuples():
        ms = timing.get(row.model)
        cost = f"{ms[0]:.0f} ({ms[1]:.0f})" if ms else ""
        lines.append(f"| {row.model} | {row.protocol} | {row.length} | {row.n} | {row.accuracy:.3f} | "
                     f"{row.balanced_accuracy:.3f} | {row.macro_roc_auc:.3f} | {row.ece:.3f} ({row.ece_floor:.3f}) | {cost} |")
    return "\n".join(lines)


def per_genre(table: pd.DataFrame, prefix: str) -> str:
    genres = list(config.GTZAN_GENRES)
    cols = [f"{prefix}{g}" for g in genres]
    shown = table[["model", "protocol", "length", *cols]].rename(columns=dict(zip(cols, genres)))
    return shown.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    results, rows = heads.compare_all(seed=args.seed)
    table = pd.DataFrame(heads.comparison(results))
    table["ece_floor"] = [ece_floor(r[protocol], length, seed=args.seed) for r in results
                          for protocol in ("valid", "cv") for length in LENGTHS]  # heads.comparison's row order
    timing = {}
    if not args.skip_timing:
        one_core()
        print("timings (one core):")
        timing = timings(rows)
        print("a 4-minute track, decoded, on one core:")
        today = stub_model(next(c for c in heads.CANDIDATES if c.name == "musicnn_linear"), rows)
        four_minute_track(today, max_seconds=60)  # what the check page blended before
        four_minute_track(today)
        four_minute_track(blend.load_default_model())
        four_minute_track(blend.load_fast_model())
    print(markdown(table, timing))
    print("\nper-genre recall:\n" + per_genre(table, "recall_"))
    print("\nper-genre ROC-AUC:\n" + per_genre(table, "roc_auc_"))
    best, why = heads.best_candidate(results)
    print(f"\nbest on whole clips: {why}")
    from tracklens.models import fit

    heads.fit_rule_rates(fit.RULE)


if __name__ == "__main__":
    main()
