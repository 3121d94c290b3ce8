"""model_figures.py: a genre model's report figures, checked against scikit-learn's numbers."""

from __future__ import annotations

import numpy as np
import pytest

from tracklens import model_figures
from tracklens.errors import TracklensError


def test_model_report_figures_match_sklearn():
    from sklearn.metrics import confusion_matrix, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 90)
    score = rng.dirichlet([1, 1, 1], 90)
    score[np.arange(90), y] += 0.6
    score /= score.sum(axis=1, keepdims=True)
    report = {"model": "m", "class_names": ["a", "b", "c"], "y_true": y.tolist(), "y_score": score.tolist()}
    roc = model_figures.roc_data(report)
    for c, name in enumerate("abc"):
        assert roc[roc["class"] == name]["auc"].iloc[0] == pytest.approx(roc_auc_score(y == c, score[:, c]))
    np.testing.assert_array_equal(model_figures.confusion_data(report).to_numpy(), confusion_matrix(y, score.argmax(1)))
    rel = model_figures.reliability_data(report)
    assert rel["count"].sum() == 90 and 0 <= rel.attrs["ece"] <= 1
    assert model_figures.roc_curves(report).data and model_figures.confusion_matrix(report, backend="matplotlib").axes
    with pytest.raises(TracklensError, match="lacks"):
        model_figures.roc_curves({"model": "m"})
