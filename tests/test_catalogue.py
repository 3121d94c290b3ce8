"""Catalogues (catalogue.py): build, rebuild, refusal of other versions, error rows, --meta,
similar (ranking, within, formats) and the `catalogue build` / `similar` / `check` commands.

Most tests replace the per-track analysis with :func:`fake_analyse` (a decoded file's spectrum
as its "embedding", its folder as its genre): they test the catalogue's own logic in seconds.
The one test of the real analysis (EfficientAT + engine) is marked slow.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tracklens import catalogue, config, features
from tracklens.audio import AudioClip, load_audio
from tracklens.errors import TracklensError

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
SR = 22_050


# --- a cheap stand-in for the per-track analysis ----------------------------------------------------


def spectrum_embedding(y: np.ndarray) -> np.ndarray:
    """384 log band energies of the clip's spectrum: similar audio -> similar vectors."""
    spectrum = np.abs(np.fft.rfft(y[: 8 * SR], n=16 * 1024))
    bands = np.array_split(spectrum, catalogue.EMBEDDING_SIZE)
    return np.log1p(np.array([b.mean() for b in bands], np.float32) * 100)


def fake_analyse(source, *, model=None, max_duration=config.FEATURE_MAX_DURATION_S):
    from tracklens.models.blend import Blend, resolve_model_dir

    clip = source if isinstance(source, AudioClip) else load_audio(str(source), sr=SR, max_duration=max_duration)
    genre = Path(str(clip.path or "x/rock/x")).parent.name
    probabilities = np.full(len(GENRES), 0.02)
    probabilities[GENRES.index(genre) if genre in GENRES else GENRES.index("rock")] = 0.82
    values = {c: 0.0 for c in features.SUMMARY_COLUMNS}
    # the card's tempo (bpm) apart from the summary's (tempo, a model input): a comparison that
    # reads the wrong one shows it
    values.update(bpm=100.0 + 10 * len(genre), tempo=60.0, loudness=float(10 * np.log10(np.mean(clip.y ** 2) + 1e-12)),
                  key=len(genre) % 12, mode=1, duration_ms=int(clip.duration_s * 1000), start_s=0.0,
                  end_s=clip.duration_s, length=len(clip.y), truncated=False, energy_est=0.5, acousticness_est=0.25)
    blend = Blend(path=clip.path, genres=GENRES, probabilities=probabilities, timeline=pd.DataFrame(),
                  duration_s=clip.duration_s, model="fake", fit="ok", fit_reason="fake",
                  chart_genres=[("rock", 0.4), ("pop", 0.01)] if genre == "metal" else [("pop", 0.3)])
    return catalogue.Track(path=clip.path, values=values, blend=blend, embedding=spectrum_embedding(clip.y),
                           audioset=np.zeros(catalogue.N_AUDIOSET, np.float32),
                           model_dir=resolve_model_dir(model or catalogue.DEFAULT_MODEL))


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(catalogue, "analyse", fake_analyse)


def tone(freq: float, *, seconds: float = 2.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2.01 * freq * t)
    return (y + noise * np.random.default_rng(seed).normal(size=len(t))).astype(np.float32)


def write(path: Path, y: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, SR)
    return path


@pytest.fixture
def refs(tmp_path) -> Path:
    """A folder of 8 reference clips, two genres (sub-folders), each a different tone."""
    root = tmp_path / "refs"
    for i, freq in enumerate((110, 150, 220, 300)):
        write(root / "metal" / f"metal.{i:05d}.wav", tone(freq, seed=i))
        write(root / "jazz" / f"jazz.{i:05d}.wav", tone(freq * 3.3, seed=10 + i))
    return root


def build(source, out, **kwargs):
    return catalogue.build(source, out, progress=False, cache_dir=Path(out).parent / "cache", **kwargs)


# --- building ------------------------------------------------------------------------------------


def test_build_writes_a_catalogue_folder_with_card_and_rows(fake, refs, tmp_path):
    cat = build(refs, tmp_path / "cat")
    assert {"card.json", "tracks.parquet", "errors.csv"} <= {p.name for p in cat.path.iterdir()}
    assert len(cat) == 8 and len(cat.errors) == 0
    card = json.loads((cat.path / "card.json").read_text())
    assert card["engine"]["feature_version"] == features.FEATURE_VERSION
    assert card["model"]["name"] == catalogue.DEFAULT_MODEL and len(card["model"]["sha256"]) == 64
    assert card["counts"] == {"tracks": 8, "errors": 0, "analysed_now": 8, "from_cache": 0}
    t = cat.tracks
    assert set(t["label"]) == {"metal", "jazz"} and set(t["top_genre"]) == {"metal", "jazz"}
    assert {"tempo", "key_name", "loudness", "energy_est", "blend_metal", "chart_genres", "emb_383"} <= set(t.columns)
    assert t.loc[t["label"] == "metal", "chart_genres"].eq("rock").all()  # tags under SHOWN_FROM are left out
    assert cat.audio_path("metal.00002") == (refs / "metal" / "metal.00002.wav").absolute()
    assert cat.audio_path("nope") is None


