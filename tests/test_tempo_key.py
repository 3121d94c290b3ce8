"""Tempo and key a musician reads: the tempo outside the old 83-172 BPM window, its x2 / x1/2
alternative, the key with confidence and runner-up, the engine's card columns, and the loudness
column measured over a file's channels (FEATURE_VERSION 3; the learned key since 4)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tracklens import config, features, loudness
from tracklens.audio import AudioClip

SR = config.SAMPLE_RATE


def clicks(bpm: float, seconds: float = 20.0, *, accent_every: int = 1, seed: int = 0) -> np.ndarray:
    """Noise bursts at ``bpm`` (every ``accent_every``-th one twice as loud) over a quiet tone."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = 0.02 * np.sin(2 * np.pi * 220 * np.arange(n) / SR)
    burst = rng.standard_normal(400) * np.exp(-np.arange(400) / 80)
    period = 60.0 / bpm * SR
    for i, start in enumerate(np.arange(0, n - 400, period).astype(int)):
        y[start:start + 400] += (0.5 if i % accent_every == 0 else 0.25) * burst
    return (0.9 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.mark.parametrize("bpm", [62.0, 100.0, 128.0])
def test_tempo_of_click_tracks_inside_and_outside_the_old_window(bpm):
    """The card never said under 83 or over 172 BPM (NOTES.md); a plain pulse at 62 BPM reads
    as itself, within Acc1's 4 %."""
    tempo = features.analyze(clicks(bpm)).tempo_estimate
    assert tempo.bpm == pytest.approx(bpm, rel=0.04)


def test_fast_pulse_shows_as_the_tempo_or_its_alternative():
    """An even pulse at 185 BPM is as periodic at 92.5: the prior (centred on 120) picks the
    half, and the card shows 185 beside it as the alternative."""
    tempo = features.analyze(clicks(185.0)).tempo_estimate
    assert tempo.bpm == pytest.approx(92.5, rel=0.04)
    assert tempo.alternative == pytest.approx(185.0, rel=0.04)


def test_tempo_alternative_is_an_octave_of_the_tempo():
    """Accents on every other click make half the tempo plausible: when an alternative is shown
    it is the double or the half of the tempo; a steady pulse at 120 shows none or one of those."""
    shown = 0
    for bpm, accent in ((120.0, 2), (140.0, 2), (90.0, 2), (120.0, 1)):
        tempo = features.analyze(clicks(bpm, accent_every=accent)).tempo_estimate
        if np.isfinite(tempo.alternative):
            shown += 1
            assert tempo.alternative / tempo.bpm == pytest.approx(2.0, rel=0.06) or \
                tempo.alternative / tempo.bpm == pytest.approx(0.5, rel=0.06)
    assert shown >= 1
    assert np.isnan(features.estimate_tempo(np.zeros((384, 10)), sr=SR, hop_length=512).alternative)
    assert features.estimate_tempo(np.zeros((384, 10)), sr=SR, hop_length=512).bpm == 0.0


def progression(*chords, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.concatenate([sum(0.2 * np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * t) for n in chord)
                           for chord in chords]).astype(np.float32)


def test_key_confidence_and_runner_up():
    c_major = features.analyze(progression((60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67))).key
    a_minor = features.analyze(progression((57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64))).key
    assert (c_major.key, c_major.mode, c_major.name) == (0, 1, "C major")
    assert (a_minor.key, a_minor.mode, a_minor.name) == (9, 0, "A minor")
    for k in (c_major, a_minor):
        assert 1 / 24 < k.confidence <= 1.0
        assert k.runner_up_name != k.name and k.runner_up_name in features.KEY_NAMES
    # a chroma with no tonal centre (all pitch classes alike but one) is less sure than a cadence
    flat = np.ones(12)
    flat[3] = 1.1
    assert features.key_estimate(flat).confidence < c_major.confidence
    assert features.key_estimate(np.zeros(12)) == features.NO_KEY


def test_key_follows_transposition():
    """Rolling the chroma by k semitones moves the key by k and keeps the mode (every profile)."""
    rng = np.random.default_rng(3)
    base = np.array(features.KEY_PROFILES["krumhansl"][1]) + 0.3 * rng.random(12)  # an A-minor-ish chroma
    base = np.roll(base, 9)
    first = features.key_estimate(base)
    for k in range(1, 12):
        moved = features.key_estimate(np.roll(base, k))
        assert (moved.key, moved.mode) == ((first.key + k) % 12, first.mode)
        assert moved.confidence == pytest.approx(first.confidence, abs=1e-12)


def test_engine_rows_carry_the_card_columns():
    y = clicks(100.0, 8.0)
    clip = AudioClip(y=y, sr=SR, path=None, source_sr=SR, channels=1, source_duration_s=len(y) / SR)
    cf = features.featurize_clip(clip, segment_seconds=3.0)
    track = cf.track
    assert set(features.CARD_COLUMNS) <= set(track)
    assert track["bpm"] == pytest.approx(100.0, rel=0.04)
    assert track["key_runner_up"] in features.KEY_NAMES and 0 < track["key_confidence"] <= 1
    assert track["true_peak_dbtp"] >= 20 * np.log10(np.max(np.abs(y))) - 1e-6
    assert track["loudness"] == pytest.approx(loudness.measure(y, SR).integrated_lufs, abs=1e-9)
    for segment in cf.segments:
        assert np.isnan(segment["bpm"]) and segment["key_runner_up"] is None
        assert np.isfinite(segment["loudness"])


def test_engine_loudness_is_measured_over_the_files_channels(tmp_path):
    """Two alike channels: BS.1770 reads 3.01 dB over one channel; the mono downmix the engine
    analyses would read the same as one channel (what the card showed before: 3 dB low)."""
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(44_100 * 6)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([x, x], 1), 44_100, subtype="FLOAT")
    params = {"segment_seconds": 0.0, "overlap": 0.0, "sr": SR, "n_fft": config.N_FFT,
              "hop_length": config.HOP_LENGTH, "max_duration": 60.0}
    row = features.featurize_file(str(path), params).rows[0]
    one_channel = loudness.measure(x, 44_100).integrated_lufs
    assert row["loudness"] == pytest.approx(one_channel + 10 * np.log10(2), abs=1e-6)
    assert row["true_peak_dbtp"] == pytest.approx(loudness.measure(x, 44_100).true_peak_dbtp, abs=1e-9)


