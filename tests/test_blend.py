"""The genre blend on any registered model kind: sample rates, the whole track, the output
contract (fit, tags, chart genres), the heads' exact export, chart-genre tags and the shipped models.

Stub models (fixed outputs, no TensorFlow) test the blend's plumbing; the shipped models and the
learning test use the real EfficientAT network and skip without ../shared/data where they need it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens.audio import AudioClip
from tracklens.errors import TracklensError
from tracklens.models import blend, chart_genres, efficientat, efficientat_models, output, registry, store

from recipe_modules import heads  # recipes/heads.py (not installed)

GENRES = ["pop", "rock"]


class _Fixed:
    """Stands in for a Keras model: every window is 80 % pop."""

    def __call__(self, x, training=False):
        return np.tile([0.8, 0.2], (len(x), 1))


def _stub(kind: str, *, sample_rate: int, window_s: float) -> blend.GenreModel:
    card = {"name": "stub", "genres": GENRES,
            "input": {"kind": kind, "window_s": window_s, "shape": [1], "columns": ["x"], "sample_rate": sample_rate},
            "calibration": {"temperature": 1.0, "aggregation": "mean_logprob"}}
    return blend.GenreModel(_Fixed(), card, Path("stub"))


@pytest.fixture
def seen_rates(monkeypatch):
    """Replace the model inputs by one row per ``window_s`` of each block; record each block's rate."""
    rates = []

    def window_inputs(model, part, *, short_input):
        rates.append(part.sr)
        starts = np.arange(0.0, part.duration_s - 1e-6, model.window_s)
        spans = [(float(s), float(min(s + model.window_s, part.duration_s))) for s in starts]
        return blend.WindowRows(np.zeros((len(spans), 1), np.float32), spans)

    monkeypatch.setattr(blend, "_window_inputs", window_inputs)
    return rates


def _clip(seconds: float, sr: int) -> AudioClip:
    y = 0.1 * np.sin(np.arange(int(seconds * sr)) / 7.0).astype(np.float32)
    return AudioClip(y=y, sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=seconds)


def _wav(path: Path, seconds: float, sr: int = 22050) -> Path:
    import soundfile as sf

    sf.write(path, _clip(seconds, sr).y, sr)
    return path


# --- the blend serves any kind, at the card's rate, over the whole track --------------------------------


@pytest.mark.parametrize("kind, rate", [("efficientat", 32_000), ("musicnn", 16_000), ("summary", 22_050)])
def test_audio_is_decoded_at_the_cards_sample_rate(kind, rate, seen_rates, tmp_path):
    """Files were always decoded at 22 050 Hz (then resampled again inside musicnn / EfficientAT)."""
    model = _stub(kind, sample_rate=rate, window_s=10.0)
    blend.predict_blend(model, _wav(tmp_path / "a.wav", 12.0), judge_fit=False)
    blend.predict_blend(model, _clip(12.0, 44_100), judge_fit=False)  # in-memory audio is resampled to it
    assert seen_rates == [rate, rate]


def test_the_whole_track_is_blended_and_says_which_seconds(seen_rates):
    """A 4-minute track: every 10 s window, 0-240 s, and the status line says so (the check page
    used to blend 60 s and draw the rest as if measured)."""
    model = _stub("efficientat", sample_rate=1000, window_s=10.0)
    whole = blend.predict_blend(model, _clip(240.0, 1000), judge_fit=False)
    assert (whole.timeline["start_s"].iloc[0], whole.timeline["end_s"].iloc[-1]) == (0.0, 240.0)
    assert len(whole.timeline) == 24 and whole.analysed == [(0.0, 240.0)] and whole.analysed_s == 240.0
    assert "blended 240 s of the 240 s track (24 windows of 10 s)" in whole.notes
    capped = blend.predict_blend(model, _clip(240.0, 1000), max_seconds=60, judge_fit=False)
    assert capped.analysed == [(60.0, 90.0), (150.0, 180.0)] and capped.analysed_s == 60.0
    assert "blended 60 s of the 240 s track: 60-90 s, 150-180 s" in capped.notes
    one = blend.predict_blend(model, _clip(8.0, 1000), judge_fit=False)  # the check page read "(1 windows of 10 s)"
    assert "blended 8 s of the 8 s track (1 window of 10 s)" in one.notes


# --- the output contract ------------------------------------------------------------------------------


