"""musicnn in Keras: shipped weights, strict loading, preprocessing, equivalence with the original."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tracklens.fileio import file_checksum
from tracklens.models import musicnn

ORIGINAL_RUNNER = Path(__file__).with_name("musicnn_original.py")
# One clip per genre with a clear MSD tag, plus one without (classical).
EQUIVALENCE_CLIPS = ("blues/blues.00000.opus", "metal/metal.00000.opus", "classical/classical.00000.opus")


@pytest.fixture(scope="module")
def model():
    return musicnn.load_pretrained()


def _as_checkpoint(model) -> dict[str, np.ndarray]:
    """The model's weights named like the TF1 checkpoint (the inverse of the loader's map)."""
    out = {}
    for scope, layer_name in musicnn.CHECKPOINT_LAYERS.items():
        kinds = ("gamma", "beta", "moving_mean", "moving_variance") if scope.startswith("batch_norm") else ("kernel", "bias")
        for kind, value in zip(kinds, model.get_layer(layer_name).get_weights(), strict=True):
            out[f"{scope}/{kind}"] = value
    return out


def test_shipped_weights_match_manifest_and_give_valid_outputs(model):
    entry = json.loads(musicnn.MANIFEST_PATH.read_text())[musicnn.DEFAULT_MUSICNN]
    path = musicnn.PRETRAINED_DIR / entry["weights"]
    assert file_checksum(path) == entry["weights_sha256"]
    assert entry["n_parameters"] == model.count_params() == 792_079
    assert len(entry["source_checkpoint_sha256"]) == 2 and "ISC" in entry["licence"]
    assert (musicnn.PRETRAINED_DIR / "LICENSE-musicnn.md").read_text().count("Permission to use") == 1
    # weights really are the pretrained ones: batch-norm statistics are not the init values
    assert not np.allclose(model.get_layer("pool_bn").get_weights()[3], 1.0)

    batch = np.random.default_rng(0).uniform(0, 3, size=(4, musicnn.PATCH_FRAMES, musicnn.MUSICNN_N_MELS))
    out = model.predict(batch.astype("float32"), verbose=0)
    assert out["taggram"].shape == (4, 50) and out["embedding"].shape == (4, musicnn.EMBEDDING_SIZE)
    assert np.all((out["taggram"] >= 0) & (out["taggram"] <= 1)) and np.all(np.isfinite(out["embedding"]))


def test_load_refuses_corrupt_or_missing_weights(tmp_path):
    shutil.copytree(musicnn.PRETRAINED_DIR, tmp_path / "w", ignore=shutil.ignore_patterns("*.py"))
    weights = tmp_path / "w" / f"{musicnn.DEFAULT_MUSICNN}.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(musicnn.MusicnnError, match="SHA-256"):
        musicnn.load_pretrained(weights_dir=tmp_path / "w")
    weights.unlink()
    with pytest.raises(musicnn.MusicnnError, match="missing"):
        musicnn.load_pretrained(weights_dir=tmp_path / "w")
    with pytest.raises(musicnn.MusicnnError, match="no entry for 'MTT_musicnn'"):
        musicnn.load_pretrained("MTT_musicnn", weights_dir=tmp_path / "w")


def test_assign_checkpoint_is_strict(model):
    variables = _as_checkpoint(model)
    assert len(variables) == 64
    fresh = musicnn.build_musicnn()
    musicnn.assign_checkpoint(fresh, variables)  # complete and well-shaped: loads
    batch = np.ones((1, musicnn.PATCH_FRAMES, musicnn.MUSICNN_N_MELS), "float32")
    np.testing.assert_allclose(fresh.predict(batch, verbose=0)["taggram"], model.predict(batch, verbose=0)["taggram"])

    # the checkpoint stores mid-end kernels as [7, F, 1, 64] conv2d kernels: accepted
    variables["conv2d_5/kernel"] = variables["conv2d_5/kernel"][:, :, None, :]
    musicnn.assign_checkpoint(fresh, variables)

    missing = dict(variables)
    del missing["dense/bias"]
    with pytest.raises(musicnn.MusicnnError, match="lacks dense/bias"):
        musicnn.assign_checkpoint(fresh, missing)
    extra = dict(variables, **{"conv2d_8/kernel": np.zeros((3, 3, 1, 8), "float32")})
    with pytest.raises(musicnn.MusicnnError, match="conv2d_8/kernel has no place"):
        musicnn.assign_checkpoint(fresh, extra)
    wrong = dict(variables, **{"dense_1/kernel": np.zeros((200, 10), "float32")})
    with pytest.raises(musicnn.MusicnnError, match=r"dense_1/kernel: checkpoint shape \(200, 10\)"):
        musicnn.assign_checkpoint(fresh, wrong)


def test_preprocessing_shapes_padding_and_no_float16_overflow():
    sr = musicnn.MUSICNN_SR
    t = np.arange(30 * sr) / sr
    loud = (0.99 * np.sin(2 * np.pi * 110 * t)).astype("float32")  # mel power far above float16's 6.55 / 10000
    spec = musicnn.log_mel(loud, sr=sr)
    assert spec.shape == (1 + len(loud) // musicnn.MUSICNN_HOP, 96) and spec.dtype == np.float32
    assert np.all(np.isfinite(spec)) and spec.max() > np.log10(10000 * 6.55 + 1)
    assert musicnn.patches(spec).shape == (10, 187, 96)  # 1876 frames -> 10 full patches, tail dropped
    assert musicnn.patches(spec, hop=94).shape[0] == (1876 - 187) // 94 + 1
    # 22 050 Hz input is resampled to 16 kHz first
    assert musicnn.log_mel(loud[: 2 * sr], sr=22050).shape[0] == 1 + int(2 * sr * 16000 / 22050) // 256
    short = spec[:100]  # ~1.6 s: repeat-padded to one patch
    padded = musicnn.patches(short)
    assert padded.shape == (1, 187, 96)
    np.testing.assert_array_equal(padded[0, 100:187], short[:87])
    with pytest.raises(musicnn.MusicnnError, match="mono"):
        musicnn.log_mel(np.zeros((2, 100), "float32"))


@pytest.mark.slow  # > 10 s on 2 busy cores: musicnn on real clips
@pytest.mark.realdata
def test_real_clips_get_fitting_tags_and_embeddings(shared_data):
    from tracklens.audio import load_audio

    embedder = musicnn.get_embedder()
    results = {}
    for rel in ("blues/blues.00000.opus", "metal/metal.00000.opus"):
        clip = load_audio(shared_data / "gtzan" / "audio" / rel)
        results[rel.split("/")[0]] = out = musicnn.embed(clip=clip)
        assert out["embedding"].shape == (10, 200) and out["taggram"].shape == (10, 50)
        np.testing.assert_allclose(out["mean"], out["embedding"].mean(axis=0), rtol=1e-6)
    assert "blues" in [t for t, _ in musicnn.top_tags(results["blues"]["tags"], k=3)]
    assert {"metal", "heavy metal"} & {t for t, _ in musicnn.top_tags(results["metal"]["tags"], k=2)}
    assert musicnn.top_tags(results["metal"]["tags"], k=1)[0][0] != musicnn.top_tags(results["blues"]["tags"], k=1)[0][0]
    assert embedder is musicnn.get_embedder()  # built once, reused


needs_original = pytest.mark.skipif(musicnn.find_original_package() is None,
                                    reason="original musicnn checkpoints not found (run `make musicnn-weights` "
                                           "or set TRACKLENS_MUSICNN_DIR)")


@needs_original
@pytest.mark.slow
@pytest.mark.realdata
def test_equivalent_to_original_graph(shared_data, model, tmp_path):
    """The author's own saved TF1 graph and checkpoint, run in a subprocess, vs. this model."""
    from tracklens.audio import load_audio

    files = [shared_data / "gtzan" / "audio" / rel for rel in EQUIVALENCE_CLIPS]
    ckpt = musicnn.find_original_package() / musicnn.DEFAULT_MUSICNN
    ref_path = tmp_path / "reference.npz"
    subprocess.run([sys.executable, str(ORIGINAL_RUNNER), str(ckpt), str(ref_path), *map(str, files)],
                   check=True, capture_output=True, timeout=300)
    ref = np.load(ref_path)
    for i, path in enumerate(files):
        clip = load_audio(path, sr=musicnn.MUSICNN_SR)
        batch = musicnn.patches(musicnn.log_mel(clip.y, sr=clip.sr))
        # The front end: the same mel and log compression. The decoders differ (ffmpeg here,
        # librosa.load there) and agree to ~1e-6 on one machine but ~4e-4 on another (CI), so the
        # graph itself is compared on the original's own input, to 1e-5.
        np.testing.assert_allclose(batch, ref[f"{i}_batch"], atol=2e-3)
        out = model.predict(ref[f"{i}_batch"], verbose=0)
        assert np.abs(out["taggram"] - ref[f"{i}_taggram"]).max() < 1e-5
        assert np.abs(out["embedding"] - ref[f"{i}_penultimate"]).max() < 1e-4
        for mine, theirs in zip(out["taggram"], ref[f"{i}_taggram"]):
            assert list(np.argsort(-mine)[:5]) == list(np.argsort(-theirs)[:5])


