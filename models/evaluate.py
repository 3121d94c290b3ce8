"""Evaluation: pure metric functions, temperature scaling, aggregation and the comparison table.

Metric functions follow mir_eval's habit: ``f(y_true, y_score) -> dict of named scores``, inputs
validated first. ``y_true`` holds integer class indices ``(n,)``; ``y_score`` holds class
probabilities ``(n, n_classes)`` whose rows sum to 1. Nothing here reads or writes a file or draws
a figure: the figures are :mod:`tracklens.explore`'s (the reliability diagram takes its bins and
ECE from :func:`calibration_bins`), and :mod:`tracklens.reports` writes the report.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tracklens.errors import TracklensError

EPS = 1e-12
#: Equal-width confidence bins of the expected calibration error, everywhere it is shown (card,
#: comparison table, report, dashboard, reliability diagrams).
ECE_BINS = 15
#: How tables and help texts state what their ``ece`` columns are.
ECE_NOTE = f"ece: top-label expected calibration error over {ECE_BINS} equal-width confidence bins"


# --- validation and small helpers ----------------------------------------------------------------


def check_scores(y_true, y_score, *, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(y_true int64 (n,), y_score float64 (n, k))``.

    Raises TracklensError when shapes disagree, labels fall outside ``[0, k)``, scores are not
    finite/non-negative, or a row does not sum to 1 (within 1e-3).
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim != 2 or y_true.ndim != 1 or len(y_true) != len(y_score):
        raise TracklensError(f"scores must be (n, k) and labels (n,): got {y_score.shape} and {y_true.shape}")
    if len(y_true) == 0:
        raise TracklensError("no samples to evaluate")
    k = y_score.shape[1] if n_classes is None else n_classes
    if y_score.shape[1] != k:
        raise TracklensError(f"scores have {y_score.shape[1]} columns, expected {k} classes")
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= k:
        raise TracklensError(f"labels must be integer class indices in [0, {k})")
    if not np.all(np.isfinite(y_score)) or np.any(y_score < 0):
        raise TracklensError("scores must be finite probabilities >= 0")
    if np.max(np.abs(y_score.sum(axis=1) - 1.0)) > 1e-3:
        raise TracklensError("each row of scores must sum to 1 (pass probabilities, not logits)")
    return y_true.astype(np.int64), y_score


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


# --- metrics --------------------------------------------------------------------------------------


def calibration_bins(y_true, y_score, *, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Top-label confidence in ``n_bins`` equal-width bins over [0, 1], the bins that hold samples only.

    Returns
    -------
    dict of (n_nonempty,) arrays: ``bin`` (index), ``confidence`` (mean top-class probability),
    ``accuracy`` (share whose top class is right) and ``count``
    """
    y_true, y_score = check_scores(y_true, y_score)
    confidence = y_score.max(axis=1)
    correct = (y_score.argmax(axis=1) == y_true).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    held = np.flatnonzero(count)
    return {"bin": held, "count": count[held],
            "confidence": np.bincount(bins, weights=confidence, minlength=n_bins)[held] / count[held],
            "accuracy": np.bincount(bins, weights=correct, minlength=n_bins)[held] / count[held]}


