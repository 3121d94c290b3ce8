"""Spotify-style descriptors estimated from audio: the FMA feature recipe, the shipped estimator
(held-out figures, bounds, card, no pickle) and a small end-to-end build (recipes/descriptors.py)."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

from tracklens import features
from tracklens.errors import TracklensError
from tracklens.models import descriptors

from recipe_modules import descriptors_recipe  # recipes/descriptors.py (not installed)

SR = 22_050


@pytest.fixture
def fresh_estimator_cache():
    descriptors.load_estimator.cache_clear()
    yield
    descriptors.load_estimator.cache_clear()


def _direct_librosa_means(y: np.ndarray) -> np.ndarray:
    """FMA features.py's calls (librosa 0.5 arguments), one librosa call per feature."""
    import librosa

    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    groups = (
        librosa.feature.chroma_stft(S=S**2),
        librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=S**2)), n_mfcc=20),
        np.sqrt(np.mean(S**2, axis=0, keepdims=True)),  # librosa 0.5's rmse(S=S)
        librosa.feature.spectral_bandwidth(S=S),
        librosa.feature.spectral_centroid(S=S),
        librosa.feature.spectral_contrast(S=S, n_bands=6),
        librosa.feature.spectral_rolloff(S=S),
        librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512),
    )
    return np.concatenate([g.mean(axis=1) for g in groups])


def test_recipe_equals_direct_librosa_calls(shared_data):
    from tracklens.audio import load_audio

    # rock.00008: its tuning estimate from every 2nd frame is 0.11 bin off the full one
    y = load_audio(shared_data / "gtzan" / "audio" / "rock" / "rock.00008.opus", sr=SR).y
    ours = descriptors.fma_feature_means(features.analyze(y, sr=SR))
    assert list(ours) == list(descriptors.STFT_COLUMNS)
    np.testing.assert_allclose(np.array(list(ours.values())), _direct_librosa_means(y), rtol=1e-4, atol=1e-4)


def test_recipe_refuses_an_analysis_with_other_settings():
    y = np.random.default_rng(0).uniform(-0.5, 0.5, 16_000).astype(np.float32)
    with pytest.raises(TracklensError, match="descriptor features need"):
        descriptors.fma_feature_means(features.analyze(y, sr=16_000))


def test_shipped_estimator_beats_mean_baseline_on_held_out_rows(shared_data):
    table = descriptors_recipe.read_training_table(shared_data / descriptors.TRAINING_TABLE)
    estimator = descriptors.load_estimator()
    held_out = descriptors_recipe.held_out_mask(len(table), seed=estimator.card["seed"])
    predicted = estimator.predict(table.loc[held_out, list(descriptors.STFT_COLUMNS)].to_numpy())
    assert set(predicted) == {"acousticness", "energy"}
    for name, values in predicted.items():
        target = table.loc[held_out, name].to_numpy()
        train_mean = table.loc[~held_out, name].mean()
        r2, mae = descriptors_recipe.r2_and_mae(target, values)
        assert r2 >= descriptors.MIN_R2, name
        assert mae < 0.6 * np.mean(np.abs(target - train_mean)), name  # measured 0.37-0.46x
        card_figures = estimator.card["descriptors"][name]["held_out"]
        assert (r2, mae) == pytest.approx((card_figures["r2"], card_figures["mae"]), abs=1e-4), name


def _signal(kind: str, seconds: float = 5.0) -> np.ndarray:
    """"sine" (440 Hz), "noise" (white, loud) or "chord" (4 sines + noise below 4 kHz, which
    survives resampling: white noise near Nyquist does not, and moves the estimates)."""
    import scipy.signal

    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(0)
    if kind == "sine":
        return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if kind == "noise":
        return rng.uniform(-0.9, 0.9, t.size).astype(np.float32)
    lowpass = scipy.signal.butter(8, 4000, fs=SR, output="sos")
    chord = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 880.0))
    return (chord + 0.3 * scipy.signal.sosfilt(lowpass, rng.normal(size=t.size))).astype(np.float32)


