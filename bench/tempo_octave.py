"""Experiment: octave evidence for the engine's tempo (third round, issue 19 item 2).

Run:  PYTHONPATH=.. python bench/tempo_octave.py --bp-cache data/interim/basic_pitch [--jobs 2]
      [--work DIR] [--valid] [--variant NAME]
      (the measured clips come from bench/tempo_basic_pitch.py's loader: ~2 CPU-minutes, or
      seconds with --work's pickles; the variants ~1 CPU-minute)

The engine (FEATURE_VERSION 6) reads the tempo off ``features.tempo_strength``: the average of
the normalised mean autocorrelation (AC) tempograms of the flux envelope and of basic-pitch's
pitched onsets, peak x log-normal prior. Most of its misses on non-classical clips are octave
errors; the classical misses are rubato. Families tried here (docs/tempo.md has the results):

1. **AC x Fourier tempogram** (Peeters 2007; Grosche & Mueller 2011): an AC tempogram peaks
   at the tempo and its sub-harmonics (T/2, T/3: lags 2L, 3L), a Fourier tempogram at the tempo
   and its harmonics (2T, 3T); their product keeps the tempo both agree on. The Fourier
   tempogram (``librosa.feature.fourier_tempogram``, mean magnitude) of the flux envelope, the
   pitched one or both, weights the AC candidates' heights (``F^gamma``), or multiplies the AC
   curve pointwise on the lag axis (geometric mean).
2. **Harmonic / subharmonic summation** on the engine's strength curve:
   s'(T) = s(T) + a s(2T) + b s(T/2) (+ c s(3T) + c s(T/3)).
3. **Beat tracking on the combined envelope** (flux + pitched, each divided by its sd),
   started at the engine's tempo: tempo = 60 / median (or mean) inter-beat interval.
4. **A bass-register pitched envelope** (basic-pitch onsets below MIDI 48, detrended as the
   pitched one) as a third tempogram.

Every variant is scored on the **train** fold; the choice (best Acc1 + Acc2) is also made on
4/5 of train and scored on the 1/5 left out (nested). With ``--valid`` the variant chosen on
train (or ``--variant``) is scored once on the valid fold beside the engine, with bootstrap and
paired-bootstrap 95 % intervals. Nothing is chosen on valid.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tempo_basic_pitch import (  # noqa: E402  (the loaders, curves and scoring of the second round)
    FPS,
    HOP,
    ONSET,
    SR,
    TEMPOGRAM_WIN,
    _pairs,
    accuracy,
    choose_on_train,
    curve,
    detrend,
    load,
    prior_choice,
    report,
    variant_arguments,
)

from tracklens import features  # noqa: E402

PITCHED = "onset sum detrend 22"  # the engine's pitched envelope (features.pitched_onset_envelope)
LAG_BPM = 60.0 * FPS / np.maximum(np.arange(TEMPOGRAM_WIN), 1e-9)  # BPM of each AC lag
IN_RANGE = slice(int(60 * FPS / features.TEMPO_RANGE_BPM[1]), int(60 * FPS / features.TEMPO_RANGE_BPM[0]))


def engine_strength(row: dict) -> np.ndarray:
    """The engine's strength curve (``features.tempo_strength``) from the cached posteriors."""
    return features.tempo_strength(curve(row, "engine"), curve(row, PITCHED), sr=SR, hop_length=HOP)


def envelope(row: dict, name: str) -> np.ndarray:
    """The flux ("engine") or the pitched envelope of a clip, as the engine computes them."""
    return row["envelopes"]["engine"] if name == "engine" else detrend(row["envelopes"]["onset sum"], 22)


def fourier_on_lags(row: dict, source: str, win: int) -> np.ndarray:
    """Mean magnitude of the Fourier tempogram of ``source`` ("engine", "pitched" or "both": the
    average of the two, each normalised) at each AC lag's BPM, normalised by its top in 30-300 BPM."""
    import librosa

    cache = row.setdefault("curve_cache", {})
    key = f"fourier {source} {win}"
    if key not in cache:
        if source == "both":
            cache[key] = 0.5 * fourier_on_lags(row, "engine", win) + 0.5 * fourier_on_lags(row, "pitched", win)
        else:
            env = envelope(row, source)
            mag = np.abs(librosa.feature.fourier_tempogram(onset_envelope=env, sr=SR, hop_length=HOP,
                                                           win_length=win)).mean(axis=1)
            freqs = librosa.fourier_tempo_frequencies(sr=SR, hop_length=HOP, win_length=win)
            on_lags = np.interp(LAG_BPM, freqs, mag, right=0.0)
            cache[key] = on_lags / max(float(on_lags[IN_RANGE].max()), 1e-9)
    return cache[key]