def test_rebuild_analyses_only_new_and_changed_files(fake, refs, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(catalogue, "analyse", lambda source, **kw: calls.append(Path(source).name) or fake_analyse(source, **kw))
    build(refs, tmp_path / "cat")
    assert len(calls) == 8
    calls.clear()
    again = build(refs, tmp_path / "cat")
    assert calls == [] and again.card["counts"]["from_cache"] == 8
    write(refs / "metal" / "metal.00001.wav", tone(999))  # changed
    write(refs / "jazz" / "jazz.00009.wav", tone(500))  # new
    third = build(refs, tmp_path / "cat")
    assert sorted(calls) == ["jazz.00009.wav", "metal.00001.wav"]
    assert third.card["counts"]["analysed_now"] == 2 and len(third) == 9


def test_unreadable_files_become_error_rows_and_the_rest_is_built(fake, refs, tmp_path):
    (refs / "metal" / "broken.wav").write_bytes(b"RIFF not really a wav")
    (refs / "jazz" / "empty.mp3").write_bytes(b"")
    cat = build(refs, tmp_path / "cat")
    assert len(cat) == 8
    assert sorted(Path(p).name for p in cat.errors["path"]) == ["broken.wav", "empty.mp3"]
    assert cat.errors["reason"].str.len().gt(0).all()
    assert cat.card["counts"]["errors"] == 2


def test_build_refuses_a_folder_holding_other_files(fake, refs, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(catalogue.CatalogueError, match="other files"):
        build(refs, out)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_source_with_no_audio_leaves_no_catalogue_folder(fake, tmp_path):
    """`catalogue build empty/ --out new` said "no audio files" and left `new/` behind, empty;
    a folder that was already there stays."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(TracklensError, match="no audio files"):
        build(tmp_path / "empty", tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(TracklensError, match="no audio files"):
        build(tmp_path / "empty", tmp_path / "kept")
    assert (tmp_path / "kept").is_dir()


# --- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("section, key, value, what", [
    ("engine", "feature_version", features.FEATURE_VERSION - 1, "engine version"),
    ("model", "sha256", "0" * 64, "genre model"),
    ("embedding", "weights_sha256", "f" * 64, "embedding weights"),
])
def test_a_catalogue_of_another_version_is_refused_with_one_line(fake, refs, tmp_path, section, key, value, what):
    cat = build(refs, tmp_path / "cat")
    card = json.loads((cat.path / "card.json").read_text())
    card[section][key] = value
    (cat.path / "card.json").write_text(json.dumps(card))
    with pytest.raises(catalogue.CatalogueError) as err:
        catalogue.load(cat.path)
    message = str(err.value)
    assert "\n" not in message and what in message
    assert f"rebuild it: tracklens catalogue build {refs} --out {cat.path}" in message


def test_load_explains_a_folder_that_is_not_a_catalogue(tmp_path, refs):
    with pytest.raises(catalogue.CatalogueError, match="jazz.00000.wav: a file, not a catalogue"):
        catalogue.load(tmp_path / "refs" / "jazz" / "jazz.00000.wav")
    with pytest.raises(catalogue.CatalogueError, match="not a catalogue .*build one: .* --out"):
        catalogue.load((tmp_path / "empty").mkdir() or tmp_path / "empty")
    with pytest.raises(catalogue.CatalogueError, match=r"no such catalogue; build one: .* --out .*nope$"):
        catalogue.load(tmp_path / "nope")
    # the folder of audio itself: the advice was `catalogue build SOURCE --out refs`, which build refuses
    with pytest.raises(catalogue.CatalogueError, match=rf"to make one of its audio: tracklens catalogue build {refs} --out NEW"):
        catalogue.load(refs)
    with pytest.raises(catalogue.CatalogueError, match="a folder with other files in it"):
        catalogue.build(refs, refs, progress=False)
    (tmp_path / "card.json").write_text("{broken")
    with pytest.raises(catalogue.CatalogueError, match="unreadable"):
        catalogue.load(tmp_path)


def test_available_lists_catalogues_in_the_home(fake, refs, tmp_path):
    home = tmp_path / "home"
    assert catalogue.available(home) == []
    build(refs, home / "data" / "catalogues" / "refs")
    (home / "data" / "catalogues" / "not-one").mkdir()
    assert catalogue.available(home) == [home / "data" / "catalogues" / "refs"]


# --- similar -------------------------------------------------------------------------------------


def test_planted_near_duplicates_come_back_first_in_order(fake, refs, tmp_path):
    query = tone(180, seed=99)
    planted = refs / "planted"
    for i, noise in enumerate((0.0, 0.003, 0.03)):  # the less noise, the nearer
        write(planted / f"near.{i}.wav", query + noise * np.random.default_rng(i).normal(size=len(query)).astype(np.float32))
    cat = build(refs, tmp_path / "cat")
    result = catalogue.similar(write(tmp_path / "query.wav", query), cat, top=4)
    assert list(result["track_id"][:3]) == ["near.0", "near.1", "near.2"]
    assert list(result["rank"]) == [1, 2, 3, 4]
    assert result["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-4)
    assert result["similarity"].is_monotonic_decreasing
    assert {"top_genre", "chart_genres", "bpm", "key_name", "energy_est"} <= set(result.columns)


def test_similar_within_a_genre_and_its_errors(fake, refs, tmp_path):
    cat = build(refs, tmp_path / "cat")
    query = refs / "metal" / "metal.00000.wav"
    jazz = catalogue.similar(query, cat, top=10, within="Jazz")
    assert len(jazz) == 4 and set(jazz["top_genre"]) == {"jazz"}
    rock = catalogue.similar(query, cat, top=10, within="rock")  # a chart-genre tag of the metal clips
    assert set(rock["track_id"]) == {f"metal.{i:05d}" for i in range(4)}
    with pytest.raises(catalogue.CatalogueError, match="no track of that genre.*its genres: .*jazz"):
        catalogue.similar(query, cat, within="polka")
    with pytest.raises(catalogue.CatalogueError, match="shape"):
        catalogue.similar(np.zeros(3), cat)


@pytest.mark.parametrize("folder, retrained, with_blend", [
    (catalogue.DEFAULT_MODEL, True, False),  # retrained under the catalogue's model name: another model
    ("renamed", False, True),  # the catalogue's weights in a folder of another name: the same model
])
def test_a_query_blend_is_compared_only_with_the_catalogue_s_own_weights(fake, refs, tmp_path, folder, retrained,
                                                                         with_blend):
    """The query's blend takes part only when it comes from the weights the catalogue was built with
    (their SHA-256: Catalogue.built_with, the check page's rule too), whatever the model's name;
    otherwise the tracks are compared by sound alone. similar() used to compare the names."""
    from tracklens.models.blend import resolve_model_dir

    cat = build(refs, tmp_path / "cat")
    query = catalogue.analyse(refs / "metal" / "metal.00000.wav")  # blended by the catalogue's own model
    model_dir = tmp_path / "models" / folder
    shutil.copytree(resolve_model_dir(catalogue.DEFAULT_MODEL), model_dir)
    if retrained:
        with open(model_dir / "model.keras", "ab") as weights:
            weights.write(b"\0")
    moved = catalogue.similar(dataclasses.replace(query, model_dir=model_dir), cat, top=len(cat))
    own = catalogue.similar(query, cat, top=len(cat))
    sound = catalogue.similar(query.embedding, cat, top=len(cat))
    assert own.attrs[catalogue.WITH_BLEND_ATTR] and not np.allclose(own["similarity"], sound["similarity"])
    assert moved.attrs[catalogue.WITH_BLEND_ATTR] is with_blend
    assert list(moved["similarity"]) == list((own if with_blend else sound)["similarity"])


def test_similarity_is_half_sound_half_genre_blend():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(3, catalogue.EMBEDDING_SIZE)).astype(np.float32)
    emb[1] = emb[0] * 5  # the same sound, louder embedding: cosine 1
    blends = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0]], np.float32)
    index = catalogue.SoundIndex(emb, blends)
    scores = index.scores(emb[0], np.array([1, 0, 0], np.float32))
    sound = emb @ emb[0] / np.linalg.norm(emb, axis=1) / np.linalg.norm(emb[0])
    np.testing.assert_allclose(scores, 0.5 * sound + 0.5 * np.array([1.0, 0.0, 0.6]), atol=1e-5)
    assert scores[0] == pytest.approx(1.0, abs=1e-5) and scores[1] == pytest.approx(0.5, abs=1e-5)
    np.testing.assert_allclose(index.scores(emb[0]), sound, atol=1e-5)  # no blend given: sound alone
    np.testing.assert_allclose(catalogue.SoundIndex(emb, blends, genre_weight=0.0).scores(emb[0], blends[0]), sound, atol=1e-5)
    with pytest.raises(catalogue.CatalogueError, match="genre_weight"):
        catalogue.SoundIndex(emb, blends, genre_weight=1.5)


def planted_catalogue(n: int = 60, seed: int = 0):
    """``n`` random embeddings sharing one large common component (as real embeddings do: every
    EfficientAT mean embedding points roughly the same way), two genres, and a query with three
    planted near-duplicates appended at increasing noise."""
    rng = np.random.default_rng(seed)
    common = 20 * rng.normal(size=catalogue.EMBEDDING_SIZE)
    labels = np.array(["jazz", "metal"] * (n // 2))
    genre_shift = {g: 3 * rng.normal(size=catalogue.EMBEDDING_SIZE) for g in ("jazz", "metal")}
    emb = np.array([common + genre_shift[g] + rng.normal(size=catalogue.EMBEDDING_SIZE) for g in labels])
    query = common + genre_shift["jazz"] + rng.normal(size=catalogue.EMBEDDING_SIZE)
    planted = [query + noise * rng.normal(size=catalogue.EMBEDDING_SIZE) for noise in (0.0, 0.1, 0.3)]
    blends = np.where(labels[:, None] == np.array(["jazz", "metal"]), 0.8, 0.2)
    emb = np.vstack([emb, planted]).astype(np.float32)
    return emb, np.vstack([blends, [[0.8, 0.2]] * 3]).astype(np.float32), np.append(labels, ["jazz"] * 3), query


def test_similarity_centres_the_sound_on_the_catalogue_mean():
    emb, blends, _, query = planted_catalogue()
    index = catalogue.SoundIndex(emb, blends)
    centred = emb - emb.astype(np.float64).mean(axis=0)
    q = query - emb.astype(np.float64).mean(axis=0)
    sound = centred @ q / np.linalg.norm(centred, axis=1) / np.linalg.norm(q)
    blend = blends @ np.array([0.8, 0.2]) / np.linalg.norm(blends, axis=1) / np.linalg.norm([0.8, 0.2])
    np.testing.assert_allclose(index.scores(query, np.array([0.8, 0.2])), 0.5 * sound + 0.5 * blend, atol=1e-4)
    # raw cosines are all near 1 (the common component); centred, the planted copies stand out, in order
    order = np.argsort(-index.scores(query, np.array([0.8, 0.2])), kind="stable")
    assert list(order[:3]) == [len(emb) - 3, len(emb) - 2, len(emb) - 1]
    # a catalogue too small to estimate a mean is compared raw
    small = catalogue.SoundIndex(emb[:5], blends[:5], genre_weight=0.0)
    raw = emb[:5] @ query / np.linalg.norm(emb[:5], axis=1) / np.linalg.norm(query)
    np.testing.assert_allclose(small.scores(query), raw, atol=1e-4)


def test_use_labels_adds_an_lda_of_the_catalogue_labels_and_keeps_planted_copies_first():
    emb, blends, labels, query = planted_catalogue()
    index = catalogue.SoundIndex(emb, blends, labels=labels)
    assert index.genre_weight == catalogue.LABELLED_GENRE_WEIGHT
    assert index.matrix.shape[1] == catalogue.EMBEDDING_SIZE + 1 + 2  # centred embedding, 1 LDA axis (2 genres), blend
    scores = index.scores(query, np.array([0.8, 0.2]))
    assert set(np.argsort(-scores)[:10]) <= set(np.flatnonzero(labels == "jazz"))
    # the LDA axis alone ties every jazz track; the centred embedding's share still ranks the copies first
    assert list(np.argsort(-scores, kind="stable")[:3]) == [len(emb) - 3, len(emb) - 2, len(emb) - 1]
    assert scores[-3] == pytest.approx(1.0, abs=1e-4)  # the exact copy
    sound_alone = index.scores(query)
    assert sound_alone.max() == pytest.approx(1.0, abs=1e-4) and sound_alone.min() >= -1.0 - 1e-4


def test_use_labels_needs_a_labelled_catalogue(fake, refs, tmp_path):
    cat = build(refs, tmp_path / "cat")  # folder source: its sub-folders label the tracks
    query = refs / "metal" / "metal.00000.wav"
    labelled = catalogue.similar(query, cat, top=4, use_labels=True)
    assert set(labelled["top_genre"]) == {"metal"}
    unlabelled = catalogue.load(tmp_path / "cat")
    unlabelled.tracks["label"] = ""
    with pytest.raises(catalogue.CatalogueError, match="no genre labels"):
        catalogue.similar(query, unlabelled, use_labels=True)
    assert len(catalogue.similar(query, unlabelled, top=2)) == 2  # label-free still works (the default: no labels)
    assert catalogue.similar(query, cat, top=4)["similarity"].tolist() == labelled["similarity"].tolist()  # labels by default


def test_the_neighbours_say_which_rule_ranked_them(fake, refs, tmp_path):
    """similar() uses a labelled catalogue's labels by default, so the captions that `tracklens check`
    and the check page print come from the frame (they said "half ... half" over an LDA ranking)."""
    cat = build(refs, tmp_path / "cat")  # folder source: labelled
    query = catalogue.analyse(refs / "metal" / "metal.00000.wav")
    rule = catalogue.RULE_ATTR
    assert catalogue.similar(query, cat, top=2).attrs[rule] == (
        f"0.2 × {catalogue.SOUND_RULE}, 0.5 × {catalogue.LDA_RULE}, 0.3 × {catalogue.BLEND_RULE}")
    assert catalogue.similar(query, cat, top=2, use_labels=False).attrs[rule] == (
        f"half {catalogue.SOUND_RULE}, half {catalogue.BLEND_RULE}")
    assert catalogue.similar(query.embedding, cat, top=2, use_labels=False).attrs[rule] == (
        f"{catalogue.SOUND_RULE} (by sound alone)")
    assert catalogue.similar(query.embedding, cat, top=2).attrs[rule] == (
        f"0.29 × {catalogue.SOUND_RULE}, 0.71 × {catalogue.LDA_RULE} (by sound alone)")
    assert catalogue.similar(query, cat, top=2, within="metal", genre_weight=0.0).attrs[rule].endswith("(by sound alone)")


def test_neighbour_formats(fake, refs, tmp_path):
    cat = build(refs, tmp_path / "cat")
    result = catalogue.similar(refs / "jazz" / "jazz.00001.wav", cat, top=2)
    error = TracklensError("bad.wav: not audio")
    csv_text = catalogue.format_neighbours([("q.wav", result), ("bad.wav", error)], "csv")
    table = pd.read_csv(__import__("io").StringIO(csv_text))
    assert list(table.columns[:4]) == ["query", "rank", "similarity", "track_id"]
    assert list(table["query"]) == ["q.wav", "q.wav", "bad.wav"] and table["error"].iloc[2] == "bad.wav: not audio"
    items = json.loads(catalogue.format_neighbours([("q.wav", result), ("bad.wav", error)], "json"))
    assert items[0]["neighbours"][0]["track_id"] == "jazz.00001" and items[1]["error"] == "bad.wav: not audio"
    text = catalogue.format_neighbours([("q.wav", result)], "table")
    assert text.startswith("q.wav\n") and "jazz.00001" in text
    with pytest.raises(catalogue.CatalogueError, match="--format xml"):
        catalogue.format_neighbours([], "xml")


# --- --meta --------------------------------------------------------------------------------------


def test_meta_joins_by_isrc_or_artist_and_title_and_labels_its_columns(fake, tmp_path):
    folder = tmp_path / "hits"
    write(folder / "Daft Punk - Harder, Better, Faster, Stronger.wav", tone(200))
    write(folder / "Beyoncé feat. Jay-Z - Crazy in Love (Remastered).wav", tone(260))
    write(folder / "Nobody - Unknown Song.wav", tone(330))
    meta = tmp_path / "charts.csv"
    pd.DataFrame({"artist": ["Beyonce, JAY-Z", "Daft Punk", "Other"], "song": ["Crazy In Love", "Harder Better Faster Stronger", "x"],
                  "energy": [0.9, 0.7, 0.1], "genre": ["pop, R&B", "Dance/Electronic", "rock"]}).to_csv(meta, index=False)
    cat = build(folder, tmp_path / "cat", meta=meta)
    t = cat.tracks.set_index("artist")
    assert t.loc["Daft Punk", "spotify_energy"] == 0.7 and t.loc["Daft Punk", "title"] == "Harder, Better, Faster, Stronger"
    assert t.loc["Beyoncé feat. Jay-Z", "spotify_energy"] == 0.9
    assert np.isnan(t.loc["Nobody", "spotify_energy"]) and t.loc["Nobody", "spotify_matched_by"] == ""
    assert {"energy_est", "spotify_energy", "spotify_genre"} <= set(cat.tracks.columns)  # both sources, labelled
    assert cat.card["meta"]["matched_by"] == {"isrc": 0, "artist+title": 2}
    assert "spotify_energy" in cat.card["columns"]["meta"]
    assert set(catalogue.similar(folder / "Nobody - Unknown Song.wav", cat, within="R&B")["title"]) == {"Crazy in Love (Remastered)"}


def test_meta_by_isrc_from_a_manifest(fake, tmp_path):
    a, b = write(tmp_path / "a.wav", tone(200)), write(tmp_path / "b.wav", tone(300))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"path": [a.name, b.name], "isrc": ["usrc17607839", ""], "artist": ["X", "Y"],
                  "title": ["Wrong title", "Song B"]}).to_csv(manifest, index=False)
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"isrc": ["USRC17607839", "ZZ"], "artist": ["Q", "Y"], "name": ["Real title", "Song B"],
                  "tempo": [121.0, 90.0]}).to_csv(meta, index=False)
    cat = build(manifest, tmp_path / "cat", meta=meta)
    t = cat.tracks.set_index("track_id")
    assert t.loc["a", "spotify_tempo"] == 121.0 and t.loc["a", "spotify_matched_by"] == "isrc"
    assert t.loc["b", "spotify_tempo"] == 90.0 and t.loc["b", "spotify_matched_by"] == "artist+title"
    assert t.loc["a", "tempo"] != 121.0  # the engine's own value stays beside Spotify's


def test_a_bad_meta_table_fails_before_any_analysis(fake, refs, tmp_path, monkeypatch):
    monkeypatch.setattr(catalogue, "analyse", lambda *a, **k: pytest.fail("analysed before --meta was checked"))
    bad = tmp_path / "meta.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(catalogue.CatalogueError, match="needs 'isrc' or 'artist'"):
        build(refs, tmp_path / "cat", meta=bad)
    with pytest.raises(catalogue.CatalogueError, match="no such file"):
        build(refs, tmp_path / "cat", meta=tmp_path / "missing.csv")


def test_previews_index_names_the_files(fake, tmp_path):
    folder = tmp_path / "previews"
    write(folder / "daft-punk-one-more-time-1a2b3c4d.wav", tone(200))
    pd.DataFrame({"id": ["daft-punk-one-more-time-1a2b3c4d"], "artist": ["Daft Punk"], "title": ["One More Time"],
                  "isrc": [""], "file": ["daft-punk-one-more-time-1a2b3c4d.mp3"]}).to_csv(folder / "previews.csv", index=False)
    cat = build(folder, tmp_path / "cat")
    assert cat.tracks[["artist", "title"]].values.tolist() == [["Daft Punk", "One More Time"]]


# --- the commands ----------------------------------------------------------------------------------


def test_cli_build_similar_and_check(fake, refs, tmp_path, run_cli):
    code, out, err = run_cli("catalogue", "build", refs, "--out", tmp_path / "cat", "--cache-dir", tmp_path / "cache")
    assert code in (0, None) and "8 tracks (8 analysed now, 0 from cache), 0 unreadable" in out, err
    code, out, err = run_cli("similar", refs / "metal" / "metal.00003.wav", tmp_path / "nothing.wav",
                             "--catalogue", tmp_path / "cat", "--top", "2", "--format", "csv")
    assert code == 1  # one file could not be analysed; the other's neighbours are still printed
    table = pd.read_csv(__import__("io").StringIO(out))
    assert table["track_id"].iloc[0] == "metal.00003" and "no such file" in table["error"].iloc[2]
    code, out, err = run_cli("similar", refs / "metal" / "metal.00003.wav", "--catalogue", tmp_path / "cat",
                             "--within", "polka")
    assert code == 2 and "--within polka" in err and len(err.strip().splitlines()) == 1

    report = tmp_path / "out" / "check.html"
    code, out, err = run_cli("check", refs / "jazz" / "jazz.00002.wav", "--catalogue", tmp_path / "cat", "--out", report)
    assert code in (0, None), err
    page = report.read_text()
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "jazz.00002" in page and "<svg" in page and "Nearest by sound" in page
    assert "genre labels (LDA)" in page  # a labelled catalogue: the caption gives the rule similar() used
    values = pd.read_csv(tmp_path / "out" / "check.values.csv")
    data = json.loads((tmp_path / "out" / "check.json").read_text())
    assert float(values.set_index("name").loc["tempo", "value"]) == pytest.approx(data["values"][0]["value"])
    assert data["neighbours"][0]["track_id"] == "jazz.00002"


def test_similar_gives_an_unreadable_file_its_own_error_and_goes_on(fake, refs, tmp_path, run_cli, monkeypatch):
    """click's readable check refused the whole command (exit 2, `Invalid value for 'FILES'`) for
    one chmod-000 file among the queries."""
    import os

    build(refs, tmp_path / "cat")
    locked = tmp_path / "locked.wav"
    shutil.copyfile(refs / "jazz" / "jazz.00001.wav", locked)
    locked.chmod(0)
    real = os.access  # root reads a mode-000 file: deny it for root too, where click and tracklens ask
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == locked else real(p, mode, *a, **k))
    code, out, err = run_cli("similar", locked, refs / "metal" / "metal.00003.wav", "--catalogue", tmp_path / "cat",
                             "--top", "2", "--format", "csv")
    assert code == 1, err
    table = pd.read_csv(__import__("io").StringIO(out))
    assert table["error"].iloc[0] == f"{locked}: cannot read (permission denied)"
    assert table["track_id"].iloc[1] == "metal.00003"


def test_check_lists_no_neighbours_for_a_track_that_is_not_music(refs, tmp_path, run_cli, monkeypatch):
    """`tracklens check tone.wav --catalogue C` listed five "nearest by sound" for a sine tone the
    fit rule called not music (similarity 0.71 to classical clips), where the check page and its
    downloaded report list none; now the command lists none either and says why."""
    monkeypatch.setattr(catalogue, "analyse", fake_analyse)
    build(refs, tmp_path / "cat")

    def heard_a_tone(source, **kwargs):
        track = fake_analyse(source, **kwargs)
        track.blend.fit, track.blend.fit_reason = "poor", "does not sound like music: AudioSet hears Sine wave 0.64 (Music 0.01)"
        return track

    monkeypatch.setattr(catalogue, "analyse", heard_a_tone)
    report = tmp_path / "out" / "tone.html"
    code, out, err = run_cli("check", refs / "jazz" / "jazz.00002.wav", "--catalogue", tmp_path / "cat", "--out", report)
    assert code in (0, None), err
    assert "Nearest by sound" not in report.read_text()
    assert json.loads(report.with_suffix(".json").read_text())["neighbours"] == []
    assert out.splitlines()[-1] == (f"note: {refs / 'jazz' / 'jazz.00002.wav'} does not sound like music: AudioSet hears "
                                    "Sine wave 0.64 (Music 0.01); no neighbours in cat are listed")
    # `similar` asks for neighbours: they are listed, and a note on stderr says what they are
    code, out, err = run_cli("similar", refs / "jazz" / "jazz.00002.wav", "--catalogue", tmp_path / "cat", "--format", "csv")
    assert code in (0, None) and len(pd.read_csv(__import__("io").StringIO(out))) == 5
    assert err == (f"tracklens: note: {refs / 'jazz' / 'jazz.00002.wav'} does not sound like music: AudioSet hears "
                   "Sine wave 0.64 (Music 0.01); its neighbours are by sound, not by music\n")


def test_check_of_an_unreadable_file_is_one_line(fake, refs, tmp_path, run_cli, monkeypatch):
    """click's readable check answered with usage lines (`Usage: ... Error: Invalid value for
    'file': path 'x.wav' is not readable.`), not the one line every other error is."""
    import os

    locked = refs / "jazz" / "jazz.00001.wav"
    real = os.access  # root reads a mode-000 file: deny it where click and tracklens ask
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: Path(p) != locked and real(p, mode, *a, **k))
    code, out, err = run_cli("check", locked, "--out", tmp_path / "x.html")
    assert (code, out, err) == (2, "", f"tracklens: error: {locked}: cannot read (permission denied)\n")


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "two\nlines", "bell\x07"])
def test_build_name_must_be_a_plain_folder_name(fake, refs, tmp_path, run_cli, monkeypatch, name):
    """`catalogue build --name "a<newline>b"` made a catalogue folder that `catalogue list` (and the
    picker) showed on two lines."""
    monkeypatch.setenv("TRACKLENS_HOME", str(tmp_path / "home"))
    code, out, err = run_cli("catalogue", "build", refs, "--name", name, "--cache-dir", tmp_path / "c")
    assert code == 2 and "a plain folder name" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "home" / "data" / "catalogues").exists()  # refused before any folder is made


def test_the_tempo_shown_and_compared_is_the_engines_bpm(fake, refs, tmp_path, run_cli):
    """`similar`, `check` and the percentiles showed the `tempo` column: the GTZAN-table feature
    (plain librosa; Acc1 0.45 on 22 GTZAN clips against 0.68 for `bpm`), while the check page
    shows the engine's `bpm`: jazz.00004 was 95.7 BPM from `tracklens check`, 182.8 on the page.
    The fake engine gives every track the feature tempo 60 and a bpm of its own."""
    cat = build(refs, tmp_path / "cat")
    query = refs / "jazz" / "jazz.00001.wav"
    bpm = fake_analyse(query).values["bpm"]
    neighbours = catalogue.similar(query, cat, top=3)
    stored = cat.tracks.set_index("track_id")
    assert "tempo" not in neighbours.columns
    assert neighbours["bpm"].tolist() == stored.loc[neighbours["track_id"], "bpm"].tolist()
    placed = catalogue.percentiles(fake_analyse(query), cat).set_index("value_name")
    assert placed.loc["bpm", "value"] == bpm and placed.loc["bpm", "median"] == cat.tracks["bpm"].median()
    code, out, err = run_cli("check", query, "--catalogue", tmp_path / "cat", "--out", tmp_path / "q.html")
    assert code in (0, None), err
    values = {v["name"]: v["value"] for v in json.loads((tmp_path / "q.json").read_text())["values"]}
    assert values["tempo"] == bpm  # named as the page names it


def test_a_stereo_file_is_measured_over_its_channels_as_the_check_page_does(tmp_path, monkeypatch):
    """BS.1770 sums the channels' powers: two unrelated tones as left and right read ~3 dB above
    their mono downmix. The catalogue (and `similar` / `check` queries) measured the downmix."""
    from types import SimpleNamespace

    from tracklens.models import blend

    monkeypatch.setattr(catalogue, "_genre_model", lambda name: SimpleNamespace(model_dir=None))
    monkeypatch.setattr(blend, "predict_blend", lambda *a, **k: SimpleNamespace(
        embedding=np.zeros(catalogue.EMBEDDING_SIZE), audioset=np.zeros(catalogue.N_AUDIOSET)))
    path = tmp_path / "wide.wav"
    sf.write(path, np.stack([tone(220.0, seconds=6.0), tone(331.0, seconds=6.0, noise=0.05)], axis=1), SR)
    track = catalogue.analyse(path)
    measured = features.channel_meter(str(path)).result()
    assert track.values["loudness"] == pytest.approx(measured.integrated_lufs, abs=0.05)
    assert track.values["true_peak_dbtp"] == pytest.approx(measured.true_peak_dbtp, abs=0.05)
    downmix = features.mono_meter(load_audio(str(path), sr=SR).y, sr=SR).result().integrated_lufs
    assert track.values["loudness"] - downmix > 2.0  # what the fix changed
    from tracklens import reports  # `tracklens check` reports the card's loudness numbers, as the page shows them

    assert {"true_peak_dbtp", "loudness_range_lu"} <= set(reports.CHECK_VALUE_SOURCES) & set(track.values)


# --- the real analysis (EfficientAT + engine) -----------------------------------------------------------


@pytest.mark.slow
def test_real_analysis_finds_planted_near_duplicates_in_order(demo_catalogue, tmp_path):
    """The shipped analysis end to end: a demo clip's copies, less and more degraded, rank 1, 2, 3."""
    refs = tmp_path / "refs"
    query_file = sorted((demo_catalogue / "audio" / "disco").glob("*.wav"))[5]
    for genre in ("metal", "classical", "disco"):  # 17 + 3 planted: enough to centre on the catalogue mean
        (refs / genre).mkdir(parents=True)
        for src in [f for f in sorted((demo_catalogue / "audio" / genre).glob("*.wav")) if f != query_file][:6]:
            shutil.copy(src, refs / genre / src.name)
    refs_of_disco = len(list((refs / "disco").glob("*.wav")))
    y, sr = sf.read(query_file, dtype="float32")
    rng = np.random.default_rng(0)
    degraded = (0.9 * y,  # quieter only
                y + 0.005 * rng.normal(size=len(y)).astype(np.float32),  # a little hiss
                y + 0.012 * rng.normal(size=len(y)).astype(np.float32))  # more hiss
    for i, version in enumerate(degraded):
        write(refs / "planted" / f"copy.{i}.wav", version)
    cat = catalogue.build(refs, tmp_path / "cat", progress=False, cache_dir=tmp_path / "cache")
    assert cat.card["counts"]["errors"] == 0 and len(cat) == 12 + refs_of_disco + 3 >= catalogue.MIN_CENTRING_TRACKS
    track = catalogue.analyse(query_file)
    assert track.embedding.shape == (catalogue.EMBEDDING_SIZE,) and track.audioset.shape == (catalogue.N_AUDIOSET,)
    result = catalogue.similar(track, cat, top=4)
    assert list(result["track_id"][:3]) == ["copy.0", "copy.1", "copy.2"]
    assert result["similarity"].iloc[2] > result["similarity"].iloc[3]
    row = cat.tracks.set_index("track_id").loc["copy.0"]
    assert row["bpm"] > 0 and row["key_name"] and 0 <= row["energy_est"] <= 1
    assert sum(row[f"blend_{g}"] for g in cat.card["model"]["genres"]) == pytest.approx(1.0, abs=1e-4)


def test_chart_hits_route_previews_by_search_then_build_with_meta(fake, tmp_path):
    """Item 3 offline: a chart table -> `acquire previews` (Deezer search, shaped answers, generated
    MP3 audio) -> `catalogue build --meta` joins the chart's values to the tracks by artist + title."""
    import io

    import responses

    from tracklens.acquire.previews import download_previews
    from tracklens.acquire.web import RetryPolicy

    charts = tmp_path / "charts.csv"
    pd.DataFrame({"artist": ["Britney Spears", "blink-182"], "song": ["Toxic", "All The Small Things"],
                  "energy": [0.84, 0.9], "tempo": [143.0, 148.7], "genre": ["pop", "rock, pop"]}).to_csv(charts, index=False)
    mp3 = {}
    for name, freq in (("toxic", 220), ("blink", 330)):
        buffer = io.BytesIO()
        sf.write(buffer, tone(freq, seconds=3.0), SR, format="MP3")
        mp3[name] = buffer.getvalue()
    answers = {"Toxic": (1, "Britney Spears", "toxic"), "All The Small Things": (2, "blink-182", "blink")}
    with responses.RequestsMock() as mock:
        for title, (deezer_id, artist, name) in answers.items():
            url = f"https://cdn.example/preview-{deezer_id}.mp3"
            mock.get("https://api.deezer.com/search", match=[responses.matchers.query_param_matcher(
                {"q": f'artist:"{artist}" track:"{title}"', "limit": "10"})],
                json={"data": [{"id": deezer_id, "title": title, "title_short": title, "preview": url,
                                "artist": {"id": 9, "name": artist}, "type": "track"}], "total": 1})
            mock.get(url, body=mp3[name])
        report = download_previews(charts, tmp_path / "previews", workers=1, progress=False,
                                   policy=RetryPolicy(sleep=lambda s: None))
    assert len(report.downloaded) == 2 and not report.failed
    cat = build(tmp_path / "previews", tmp_path / "cat", meta=charts)
    t = cat.tracks.set_index("title")
    assert t.loc["Toxic", "spotify_energy"] == 0.84 and t.loc["All The Small Things", "spotify_tempo"] == 148.7
    assert set(t["spotify_matched_by"]) == {"artist+title"} and len(cat.errors) == 0


def test_the_new_commands_help_is_instant_and_has_examples():
    import subprocess
    import sys

    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from tracklens import cli\n"
            "for cmd in (['catalogue', 'build'], ['catalogue', 'list'], ['similar'], ['check']):\n"
            "    result = CliRunner().invoke(cli.app, [*cmd, '--help'])\n"
            "    assert result.exit_code == 0 and 'Examples:' in result.output, result.output\n"
            "print(sorted(m for m in ('tensorflow', 'pandas', 'librosa') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=config.PACKAGE_DIR, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_percentiles_place_a_track_among_the_catalogue_or_its_genre(fake, refs, tmp_path):
    cat = build(refs, tmp_path / "cat")
    tempos = cat.tracks["bpm"]  # the fake engine's card tempo: 150 for metal, 140 for jazz
    assert set(tempos) == {150.0, 140.0}
    # by default the card's tempo is compared (bpm), not the summary's model-input tempo (60 here)
    all_tracks = catalogue.percentiles({"bpm": 145.0, "tempo": 145.0, "loudness": None}, cat).set_index("value_name")
    assert all_tracks.loc["bpm", "percentile"] == 50.0 and all_tracks.loc["bpm", "n"] == 8
    assert "tempo" not in all_tracks.index and np.isnan(all_tracks.loc["loudness", "percentile"])
    jazz = catalogue.percentiles({"bpm": 145.0}, cat, within="jazz", columns=("bpm",)).iloc[0]
    assert jazz["percentile"] == 100.0 and jazz["n"] == 4 and jazz["median"] == 140.0
    tie = catalogue.percentiles({"bpm": 140.0}, cat, columns=("bpm",)).iloc[0]
    assert tie["percentile"] == 25.0  # four below-or-equal ties count half: 4 * 0.5 / 8


def test_build_on_a_dask_cluster_writes_parts_and_the_same_catalogue(fake, refs, tmp_path):
    """--scheduler: the workers analyse the files and write the parts; the catalogue is the same."""
    from distributed import LocalCluster

    local = build(refs, tmp_path / "local")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        on_cluster = catalogue.build(refs, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False,
                                     cache_dir=tmp_path / "dask-cache")
    assert (on_cluster.path / catalogue.ANALYSIS_FILE).is_dir()  # a folder of parts
    columns = ["track_id", "top_genre", "tempo", *catalogue.EMBEDDING_COLUMNS]
    pd.testing.assert_frame_equal(on_cluster.tracks[columns], local.tracks[columns])
    assert on_cluster.card["built"]["scheduler"] == cluster.scheduler_address
