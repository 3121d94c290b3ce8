"""End-to-end: the dashboard served by `tracklens dashboard` (waitress), driven in headless Debian
Chromium by Playwright. Loads every page, uploads real audio, waits for the genre blend and checks
it against the same blend computed in this process, refuses corrupt / silent / too-large files with
a readable message (the player then plays nothing), and checks that all of it works under the
server's Content-Security-Policy (no violation reported, no console error). Screenshots go to a
temporary folder, or to $TRACKLENS_SCREENSHOTS when set.

Skips only when /usr/bin/chromium is missing and CI is unset (in CI a missing browser fails).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from dashboard_helpers import RESULT_TIMEOUT_MS, START_TIMEOUT_S, _demo_clip, _wav_bytes, new_page, open_check
from tracklens import config

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-gpu"]
SCREENSHOTS_ENV = "TRACKLENS_SCREENSHOTS"
# The evaluation report the server is given (in its private tracklens home): best model first on the page.
REPORT_MODELS = {"knn": 0.61, "mlp": 0.93}
UPLOAD_LIMIT_MB = 2  # the server under test refuses more, so "too large" is cheap to exercise


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: `.ci/system-deps` should have installed Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (run `make system-deps`)")


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where screenshots go: $TRACKLENS_SCREENSHOTS when set (kept there), else a temporary folder."""
    kept = os.environ.get(SCREENSHOTS_ENV, "").strip()
    folder = Path(kept).expanduser() if kept else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def tracklens_home(tmp_path_factory) -> Path:
    """A private tracklens home for the server: no trained models, one evaluation report."""
    home = tmp_path_factory.mktemp("home")
    report = home / "reports" / "evaluation"
    report.mkdir(parents=True)
    rows = "".join(f"{name},{auc}\n" for name, auc in REPORT_MODELS.items())
    (report / "comparison.csv").write_text("model,macro_roc_auc\n" + rows)
    return home


