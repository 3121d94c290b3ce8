"""Benchmark: the genre candidates compared on whole clips with their cost, the choice of the
shipped default, and "does not fit" measured as the open-set literature does.

Run:  nice .venv/bin/python bench/genre.py [--seed 42] [--skip-timing] [--plot docs/img/genre_accuracy_cost.png]
      (the first run caches every shared file's windows and 2 augmented copies under
      data/interim/genre_windows/: about 20 CPU-minutes; then about 10 minutes)

Data: ../shared/data/gtzan (train and valid folds of the fault-filtered, artist-disjoint split;
the test fold is not there and never used). Two protocols per model (models.heads.compare):

- ``valid``: regularisation and fusion weights chosen by 5-fold CV grouped by clip on the train
  fold alone; fitted on train; scored on the artist-disjoint valid fold (73 whole 30 s clips,
  8 classical 15 s excerpts, 37 snippets), each track's temperature fitted on the other valid
  tracks. Honest, but small, and the valid fold's clips are skewed (2 pop, 2 hiphop, 2 rock).
- ``cv``: 5-fold CV grouped by clip over train + valid with the same choices, temperature
  cross-fitted. All ten genres, but GTZAN repeats artists across clips: optimistic.

``clips`` = whole 30 s clips (22 kHz and 16 kHz copies): what users upload and what the default
is chosen on. ``ECE (floor)``: the measured ECE and the ECE a perfectly calibrated model with the
same confidences shows on that many tracks (labels drawn from its own probabilities, 200 draws):
below the floor a measured ECE is noise. ``CPU-s``: one 30 s clip's blend with the fit verdict
(decode + networks + head), process CPU time on one core, median of 3, all candidates in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.models import blend, kinds, registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # the model recipes (not installed)
import heads  # noqa: E402  (recipes/heads.py)

CLIP = "gtzan/audio/rock/rock.00000.opus"
DEFAULT_PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "genre_accuracy_cost.png"


def one_core() -> None:
    """Pin this process to one CPU and TensorFlow to one thread (the issue's budget is per core)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def stub_model(candidate: heads.Candidate, rows: dict) -> blend.GenreModel:
    """The candidate's head shape with untrained weights: timings do not depend on the weights."""
    from tracklens.models import builders

    spec = registry.spec(heads.REGISTRY_NAMES[candidate.name])
    columns = [c for input_set, _ in candidate.parts for c in rows[input_set].columns]
    keras_model = getattr(builders, spec.factory)((len(columns),), 10)
    kind = kinds.get(spec.input_kind)
    card = {"name": candidate.name, "genres": list(config.GTZAN_GENRES),
            "input": kind.card_input(columns, [len(columns)], kind.window_s),
            "calibration": {"temperature": 1.0, "aggregation": "mean_logprob"}}
    return blend.GenreModel(keras_model, card, config.MODELS_DIR)


def median_cpu_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm: graph tracing, weights loading
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def timings(rows: dict) -> dict[str, float]:
    """CPU-s per 30 s clip of each candidate's blend with the fit verdict (same shape, same time)."""
    clip = config.SHARED_DATA_DIR / CLIP
    out, by_shape = {}, {}
    for candidate in heads.CANDIDATES:
        shape = (heads.REGISTRY_NAMES[candidate.name], tuple(s for s, _ in candidate.parts))
        if shape not in by_shape:
            model = stub_model(candidate, rows)
            by_shape[shape] = median_cpu_seconds(lambda: blend.predict_blend(model, clip))
        out[candidate.name] = by_shape[shape]
        print(f"  {candidate.name}: {out[candidate.name]:.2f} CPU-s per 30 s clip (fit verdict included)")
    return out


def ece_floor(probs: np.ndarray, *, seed: int, n_draws: int = 200) -> float:
    """The ECE a perfectly calibrated model with these confidences would show on this many tracks
    (labels drawn from its own probabilities): below it, a measured ECE is noise."""
    from tracklens.models import evaluate

    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    draws = [(rng.random((len(probs), 1)) > cumulative).sum(axis=1).clip(max=probs.shape[1] - 1) for _ in range(n_draws)]
    return float(np.mean([evaluate.expected_calibration_error(y, probs) for y in draws]))


def headline(results: list[dict], costs: dict[str, float], *, seed: int) -> pd.DataFrame:
    """One row per candidate x protocol x length: accuracy +- SE, balanced accuracy, ECE and its floor, cost."""
    out = []
    for r in results:
        for protocol in ("valid", "cv"):
            track = r[protocol]
            for length in heads.LENGTHS:
                mask = track["length"] == length
                s = heads.scores(track, r["genres"], length=length)
                out.append({"model": r["name"], "protocol": protocol, "length": length, "n": s["n"],
                            "accuracy": s["accuracy"], "se": float(np.sqrt(s["accuracy"] * (1 - s["accuracy"]) / s["n"])),
                            "balanced_accuracy": s["balanced_accuracy"], "ece": s["ece"],
                            "ece_floor": ece_floor(track["probs"][mask], seed=seed), "cpu_s": costs.get(r["name"]),
                            **{k: v for k, v in s.items() if k.startswith("recall_")}})
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| model | protocol | length | n | accuracy ± SE | balanced acc. | ECE (floor) | CPU-s / 30 s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in table.itertuples():
        protocol = "grouped CV (optimistic)" if row.protocol == "cv" else "valid fold"
        cost = f"{row.cpu_s:.2f}" if row.cpu_s == row.cpu_s and row.cpu_s is not None else ""
        lines.append(f"| {row.model} | {protocol} | {row.length} | {row.n} | {row.accuracy:.3f} ± {row.se:.3f} | "
                     f"{row.balanced_accuracy:.3f} | {row.ece:.3f} ({row.ece_floor:.3f}) | {cost} |")
    return "\n".join(lines)


def per_genre(table: pd.DataFrame) -> str:
    genres = list(config.GTZAN_GENRES)
    cols = [f"recall_{g}" for g in genres]
    shown = table[["model", "protocol", *cols]].rename(columns=dict(zip(cols, genres)))
    lines = ["| model | protocol | " + " | ".join(genres) + " |", "| --- | --- |" + " ---: |" * len(genres)]
    for row in shown.itertuples(index=False):
        lines.append(f"| {row[0]} | {row[1]} | " + " | ".join("–" if v != v else f"{v:.2f}" for v in row[2:]) + " |")
    return "\n".join(lines)


def plot(table: pd.DataFrame, shipped: str, path: Path) -> None:
    """Accuracy on the valid fold's whole clips (+- 1 SE) against CPU-s per 30 s clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = table[(table["protocol"] == "valid") & (table["length"] == "clips")].copy()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    # candidates of one cost (the same networks) side by side, labels spread to stay readable
    clips["group"] = clips["cpu_s"].round(2)
    for _, group in clips.groupby("group"):
        group = group.sort_values("accuracy", ascending=False)
        label_y = None
        for k, row in enumerate(group.itertuples()):
            x = row.cpu_s + 0.004 * k
            colour = "tab:red" if row.model == shipped else "tab:blue"
            ax.errorbar(x, row.accuracy, yerr=row.se, fmt="o", color=colour, capsize=3, alpha=0.8)
            label_y = row.accuracy if label_y is None else min(row.accuracy, label_y - 0.012)
            ax.annotate(row.model + (" (shipped)" if row.model == shipped else ""), (x, row.accuracy),
                        xytext=(row.cpu_s + 0.035, label_y), fontsize=7, color=colour, va="center",
                        arrowprops={"arrowstyle": "-", "color": "lightgrey", "linewidth": 0.6})
    ax.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.text(0.49, ax.get_ylim()[0] + 0.005, "0.5 CPU-s budget", fontsize=7, color="grey", va="bottom", ha="right")
    ax.set_xlim(0, 0.55)
    ax.set_xlabel("CPU-s per 30 s clip (blend + fit verdict, one core)")
    ax.set_ylabel(f"accuracy, valid-fold whole clips (n={int(clips['n'].iloc[0])}) ± 1 SE")
    ax.set_title(f"Genre candidates: accuracy against cost (red: shipped default, {shipped})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--skip-timing", action="store_true", help="use models.heads.CPU_S_PER_30S instead of timing")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--quick", action="store_true", help="regularisation fixed (heads.QUICK_STRENGTHS), not chosen again")
    parser.add_argument("--results", type=Path, help="a pickle of heads.compare results to read instead of comparing")
    parser.add_argument("--costs", type=Path, help="a JSON of CPU-s per candidate (an earlier timing of this run) to read")
    parser.add_argument("--skip-fit", action="store_true", help="leave out the fit score's open-set measures")
    args = parser.parse_args()
    if args.results:
        import pickle

        results = pickle.loads(args.results.read_bytes())
        files = heads.shared_files()
        cached = heads.cache_all(files, progress=False)
        rows = {name: heads.input_rows(files, cached, name) for name in heads.INPUT_SETS}
    else:
        results, rows, _ = heads.compare_all(seed=args.seed, grid=heads.QUICK_STRENGTHS if args.quick else None)
    by_name = {c.name: c for c in heads.CANDIDATES}
    costs = {r["name"]: heads.candidate_cost(by_name[r["name"]]) for r in results}
    if args.costs:
        costs = json.loads(args.costs.read_text())
    elif not args.skip_timing:
        one_core()
        print("timings (one core):")
        costs = timings(rows)
        print(json.dumps(costs))
    table = headline(results, costs, seed=args.seed)
    print(markdown(table))
    print("\nper-genre recall, valid fold's whole clips and grouped CV's:\n"
          + per_genre(table[table["length"] == "clips"]))
    print("\ntemperature (artist-safe grouped CV) and the valid clips' ECE by how T was chosen:")
    for r in results:
        c = r["calibration"]
        print(f"  {r['name']}: T {c['temperature_artist_safe']:.2f} (train grouped CV: {c['temperature_train_grouped_cv']:.2f}); "
              + ", ".join(f"{k} {v:.3f}" for k, v in c["valid_clips_ece"].items()))
    for how in ({}, {"fast_only": True}):
        best, why = heads.best_candidate(results, costs=costs, **how)
        print(f"\nchoice ({'one pass' if how else 'all'}): {why}")
    best, _ = heads.best_candidate(results, costs=costs)
    plot(table, best["name"], args.plot)
    print(f"plot: {args.plot}")
    if args.skip_fit:
        return
    from tracklens.models import fit

    files = heads.shared_files()
    # the open-set scores of the shipped default's head: its input set and regularisation
    input_set = by_name[best["name"]].parts[0][0]
    strength = best["strengths"][0]
    for all_pairs in (False, True):
        held = heads.held_out_genre_ood(rows[input_set], files, strength=strength, seed=args.seed, all_pairs=all_pairs)
        if not all_pairs:
            print(held["pairs"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    heads.synthetic_ood(rows[input_set], files, strength=strength, seed=args.seed)
    heads.fit_rule_rates(fit.RULE)

if __name__ == "__main__":
    main()
