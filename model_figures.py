"""Figures of a genre model's evaluation report: ROC curves, confusion matrix, reliability
diagram and training curves, each from a ``*_data`` table (the report as
:func:`tracklens.models.store.evaluation_report` returns it) drawn by Plotly or matplotlib.

Callers: :mod:`tracklens.reports`, the dashboard's models page, notebook 03. Takes data and returns
figures; reads and writes no file.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from tracklens.errors import TracklensError
from tracklens.figure_style import Backend, COMPACT_MARGIN, genre_colour, mpl_figure, plotly_grid, plotly_text, render
from tracklens.models import evaluate


# --- genre model reports (ROC, confusion, reliability, training curves) --------------------


def _report_scores(report: Mapping) -> tuple[str, list[str], np.ndarray, np.ndarray]:
    """(model name, class names, y_true as class indices, y_score [n, k]) of an evaluation report.

    A report is a mapping with ``model``, ``class_names``, ``y_true`` (indices or names) and
    ``y_score`` (per-track probabilities, rows in ``class_names`` order).
    """
    name = str(report.get("model", "model"))
    missing = [k for k in ("class_names", "y_true", "y_score") if k not in report]
    if missing:
        raise TracklensError(f"evaluation report of {name!r} lacks {missing}; re-run `tracklens evaluate`")
    classes = [str(c) for c in report["class_names"]]
    y_score = np.asarray(report["y_score"], dtype=float)
    y_true = list(report["y_true"])
    if y_true and isinstance(y_true[0], str):
        unknown = sorted(set(y_true) - set(classes))
        if unknown:
            raise TracklensError(f"evaluation report of {name!r}: labels {unknown} are not in class_names")
        y_true = [classes.index(c) for c in y_true]
    y_true = np.asarray(y_true, dtype=int)
    if y_score.ndim != 2 or y_score.shape != (len(y_true), len(classes)):
        raise TracklensError(f"evaluation report of {name!r}: y_score shape {y_score.shape} does not match "
                             f"{len(y_true)} tracks x {len(classes)} classes")
    return name, classes, y_true, y_score


def roc_data(report: Mapping) -> pd.DataFrame:
    """One-vs-rest ROC curve of each class present: long table (class, fpr, tpr, auc, n), where
    ``n`` is the class's number of tracks (a curve from 1-3 tracks is no estimate of its AUC)."""
    from sklearn.metrics import auc, roc_curve

    name, classes, y_true, y_score = _report_scores(report)
    parts = []
    for c, cls in enumerate(classes):
        positives = y_true == c
        if positives.all() or not positives.any():
            continue  # no curve without both positives and negatives
        fpr, tpr, _ = roc_curve(positives, y_score[:, c])
        parts.append(pd.DataFrame({"class": cls, "fpr": fpr, "tpr": tpr, "auc": auc(fpr, tpr),
                                   "n": int(positives.sum())}))
    if not parts:
        raise TracklensError(f"evaluation report of {name!r}: no class has both positives and negatives")
    out = pd.concat(parts, ignore_index=True)
    out.attrs["model"] = name
    return out


def confusion_data(report: Mapping) -> pd.DataFrame:
    """Confusion counts (rows: true class, columns: predicted = argmax of the scores)."""
    name, classes, y_true, y_score = _report_scores(report)
    counts = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(counts, (y_true, y_score.argmax(axis=1)), 1)
    out = pd.DataFrame(counts, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="predicted"))
    out.attrs["model"] = name
    return out


def reliability_data(report: Mapping) -> pd.DataFrame:
    """Accuracy against mean confidence (top-class probability) per confidence bin.

    The bins and the ECE (in ``attrs``, with ``n_bins``) are :func:`models.evaluate.calibration_bins`
    and :func:`models.evaluate.expected_calibration_error`'s: the number the cards and the
    comparison table show.
    """
    name, _, y_true, y_score = _report_scores(report)
    out = pd.DataFrame(evaluate.calibration_bins(y_true, y_score))
    out.attrs.update(model=name, n_bins=evaluate.ECE_BINS, ece=evaluate.expected_calibration_error(y_true, y_score))
    return out


