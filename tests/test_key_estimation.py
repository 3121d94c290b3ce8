"""The learned key estimator: transposition-equivariant, and right on synthetic chord progressions."""

from __future__ import annotations

import numpy as np
import pytest

from tracklens import features, key_estimation as ke

SR = 22050


def _random_features(seed: int) -> ke.KeyFeatures:
    rng = np.random.default_rng(seed)
    chroma = rng.random(12)
    blocks = np.array([(b - b.mean()) / b.std() for b in rng.random((ke.N_BLOCKS, 12))])
    return ke.KeyFeatures(chroma, blocks)


@pytest.mark.parametrize("shift", [1, 5, 7, 11])
def test_transposing_the_profiles_transposes_every_key_probability(shift):
    f = _random_features(shift)
    p, q = ke.KEY_MODEL.probabilities(f), ke.KEY_MODEL.probabilities(f.rotated(shift))
    # key k of the original is key k + shift of the transposed clip, in each mode
    expected = np.concatenate([np.roll(p[:12], shift), np.roll(p[12:], shift)])
    np.testing.assert_allclose(q, expected, rtol=1e-9, atol=1e-12)
    key, mode, *_ = ke.best_keys(p)
    assert ke.best_keys(q)[:2] == ((key + shift) % 12, mode)


def _tone(midi: float, seconds: float) -> np.ndarray:
    """A note with 6 harmonics decaying as 1/h (so its 3rd harmonic sounds a fifth up)."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    y = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 7) if h * f0 < SR / 2)
    return y * np.hanning(len(t)) ** 0.1


def _progression(tonic: int, minor: bool, seconds: float = 1.0, chords=None) -> np.ndarray:
    """I-IV-V-I (i-iv-V-i in minor, with the leading tone), or ``chords`` (semitones above the
    tonic), as triads over a bass note, tonic ``tonic`` (0 = C) in the octave from C4."""
    third = 3 if minor else 4
    chords = chords or [(0, third, 7), (5, 5 + third, 12), (7, 11, 14), (0, third, 7)]
    root = 60 + tonic
    clip = [sum(_tone(root + n, seconds) for n in chord) + _tone(root - 24 + chord[0], seconds) for chord in chords]
    y = np.concatenate(clip)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("tonic, minor", [(0, False), (4, False), (8, False), (10, False),
                                          (9, True), (2, True), (6, True), (11, True)])
def test_synthetic_progressions_are_read_in_their_key(tonic, minor):
    a = features.analyze(_progression(tonic, minor), sr=SR)
    f = ke.key_features(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
    key, mode, confidence, runner_key, runner_mode = ke.best_keys(ke.KEY_MODEL.probabilities(f))
    assert (key, mode) == (tonic, 0 if minor else 1), features.KEY_NAMES[key + 12 * (1 - mode)]
    assert 0.0 < confidence <= 1.0 and (runner_key, runner_mode) != (key, mode)


def test_a_fitted_model_learns_the_keys_it_was_shown():
    # clips whose octave profiles put a triad on the tonic; labels: the triad's key
    rng = np.random.default_rng(0)
    examples, labels = [], []
    for i in range(48):
        tonic, minor = i % 12, i % 2
        v = np.full(12, 0.1) + 0.05 * rng.random(12)
        v[[tonic, (tonic + 3 + (1 - minor)) % 12, (tonic + 7) % 12]] += 1.0
        z = (v - v.mean()) / v.std()
        examples.append(ke.KeyFeatures(v, np.tile(z, (ke.N_BLOCKS, 1))))
        labels.append(tonic + 12 * minor)
    model = ke.fit_key_model(examples, np.array(labels), l2=1.0)
    assert [ke.best_keys(model.probabilities(f))[:2] for f in examples] == \
        [(lab % 12, 1 - lab // 12) for lab in labels]


def test_a_model_fitted_on_more_blocks_keeps_them_all():
    # bench/key_basic_pitch.py fits the model on extra profile blocks: the templates follow the examples
    rng = np.random.default_rng(1)
    examples, labels = [], []
    for i in range(48):
        tonic, minor = i % 12, i % 2
        noise = rng.random((3, 12))
        informative = np.full(12, 0.1)
        informative[[tonic, (tonic + 3 + (1 - minor)) % 12, (tonic + 7) % 12]] += 1.0
        blocks = np.vstack([noise[:2], informative, noise[2:]])  # only the third of 4 blocks knows the key
        z = (blocks - blocks.mean(axis=1, keepdims=True)) / blocks.std(axis=1, keepdims=True)
        examples.append(ke.KeyFeatures(rng.random(12), z))
        labels.append(tonic + 12 * minor)
    model = ke.fit_key_model(examples, np.array(labels), l2=1.0)
    assert model.templates.shape == (2, 4, 12)
    assert np.abs(model.templates[:, 2]).sum() > np.abs(model.templates[:, [0, 1, 3]]).sum(axis=(0, 2)).max()
    assert [ke.best_keys(model.probabilities(f))[:2] for f in examples] == \
        [(lab % 12, 1 - lab // 12) for lab in labels]


def test_silence_has_no_key_and_blocks_add_up_to_the_track():
    assert features.analyze(np.zeros(SR, dtype=np.float32), sr=SR).key is features.NO_KEY
    # the check page adds a long upload block by block: two halves read as the whole
    y = np.concatenate([_progression(7, False), _progression(7, False)])
    evidence = ke.KeyEvidence()
    for half in (y[: len(y) // 2], y[len(y) // 2:]):
        a = features.analyze(half, sr=SR)
        evidence.add(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
    assert (features.learned_key(evidence).key, features.learned_key(evidence).mode) == (7, 1)
    assert evidence.n_frames == 2 * features.analyze(y[: len(y) // 2], sr=SR).n_frames


def test_silence_has_no_key_even_where_the_chroma_is_not_flat():
    """basic-pitch's posteriors idle below its note threshold where nothing plays (not at 0): the
    thresholded profiles stay empty and the evidence names no key, whatever the chroma says."""
    a = features.analyze(np.zeros(3 * SR, dtype=np.float32), sr=SR)
    assert 0.0 < a.pitch_posteriors.note.max() < ke.FRAME_THRESHOLD
    sums = ke.pitch_class_sums(a.pitch_posteriors.note)
    assert not any(sums[name].any() for name in ke.BP_BLOCKS) and sums[ke.PROFILE_SOURCE].all()
    tonal_chroma = np.tile(np.roll(ke.PROFILE[0], 7)[:, None] + 3.0, (1, a.n_frames))  # G major, if read alone
    evidence = ke.KeyEvidence()
    evidence.add(a.y, sr=a.sr, chroma=tonal_chroma, tuning=0.0, posteriors=a.pitch_posteriors)
    assert evidence.features() is None


def _key_rows(specs, seconds=0.75):
    """Engine features (audio -> features.analyze -> key_features) of synthetic progressions:
    ``specs`` of (tonic, minor, chords or None)."""
    rows = []
    for tonic, minor, chords in specs:
        a = features.analyze(_progression(tonic, minor, seconds, chords), sr=SR)
        f = ke.key_features(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
        rows.append({"features": f, "label": tonic + 12 * minor})
    return rows


def test_the_shipped_choice_learns_keys_it_was_not_shown():
    """The recipe's shipped choice (every block, profile on basic-pitch's note_sq, L2 300), fitted
    on the engine's features of cadences in 4 keys, names the key of other progressions
    (I-vi-IV-V, i-VI-iv-V) at 6 other tonics."""
    from recipe_modules import key_model

    train = _key_rows([(0, 0, None), (5, 0, None), (9, 1, None), (2, 1, None)])
    model = key_model.fit(train, [], key_model.Choice(300.0, 0.5, "chroma+cqt+bands_thr+bass"))
    assert model.templates.shape == (2, ke.N_BLOCKS, 12)
    pop = [(0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14)]
    minor_pop = [(0, 3, 7), (8, 12, 15), (5, 8, 12), (7, 11, 14)]
    held_out = _key_rows([(3, 0, pop), (7, 0, pop), (11, 0, pop), (1, 1, minor_pop), (4, 1, minor_pop),
                          (10, 1, minor_pop)])
    keys = [ke.best_keys(model.probabilities(r["features"]))[:2] for r in held_out]
    assert keys == [(r["label"] % 12, 1 - r["label"] // 12) for r in held_out]


def test_the_check_page_reads_the_key_the_engine_reads():
    """A short upload is one block of the check page's analysis: its key, confidence and
    runner-up are the engine's (features.Analysis.key) on the same signal."""
    from tracklens.audio import AudioClip
    from tracklens.dashboard import track

    y = np.concatenate([_progression(2, True, chords=[(0, 3, 7), (8, 12, 15), (5, 8, 12), (7, 11, 14)]),
                        _progression(2, True)])
    clip = AudioClip(y=y, sr=SR, path=None, source_sr=SR, channels=1, source_duration_s=len(y) / SR)
    page = track.analyse(clip).comparable
    engine = features.analyze(y, sr=SR).key
    assert (page["key"], page["mode"], page["key_runner_up"]) == (engine.key, engine.mode, engine.runner_up_name)
    # one block: the same code on the same signal in one process, so equal on any CPU up to rounding
    assert page["key_confidence"] == pytest.approx(engine.confidence, abs=1e-9)
    assert (engine.key, engine.mode) == (2, 0)


