"""Experiment: second-stage ideas on the learned key model (issue 19, item 2; docs/key.md).

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data nice python bench/key_rerank.py \
          --cache /tmp/keyfeat.pkl --bp-cache data/interim/basic_pitch --windows-cache /tmp/keywin.pkl \
          --jobs 2 [--valid]
      (~2 CPU-minutes of window features the first time, then ~1-2 minutes of fits on 2 busy cores)

Every variant starts from the recipe's model (recipes/key_model.py's choice: templates on all 11
blocks, profile term on basic-pitch's note_sq, L2 300, snippets at weight 0.5), naming its most
probable key in "recipe (most probable)" (FEATURE_VERSION 6 as first shipped), and is
scored with the recipe's grouped 10-fold CV on the **train** fold alone (5 shuffles, the same
folds: ``key_model.cv_splits``):

- ``bag-l2``, ``bag-sets``, ``bag-all``: the mean probability of models fitted at several L2
  strengths, on several subsets of the blocks, or both (a cheap ensemble);
- ``windows``, ``clip+windows``: the model applied to overlapping 10 s windows (hop 5 s) of a
  clip, the windows' log-probabilities averaged (temporal voting), alone or added to the whole
  clip's; the windows' features come from the audio (chroma_stft, CQT) and the cached basic-pitch
  outputs of ``--bp-cache`` (``<clip>__<kind>.npz``, bench/basic_pitch_cache.py);
- ``rerank``: a second stage over the model's 4 best keys, a conditional logit on features read
  relative to each candidate's tonic (so transposition-equivariant): its log-probability margin to
  the best, whether it is the best's fifth up / fifth down / relative / parallel, its mode, the
  major-vs-minor third of basic-pitch's note_sq profile above its tonic, basic-pitch's bass line
  at its tonic and at its fifth, and the bass line at its tonic in the clip's last window (a
  tonic at the phrase end). The stage-1 log-probabilities it trains on are out-of-fold (a nested
  grouped 5-fold CV inside each training part), as they will be on unseen clips;
- ``triads``, ``triads-soft``: two more template blocks, major and minor triads by root from
  basic-pitch's note posterior (thresholded at 0.3 or not);
- ``window examples``: the training clips' 10 s windows as extra examples at a small weight;
- ``expected MIREX``: stage 1's probabilities unchanged, the key named is the one of highest
  expected MIREX weight (no parameter; shipped in ``key_estimation.best_keys`` since this
  experiment chose it: docs/key.md).

The variant with the highest train CV MIREX is chosen (ties: the higher exact share, then the
earlier in the table); the paired SE of its gain over the recipe is printed. With
``--valid`` the chosen variant, fitted on the train fold, is scored **once** on the keyed valid
clips against ``KEY_MODEL_TRAIN_ONLY`` with bootstrap CIs (bench/key_fit.py's) and clips
better / worse. Decision rule (fixed before scoring valid): ship only if the chosen variant beats
the recipe on train CV by more than one paired SE **and** scores at least 0.652 on valid.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # the model recipes (not installed)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import key_model  # noqa: E402  (recipes/key_model.py)
from key_basic_pitch import report_valid  # noqa: E402  (the valid fold's MIREX, CI and paired gain)

from tracklens import audio, config, features, key_estimation as ke, pitch_posteriors  # noqa: E402

N = ke.N_PITCH
SHIPPED = key_model.Choice(300.0, 0.5, "chroma+cqt+bands_thr+bass")  # the recipe's train-CV choice
BASS_BLOCK = 1 + ke.CQT_OCTAVES + ke.BP_BLOCKS.index("bass")  # basic-pitch's bass line among KeyFeatures.blocks
BP_FIRST = 1 + ke.CQT_OCTAVES
# Extra block subsets for the ensembles (indices into KeyFeatures.blocks: 0 chroma_stft, 1-5 CQT, 6-10 basic-pitch),
# registered in the recipe's FEATURE_SETS by score_variants (joblib's workers import the recipe afresh)
EXTRA_SETS = {"chroma+bp": (0, *range(BP_FIRST, ke.N_BLOCKS)), "cqt+bp": tuple(range(1, ke.N_BLOCKS))}
BAGS = {
    "bag-l2": [key_model.Choice(l2, 0.5, SHIPPED.feature_set) for l2 in (30.0, 100.0, 300.0)],
    "bag-sets": [key_model.Choice(300.0, 0.5, s)
                 for s in ("chroma+cqt+bands_thr+bass", "chroma+cqt", "chroma+bp", "cqt+bp")],
}
BAGS["bag-all"] = [key_model.Choice(l2, 0.5, c.feature_set) for c in BAGS["bag-sets"] for l2 in (30.0, 100.0, 300.0)]
WINDOW_S, WINDOW_HOP_S = 10.0, 5.0
TOP_K = 4
RERANK_L2 = 1.0
INNER_SPLITS = 5


# --- window features ------------------------------------------------------------------------
def window_features(row: dict, bp_cache: Path) -> list[ke.KeyFeatures | None]:
    """:class:`KeyFeatures` of each 10 s window (hop 5 s) of one clip: chroma_stft and tuning as
    the engine computes them for the whole clip, the CQT of the window, basic-pitch's cached
    posteriors sliced to the window."""
    warnings.filterwarnings("ignore", message="n_fft=")
    clip = audio.load_audio(row["path"], sr=config.SAMPLE_RATE)
    a = features.analyze(clip.y, sr=clip.sr)
    d = np.load(bp_cache / f"{row['clip']}__{row['kind']}.npz")
    note = d["StatefulPartitionedCall_1"].astype(np.float32)
    length, hop_bp = len(a.y), pitch_posteriors.HOP
    win, step = int(WINDOW_S * a.sr), int(WINDOW_HOP_S * a.sr)
    starts = list(range(0, max(length - win, 0) + 1, step))
    out = []
    for s0 in starts:
        s1 = min(s0 + win, length)
        post = pitch_posteriors.PitchPosteriors(note=note[s0 // hop_bp:s1 // hop_bp], onset=None, contour=None)
        out.append(ke.key_features(a.y[s0:s1], sr=a.sr, chroma=a.chroma[:, s0 // a.hop_length:s1 // a.hop_length],
                                   tuning=a.tuning, posteriors=post))
    return out


def load_windows(rows: list[dict], bp_cache: Path, cache: Path | None, jobs: int) -> dict:
    """{(clip, kind): [window KeyFeatures]} of the full clips, reusing / updating ``cache``."""
    from joblib import Parallel, delayed

    done = pickle.load(open(cache, "rb")) if cache and cache.exists() else {}
    missing = [r for r in rows if (r["clip"], r["kind"]) not in done]
    if missing:
        for r, w in zip(missing, Parallel(n_jobs=jobs)(delayed(window_features)(r, bp_cache) for r in missing)):
            done[r["clip"], r["kind"]] = w
        if cache:
            pickle.dump(done, open(cache, "wb"))
    return done


# --- chord-quality blocks --------------------------------------------------------------------
def triad_blocks(note: np.ndarray, *, threshold: float) -> np.ndarray:
    """[2, 12] z-scored profiles of major and minor triads by root, from basic-pitch's note
    posterior [t, 88]: per frame each pitch class's strongest octave (values at or below
    ``threshold`` count as 0), a triad as strong as its weakest note, summed over the frames.
    A minor key's tonic chord is minor, its dominant major: evidence for the mode and the fifth."""
    note = np.asarray(note, dtype=np.float64)
    pcs = (ke.BP_LOWEST_MIDI + np.arange(note.shape[1])) % N
    act = np.stack([note[:, pcs == p].max(axis=1) for p in range(N)], axis=1)
    act = act * (act > threshold)
    roots = np.arange(N)
    major = np.minimum(np.minimum(act[:, roots], act[:, (roots + 4) % N]), act[:, (roots + 7) % N]).sum(axis=0)
    minor = np.minimum(np.minimum(act[:, roots], act[:, (roots + 3) % N]), act[:, (roots + 7) % N]).sum(axis=0)
    return np.vstack([ke._zscore(major), ke._zscore(minor)])