@needs_original
def test_conversion_reproduces_shipped_weights(tmp_path):
    entry = musicnn.convert_checkpoint(musicnn.find_original_package() / musicnn.DEFAULT_MUSICNN, out_dir=tmp_path)
    shipped = json.loads(musicnn.MANIFEST_PATH.read_text())[musicnn.DEFAULT_MUSICNN]
    assert entry == shipped  # same source checksums and a byte-identical weights file


def test_extract_embeddings_table_cache_and_bad_files(tmp_path):
    import soundfile as sf

    sr = 22050
    t = np.arange(int(7 * sr)) / sr
    rng = np.random.default_rng(1)
    for genre, freq in (("a", 220.0), ("b", 880.0)):
        (tmp_path / "audio" / genre).mkdir(parents=True)
        y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(tmp_path / "audio" / genre / f"{genre}.00000.wav", y.astype("float32"), sr)
    (tmp_path / "audio" / "b" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    out = tmp_path / "features.parquet"
    emb_path = musicnn.embeddings_path(out)
    assert emb_path.name == "features.MSD_musicnn.parquet"
    cache = tmp_path / "cache"
    table, errors = musicnn.extract_embeddings(tmp_path / "audio", out=emb_path, cache_dir=cache, progress=False)
    assert [Path(e["path"]).name for e in errors] == ["broken.wav"]
    assert sorted(table["track_id"].unique()) == ["a.00000", "b.00000"]
    assert list(table.loc[table["track_id"] == "a.00000", "segment"]) == [-1, 0, 1]  # 7 s: two 3 s patches
    assert table.filter(like="emb_").shape[1] == 200 and table.filter(like="tag:").shape[1] == 50
    track = table[table["segment"] == -1].set_index("track_id")
    patches_a = table[(table["track_id"] == "a.00000") & (table["segment"] >= 0)].filter(like="emb_")
    np.testing.assert_allclose(track.loc["a.00000"].filter(like="emb_").to_numpy(float), patches_a.mean().to_numpy(), rtol=1e-5)
    assert not np.allclose(track.loc["a.00000"].filter(like="emb_").to_numpy(float), track.loc["b.00000"].filter(like="emb_").to_numpy(float))
    import pandas as pd

    pd.testing.assert_frame_equal(pd.read_parquet(emb_path), table)
    assert pd.read_csv(emb_path.with_name("features.MSD_musicnn.errors.csv"))["path"].str.endswith("broken.wav").all()
    # second run: everything from the cache, same table
    assert len(list(cache.rglob("*.npz"))) == 2
    again, _ = musicnn.extract_embeddings(tmp_path / "audio", out=emb_path, cache_dir=cache, progress=False)
    pd.testing.assert_frame_equal(again, table)

    with pytest.raises(musicnn.MusicnnError, match="parquet"):
        musicnn.extract_embeddings(tmp_path / "audio", out=tmp_path / "x.csv", progress=False)


def _synthetic_tables(tmp_path, *, n_genres=4, n_tracks=10, n_segments=2, seed=0):
    """A features.parquet and its musicnn table with a genre signal in the embeddings only."""
    import pandas as pd

    from tracklens.models import datasets

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_genres, musicnn.EMBEDDING_SIZE))
    feat_rows, emb_rows = [], []
    for g in range(n_genres):
        for t in range(n_tracks):
            track = f"g{g}.{t:05d}"
            for seg in range(-1, n_segments):
                ident = {"track_id": track, "label": f"g{g}", "segment": seg}
                feat_rows.append({**ident, "start_s": 3.0 * max(seg, 0), "end_s": 3.0 * max(seg, 0) + 3.0,
                                  **dict(zip(datasets.summary_columns(), rng.normal(size=57)))})
                emb = centres[g] + 1.5 * rng.normal(size=musicnn.EMBEDDING_SIZE)
                emb_rows.append({**ident, **dict(zip(musicnn.EMBEDDING_COLUMNS, emb)),
                                 **{f"tag:{t}": v for t, v in zip(musicnn.MSD_TAGS, rng.uniform(size=50))}})
    features_path = tmp_path / "features.parquet"
    pd.DataFrame(feat_rows).to_parquet(features_path)
    pd.DataFrame(emb_rows).to_parquet(musicnn.embeddings_path(features_path))
    return features_path


