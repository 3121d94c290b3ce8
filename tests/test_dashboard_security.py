"""HTTP hardening (dashboard/security.py): security headers, malformed callback requests get one-line 400s."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest


def test_every_response_carries_the_security_headers(app):
    from tracklens.dashboard import security

    client = app.server.test_client()
    index = client.get("/check")
    policy_text = index.headers["Content-Security-Policy"]
    for response in (index, client.get("/_dash-layout"), client.get("/_dash-dependencies"),
                     client.get("/assets/style.css"), client.get("/no-such-page")):
        assert response.status_code == 200
        for header, value in security.SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, header
        assert response.headers.get("Content-Security-Policy") == policy_text
    policy = dict(directive.split(" ", 1) for directive in policy_text.split("; "))
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"]  # inline scripts run by their hashes only
    # Every inline script of the page is allowed by its hash (else the app would not start);
    # Dash's "no Internet Explorer" alert sits in a conditional comment no browser runs.
    page = re.sub(r"<!--.*?-->", "", index.get_data(as_text=True), flags=re.S)
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", page, re.S)
    assert len(inline) >= 2  # the renderer's start-up line and the player's clientside callback
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy["script-src"].split()


_MISSING = object()


def _callback_body(**changes) -> dict:
    """A well-formed call of the header's last-track callback, with ``changes`` (``_MISSING`` drops a key)."""
    body = {"output": "app-last-track.children", "outputs": {"id": "app-last-track", "property": "children"},
            "inputs": [{"id": "app-track", "property": "data",
                        "value": {"filename": "song.mp3", "blend_label": "rock-metal"}}],
            "state": [], "changedPropIds": ["app-track.data"]}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not _MISSING}


_INPUT = _callback_body()["inputs"][0]


def test_well_formed_callback_request_is_answered(app):
    response = app.server.test_client().post("/_dash-update-component", json=_callback_body())
    assert response.status_code == 200
    assert "Last checked: song.mp3" in response.get_json()["response"]["app-last-track"]["children"]


@pytest.mark.parametrize("body", [
    _callback_body(inputs=None),
    _callback_body(inputs=_MISSING),
    _callback_body(inputs=[]),
    _callback_body(inputs=[_INPUT, _INPUT]),
    _callback_body(inputs=["app-track.data"]),
    _callback_body(inputs=[{**_INPUT, "id": 5}]),
    _callback_body(inputs=[{**_INPUT, "id": "check-upload", "property": "contents"}]),
    _callback_body(state="filename"),
    _callback_body(outputs=_MISSING),
    _callback_body(outputs=[{"id": "app-last-track", "property": "children"}] * 2),
    _callback_body(outputs={"id": "check-status", "property": "children"}),
    _callback_body(output="no-such-component.children"),
    _callback_body(output=None),
    _callback_body(output=["app-last-track.children"]),
    _callback_body(changedPropIds="app-track.data"),
    [_callback_body()],
    "a JSON string",
], ids=["inputs-null", "inputs-missing", "inputs-empty", "inputs-too-many", "input-a-string", "input-id-a-number",
        "input-of-another-callback", "state-a-string", "outputs-missing", "outputs-too-many",
        "outputs-of-another-callback", "unknown-output", "output-null", "output-a-list",
        "changed-a-string", "body-a-list", "body-a-string"])
def test_malformed_callback_request_gets_400_without_traceback(app, body):
    response = app.server.test_client().post("/_dash-update-component", json=body)
    _assert_refused(response)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"], ids=["broken", "empty", "binary"])
def test_callback_request_that_is_not_json_gets_400(app, raw):
    client = app.server.test_client()
    _assert_refused(client.post("/_dash-update-component", data=raw, content_type="application/json"))
    _assert_refused(client.post("/_dash-update-component", data=raw, content_type="text/plain"))


def _assert_refused(response) -> None:
    text = response.get_data(as_text=True)
    assert response.status_code == 400, (response.status_code, text[:300])
    assert text.startswith("bad callback request: ") and text.count("\n") == 1
    assert "Traceback" not in text and "File " not in text
