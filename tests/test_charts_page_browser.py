"""The charts page's association matrix on a phone (390 px) in headless Chromium: the matrix scrolls
sideways inside its panel, and popularity's column and row are the ones in view without scrolling,
with a note above that says the rest scrolls. Reuses the server and helpers of the other browser
test files.
"""

from __future__ import annotations

import pytest

from test_dashboard_browser import screenshots, server, tracklens_home  # noqa: F401
from test_dashboard_pages_browser import PHONE, _open, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The on-screen boxes of the heatmap's x and y tick labels named ``name``.
TICK_BOXES = """(name) => {
  const graph = document.querySelector('#charts-heatmap');
  const boxes = axis => [...graph.querySelectorAll(`g.${axis}tick text`)].filter(t => t.textContent === name)
    .map(t => { const r = t.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top}; });
  return {x: boxes('x'), y: boxes('y')};
}"""


def test_popularity_stays_in_view_on_a_phone_and_a_note_says_the_matrix_scrolls(server, browser):
    page = _open(browser, server, PHONE, "charts")
    try:
        ticks = page.evaluate(TICK_BOXES, "popularity")
        assert ticks["x"] and ticks["y"], ticks
        column, row = ticks["x"][0], ticks["y"][0]
        assert 0 <= column["left"] and column["right"] <= PHONE  # the column, unscrolled
        assert 0 <= row["left"] and row["right"] <= PHONE
        assert page.is_visible("#charts-heatmap-hint") and "scrolls sideways" in page.inner_text("#charts-heatmap-hint")
        far = page.evaluate("() => Math.max(...[...document.querySelectorAll('#charts-heatmap g.xtick text')]"
                            ".map(t => t.getBoundingClientRect().left))")
        assert far > PHONE  # the matrix does scroll: its far columns are off-screen until swiped
    finally:
        page.context.close()
