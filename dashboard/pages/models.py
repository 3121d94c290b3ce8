"""Models: the comparison table from `tracklens evaluate`, and per-genre ROC curves, confusion
matrix and reliability diagram for a chosen model.

Reads only the JSON reports `tracklens evaluate` writes; says so when there are none yet.
"""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

from tracklens import explore
from tracklens.dashboard import data
from tracklens.dashboard.components import figure_panel


NO_REPORT = ("No evaluation report yet. Train and evaluate models with `tracklens train ...` and "
             "`tracklens evaluate ...` (or `make demo`), then reload this page. The genre blend on "
             "'Check your track' works without them, using the shipped default model.")
# Columns shown in the comparison table, in this order (others in the report are left out).
TABLE_COLUMNS = ("model", "accuracy", "balanced_accuracy", "macro_roc_auc", "log_loss", "ece",
                 "ece_uncalibrated", "temperature", "train_s", "infer_ms_per_track", "n_params", "n")


def comparison_rows(table) -> list[dict]:
    """The report's rows (known columns only), best macro ROC-AUC (else accuracy) first."""
    columns = [c for c in TABLE_COLUMNS if c in table.columns]
    key = next((k for k in ("macro_roc_auc", "accuracy") if k in table.columns), None)
    if key:
        table = table.sort_values(key, ascending=False)
    return table[columns].to_dict("records")


def comparison_table(rows: list[dict]) -> html.Table:
    """An accessible HTML table (with a caption) of :func:`comparison_rows`."""
    columns = list(dict.fromkeys(k for row in rows for k in row))

    def fmt(v):
        if isinstance(v, float):
            if v != v:
                return "–"
            return f"{int(v):,}" if v.is_integer() and abs(v) >= 10 else f"{v:.3f}"
        return f"{v:,}" if isinstance(v, int) else str(v)
    return html.Table(
        [html.Caption("Model comparison on the validation fold, track level (from `tracklens evaluate`)"),
         html.Thead(html.Tr([html.Th(c.replace("_", " "), scope="col") for c in columns])),
         html.Tbody([html.Tr([html.Td(fmt(row.get(c, ""))) for c in columns]) for row in rows])],
        className="simple", id="models-table",
    )


def layout(**_query) -> html.Div:
    report = data.model_report()
    if report is None:
        return html.Div([html.H1("Models"), html.P(NO_REPORT, className="notice", id="models-empty")])
    names = [n for n in report.table["model"].astype(str) if n in report.predictions]
    chooser = (
        html.Div([html.Label("Model to inspect", htmlFor="models-choice"),
                  dcc.Dropdown(id="models-choice", options=names, value=names[0], clearable=False)],
                 className="control")
        if names else html.P("No saved validation predictions were found for these models, so the "
                             "curves cannot be drawn here; see the report's figures.", className="notice")
    )
    return html.Div(
        [
            html.H1("Models"),
            html.P(f"From {report.path}. Scores are per track (segment probabilities averaged) after "
                   "temperature scaling.", className="note"),
            comparison_table(comparison_rows(report.table)),
            html.Div([chooser], className="controls", style={"marginTop": "0.8rem"}),
            html.Div(
                [
                    figure_panel("models-roc", "ROC curves per genre"),
                    figure_panel("models-confusion", "confusion matrix"),
                    figure_panel("models-reliability", "reliability diagram"),
                ],
                className="grid",
            ) if names else html.Div(),
        ]
    )


@callback(Output("models-roc", "figure"), Output("models-confusion", "figure"),
          Output("models-reliability", "figure"), Input("models-choice", "value"))
def show_model(name: str):
    """The chosen model's ROC curves, confusion matrix and reliability diagram."""
    report = data.model_report()
    pred = report.predictions.get(name) if report else None
    if pred is None:
        raise dash.exceptions.PreventUpdate
    scores = {"model": name, "class_names": pred["genres"], "y_true": pred["y_true"], "y_score": pred["y_score"]}
    return explore.roc_curves(scores), explore.confusion_matrix(scores), explore.reliability_diagram(scores)


# Registered last: pages imported as ordinary modules must hand Dash their layout explicitly.
dash.register_page(__name__, path="/models", name="Models", title="tracklens · models", order=1, layout=layout)
