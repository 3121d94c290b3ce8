"""What issue 18's last items add to the check page, in headless Chromium at 1440 and 390 px
against a 6-clip GTZAN catalogue: the A/B figures (both blends and timelines, side by side on a
laptop, one track after the other on a phone), the where-you-sit figure beside the sentences, and
the values downloaded as CSV and JSON. The page fits the screen, with no sideways scroll."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from dashboard_helpers import new_page, open_check, upload_clip
from test_check_page_catalogue import CATALOGUE
from test_check_page_catalogue_browser import UPLOADS, catalogue_server  # noqa: F401  (fixture)
from test_dashboard_browser import _assert_clean, screenshots  # noqa: F401
from test_dashboard_pages_browser import LAPTOP, PHONE, assert_fits_the_screen, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BOX = "s => { const r = document.querySelector(s).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }"


def _box(page, selector: str) -> list[float]:
    return page.evaluate(BOX, selector)


def _side_by_side(page, left: str, right: str) -> bool:
    """``left`` wholly left of ``right``, the two overlapping vertically (a row of a grid)."""
    a, b = _box(page, left), _box(page, right)
    return a[2] <= b[0] and a[1] < b[3] and b[1] < a[3]


def _stacked(page, upper: str, lower: str) -> bool:
    return _box(page, upper)[3] <= _box(page, lower)[1]


@pytest.mark.parametrize("width", [LAPTOP, PHONE])
def test_ab_figures_where_figure_and_csv_json_downloads(catalogue_server, browser, screenshots, gtzan_clip, width):  # noqa: F811
    first, second = (gtzan_clip(clip_id, "full30s") for clip_id in UPLOADS)
    page = new_page(browser, width, accept_downloads=True)
    try:
        open_check(page, catalogue_server)
        for clip in (first, second):
            upload_clip(page, clip)

        page.click("#check-catalogue")
        page.click(f"text=catalogue {CATALOGUE}")
        page.wait_for_selector("#check-neighbours")
        page.click("#check-scope >> text=all tracks")
        page.wait_for_selector("#check-where-figure .main-svg")
        texts = page.eval_on_selector_all("#check-where-figure .annotation-text", "els => els.map(e => e.textContent)")
        ticks = [t for t in texts if "middle half" in t]  # each row's label: the value and middle half, with units
        assert any(t.endswith("BPM") for t in ticks) and any(t.endswith("LUFS") for t in ticks), ticks
        sentences = page.query_selector_all("#check-where li")
        assert len(sentences) == len(ticks) >= 3
        beside = _side_by_side(page, "#check-where", "#check-where-figure")
        boxes = [_box(page, "#check-where"), _box(page, "#check-where-figure")]
        assert beside if width == LAPTOP else _stacked(page, "#check-where", "#check-where-figure"), boxes

        page.click("#check-ab")
        page.click(f"#check-compare-controls >> text={first.name}")
        for graph in ("blend-a", "timeline-a", "blend-b", "timeline-b"):
            page.wait_for_selector(f"#check-ab-{graph} .main-svg")
        assert second.name in page.inner_text("#check-ab-a") and first.name in page.inner_text("#check-ab-b")
        assert _stacked(page, "#check-ab-blend-a", "#check-ab-timeline-a")
        if width == LAPTOP:
            assert _side_by_side(page, "#check-ab-a", "#check-ab-b")
            assert _side_by_side(page, "#check-ab-timeline-a", "#check-ab-timeline-b")
        else:
            assert _stacked(page, "#check-ab-a", "#check-ab-b")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshots / f"check_compare_{width}.png"), full_page=True)
        assert_fits_the_screen(page, width)

        stem = second.stem + ".tracklens-check"
        with page.expect_download() as csv_download:
            page.click("#check-download-csv-button")
        with page.expect_download() as json_download:
            page.click("#check-download-json-button")
        assert csv_download.value.suggested_filename == stem + ".values.csv"
        assert json_download.value.suggested_filename == stem + ".json"
        values = pd.read_csv(io.StringIO(csv_download.value.path().read_text())).set_index("name")["value"]
        data = json.loads(json_download.value.path().read_text())
        assert data["file"] == second.name and data["catalogue"] == CATALOGUE and len(data["neighbours"]) == 5
        assert float(values["tempo"]) == pytest.approx(next(v["value"] for v in data["values"] if v["name"] == "tempo"))
        _assert_clean(page)
    finally:
        page.context.close()