@pytest.mark.realdata
@pytest.mark.slow
def test_valid_fold_tempo_and_key_beat_the_old_card(shared_data):
    """The GTZAN valid fold (81 annotated full clips and excerpts): tempo Acc1 0.753 / Acc2 0.938
    (nothing in the tempo was fitted on this fold) and key MIREX 0.693 measured (bench/tempo_key.py,
    bench/key_fit.py; 0.652 naming the most probable key, 0.611 before basic-pitch's profiles), the old card 0.593 / 0.753 / 0.457, the
    v3 profile key 0.551. The bounds sit between them, so a return to the mean onset envelope or to
    profiles alone (docs/key.md) fails.

    The key's held-out bound scores ``KEY_MODEL_TRAIN_ONLY``: the shipped recipe fitted on the
    train fold alone. The shipped ``KEY_MODEL`` was refit on train + valid, so its score here is
    **in-sample** (0.690 measured): its bound only checks that the engine reads the learned model."""
    import csv
    from pathlib import Path

    from tracklens import key_estimation
    from tracklens.audio import load_audio

    notes = {r["clip"]: r for r in csv.DictReader(open(shared_data / "gtzan/annotations/tempo_key.csv"))}
    acc1, acc2, held_out, in_sample = [], [], [], []
    for r in csv.DictReader(open(shared_data / "gtzan/manifest.csv")):
        note = notes.get(r["clip"])
        if r["kind"] not in ("full30s", "full30s_16k", "excerpt15s") or not note or note["fold"] != "valid":
            continue
        a = features.analyze(load_audio(shared_data / Path(r["path"]).relative_to("shared/data")).y)
        one, two = features.tempo_scores(a.tempo_estimate.bpm, float(note["tempo_bpm"]))
        acc1.append(one)
        acc2.append(two)
        if truth := features.parse_key(note["key"]):
            in_sample.append(features.mirex_key_score((a.key.key, a.key.mode), truth))
            f = key_estimation.key_features(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning,
                                            posteriors=a.pitch_posteriors)
            train_only = key_estimation.best_keys(key_estimation.KEY_MODEL_TRAIN_ONLY.probabilities(f))[:2]
            held_out.append(features.mirex_key_score(train_only, truth))
    assert (len(acc1), len(held_out)) == (81, 61)
    assert np.mean(acc1) >= 0.70 and np.mean(acc2) >= 0.88
    assert np.mean(held_out) >= 0.665  # 0.693 measured; naming the most probable key reads 0.652
    assert np.mean(in_sample) >= 0.58