def _blend(fit: str | None = "ok", tags: dict | None = None) -> blend.Blend:
    return blend.Blend(path="a.wav", genres=GENRES, probabilities=np.array([0.7, 0.3]), timeline=pd.DataFrame(),
                       duration_s=30.0, model="stub", fit=fit, fit_reason="sounds like Techno (0.22)",
                       wider_genres=[("Techno", 0.22)], chart_genres=[("Dance/Electronic", 0.22), ("pop", 0.05)],
                       tags=tags, tags_source="MSD_musicnn")


def test_csv_has_a_trailing_fit_column_and_tags_after_it():
    from tracklens import fileio

    results = [_blend("poor", {"=cmd": 0.5, "rock": 0.4}), TracklensError("b.wav: corrupt")]
    frame = output.csv_frame(["a.wav", "b.wav"], results, GENRES)
    assert list(frame.columns) == ["path", "top_genre", *GENRES, "fit"] and list(frame["fit"]) == ["poor", ""]
    text = "".join(output.format_pieces(["a.wav", "b.wav"], results, GENRES, fmt="csv", tags=True))
    assert ",poor,'=cmd:0.500;rock:0.400\n" in text  # a formula-like cell is escaped in the file
    back = fileio.read_csv(io.StringIO(text), keep_default_na=False)
    assert list(back.columns)[-2:] == ["fit", "tags"]
    assert back.loc[0, "tags"] == "=cmd:0.500;rock:0.400" and back.loc[1, "tags"] == ""


def test_json_and_table_show_fit_chart_genres_and_tags_from_the_blend():
    text = output.format_results(["a.wav"], [_blend("poor", {"rock": 0.5, "pop": 0.1})], GENRES, fmt="json", tags=True)
    item = json.loads(text)[0]
    assert (item["fit"], item["fit_reason"], item["wider_genres"]) == ("poor", "sounds like Techno (0.22)", [["Techno", 0.22]])
    assert item["chart_genres"][0] == ["Dance/Electronic", 0.22] and "uncalibrated" in item["chart_genres_note"]
    assert item["tags"] == [["rock", 0.5], ["pop", 0.1]] and item["tags_source"] == "MSD_musicnn"
    table = output.format_results(["a.wav"], [_blend("poor", {"rock": 0.5})], GENRES, fmt="table", tags=True)
    assert "fit: POOR, sounds like Techno" in table and "Dance/Electronic 0.22" in table
    assert "MSD_musicnn tags: rock 0.50" in table


# --- heads: exported exactly; fusion windows; registry --------------------------------------------------


def test_heads_export_exactly_into_keras():
    """A linear head, an MLP and a late fusion of two linear heads reproduce scikit-learn's
    probabilities (the fusion: softmax of the weighted sum of the heads' log-probabilities)."""
    from tracklens.models import evaluate

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(120, 8)) * [1, 2, 3, 4, 5, 6, 7, 300]).astype(np.float32)
    y = rng.integers(0, 3, 120)
    for kind in ("linear", "mlp"):
        pipeline = heads.fit_head(kind, x, y, 0.5)
        model = heads.to_keras([pipeline], [kind], (1.0,), 3)
        np.testing.assert_allclose(np.asarray(model(x)), pipeline.predict_proba(x), atol=1e-5)
    a, b = heads.fit_head("linear", x[:, :5], y, 0.3), heads.fit_head("linear", x[:, 5:], y, 0.1)
    fused = heads.to_keras([a, b], ["linear", "linear"], (0.7, 0.3), 3)
    expected = evaluate.softmax(0.7 * np.log(a.predict_proba(x[:, :5])) + 0.3 * np.log(b.predict_proba(x[:, 5:])), axis=1)
    np.testing.assert_allclose(np.asarray(fused(x)), expected, atol=1e-5)


def test_fusion_windows_average_the_patches_centred_in_them(monkeypatch):
    from tracklens.models import musicnn

    starts = np.arange(10) * 2.992  # a 30 s block's patches
    fake = {"embedding": np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 200), np.float32),
            "taggram": np.zeros((10, 50), np.float32), "starts_s": starts}
    monkeypatch.setattr(musicnn, "embed", lambda clip: fake)
    means = efficientat_models.musicnn_window_means(None, [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)])
    # centres 1.5, 4.5, 7.5 | 10.5, 13.5, 16.5, 19.4 | 22.4, 25.4, 28.4
    np.testing.assert_allclose(means[:, 0], [1.0, 4.5, 8.0])