@pytest.mark.parametrize("kind", ["sine", "noise"])  # unclipped: acousticness 1.11 / energy 1.49
def test_estimate_on_a_synthetic_signal_is_bounded_and_named(kind):
    result = descriptors.estimate(_signal(kind), sr=SR)
    card = descriptors.load_estimator().card
    assert list(result) == card["shipped"] == ["acousticness", "energy"]
    for name, (value, error) in result.items():
        assert 0.0 <= value <= 1.0, (name, value)
        assert error == card["descriptors"][name]["held_out"]["mae"]
    columns = descriptors.estimate_columns(features.analyze(_signal(kind), sr=SR))
    assert columns == {f"{name}_est": est.value for name, est in result.items()}


def test_estimate_resamples_other_rates_and_wants_one_input():
    import librosa

    y = _signal("chord")
    at_44k = librosa.resample(y, orig_sr=SR, target_sr=44_100)
    expected = {name: result.value for name, result in descriptors.estimate(y, sr=SR).items()}
    got = {name: result.value for name, result in descriptors.estimate(at_44k, sr=44_100).items()}
    assert got == pytest.approx(expected, abs=0.02)  # measured: energy 0.763 vs 0.764; unresampled 0.59
    with pytest.raises(TracklensError, match="exactly one"):
        descriptors.estimate()


def test_card_lists_exactly_the_descriptors_that_reach_min_r2():
    estimator = descriptors.load_estimator()
    card = estimator.card
    reach = [name for name in descriptors.DESCRIPTORS
             if min(card["descriptors"][name]["held_out"]["r2"],
                    card["descriptors"][name]["cv"][card["descriptors"][name]["model"]]["r2"]) >= descriptors.MIN_R2]
    assert card["shipped"] == reach == list(estimator.descriptors)
    assert sorted(card["not_shipped"]) == sorted(set(descriptors.DESCRIPTORS) - set(reach))
    assert card["label"] == descriptors.DESCRIPTOR_LABEL


