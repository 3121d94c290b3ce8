"""The shipped default models: small, tied to their pretrained weights, right on real music."""

from __future__ import annotations

import json

from tracklens import config
from tracklens.models import store


def test_default_models_ship_verified_and_small():
    from tracklens.models import efficientat, musicnn

    card = store.read_card(config.DEFAULT_MODEL_DIR)
    fast = store.read_card(config.DEFAULT_FAST_MODEL_DIR)
    for folder in (config.DEFAULT_MODEL_DIR, config.DEFAULT_FAST_MODEL_DIR):
        size = sum(p.stat().st_size for p in folder.iterdir())
        assert size < 5 * 2 ** 20, folder  # the head only: pretrained weights ship once, in models/pretrained/
    assert card["genres"] == fast["genres"] == list(config.GTZAN_GENRES)
    assert "gtzan" in json.dumps(card["data"]).lower()
    # default and default-fast: EfficientAT alone, one linear layer (issue 20: chosen on whole clips,
    # cost breaking ties); the EfficientAT + musicnn fusion ships by name (models/fusion).
    # All tied to the shipped pretrained weights by checksum.
    fusion = store.read_card(config.MODELS_DIR / "fusion")
    assert (card["input"]["kind"], card["architecture"]) == ("efficientat", "linear")
    assert (fast["input"]["kind"], fast["architecture"]) == ("efficientat", "linear")
    eat_sha = efficientat.read_manifest()[efficientat.DEFAULT_MODEL]["weights_sha256"]
    assert card["input"]["embedding_weights_sha256"] == fast["input"]["embedding_weights_sha256"] == eat_sha
    assert fusion["input"]["musicnn"]["embedding_weights_sha256"] == musicnn.read_manifest()["MSD_musicnn"]["weights_sha256"]
    assert "MIT" in card["input"]["embedding_licence"] and "ISC" in fusion["input"]["musicnn"]["embedding_licence"]
    assert card["metrics"]["valid_by_kind"]["clips"]["n"] > 0 and card["metrics"]["grouped_cv"]["clips"]["n"] > 0
    table_card = store.read_card(config.DEFAULT_TABLE_MODEL_DIR)  # the one --features-csv uses
    assert table_card["input"]["kind"] == "summary" and table_card["genres"] == list(config.GTZAN_GENRES)


def test_default_model_classifies_real_music(shared_data):
    """Out of the box on real GTZAN audio (first full clip and first 2-3 s snippet of each genre;
    chance: 1 of 10 top-1, 3 top-3).

    These clips were in the default model's training data (it is trained on all shared train and
    valid audio), so this checks the whole audio -> musicnn -> blend path, not generalisation:
    the card's valid-fold scores (train-only fit) and bench/musicnn.py measure that, and the
    learning tests on held-out demo data check that training learns.
    """
    from tracklens.models import blend

    model = blend.load_default_model()
    gtzan = shared_data / "gtzan"
    clips = [sorted((gtzan / "audio" / g).glob("*.opus"))[0] for g in config.GTZAN_GENRES]
    snippets = [sorted((gtzan / "audio_snippets_2to3s" / g).glob("*.opus"))[0] for g in config.GTZAN_GENRES
                if (gtzan / "audio_snippets_2to3s" / g).is_dir()]
    for files, min_top1, min_top3 in ((clips, 8, 10), (snippets, 5, 7)):
        results = blend.predict_files(files, model=model)
        top1 = sum(r.top_genre == c.parent.name for r, c in zip(results, files))
        top3 = sum(c.parent.name in dict(r.top(3)) for r, c in zip(results, files))
        assert top1 >= min_top1 and top3 >= min_top3, [(c.name, r.label) for r, c in zip(results, files)]
