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
