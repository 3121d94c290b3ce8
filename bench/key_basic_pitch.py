"""Experiment: pitch-class profiles from basic-pitch's posteriors as extra key-model blocks.

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/key_basic_pitch.py \
          --bp-cache data/interim/basic_pitch --cache /tmp/keyfeat.pkl [--jobs 2] [--score-valid] [--also SET:SOURCE:L2:W ...]
      (~13 minutes on 2 busy cores for the 384 candidates; docs/key.md, "Tried and not shipped")

basic-pitch (Spotify, ICASSP 2022, Apache-2.0; ~17k parameters) gives, per 11.6 ms frame
(22 050 / 256 Hz), a note posterior [88 piano keys, MIDI 21-108], an onset posterior [88] and a
pitch contour [264 bins, 3 per semitone from A0]. ``--bp-cache`` holds its outputs for every
GTZAN train/valid file as ``<clip>__<kind>.npz`` (float16: ``StatefulPartitionedCall_1`` note,
``_2`` onset, ``_0`` contour).

1. Baseline: each basic-pitch profile alone, correlated with a literature key profile (no
   fitting): the (profile, literature profile) pair with the best **train** fold MIREX is chosen.
2. The learned model of recipes/key_model.py (profile correlation on chroma_stft + tied
   templates + minor bias) with basic-pitch profiles as extra z-scored blocks: feature set, L2
   and snippet weight chosen by the recipe's grouped 10-fold CV (5 shuffles) on the **train**
   fold only, the recipe's tie-break.
3. ``--score-valid``: the train-only choice (and the baseline's choice) scored **once** on the
   61 keyed valid clips, with bootstrap CIs and the paired bootstrap against the shipped
   train-only model (``KEY_MODEL_TRAIN_ONLY``), as bench/key_fit.py does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # the model recipes (not installed)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import key_fit  # noqa: E402  (bench/key_fit.py: bootstrap)
import key_model  # noqa: E402  (recipes/key_model.py)

from tracklens import config, features, key_estimation as ke  # noqa: E402

N = ke.N_PITCH
NOTE, ONSET, CONTOUR = "StatefulPartitionedCall_1", "StatefulPartitionedCall_2", "StatefulPartitionedCall_0"
BANDS = ke.BANDS  # the profiles themselves: key_estimation.bp_profiles (the engine's since FEATURE_VERSION 6)


def load_bp(bp_cache: Path, rows: list[dict]) -> list[dict]:
    """``rows`` (recipes/key_model.py's, with features) that have a cached basic-pitch output,
    each with ``bp`` (its :func:`bp_profiles`)."""
    out = []
    for r in rows:
        path = bp_cache / f"{r['clip']}__{r['kind']}.npz"
        if r["features"] is None or not path.exists():
            continue
        d = np.load(path)
        out.append({**r, "bp": ke.bp_profiles(d[NOTE], d[ONSET], d[CONTOUR])})
    return out


# Candidate feature sets: the engine's blocks (0 chroma_stft, 1-5 CQT C2..C6; not its basic-pitch ones) plus named
# basic-pitch profiles (z-scored); PROFILE_SOURCES: which 12-bin profile the profile-correlation
# term reads (the engine's mean chroma_stft, or a basic-pitch profile).
ENGINE = tuple(range(1 + ke.CQT_OCTAVES))
BP_SETS = {
    "chroma+cqt": (ENGINE, ()),
    "chroma+cqt+note": (ENGINE, ("note",)),
    "chroma+cqt+note_thr": (ENGINE, ("note_thr",)),
    "chroma+cqt+note_sq": (ENGINE, ("note_sq",)),
    "cqt+note_sq": (ENGINE[1:], ("note_sq",)),
    "chroma+cqt+contour": (ENGINE, ("contour",)),
    "chroma+cqt+bass": (ENGINE, ("bass",)),
    "chroma+cqt+onset": (ENGINE, ("onset",)),
    "chroma+cqt+onset_thr": (ENGINE, ("onset_thr",)),
    "chroma+cqt+note+bass": (ENGINE, ("note", "bass")),
    "chroma+cqt+note_sq+bass+onset_thr": (ENGINE, ("note_sq", "bass", "onset_thr")),
    "chroma+cqt+bands": (ENGINE, tuple(f"band_{b}" for b in BANDS)),
    "chroma+cqt+bands_thr+bass": (ENGINE, tuple(f"band_{b}_thr" for b in BANDS) + ("bass",)),
    "bp:note+bass": ((), ("note", "bass")),
    "bp:bands+bass": ((), tuple(f"band_{b}" for b in BANDS) + ("bass",)),
    "bp:note_sq+bass+onset_thr": ((), ("note_sq", "bass", "onset_thr")),
}
L2_STRENGTHS = (30.0, 100.0, 300.0, 1000.0)
PROFILE_SOURCES = ("chroma", "note", "note_sq")  # chroma_stft or a basic-pitch profile in the profile term


def with_set(rows: list[dict], engine: tuple[int, ...], bp: tuple[str, ...], profile_src: str = "chroma") -> list[dict]:
    """``rows`` whose features hold only the chosen blocks (z-scored), so no weight is wasted."""
    out = []
    for r in rows:
        f = r["features"]
        blocks = [f.blocks[i] for i in engine] + [ke._zscore(r["bp"][name]) for name in bp]
        # blocks[0] is the z-scored mean chroma_stft: its correlation is the mean's
        chroma = f.blocks[0] if profile_src == "chroma" else r["bp"][profile_src]
        blocks = np.vstack(blocks) if blocks else np.zeros((0, N))
        out.append({**r, "features": ke.KeyFeatures(chroma, blocks)})
    return out


def profile_keys(profiles: list[np.ndarray], literature: str) -> list[tuple[int, int]]:
    """Plain profile method: the key whose rotated literature profile correlates best."""
    keys = []
    for p in profiles:
        if np.ptp(p) == 0:
            keys.append((features.NO_KEY.key, features.NO_KEY.mode))
            continue
        zp = ke._zscore(p)
        prof = [ke._zscore(x) for x in ke.KEY_PROFILES[literature]]
        scores = [(np.roll(prof[m], k) @ zp, k, 1 - m) for m in (0, 1) for k in range(N)]
        _, k, mode = max(scores)
        keys.append((k, mode))
    return keys


def candidates_cv(train, train_snippets, *, jobs: int, sets=None):
    """(name, profile_src, Choice, CV MIREX, CV exact) for every candidate, in the grid's order."""
    from joblib import Parallel, delayed

    grid = []
    for name, (engine, bp) in BP_SETS.items():
        if sets and name not in sets:
            continue
        for src in PROFILE_SOURCES:
            for w in key_model.SNIPPET_WEIGHTS:
                for l2 in L2_STRENGTHS:
                    grid.append((name, src, w, l2))
    results = Parallel(n_jobs=jobs)(delayed(_cv_one)(train, train_snippets, *g) for g in grid)
    return [(g[0], g[1], key_model.Choice(g[3], g[2], g[0]), *res) for g, res in zip(grid, results)]


def _cv_one(train, train_snippets, name, src, w, l2):
    engine, bp = BP_SETS[name]
    key_model.FEATURE_SETS[name] = tuple(range(len(engine) + len(bp)))
    return key_model.cross_validate(with_set(train, engine, bp, src), with_set(train_snippets, engine, bp, src),
                                    key_model.Choice(l2, w, name))


def fit_choice(full, snippets, name, src, choice):
    engine, bp = BP_SETS[name]
    key_model.FEATURE_SETS[name] = tuple(range(len(engine) + len(bp)))
    model = key_model.fit(with_set(full, engine, bp, src), with_set(snippets, engine, bp, src), choice)
    return model, (lambda rows: key_model.model_keys(model, with_set(rows, engine, bp, src)))


def report_valid(label, keys, valid, ref_scores):
    s = key_model.mirex(keys, valid)
    lo, hi = key_fit.bootstrap(s)
    ex = np.mean([k == r["key"] for k, r in zip(keys, valid)])
    line = f"  {label}: n={len(valid)} MIREX {s.mean():.3f} (95 % CI {lo:.3f}-{hi:.3f}), exact {ex:.3f}"
    if ref_scores is not None:
        dlo, dhi = key_fit.bootstrap(s, ref_scores)
        line += (f"; vs shipped train-only {s.mean() - ref_scores.mean():+.3f} (paired 95 % CI {dlo:+.3f} to {dhi:+.3f};"
                 f" {int((s > ref_scores).sum())} clips better, {int((s < ref_scores).sum())} worse)")
    print(line)
    return s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bp-cache", type=Path, required=True, help="folder of <clip>__<kind>.npz basic-pitch outputs")
    parser.add_argument("--cache", type=Path, default=None, help="recipes/key_model.py's feature pickle")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--sets", nargs="*", default=None, help="only these feature sets (default: all)")
    parser.add_argument("--score-valid", action="store_true", help="score the train-CV choice once on the valid fold")
    parser.add_argument("--also", nargs="*", default=[], metavar="SET:SOURCE:L2:W",
                        help="with --score-valid: also score these candidates, labelled 'not chosen'")
    args = parser.parse_args(argv)
    rows = load_bp(args.bp_cache, key_model.load_rows(config.SHARED_DATA_DIR, jobs=args.jobs, cache=args.cache))
    train, train_snippets = key_model.split(rows, ("train",))
    valid, _ = key_model.split(rows, ("valid",))
    print(f"with basic-pitch outputs: train {len(train)} full clips + {len(train_snippets)} snippets; "
          f"valid {len(valid)} full clips")

    print("\n1. basic-pitch profile alone + literature profile (no fitting), train fold MIREX / exact:")
    base = []
    for name in train[0]["bp"]:
        for lit in ("krumhansl", "temperley", "albrecht", "albrecht+krumhansl"):
            keys = profile_keys([r["bp"][name] for r in train], lit)
            s, ex = key_model.mirex(keys, train).mean(), np.mean([k == r["key"] for k, r in zip(keys, train)])
            base.append((s, ex, name, lit))
            print(f"  {name:16s} {lit:18s} {s:.3f} / {ex:.3f}")
    b_s, b_ex, b_name, b_lit = max(base)
    print(f"  chosen on train: {b_name} with {b_lit} ({b_s:.3f} / {b_ex:.3f})")

    print("\n2. learned model + basic-pitch blocks, train-fold grouped 10-fold CV (mean of 5 shuffles):")
    print(f"  {'feature set':28s} {'profile on':10s} {'L2':>5s} {'snip w':>6s} {'MIREX':>6s} {'exact':>6s}")
    results = candidates_cv(train, train_snippets, jobs=args.jobs, sets=args.sets)
    for name, src, choice, s, ex in results:
        print(f"  {name:28s} {src:10s} {choice.l2:5.0f} {choice.snippet_weight:6.1f} {s:6.3f} {ex:6.3f}", flush=True)
    best = max(range(len(results)), key=lambda i: (round(results[i][3], 9), round(results[i][4], 9), -i))
    name, src, choice, s, ex = results[best]
    print(f"  chosen on train: {name}, profile on {src}, {choice} (CV MIREX {s:.3f}, exact {ex:.3f})")

    if args.score_valid:
        print("\n3. valid fold, scored once (fits on the train fold only):")
        ref = report_valid("shipped KEY_MODEL_TRAIN_ONLY", key_model.model_keys(ke.KEY_MODEL_TRAIN_ONLY, valid), valid, None)
        report_valid(f"baseline {b_name} + {b_lit}", profile_keys([r["bp"][b_name] for r in valid], b_lit), valid, ref)
        _, keys_of = fit_choice(train, train_snippets, name, src, choice)
        report_valid(f"chosen {name} (profile on {src}), {choice}", keys_of(valid), valid, ref)
        for spec in args.also:
            o_name, o_src, o_l2, o_w = spec.split(":")
            o_choice = key_model.Choice(float(o_l2), float(o_w), o_name)
            _, keys_of = fit_choice(train, train_snippets, o_name, o_src, o_choice)
            report_valid(f"NOT CHOSEN {o_name} (profile on {o_src}), {o_choice}", keys_of(valid), valid, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
