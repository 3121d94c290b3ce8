"""The check page's catalogue picker, neighbours by sound with play buttons, the genre / all
tracks switch and the download button, in headless Chromium at 1440 and 390 px (the page fits
the screen, no sideways scroll), against a 6-clip GTZAN catalogue in the server's tracklens home.
"""

from __future__ import annotations

import pytest

from dashboard_helpers import new_page, open_check, serve_in_private_home, upload_clip
from test_check_page_catalogue import CATALOGUE, build_mini_catalogue
from test_dashboard_browser import _assert_clean, screenshots  # noqa: F401
from test_dashboard_pages_browser import LAPTOP, PHONE, assert_fits_the_screen, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: the uploads, one per width (full 30 s GTZAN clips): not in the mini catalogue, whose metal clips are
#: the folder's first two
UPLOADS = ("metal.00002", "metal.00003")
#: a neighbour's player at least this wide shows its play button and a bit of its time line
MIN_PLAYER_PX = 140


@pytest.fixture(scope="module")
def catalogue_server(shared_data, tmp_path_factory):
    """`tracklens dashboard` on the real Top Hits table, with the mini catalogue in its home."""
    yield from serve_in_private_home(tmp_path_factory, lambda home: build_mini_catalogue(shared_data, home))


@pytest.mark.parametrize("width", [LAPTOP, PHONE])
def test_picker_neighbours_switch_and_download(catalogue_server, browser, screenshots, gtzan_clip, width):
    clip = gtzan_clip(UPLOADS[[LAPTOP, PHONE].index(width)], "full30s")
    page = new_page(browser, width, accept_downloads=True)
    try:
        open_check(page, catalogue_server)
        upload_clip(page, clip)
        page.wait_for_selector("#check-no-neighbours")  # the Top Hits table first: no audio, no neighbours
        page.click("#check-catalogue")
        page.click(f"text=catalogue {CATALOGUE}")
        page.wait_for_selector("#check-neighbours")
        sources = page.eval_on_selector_all("#check-neighbours audio", "els => els.map(e => e.getAttribute('src'))")
        assert len(sources) == 2  # the two metal clips: within its genre
        assert all(s.startswith(f"/_catalogue_audio?catalogue={CATALOGUE}&track=metal.") for s in sources), sources
        answer = page.request.get(catalogue_server + sources[0])
        assert answer.status == 200 and len(answer.body()) > 10_000
        assert page.is_visible("#check-where-few")
        page.click("#check-scope >> text=all tracks")
        page.wait_for_selector("#check-where-tempo")
        assert len(page.query_selector_all("#check-neighbours audio")) == 5
        # Chromium drops a player's play button below ~100 px: the play column left it 92 px at 1280
        widths = page.eval_on_selector_all("#check-neighbours audio", "els => els.map(e => e.getBoundingClientRect().width)")
        assert min(widths) >= MIN_PLAYER_PX, widths
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(screenshots / f"check_catalogue_{width}.png"), full_page=True)
        assert_fits_the_screen(page, width)
        with page.expect_download() as download:
            page.click("#check-download-button")
        assert download.value.suggested_filename == clip.stem + ".tracklens-check.html"
        assert "Nearest by sound in " + CATALOGUE in download.value.path().read_text()
        _assert_clean(page)
    finally:
        page.context.close()