TRIAD_THRESHOLDS = {"triads": ke.FRAME_THRESHOLD, "triads-soft": 0.0}


def with_triads(rows: list[dict], bp_cache: Path) -> list[dict]:
    """``rows``, each with ``features_<name>``: its KeyFeatures plus the 2 triad blocks, for each
    of :data:`TRIAD_THRESHOLDS`."""
    out = []
    for r in rows:
        if r["features"] is None:  # silence: no key to read
            out.append(r)
            continue
        note = np.load(bp_cache / f"{r['clip']}__{r['kind']}.npz")["StatefulPartitionedCall_1"]
        f = r["features"]
        out.append({**r, **{f"features_{name}":
                            ke.KeyFeatures(f.profile, np.vstack([f.blocks, triad_blocks(note, threshold=t)]))
                            for name, t in TRIAD_THRESHOLDS.items()}})
    return out


# --- stage 1 and its combinations ----------------------------------------------------------
def log_probs(model: ke.KeyModel, fs: list[ke.KeyFeatures | None]) -> np.ndarray:
    """[n, 24] log-probabilities (a missing window's row is 0: it votes for nothing)."""
    return np.array([np.log(model.probabilities(f) + 1e-12) if f is not None else np.zeros(ke.N_KEYS) for f in fs])


def window_log_probs(model: ke.KeyModel, rows: list[dict]) -> np.ndarray:
    """[n, 24] the mean over each clip's windows of the model's log-probabilities."""
    return np.array([log_probs(model, r["windows"]).mean(axis=0) for r in rows])


