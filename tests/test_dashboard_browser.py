"""End-to-end: the dashboard served by `tracklens dashboard` (waitress), driven in headless Debian
Chromium by Playwright. Loads every page, uploads real audio, waits for the genre blend and checks
it, refuses corrupt / silent / too-large files with a readable message; screenshots go to
reports/screenshots/.

Skips only when /usr/bin/chromium is missing and CI is unset (in CI a missing browser fails).
"""

from __future__ import annotations

import io
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from tracklens import config

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-gpu"]
SCREENSHOTS = config.REPORTS_DIR / "screenshots"
UPLOAD_LIMIT_MB = 2  # the server under test refuses more, so "too large" is cheap to exercise
START_TIMEOUT_S = 180
RESULT_TIMEOUT_MS = 90_000


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: `.ci/system-deps` should have installed Debian's chromium")
    pytest.skip(f"{CHROMIUM} not installed (run `make system-deps`)")


def _wav_bytes(y: np.ndarray, sr: int = config.SAMPLE_RATE) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(demo_catalogue, tmp_path_factory):
    """`tracklens dashboard --data <demo catalogue>` on a free loopback port; yields its URL."""
    from tracklens.dashboard.app import serve_in_subprocess

    log_path = tmp_path_factory.mktemp("dashboard") / "server.log"
    with serve_in_subprocess(data_dir=demo_catalogue, env={"TRACKLENS_MAX_UPLOAD_MB": str(UPLOAD_LIMIT_MB)},
                             log_path=log_path, timeout=START_TIMEOUT_S) as url:
        yield url


@pytest.fixture(scope="module")
def page():
    """One headless Chromium page at laptop width (1366 x 900)."""
    executable = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.js_errors = errors
        yield pg
        context.close()
        browser.close()


def _upload(page, url: str, name: str, payload: bytes, mime: str = "audio/wav") -> None:
    page.goto(f"{url}/check")
    page.wait_for_selector("#check-upload")
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


def _check_blend(page, *, genres) -> tuple[dict, str]:
    blend = _blend_of(page)
    label = page.inner_text("#check-blend-label")
    assert set(blend) == set(genres), f"blend genres {sorted(blend)} != model genres {sorted(genres)}"
    assert sum(blend.values()) == pytest.approx(1.0, abs=0.02)
    assert all(0.0 <= v <= 1.0 for v in blend.values())
    top = max(blend, key=blend.get)
    assert label.startswith("Blend:") and top in label, f"label {label!r} does not name the top genre {top}"
    return blend, label


@pytest.fixture(scope="module")
def model_genres():
    """The shipped default model's genres, from its model card (no TensorFlow in this process)."""
    card = json.loads((config.DEFAULT_MODEL_DIR / "card.json").read_text())
    return list(card["genres"])


def test_charts_page_renders_figures(server, page):
    page.goto(server + "/")
    for graph in ("#charts-heatmap", "#charts-scatter", "#charts-trends"):
        page.wait_for_selector(f"{graph} .main-svg")
    assert "songs match the filters" in page.inner_text("#charts-count")
    page.screenshot(path=str(SCREENSHOTS / "charts.png"), full_page=True)
    # Narrowing the filter reaches the server and changes the count.
    before = page.inner_text("#charts-count")
    page.click("#charts-explicit input[value='yes']")
    page.wait_for_function("(b) => document.querySelector('#charts-count').innerText !== b", arg=before)
    assert page.js_errors == []


def test_models_page_renders(server, page):
    page.goto(server + "/models")
    page.wait_for_selector("#models-table, #models-empty")
    text = page.inner_text("main")
    assert "Model comparison" in text or "No evaluation report yet" in text
    page.screenshot(path=str(SCREENSHOTS / "models.png"), full_page=True)


def test_check_demo_clip_gives_blend(server, page, demo_catalogue, model_genres):
    clip = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0]
    _upload(page, server, clip.name, clip.read_bytes())
    blend, label = _check_blend(page, genres=model_genres)
    for section in ("#check-timeline", "#check-spectrogram", "#check-chromagram", "#check-profile", "#check-map"):
        page.wait_for_selector(f"{section} .main-svg")
    note = page.inner_text("#check-comparison-note")
    assert "danceability" in note and "tempo" in note
    assert len(page.query_selector_all("#check-nearest tbody tr")) == 5
    src = page.get_attribute("#check-player", "src") or ""
    assert src.startswith("data:audio")
    assert clip.name in page.inner_text("#app-last-track")
    page.screenshot(path=str(SCREENSHOTS / "check_demo.png"), full_page=True)
    assert page.js_errors == []


def test_check_real_gtzan_clip(server, page, shared_data, model_genres):
    clip = sorted((shared_data / "gtzan" / "audio" / "rock").glob("*.opus"))[0]
    _upload(page, server, clip.name, clip.read_bytes(), mime="audio/ogg")
    blend, _ = _check_blend(page, genres=model_genres)
    page.screenshot(path=str(SCREENSHOTS / "check_gtzan.png"), full_page=True)


@pytest.mark.parametrize("name, payload, expected", [
    ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8, "corrupt.wav"),
    ("silence.wav", None, "silent"),
    ("notes.txt", b"hello", "unsupported file type"),
])
def test_check_refuses_bad_files(server, page, name, payload, expected):
    if payload is None:
        payload = _wav_bytes(np.zeros(5 * config.SAMPLE_RATE, dtype=np.float32))
    _upload(page, server, name, payload)
    error = page.wait_for_selector("#check-error", timeout=RESULT_TIMEOUT_MS)
    text = error.inner_text()
    assert expected in text and name in text
    assert page.query_selector("#check-blend-label") is None
    if name == "corrupt.wav":
        page.screenshot(path=str(SCREENSHOTS / "check_corrupt.png"), full_page=True)


def test_check_refuses_too_large_file_in_browser(server, page):
    payload = b"\x00" * ((UPLOAD_LIMIT_MB + 1) * 1024 * 1024)
    _upload(page, server, "huge.wav", payload)
    error = page.wait_for_selector("#check-error", timeout=10_000)
    assert "huge.wav: too large" in error.inner_text()


def test_server_enforces_request_size_limit(server):
    """waitress refuses a body over the limit from its Content-Length, before reading it."""
    from tracklens.dashboard.app import MAX_REQUEST_BODY_BYTES  # computed from the default limit

    host, port = server.removeprefix("http://").split(":")
    too_big = (UPLOAD_LIMIT_MB * 2 + 2) * 1024 * 1024
    assert too_big < MAX_REQUEST_BODY_BYTES  # the test server runs with a lowered limit
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST /_dash-update-component HTTP/1.1\r\nHost: {host}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {too_big}\r\n\r\n".encode())
        status_line = conn.recv(4096).split(b"\r\n", 1)[0].decode()
    assert " 413 " in status_line, status_line