@pytest.mark.slow  # > 10 s on 2 busy cores: trains embedding models
def test_embedding_models_learn_and_join_the_comparison_report(tmp_path):
    """Embedding models go through the one training path, mixed with a summary model in one run."""
    from tracklens import reports
    from tracklens.models import train

    features_path = _synthetic_tables(tmp_path)
    results = train.train_models(features_path, ["musicnn_linear", "musicnn_fusion", "logreg"],
                                 out_dir=tmp_path / "models", epochs=15, log=lambda s: None)
    for r in results[:2]:  # held-out tracks, 4 genres: chance is 0.25
        assert r["metrics"]["balanced_accuracy"] > 0.6, (r["name"], r["metrics"])
    card = json.loads((tmp_path / "models" / "musicnn_fusion" / "card.json").read_text())
    assert card["input"]["kind"] == "musicnn_fusion" and len(card["input"]["columns"]) == 307
    assert card["architecture"] == "mlp" and card["input"]["sample_rate"] == musicnn.MUSICNN_SR
    assert card["input"]["embedding_weights_sha256"] == musicnn.read_manifest()["MSD_musicnn"]["weights_sha256"]
    assert card["data"]["tracks_shorter_than_a_patch"] == {"train": 0, "valid": 0}
    _, table = reports.evaluate_models(tmp_path / "models", out_dir=tmp_path / "report")
    assert set(table["model"]) == {"musicnn_linear", "musicnn_fusion", "logreg"}
    musicnn.embeddings_path(features_path).unlink()
    with pytest.raises(musicnn.TracklensError, match="no musicnn embeddings"):  # before any training
        train.train_models(features_path, ["linear", "musicnn_linear"], out_dir=tmp_path / "again",
                           log=lambda s: None)
    assert not (tmp_path / "again").exists()


