"""The model registry (models/registry.py): every name resolves, aliases expand."""

from __future__ import annotations

import pytest

from tracklens.errors import TracklensError
from tracklens.models import registry


def test_registry_resolves_every_model_and_expands_aliases():
    """Each name's factory exists in its module and the card's architecture is its builder or itself."""
    for name, model in registry.MODELS.items():
        assert model.input_kind in registry.INPUT_SOURCES and callable(registry.factory(name)), name
        if model.family == "baseline":
            assert registry.architecture(name) == name
    assert registry.architecture("musicnn_mlp") == "mlp" and registry.architecture("cnn") == "cnn"
    assert registry.sample_rate("log_mel") == 22050 and registry.sample_rate("musicnn") == 16000
    assert registry.parse_names("linear, summary,cnn") == ["linear", "mlp", "logreg", "knn", "random_forest", "svm",
                                                          "gradient_boosting", "cnn"]
    assert "musicnn_linear" not in registry.parse_names("all") and "cnn" in registry.parse_names("all")
    with pytest.raises(TracklensError, match="'transformer'"):
        registry.parse_names("linear,transformer")