def test_registry_knows_the_efficientat_kinds():
    assert registry.sample_rate("efficientat") == registry.sample_rate("fusion") == efficientat.SAMPLE_RATE
    assert "efficientat_linear" not in registry.parse_names("all")
    with pytest.raises(TracklensError, match="make default-model"):
        registry.parse_names("linear,fusion_linear")


def test_shipped_models_resolve_by_name(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "TRAINED_MODELS_DIR", tmp_path)  # no trained model of that name
    assert blend.resolve_model_dir("default-fast") == blend.FAST_MODEL_DIR == config.MODELS_DIR / "default-fast"
    with pytest.raises(TracklensError, match="no such folder"):
        blend.resolve_model_dir("default-slow")


def test_predict_blend_takes_a_models_name_and_names_anything_else(monkeypatch, tmp_path):
    # blend.predict_blend("default-fast", path) was AttributeError: 'str' object has no attribute 'window_s'
    monkeypatch.setattr(config, "TRAINED_MODELS_DIR", tmp_path)
    loaded = []
    monkeypatch.setattr(blend.GenreModel, "load", classmethod(lambda cls, path: loaded.append(path) or 1 / 0))
    with pytest.raises(ZeroDivisionError):  # got as far as loading the named model's folder
        blend.predict_blend("default-fast", "song.mp3")
    assert loaded == [blend.FAST_MODEL_DIR]
    with pytest.raises(TracklensError, match="no such folder"):
        blend.predict_blend("default-slow", "song.mp3")
    with pytest.raises(TracklensError, match="model=3: give a loaded GenreModel, a model's name or folder, or None"):
        blend.predict_blend(3, "song.mp3")


# --- chart-genre tags -----------------------------------------------------------------------------------


def test_chart_genre_map_covers_every_chart_genre_with_real_audioset_classes():
    indices = chart_genres.class_indices(efficientat.class_names())
    assert set(indices) == set(chart_genres.CHART_GENRES) and all(indices.values())


def test_chart_vocabulary_is_the_chart_tables(shared_data):
    vocabulary = chart_genres.chart_vocabulary(shared_data / "spotify" / "songs_normalize.csv")
    assert vocabulary == list(chart_genres.CHART_GENRES)


def test_chart_genre_scores_rank_the_strongest_class():
    names = efficientat.class_names()
    likelihoods = np.full(len(names), 0.01)
    likelihoods[names.index("Techno")] = 0.3
    likelihoods[names.index("Pop music")] = 0.1
    scores = chart_genres.chart_genre_scores(likelihoods, names)
    assert scores[:2] == [("Dance/Electronic", 0.3), ("pop", 0.1)] and len(scores) == len(chart_genres.CHART_GENRES)


# --- learning, and the shipped models ---------------------------------------------------------------------


# Four full clips per genre and fold, by id (the manifest's first four moved as ../shared grew).
HEAD_CLIPS = {
    "train": ["classical.00048", "classical.00051", "classical.00053", "classical.00054", "country.00019",
              "country.00025", "country.00066", "country.00069", "jazz.00000", "jazz.00001", "jazz.00011",
              "jazz.00012", "metal.00002", "metal.00003", "metal.00005", "metal.00021"],
    "valid": ["classical.00000", "classical.00001", "classical.00002", "classical.00003", "country.00000",
              "country.00001", "country.00002", "country.00003", "jazz.00002", "jazz.00003", "jazz.00004",
              "jazz.00005", "metal.00000", "metal.00001", "metal.00006", "metal.00007"],
}


@pytest.mark.slow  # EfficientAT on 32 real clips (26 s in make test-fast)
def test_an_efficientat_head_learns_genres_of_held_out_artists(shared_data, gtzan_clip):
    """Train on train-fold clips, score the artist-disjoint valid fold's clips (4 genres, chance 0.25)."""
    from tracklens.audio import load_audio

    folds = heads.shared_files(shared_data / "gtzan").set_index("clip")["fold"]
    columns = list(efficientat_models.EMBEDDING_COLUMNS)
    rows = {}
    for fold, clips in HEAD_CLIPS.items():
        assert (folds.loc[clips] == fold).all(), fold
        for clip in clips:
            audio = load_audio(gtzan_clip(clip, "full30s"), sr=efficientat.SAMPLE_RATE)
            rows[clip] = efficientat_models.window_inputs(audio, columns).x
    genre = {clip: clip.split(".")[0] for clip in rows}
    x = np.vstack([rows[c] for c in HEAD_CLIPS["train"]])
    y = np.concatenate([[genre[c]] * len(rows[c]) for c in HEAD_CLIPS["train"]])
    head = heads.fit_head("linear", x, y, 0.1)
    predicted = [head.classes_[np.log(head.predict_proba(rows[c])).mean(axis=0).argmax()] for c in HEAD_CLIPS["valid"]]
    assert np.mean(np.array(predicted) == np.array([genre[c] for c in HEAD_CLIPS["valid"]])) >= 0.75


