"""Noise and drums get no key, as silence gets none (key_estimation.NO_TONAL_SPREAD; docs/key-no-tonal.md).

White noise read G# major (confidence 0.16-0.34) on 3 of 3 seeds: only silence had no key.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracklens import audio, config, features, key_estimation as ke, pitch_posteriors

SR = config.SAMPLE_RATE
KEY_FIELDS = ("key", "mode", "key_confidence", "key_runner_up")


def _white(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def _brown(seconds: float, seed: int) -> np.ndarray:
    y = np.cumsum(np.random.default_rng(seed).standard_normal(int(seconds * SR)))
    y -= np.convolve(y, np.ones(2048) / 2048, mode="same")  # no drift below ~10 Hz
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _clip(y: np.ndarray) -> audio.AudioClip:
    return audio.AudioClip(y=y, sr=SR, path=None, source_sr=SR, channels=1, source_duration_s=len(y) / SR)


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("noise, seed", [("white", 0), ("white", 1), ("white", 2), ("brown", 0)])
def test_noise_gets_no_key(noise, seed):
    y = {"white": _white, "brown": _brown}[noise](30.0, seed)
    a = features.analyze(y, sr=SR)
    evidence = ke.KeyEvidence()
    evidence.add(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
    assert np.any(evidence.pitch_sums["bass"] > 0)  # basic-pitch hears "notes": the silence rule alone gave a key
    assert evidence.tonal_spread() < ke.NO_TONAL_SPREAD
    assert a.key is features.NO_KEY


def test_the_rule_reads_how_evenly_the_notes_fall_on_the_pitch_classes():
    """Posteriors over the threshold everywhere, evenly (noise-like) -> no key; the same mass on
    a C major scale -> a key. The rule reads whole octaves C2-B6, so an even posterior is even."""
    y = _white(2.0, 0)
    a = features.analyze(y, sr=SR)
    frames = len(a.pitch_posteriors.note)
    even = np.full((frames, 88), 0.4, np.float32)
    scale = np.full((frames, 88), 0.05, np.float32)
    scale[:, [m - pitch_posteriors.LOWEST_MIDI for m in range(21, 109) if m % 12 in (0, 2, 4, 5, 7, 9, 11)]] = 0.6
    answers = []
    for note in (even, scale):
        evidence = ke.KeyEvidence()
        evidence.add(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning,
                     posteriors=pitch_posteriors.PitchPosteriors(note, np.zeros_like(note)))
        answers.append(evidence.features())
    assert answers[0] is None and answers[1] is not None


def test_noise_reads_as_silence_in_the_features_table_and_on_the_check_page():
    """The engine's row (``tracklens features``, the card's source) and the check page's block
    path (two blocks of a 65 s upload) give noise the key fields silence gets."""
    from tracklens.dashboard import track

    noise, silence = _white(65.0, 3), np.zeros(5 * SR, np.float32)
    rows = [features.featurize_clip(_clip(y), segment_seconds=None).track for y in (noise, silence)]
    assert all(_same(rows[0][f], rows[1][f]) for f in KEY_FIELDS), [{f: r[f] for f in KEY_FIELDS} for r in rows]
    assert rows[0]["key"] == -1
    assert len(track.block_bounds(len(noise), SR)) == 2
    page = [track.analyse(_clip(y)).comparable for y in (noise, silence)]
    assert all(_same(page[0][f], page[1][f]) for f in KEY_FIELDS), [{f: p[f] for f in KEY_FIELDS} for p in page]
    assert all(_same(page[0][f], rows[0][f]) for f in KEY_FIELDS)


def test_the_least_spread_keyed_train_clip_keeps_its_key(gtzan_clip):
    """hiphop.00009 (GTZAN train, annotated with a key) reads the lowest spread of the keyed train
    clips (0.0499): the threshold sits below it, so no keyed train clip loses its key."""
    clip = audio.load_audio(gtzan_clip("hiphop.00009", "full30s"), sr=SR)
    a = features.analyze(clip.y, sr=clip.sr)
    evidence = ke.KeyEvidence()
    evidence.add(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
    assert evidence.tonal_spread() == pytest.approx(0.0499, abs=0.002)  # ONNX and decoders differ slightly per CPU
    assert a.key is not features.NO_KEY and a.key.key >= 0


def test_the_spread_adds_up_over_blocks_and_survives_one_frame_or_none():
    """The check page adds a long upload block by block: the blocks' spread is the whole file's
    (sums over frames, divided only at the end); a 1-frame posterior gives a finite spread and an
    all-zero one (no division by a zero mean) no key."""
    a = features.analyze(_white(1.0, 4), sr=SR)
    note = (np.random.default_rng(5).random((301, 88)) ** 3).astype(np.float32)

    def evidence(*blocks):
        e = ke.KeyEvidence()
        for block in blocks:
            e.add(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning,
                  posteriors=pitch_posteriors.PitchPosteriors(block, np.zeros_like(block)))
        return e

    whole, blocks = evidence(note), evidence(note[:1], note[1:120], note[120:])
    # sums of 301 non-negative terms in another order: relative rounding < 301 * 1.1e-16 on any CPU
    np.testing.assert_allclose(blocks.tonal_sum, whole.tonal_sum, rtol=1e-12)
    assert blocks.tonal_spread() == pytest.approx(whole.tonal_spread(), rel=1e-12) and whole.tonal_spread() > 0
    assert np.isfinite(evidence(note[:1]).tonal_spread())
    silent = evidence(np.zeros((3, 88), np.float32))
    assert silent.tonal_spread() == 0.0 and silent.features() is None
