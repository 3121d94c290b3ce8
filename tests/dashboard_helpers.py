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
