"""What the check page shows of the server's refusals and of a hostile file name, in Chromium
(issue 22, items 8 and 11): the upload script shows the server's own line (507 included, and
the first line of a non-JSON answer), and a file name with markup is text in every figure."""

from __future__ import annotations

import json

import pytest

from dashboard_helpers import RESULT_TIMEOUT_MS, _demo_clip
from test_dashboard_browser import _assert_clean, _upload, page, server, tracklens_home  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _forget_refusal_logs(page, status: int) -> None:
    """Chromium logs one console error for a fetch answered with an error status: expected here."""
    page.js_errors[:] = [e for e in page.js_errors if f"status of {status} " not in e]


@pytest.mark.parametrize("status, content_type, body, shown", [
    (507, "application/json",
     json.dumps({"error": "song.wav: the server's disk is full; the upload could not be stored — try again later"}),
     "song.wav: the server's disk is full; the upload could not be stored — try again later"),
    (502, "text/html", "\n  Bad Gateway  \n<p>nginx</p>\n",
     "song.wav: the server refused the upload (HTTP 502: Bad Gateway)"),
])
def test_the_page_shows_the_servers_line(server, page, status, content_type, body, shown):  # noqa: F811
    """A full disk said only "refused" (500 page) or "did not reach the server" (reset)."""
    page.route("**/_upload*", lambda route: route.fulfill(status=status, content_type=content_type, body=body))
    try:
        _upload(page, server, "song.wav", b"RIFF" + bytes(2000))
        error = page.wait_for_selector("#check-error", timeout=10_000)
        assert error.inner_text() == shown
    finally:
        page.unroute("**/_upload*")
    _forget_refusal_logs(page, status)
    _assert_clean(page)


def test_a_file_name_with_markup_is_text_in_the_figures(server, page, demo_catalogue):  # noqa: F811
    """`<b style="font-size:90px">BIG.wav` was 90 px bold in the map's legend (the map is gone
    since the chart table has no audio to map by; the name still reaches the page and the figures'
    titles, as text)."""
    name = '<b style="font-size:90px">BIG.wav'
    clip = _demo_clip(demo_catalogue, 0)
    _upload(page, server, name, clip.read_bytes())
    ok = page.wait_for_selector("#check-ok", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_selector("#check-blend .main-svg")
    assert ok.inner_text().startswith(name + ":")  # the markup shown as the characters typed
    styled = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot text, .js-plotly-plot tspan')]
        .filter(e => (e.getAttribute('style') || '').includes('90px') || e.closest('a')).length""")
    assert styled == 0
    _assert_clean(page)