@pytest.fixture(scope="module")
def server(demo_catalogue, tracklens_home, tmp_path_factory):
    """`tracklens dashboard --data <demo catalogue>` on a free loopback port; yields its URL."""
    from tracklens.tests.dashboard_server import serve_in_subprocess

    log_path = tmp_path_factory.mktemp("dashboard") / "server.log"
    env = {"TRACKLENS_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB), "TRACKLENS_HOME": str(tracklens_home)}
    with serve_in_subprocess(data_dir=demo_catalogue, env=env, log_path=log_path,
                             timeout=START_TIMEOUT_S) as served:
        yield served.url


@pytest.fixture(scope="module")
def page():
    """One headless Chromium page at laptop width (1366 x 900) that records page errors, console
    errors and CSP violations."""
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        pg = new_page(browser, 1366)
        yield pg
        pg.context.close()
        browser.close()


def _assert_clean(page) -> None:
    """No script error, console error or CSP violation on the current page (call before leaving it)."""
    assert page.evaluate("window.__cspViolations") == []
    assert page.js_errors == []


def _expect_refused(page, status: int) -> None:
    """Take the one console line Chromium logs for an upload the server refused with ``status``
    (any 4xx answer to fetch() is logged as an error), so :func:`_assert_clean` sees only the unexpected."""
    logged = f"Failed to load resource: the server responded with a status of {status} "
    matches = [e for e in page.js_errors if e.startswith(logged)]
    assert len(matches) == 1, page.js_errors
    page.js_errors.remove(matches[0])


@pytest.fixture(scope="module")
def expected_blend():
    """The blend the page must show for an upload, computed in this process without the server:
    ``predict_blend`` on the file itself, as `tracklens predict` does (one blend for one file)."""
    import tempfile

    from tracklens.dashboard import data
    from tracklens.models import blend as blend_module

    def compute(raw: bytes, name: str) -> dict:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(raw)
            return blend_module.predict_blend(data.default_model(), path).blend
    return compute


def _upload(page, url: str, name: str, payload: bytes, mime: str = "audio/wav") -> None:
    open_check(page, url)
    page.set_input_files("#check-upload input[type=file]",
                         files=[{"name": name, "mimeType": mime, "buffer": payload}])


def _blend_of(page) -> dict:
    """The blend bar chart's data, read from the rendered Plotly graph."""
    page.wait_for_selector("#check-blend-label", timeout=RESULT_TIMEOUT_MS)
    page.wait_for_selector("#check-blend .main-svg")
    # _fullData holds the decoded arrays (Plotly ships numpy arrays base64-encoded in g.data).
    trace = page.evaluate("() => { const g = document.querySelector('#check-blend .js-plotly-plot');"
                          " const t = g._fullData[0]; return {x: Array.from(t.x), y: Array.from(t.y),"
                          " orientation: t.orientation || 'v'}; }")
    names, values = (trace["y"], trace["x"]) if trace["orientation"] == "h" else (trace["x"], trace["y"])
    return dict(zip(names, (float(v) / 100.0 for v in values)))  # the bars are in percent


def _check_blend(page, expected: dict) -> None:
    """The page's blend bars equal ``expected`` and its label names the top genre."""
    blend = _blend_of(page)
    label = page.inner_text("#check-blend-label")
    assert blend == pytest.approx(expected, abs=0.01)
    assert sum(blend.values()) == pytest.approx(1.0, abs=0.02)
    top = max(blend, key=blend.get)
    assert label.startswith("Blend:") and top in label, f"label {label!r} does not name the top genre {top}"


def test_pages_are_served_with_security_headers(server, page):
    response = page.goto(server + "/check")
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    script_src = next(d for d in headers["content-security-policy"].split("; ") if d.startswith("script-src "))
    assert "'sha256-" in script_src and "'unsafe-inline'" not in script_src
    page.wait_for_selector("#check-upload")
    _assert_clean(page)


def test_charts_page_renders_figures(server, page, screenshots):
    page.goto(server + "/")
    for graph in ("#charts-heatmap", "#charts-scatter", "#charts-trends"):
        page.wait_for_selector(f"{graph} .main-svg")
    # the count is another callback's output: it may land after the figures (empty on a busy CI run)
    page.wait_for_function("() => (document.querySelector('#charts-count')?.innerText || '').length > 0",
                           timeout=RESULT_TIMEOUT_MS)
    assert "songs match the filters" in page.inner_text("#charts-count")
    page.screenshot(path=str(screenshots / "charts.png"), full_page=True)
    # Narrowing the filter reaches the server and changes the count.
    before = page.inner_text("#charts-count")
    page.click("#charts-explicit input[value='yes']")
    page.wait_for_function("(b) => document.querySelector('#charts-count').innerText !== b", arg=before)
    _assert_clean(page)


def test_models_page_shows_the_report(server, page, screenshots):
    page.goto(server + "/models")
    table = page.wait_for_selector("#models-table")
    assert "Model comparison" in table.inner_text()
    models = [cell.inner_text() for cell in page.query_selector_all("#models-table tbody tr td:first-child")]
    assert models == sorted(REPORT_MODELS, key=REPORT_MODELS.get, reverse=True)  # best first
    page.screenshot(path=str(screenshots / "models.png"), full_page=True)
    _assert_clean(page)


def test_check_demo_clip_gives_blend(server, page, demo_catalogue, expected_blend, screenshots):
    clip = _demo_clip(demo_catalogue, 0)
    _upload(page, server, clip.name, clip.read_bytes())
    _check_blend(page, expected_blend(clip.read_bytes(), clip.name))
    # no map: the demo chart table has no audio to compare by sound (issue 18)
    for section in ("#check-timeline", "#check-spectrogram", "#check-chromagram", "#check-profile"):
        page.wait_for_selector(f"{section} .main-svg")
    assert "no audio" in page.inner_text("#check-no-neighbours") and not page.query_selector("#check-nearest")
    assert "not available" in page.inner_text("#check-card-danceability")
    _wait_for_player(page, visible=True)
    assert clip.name in page.inner_text("#app-last-track")
    page.hover("#check-spectrogram")  # Plotly's PNG export goes through a blob: image (img-src)
    with page.expect_download() as download:
        page.click("#check-spectrogram button[data-title='Download plot as a PNG']")
    assert download.value.suggested_filename.endswith(".png")
    page.screenshot(path=str(screenshots / "check_demo.png"), full_page=True)
    _assert_clean(page)


def test_check_real_gtzan_clip(server, page, gtzan_clip, expected_blend, screenshots):
    clip = gtzan_clip("rock.00000", "full30s")
    _upload(page, server, clip.name, clip.read_bytes(), mime="audio/ogg")
    _check_blend(page, expected_blend(clip.read_bytes(), clip.name))
    page.screenshot(path=str(screenshots / "check_gtzan.png"), full_page=True)
    _assert_clean(page)


@pytest.mark.parametrize("name, payload, expected", [
    ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8, "corrupt.wav"),
    ("silence.wav", None, "silent"),
    ("notes.txt", b"hello", "unsupported file type"),
])
def test_check_refuses_bad_files(server, page, screenshots, name, payload, expected):
    if payload is None:
        payload = _wav_bytes(np.zeros(5 * config.SAMPLE_RATE, dtype=np.float32))
    _upload(page, server, name, payload)
    error = page.wait_for_selector("#check-error", timeout=RESULT_TIMEOUT_MS)
    text = error.inner_text()
    assert text.startswith(name) and expected in text
    assert "could not be analysed" not in text  # the reason itself, not the fallback for a server fault
    assert page.query_selector("#check-blend-label") is None
    _wait_for_player(page, visible=False)
    if name == "corrupt.wav":
        page.screenshot(path=str(screenshots / "check_corrupt.png"), full_page=True)
        _expect_refused(page, 422)  # refused by the upload route, from its header
    _assert_clean(page)


