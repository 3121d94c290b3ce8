"""Experiment: a learned choice among tempo candidates, trained with time-stretched copies.

Run:  PYTHONPATH=.. python bench/tempo_learned.py [--jobs 2] [--C 0.1] [--no-valid]
      (~4 CPU-minutes: the 163 train and 81 valid clips of bench/tempo_key.py, 9 stretches each)

What it does (docs/tempo.md has the results and why the engine does not use it):

1. Per clip, the engine's median-over-bands onset envelope (``Analysis.beat_envelope``) and four
   mel-band envelopes (mel bands 0-16, 16-40, 40-80, 80-128: kick/bass, low-mid, mid, highs).
2. **Time-stretch augmentation** on the envelopes: a clip played ``f`` times faster has the
   envelope resampled at steps of ``f`` frames and the tempo ``f x`` the annotation;
   f in FACTORS (0.80-1.25). A train clip's stretched copies stay in one cross-validation group.
3. **Candidates**: the 5 best tempogram peaks (strength x the engine's log-normal prior) and the
   x2, x1/2, x3, x1/3, x3/2, x2/3 relatives of the best 3 (snapped to a peak within 3 %).
4. **Per-candidate features** (CANDIDATE_FEATURES): log2(bpm/120) and its square and size, the
   tempogram strength at the candidate and at its 6 relatives (normalised by the clip's highest
   peak), the engine's prior score, the clip context (MFCC 1-3 means, spectral centroid, ZCR,
   percussive energy share, onset envelope mean / sd / density) times log2(bpm/120) and its
   square (so a timbre can move the preferred octave), and each band's strength at the
   candidate, at x2 and at x1/2.
5. **Logistic regression** (standardised features): is this candidate within 4 % of the
   annotated tempo? The tempo is the candidate with the highest score. Fitted on the train fold
   only: 5-fold grouped CV on train, then one fit on all of train scored once on valid, with a
   paired bootstrap 95 % interval of the difference to the engine's estimator.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tempo_key import clips  # noqa: E402  (the same clips and annotations as the benchmark)

from tracklens import audio, config, features  # noqa: E402

SR, HOP = config.SAMPLE_RATE, config.HOP_LENGTH
FPS = SR / HOP
FACTORS = (0.8, 0.84, 0.89, 0.94, 1.0, 1.06, 1.12, 1.19, 1.25)
RELATIVES = (2.0, 0.5, 3.0, 1 / 3, 1.5, 2 / 3)
MEL_BANDS = (0, 16, 40, 80, 128)
TEMPOGRAM_WIN = 384  # the engine's (librosa.feature.tempo's 8 s)


def strength_curve(envelope: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.tempogram(onset_envelope=envelope, sr=SR, hop_length=HOP,
                                     win_length=TEMPOGRAM_WIN).mean(axis=1)


def stretch(envelope: np.ndarray, factor: float) -> np.ndarray:
    """The envelope of the clip played ``factor`` times faster (its tempo x factor)."""
    if factor == 1.0:
        return envelope
    return np.interp(np.arange(0, len(envelope) - 1, factor), np.arange(len(envelope)), envelope).astype(np.float32)


def strength_at(curve: np.ndarray, bpm: np.ndarray) -> np.ndarray:
    return np.interp(60.0 * FPS / np.asarray(bpm, float), np.arange(len(curve)), curve, left=0.0, right=0.0)


def highest_peak(curve: np.ndarray) -> float:
    return max(float(curve[int(60 * FPS / 300):int(60 * FPS / 30)].max()), 1e-9)


def candidates(curve: np.ndarray, top: int = 5) -> np.ndarray:
    bpm, height = features.tempo_candidates(curve, sr=SR, hop_length=HOP)
    if not bpm.size:
        return np.array([120.0])
    best = bpm[np.argsort(-height * features._tempo_prior(bpm))[:top]]
    found = list(best)
    for b in best[:3]:
        for r in RELATIVES:
            c = b * r
            if features.TEMPO_RANGE_BPM[0] <= c <= features.TEMPO_RANGE_BPM[1]:
                near = np.abs(np.log2(bpm / c)) < 0.04
                found.append(bpm[near][np.argmax(height[near])] if near.any() else c)
    unique: list[float] = []
    for c in found:
        if all(abs(np.log2(c / u)) > 0.03 for u in unique):
            unique.append(c)
    return np.array(unique)


CANDIDATE_FEATURES = (
    "log2(bpm/120)", "log2^2", "|log2|", "strength", "prior score", "is prior's choice",
    *(f"strength x{r:.2f}" for r in RELATIVES), "strength - x2", "strength - x1/2",
    *(f"log2 * ctx{i}" for i in range(9)), *(f"log2^2 * ctx{i}" for i in range(9)),
    *(f"band{b} {s}" for b in range(4) for s in ("strength", "- x2", "- x1/2")),
)


def candidate_features(curve: np.ndarray, bands: list[np.ndarray], cands: np.ndarray,
                       context: np.ndarray) -> np.ndarray:
    top = highest_peak(curve)
    strength = strength_at(curve, cands) / top
    octave = np.log2(cands / 120.0)
    relatives = np.stack([strength_at(curve, cands * r) / top for r in RELATIVES], 1)
    score = strength * features._tempo_prior(cands)
    score = score / max(score.max(), 1e-9)
    columns = [octave, octave ** 2, np.abs(octave), strength, score, score == 1.0, relatives,
               strength - relatives[:, 0], strength - relatives[:, 1],
               octave[:, None] * context[None, :], (octave ** 2)[:, None] * context[None, :]]
    for band in bands:
        top_b = highest_peak(band)
        s = strength_at(band, cands) / top_b
        columns += [s, s - strength_at(band, cands * 2) / top_b, s - strength_at(band, cands / 2) / top_b]
    return np.column_stack(columns).astype(float)


def measure(row: dict, factors: tuple[float, ...]) -> dict:
    """Candidates, their features and labels for each stretch of one clip; the engine's tempo."""
    import librosa

    y = audio.load_audio(row["path"], sr=SR).y
    a = features.analyze(y)
    t0 = time.process_time()
    baseline = a.tempo_estimate.bpm
    engine_cpu = time.process_time() - t0
    t0 = time.process_time()
    envelope = a.beat_envelope
    band_envelopes = librosa.onset.onset_strength_multi(S=a.log_mel, sr=SR, hop_length=HOP, channels=list(MEL_BANDS))
    e = envelope / max(float(envelope.max()), 1e-9)
    extra_cpu = time.process_time() - t0
    energy = float(np.sum(a.y.astype(np.float64) ** 2))
    percussive_share = float(np.sum(a.percussive.astype(np.float64) ** 2)) / max(energy, 1e-12)
    mfcc = a.mfcc.mean(axis=1)
    context = np.array([mfcc[0] / 100, mfcc[1] / 50, mfcc[2] / 20, float(a.spectral_centroid.mean()) / 3000,
                        float(a.zero_crossing_rate.mean()) * 10, percussive_share, e.mean(), e.std(), np.mean(e > 0.3)])
    out = dict(row, baseline=baseline, engine_cpu=engine_cpu, stretches={})
    for f in factors:
        t0 = time.process_time()
        curve = strength_curve(stretch(envelope, f))
        bands = [strength_curve(stretch(b, f)) for b in band_envelopes]
        cands = candidates(curve)
        x = candidate_features(curve, bands, cands, context)
        if f == 1.0:
            extra_cpu += time.process_time() - t0
        out["stretches"][f] = (cands, x, np.abs(cands - row["tempo"] * f) <= 0.04 * row["tempo"] * f)
    out["extra_cpu"] = extra_cpu
    return out


