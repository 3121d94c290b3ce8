"""Evaluation: pure metric functions, temperature scaling, figures and the comparison report.

Metric functions follow mir_eval's habit: ``f(y_true, y_score) -> dict of named scores``, inputs
validated first. ``y_true`` holds integer class indices ``(n,)``; ``y_score`` holds class
probabilities ``(n, n_classes)`` whose rows sum to 1. Figures are matplotlib ``Figure`` objects
built without pyplot (no global state, no display); the report writes PNG files and one HTML page.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from tracklens.errors import TracklensError
from tracklens.fileio import atomic_write_bytes, write_csv

EPS = 1e-12


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


def expected_calibration_error(y_true, y_score, *, n_bins: int = 15) -> float:
    """Top-label ECE: |accuracy - confidence| averaged over equal-width confidence bins, weighted by count."""
    y_true, y_score = check_scores(y_true, y_score)
    confidence = y_score.max(axis=1)
    correct = (y_score.argmax(axis=1) == y_true).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


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


def classification_metrics(y_true, y_score, *, class_names: Sequence[str] | None = None, n_bins: int = 15) -> dict:
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


# --- figures --------------------------------------------------------------------------------------


def _figure(width: float = 5.0, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_roc_curves(y_true, y_score, *, class_names: Sequence[str], title: str = ""):
    """One-vs-rest ROC curve per class present in ``y_true``, AUC in the legend."""
    from sklearn.metrics import roc_curve

    y_true, y_score = check_scores(y_true, y_score)
    aucs = roc_auc_per_class(y_true, y_score)
    fig = _figure()
    ax = fig.add_subplot()
    for c, name in enumerate(class_names):
        if np.isfinite(aucs[c]):
            fpr, tpr, _ = roc_curve(y_true == c, y_score[:, c])
            ax.plot(fpr, tpr, lw=1.2, label=f"{name} {aucs[c]:.2f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title or "ROC (one vs rest)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_confusion(y_true, y_score, *, class_names: Sequence[str], title: str = ""):
    """Row-normalised confusion matrix (rows: true genre, columns: predicted)."""
    y_true, y_score = check_scores(y_true, y_score)
    k = len(class_names)
    cm = np.zeros((k, k))
    np.add.at(cm, (y_true, y_score.argmax(axis=1)), 1)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    fig = _figure(5.5, 4.8)
    ax = fig.add_subplot()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=60, fontsize=7)
    ax.set_yticks(range(k), class_names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion")
    return fig


def plot_reliability(y_true, y_score, *, n_bins: int = 10, title: str = ""):
    """Reliability diagram: accuracy vs mean confidence per confidence bin, ECE in the title."""
    y_true, y_score = check_scores(y_true, y_score)
    confidence = y_score.max(axis=1)
    correct = y_score.argmax(axis=1) == y_true
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    centers, accs, counts = [], [], []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            centers.append(confidence[mask].mean())
            accs.append(correct[mask].mean())
            counts.append(mask.sum())
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.scatter(centers, accs, s=20 + 200 * np.asarray(counts) / max(len(y_true), 1))
    ax.plot(centers, accs, lw=1)
    ece = expected_calibration_error(y_true, y_score)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
           title=f"{title} ECE={ece:.3f}".strip())
    return fig


def plot_training_curves(history: dict, *, title: str = ""):
    """Loss and accuracy per epoch (``history`` as from ``keras.callbacks.History.history``)."""
    fig = _figure(7.0, 3.0)
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        for key in (metric, f"val_{metric}"):
            if key in history:
                ax.plot(range(1, len(history[key]) + 1), history[key], label=key)
        ax.set(xlabel="epoch", title=f"{title} {metric}".strip())
        if ax.lines:
            ax.legend(fontsize=7)
    return fig


# --- the comparison report ------------------------------------------------------------------------

TABLE_COLUMNS = ("model", "accuracy", "balanced_accuracy", "macro_roc_auc", "log_loss", "ece",
                 "ece_uncalibrated", "temperature", "train_s", "infer_ms_per_track", "n_params", "n")


def _save_png(fig, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    atomic_write_bytes(path, buffer.getvalue())


def comparison_table(results: Sequence[dict], *, class_names: Sequence[str]):
    """One row per model: headline metrics, per-genre ROC-AUC and cost columns (a DataFrame).

    Each result: ``name``, ``y_true``, ``y_score`` (calibrated), optionally ``y_score_raw``
    (before temperature scaling), ``temperature``, ``train_s``, ``infer_ms``, ``n_params``.
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


def write_report(results: Sequence[dict], out_dir: str | Path, *, class_names: Sequence[str],
                 title: str = "tracklens genre models") -> Path:
    """Write ``comparison.csv``, per-model PNG figures and ``report.html`` into ``out_dir``.

    Returns the path of the HTML page. Files are written atomically (temp file + rename).
    """
    out_dir = Path(out_dir)
    table = comparison_table(results, class_names=class_names)
    write_csv(table, out_dir / "comparison.csv", float_format="%.4f")
    sections = []
    for r in results:
        name = r["name"]
        figures = {
            "roc": plot_roc_curves(r["y_true"], r["y_score"], class_names=class_names, title=f"{name} ROC"),
            "confusion": plot_confusion(r["y_true"], r["y_score"], class_names=class_names, title=f"{name} confusion"),
            "reliability": plot_reliability(r["y_true"], r["y_score"], title=f"{name} calibrated"),
        }
        if r.get("y_score_raw") is not None:
            figures["reliability_raw"] = plot_reliability(r["y_true"], r["y_score_raw"], title=f"{name} raw")
        if r.get("history"):
            figures["training"] = plot_training_curves(r["history"], title=name)
        images = []
        for kind, fig in figures.items():
            rel = f"figures/{name}_{kind}.png"
            _save_png(fig, out_dir / rel)
            images.append(f'<img src="{html.escape(rel)}" alt="{html.escape(name)} {kind}" height="300">')
        sections.append(f"<h2>{html.escape(name)}</h2>\n<p>{''.join(images)}</p>")
    body = table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-", border=0)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
            "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Track-level scores on the validation fold; probabilities "
            "after temperature scaling (ece_uncalibrated: before).</p>"
            f"{body}\n{''.join(sections)}</body></html>")
    atomic_write_bytes(out_dir / "report.html", page.encode())
    return out_dir / "report.html"