def bag_log_probs(models: list[ke.KeyModel], rows: list[dict]) -> np.ndarray:
    """[n, 24] the log of the members' mean probability."""
    p = np.mean([np.exp(log_probs(m, [r["features"] for r in rows])) for m in models], axis=0)
    return np.log(p + 1e-12)


# --- the re-ranker ---------------------------------------------------------------------------
RERANK_FEATURES = ("margin", "is best", "fifth up of best", "fifth down of best", "relative of best",
                   "parallel of best", "minor", "third of its mode (note_sq)", "bass at tonic",
                   "bass at fifth", "bass at tonic, last window")


def candidates(logp: np.ndarray) -> np.ndarray:
    return np.argsort(-logp)[:TOP_K]


def rerank_features(logp: np.ndarray, row: dict) -> tuple[np.ndarray, np.ndarray]:
    """(the top-k keys, [k, len(RERANK_FEATURES)] their features), each read relative to the
    candidate's tonic (transposing the clip transposes the candidates and keeps the features)."""
    f, last = row["features"], next((w for w in reversed(row.get("windows") or []) if w is not None), None)
    keys = candidates(logp)
    best = keys[0]
    bk, bm = best % N, best // N  # bm: 0 major, 1 minor
    note_sq = ke._zscore(f.profile)
    bass = f.blocks[BASS_BLOCK]
    last_bass = last.blocks[BASS_BLOCK] if last is not None else bass
    x = []
    for c in keys:
        k, m = c % N, c // N
        third = note_sq[(k + 4) % N] - note_sq[(k + 3) % N]
        x.append([logp[c] - logp[best], float(c == best),
                  float(m == bm and (k - bk) % N == 7), float(m == bm and (k - bk) % N == 5),
                  float(m != bm and (k - bk) % N == (9 if m else 3)), float(m != bm and k == bk),
                  float(m), third if m == 0 else -third, bass[k], bass[(k + 7) % N], last_bass[k]])
    return keys, np.array(x)