@pytest.mark.slow  # > 10 s on 2 busy cores: grouped CV, then a refit
def test_final_embedding_model_card_has_cv_temperature_and_refit(tmp_path):
    """--final (how models/default was made): grouped CV sets the temperature, then a refit."""
    from tracklens.models import train

    features_path = _synthetic_tables(tmp_path, n_tracks=6)
    (result,) = train.train_models(features_path, ["musicnn_linear"], out_dir=tmp_path / "models", epochs=4,
                                   final=True, name="shipped", cv_folds=3, log=lambda s: None)
    card = json.loads((tmp_path / "models" / "shipped" / "card.json").read_text())
    assert card["name"] == "shipped" and card["split"]["refit"]["folds"] == "train+valid"
    assert card["calibration"]["fitted_on"].startswith("3-fold CV grouped by track")
    assert card["calibration"]["temperature"] != pytest.approx(result["temperature"])  # the CV's, not the valid fold's
    assert card["metrics"]["grouped_cv"]["track_level"]["n"] == 24 and "valid_by_kind" in card["metrics"]


def test_window_inputs_match_card_columns():
    from tracklens.audio import AudioClip
    from tracklens.models import datasets, musicnn_models

    sr = 22050
    y = (0.3 * np.sin(2 * np.pi * 330 * np.arange(7 * sr) / sr)).astype("float32")
    clip = AudioClip(y=y, sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=7.0)
    columns = [*musicnn.EMBEDDING_COLUMNS, *(f"tag:{t}" for t in musicnn.MSD_TAGS), *datasets.summary_columns()]
    x, spans = musicnn_models.window_inputs(clip, columns)
    assert x.shape == (2, 307) and np.all(np.isfinite(x)) and spans[0][0] == 0.0
    direct = musicnn.embed(clip=clip)
    np.testing.assert_allclose(x[:, :200], direct["embedding"], rtol=1e-5)


