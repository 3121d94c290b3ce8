"""The input kinds (models.kinds): one object per kind, looked up by every caller.

The planted kind shows the point of the module: a new kind registered in ``KINDS`` loads, is
weight-checked, decoded at its rate, windowed and blended without an edit to models/blend.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracklens import config
from tracklens.audio import AudioClip
from tracklens.errors import TracklensError
from tracklens.models import blend, kinds, registry, store

GENRES = ["pop", "rock"]


def test_an_unknown_kind_is_one_line_naming_the_choices():
    with pytest.raises(TracklensError) as info:
        kinds.get("wavelet")
    message = str(info.value)
    assert "\n" not in message and "'wavelet'" in message and "efficientat" in message and "summary" in message


def test_a_card_with_an_unknown_kind_is_refused_in_one_line():
    model = blend.GenreModel(None, {"name": "odd", "genres": GENRES, "input": {"kind": "wavelet"}}, Path("odd"))
    with pytest.raises(TracklensError, match=r"^unknown model input kind 'wavelet'; choose from [^\n]*$"):
        model.kind


def test_every_registered_model_and_shipped_card_resolves_its_kind():
    assert {spec.input_kind for spec in registry.MODELS.values()} <= set(kinds.KINDS)
    cards = {name: store.read_card(config.MODELS_DIR / name) for name in blend.SHIPPED_NAMES}
    for name, card in cards.items():
        record = card["input"]
        kind = kinds.get(record["kind"])
        assert record["sample_rate"] == kind.sample_rate, name
        if kind.networks:  # what the card records about its networks is what the kind records today
            assert kind.card_input(record["columns"], record["shape"], kind.window_s, **kind.embedding_record()) == record, name
    assert {c["input"]["kind"] for c in cards.values()} >= {"efficientat", "fusion", "musicnn", "summary"}
    assert kinds.get("fusion").networks == ("musicnn", "efficientat") and kinds.get("summary").reads_table


class _Fixed:
    """Stands in for a Keras model: every window is 80 % pop."""

    def __call__(self, x, training=False):
        return np.tile([0.8, 0.2], (len(x), 1))


@pytest.fixture
def planted(monkeypatch):
    """A kind no module knows: 8 kHz, 5 s windows, its own weight check; records what it was given."""
    seen = {"rates": [], "checked": []}

    def window_inputs(part, card_input, *, short_input):
        seen["rates"].append(part.sr)
        starts = np.arange(0.0, part.duration_s - 1e-6, card_input["window_s"])
        spans = [(float(s), float(min(s + card_input["window_s"], part.duration_s))) for s in starts]
        return np.full((len(spans), len(card_input["columns"])), 0.5, np.float32), spans

    def check(card, model_dir):
        seen["checked"].append(model_dir)
        if card["input"].get("weights") != "good":
            raise store.ModelCardError(f"{model_dir}: trained on other planted weights")

    kind = kinds.InputKind("planted", "planted_windows", window_inputs, rate=lambda: 8000, window=lambda: 5.0,
                           short_input_note="planted-padded", weight_checks=(check,))
    monkeypatch.setitem(kinds.KINDS, "planted", kind)
    card = {"name": "planted", "genres": GENRES, "calibration": {"temperature": 1.0, "aggregation": "mean_logprob"},
            "input": kind.card_input(["p0", "p1"], [2], kind.window_s, weights="good")}
    monkeypatch.setattr(store, "load_keras_model", lambda model_dir: (_Fixed(), card))
    return seen, card


def _clip(seconds: float, sr: int) -> AudioClip:
    y = 0.1 * np.sin(np.arange(int(seconds * sr)) / 7.0).astype(np.float32)
    return AudioClip(y=y, sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=seconds)


def test_a_planted_kind_is_blended_without_touching_the_blend(planted):
    seen, card = planted
    model = blend.GenreModel.load("planted-dir")
    assert seen["checked"] == [Path("planted-dir")] and model.sample_rate == 8000
    result = blend.predict_blend(model, _clip(12.0, 44_100), judge_fit=False)
    assert seen["rates"] == [8000]  # resampled to the kind's rate
    assert len(result.timeline) == 3 and result.timeline["end_s"].iloc[-1] == pytest.approx(12.0)
    assert result.top_genre == "pop"
    short = blend.predict_blend(model, _clip(2.0, 8000), judge_fit=False)
    assert "shorter than the model's 5 s window: planted-padded" in short.notes
    with pytest.raises(TracklensError, match="reads planted inputs from audio"):
        blend.predict_table(model, "unused.csv")


def test_a_planted_kinds_weight_check_refuses_other_weights(planted):
    _, card = planted
    card["input"]["weights"] = "other"
    with pytest.raises(store.ModelCardError, match="other planted weights"):
        blend.GenreModel.load("planted-dir")


def test_the_kinds_import_cheaply():
    """models.registry (and so the CLI help) imports the kinds: no numpy, pandas or Keras until a kind's function runs."""
    import subprocess
    import sys

    code = ("import sys, tracklens.models.kinds, tracklens.models.registry; "
            "print(sorted(m for m in ('numpy', 'pandas', 'keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
