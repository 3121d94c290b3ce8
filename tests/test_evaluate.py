"""Model evaluation (models/evaluate.py, reports.write_report): metrics against scikit-learn, calibration, report files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import config, fileio, reports
from tracklens.errors import TracklensError
from tracklens.models import evaluate, store


def _random_scores(n=300, k=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    return y, evaluate.softmax(logits)


def test_metrics_match_sklearn():
    from sklearn import metrics as skm

    y, p = _random_scores()
    m = evaluate.classification_metrics(y, p, class_names=list("abcde"))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p.argmax(1)))
    assert m["macro_roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=range(5)))
    for c, name in enumerate("abcde"):
        assert m[f"roc_auc_{name}"] == pytest.approx(skm.roc_auc_score(y == c, p[:, c]))


def test_ece_by_hand_and_absent_class():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1, 0.0], [0.9, 0.1, 0.0], [0.3, 0.7, 0.0], [0.7, 0.3, 0.0]])
    # bins: 0.9 -> two samples, one... all correct? sample 4 predicts 0 but is 1
    # conf 0.9: both correct (acc 1, conf 0.9) -> 0.5 * 0.1; conf 0.7: acc 0.5 -> 0.5 * 0.2
    assert evaluate.expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.05 + 0.10)
    m = evaluate.classification_metrics(y, p, class_names=["x", "y", "z"])
    assert np.isnan(m["roc_auc_z"]) and np.isfinite(m["macro_roc_auc"])


@pytest.mark.parametrize("bad", [
    (np.array([0, 1]), np.array([[0.5, 0.5]])),                 # length mismatch
    (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]])),    # label out of range
    (np.array([0, 1]), np.array([[2.0, -1.0], [0.5, 0.5]])),   # not probabilities
    (np.array([0, 1]), np.array([[0.2, 0.2], [0.5, 0.5]])),    # rows do not sum to 1
])
def test_metrics_reject_bad_input(bad):
    with pytest.raises(TracklensError):
        evaluate.classification_metrics(*bad)


def test_temperature_scaling_reduces_ece_on_overconfident_scores():
    rng = np.random.default_rng(1)
    n, k = 2000, 6
    true_logits = rng.normal(scale=1.5, size=(n, k))
    p_true = evaluate.softmax(true_logits)
    y = np.array([rng.choice(k, p=row) for row in p_true])
    overconfident = evaluate.softmax(3.0 * true_logits)  # what an over-fitted net reports
    t = evaluate.fit_temperature(y, overconfident)
    calibrated = evaluate.apply_temperature(overconfident, t)
    assert 2.3 < t < 3.8
    assert evaluate.expected_calibration_error(y, calibrated) < 0.5 * evaluate.expected_calibration_error(y, overconfident)
    np.testing.assert_array_equal(calibrated.argmax(1), overconfident.argmax(1))  # ranking untouched
    np.testing.assert_allclose(calibrated.sum(1), 1.0)


def test_aggregate_segments_both_ways():
    groups = np.array(["b", "a", "b", "a"])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.4, 0.6]])
    ids, mean = evaluate.aggregate_segments(groups, p, method="mean_prob")
    assert list(ids) == ["b", "a"]
    np.testing.assert_allclose(mean, [[0.7, 0.3], [0.3, 0.7]])
    _, geo = evaluate.aggregate_segments(groups, p, method="mean_logprob")
    expected = np.sqrt([0.9 * 0.5, 0.1 * 0.5])
    np.testing.assert_allclose(geo[0], expected / expected.sum())


def test_report_writes_table_figures_and_html(tmp_path):
    y, p = _random_scores(k=3)
    results = [{"name": "m1", "y_true": y, "y_score": p, "y_score_raw": p, "temperature": 1.0,
                "history": {"loss": [1.0, 0.5], "val_loss": [1.1, 0.9]}}]
    page = reports.write_report(results, tmp_path, class_names=["a", "b", "c"])
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert table.loc[0, "model"] == "m1" and {"macro_roc_auc", "ece", "roc_auc_b"} <= set(table.columns)
    assert "m1_roc.png" in page.read_text() and (tmp_path / "figures" / "m1_training.png").stat().st_size > 1000
    assert evaluate.ECE_NOTE in page.read_text()


FORMULA = '=HYPERLINK("http://evil.example","x")'


def test_comparison_table_escapes_model_names(tmp_path):
    y = np.array([0, 1, 0, 1])
    p = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    reports.write_report([{"name": FORMULA, "y_true": y, "y_score": p, "y_score_raw": p}], tmp_path,
                         class_names=["a", "b"])
    assert pd.read_csv(tmp_path / "comparison.csv")["model"].item() == "'" + FORMULA
    assert fileio.read_csv(tmp_path / "comparison.csv")["model"].item() == FORMULA


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_cards_and_evaluate_report(trained, tmp_path):
    out, results = trained
    card = store.read_card(out / "mlp")
    assert card["predictor"] and card["input"]["kind"] == "summary" and len(card["input"]["columns"]) == 57
    assert card["split"]["seed"] == config.DEFAULT_SEED and "keras" in card["library_versions"]
    assert card["input"]["sample_rate"] == 22050 and store.read_card(out / "cnn")["input"]["kind"] == "log_mel"
    assert not store.read_card(out / "logreg")["predictor"]
    report, table = reports.evaluate_models(out, out_dir=tmp_path)
    assert set(table["model"]) == set(results) and report.is_file()  # every model trained
    # the table's ECE is the one each card recorded at training time
    cards = {m: store.read_card(out / m)["metrics"]["valid_track_level"]["ece"] for m in table["model"]}
    np.testing.assert_allclose(table.set_index("model")["ece"].loc[list(cards)], list(cards.values()), atol=1e-5)
