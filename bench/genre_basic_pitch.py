"""Experiment: does what basic-pitch hears (polyphony, register, intervals, pitch bends) add genre
evidence to the EfficientAT embedding?  Tried for issue 20, not shipped (docs/genre-models.md).

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/genre_basic_pitch.py [--cache F.npz]
      (~5 CPU-minutes: one EfficientAT pass and one basic-pitch pass per train / valid file)

Per file of the GTZAN train and valid folds (the test fold is not there): the EfficientAT mean
embedding (384) and 29 summaries of basic-pitch's posteriors (:func:`pitch_summary`). Logistic
regressions per clip (not per window, unlike the shipped heads: this compares inputs, not heads):
A on the embedding, B on the summaries, and A + w * B (log-probabilities). C and w are chosen by
5-fold CV grouped by blocks of 10 clip numbers on the **train** fold alone (accuracy on whole
clips); the valid fold's 73 whole clips are scored once with those choices.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from tracklens import audio, config, pitch_posteriors


def pitch_summary(p: pitch_posteriors.PitchPosteriors) -> np.ndarray:
    """29 numbers: polyphony (mean, sd, frames over 0.5), onsets per second, the note mass per
    octave (8) and its mean / sd pitch, pitch-class entropy, the pitch-class profile's circular
    autocorrelation (lags 1-6, key-free), simultaneous interval classes (6), the contour's share
    off the semitone centres (bends, slides, vibrato) and the note posterior's mean flux."""
    note, onset, contour = (np.asarray(x, np.float64) for x in (p.note, p.onset, p.contour))
    seconds = len(note) / p.fps
    polyphony = note.sum(axis=1)
    out = [polyphony.mean(), polyphony.std(), np.log1p(onset.sum() / seconds), (note > 0.5).sum(axis=1).mean()]
    mass = note.sum(axis=0) + 1e-9
    octaves = np.add.reduceat(mass, np.arange(0, 88, 12))
    midi = np.arange(88) + pitch_posteriors.LOWEST_MIDI
    mean = (mass * midi).sum() / mass.sum()
    out += list(octaves / octaves.sum()) + [mean / 100, np.sqrt((mass * (midi - mean) ** 2).sum() / mass.sum()) / 10]
    classes = (midi % 12)
    pc = np.bincount(classes, weights=mass, minlength=12)
    pc = pc / pc.sum()
    out += [-(pc * np.log(pc + 1e-12)).sum()] + [float(pc @ np.roll(pc, lag)) for lag in range(1, 7)]
    frames = np.minimum(np.stack([note[:, classes == c].sum(axis=1) for c in range(12)], axis=1), 1.0)
    total = (frames.sum(axis=1) ** 2).sum() + 1e-9
    out += [float((frames * np.roll(frames, lag, axis=1)).sum() / total) for lag in range(1, 7)]
    bins = contour.sum(axis=0)
    out += [(bins[0::3].sum() + bins[2::3].sum()) / (bins.sum() + 1e-9), np.abs(np.diff(note, axis=0)).sum(axis=1).mean()]
    return np.array(out)


def inputs(cache: Path | None) -> dict[str, np.ndarray]:
    """Per file of the train and valid folds: embedding, summaries, label, fold, kind, group."""
    import pandas as pd

    if cache and cache.exists():
        with np.load(cache) as stored:
            return {k: stored[k] for k in stored.files}
    from tqdm import tqdm

    from tracklens.models import efficientat

    gtzan = config.SHARED_DATA_DIR / "gtzan"
    manifest = pd.read_csv(gtzan / "manifest.csv")
    manifest = manifest[manifest["fold"].isin(("train", "valid"))]
    rows = {"emb": [], "bp": [], "genre": [], "fold": [], "kind": [], "group": []}
    for r in tqdm(list(manifest.itertuples()), desc="files", unit="file"):
        path = gtzan / Path(r.path).relative_to("shared/data/gtzan")
        rows["emb"].append(efficientat.embed(clip=audio.load_audio(path, sr=efficientat.SAMPLE_RATE))["mean"])
        clip = audio.load_audio(path, sr=pitch_posteriors.SAMPLE_RATE)
        rows["bp"].append(pitch_summary(pitch_posteriors.posteriors(clip.y, sr=clip.sr, contour=True)))
        genre, number = r.clip.split(".")
        rows.update({k: rows[k] + [v] for k, v in (("genre", r.genre), ("fold", r.fold), ("kind", r.kind),
                                                  ("group", f"{genre}.{int(number) // 10}"))})
    out = {k: np.asarray(v) for k, v in rows.items()}
    if cache:
        np.savez(cache, **out)
    return out


def main(argv=None) -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="an .npz of the per-file inputs (reused if present)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    d = inputs(args.cache)
    genres = list(config.GTZAN_GENRES)
    y = np.array([genres.index(g) for g in d["genre"]])
    whole = np.isin(d["kind"], ("full30s", "full30s_16k"))
    train, valid = d["fold"] == "train", (d["fold"] == "valid") & whole
    sets = {"A: EfficientAT embedding": d["emb"], "B: basic-pitch summaries": d["bp"]}

    def model(c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))

    def cv_log_proba(x, c):
        out = np.zeros((train.sum(), len(genres)))
        for a, b in GroupKFold(5).split(x[train], y[train], d["group"][train]):
            out[b] = model(c).fit(x[train][a], y[train][a]).predict_log_proba(x[train][b])
        return out

    def whole_acc(log_proba):
        return float((log_proba.argmax(axis=1)[whole[train]] == y[train][whole[train]]).mean())

    chosen = {}
    print(f"train fold: {train.sum()} files ({(train & whole).sum()} whole clips); valid: {valid.sum()} whole clips\n")
    print("train grouped 5-fold CV, whole-clip accuracy:")
    for name, x in sets.items():
        c, lp = max(((c, cv_log_proba(x, c)) for c in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)), key=lambda t: whole_acc(t[1]))
        chosen[name] = (c, lp)
        print(f"  {name:28s} C {c:<6g} {whole_acc(lp):.3f}")
    (ca, lpa), (cb, lpb) = chosen.values()
    weights = (0.0, 0.25, 0.5, 0.75, 1.0)
    fused = [whole_acc(lpa + w * lpb) for w in weights]
    print("  A + w * B: " + ", ".join(f"w {w}: {a:.3f}" for w, a in zip(weights, fused)))
    w = weights[int(np.argmax(fused))]
    fa = model(ca).fit(d["emb"][train], y[train]).predict_log_proba(d["emb"][valid])
    fb = model(cb).fit(d["bp"][train], y[train]).predict_log_proba(d["bp"][valid])
    print(f"\nvalid fold, {valid.sum()} whole clips, scored once with the train choices:")
    for name, lp in (("A", fa), ("B", fb), (f"A + {w} * B (w chosen on train)", fa + w * fb)):
        acc = float((lp.argmax(axis=1) == y[valid]).mean())
        print(f"  {name:34s} {acc:.3f} ± {np.sqrt(acc * (1 - acc) / valid.sum()):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