def test_check_refuses_too_large_file_in_browser(server, page):
    payload = b"\x00" * ((UPLOAD_LIMIT_MB + 1) * 1024 * 1024)
    _upload(page, server, "huge.wav", payload)
    error = page.wait_for_selector("#check-error", timeout=10_000)
    assert "huge.wav: too large" in error.inner_text() and f"files up to {UPLOAD_LIMIT_MB} MB" in error.inner_text()
    _assert_clean(page)


def _wait_for_player(page, *, visible: bool) -> None:
    """The player plays the last accepted upload (its own blob: object URL), or is hidden without a source."""
    if visible:
        page.wait_for_function("() => { const p = document.querySelector('#check-player');"
                               " return p.src.startsWith('blob:') && getComputedStyle(p).display !== 'none'; }")
    else:
        page.wait_for_function("() => { const p = document.querySelector('#check-player');"
                               " return !p.getAttribute('src') && getComputedStyle(p).display === 'none'; }")


def _choose(page, name: str, payload: bytes, mime: str = "audio/wav") -> None:
    """Choose a file in the upload box of the page already open (no reload: the player's state carries over)."""
    page.set_input_files("#check-upload input[type=file]", files=[{"name": name, "mimeType": mime, "buffer": payload}])


def test_player_follows_the_last_accepted_upload(server, page, demo_catalogue):
    """After a refused upload the player kept the previous file; after an unreadable one it showed an
    empty player. Now every outcome but an analysed file hides it."""
    clip = _demo_clip(demo_catalogue, 1)
    _upload(page, server, clip.name, clip.read_bytes())
    page.wait_for_selector("#check-ok", timeout=RESULT_TIMEOUT_MS)
    _wait_for_player(page, visible=True)
    for name, payload, shown in [
        ("huge.wav", b"\x00" * ((UPLOAD_LIMIT_MB + 1) << 20), "#check-error"),  # refused in the browser
        (clip.name, clip.read_bytes(), "#check-ok"),
        ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8, "#check-error"),  # by the server
        (clip.name, clip.read_bytes(), "#check-ok"),
        ("silence.wav", _wav_bytes(np.zeros(5 * config.SAMPLE_RATE, dtype=np.float32)), "#check-error"),  # unreadable
    ]:
        _choose(page, name, payload)
        page.wait_for_selector(shown, timeout=RESULT_TIMEOUT_MS)
        assert page.inner_text(shown).startswith(name)
        _wait_for_player(page, visible=shown == "#check-ok")
    _expect_refused(page, 422)
    _assert_clean(page)


@pytest.mark.parametrize("path, content_type", [("/_dash-update-component", "application/json"),
                                                 ("/_upload?name=big.wav", "application/octet-stream")])
def test_server_enforces_request_size_limit(server, path, content_type):
    """waitress refuses a body over the limit from its Content-Length, before reading it: an
    upload over the (lowered) byte cap, a callback over the same."""
    from tracklens.dashboard.app import MAX_REQUEST_BODY_BYTES  # computed from the default limit

    host, port = server.removeprefix("http://").split(":")
    too_big = (UPLOAD_LIMIT_MB * 2 + 2) * 1024 * 1024
    assert too_big < MAX_REQUEST_BODY_BYTES  # the test server runs with a lowered limit
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-Tracklens-Upload: 1\r\n"
                     f"Content-Type: {content_type}\r\nContent-Length: {too_big}\r\n\r\n".encode())
        status_line = conn.recv(4096).split(b"\r\n", 1)[0].decode()
    assert " 413 " in status_line, status_line
