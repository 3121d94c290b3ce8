"""Small layout pieces shared by the pages."""

from __future__ import annotations

from dash import dcc, html


def figure_panel(id_: str, label: str, figure=None, *, wide: bool = False) -> html.Div:
    """A dcc.Graph in a panel; the panel carries the accessible name (dcc.Graph takes no aria-*).

    ``wide`` spans the whole grid row.
    """
    graph = dcc.Graph(id=id_, config={"displaylogo": False}, **({"figure": figure} if figure is not None else {}))
    return html.Div(graph, className="panel wide" if wide else "panel", role="figure", **{"aria-label": label})
