"""The engine's tempo (``bpm``) on click tracks across the range a musician taps, and under a
real time-stretch (phase vocoder): the estimate follows the audio, not a prior's favourite."""

from __future__ import annotations

import librosa
import pytest
from test_tempo_key import clicks

from tracklens import features


@pytest.mark.parametrize("bpm", [70.0, 95.0, 128.0, 174.0])
def test_click_track_tempo_within_acc1_tolerance(bpm):
    """A steady pulse reads as itself within Acc1's 4 %: slow (70), mid (95, 128) and drum & bass
    (174, an octave over the prior's centre)."""
    assert features.analyze(clicks(bpm)).tempo_estimate.bpm == pytest.approx(bpm, rel=0.04)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretched_click_track_moves_the_tempo_by_the_factor(rate):
    """A 100 BPM pattern with an accent every 4th click, time-stretched by librosa's phase
    vocoder (pitch kept): the estimate moves by the stretch factor, within 4 %."""
    y = clicks(100.0, 24.0, accent_every=4)
    before = features.analyze(y).tempo_estimate.bpm
    after = features.analyze(librosa.effects.time_stretch(y, rate=rate)).tempo_estimate.bpm
    assert before == pytest.approx(100.0, rel=0.04)
    assert after / before == pytest.approx(rate, rel=0.04)


def test_pitched_onsets_count_as_much_as_the_beat(monkeypatch):
    """Half the tempo's evidence is where notes start by pitch (basic-pitch's onsets, two frames
    per STFT frame): noise with no beat, and note starts every 60/90 s, reads 90 BPM. Without the
    pitched half, or at the posteriors' own frame rate, it would not."""
    import numpy as np

    from tracklens import pitch_posteriors

    sr, seconds, bpm = 22_050, 20.0, 90.0
    noise = np.random.default_rng(0).normal(0, 0.05, int(seconds * sr)).astype(np.float32)
    frames = int(len(noise) / pitch_posteriors.HOP)
    onset = np.full((frames, 88), 0.01, np.float32)
    starts = (np.arange(0, seconds, 60 / bpm) * pitch_posteriors.FPS).astype(int)
    onset[starts, 39] = onset[np.minimum(starts + 1, frames - 1), 39] = 0.9
    fake = pitch_posteriors.PitchPosteriors(np.zeros((frames, 88), np.float32), onset, np.zeros((frames, 264), np.float32))
    monkeypatch.setattr(pitch_posteriors, "posteriors", lambda y, *, sr: fake)
    a = features.analyze(noise, sr=sr)
    beat_alone = features.estimate_tempo(a.beat_tempogram, sr=sr, hop_length=a.hop_length).bpm
    assert beat_alone != pytest.approx(bpm, rel=0.04)  # the noise alone has no 90 BPM in it
    assert a.tempo_estimate.bpm == pytest.approx(bpm, rel=0.04)
