"""The shipped key model (``key_estimation.KEY_MODEL``): choices made on the train fold alone,
weights refit on train + valid, as the shipped genre models are (recipes/heads.py, table_model.py).

Run:  make key-model
      (PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python recipes/key_model.py [--jobs 2] [--cache F.pkl];
      ~5 CPU-minutes of features (a chroma_stft, a CQT and basic-pitch's network per clip), ~6 minutes of fits)

1. Features of every keyed clip with audio in the GTZAN train and valid folds
   (gtzan/annotations/tempo_key.csv; the test fold is kept out of ../shared/data): full 30 s clips
   and 2-3 s snippets (weighted below a full clip).
2. The choices: templates' L2, snippet weight and feature set (which profile blocks the templates
   read, :data:`FEATURE_SETS`), by grouped 10-fold cross-validation on the **train** fold only
   (5 shuffles; groups: blocks of 10 consecutive clip numbers per genre, since the data names no
   artists and GTZAN's clips of one artist tend to be neighbours). Highest CV MIREX wins, each
   clip's key named as the engine names it (``key_estimation.best_keys``: the key of highest
   expected MIREX weight, bench/key_rerank.py).
3. Two fits with those choices, printed as source to paste into key_estimation.py:
   ``KEY_MODEL_TRAIN_ONLY`` (train fold only: what bench/key_fit.py scores on the valid fold,
   the honest number) and ``KEY_MODEL`` (train + valid: what the engine ships; the kept-out test
   fold judges it). Each is compared with the module's constant of the same name, and scored
   on each fold **in-sample** (a sanity check, not a measure of accuracy).

The measurement (train CV table, the train-only fit's valid score with bootstrap intervals, per
genre) is bench/key_fit.py, which imports this file.
"""

from __future__ import annotations

import argparse
import csv
import pickle
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracklens import audio, config, features, key_estimation as ke

FULL = ("full30s", "full30s_16k")
SNIPPET = "snippet2to3s"
FOLDS = ("train", "valid")
# Which of KeyFeatures.blocks the templates read (the others are zeroed: their weights stay 0 under
# L2). The profile correlation (on basic-pitch's note_sq profile since FEATURE_VERSION 6) and the
# minor bias are always in.
FEATURE_SETS = {
    "profile": (),                                   # no templates: profile + minor bias
    "chroma": (0,),                                  # the mean chroma_stft only (no CQT needed)
    "cqt": tuple(range(1, 1 + ke.CQT_OCTAVES)),      # the CQT octaves C2..C6 only
    "chroma+cqt": tuple(range(1 + ke.CQT_OCTAVES)),  # both
    # both and basic-pitch's registers above its note threshold and its bass line (ke.BP_BLOCKS):
    # the best of 384 candidates in bench/key_basic_pitch.py's train-fold CV (docs/key.md)
    "chroma+cqt+bands_thr+bass": tuple(range(ke.N_BLOCKS)),
}
L2_STRENGTHS = (30.0, 100.0, 300.0)
SNIPPET_WEIGHTS = (0.0, 0.5)


@dataclass(frozen=True)
class Choice:
    l2: float
    snippet_weight: float
    feature_set: str
    smoothing: float = 0.0  # decision-aware fits (ke.fit_key_model; bench/key_decision.py)
    credit_loss: bool = False

    def __str__(self) -> str:
        loss = (f", label smoothing {self.smoothing:g}" if self.smoothing else "") + \
            (", expected-credit loss" if self.credit_loss else "")
        return f"L2 {self.l2:g}, snippet weight {self.snippet_weight:g}, feature set {self.feature_set}{loss}"


def clips(data: Path) -> list[dict]:
    """Every keyed train/valid clip with audio: full clips and snippets."""
    notes = {r["clip"]: r for r in csv.DictReader(open(data / "gtzan/annotations/tempo_key.csv"))}
    rows = []
    for r in csv.DictReader(open(data / "gtzan/manifest.csv")):
        note = notes.get(r["clip"])
        if not note or not note["key"] or note["fold"] not in FOLDS or r["kind"] not in (*FULL, SNIPPET):
            continue
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
    return {**row, "features": ke.key_features(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning,
                                                posteriors=a.pitch_posteriors),
            "profile_key": features.estimate_key(a.chroma)}


