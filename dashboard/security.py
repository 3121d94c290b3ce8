"""HTTP hardening of the dashboard's Flask server: a Host check, security headers on every
response, and a strict check of callback requests so a malformed one gets HTTP 400 instead of a
500 (Dash itself indexes the body blindly: ``"inputs": null`` raised TypeError inside Dash; JSON
nested thousands deep raised RecursionError while parsing).

The Host check stops DNS rebinding: a web page on ``evil.example`` whose name its owner points at
127.0.0.1 reaches the loopback dashboard as the same origin, but its requests say
``Host: evil.example``. Only the names this server is known by are answered (421 otherwise):
``localhost``, the loopback addresses, the ``--host`` the user gave, and any IP address and the
machine's own name when that is a wildcard (0.0.0.0, ::) — an address cannot be rebound, only a
name can, and a web page cannot rename the user's machine.

:func:`install` wires all three into a Dash app; the policy's script hashes are taken per
response, so the clientside callbacks Dash registers at its first request are covered too.
"""

from __future__ import annotations

import ipaddress
import logging

LOG = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_allowed = {"names": set(LOOPBACK_NAMES), "any_address": False}

#: Headers every response carries (the CSP is added by :func:`install`; it needs the app).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",  # no guessing a script out of an upload or JSON answer
    "X-Frame-Options": "DENY",  # no framing (clickjacking); frame-ancestors says the same for CSP browsers
    "Referrer-Policy": "no-referrer",  # the app links nowhere that needs to know where a user came from
}


def content_security_policy(script_hashes) -> str:
    """The tightest policy Dash 4 and Plotly work under (checked in Chromium by the browser tests).

    ``script_hashes``: ``Dash.csp_hashes()``, the hashes of the inline scripts Dash writes into
    its index page (the renderer's start-up line and the clientside callbacks), so no
    ``'unsafe-inline'`` is needed for scripts.
    """
    directives = {
        "default-src": ["'self'"],
        # No 'unsafe-eval': the figures use SVG go.Scatter (<= ~2000 points), not go.Scattergl,
        # whose WebGL layer (regl) builds its draw calls with Function().
        "script-src": ["'self'", *script_hashes],
        # Dash's renderer, dcc components and Plotly inject <style> elements and style attributes.
        "style-src": ["'self'", "'unsafe-inline'"],
        # Plotly draws heatmaps (spectrogram, chromagram, correlations) as data: PNG images, and
        # its "download plot as a PNG" button renders the figure through a blob: image.
        "img-src": ["'self'", "data:", "blob:"],
        # The audio player plays the browser's own copy of the upload through a blob: object URL
        # (URL.createObjectURL; a data: URI of a 104 MB WAV was a 138 MB string).
        "media-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],  # the app writes no <base>, and nobody else may
        "form-action": ["'none'"],  # the app has no forms (the upload is read by script)
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(" ".join([name, *values]) for name, values in directives.items())


def allow_host(host: str) -> None:
    """Also answer requests addressed to ``host`` (the ``--host`` the server listens on)."""
    host = host.strip().strip("[]").lower()
    if host in WILDCARD_HOSTS:  # every interface: any address, and this machine's own name
        import socket

        _allowed["any_address"] = True
        _allowed["names"].update({socket.gethostname().lower(), socket.getfqdn().lower()})
    else:
        _allowed["names"].add(host)


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port and brackets, lower case ("[::1]:8050" -> "::1")."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host_header: str | None) -> bool:
    """Whether a request with this Host header is addressed to this server (see the module docstring)."""
    if not host_header:
        return False
    name = host_name(host_header)
    if name in _allowed["names"]:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return _allowed["any_address"]


def install(app) -> None:
    """Add the Host check, the security headers and the callback request check to ``app``'s Flask server."""
    import flask

    update_path = app.config.routes_pathname_prefix + "_dash-update-component"

    @app.server.before_request
    def refuse_unknown_host():
        host = flask.request.environ.get("HTTP_HOST")
        if host_allowed(host):
            return None
        LOG.warning("refused a request for Host %r", host)
        return flask.Response("this server does not answer for that Host name (it answers for localhost "
                              "and the name it was started with)\n", status=421, mimetype="text/plain")

    @app.server.before_request
    def refuse_malformed_callback():
        if flask.request.path != update_path or flask.request.method != "POST":
            return None
        try:
            body = flask.request.get_json(silent=True)
        except RecursionError:  # json's C parser gives up on deep nesting with this, not ValueError
            body = None
        problem = callback_request_problem(body, app.callback_map)
        if problem is None:
            return None
        LOG.warning("refused a callback request: %s", problem)
        return flask.Response(f"bad callback request: {problem}\n", status=400, mimetype="text/plain")

    @app.server.after_request
    def add_security_headers(response):
        response.headers.update(SECURITY_HEADERS)
        # Hashed per response (~27 us): Dash adds the pages' title script at its first request.
        response.headers["Content-Security-Policy"] = content_security_policy(app.csp_hashes())
        return response


def callback_request_problem(body, callback_map: dict) -> str | None:
    """Why ``body`` is not a well-formed call of a registered callback, or None when it is.

    Checks the envelope the Dash renderer sends: ``output`` names a registered callback;
    ``inputs`` and ``state`` list that callback's dependencies in order (``{"id", "property",
    "value"}``); ``outputs`` names its outputs; ``changedPropIds`` is a list of strings. The
    values themselves are the callbacks' business.
    """
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    output = body.get("output")
    if not isinstance(output, str) or output not in callback_map:
        return "'output' does not name a callback of this app"
    spec = callback_map[output]
    multi = output.startswith("..")  # "..a.children...b.value..": several outputs
    declared = {
        "inputs": [f"{d['id']}.{d['property']}" for d in spec.get("inputs", [])],
        "state": [f"{d['id']}.{d['property']}" for d in spec.get("state", [])],
        # "@hash" marks an allow_duplicate output; the renderer names the plain property
        "outputs": [part.split("@", 1)[0] for part in (output[2:-2].split("...") if multi else [output])],
    }
    outputs = body.get("outputs")
    given = {"inputs": body.get("inputs"), "state": body.get("state", []),
             "outputs": outputs if multi or outputs is None else [outputs]}
    for field, names in declared.items():
        problem = _dependencies_problem(field, given[field], names)
        if problem:
            return problem
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(prop_id, str) for prop_id in changed):
        return "'changedPropIds' must be a list of strings"
    return None


def _is_prop(entry) -> bool:
    """An ``{"id", "property", ...}`` entry (a pattern-matching id is a dict)."""
    return (isinstance(entry, dict) and isinstance(entry.get("id"), (str, dict))
            and isinstance(entry.get("property"), str))


def _matches(entry, declared: str) -> bool:
    """``entry`` is the dependency ``declared`` ("id.property"). A pattern-matching one
    ("{...}.property") may be one entry or a list of them (ALL), whatever ids they match."""
    if declared.startswith("{"):
        return _is_prop(entry) or (isinstance(entry, list) and all(_is_prop(e) for e in entry))
    return _is_prop(entry) and f"{entry['id']}.{entry['property']}" == declared


def _dependencies_problem(field: str, entries, declared: list[str]) -> str | None:
    if not isinstance(entries, list) or len(entries) != len(declared):
        return f"'{field}' must list the callback's {len(declared)} {field}"
    if not all(_matches(entry, name) for entry, name in zip(entries, declared)):
        return f"'{field}' does not match the callback's {field}"
    return None