def training_data(history: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Loss and accuracy per epoch (a ``keras.callbacks.History.history``) as a long table:
    ``metric`` (loss / accuracy), ``split`` (train / valid), ``epoch`` (from 1), ``value``."""
    parts = [pd.DataFrame({"metric": metric, "split": "valid" if key.startswith("val_") else "train",
                           "epoch": np.arange(1, len(history[key]) + 1), "value": np.asarray(history[key], float)})
             for metric in ("loss", "accuracy") for key in (metric, f"val_{metric}") if key in history]
    if not parts:
        raise TracklensError("training history holds no loss or accuracy per epoch")
    return pd.concat(parts, ignore_index=True)


def _roc_name(cls: str, curve: pd.DataFrame) -> str:
    n = curve["n"].iloc[0]
    if n < 2:  # one track's rank among the rest: a curve, but not an estimate of anything
        return f"{cls} (n={n}: no AUC)"
    return f"{cls} {curve['auc'].iloc[0]:.2f} (n={n})"


def _roc_mpl(d):
    fig, (ax,) = mpl_figure(1, panel_size=(5.2, 4.4))
    for cls, sub in d.groupby("class", sort=False):
        ax.plot(sub["fpr"], sub["tpr"], lw=1.2, label=_roc_name(cls, sub), color=genre_colour(cls))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{d.attrs['model']}: ROC (one vs rest), AUC")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _roc_plotly(d):
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=sub["fpr"], y=sub["tpr"], mode="lines", name=plotly_text(_roc_name(cls, sub)),
                                line={"color": genre_colour(cls)})
                     for cls, sub in d.groupby("class", sort=False)])
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, showlegend=False))
    # The legend goes below the plot: on the right it took half of a phone-wide figure. On a phone
    # it is one entry per row (ten rows): the height leaves the plot >= 300 px even then, so the
    # legend's offset (a share of the plot's height) stays clear of the axis title.
    fig.update_layout(title={"text": f"{d.attrs['model']}: ROC, one vs rest",
                             "subtitle": {"text": "legend: AUC (n = tracks of the genre)"}},
                      xaxis_title="false positive rate", yaxis_title="true positive rate",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22}, height=680, margin=COMPACT_MARGIN)
    return fig


def _row_share(d: pd.DataFrame) -> np.ndarray:
    rows = d.to_numpy().sum(axis=1, keepdims=True)
    return np.divide(d.to_numpy(), rows, out=np.zeros(d.shape), where=rows > 0)


def _true_labels(d: pd.DataFrame) -> list[str]:
    """Row labels with the number of tracks of each true class: an empty row reads "hiphop (0)"."""
    return [f"{cls} ({n})" for cls, n in zip(d.index, d.to_numpy().sum(axis=1))]


def _confusion_mpl(d):
    fig, (ax,) = mpl_figure(1, panel_size=(5.6, 5.0))
    share = _row_share(d)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(d.to_numpy()):
        if count:
            ax.text(j, i, count, ha="center", va="center", fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(d.shape[1]), d.columns, rotation=60, fontsize=7)
    ax.set_yticks(range(d.shape[0]), _true_labels(d), fontsize=7)
    ax.set(xlabel="predicted", ylabel="true (tracks)", title=f"{d.attrs['model']}: confusion (colour: share of row)")
    fig.colorbar(im, ax=ax, shrink=0.7)
    return fig


def _confusion_plotly(d):
    import plotly.graph_objects as go

    # No colour bar (the cells hold the counts) and every genre labelled: on a phone the bar took
    # a quarter of the width and Plotly dropped every other genre name.
    rows, columns = [plotly_text(r) for r in _true_labels(d)], [plotly_text(c) for c in d.columns]
    fig = go.Figure(go.Heatmap(z=_row_share(d), x=columns, y=rows, colorscale="Blues", zmin=0, zmax=1,
                               showscale=False, text=d.to_numpy(), texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.0%})<extra></extra>"))
    fig.update_layout(title={"text": f"{d.attrs['model']}: confusion",
                             "subtitle": {"text": "colour: share of the row (true genre)"}},
                      xaxis={"title": "predicted", "tickmode": "array", "tickvals": columns},
                      yaxis={"title": "true (tracks)", "autorange": "reversed", "tickmode": "array", "tickvals": rows},
                      margin=COMPACT_MARGIN)
    return fig


def _ece_text(d) -> str:
    """The ECE as every table and figure states it: with its bin count, 3 decimals."""
    return f"ECE ({d.attrs['n_bins']} bins) = {d.attrs['ece']:.3f}"


def _reliability_title(d) -> str:
    return f"{d.attrs['model']}: reliability, {_ece_text(d)}"


def _reliability_mpl(d):
    fig, (ax,) = mpl_figure(1, panel_size=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.plot(d["confidence"], d["accuracy"], marker="o")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean confidence", ylabel="accuracy", title=_reliability_title(d))
    return fig


def _reliability_plotly(d):
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, showlegend=False),
                     go.Scatter(x=d["confidence"], y=d["accuracy"], mode="lines+markers", customdata=d["count"],
                                marker={"size": 4 + 2 * np.sqrt(d["count"].to_numpy())},  # a 2-track bin is no evidence
                                hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} tracks)<extra></extra>",
                                showlegend=False)])
    fig.update_layout(title={"text": f"Reliability: {_ece_text(d)}",
                             "subtitle": {"text": f"{d.attrs['model']}; dot area: tracks in the bin"}},
                      margin=COMPACT_MARGIN, xaxis={"range": [0, 1], "title": "mean confidence"},
                      yaxis={"range": [0, 1], "title": "accuracy"})
    return fig


def _training_mpl(d):
    groups = list(d.groupby("metric", sort=False))
    fig, axes = mpl_figure(len(groups), ncols=2, panel_size=(3.6, 3.0))
    for ax, (metric, part) in zip(axes, groups):
        for split, curve in part.groupby("split", sort=False):
            ax.plot(curve["epoch"], curve["value"], label=split)
        ax.set(xlabel="epoch", title=f"{d.attrs['model']}: {metric}")
        ax.legend(fontsize=7)
    return fig


def _training_plotly(d):
    import plotly.graph_objects as go

    metrics = list(dict.fromkeys(d["metric"]))
    fig, positions = plotly_grid([f"{d.attrs['model']}: {m}" for m in metrics], ncols=2)
    for (row, col), metric in zip(positions, metrics):
        for split, curve in d[d["metric"] == metric].groupby("split", sort=False):
            fig.add_trace(go.Scatter(x=curve["epoch"], y=curve["value"], mode="lines", name=f"{metric} {split}"),
                          row=row, col=col)
    return fig.update_xaxes(title="epoch")


def roc_curves(report: Mapping, *, backend: Backend = "plotly"):
    """One-vs-rest ROC curves of an evaluation report (see :func:`roc_data`)."""
    return render(roc_data(report), {"matplotlib": _roc_mpl, "plotly": _roc_plotly}, backend)


def confusion_matrix(report: Mapping, *, backend: Backend = "plotly"):
    """Confusion matrix of an evaluation report, coloured by row share (see :func:`confusion_data`)."""
    return render(confusion_data(report), {"matplotlib": _confusion_mpl, "plotly": _confusion_plotly}, backend)


def reliability_diagram(report: Mapping, *, backend: Backend = "plotly"):
    """Reliability diagram of an evaluation report, its ECE in the title (see :func:`reliability_data`)."""
    return render(reliability_data(report), {"matplotlib": _reliability_mpl, "plotly": _reliability_plotly}, backend)


def training_curves(history: Mapping[str, Sequence[float]], *, model: str = "model", backend: Backend = "plotly"):
    """Loss and accuracy per epoch of one training run (see :func:`training_data`)."""
    d = training_data(history)
    d.attrs["model"] = model
    return render(d, {"matplotlib": _training_mpl, "plotly": _training_plotly}, backend)