def test_the_shipped_default_reads_its_kind_at_its_rate_and_judges_fit(shared_data):
    card = store.read_card(config.DEFAULT_MODEL_DIR)
    kind = card["input"]["kind"]
    assert card["input"]["sample_rate"] == registry.sample_rate(kind)
    assert card["metrics"]["why_shipped"] and card["metrics"]["comparison"]
    result = blend.predict_blend(None, shared_data / "gtzan" / "audio" / "metal" / "metal.00002.opus")
    assert result.top_genre == "metal" and result.fit == "ok" and result.chart_genres[0][0] in ("metal", "rock")
    assert result.analysed_s == pytest.approx(30.0, abs=0.1) and result.tags


def test_the_fast_model_tags_with_audioset_classes_but_not_their_roots(shared_data):
    """default-fast reads no musicnn tags: its Blend.tags are AudioSet's, from the same pass, less
    "Music" / "Musical instrument" (every piece of music gets them)."""
    result = blend.predict_blend(blend.load_fast_model(), shared_data / "gtzan" / "audio" / "metal" / "metal.00002.opus")
    assert result.tags_source == "mn04_as (AudioSet)" and result.model == "default-fast"
    assert "Music" not in result.tags and "Heavy metal" in dict(result.top_tags(10))


# lbfgs stops when the largest gradient component of scikit-learn's objective falls below
# LogisticRegression's tol (1e-4): where below it depends on the CPU's BLAS (a refit on another CPU
# gave probabilities 2.4e-3 away), so the test checks what every fit guarantees, not one fit's point.
# Shipped weights: 9.6e-5; a wrong C (0.5 for 0.3) or other rows give >= 1e-3.
LOGREG_TOL = 1e-4


def test_the_shipped_table_model_is_its_cards_logistic_regression(shared_data):
    """models/default-table, if logistic regression won: its Keras layers are the standardiser of the
    published table's train + valid rows and a minimum of the L2 logistic loss with the card's C.

    No refit (bench/table_model_refit.py refits and reports how far this CPU's fit lands): the
    scaler statistics are compared at float32 rounding, the weights by the optimality condition.
    """
    from recipe_modules import table_model
    from tracklens.models import datasets, evaluate

    card = store.read_card(config.DEFAULT_TABLE_MODEL_DIR)
    assert card["metrics"]["why_shipped"] and card["input"]["kind"] == "summary"
    if "C" not in card["parameters"]:
        pytest.skip("a Keras model won the table comparison: nothing exported")
    c = card["parameters"]["C"]
    assert card["architecture"] == "linear" and c in table_model.LOGREG_C
    features, splits = table_model.table_paths(shared_data / "gtzan")
    table = datasets.assign_folds(datasets.read_feature_table(features), split_dir=splits)
    inputs = datasets.summary_inputs(table, card["genres"])
    assert len(inputs.y) == card["split"]["refit"]["rows"]  # refit on train + valid
    keras_model = blend.load_model(config.DEFAULT_TABLE_MODEL_DIR).keras_model  # checks the card's SHA-256s
    norm = keras_model.get_layer("normalize").get_config()
    mean, variance = (np.asarray(norm[k], np.float64).ravel() for k in ("mean", "variance"))
    x = inputs.x.astype(np.float64)
    # float32 storage of the scaler's statistics: ~1e-7 of a standard deviation, a change of rows >> 1e-3
    assert (np.abs(mean - x.mean(axis=0)) / x.std(axis=0)).max() <= 1e-6
    np.testing.assert_allclose(variance, x.var(axis=0), rtol=1e-6)
    kernel, bias = (np.asarray(w, np.float64) for w in keras_model.get_layer("genre").get_weights())
    z = (x - mean) / np.sqrt(variance)
    proba = evaluate.softmax(z @ kernel + bias, axis=1)
    np.testing.assert_allclose(np.asarray(keras_model(inputs.x)), proba, atol=1e-5)  # float32 forward pass
    residual = proba - np.eye(len(card["genres"]))[inputs.y]
    n = len(x)  # scikit-learn's objective: mean log-loss + ||W||^2 / (2 C n), intercept unpenalised
    gradient = np.concatenate([(z.T @ residual / n + kernel / (c * n)).ravel(), residual.mean(axis=0)])
    assert np.abs(gradient).max() <= LOGREG_TOL, np.abs(gradient).max()


