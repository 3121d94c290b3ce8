"""Models: the comparison table from `tracklens evaluate`, and per-genre ROC curves, confusion
matrix and reliability diagram for a chosen model.

Reads only the JSON reports `tracklens evaluate` writes; says so when there are none yet.
"""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

import explore
from dashboard import data

dash.register_page(__name__, path="/models", name="Models", title="tracklens · models", order=1)

NO_REPORT = ("No evaluation report yet. Train and evaluate models with `tracklens train ...` and "
             "`tracklens evaluate ...` (or `make demo`), then reload this page. The genre blend on "
             "'Check your track' works without them, using the shipped default model.")


def comparison_rows(reports: dict) -> list[dict]:
    """One row per model: its name and the headline metrics of its report, best first."""
    rows = []
    for name, report in reports.items():
        metrics = report.get("metrics", {})
        row = {"model": name}
        row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        rows.append(row)
    key = next((k for k in ("accuracy", "macro_f1", "f1_macro") if rows and k in rows[0]), None)
    if key:
        rows.sort(key=lambda r: -float(r.get(key, float("-inf"))))
    return rows


def comparison_table(rows: list[dict]) -> html.Table:
    """An accessible HTML table (with a caption) of :func:`comparison_rows`."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    return html.Table(
        [html.Caption("Model comparison on held-out data (from `tracklens evaluate`)"),
         html.Thead(html.Tr([html.Th(c, scope="col") for c in columns])),
         html.Tbody([html.Tr([html.Td(fmt(row.get(c, ""))) for c in columns]) for row in rows])],
        className="simple", id="models-table",
    )


def layout(**_query) -> html.Div:
    reports = data.model_reports()
    if not reports:
        return html.Div([html.H1("Models"), html.P(NO_REPORT, className="notice", id="models-empty")])
    names = list(reports)
    return html.Div(
        [
            html.H1("Models"),
            comparison_table(comparison_rows(reports)),
            html.Div(
                [html.Div([html.Label("Model to inspect", htmlFor="models-choice"),
                           dcc.Dropdown(id="models-choice", options=names, value=names[0], clearable=False)],
                          className="control")],
                className="controls", style={"marginTop": "0.8rem"},
            ),
            html.Div(
                [
                    html.Div(dcc.Graph(id="models-roc", config={"displaylogo": False}), className="panel"),
                    html.Div(dcc.Graph(id="models-confusion", config={"displaylogo": False}), className="panel"),
                    html.Div(dcc.Graph(id="models-reliability", config={"displaylogo": False}), className="panel"),
                ],
                className="grid",
            ),
        ]
    )


@callback(Output("models-roc", "figure"), Output("models-confusion", "figure"),
          Output("models-reliability", "figure"), Input("models-choice", "value"))
def show_model(name: str):
    """The chosen model's ROC curves, confusion matrix and reliability diagram."""
    report = data.model_reports().get(name)
    if report is None:
        raise dash.exceptions.PreventUpdate
    return (explore.roc_curves(report), explore.confusion_matrix(report),
            explore.reliability_diagram(report))
