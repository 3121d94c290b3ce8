"""Measure the statistics a "no tonal content" key rule could read, on keyed GTZAN clips and on
signals with no key (noise, a drum loop, speech): docs/key-no-tonal.md.

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/key_no_tonal.py --out stats.csv [--jobs 2]
      (~1 CPU-s per 30 s clip: the engine's chroma, CQT and basic-pitch network; ~6 CPU-minutes)

One row per signal: the keyed train/valid clips of recipes/key_model.py (full 30 s clips and
2-3 s snippets, as the key recipe reads them) and synthetic non-tonal signals (white, pink and
brown noise at three levels and three seeds; a drum loop of clicks and noise bursts; speech by
``espeak-ng`` when it is installed). Columns:

- ``tonal_share``: the share of basic-pitch frames with a note above ``FRAME_THRESHOLD`` (0.3);
- ``active_mass``: the note posterior above the threshold, summed over keys, per frame;
- ``tonal_spread``: ``KeyEvidence.tonal_spread`` (the no-tonal-content rule's statistic), ``no_key``:
  the engine gives no key (silence rule or ``tonal_spread < NO_TONAL_SPREAD``);
- ``peak``: the highest note posterior; ``p99_frame_max``: the 99th percentile of each frame's highest;
- ``confidence`` / ``margin``: the shipped key model's top probability and its lead over the runner-up
  (NaN where the silence rule already gives no key).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from tracklens import audio, config, features, key_estimation as ke

SR = config.SAMPLE_RATE
SECONDS = 30.0
SHORT_SECONDS = 3.0


def _coloured_noise(colour: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2 power) Gaussian noise, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    spectrum *= {"white": 1.0, "pink": f ** -0.5, "brown": f ** -1.0}[colour]
    y = np.fft.irfft(spectrum, n)
    return y / np.sqrt(np.mean(y ** 2))


def _drum_loop(n: int, rng: np.random.Generator) -> np.ndarray:
    """A 120 BPM loop: a click and a decaying noise burst ("snare") and a low thump ("kick"), no pitch."""
    y = np.zeros(n)
    beat = int(SR * 0.5)
    t = np.arange(int(0.15 * SR)) / SR
    for i, start in enumerate(range(0, n - len(t), beat // 2)):
        burst = rng.standard_normal(len(t)) * np.exp(-t * 30)
        if i % 4 == 0:  # kick: a noise burst low-passed by a running mean (no tone)
            burst = np.convolve(burst, np.ones(40) / 40, mode="same") * 4
        elif i % 4 == 2:  # snare
            burst *= 0.8
        else:  # hi-hat click
            burst = burst * np.exp(-t * 200) * 0.5
        y[start:start + len(t)] += burst
    return y / np.abs(y).max()


def _speech() -> np.ndarray | None:
    if shutil.which("espeak-ng") is None:
        return None
    text = ("Welcome to the show. Today we talk about the history of recorded sound, from wax cylinders "
            "to tape and to the files on your phone. Our guest has spent thirty years restoring old "
            "recordings, and she will tell us what she has learned about noise, patience and listening.")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        return audio.load_audio(wav, sr=SR).y


def synthetic_signals() -> list[dict]:
    n = int(SECONDS * SR)
    rows = []
    for colour in ("white", "pink", "brown"):
        for level_db in (-40, -20, -6):
            for seed in range(3):
                y = _coloured_noise(colour, n, np.random.default_rng(seed)) * 10 ** (level_db / 20)
                rows.append({"clip": f"{colour}_{level_db}dB_seed{seed}", "kind": "noise", "fold": "", "y": y})
        for seed in range(3, 10):  # the level changes little (basic-pitch normalises its input): more seeds
            y = _coloured_noise(colour, n, np.random.default_rng(seed)) * 0.1
            rows.append({"clip": f"{colour}_-20dB_seed{seed}", "kind": "noise", "fold": "", "y": y})
        for seed in range(5):  # as short as the snippets
            y = _coloured_noise(colour, int(SHORT_SECONDS * SR), np.random.default_rng(100 + seed)) * 0.1
            rows.append({"clip": f"{colour}_3s_seed{seed}", "kind": "noise_3s", "fold": "", "y": y})
    for seed in range(3):
        rows.append({"clip": f"drum_loop_seed{seed}", "kind": "drums", "fold": "",
                     "y": 0.5 * _drum_loop(n, np.random.default_rng(seed))})
    speech = _speech()
    if speech is not None:
        rows.append({"clip": "speech_espeak", "kind": "speech", "fold": "", "y": speech})
        rows.append({"clip": "speech_espeak_x3", "kind": "speech", "fold": "", "y": np.tile(speech, 3)})
    return rows


LONG_NOTE_FRAMES = 11  # basic-pitch's shortest note (min_note_len 127.7 ms at 86 frames a second)


def _runs_at_least(on: np.ndarray, n: int) -> np.ndarray:
    """Cells of ``on`` [shape=(t, keys)] inside a run of at least ``n`` frames over the threshold."""
    out = np.zeros_like(on)
    for k in np.flatnonzero(on.any(axis=0)):
        padded = np.concatenate([[False], on[:, k], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(padded))
        for start, stop in zip(edges[0::2], edges[1::2]):
            if stop - start >= n:
                out[start:stop, k] = True
    return out


def statistics(y: np.ndarray, sr: int) -> dict:
    warnings.filterwarnings("ignore", message="n_fft=")
    a = features.analyze(np.asarray(y, dtype=np.float32), sr=sr)
    note = np.asarray(a.pitch_posteriors.note, dtype=np.float64)
    frame_max = note.max(axis=1)
    on = note > ke.FRAME_THRESHOLD
    evidence = ke.KeyEvidence()
    evidence.add(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
    spread, rule = evidence.tonal_spread(), ke.NO_TONAL_SPREAD
    try:  # the model's answer without the no-tonal rule: what it said before the rule
        ke.NO_TONAL_SPREAD = -1.0
        f = evidence.features()
    finally:
        ke.NO_TONAL_SPREAD = rule
    confidence = margin = float("nan")
    if f is not None:
        p = np.sort(ke.KEY_MODEL.probabilities(f))[::-1]
        confidence, margin = float(p[0]), float(p[0] - p[1])
    long_on = _runs_at_least(on, LONG_NOTE_FRAMES)
    pc = ke.fold88((note * on).sum(axis=0))
    pc = pc / pc.sum() if pc.sum() > 0 else np.full(12, 1 / 12)
    return {"key_sq_sums": (note ** 2).sum(axis=0), "key_thr_sums": (note * on).sum(axis=0),
            "frames": len(note), "tonal_share": float(on.any(axis=1).mean()),
            "long_note_share": float(long_on.any(axis=1).mean()),
            "persistence": float((on[1:] & on[:-1]).sum() / max(on[1:].sum(), 1)),
            "pc_entropy_bits": float(-(pc * np.log2(pc + 1e-12)).sum()),
            "tonal_spread": spread, "no_key": f is None or spread < rule,
            "active_mass": float((note * on).sum() / len(note)), "peak": float(note.max()),
            "p99_frame_max": float(np.percentile(frame_max, 99)), "confidence": confidence, "margin": margin}


def _row_stats(row: dict) -> dict:
    if "y" in row:
        y, sr = row.pop("y"), SR
    else:
        clip = audio.load_audio(row["path"], sr=SR)
        y, sr = clip.y, clip.sr
    return {k: v for k, v in row.items() if k in ("clip", "kind", "fold", "genre")} | statistics(y, sr)


def main(argv=None) -> int:
    import pandas as pd
    from joblib import Parallel, delayed

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
    import key_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="CSV of the statistics (one row per signal)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--sums", type=Path, help="also write each signal's per-key sums (.npz)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips (a smoke run)")
    args = parser.parse_args(argv)
    clips = key_model.clips(config.SHARED_DATA_DIR)
    if args.limit:
        clips = clips[:args.limit]
    rows = synthetic_signals() + clips
    stats = Parallel(n_jobs=args.jobs)(delayed(_row_stats)(r) for r in rows)
    if args.sums:  # the 88 keys' sums of every signal, to try other statistics without the network
        np.savez(args.sums, clip=[r["clip"] for r in stats], kind=[r["kind"] for r in stats],
                 **{name: np.stack([r[name] for r in stats]) for name in ("key_sq_sums", "key_thr_sums")})
    table = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("key_")} for r in stats])
    from tracklens import fileio

    fileio.write_csv(table, args.out)
    print(table.groupby(["kind", "fold"], dropna=False)[["tonal_spread", "tonal_share", "confidence"]]
          .agg(["min", "max"]).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
