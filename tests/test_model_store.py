"""Model cards and weights (models/store.py): tampered or foreign models are refused when loaded."""

from __future__ import annotations

import json
import shutil

import pytest

from tracklens.models import store


def _copy_model(trained, tmp_path, name="linear"):
    out, _ = trained
    target = tmp_path / name
    shutil.copytree(out / name, target)
    return target


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_tampered_card_or_weights_refused(trained, tmp_path):
    from tracklens.models import blend

    model_dir = _copy_model(trained, tmp_path)
    card_path = model_dir / store.CARD_NAME
    original = card_path.read_text()
    card = json.loads(original)
    card["genres"] = card["genres"][::-1]  # swapped labels: would silently mislabel everything
    card_path.write_text(json.dumps(card))
    with pytest.raises(store.ModelCardError, match="does not match its SHA-256"):
        blend.load_model(model_dir)
    card_path.write_text(original)
    with open(model_dir / store.WEIGHTS_NAME, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(store.ModelCardError, match="SHA-256"):
        blend.load_model(model_dir)


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_model_from_another_version_refused(trained, tmp_path):
    from tracklens.models import blend

    model_dir = _copy_model(trained, tmp_path)
    card = store.read_card(model_dir)
    card["library_versions"]["keras"] = "2.15.0"
    card["card_sha256"] = store.card_digest(card)  # a genuine card from an older install
    store.write_json(model_dir / store.CARD_NAME, card)
    with pytest.raises(store.ModelCardError, match="Keras 2.15.0"):
        blend.load_model(model_dir)
    with pytest.raises(store.ModelCardError, match="cannot predict"):
        blend.load_model(trained[0] / "logreg")