def test_loading_never_unpickles(monkeypatch, fresh_estimator_cache):
    def refuse(*args, **kwargs):
        raise AssertionError("the descriptor estimator must load without pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    estimator = descriptors.load_estimator()
    assert set(estimator.predict(np.zeros((1, 44)))) == set(estimator.card["shipped"])
    shipped_files = sorted(p.name for p in descriptors.ESTIMATOR_DIR.iterdir())
    assert shipped_files == ["card.json", "estimator.json"]
    for name in shipped_files:
        json.loads((descriptors.ESTIMATOR_DIR / name).read_text())


def test_edited_estimator_is_refused(tmp_path, fresh_estimator_cache):
    copy = tmp_path / "descriptors"
    shutil.copytree(descriptors.ESTIMATOR_DIR, copy)
    spec = json.loads((copy / "estimator.json").read_text())
    spec["descriptors"]["energy"]["layers"][-1]["bias"][0] += 0.5
    (copy / "estimator.json").write_text(json.dumps(spec, indent=1) + "\n")
    with pytest.raises(TracklensError, match="SHA-256"):
        descriptors.load_estimator(copy)
    with pytest.raises(TracklensError, match="cannot read"):
        descriptors.load_estimator(tmp_path / "absent")
    card = json.loads((copy / "card.json").read_text())
    del card["descriptors"]
    (copy / "card.json").write_text(json.dumps(card))
    shutil.copy(descriptors.ESTIMATOR_DIR / "estimator.json", copy / "estimator.json")
    with pytest.raises(TracklensError, match="malformed"):
        descriptors.load_estimator(copy)


def _synthetic_table(n_rows: int = 120):
    """Features from 2 latent factors; acousticness is linear in them (ridge ships), energy is
    not (the MLP ships), valence is weakly linear (held-out R² ~0.35: not shipped)."""
    import pandas as pd

    rng = np.random.default_rng(1)
    columns = descriptors.STFT_COLUMNS + descriptors.CQT_COLUMNS
    latent = rng.normal(size=(n_rows, 2))
    table = pd.DataFrame(latent @ rng.normal(size=(2, len(columns))) + 0.05 * rng.normal(size=(n_rows, len(columns))),
                         columns=columns)
    table["acousticness"] = np.clip(0.5 + 0.2 * latent[:, 1] + rng.normal(0, 0.02, n_rows), 0, 1)
    table["energy"] = np.clip(0.1 + 0.3 * np.abs(latent[:, 0]), 0, 1)
    table["valence"] = np.clip(0.5 + 0.1 * latent[:, 1] + rng.normal(0, 0.15, n_rows), 0, 1)
    table.loc[3, "valence"] = np.nan  # empty cells are dropped per descriptor
    for name in set(descriptors.DESCRIPTORS) - {"acousticness", "energy", "valence"}:
        table[name] = rng.uniform(0, 1, n_rows)
    table["genre_parent_title"] = "Rock"
    return table


def test_build_writes_an_estimator_that_predicts_like_scikit_learn(tmp_path, monkeypatch, fresh_estimator_cache):
    monkeypatch.setattr(descriptors_recipe, "CV_REPEATS", 1)
    monkeypatch.setattr(descriptors_recipe, "BOOTSTRAP_ROUNDS", 50)
    monkeypatch.setattr(descriptors_recipe, "DESCRIPTORS", ("acousticness", "energy", "valence"))
    table_path = tmp_path / "table.csv"
    _synthetic_table().to_csv(table_path, index=False)
    card = descriptors_recipe.build(table_path, tmp_path / "model", seed=0)
    assert card["shipped"] == ["acousticness", "energy"]
    assert [card["descriptors"][name]["model"] for name in card["shipped"]] == ["ridge", "mlp"]
    estimator = descriptors.load_estimator(tmp_path / "model")
    table = descriptors_recipe.read_training_table(table_path)
    held_out = descriptors_recipe.held_out_mask(len(table), seed=0)
    predicted = estimator.predict(table.loc[held_out, list(descriptors.STFT_COLUMNS)].to_numpy())
    for name, values in predicted.items():
        r2, mae = descriptors_recipe.r2_and_mae(table.loc[held_out, name].to_numpy(), values)
        figures = card["descriptors"][name]["held_out"]
        assert (r2, mae) == pytest.approx((figures["r2"], figures["mae"]), abs=1e-4), name
        assert r2 > 0.6, name


def test_features_command_adds_the_estimates_to_track_rows(run_cli, tmp_path):
    """`tracklens features` output carries acousticness_est / energy_est on each track row (the
    values `estimate` gives for the same audio) and leaves segment rows empty."""
    import pandas as pd
    import soundfile as sf

    from tracklens.audio import load_audio

    for kind in ("sine", "noise"):
        (tmp_path / "audio" / kind).mkdir(parents=True)
        sf.write(tmp_path / "audio" / kind / f"{kind}.wav", _signal(kind, 7.0), 22050)
    out = tmp_path / "features.parquet"
    code, stdout, stderr = run_cli("features", tmp_path / "audio", "--out", out, "--cache-dir", tmp_path / "cache")
    assert code in (0, None), stderr
    table = pd.read_parquet(out)
    shipped = [f"{name}_est" for name in descriptors.load_estimator().descriptors]
    assert shipped == ["acousticness_est", "energy_est"] and list(table.columns[-2:]) == shipped
    tracks = table[table["segment"] == -1].set_index("track_id")
    for kind in ("sine", "noise"):
        clip = load_audio(tmp_path / "audio" / kind / f"{kind}.wav", sr=22050)
        expected = descriptors.estimate(clip.y, sr=clip.sr)
        for name, result in expected.items():
            assert tracks.loc[kind, f"{name}_est"] == pytest.approx(result.value, abs=1e-6)
    assert tracks.loc["sine", "acousticness_est"] > tracks.loc["noise", "acousticness_est"]
    assert table.loc[table["segment"] >= 0, shipped].isna().all().all()
