"""Helpers shared by the dashboard tests: Dash component trees as ids/text, uploads as the browser posts them."""

from __future__ import annotations

import io

import numpy as np

from tracklens import config


def _wav_bytes(y: np.ndarray, sr: int = config.SAMPLE_RATE) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, y, sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _ids(component) -> set[str]:
    """Every component id inside a Dash component tree."""
    found = set()

    def walk(node):
        if isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
            return
        if hasattr(node, "to_plotly_json"):
            if getattr(node, "id", None):
                found.add(node.id)
            walk(getattr(node, "children", None))
    walk(component)
    return found


def _text(component) -> str:
    """All text inside a Dash component tree, joined by spaces."""
    if isinstance(component, str):
        return component
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    if hasattr(component, "to_plotly_json"):
        return _text(getattr(component, "children", "") or "")
    return str(component) if component is not None else ""


def _upload(app, raw, name: str, **headers):
    """POST an upload to the upload route as assets/upload.js does: (HTTP status, JSON answer)."""
    from urllib.parse import quote

    from tracklens.dashboard import uploads

    response = app.server.test_client().post(f"/{uploads.ROUTE}?name={quote(name)}", data=raw,
                                             headers={uploads.HEADER: "1", **headers})
    return response.status_code, response.get_json()


def _check(app, pages, raw: bytes, name: str):
    """Upload, then run the page's callback as the browser does: (status, results, summary, player state)."""
    code, answer = _upload(app, raw, name)
    assert code == 200, answer
    return pages["check"].check_upload({"id": answer["id"], "name": name})


def _demo_clip(demo_catalogue, i: int = 0):
    return sorted((demo_catalogue / "audio").glob("*/*.wav"))[i]


def _by_id(component, id_: str):
    """The component with ``id_`` inside a Dash component tree (None when absent)."""
    if isinstance(component, (list, tuple)):
        return next((found for c in component if (found := _by_id(c, id_)) is not None), None)
    if hasattr(component, "to_plotly_json"):
        if getattr(component, "id", None) == id_:
            return component
        return _by_id(getattr(component, "children", None), id_)
    return None


def _figure(results, id_: str):
    return _by_id(results, id_).figure


def _wav_header(*, channels: int, sr: int, bits: int, seconds: float) -> bytes:
    """A PCM WAV header announcing ``seconds`` of audio."""
    import struct

    block = channels * bits // 8
    data_bytes = int(seconds * sr) * block
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, sr,
                       sr * block, block, bits, b"data", data_bytes)


def _walk(component):
    if isinstance(component, (list, tuple)):
        for c in component:
            yield from _walk(c)
    elif hasattr(component, "to_plotly_json"):
        yield component
        yield from _walk(getattr(component, "children", None))


def _session_checks(demo_catalogue, n: int) -> list[dict]:
    """Check the first ``n`` demo clips, as uploads earlier in a session: their A/B picker entries
    (``{"key": content SHA-256, "name": file name}``)."""
    import hashlib

    from tracklens.dashboard import track

    keys = []
    for clip in sorted((demo_catalogue / "audio").glob("*/*.wav"))[:n]:
        raw = clip.read_bytes()
        track.check_track(raw, clip.name)
        keys.append({"key": hashlib.sha256(raw).hexdigest(), "name": clip.name})
    return keys


# --- browser tests (Playwright): the server, a page, the check page's upload ---------------------

#: Records every CSP violation of a document (the init script runs again on each navigation).
CSP_LISTENER = ("window.__cspViolations = []; document.addEventListener('securitypolicyviolation', "
                "e => window.__cspViolations.push(e.violatedDirective + ' blocked ' + e.blockedURI));")
START_TIMEOUT_S = 180
RESULT_TIMEOUT_MS = 90_000


def serve_in_private_home(tmp_path_factory, fill_home=None):
    """`tracklens dashboard` on the real Top Hits table, in a private tracklens home; yields its URL
    (a module fixture does ``yield from``). ``fill_home(home)`` puts what the test needs there first."""
    from tracklens.tests.dashboard_server import serve_in_subprocess

    home = tmp_path_factory.mktemp("home")
    if fill_home is not None:
        fill_home(home)
    log_path = tmp_path_factory.mktemp("dashboard") / "server.log"
    with serve_in_subprocess(env={"TRACKLENS_HOME": str(home)}, log_path=log_path, timeout=START_TIMEOUT_S) as served:
        yield served.url


def new_page(browser, width: int, **context_options):
    """A page ``width`` px wide (900 high) in a context of its own, recording page and console
    errors (``page.js_errors``) and CSP violations; close it with ``page.context.close()``."""
    context = browser.new_context(viewport={"width": width, "height": 900}, **context_options)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.on("console", lambda message: page.js_errors.append(message.text) if message.type == "error" else None)
    return page


def open_check(page, url: str) -> None:
    """Go to the check page at ``url`` and wait for its upload box."""
    page.goto(url + "/check")
    page.wait_for_selector("#check-upload")


def upload_clip(page, clip) -> None:
    """Choose the file ``clip`` in the check page's upload box and wait until its check is done."""
    page.set_input_files("#check-upload input[type=file]", str(clip))
    page.wait_for_selector(f"#check-ok:has-text('{clip.name}')", timeout=RESULT_TIMEOUT_MS)
