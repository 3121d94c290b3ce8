"""Models: how far to trust the genre blend, out of the box.

First the shipped default model (the one 'Check your track' uses), from its card and saved
validation predictions, with no training: headline metrics, per-genre ROC-AUC with the number of
validation tracks behind each (genres the validation fold lacks or holds too few of are flagged),
ROC curves, confusion matrix and reliability diagram. Then, when `tracklens evaluate` has written a
comparison report, the models trained here: the comparison table and the chosen model's figures.
"""

from __future__ import annotations

import math

import dash
import numpy as np
from dash import Input, Output, callback, dcc, html

from tracklens import model_figures
from tracklens.dashboard import data
from tracklens.dashboard.components import figure_panel
from tracklens.models import evaluate


NO_REPORT = ("No evaluation report yet for models trained here. Train and evaluate them with "
             "`tracklens train ...` and `tracklens evaluate ...` (or `make demo`), then reload this page. "
             "The shipped default model above needs neither: 'Check your track' uses it.")
ECE_HEADER = f"ECE ({evaluate.ECE_BINS} bins)"
#: Headline metrics of the shipped model's table: (key in classification_metrics, label, how to read it).
HEADLINE_METRICS = (
    ("accuracy", "accuracy", "share of tracks whose top genre is the right one"),
    ("balanced_accuracy", "balanced accuracy", "mean of the per-genre recalls (genres present)"),
    ("macro_roc_auc", "macro ROC-AUC", "mean one-vs-rest ROC-AUC over the genres present"),
    ("log_loss", "log loss", "lower is better; 2.30 is a uniform guess over 10 genres"),
    ("ece", ECE_HEADER, "gap between confidence and accuracy, calibrated scores; see the reliability diagram"),
)
#: A genre with fewer validation tracks than this gets its ROC-AUC and recall flagged as rough:
#: each of its n tracks carries 1/n of both, so with 3 tracks one track moves them by up to 0.33.
ROUGH_BELOW = 5
COLUMN_HEADERS = {"ece": ECE_HEADER, "ece_uncalibrated": f"{ECE_HEADER} before scaling",
                  "macro_roc_auc": "macro ROC-AUC", "train_s": "training (s)",
                  "infer_ms_per_track": "inference (ms per track)", "n_params": "parameters", "n": "tracks"}


def format_value(value) -> str:
    """A table cell: 3 decimals for scores, thousands separators for counts, "–" for NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return f"{int(value):,}" if value.is_integer() and abs(value) >= 10 else f"{value:.3f}"
    return f"{value:,}" if isinstance(value, (int, np.integer)) else str(value)


def simple_table(caption: str, headers: list[str], rows: list[list], id_: str) -> html.Div:
    """A table named by its caption, with column headers, in a container that scrolls sideways on
    a narrow screen instead of widening the page. The caption stays outside the scrolling part
    (as a <caption> it scrolled with a wide table and was cut off on a phone)."""
    caption_id = f"{id_}-caption"
    return html.Div([
        html.P(caption, className="table-caption", id=caption_id),
        html.Div(html.Table(
            [html.Thead(html.Tr([html.Th(h, scope="col") for h in headers])),
             html.Tbody([html.Tr([html.Td(format_value(v)) for v in row]) for row in rows])],
            className="simple", **{"aria-labelledby": caption_id}), className="table-scroll"),
    ], id=id_)


# --- the shipped default model --------------------------------------------------------------------


def genre_note(n_tracks: int) -> str:
    """Why a genre's validation numbers are missing or rough ("" when there are enough tracks)."""
    if n_tracks == 0:
        return "not in the validation fold"
    if n_tracks == 1:
        return "1 track: no estimate"
    if n_tracks < ROUGH_BELOW:
        return f"{n_tracks} tracks: rough"
    return ""