def fit_rerank(logps: np.ndarray, rows: list[dict], *, l2: float = RERANK_L2) -> np.ndarray:
    """Weights of the conditional logit over each clip's top-k keys (clips whose key is not
    among them teach nothing and are left out)."""
    from scipy.optimize import minimize

    xs, ys = [], []
    for lp, r in zip(logps, rows):
        keys, x = rerank_features(lp, r)
        hit = np.flatnonzero(keys == r["label"])
        if len(hit):
            xs.append(x)
            ys.append(hit[0])
    x, y = np.stack(xs), np.array(ys)

    def loss_and_grad(w):
        s = x @ w
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y] + 1e-300).sum() + 0.5 * l2 * w @ w
        g = p.copy()
        g[np.arange(len(y)), y] -= 1.0
        return loss, np.einsum("nk,nkp->p", g, x) + l2 * w

    w0 = np.zeros(x.shape[2])
    w0[0] = 1.0  # start from stage 1's ranking
    return minimize(loss_and_grad, w0, jac=True, method="L-BFGS-B").x


def rerank_log_scores(w: np.ndarray, logps: np.ndarray, rows: list[dict]) -> np.ndarray:
    """[n, 24] scores: the re-ranker's on the top-k keys, -inf elsewhere."""
    out = np.full(logps.shape, -np.inf)
    for i, (lp, r) in enumerate(zip(logps, rows)):
        keys, x = rerank_features(lp, r)
        out[i, keys] = x @ w
    return out