def fit(rows: list[dict], c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([s[1] for r in rows for s in r["stretches"].values()])
    y = np.concatenate([s[2] for r in rows for s in r["stretches"].values()])
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x), y)
    return lambda z: model.decision_function(scaler.transform(z))


def choose(score, row: dict) -> float:
    cands, x, _ = row["stretches"][1.0]
    return float(cands[np.argmax(score(x))])


def accuracy(rows: list[dict], tempos: list[float]) -> np.ndarray:
    return np.array([features.tempo_scores(t, r["tempo"]) for r, t in zip(rows, tempos)], dtype=float)


def report(name: str, rows: list[dict], learned: np.ndarray, engine: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(rows), (10_000, len(rows)))
    diff = (learned - engine)[draws].mean(axis=1)
    print(f"\n{name}: {len(rows)} clips   learned Acc1 {learned[:, 0].mean():.3f} Acc2 {learned[:, 1].mean():.3f}   "
          f"engine Acc1 {engine[:, 0].mean():.3f} Acc2 {engine[:, 1].mean():.3f}")
    for i, score in enumerate(("Acc1", "Acc2")):
        low, high = np.percentile(diff[:, i], [2.5, 97.5])
        print(f"  learned - engine {score}: {(learned - engine)[:, i].mean():+.3f} "
              f"(paired bootstrap 95 % CI {low:+.3f} .. {high:+.3f})")
    report_per_genre("learned", rows, learned, engine)