def genre_rows(report: dict) -> list[dict]:
    """Per genre of ``report`` (class_names, y_true, y_score): validation tracks, one-vs-rest
    ROC-AUC and recall (both NaN below 2 tracks: no estimate) and :func:`genre_note`."""
    y_true, y_score = np.asarray(report["y_true"]), np.asarray(report["y_score"], dtype=float)
    aucs = evaluate.roc_auc_per_class(y_true, y_score)
    predicted = y_score.argmax(axis=1)
    rows = []
    for c, genre in enumerate(report["class_names"]):
        is_genre = y_true == c
        n = int(is_genre.sum())
        estimated = n >= 2
        rows.append({"genre": genre, "tracks": n, "roc_auc": float(aucs[c]) if estimated else math.nan,
                     "recall": float(np.mean(predicted[is_genre] == c)) if estimated else math.nan,
                     "note": genre_note(n)})
    return rows


def headline_rows(report: dict) -> list[list]:
    """[label, value, how to read it] per headline metric, computed from the saved predictions (so
    the ECE is the reliability diagram's)."""
    metrics = evaluate.classification_metrics(report["y_true"], report["y_score"], class_names=report["class_names"])
    return [[label, metrics[key], meaning] for key, label, meaning in HEADLINE_METRICS]


def card_summary(card: dict) -> html.Dl:
    """What the model is, what it was trained on and how it was calibrated, from its card."""
    tracks = card.get("data", {}).get("tracks", {})
    split = card.get("split", {})
    calibration = card.get("calibration", {})
    items = {
        "Model": f"{card.get('name')}: {card.get('architecture')} head on {card.get('input', {}).get('kind', '?')} "
                 "embeddings",
        "Genres": ", ".join(card.get("genres", [])),
        "Data": f"{tracks.get('train', '?')} training and {tracks.get('valid', '?')} validation tracks "
                f"({split.get('method', '?')}, seed {split.get('seed', '?')})",
        "Calibration": f"temperature {format_value(calibration.get('temperature'))}, fitted on "
                       f"{calibration.get('fitted_on', '?')}",
        "Note": card.get("metrics", {}).get("note", ""),
        "Created": card.get("created_utc", "?"),
    }
    return html.Dl([part for term, text in items.items() if text for part in (html.Dt(term), html.Dd(text))],
                   className="card-summary", id="models-shipped-card")


def cross_validation_note(card: dict) -> str:
    """The card's grouped cross-validation scores in one line (optimistic: say why), or ""."""
    cv = card.get("metrics", {}).get("grouped_cv", {})
    scores = cv.get("track_level", {})
    if not scores:
        return ""
    return (f"For comparison, {cv.get('protocol', 'grouped cross-validation')}: accuracy "
            f"{format_value(scores.get('accuracy'))}, macro ROC-AUC {format_value(scores.get('macro_roc_auc'))}.")


def shipped_section() -> html.Section:
    """The shipped default model's card, validation metrics, per-genre table and figures."""
    report, problem = data.shipped_model_report()
    heading = html.H2("The shipped default model (used by 'Check your track')")
    if report is None:
        return html.Section([heading, html.P(problem, className="error", id="models-shipped-problem")])
    n = len(report["y_true"])
    genres = genre_rows(report)
    present = sum(row["tracks"] > 0 for row in genres)
    fold = (f"its validation fold: {n} tracks of {present} of the {len(genres)} genres" if present < len(genres)
            else f"its validation fold: {n} tracks of all {len(genres)} genres")
    return html.Section([
        heading,
        card_summary(report["card"]),
        simple_table(f"Validation scores of the shipped model on {fold} (track level, after temperature scaling)",
                     ["metric", "value", "how to read it"], headline_rows(report), "models-shipped-metrics"),
        html.P(cross_validation_note(report["card"]), className="note"),
        simple_table(f"Per genre on {fold}. Recall: share of the genre's tracks whose top genre is right. With "
                     f"fewer than {ROUGH_BELOW} tracks one track moves ROC-AUC and recall by up to 1/n.",
                     ["genre", "tracks", "ROC-AUC", "recall", "note"],
                     [list(row.values()) for row in genres], "models-shipped-genres"),
        html.Div([figure_panel("models-shipped-roc", "ROC curves per genre, shipped model", model_figures.roc_curves(report)),
                  figure_panel("models-shipped-confusion", "confusion matrix, shipped model",
                               model_figures.confusion_matrix(report)),
                  figure_panel("models-shipped-reliability", "reliability diagram, shipped model",
                               model_figures.reliability_diagram(report))],
                 className="grid"),
    ], id="models-shipped")