# --- blends from models trained on the demo catalogue, and format invariance ---------------------


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_blend_sums_to_one_with_timeline(trained, demo_catalogue):
    from tracklens.models import blend

    model = blend.load_model(trained[0] / "cnn")
    wav = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0]
    result = blend.predict_blend(model, wav)
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert len(result.timeline) == 2 and result.timeline["end_s"].iloc[-1] <= 6.01  # 6 s clip, 3 s segments
    np.testing.assert_allclose(result.timeline[model.genres].sum(axis=1), 1.0, atol=1e-6)
    assert result.label.split("-")[0] == result.top_genre


def test_blend_label_margin():
    from tracklens.models.blend import Blend

    genres = ["hiphop", "metal", "pop"]
    close = Blend(None, genres, np.array([0.45, 0.40, 0.15]), pd.DataFrame(), 30.0, "m")
    clear = Blend(None, genres, np.array([0.70, 0.20, 0.10]), pd.DataFrame(), 30.0, "m")
    assert close.label == "hiphop-metal" and clear.label == "hiphop"


def test_capped_windows_spread_over_the_track_not_its_ends():
    """`predict_blend(max_seconds=...)` (the dashboard on long songs) reads evenly spread blocks."""
    from tracklens.audio import AudioClip
    from tracklens.models.blend import _windows

    clip = AudioClip(y=np.zeros(240 * 100, np.float32), sr=100, path=None, source_sr=100, channels=1,
                     source_duration_s=240.0)
    assert [w[0] for w in _windows(clip, None, 240.0, 30.0)] == [0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 210.0]
    capped = [(a, b, len(part.y)) for a, b, part in _windows(clip, None, 240.0, 30.0, max_windows=2)]
    assert capped == [(60.0, 90.0, 3000), (150.0, 180.0, 3000)]


def _ffmpeg(src, dst, *args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)


def _mp3_distance(model, wav, tmp_path):
    from tracklens.models import blend

    mp3 = tmp_path / f"{wav.stem}.mp3"
    _ffmpeg(wav, mp3, "-b:a", "192k")
    a, b = (blend.predict_blend(model, p).probabilities for p in (wav, mp3))
    return 0.5 * float(np.abs(a - b).sum())  # total variation distance: the most any genre's share moves


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_wav_and_mp3_give_the_same_blend(trained, demo_catalogue, tmp_path):
    """The CNN on log-mel is format-invariant even on synthetic clips.

    (The demo's summary models are not: MP3 shifts the high MFCC means of the synthetic clips,
    whose quiet noise floor is all MP3 removes, by > 1 standard deviation of the demo set; on real
    music the shift is negligible - see the next test.)
    """
    from tracklens.models import blend

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    model = blend.load_model(trained[0] / "cnn")
    wav = sorted((demo_catalogue / "audio").glob("*/*.wav"))[3]
    assert _mp3_distance(model, wav, tmp_path) < 0.10


@pytest.mark.slow  # > 10 s on 2 busy cores: the shipped model on a 30 s clip twice, plus ffmpeg
def test_default_model_blend_is_format_invariant_on_real_music(shared_data, tmp_path):
    from tracklens.models import blend

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    wav = tmp_path / "rock.00000.wav"
    _ffmpeg(shared_data / "gtzan" / "audio" / "rock" / "rock.00000.opus", wav)
    assert _mp3_distance(blend.load_default_model(), wav, tmp_path) < 0.05


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_short_clip_gets_a_blend(trained, demo_catalogue, tmp_path):
    from tracklens.models import blend

    model = blend.load_model(trained[0] / "mlp")
    wav = sorted((demo_catalogue / "audio").glob("*/*.wav"))[5]
    short = tmp_path / "short.wav"
    _ffmpeg(wav, short, "-t", "2")
    for mode in ("loop", "as_is"):
        result = blend.predict_blend(model, short, short_input=mode)
        assert result.probabilities.sum() == pytest.approx(1.0) and result.duration_s < 2.1