def load_rows(data: Path, *, jobs: int = 1, cache: Path | None = None) -> list[dict]:
    """:func:`extract` of every clip of :func:`clips`; ``cache``: a pickle of the rows, reused
    for the clips it holds (and updated with the others)."""
    from joblib import Parallel, delayed

    todo = clips(data)
    done = {(r["path"], r["kind"]): r for r in (pickle.load(open(cache, "rb")) if cache and cache.exists() else [])}
    missing = [r for r in todo if (r["path"], r["kind"]) not in done]
    if missing:
        for r in Parallel(n_jobs=jobs)(delayed(extract)(r) for r in missing):
            done[r["path"], r["kind"]] = r
        if cache:
            pickle.dump(list(done.values()), open(cache, "wb"))
    return [done[r["path"], r["kind"]] for r in todo]


def split(rows: list[dict], folds: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """(full clips, snippets) of ``folds``."""
    return ([r for r in rows if r["fold"] in folds and r["kind"] in FULL],
            [r for r in rows if r["fold"] in folds and r["kind"] == SNIPPET])


def group_of(row: dict) -> str:
    """Proxy for the artist: genre and block of 10 consecutive clip numbers."""
    genre, number = row["clip"].split(".")
    return f"{genre}.{int(number) // 10}"


def mirex(keys, rows) -> np.ndarray:
    return np.array([features.mirex_key_score(k, r["key"]) for k, r in zip(keys, rows)])


def model_keys(model: ke.KeyModel, rows) -> list[tuple[int, int]]:
    return [ke.best_keys(model.probabilities(r["features"]))[:2] for r in rows]


def _with_blocks(f: ke.KeyFeatures, keep: tuple[int, ...]) -> ke.KeyFeatures:
    blocks = np.zeros_like(f.blocks)
    blocks[list(keep)] = f.blocks[list(keep)]
    return ke.KeyFeatures(f.profile, blocks)


def fit(full: list[dict], snippets: list[dict], choice: Choice) -> ke.KeyModel:
    """The model fitted on ``full`` clips (weight 1) and ``snippets`` (``choice.snippet_weight``;
    left out at 0) with ``choice``'s L2 and feature set."""
    extra = snippets if choice.snippet_weight else []
    rows = full + extra
    keep = FEATURE_SETS[choice.feature_set]
    return ke.fit_key_model([_with_blocks(r["features"], keep) for r in rows], np.array([r["label"] for r in rows]),
                            l2=choice.l2, weights=np.r_[np.ones(len(full)), np.full(len(extra), choice.snippet_weight)],
                            smoothing=choice.smoothing, credit_loss=choice.credit_loss)


def cv_splits(full, snippets, *, seed: int, n_splits: int = 10):
    """Per fold of one shuffle ``seed`` of the groups (:func:`group_of`): the indices of the
    ``full`` clips and ``snippets`` to train on and of the ``full`` clips held out; a held-out
    group's snippets are left out of training too."""
    groups = np.array([group_of(r) for r in full])
    snippet_groups = np.array([group_of(r) for r in snippets])
    unique = np.unique(groups)
    np.random.default_rng(seed).shuffle(unique)
    fold = dict(zip(unique, np.arange(len(unique)) % n_splits))
    for i in range(n_splits):
        held = {g for g in unique if fold[g] == i}
        yield ([j for j, g in enumerate(groups) if g not in held],
               [j for j, g in enumerate(snippet_groups) if g not in held],
               [j for j, g in enumerate(groups) if g in held])


def cross_validate(full, snippets, choice: Choice, *, n_splits=10, seeds=range(5)) -> tuple[float, float]:
    """Grouped ``n_splits``-fold CV MIREX and exact share, each the mean over ``seeds`` shuffles of
    the groups; a held-out group's snippets are left out of training too."""
    scores, exact = [], []
    for seed in seeds:
        keys = [None] * len(full)
        for train_full, train_snippets, test in cv_splits(full, snippets, seed=seed, n_splits=n_splits):
            model = fit([full[j] for j in train_full], [snippets[j] for j in train_snippets], choice)
            for j, k in zip(test, model_keys(model, [full[j] for j in test])):
                keys[j] = k
        scores.append(mirex(keys, full).mean())
        exact.append(np.mean([k == r["key"] for k, r in zip(keys, full)]))
    return float(np.mean(scores)), float(np.mean(exact))


def choose(full, snippets, *, log=print, jobs: int = 1) -> tuple[Choice, list[tuple[float, float, Choice]]]:
    """The candidate with the best grouped-CV MIREX on (``full``, ``snippets``) (higher exact share,
    then the earlier candidate, break ties), and every candidate's (MIREX, exact, choice);
    ``jobs`` processes score the candidates."""
    from joblib import Parallel, delayed

    candidates = [Choice(l2, w, name) for name in FEATURE_SETS for w in SNIPPET_WEIGHTS
                  for l2 in (L2_STRENGTHS if FEATURE_SETS[name] else L2_STRENGTHS[:1])]  # no templates: L2 moot
    scores = Parallel(n_jobs=jobs)(delayed(cross_validate)(full, snippets, choice) for choice in candidates)
    width = max(map(len, FEATURE_SETS))
    log(f"{'feature set':>{width}s} {'L2':>5s} {'snippet w':>9s} {'MIREX':>6s} {'exact':>6s}")
    results = []
    for choice, (score, exact) in zip(candidates, scores):
        results.append((score, exact, choice))
        log(f"{choice.feature_set:>{width}s} {choice.l2 if FEATURE_SETS[choice.feature_set] else float('nan'):5.0f} "
            f"{choice.snippet_weight:9.1f} {score:6.3f} {exact:6.3f}")
    best = max(range(len(results)), key=lambda i: (round(results[i][0], 9), round(results[i][1], 9), -i))
    return results[best][2], results


def constants_source(name: str, model: ke.KeyModel) -> str:
    """``model`` as key_estimation.py's source for the constant ``name``."""
    lines = [f"{name} = KeyModel(profile_weight={model.profile_weight:.4f}, minor_bias={model.minor_bias:.4f}, "
             "templates=np.array(["]
    for mode, half in zip(("major", "minor"), model.templates):
        lines.append(f"    # {mode}: chroma_stft, CQT octaves C2-C6, basic-pitch registers bass/C3/C4/C5+ "
                     "(thresholded), bass line")
        lines += ["    " + " ".join(f"{v:+.4f}," for v in row) for row in half]
    lines.append("]).reshape(2, N_BLOCKS, N_PITCH))")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Choose the key model's L2, snippet weight and feature set by train-fold CV, then print two fits "
                    "with those choices as key_estimation.py source: KEY_MODEL_TRAIN_ONLY (train fold: bench/key_fit.py "
                    "scores it on the valid fold) and KEY_MODEL (train + valid: the shipped model).")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the feature extraction and the CV")
    parser.add_argument("--cache", type=Path, default=None, help="pickle of the extracted features (reused if present)")
    args = parser.parse_args(argv)
    rows = load_rows(config.SHARED_DATA_DIR, jobs=args.jobs, cache=args.cache)
    if not rows:
        print(f"no keyed clips under {config.SHARED_DATA_DIR}", file=sys.stderr)
        return 2
    train, train_snippets = split(rows, ("train",))
    print(f"train fold: {len(train)} full clips + {len(train_snippets)} snippets; "
          f"valid fold: {len(split(rows, ('valid',))[0])} + {len(split(rows, ('valid',))[1])}")
    print("train-fold grouped 10-fold CV (mean of 5 shuffles):")
    choice, _ = choose(train, train_snippets, jobs=args.jobs)
    print(f"chosen on the train fold: {choice}")
    for name, folds in (("KEY_MODEL_TRAIN_ONLY", ("train",)), ("KEY_MODEL", FOLDS)):
        full, snippets = split(rows, folds)
        model = fit(full, snippets, choice)
        print(f"\n# {name}: fitted on {' + '.join(folds)}: {len(full)} full clips + "
              f"{len(snippets) if choice.snippet_weight else 0} snippets\n{constants_source(name, model)}")
        if hasattr(ke, name) and getattr(ke, name).vector.shape == model.vector.shape:
            print(f"max |refit - key_estimation.{name}| = {np.abs(model.vector - getattr(ke, name).vector).max():.2e}")
        for fold in FOLDS:
            scored = split(rows, (fold,))[0]
            sample = "in-sample" if fold in folds else "held out"
            print(f"  {fold} fold full clips ({sample}): MIREX {mirex(model_keys(model, scored), scored).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