# --- models trained here (`tracklens evaluate`) -----------------------------------------------------


def comparison_rows(table) -> list[dict]:
    """The report's rows (known columns only), best macro ROC-AUC (else accuracy) first."""
    columns = [c for c in evaluate.TABLE_COLUMNS if c in table.columns]
    key = next((k for k in ("macro_roc_auc", "accuracy") if k in table.columns), None)
    if key:
        table = table.sort_values(key, ascending=False)
    return table[columns].to_dict("records")


def comparison_table(rows: list[dict], source) -> html.Div:
    """The comparison as an accessible table (caption says where it is from and what ECE is)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return simple_table(f"Model comparison of the models trained here, on the validation fold, track level (from "
                        f"`tracklens evaluate`: {source}); {evaluate.ECE_NOTE}",
                        [COLUMN_HEADERS.get(c, c.replace("_", " ")) for c in columns],
                        [[row.get(c) for c in columns] for row in rows], "models-table")


def trained_section() -> html.Section:
    """The comparison of the models trained here, and the chosen one's figures; a notice without."""
    heading = html.H2(["Models trained here (", html.Code("tracklens evaluate"), ")"])
    report = data.model_report()
    if report is None:
        return html.Section([heading, html.P(NO_REPORT, className="notice", id="models-empty")], id="models-trained")
    names = [n for n in report.table["model"].astype(str) if n in report.predictions]
    chooser = (
        html.Div([html.Label("Model to inspect", htmlFor="models-choice"),
                  dcc.Dropdown(id="models-choice", options=names, value=names[0], clearable=False)],
                 className="control")
        if names else html.P("No saved validation predictions were found for these models, so the "
                             "curves cannot be drawn here; see the report's figures.", className="notice")
    )
    return html.Section([
        heading,
        comparison_table(comparison_rows(report.table), report.path),
        html.Div([chooser], className="controls", style={"marginTop": "0.8rem"}),
        html.Div([figure_panel("models-roc", "ROC curves per genre"),
                  figure_panel("models-confusion", "confusion matrix"),
                  figure_panel("models-reliability", "reliability diagram")],
                 className="grid") if names else html.Div(),
    ], id="models-trained")


def layout(**_query) -> html.Div:
    return html.Div([
        html.H1("Models"),
        html.P("How far to trust a genre blend: each model scored on validation tracks it was not fitted "
               "on. Scores are per track (segment probabilities averaged), after temperature scaling.",
               className="note"),
        shipped_section(),
        trained_section(),
    ])


@callback(Output("models-roc", "figure"), Output("models-confusion", "figure"),
          Output("models-reliability", "figure"), Input("models-choice", "value"))
def show_model(name: str):
    """The chosen trained model's ROC curves, confusion matrix and reliability diagram."""
    report = data.model_report()
    pred = report.predictions.get(name) if report else None
    if pred is None:
        raise dash.exceptions.PreventUpdate
    scores = {"model": name, "class_names": pred["genres"], "y_true": pred["y_true"], "y_score": pred["y_score"]}
    return model_figures.roc_curves(scores), model_figures.confusion_matrix(scores), model_figures.reliability_diagram(scores)


# Registered last: pages imported as ordinary modules must hand Dash their layout explicitly.
dash.register_page(__name__, path="/models", name="Models", title="tracklens · models", order=1, layout=layout)