def weighted_choice(strength: np.ndarray, weight: np.ndarray, gamma: float, prior: bool = True) -> float:
    """The AC candidate with the highest height x weight^gamma (x the engine's prior): the AC
    keeps the peak's position (its lag resolution), the weight only decides between peaks."""
    bpm, height = features.tempo_candidates(strength, sr=SR, hop_length=HOP)
    if not bpm.size:
        return 0.0
    w = np.interp(bpm, LAG_BPM[1:][::-1], weight[1:][::-1])
    score = height * np.maximum(w, 0.0) ** gamma * (features._tempo_prior(bpm) if prior else 1.0)
    return float(bpm[np.argmax(score)])


def harmonic_sum(strength: np.ndarray, double: float, half: float, thirds: float = 0.0) -> np.ndarray:
    """s'(lag L) = s(L) + double s(L/2) + half s(2L) (+ thirds (s(L/3) + s(3L))): evidence at
    twice / half the tempo added to the tempo's own (lags beyond the curve count 0)."""
    lags = np.arange(len(strength), dtype=float)
    at = lambda factor: np.interp(lags * factor, lags, strength, right=0.0)  # noqa: E731
    out = strength + double * at(0.5) + half * at(2.0)
    return out + thirds * (at(1 / 3) + at(3.0)) if thirds else out


def beat_tracked(row: dict, tightness: float, statistic: Callable[[np.ndarray], float]) -> float:
    """60 / the inter-beat interval's ``statistic`` of librosa's DP beat tracker on the combined
    envelope (flux + pitched, each divided by its sd), started at the engine's tempo."""
    import librosa

    cache = row.setdefault("beat_cache", {})
    if tightness not in cache:
        flux, pitched = envelope(row, "engine"), envelope(row, "pitched")
        n = min(len(flux), len(pitched))
        env = flux[:n] / max(float(flux.std()), 1e-9) + pitched[:n] / max(float(pitched.std()), 1e-9)
        start = prior_choice(engine_strength(row))
        _, beats = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP, bpm=start,
                                           tightness=tightness, trim=False)
        cache[tightness] = (np.diff(beats), start)
    intervals, start = cache[tightness]
    return 60.0 * FPS / statistic(intervals) if len(intervals) >= 2 else start


def bass_curve(row: dict, top_key: int = 27) -> np.ndarray:
    """Normalised mean AC tempogram of the pitched onsets of keys below MIDI 21 + top_key (48 = C3)."""
    from tempo_basic_pitch import strength_curve

    cache = row.setdefault("curve_cache", {})
    key = f"bass {top_key}"
    if key not in cache:
        onset = row["posteriors"][ONSET][:, :top_key].astype(np.float32)
        cache[key] = strength_curve(detrend(_pairs(onset.sum(axis=1)), 22))
    return cache[key]


Variant = Callable[[dict], float]