def report_per_genre(label: str, rows: list[dict], scores: np.ndarray, engine: np.ndarray) -> None:
    """Acc1 / Acc2 per genre of ``scores`` beside the engine's (bench/tempo_basic_pitch.py too)."""
    print(f"  per genre (n: {label} Acc1 / Acc2, engine Acc1 / Acc2):")
    for genre in sorted({r["genre"] for r in rows}):
        sel = np.array([r["genre"] == genre for r in rows])
        print(f"    {genre:10s} {sel.sum():3d}: {scores[sel, 0].mean():.2f} / {scores[sel, 1].mean():.2f}   "
              f"{engine[sel, 0].mean():.2f} / {engine[sel, 1].mean():.2f}")


def main(argv=None) -> int:
    from joblib import Parallel, delayed
    from sklearn.model_selection import GroupKFold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--C", type=float, default=0.1, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--no-augment", action="store_true", help="fit on the clips as they are (no stretches)")
    parser.add_argument("--no-valid", action="store_true", help="train-fold cross-validation only")
    args = parser.parse_args(argv)
    data = config.SHARED_DATA_DIR
    factors = (1.0,) if args.no_augment else FACTORS
    train = Parallel(n_jobs=args.jobs)(delayed(measure)(r, factors) for r in clips(data, "train", None))
    if not train:
        print(f"no annotated train clips under {data}", file=sys.stderr)
        return 2
    cv = [0.0] * len(train)
    for fit_idx, test_idx in GroupKFold(5).split(train, groups=[r["clip"] for r in train]):
        score = fit([train[i] for i in fit_idx], args.C)
        for i in test_idx:
            cv[i] = choose(score, train[i])
    engine = accuracy(train, [r["baseline"] for r in train])
    report(f"train fold, 5-fold grouped CV ({len(factors)} stretches per clip, C={args.C})",
           train, accuracy(train, cv), engine)
    oracle = np.mean([r["stretches"][1.0][2].any() for r in train])
    print(f"  a right candidate is among the candidates on {oracle:.3f} of train clips")
    if not args.no_valid:
        valid = Parallel(n_jobs=args.jobs)(delayed(measure)(r, (1.0,)) for r in clips(data, "valid", None))
        score = fit(train, args.C)
        report("valid fold (fitted on all of train)", valid, accuracy(valid, [choose(score, r) for r in valid]),
               accuracy(valid, [r["baseline"] for r in valid]))
        print(f"\nCPU s per clip (valid, mean): engine tempo {np.mean([r['engine_cpu'] for r in valid]):.4f}, "
              f"learned estimator's extra work {np.mean([r['extra_cpu'] for r in valid]):.4f} "
              "(band envelopes, 5 tempograms, candidates; the context's HPSS and MFCC are the engine's own)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