def test_the_recipe_prints_the_shipped_constants_as_pasteable_source():
    """recipes/key_model.py prints each fit as key_estimation.py source: read back, it is the model."""
    from recipe_modules import key_model  # recipes/key_model.py (not installed)

    for name in ("KEY_MODEL", "KEY_MODEL_TRAIN_ONLY"):
        namespace = vars(ke).copy()
        exec(key_model.constants_source(name, getattr(ke, name)), namespace)
        np.testing.assert_array_equal(namespace[name].vector, getattr(ke, name).vector)


def test_the_recipes_feature_sets_leave_the_other_templates_at_zero():
    from recipe_modules import key_model

    rows = [{"features": _random_features(seed), "label": seed % 24} for seed in range(30)]
    for name, keep in key_model.FEATURE_SETS.items():
        model = key_model.fit(rows, [], key_model.Choice(l2=1.0, snippet_weight=0.0, feature_set=name))
        unused = [b for b in range(ke.N_BLOCKS) if b not in keep]
        assert np.all(model.templates[:, unused] == 0) and np.all(np.any(model.templates[:, list(keep)] != 0, axis=2))


def test_the_named_key_is_the_one_with_the_highest_expected_mirex_weight():
    """The model hesitating between F major (0.40) and C major (0.38), a fifth above F: naming C
    major earns 0.38 + 0.5 * 0.40 in expectation (MIREX gives half to an estimate a fifth above
    the truth), naming F major 0.40 + 0.5 * p(B-flat major) = 0.405."""
    p = np.full(24, 0.22 / 22)
    p[5], p[0] = 0.40, 0.38
    key, mode, confidence, runner_key, runner_mode = ke.best_keys(p)
    assert (key, mode, runner_key, runner_mode) == (0, 1, 5, 1)
    assert confidence == pytest.approx(0.38)