def expected_calibration_error(y_true, y_score, *, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy - confidence| of each :func:`calibration_bins` bin, weighted by its count."""
    b = calibration_bins(y_true, y_score, n_bins=n_bins)
    return float(np.sum(b["count"] * np.abs(b["accuracy"] - b["confidence"])) / np.sum(b["count"]))


def log_loss(y_true, y_score) -> float:
    """Mean negative log-likelihood of the true class (natural log, probabilities clipped at 1e-12)."""
    y_true, y_score = check_scores(y_true, y_score)
    return float(-np.mean(np.log(np.clip(y_score[np.arange(len(y_true)), y_true], EPS, 1.0))))


def roc_auc_per_class(y_true, y_score) -> np.ndarray:
    """One-vs-rest ROC-AUC per class ``(k,)``; NaN for a class absent from (or filling) ``y_true``."""
    from sklearn.metrics import roc_auc_score

    y_true, y_score = check_scores(y_true, y_score)
    out = np.full(y_score.shape[1], np.nan)
    for c in range(y_score.shape[1]):
        positives = y_true == c
        if 0 < positives.sum() < len(y_true):
            out[c] = roc_auc_score(positives, y_score[:, c])
    return out


def classification_metrics(y_true, y_score, *, class_names: Sequence[str] | None = None,
                           n_bins: int = ECE_BINS) -> dict:
    """All headline scores in one dict.

    Returns
    -------
    dict with ``accuracy``, ``balanced_accuracy`` (mean recall over classes present in
    ``y_true``), ``macro_roc_auc`` (mean one-vs-rest AUC over present classes), ``log_loss``,
    ``ece`` (top-label, ``n_bins`` bins), ``n`` and ``roc_auc_<name>`` per class (NaN if absent).
    """
    y_true, y_score = check_scores(y_true, y_score)
    names = list(class_names) if class_names is not None else [str(i) for i in range(y_score.shape[1])]
    if len(names) != y_score.shape[1]:
        raise TracklensError(f"{len(names)} class names for {y_score.shape[1]} score columns")
    y_pred = y_score.argmax(axis=1)
    present = np.unique(y_true)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in present]
    aucs = roc_auc_per_class(y_true, y_score)
    out = {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(np.mean(recalls)),
        "macro_roc_auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan"),
        "log_loss": log_loss(y_true, y_score),
        "ece": expected_calibration_error(y_true, y_score, n_bins=n_bins),
    }
    out.update({f"roc_auc_{name}": float(a) for name, a in zip(names, aucs)})
    return out


# --- calibration and aggregation ------------------------------------------------------------------


def apply_temperature(y_score, temperature: float) -> np.ndarray:
    """Rescale probabilities: ``softmax(log p / T)``. T > 1 softens, T < 1 sharpens, T = 1 is identity."""
    if not temperature > 0:
        raise TracklensError(f"temperature={temperature} must be > 0")
    logp = np.log(np.clip(np.asarray(y_score, dtype=np.float64), EPS, 1.0))
    return softmax(logp / temperature, axis=-1)


def fit_temperature(y_true, y_score, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature T minimising the log-loss of ``apply_temperature(y_score, T)`` (fit on validation).

    One parameter, so it cannot change the ranking (accuracy, AUC) - only the confidence.
    """
    from scipy.optimize import minimize_scalar

    y_true, y_score = check_scores(y_true, y_score)
    logp = np.log(np.clip(y_score, EPS, 1.0))
    rows = np.arange(len(y_true))

    def nll(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(-np.mean(z[rows, y_true] - np.log(np.exp(z).sum(axis=1))))

    res = minimize_scalar(nll, bounds=tuple(math.log(b) for b in bounds), method="bounded")
    return float(math.exp(res.x))


def aggregate_segments(groups, y_score, *, method: str = "mean_prob") -> tuple[np.ndarray, np.ndarray]:
    """Track-level probabilities from segment probabilities.

    Parameters
    ----------
    groups : (n_segments,) track ids
    y_score : (n_segments, k) segment probabilities
    method : "mean_prob" (arithmetic mean) or "mean_logprob" (normalised geometric mean)

    Returns
    -------
    (track ids in first-seen order, (n_tracks, k) probabilities)
    """
    if method not in ("mean_prob", "mean_logprob"):
        raise TracklensError(f"method={method!r} must be 'mean_prob' or 'mean_logprob'")
    groups = np.asarray(groups)
    y_score = np.asarray(y_score, dtype=np.float64)
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(first)  # keep the first-seen order of tracks
    k = y_score.shape[1]
    values = y_score if method == "mean_prob" else np.log(np.clip(y_score, EPS, 1.0))
    sums = np.zeros((len(first), k))
    np.add.at(sums, inverse, values)
    means = sums / np.bincount(inverse)[:, None]
    probs = means / means.sum(axis=1, keepdims=True) if method == "mean_prob" else softmax(means, axis=1)
    return groups[first][order], probs[order]


# --- the comparison table ---------------------------------------------------------------------------

TABLE_COLUMNS = ("model", "accuracy", "balanced_accuracy", "macro_roc_auc", "log_loss", "ece",
                 "ece_uncalibrated", "temperature", "train_s", "infer_ms_per_track", "n_params", "n")


def comparison_table(results: Sequence[dict], *, class_names: Sequence[str]):
    """One row per model: headline metrics, per-genre ROC-AUC and cost columns (a DataFrame).

    Each result: ``name``, ``y_true``, ``y_score`` (calibrated), optionally ``y_score_raw``
    (before temperature scaling), ``temperature``, ``train_s``, ``infer_ms``, ``n_params``.
    ``ece`` and ``ece_uncalibrated`` use :data:`ECE_BINS` bins (see :data:`ECE_NOTE`).
    """
    import pandas as pd

    rows = []
    for r in results:
        m = classification_metrics(r["y_true"], r["y_score"], class_names=class_names)
        raw = r.get("y_score_raw")
        row = {"model": r["name"], **m,
               "ece_uncalibrated": expected_calibration_error(r["y_true"], raw) if raw is not None else np.nan,
               "temperature": r.get("temperature", np.nan), "train_s": r.get("train_s", np.nan),
               "infer_ms_per_track": r.get("infer_ms", np.nan), "n_params": r.get("n_params", np.nan)}
        rows.append(row)
    table = pd.DataFrame(rows)
    per_genre = [c for c in table.columns if c.startswith("roc_auc_")]
    return table[[c for c in TABLE_COLUMNS if c in table.columns] + per_genre]

