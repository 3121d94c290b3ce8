"""The shipped basic-pitch network (tracklens.pitch_posteriors): it hears the notes that are played."""

import numpy as np
import pytest

from tracklens import pitch_posteriors as pp
from tracklens.errors import TracklensError


def tone(midi_notes, *, seconds=4.0, sr=pp.SAMPLE_RATE, start=0.5):
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * t) for m in midi_notes)
    y = 0.3 * y / len(midi_notes)
    y[: int(start * sr)] = 0.0  # silence, then the chord starts
    return y.astype(np.float32)


def test_a_chord_lights_its_keys_and_its_onset():
    chord = (60, 64, 67)  # C major: C4 E4 G4
    p = pp.posteriors(tone(chord), sr=pp.SAMPLE_RATE)
    sounding = p.note[int(1.0 * p.fps):int(3.5 * p.fps)].mean(axis=0)
    loudest = set(np.argsort(sounding)[-3:] + pp.LOWEST_MIDI)
    assert loudest == set(chord)
    onset_curve = p.onset[:, [m - pp.LOWEST_MIDI for m in chord]].sum(axis=1)
    assert abs(np.argmax(onset_curve) / p.fps - 0.5) < 0.1  # the chord starts at 0.5 s


def test_one_frame_per_256_samples_at_any_input_rate():
    y = tone((69,), seconds=7.3)
    at_native = pp.posteriors(y, sr=pp.SAMPLE_RATE)
    assert at_native.note.shape == (int(len(y) / pp.HOP), 88)
    assert at_native.onset.shape == at_native.note.shape and at_native.contour is None
    import librosa

    y44 = librosa.resample(y, orig_sr=pp.SAMPLE_RATE, target_sr=44_100)
    at_44k = pp.posteriors(y44, sr=44_100)
    assert at_44k.note.shape == at_native.note.shape
    # the same A4 in both (resampling shifts nothing by a semitone)
    middle = slice(int(2 * pp.FPS), int(6 * pp.FPS))
    assert at_44k.note[middle].mean(axis=0).argmax() == at_native.note[middle].mean(axis=0).argmax() == 69 - pp.LOWEST_MIDI


def test_a_replaced_model_file_is_refused(monkeypatch):
    pp._session.cache_clear()
    monkeypatch.setattr(pp, "MODEL_SHA256", "0" * 64)
    try:
        with pytest.raises(TracklensError, match="does not match"):
            pp.posteriors(tone((60,)), sr=pp.SAMPLE_RATE)
    finally:
        pp._session.cache_clear()


def test_bad_signals_get_one_clear_error():
    with pytest.raises(TracklensError, match="mono"):
        pp.posteriors(np.zeros((2, 100), np.float32), sr=pp.SAMPLE_RATE)
    with pytest.raises(TracklensError, match="non-empty"):
        pp.posteriors(np.zeros(0, np.float32), sr=pp.SAMPLE_RATE)


def test_the_model_ships_with_its_licence_and_notice():
    text = (pp.MODEL_PATH.parent / "LICENSE-basic-pitch.md").read_text()
    assert "Apache License" in text and "Copyright 2022 Spotify AB" in text and pp.MODEL_SHA256 in text


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_not_turned_into_nan_posteriors(bad):
    y = tone((60,))
    y[1000] = bad
    with pytest.raises(TracklensError, match="NaN or infinite"):
        pp.posteriors(y, sr=pp.SAMPLE_RATE)


@pytest.mark.parametrize("n_samples", [1, pp.HOP - 1, pp.HOP, 2205, 3 * pp.SAMPLE_RATE])
def test_short_signals_give_one_frame_per_256_samples(n_samples):
    p = pp.posteriors(tone((60,), seconds=n_samples / pp.SAMPLE_RATE, start=0.0), sr=pp.SAMPLE_RATE, contour=True)
    assert p.note.shape == p.onset.shape == (n_samples // pp.HOP, 88) and p.contour.shape == (n_samples // pp.HOP, 264)
    assert np.all(np.isfinite(p.note))


def test_a_missing_model_file_or_onnxruntime_is_one_clear_error(monkeypatch, tmp_path):
    import sys

    pp._session.cache_clear()
    try:
        monkeypatch.setattr(pp, "MODEL_PATH", tmp_path / "basic_pitch_nmp.onnx")
        with pytest.raises(TracklensError, match="missing; reinstall tracklens"):
            pp.posteriors(tone((60,)), sr=pp.SAMPLE_RATE)
        monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as for a broken install
        with pytest.raises(TracklensError, match="needs the 'onnxruntime' package"):
            pp.posteriors(tone((60,)), sr=pp.SAMPLE_RATE)
    finally:
        pp._session.cache_clear()


def test_the_contour_is_kept_only_when_asked_for_and_changes_nothing_else():
    """The engine keeps note and onset only (the contour was 60 % of the posteriors' memory);
    the research benches ask for the contour and get the same note and onset beside it."""
    y = tone((57, 64), seconds=9.0)  # > BATCH windows: the in-place join crosses batches
    lean, full = pp.posteriors(y, sr=pp.SAMPLE_RATE), pp.posteriors(y, sr=pp.SAMPLE_RATE, contour=True)
    assert lean.contour is None and full.contour.shape == (len(full.note), 264)
    np.testing.assert_array_equal(lean.note, full.note)
    np.testing.assert_array_equal(lean.onset, full.onset)
    # the contour (3 bins a semitone) is the contour: its two strongest bins are the A3 and the E4
    middle = slice(int(2 * pp.FPS), int(8 * pp.FPS))
    strongest = np.argsort(full.contour[middle].mean(axis=0))[-2:]
    assert set(np.round(strongest / 3).astype(int) + pp.LOWEST_MIDI) == {57, 64}


def test_the_engine_keeps_no_contour():
    from tracklens import features

    a = features.analyze(tone((60, 64, 67), seconds=3.0), sr=pp.SAMPLE_RATE)
    assert a.pitch_posteriors.contour is None and a.pitch_posteriors.note.shape[1] == 88


def test_windows_join_in_order_across_batches():
    """A note that starts late in a file (after BATCH windows) shows where it starts."""
    seconds = (pp.BATCH + 3) * pp._STEP / pp.SAMPLE_RATE
    p = pp.posteriors(tone((69,), seconds=seconds, start=seconds - 2.0), sr=pp.SAMPLE_RATE)
    first = np.flatnonzero(p.note[:, 69 - pp.LOWEST_MIDI] > 0.5)[0] / pp.FPS
    assert abs(first - (seconds - 2.0)) < 0.1