def variants() -> dict[str, Variant]:
    """Every variant tried, in the order of docs/tempo.md's table; "engine" first."""
    out: dict[str, Variant] = {"engine": lambda r: prior_choice(engine_strength(r))}
    # 1. AC x Fourier tempogram
    for source in ("engine", "pitched", "both"):
        for win in (384, 768):
            for gamma in (0.5, 1.0):
                out[f"AC candidates x Fourier({source}, {win})^{gamma}"] = \
                    lambda r, s=source, w=win, g=gamma: weighted_choice(engine_strength(r), fourier_on_lags(r, s, w), g)
            out[f"AC candidates x Fourier({source}, {win}), no prior"] = \
                lambda r, s=source, w=win: weighted_choice(engine_strength(r), fourier_on_lags(r, s, w), 1.0, False)
        out[f"sqrt(AC x Fourier({source}, 384)) pointwise"] = lambda r, s=source: prior_choice(
            np.sqrt(np.maximum(engine_strength(r), 0) * fourier_on_lags(r, s, 384)))
    # per envelope: its own AC times its own Fourier, the two products averaged
    out["mean of per-envelope AC x Fourier(384) candidates"] = lambda r: weighted_choice(
        engine_strength(r), 0.5 * (curve(r, "engine") * fourier_on_lags(r, "engine", 384)
                                   + curve(r, PITCHED) * fourier_on_lags(r, "pitched", 384))
        / np.maximum(engine_strength(r), 1e-9), 1.0)
    # 2. harmonic / subharmonic summation
    for double in (0.0, 0.25, 0.5, 0.75, 1.0):
        for half in (0.0, 0.25, 0.5, 0.75, 1.0):
            if double or half:
                out[f"harmonic sum: s(T) + {double} s(2T) + {half} s(T/2)"] = \
                    lambda r, d=double, h=half: prior_choice(harmonic_sum(engine_strength(r), d, h))
    for thirds in (0.15, 0.3):
        out[f"harmonic sum: s(T) + 0.25 s(2T) + 0.25 s(T/2) + {thirds} (s(3T) + s(T/3))"] = \
            lambda r, t=thirds: prior_choice(harmonic_sum(engine_strength(r), 0.25, 0.25, t))
    # 3. beat tracking on the combined envelope
    for tightness in (30.0, 100.0):
        out[f"beat track (flux + pitched), tightness {tightness:.0f}, median IBI"] = \
            lambda r, t=tightness: beat_tracked(r, t, np.median)
        out[f"beat track (flux + pitched), tightness {tightness:.0f}, mean IBI"] = \
            lambda r, t=tightness: beat_tracked(r, t, np.mean)
    # 4. bass-register pitched onsets as a third tempogram
    for weight in (0.2, 1 / 3, 0.5):
        out[f"engine strength + {weight:.2f} x bass (< MIDI 48) tempogram"] = \
            lambda r, w=weight: prior_choice((1 - w) * engine_strength(r) + w * bass_curve(r))
    out["engine strength + 0.33 x bass (< MIDI 40) tempogram"] = \
        lambda r: prior_choice((2 / 3) * engine_strength(r) + (1 / 3) * bass_curve(r, 19))
    return out


def main(argv=None) -> int:
    parser = variant_arguments(__doc__.splitlines()[0])
    parser.add_argument("--valid", action="store_true", help="score the chosen variant once on the valid fold")
    args = parser.parse_args(argv)
    train = load("train", args.bp_cache, args.jobs, args.work)
    if not train:
        print("no annotated train clips with basic-pitch outputs", file=sys.stderr)
        return 2
    table = variants()
    runtime = accuracy(train, [r["engine_bpm"] for r in train]).mean(axis=0)
    print(f"train fold, {len(train)} clips: Acc1 Acc2 / non-classical Acc1 Acc2 / classical Acc1 Acc2 "
          f"(the engine's runtime, onnxruntime posteriors: {runtime[0]:.3f} {runtime[1]:.3f})")
    best, _ = choose_on_train(train, table, variant=args.variant, width=76)
    if args.valid:
        valid = load("valid", args.bp_cache, args.jobs, args.work)
        engine_valid = accuracy(valid, [table["engine"](r) for r in valid])
        runtime = accuracy(valid, [r["engine_bpm"] for r in valid]).mean(axis=0)
        print(f"\nvalid: the engine from the cache {engine_valid[:, 0].mean():.3f} {engine_valid[:, 1].mean():.3f}, "
              f"its runtime (onnxruntime) {runtime[0]:.3f} {runtime[1]:.3f}")
        chosen = [table[best](r) for r in valid]
        report(f"valid fold (scored once): {best}", valid, accuracy(valid, chosen), engine_valid)
        for r, bpm in zip(valid, chosen):
            before = table["engine"](r)
            if features.tempo_scores(bpm, r["tempo"]) != features.tempo_scores(before, r["tempo"]):
                print(f"  {r['clip']} (annotated {r['tempo']:.1f}): engine {before:.1f} -> {bpm:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