@pytest.mark.parametrize("seed", range(5))
def test_the_decision_maximises_the_expected_mirex_score(seed):
    p = np.random.default_rng(seed).dirichlet(np.full(24, 0.3), size=50)
    keys = [(k % 12, 1 - k // 12) for k in range(24)]
    for q in p:
        expected = [sum(q[r] * features.mirex_key_score(e, keys[r]) for r in range(24)) for e in keys]
        key, mode, confidence, *_ = ke.best_keys(q)
        # 24 products of numbers <= 1 summed in another order: they differ by < 24 ulp (~5e-15) on any CPU
        assert expected[keys.index((key, mode))] == pytest.approx(max(expected), abs=1e-12)
        assert confidence == q[keys.index((key, mode))]


def _triad_examples(seed: int = 0, n: int = 48):
    """Toy clips whose profiles put a noisy triad on the tonic; labels: the triad's key."""
    rng = np.random.default_rng(seed)
    examples, labels = [], []
    for i in range(n):
        tonic, minor = i % 12, i % 2
        v = np.full(12, 0.1) + 0.5 * rng.random(12)
        v[[tonic, (tonic + 3 + (1 - minor)) % 12, (tonic + 7) % 12]] += 1.0
        z = (v - v.mean()) / v.std()
        examples.append(ke.KeyFeatures(v, np.tile(z, (ke.N_BLOCKS, 1)) + 0.3 * rng.standard_normal((ke.N_BLOCKS, 12))))
        labels.append(tonic + 12 * minor)
    return examples, np.array(labels)


def _decision_aware_objective(w, examples, labels, l2, *, smoothing=0.0, credit_loss=False):
    """fit_key_model's documented objective, written out independently (one example at a time)."""
    reg = np.full(len(w), l2)
    reg[0], reg[-1] = 1e-3, 0.0
    total = 0.5 * (reg * w) @ w
    for f, y in zip(examples, labels):
        s = ke.design(f) @ w
        log_p = s - s.max() - np.log(np.exp(s - s.max()).sum())
        credit = ke.MIREX_CREDIT[:, y]
        if credit_loss:
            total -= np.log(credit @ np.exp(log_p))
        else:
            partial = np.where(np.arange(ke.N_KEYS) == y, 0.0, credit)
            target = (1 - smoothing) * (np.arange(ke.N_KEYS) == y) + smoothing * partial / partial.sum()
            total -= target @ log_p
    return total


@pytest.mark.parametrize("options", [{"smoothing": 0.5}, {"credit_loss": True}])
def test_the_decision_aware_fits_minimise_their_stated_loss(options):
    # bench/key_decision.py's variants: the fitted weights are a minimum of the loss the docstring
    # states (a wrong gradient would stop L-BFGS elsewhere)
    examples, labels = _triad_examples()
    w = ke.fit_key_model(examples, labels, l2=10.0, **options).vector
    at_fit = _decision_aware_objective(w, examples, labels, 10.0, **options)
    rng = np.random.default_rng(3)
    for _ in range(10):
        step = rng.standard_normal(len(w))
        step *= 0.05 / np.linalg.norm(step)
        assert _decision_aware_objective(w + step, examples, labels, 10.0, **options) > at_fit - 1e-6


def test_label_smoothing_moves_probability_to_the_keys_mirex_credits():
    examples, labels = _triad_examples()
    plain, smooth = (ke.fit_key_model(examples, labels, l2=10.0, smoothing=a) for a in (0.0, 0.5))

    def mean_p(model, interval):  # mean probability of the key `interval` semitones above the truth, same mode
        return np.mean([model.probabilities(f)[(y // 12) * 12 + (y + interval) % 12] for f, y in zip(examples, labels)])

    assert mean_p(smooth, 0) < mean_p(plain, 0)
    assert mean_p(smooth, 7) > mean_p(plain, 7)  # a fifth up earns 0.5
    assert mean_p(smooth, 7) > 2 * mean_p(smooth, 5)  # a fifth down earns nothing


@pytest.mark.parametrize("p", [np.full(24, np.nan), np.r_[np.nan, np.full(23, 1 / 23)], np.zeros(0), np.full(12, 1 / 12)],
                         ids=["all NaN", "one NaN", "empty", "12 keys"])
def test_probabilities_that_are_not_24_finite_values_are_refused(p):
    # a NaN made every expected MIREX score NaN: argmax then named C major with confidence NaN
    with pytest.raises(ValueError, match="24 finite key probabilities"):
        ke.best_keys(p)


def test_ties_name_a_key_and_a_different_runner_up():
    key, mode, confidence, runner_key, runner_mode = ke.best_keys(np.full(24, 1 / 24))  # every key alike
    assert (key, mode) != (runner_key, runner_mode) and confidence == pytest.approx(1 / 24)
    p = np.zeros(24)
    p[[3, 15]] = 0.5  # E-flat major and E-flat minor exactly tied (and parallel: 0.2 each way)
    key, mode, confidence, runner_key, runner_mode = ke.best_keys(p)
    assert {(key, mode), (runner_key, runner_mode)} == {(3, 1), (3, 0)} and confidence == 0.5
