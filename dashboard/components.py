"""Small layout pieces shared by the pages."""

from __future__ import annotations

from dash import dcc, html


def figure_panel(id_: str, label: str, figure=None, *, wide: bool = False, html_title: bool = False) -> html.Div:
    """A dcc.Graph in a panel; the panel carries the accessible name (dcc.Graph takes no aria-*).

    ``wide`` spans the whole grid row. ``html_title`` moves the figure's title into a heading
    above it: HTML wraps on a narrow screen, where Plotly clips a long title.
    """
    heading = []
    if html_title and figure is not None and figure.layout.title.text:
        heading = [html.H3(figure.layout.title.text, className="figure-title")]
        figure.update_layout(title=None, margin={"t": 30})
    graph = dcc.Graph(id=id_, config={"displaylogo": False}, **({"figure": figure} if figure is not None else {}))
    return html.Div([*heading, graph], className="panel wide" if wide else "panel", role="figure",
                    **{"aria-label": label})
