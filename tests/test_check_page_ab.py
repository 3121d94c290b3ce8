"""The check page's A/B section (issue 18): besides the values table, both tracks' blends as bars
and their timelines, one column per track (side by side on a laptop, stacked on a phone; the
browser test is in test_check_page_ab_browser.py)."""

from __future__ import annotations

from dashboard_helpers import _by_id, _session_checks


def _graphs(component) -> dict:
    """id -> figure of every dcc.Graph in a component tree."""
    found = {}

    def walk(node):
        if isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
        elif hasattr(node, "to_plotly_json"):
            if type(node).__name__ == "Graph":
                found[node.id] = node.figure
            walk(getattr(node, "children", None))
    walk(component)
    return found


def test_ab_shows_both_blends_and_timelines_one_column_per_track(app, pages, demo_catalogue):
    from tracklens.dashboard import track

    keys = _session_checks(demo_catalogue, 2)
    section = pages["check"].show_ab(keys[0]["key"], keys[1], keys)
    figures = _by_id(section, "check-ab-figures")
    assert "ab-grid" in figures.className
    a, b = (track.cached_report(k["key"]) for k in (keys[1], keys[0]))
    for side, report in (("a", a), ("b", b)):
        graphs = _graphs(_by_id(section, f"check-ab-{side}"))
        assert set(graphs) == {f"check-ab-blend-{side}", f"check-ab-timeline-{side}"}
        bars = graphs[f"check-ab-blend-{side}"].data[0]
        shown = dict(zip(bars.y, bars.x))
        assert shown.keys() == report.blend.keys()
        assert all(abs(shown[g] - 100 * p) < 1e-9 for g, p in report.blend.items())
        assert list(graphs[f"check-ab-blend-{side}"].layout.xaxis.range) == [0, 100]  # same scale on both sides
        timeline = graphs[f"check-ab-timeline-{side}"]
        assert {t.name for t in timeline.data} == set(report.genre_blend.genres)
        assert timeline.layout.xaxis.range[1] == report.upload.duration_s
