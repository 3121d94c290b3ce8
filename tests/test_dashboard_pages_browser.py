"""The charts and models pages in headless Chromium at a laptop's 1440 px and a phone's 390 px: the
page never scrolls sideways (a wide matrix or table scrolls inside its own container), no figure
text runs outside its figure, nothing covers a tick label at 1440 px, and no CSP violation or
script error. Reuses the server (demo catalogue, a private home holding one comparison report)
and helpers of tests/test_dashboard_browser.py. Screenshots go to $TRACKLENS_SCREENSHOTS when set.
"""

from __future__ import annotations

import pytest

from dashboard_helpers import new_page
from test_dashboard_browser import (CHROMIUM_ARGS, _assert_clean, _chromium_or_skip, screenshots, server,  # noqa: F401
                                    tracklens_home)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAPTOP, PHONE = 1440, 390
#: Each page's path and the graphs that must have drawn before it is measured.
PAGES = {
    "charts": ("/", ("#charts-heatmap", "#charts-intervals", "#charts-scatter", "#charts-trends")),
    "models": ("/models", ("#models-shipped-roc", "#models-shipped-confusion", "#models-shipped-reliability")),
}

# Elements wider than the viewport that are not inside a container scrolling sideways: each one
# makes the page itself scroll sideways (or is cut off).
TOO_WIDE = """() => {
  const width = document.documentElement.clientWidth;
  const scrollsInside = el => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(p).overflowX)) return true;
    }
    return false;
  };
  // Plotly's text-measuring SVG (#js-plotly-tester) sits hidden far off-screen on purpose.
  return [...document.querySelectorAll('body *')]
    .filter(el => !el.closest('#js-plotly-tester') && getComputedStyle(el).visibility !== 'hidden')
    .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && (r.right > width + 1 || r.left < -1); })
    .filter(el => !scrollsInside(el))
    .map(el => `${el.tagName.toLowerCase()}#${el.id}.${el.getAttribute('class') || ''}`);
}"""

# Plotly's classes: tick label groups "xtick", "y2tick", ... (one per axis), titles "gtitle",
# "xtitle", "y2title", "cbtitle", ...
FIGURE_LABELS = "g[class$='tick'] text, text[class$='title'], [class$='title'] text, .legendtext"

# Figure texts (titles, axis titles, tick labels, legend entries) that run outside their figure's
# SVG, where Plotly clips them.
CLIPPED_FIGURE_TEXT = """(LABELS) => {
  const out = [];
  for (const graph of document.querySelectorAll('.js-plotly-plot')) {
    const box = graph.querySelector('svg.main-svg').getBoundingClientRect();
    for (const t of graph.querySelectorAll(LABELS)) {
      const r = t.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
        out.push(`${graph.parentElement.id || graph.id}: "${t.textContent}"`);
      }
    }
  }
  return out;
}"""

# In each figure, a colour bar or legend covering a tick label or axis title, or a label running into
# a plot area (its own or a neighbour panel's); and panels covering each other.
OVERLAPS = """(LABELS) => {
  const meet = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const out = [];
  for (const graph of document.querySelectorAll('.js-plotly-plot')) {
    const labels = [...graph.querySelectorAll(LABELS)];
    for (const cover of graph.querySelectorAll('.colorbar, .legend')) {
      const c = cover.getBoundingClientRect();
      for (const label of labels) {
        if (!cover.contains(label) && meet(c, label.getBoundingClientRect())) {
          out.push(`${graph.parentElement.id}: ${cover.getAttribute('class')} covers "${label.textContent}"`);
        }
      }
    }
    for (const area of graph.querySelectorAll('.draglayer .nsewdrag')) {  // one per plot area
      for (const label of labels) {
        if (meet(area.getBoundingClientRect(), label.getBoundingClientRect())) {
          out.push(`${graph.parentElement.id}: "${label.textContent}" runs into a plot area`);
        }
      }
    }
  }
  const panels = [...document.querySelectorAll('.panel')];
  panels.forEach((a, i) => panels.slice(i + 1).forEach(b => {
    if (meet(a.getBoundingClientRect(), b.getBoundingClientRect())) out.push(`panel ${a.getAttribute('aria-label')} `
                                                                            + `covers ${b.getAttribute('aria-label')}`);
  }));
  return out;
}"""


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (pages are opened per width by :func:`_open`)."""
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _open(browser, url: str, width: int, name: str):
    """A page of ``width`` px showing ``name`` with its graphs drawn, recording errors and CSP violations."""
    page = new_page(browser, width)
    path, graphs = PAGES[name]
    page.goto(url + path)
    for graph in graphs:
        page.wait_for_selector(f"{graph} .main-svg")
    page.wait_for_load_state("networkidle")
    return page


def assert_fits_the_screen(page, width: int) -> None:
    """The page never scrolls sideways, no element is wider than it, no figure text is clipped."""
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate(TOO_WIDE) == []
    assert page.evaluate(CLIPPED_FIGURE_TEXT, FIGURE_LABELS) == []


@pytest.mark.parametrize("name", sorted(PAGES))
@pytest.mark.parametrize("width", [LAPTOP, PHONE])
def test_page_fits_the_screen_with_figure_text_unclipped(server, browser, screenshots, name, width):
    page = _open(browser, server, width, name)
    try:
        page.screenshot(path=str(screenshots / f"{name}_{width}.png"), full_page=True)
        assert_fits_the_screen(page, width)
        _assert_clean(page)
    finally:
        page.context.close()


@pytest.mark.parametrize("name", sorted(PAGES))
@pytest.mark.parametrize("width", [LAPTOP, PHONE])
def test_nothing_covers_a_label(server, browser, name, width):
    page = _open(browser, server, width, name)
    try:
        assert page.evaluate(OVERLAPS, FIGURE_LABELS) == []
    finally:
        page.context.close()


def test_phone_shows_ranked_correlations_first_and_the_matrix_scrolls_inside_its_panel(server, browser):
    page = _open(browser, server, PHONE, "charts")
    try:
        ranked = page.locator("#charts-intervals").bounding_box()
        matrix = page.locator("#charts-heatmap").bounding_box()
        assert ranked["y"] < matrix["y"] and ranked["width"] <= PHONE
        scroller = page.locator("#charts-heatmap").locator("xpath=..")
        assert scroller.evaluate("el => el.scrollWidth > el.clientWidth && getComputedStyle(el).overflowX === 'auto'")
    finally:
        page.context.close()


@pytest.mark.parametrize("width", [LAPTOP, PHONE])
def test_models_page_shows_the_shipped_model_and_the_comparison(server, browser, width):
    page = _open(browser, server, width, "models")
    try:
        shipped, trained = page.inner_text("#models-shipped"), page.inner_text("#models-trained")
        assert "Check your track" in shipped and "2 tracks: rough" in shipped
        assert "Models trained here" in trained and page.is_visible("#models-table")
        title = page.text_content("#models-shipped-reliability .gtitle")  # SVG text: no inner_text
        ece_row = page.locator("#models-shipped-metrics tr", has_text="ECE").inner_text()
        assert title.split("=")[-1].strip() in ece_row
    finally:
        page.context.close()