def oof_log_probs(full: list[dict], snippets: list[dict], choice: key_model.Choice, *, seed: int,
                  n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (grouped CV) log-probabilities of ``choice``'s model for the ``full`` clips
    [len(full), 24]: of the whole clips, and their windows' means."""
    clip, win = np.zeros((len(full), ke.N_KEYS)), np.zeros((len(full), ke.N_KEYS))
    for tr, tr_snip, test in key_model.cv_splits(full, snippets, seed=seed, n_splits=n_splits):
        model = key_model.fit([full[j] for j in tr], [snippets[j] for j in tr_snip], choice)
        held = [full[j] for j in test]
        clip[test], win[test] = log_probs(model, [r["features"] for r in held]), window_log_probs(model, held)
    return clip, win


def fit_with_windows(train: list[dict], train_snippets: list[dict], choice: key_model.Choice,
                     window_weight: float) -> ke.KeyModel:
    """``choice``'s model fitted on the full clips, the snippets and, at ``window_weight`` each,
    the 10 s windows of the full clips (more, overlapping, shorter examples of the same keys)."""
    windows = [{"features": w, "label": r["label"]} for r in train for w in r["windows"] if w is not None]
    extra = train_snippets + windows
    keep = key_model.FEATURE_SETS[choice.feature_set]
    weights = np.r_[np.ones(len(train)), np.full(len(train_snippets), choice.snippet_weight),
                    np.full(len(windows), window_weight)]
    return ke.fit_key_model([key_model._with_blocks(r["features"], keep) for r in train + extra],
                            np.array([r["label"] for r in train + extra]), l2=choice.l2, weights=weights)


def expected_mirex(logp: np.ndarray) -> np.ndarray:
    """[n, 24] each key's expected MIREX weight under the model's probabilities: choosing its
    maximum, rather than the most probable key, is the decision that maximises the expected score
    (a near-tie between two keys a fifth apart goes to the upper one, which earns 0.5 if the
    lower is right). No parameters; equivariant, as the credit depends on the interval alone. Shipped:
    ``key_estimation.best_keys`` names this key since this experiment."""
    p = np.exp(logp - logp.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ ke.MIREX_CREDIT.T


WINDOW_WEIGHTS = (0.1, 0.2)  # per 10 s window: 5 windows of a 30 s clip weigh 0.5 or 1 clip


# --- the variants ----------------------------------------------------------------------------
VARIANTS = ("recipe (most probable)", "bag-l2", "bag-sets", "bag-all", "windows", "clip+windows", "rerank",
            "rerank+windows",
            *(f"{name} (L2 300)" for name in TRIAD_THRESHOLDS), *(f"window examples {w:g}" for w in WINDOW_WEIGHTS),
            "expected MIREX", "bag-all, expected MIREX")
ALL_BLOCKS_AND_TRIADS = "all+triads"


def score_variants(train: list[dict], train_snippets: list[dict], test: list[dict], *, seed: int,
                   base: ke.KeyModel | None = None) -> dict[str, np.ndarray]:
    """{variant: [len(test), 24] scores}, every model fitted on (``train``, ``train_snippets``);
    ``base``: the stage-1 model when it is already fitted (KEY_MODEL_TRAIN_ONLY on the valid fold)."""
    key_model.FEATURE_SETS.update(EXTRA_SETS)
    key_model.FEATURE_SETS[ALL_BLOCKS_AND_TRIADS] = tuple(range(ke.N_BLOCKS + 2))
    base = base or key_model.fit(train, train_snippets, SHIPPED)
    clip = log_probs(base, [r["features"] for r in test])
    win = window_log_probs(base, test)
    out = {"recipe (most probable)": clip, "windows": win, "clip+windows": clip + win}
    members = {c: (base if c == SHIPPED else key_model.fit(train, train_snippets, c))
               for c in {c for bag in BAGS.values() for c in bag}}
    for name, bag in BAGS.items():
        out[name] = bag_log_probs([members[c] for c in bag], test)
    inner_clip, inner_win = oof_log_probs(train, train_snippets, SHIPPED, seed=seed, n_splits=INNER_SPLITS)
    out["rerank"] = rerank_log_scores(fit_rerank(inner_clip, train), clip, test)
    out["rerank+windows"] = rerank_log_scores(fit_rerank(inner_clip + inner_win, train), clip + win, test)
    for name in TRIAD_THRESHOLDS:
        swap = lambda rows: [{**r, "features": r[f"features_{name}"]} for r in rows]  # noqa: E731
        model = key_model.fit(swap(train), swap(train_snippets), key_model.Choice(300.0, 0.5, ALL_BLOCKS_AND_TRIADS))
        out[f"{name} (L2 300)"] = log_probs(model, [r["features"] for r in swap(test)])
    out["expected MIREX"] = expected_mirex(clip)
    out["bag-all, expected MIREX"] = expected_mirex(out["bag-all"])
    for w in WINDOW_WEIGHTS:
        out[f"window examples {w:g}"] = log_probs(fit_with_windows(train, train_snippets, SHIPPED, w),
                                                  [r["features"] for r in test])
    return out


def keys_of(scores: np.ndarray) -> list[tuple[int, int]]:
    return [ke._key_of(int(b)) for b in scores.argmax(axis=1)]


def _fold_keys(fold_keys, full, snippets, seed, tr, tr_snip, test):
    return test, fold_keys([full[j] for j in tr], [snippets[j] for j in tr_snip], [full[j] for j in test], seed)


def grouped_cv(full, snippets, fold_keys, variants, *, jobs: int, seeds=range(5),
               n_splits: int = 10) -> dict[str, np.ndarray]:
    """{variant: [len(seeds), len(full)] per-clip MIREX} of the recipe's grouped CV (its folds,
    ``key_model.cv_splits``); ``fold_keys(train, train_snippets, held, seed)`` -> {variant: the
    keys it names for ``held``}. The key benches (rerank, decision, cadence) share it."""
    from joblib import Parallel, delayed

    tasks = [(seed, split) for seed in seeds
             for split in key_model.cv_splits(full, snippets, seed=seed, n_splits=n_splits)]
    results = Parallel(n_jobs=jobs)(delayed(_fold_keys)(fold_keys, full, snippets, seed, *split)
                                    for seed, split in tasks)
    per_clip = {v: np.zeros((len(seeds), len(full))) for v in variants}
    for (seed, _), (test, keys) in zip(tasks, results):
        for v in variants:
            per_clip[v][list(seeds).index(seed), test] = key_model.mirex(keys[v], [full[j] for j in test])
    return per_clip


def variant_keys(train, train_snippets, held, seed) -> dict[str, list[tuple[int, int]]]:
    return {v: keys_of(scores) for v, scores in score_variants(train, train_snippets, held, seed=seed).items()}


def cross_validate(full, snippets, *, jobs: int, seeds=range(5), n_splits: int = 10) -> dict[str, np.ndarray]:
    """{variant: [len(seeds), len(full)] per-clip MIREX} of the recipe's grouped CV."""
    return grouped_cv(full, snippets, variant_keys, VARIANTS, jobs=jobs, seeds=seeds, n_splits=n_splits)


def cv_table(per_clip: dict[str, np.ndarray], variants, reference: str, *, log=print) -> tuple[str, bool]:
    """Print each variant's CV MIREX, exact share, and gain over ``reference`` with its paired SE
    (per clip, the mean over the shuffles); return the variant of highest CV MIREX (ties: the
    higher exact share, then the earlier) and whether it beats ``reference`` by more than one SE."""
    base = per_clip[reference].mean(axis=0)
    width = max(map(len, variants))
    log(f"  {'variant':{width}s} {'MIREX':>6s} {'exact':>6s} {'gain':>7s} {'paired SE':>9s}")
    table = []
    for v in variants:
        per = per_clip[v]
        d = per.mean(axis=0) - base
        se = d.std(ddof=1) / np.sqrt(len(d))
        exact = (per == 1.0).mean()
        table.append((per.mean(), exact, v, d.mean(), se))
        log(f"  {v:{width}s} {per.mean():6.3f} {exact:6.3f} {d.mean():+7.3f} {se:9.3f}")
    best = max(range(len(table)), key=lambda i: (round(table[i][0], 9), round(table[i][1], 9), -i))
    score, exact, chosen, gain, se = table[best]
    qualifies = chosen != reference and gain > se
    log(f"chosen on train: {chosen} (CV MIREX {score:.3f}, exact {exact:.3f}; {gain:+.3f} vs {reference}, paired SE "
        f"{se:.3f}: {'more' if qualifies else 'not more'} than one SE)")
    return chosen, qualifies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="recipes/key_model.py's feature pickle")
    parser.add_argument("--bp-cache", type=Path, required=True, help="folder of <clip>__<kind>.npz basic-pitch outputs")
    parser.add_argument("--windows-cache", type=Path, default=None,
                        help="pickle of the window features (reused if present)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=5, help="CV shuffles")
    parser.add_argument("--valid", action="store_true", help="score the train-CV choice once on the valid fold")
    args = parser.parse_args(argv)
    rows = key_model.load_rows(config.SHARED_DATA_DIR, jobs=args.jobs, cache=args.cache)
    full_rows = [r for r in rows if r["kind"] in key_model.FULL]
    windows = load_windows(full_rows, args.bp_cache, args.windows_cache, args.jobs)
    rows = with_triads([{**r, "windows": windows.get((r["clip"], r["kind"]))} for r in rows], args.bp_cache)
    train, train_snippets = key_model.split(rows, ("train",))
    valid, _ = key_model.split(rows, ("valid",))
    print(f"train: {len(train)} full clips + {len(train_snippets)} snippets; valid: {len(valid)} full clips; "
          f"{WINDOW_S:g} s windows, hop {WINDOW_HOP_S:g} s: {np.mean([len(r['windows']) for r in train]):.1f} per clip")

    per_clip = cross_validate(train, train_snippets, jobs=args.jobs, seeds=range(args.seeds))
    print(f"\ntrain fold, grouped 10-fold CV (mean of {args.seeds} shuffles; recipes/key_model.py's folds):")
    chosen, qualifies = cv_table(per_clip, VARIANTS, "recipe (most probable)")
    print(f"re-ranker features: {', '.join(RERANK_FEATURES)}")

    if args.valid:
        print("\nvalid fold, scored once (every model fitted on the train fold alone):")
        refit = key_model.fit(train, train_snippets, SHIPPED)
        gap = np.abs(refit.vector - ke.KEY_MODEL_TRAIN_ONLY.vector).max()
        print(f"  max |recipe refit - KEY_MODEL_TRAIN_ONLY| = {gap:.2e}")
        scores = score_variants(train, train_snippets, valid, seed=0, base=ke.KEY_MODEL_TRAIN_ONLY)
        ref_keys = keys_of(scores["recipe (most probable)"])
        ref = report_valid("KEY_MODEL_TRAIN_ONLY", ref_keys, valid, None)
        if chosen != "recipe (most probable)":
            report_valid(f"chosen: {chosen}", keys_of(scores[chosen]), valid, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