@pytest.mark.slow  # > 10 s on 2 busy cores: musicnn over every patch of a clip
def test_predict_blend_with_an_embedding_model_gives_blend_and_tags_in_one_pass(tmp_path):
    """A model on musicnn inputs: predict_blend classifies every 3 s patch, and its tags are the
    track mean of the same pass's taggram; input shorter than a patch is repeat-padded."""
    from tracklens.audio import AudioClip
    from tracklens.models import blend, train

    train.train_models(_synthetic_tables(tmp_path, n_tracks=4), ["musicnn_linear"], out_dir=tmp_path / "models",
                       epochs=2, log=lambda s: None)
    model = blend.GenreModel.load(tmp_path / "models" / "musicnn_linear")
    assert model.input_kind == "musicnn"
    sr = 22050
    t = np.arange(7 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sign(np.sin(2 * np.pi * 2 * t))) / 2).astype("float32")
    for seconds, n_windows in ((7.0, 2), (2.0, 1)):
        n = int(seconds * sr)
        clip = AudioClip(y=y[:n], sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=seconds)
        result = blend.predict_blend(model, clip)
        assert result.probabilities.sum() == pytest.approx(1.0) and len(result.timeline) == n_windows
        direct = musicnn.embed(clip=clip)
        np.testing.assert_allclose([result.tags[tag] for tag in musicnn.MSD_TAGS], direct["tags"], rtol=1e-4, atol=1e-6)
    assert result.notes and "repeat-padded" in result.notes[0]


def test_embedding_model_trained_on_other_weights_is_refused(tmp_path, monkeypatch):
    import shutil as sh

    from tracklens.models import blend, store

    model_dir = tmp_path / "model"
    sh.copytree(blend.resolve_model_dir(None), model_dir)
    card = store.read_card(model_dir)
    card["input"]["embedding_weights_sha256"] = "0" * 64
    card["card_sha256"] = store.card_digest(card)
    store.write_json(model_dir / store.CARD_NAME, card)
    with pytest.raises(store.ModelCardError, match="retrain"):
        blend.load_model(model_dir)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """Two labelled 7 s clips and one broken file."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("musicnn_audio")
    sr = 22050
    t = np.arange(7 * sr) / sr
    for genre, freq in (("a", 220.0), ("b", 880.0)):
        (root / genre).mkdir()
        sf.write(root / genre / f"{genre}.00000.wav", (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"), sr)
    (root / "b" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return root


def test_cli_features_embeddings_and_predict_tags(run_cli, tiny_folder, tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setenv("TRACKLENS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "features.parquet"
    code, stdout, _ = run_cli("features", tiny_folder, "--out", out, "--embeddings", "musicnn",
                              "--cache-dir", tmp_path / "cache")
    assert code in (0, None), stdout
    emb = pd.read_parquet(musicnn.embeddings_path(out))
    assert set(emb["track_id"]) == {"a.00000", "b.00000"} and "MSD_musicnn" in stdout
    code, _, err = run_cli("features", tiny_folder, "--out", out, "--embeddings", "vggish")
    assert code == 2 and "--embeddings" in err and "musicnn" in err

    clip = tiny_folder / "a" / "a.00000.wav"
    code, stdout, _ = run_cli("predict", clip, "--tags", "--model", "musicnn")  # musicnn ships by name
    assert code in (0, None) and "MSD_musicnn tags: " in stdout and f"{clip}" in stdout
    code, stdout, _ = run_cli("predict", clip, tiny_folder / "b" / "broken.wav", "--tags", "--format", "csv")
    rows = pd.read_csv(__import__("io").StringIO(stdout), keep_default_na=False)
    assert list(rows.columns)[-1] == "tags" and rows["tags"][0].count(":") == 5 and rows["tags"][1] == ""
    code, stdout, _ = run_cli("predict", clip, "--tags", "--format", "json")
    assert len(json.loads(stdout)[0]["tags"]) == 5
