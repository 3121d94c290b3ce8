"""Dashboard layouts, data layer and callbacks, called as plain functions (no browser, no server)."""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import re
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens.errors import TracklensError


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


@pytest.fixture(scope="module")
def app(demo_catalogue):
    """The app (one per process) on the small demo catalogue."""
    from tracklens.dashboard import app as app_module, data

    data.configure(demo_catalogue)
    return app_module.get_app()


@pytest.fixture(scope="module")
def pages(app):
    from tracklens.dashboard.pages import charts, check, models

    return {"charts": charts, "check": check, "models": models}


# --- data layer ---------------------------------------------------------------------------


def test_configure_rejects_missing_folder_and_folder_without_table(tmp_path):
    from tracklens.dashboard import data

    with pytest.raises(TracklensError, match="no such folder"):
        data.configure(tmp_path / "nope")
    with pytest.raises(TracklensError, match="no chart table found"):
        data.configure(tmp_path)


def test_chart_source_prefers_data_dir_then_shared_then_demo(tmp_path, monkeypatch, demo_catalogue):
    from tracklens.dashboard import data

    try:
        data.configure(demo_catalogue)
        assert data.chart_source().kind == "demo" and data.chart_source().path == demo_catalogue / "charts.csv"

        shared = tmp_path / "shared"
        (shared / "spotify").mkdir(parents=True)
        (shared / "spotify" / "songs_normalize.csv").write_text((demo_catalogue / "charts.csv").read_text())
        monkeypatch.setattr(config, "SHARED_DATA_DIR", shared)
        data.configure(None)
        assert data.chart_source().kind == "top_hits"

        monkeypatch.setattr(config, "SHARED_DATA_DIR", tmp_path / "absent")
        monkeypatch.setattr(data, "DEMO_DATA_DIR", tmp_path / "no-demo")
        data.configure(None)
        source = data.chart_source()
        assert source.kind == "none" and "make demo" in source.notes[0]
        assert data.charts().empty
    finally:
        data.configure(demo_catalogue)


def test_charts_are_the_prepared_table(app, demo_catalogue):
    from tracklens import prepare
    from tracklens.dashboard import data

    expected, _ = prepare.prepare_charts(demo_catalogue / "charts.csv")
    assert len(data.charts()) == len(expected)
    assert len(data.charts()) < len(pd.read_csv(demo_catalogue / "charts.csv"))  # duplicates dropped


# --- app ----------------------------------------------------------------------------------


def test_app_nav_lists_pages_in_order(app):
    from tracklens.dashboard import app as app_module

    links = app_module.nav_links()
    assert [link.children for link in links] == ["Charts & popularity", "Models", "Check your track"]
    assert [link.href for link in links] == ["/", "/models", "/check"]
    frame = app_module.layout()
    assert {"app-source", "app-track", "app-last-track", "app-footer"} <= _ids(frame)


def test_last_track_line(app):
    from tracklens.dashboard import app as app_module

    assert app_module.show_last_track(None) == ""
    line = app_module.show_last_track({"filename": "song.mp3", "blend_label": "rock-metal"})
    assert "song.mp3" in line and "rock-metal" in line


def test_serve_defaults_to_loopback_without_debug():
    import inspect

    from tracklens.dashboard import app as app_module

    defaults = {name: p.default for name, p in inspect.signature(app_module.serve).parameters.items()}
    assert defaults["host"] == "127.0.0.1" and defaults["debug"] is False


# --- HTTP hardening -----------------------------------------------------------------------


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


# --- charts page --------------------------------------------------------------------------


@pytest.fixture
def small_charts():
    return pd.DataFrame({
        "year": [2000, 2005, 2010, 2015, 2019],
        "genre": ["pop", "rock, pop", "hip hop", "set()", "rock"],
        "explicit": [False, True, True, False, False],
        "energy": [0.1, 0.5, 0.9, 0.3, 0.7],
        "popularity": [10, 50, 90, 30, 70],
    }, index=[10, 11, 12, 13, 14])


def test_filter_charts_by_years_genres_explicit(pages, small_charts):
    f = pages["charts"].filter_charts
    assert list(f(small_charts, years=[2004, 2016]).index) == [11, 12, 13]
    assert list(f(small_charts, genres=["rock"]).index) == [11, 14]
    assert list(f(small_charts, genres=["pop", "hip hop"]).index) == [10, 11, 12]
    assert list(f(small_charts, explicit="yes").index) == [11, 12]
    assert list(f(small_charts, explicit="no", genres=["rock"]).index) == [14]
    assert len(f(small_charts)) == 5


def test_genre_options_split_multi_labels_most_frequent_first(pages, small_charts):
    options = pages["charts"].genre_options(small_charts)
    assert options[:2] == ["pop", "rock"] or options[:2] == ["rock", "pop"]
    assert set(options) == {"pop", "rock", "hip hop"}  # "set()" means no genre


def test_selected_rows_follow_scatter_customdata(pages, small_charts):
    sel = pages["charts"].selected_rows
    picked = sel(small_charts, {"points": [{"x": 0.5, "y": 50, "customdata": [11]},
                                           {"x": 0.7, "y": 70, "customdata": [14]}]})
    assert list(picked.index) == [11, 14]
    assert sel(small_charts, None) is small_charts
    assert sel(small_charts, {"points": []}) is small_charts


def test_charts_layout_and_callbacks(pages):
    from tracklens.dashboard import data

    charts = pages["charts"]
    layout = charts.layout()
    assert {"charts-years", "charts-genres", "charts-explicit", "charts-feature", "charts-heatmap",
            "charts-scatter", "charts-trends"} <= _ids(layout)
    df = data.charts()
    years = [int(df["year"].min()), int(df["year"].max())]
    scatter, count = charts.update_scatter(years, None, "yes", "energy")
    assert count == f"{int(df['explicit'].astype(bool).sum())} songs match the filters."
    n_points = sum(len(t.x) for t in scatter.data if t.mode == "markers")
    assert n_points == int(df["explicit"].astype(bool).sum())
    heatmap = charts.update_heatmap(years, None, "all", None)
    trends = charts.update_trends(years, None, "all", "energy", None)
    z = np.asarray(heatmap.data[0].z)
    assert z.shape[0] == z.shape[1] and np.allclose(np.diag(z), 1.0)
    assert "popularity" in list(heatmap.data[0].x)
    assert any("energy" in (a.text or "") for a in trends.layout.annotations)


def test_charts_callbacks_explain_an_empty_selection(pages):
    heatmap = pages["charts"].update_heatmap([1990, 1991], None, "all", None)
    assert "Nothing to draw" in heatmap.layout.annotations[0].text


def test_heatmap_click_picks_feature(pages):
    pick = pages["charts"].pick_feature
    options = ["energy", "tempo"]
    assert pick({"points": [{"x": "popularity", "y": "tempo"}]}, options) == "tempo"
    import dash

    with pytest.raises(dash.exceptions.PreventUpdate):
        pick({"points": [{"x": "popularity", "y": "popularity"}]}, options)


# --- models page --------------------------------------------------------------------------


def test_models_page_says_when_no_report(pages, monkeypatch, tmp_path):
    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path)
    layout = pages["models"].layout()
    assert "models-empty" in _ids(layout) and "No evaluation report yet" in _text(layout)


def test_models_page_picks_up_a_report_written_while_running(pages, monkeypatch, tmp_path):
    from tracklens.dashboard import data

    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path)
    monkeypatch.setattr(data, "_model_dirs", lambda: [tmp_path / "no-models"])  # ignore real trained models
    assert "models-empty" in _ids(pages["models"].layout())
    pd.DataFrame({"model": ["knn", "mlp"], "accuracy": [0.5, 0.7]}).to_csv(tmp_path / "comparison.csv", index=False)
    layout = pages["models"].layout()
    assert "models-table" in _ids(layout) and "No saved validation predictions" in _text(layout)
    assert _text(layout).index("mlp") < _text(layout).index("knn")  # best first


def test_model_report_reads_saved_validation_predictions(monkeypatch, tmp_path):
    from tracklens.dashboard import data
    from tracklens.models import store

    monkeypatch.setattr(config, "REPORTS_DIR", tmp_path)
    monkeypatch.setattr(data, "_model_dirs", lambda: [config.MODELS_DIR])  # the shipped models/default
    (tmp_path / "comparison.csv").write_text("model,accuracy\ndefault,0.7\nnot-saved,0.5\n")
    report = data.model_report()
    expected = store.load_validation_result(config.DEFAULT_MODEL_DIR)
    assert list(report.predictions) == ["default"]
    saved = report.predictions["default"]
    assert saved["genres"] == list(expected["genres"]) and np.array_equal(saved["y_true"], expected["y_true"])
    assert saved["y_score"].shape == (len(expected["y_true"]), len(expected["genres"]))


def test_models_page_table_and_figures(pages, monkeypatch):
    from tracklens.dashboard import data

    rng = np.random.default_rng(0)
    genres = ["blues", "rock", "jazz"]
    y_true = np.repeat([0, 1, 2], 20)
    y_score = rng.dirichlet(np.ones(3), size=60) + np.eye(3)[y_true]
    y_score /= y_score.sum(axis=1, keepdims=True)
    table = pd.DataFrame({"model": ["mlp", "cnn"], "accuracy": [0.6, 0.8], "macro_roc_auc": [0.7, 0.9],
                          "weird_extra": [1, 2]})
    report = data.ModelReport(table=table, path=config.REPORTS_DIR / "comparison.csv",
                              predictions={"cnn": {"y_true": y_true, "y_score": y_score, "genres": genres}})
    monkeypatch.setattr(data, "model_report", lambda: report)
    models = pages["models"]
    rows = models.comparison_rows(table)
    assert [r["model"] for r in rows] == ["cnn", "mlp"] and "weird_extra" not in rows[0]
    layout = models.layout()
    assert {"models-table", "models-choice", "models-roc"} <= _ids(layout)
    roc, confusion, reliability = models.show_model("cnn")
    assert len([t for t in roc.data if t.name and t.name.split()[0] in genres]) == 3
    counts = np.asarray(confusion.data[0].text)
    assert counts.sum() == 60 and counts.trace() == int((y_score.argmax(1) == y_true).sum())
    assert "ECE" in reliability.layout.title.text


# --- check your track ---------------------------------------------------------------------


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


def test_upload_route_stores_the_file_for_one_check(app, pages, demo_catalogue):
    from tracklens.dashboard import uploads

    raw = _demo_clip(demo_catalogue).read_bytes()
    code, answer = _upload(app, raw, "../../song.wav")
    assert code == 200 and answer["name"] == "song.wav" and answer["duration_s"] == pytest.approx(6.0, abs=0.05)
    with uploads.claim(answer["id"]) as stored:
        assert stored.path.read_bytes() == raw and stored.path.parent.name.startswith("tracklens-uploads-")
        assert stored.sha256 == hashlib.sha256(raw).hexdigest()
    assert not stored.path.exists()  # deleted once checked
    status, results, summary, player = pages["check"].check_upload({"id": answer["id"], "name": "song.wav"})
    assert "no longer on the server" in _text(status) and results == [] and player == {"id": answer["id"], "ok": False}


@pytest.mark.parametrize("name, raw, headers, code, message", [
    ("notes.txt", b"hello", {}, 415, "notes.txt: unsupported file type '.txt'"),
    ("empty.wav", b"", {}, 400, "empty.wav: empty file"),
    ("corrupt.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(2048), {}, 422, "corrupt.wav: not readable"),
    ("long.wav", _wav_header(channels=1, sr=4_000, bits=8, seconds=660) + b"\x80" * (660 * 4_000), {}, 413,
     "long.wav: too long (11.0 min); the limit is 10 min"),
    ("song.wav", b"RIFF", {"X-Tracklens-Upload": "0"}, 400, "header"),
], ids=["type", "empty", "unreadable", "too-long-by-header", "no-header"])
def test_upload_route_refuses_with_one_line_and_keeps_nothing(app, name, raw, headers, code, message):
    from tracklens.dashboard import uploads

    before = uploads.pending_count()
    status, answer = _upload(app, raw, name, **headers)
    assert status == code and message in answer["error"] and "\n" not in answer["error"]
    assert "tracklens-uploads-" not in answer["error"]  # the stored file's name is never shown
    assert uploads.pending_count() == before
    if uploads._folder:
        assert list(uploads._folder[0].iterdir()) == []


def test_upload_over_the_byte_cap_is_refused_before_reading(app):
    from tracklens.dashboard import data, uploads

    class Unread(io.RawIOBase):
        def read(self, size=-1):
            raise AssertionError("the body was read")

    with pytest.raises(uploads.UploadRefused, match=r"big\.wav: too large \(166\.0 MB\); files up to 166 MB "
                                                    r"\(10 minutes of 24-bit 48 kHz stereo WAV\)") as refused:
        uploads.store(Unread(), filename="big.wav", content_length=data.MAX_UPLOAD_BYTES + 1)
    assert refused.value.status == 413
    response = _post_stream(app, "big.wav", Unread(), data.MAX_UPLOAD_BYTES + 1)
    assert response.status_code == 413 and "big.wav: too large" in response.get_json()["error"]


def _post_stream(app, name: str, stream, size: int):
    """POST ``stream`` (``size`` bytes, never held whole) to the upload route."""
    from tracklens.dashboard import uploads

    return app.server.test_client().post(f"/{uploads.ROUTE}?name={name}", headers={uploads.HEADER: "1"},
                                         environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(size)})


class _Stream(io.RawIOBase):
    """A header then ``n_zero`` zero bytes, read in pieces: a big upload that never sits in memory."""

    def __init__(self, header: bytes, n_zero: int):
        self.header, self.left = header, n_zero

    def readable(self):
        return True

    def readinto(self, buffer):
        if self.header:
            n = min(len(buffer), len(self.header))
            buffer[:n], self.header = self.header[:n], self.header[n:]
            return n
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def test_a_ten_minute_24_bit_stereo_wav_is_accepted(app):
    """The limit is a duration: 10 minutes of 44.1 kHz 24-bit stereo (159 MB) passes the byte cap
    and the header check (the old 50 MB cap stopped 16-bit stereo at 4:57)."""
    from tracklens.dashboard import data, uploads

    header = _wav_header(channels=2, sr=44_100, bits=24, seconds=600)
    size = len(header) + 600 * 44_100 * 2 * 3
    assert size < data.MAX_UPLOAD_BYTES
    response = _post_stream(app, "album-track.wav", _Stream(header, size - len(header)), size)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["duration_s"] == pytest.approx(600.0)
    with uploads.claim(response.get_json()["id"]) as stored:
        assert stored.path.stat().st_size == size


def test_analysis_memory_does_not_grow_with_the_track(monkeypatch):
    """Blocks of ANALYSIS_BLOCK_S: 2 minutes peak at the memory of one block, where one whole
    analysis (STFT, chroma, descriptor features of all of it) peaked ~3x higher."""
    import tracemalloc

    from tracklens import audio
    from tracklens.dashboard import track

    sr = config.SAMPLE_RATE
    t = np.arange(120 * sr) / sr
    y = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)
    clip = audio.AudioClip(y=y, sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=120.0)
    track.analyse(audio.AudioClip(y=y[: 5 * sr], sr=sr, path=None, source_sr=sr, channels=1, source_duration_s=5.0))
    tracemalloc.start()
    try:
        result = track.analyse(clip)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak_mb < 120, peak_mb  # whole-track analysis of the same 2 minutes: ~270 MB
    assert result.comparable["duration_ms"] == 120_000 and result.log_mel.shape[1] <= track.MAX_DISPLAY_FRAMES
    assert result.comparable["key"] == 9 and result.frame_seconds * result.log_mel.shape[1] == pytest.approx(120, abs=1)


def test_block_bounds_cover_the_signal_without_short_blocks():
    from tracklens.dashboard import track

    sr = 100
    assert track.block_bounds(40 * sr, sr) == [(0, 4000)]
    bounds = track.block_bounds(50 * sr, sr)
    assert bounds == [(0, 2500), (2500, 5000)]
    long = track.block_bounds(601 * sr, sr)
    assert long[0][0] == 0 and long[-1][1] == 601 * sr and all(a[1] == b[0] for a, b in zip(long, long[1:]))
    assert min(b - a for a, b in long) >= 20 * sr


def test_check_layout_states_the_limits_once(pages):
    from tracklens.dashboard import data

    layout = pages["check"].layout()
    assert {"check-upload", "check-upload-ref", "check-status", "check-player", "check-results"} <= _ids(layout)
    limits = _text(_by_id(layout, "check-limits"))
    assert "up to 10 minutes (files up to 166 MB (10 minutes of 24-bit 48 kHz stereo WAV))" in limits
    assert limits.count("minutes") == 2 and "MB" in limits
    zone = _by_id(layout, "check-upload-zone")
    assert zone.children.max_size == 0  # dcc.Upload reads nothing; upload.js posts the file to the route
    assert getattr(zone, "data-max-bytes") == str(data.MAX_UPLOAD_BYTES)


def test_check_shows_your_track_first_with_units_and_ranks(app, pages, demo_catalogue):
    from tracklens.models import descriptors

    clip = _demo_clip(demo_catalogue)
    status, results, summary, player = _check(app, pages, clip.read_bytes(), clip.name)
    assert "check-ok" in _ids(status) and player["ok"] is True
    assert results[0].children[0].children == "Your track"  # the first thing shown
    rows = {f: _text(_by_id(results, f"check-card-{f}")) for f in (
        "tempo", "key", "loudness", "duration_ms", *descriptors.DESCRIPTORS)}
    assert re.search(r"tempo \d+ BPM P\d+ ", rows["tempo"])
    assert re.search(r"key [A-G]#? (major|minor) not ranked a category", rows["key"])
    assert re.search(r"loudness -?\d+\.\d LUFS not ranked .*Spotify's own dB measure", rows["loudness"])
    assert re.search(r"duration 0:06 not ranked .*excerpt", rows["duration_ms"])
    for name in ("acousticness", "energy"):
        assert re.search(rf"{name} 0\.\d\d ± 0\.\d\d P\d+(-P\d+)? {re.escape(descriptors.DESCRIPTOR_LABEL)}", rows[name])
    for name in ("danceability", "instrumentalness", "liveness", "speechiness", "valence"):
        assert re.search(rf"{name} not available not ranked held-out R² 0\.\d\d", rows[name]), rows[name]
    assert "e+0" not in _text(results)  # no duration as 2.4e+05 ms


def test_loudness_is_never_ranked_among_spotify_loudness(app, pages, demo_catalogue):
    """An upload's LUFS is not Spotify's loudness: the hit profile ranks no loudness (a normally
    mastered -8.4 LUFS track landed at P7 of the Top Hits' Spotify values)."""
    from tracklens.dashboard import compare, data

    clip = _demo_clip(demo_catalogue)
    _, results, _, _ = _check(app, pages, clip.read_bytes(), clip.name)
    profile = _figure(results, "check-profile")
    assert [tick.split("<br>")[0] for tick in profile.data[0].y] == ["tempo", "acousticness", "energy"]
    upload = compare.Upload(comparable={"tempo": 120.0, "loudness": -8.4, "key": 9, "mode": 0, "duration_ms": 200_000},
                            duration_s=200.0)
    loudness = next(r for r in compare.your_track(upload, data.charts()) if r.feature == "loudness")
    assert loudness.value == "-8.4 LUFS" and loudness.percentile is None and "median" in loudness.note


def test_duration_is_ranked_only_for_a_whole_track(app):
    from tracklens.dashboard import compare, data

    charts = data.charts()
    shortest = charts["duration_ms"].min() / 1000
    row = {"tempo": 120.0, "loudness": -9.0, "key": 0, "mode": 1}

    def duration_row(seconds):
        upload = compare.Upload(comparable={**row, "duration_ms": seconds * 1000}, duration_s=seconds)
        return next(r for r in compare.your_track(upload, charts) if r.feature == "duration_ms")

    assert duration_row(30).percentile is None and "excerpt" in duration_row(30).note
    whole = duration_row(shortest + 60)
    assert whole.percentile is not None and whole.value == compare.minutes(shortest + 60)
    ref = compare.chart_reference()
    assert "duration_ms" not in ref.columns_for({**row, "duration_ms": 30_000}, whole_track=False)
    assert "duration_ms" in ref.columns_for({**row, "duration_ms": 300_000}, whole_track=True)


def test_neighbours_table_starts_with_the_track_in_chart_units(app, pages, demo_catalogue):
    clip = _demo_clip(demo_catalogue, 1)
    _, results, _, _ = _check(app, pages, clip.read_bytes(), clip.name)
    table = _by_id(results, "check-nearest")
    header = _text(table.children[1])
    assert header.startswith("track year distance tempo") and "key" in header
    rows = table.children[2].children
    assert len(rows) == 6 and rows[0].className == "you"
    assert _text(rows[0]).startswith(f"{clip.name} your track —")
    assert re.search(r"\d+ BPM .* [A-G]#? (major|minor)$", _text(rows[1]))


def _reference(rows: list[tuple[float, int, int]]):
    from tracklens.dashboard import compare

    table = pd.DataFrame(rows, columns=["tempo", "key", "mode"]).assign(name=[f"t{i}" for i in range(len(rows))],
                                                                        group="")
    return compare.Reference(table=table, continuous=["tempo"], kind="chart", source="test rows")


def test_keys_and_durations_read_as_words():
    from tracklens.dashboard import compare

    assert [compare.key_name(9, 0), compare.key_name(0, 1), compare.key_name(6.0, 1.0)] == \
        ["A minor", "C major", "F# major"]
    assert compare.key_name(-1, -1) == "no key detected"
    assert [compare.minutes(s) for s in (223.3, 30.0, 59.6, 600)] == ["3:43", "0:30", "1:00", "10:00"]
    assert compare.fifths_angle(9, 0) == compare.fifths_angle(0, 1)  # A minor sits on C major


def test_key_distance_follows_the_circle_of_fifths_and_mode_is_a_category():
    """Key 0-11 as a number put C (0) nearer F# (6) than G (7); on the circle of fifths G is C's
    neighbour, A minor (C major's relative) sits with C major, and mode counts as a category."""
    ref = _reference([(100.0, 0, 1), (100.0, 7, 1), (100.0, 6, 1), (100.0, 9, 0), (100.0, 11, 1), (90.0, 0, 1),
                      (110.0, 0, 1)])
    nearest = ref.nearest({"tempo": 100.0, "key": 0, "mode": 1}, ["tempo"], k=7)
    assert list(nearest["name"])[:2] == ["t0", "t1"]  # itself, then G major
    distance = dict(zip(nearest["name"], nearest["distance"]))
    assert distance["t1"] == pytest.approx(2 * np.sin(np.pi / 12))  # neighbours on the circle
    assert distance["t3"] == pytest.approx(1.0)  # A minor: same notes, other mode
    assert distance["t1"] < distance["t4"] < distance["t2"] == pytest.approx(2.0)  # G < B < F#


def test_real_clips_of_different_genres_get_different_neighbours(shared_data, demo_catalogue):
    """With key as a number and duration in the distance, jazz, hip-hop and classical clips all
    got the same five neighbours."""
    from tracklens.dashboard import data, track

    try:
        data.configure(None)  # the real Top Hits table
        clips = {g: sorted((shared_data / "gtzan" / "audio" / g).glob("*.opus"))[0]
                 for g in ("jazz", "hiphop", "classical")}
        nearest = {g: frozenset(track.check_track(c.read_bytes(), c.name).nearest["name"]) for g, c in clips.items()}
    finally:
        data.configure(demo_catalogue)
    assert all(len(names) == 5 for names in nearest.values())
    assert len(set(nearest.values())) == 3, nearest


def test_map_axes_say_what_the_components_load_on(app, pages, demo_catalogue):
    clip = _demo_clip(demo_catalogue, 2)
    _, results, _, _ = _check(app, pages, clip.read_bytes(), clip.name)
    chart_map = _figure(results, "check-map")
    for axis, n in ((chart_map.layout.xaxis, 1), (chart_map.layout.yaxis, 2)):
        assert re.fullmatch(rf"component {n} \(\d+%\):<br>[+-][\w# ↔]+, [+-][\w# ↔]+", axis.title.text), axis.title.text
    assert "circle of fifths" in _text(_by_id(results, "check-comparison-note"))


def test_hit_profile_draws_p0_and_keeps_labels_on_the_axis(app):
    """A feature at P0 still gets a bar and a label; a label near P95 goes left of the bar end,
    not past the axis (it overlapped the bar ends at P94-P96)."""
    from tracklens import explore
    from tracklens.dashboard import data

    charts = data.charts()
    tempo = charts["tempo"]
    track = {"tempo": tempo.min() - 1, "energy": float(np.percentile(charts["energy"], 95))}
    fig = explore.hit_profile(track, charts, features=["tempo", "energy"])
    widths = dict(zip((t.split("<br>")[0] for t in fig.data[0].y), fig.data[0].x))
    assert widths["tempo"] >= 1  # percentile points: visible
    labels = {a.y.split("<br>")[0]: a for a in fig.layout.annotations}
    assert labels["tempo"].text == "P0" and labels["tempo"].x > 0
    assert labels["energy"].text == "P95" and labels["energy"].xanchor == "right" and labels["energy"].x < 100
    assert labels["tempo"].y.endswith("BPM")


def test_blend_heading_once_bars_labelled_and_tags_caption_true(app, pages, demo_catalogue):
    clip = _demo_clip(demo_catalogue, 3)
    _, results, summary, _ = _check(app, pages, clip.read_bytes(), clip.name)
    titles = [_text(c) for c in _walk(results) if type(c).__name__ in ("H2", "H3")]
    titles += [_figure(results, i).layout.title.text or "" for i in ("check-blend", "check-timeline")]
    assert sum(t == "Genre blend" for t in titles) == 1, titles
    bars = _figure(results, "check-blend").data[0]
    assert list(bars.text) == [f"{100 * p:.0f}%" for p in summary["blend"].values()]
    caption = _text(_by_id(results, "check-tags-caption"))
    assert "four 3 s excerpts" not in _text(results) and "every window" in caption


def _walk(component):
    if isinstance(component, (list, tuple)):
        for c in component:
            yield from _walk(c)
    elif hasattr(component, "to_plotly_json"):
        yield component
        yield from _walk(getattr(component, "children", None))


def test_chart_label_years_come_from_the_data(app):
    from tracklens.dashboard import data

    years = data.charts()["year"]
    label = data.source_info()["label"]
    assert label.endswith(f", {years.min()}–{years.max()}") and "2000–2019" not in label


def _blend(**fields):
    from tracklens.models.blend import Blend

    timeline = pd.DataFrame({"start_s": [45.0, 48.0, 165.0], "end_s": [48.0, 51.0, 168.0], "rock": [0.6, 0.5, 0.4],
                             "pop": [0.4, 0.5, 0.6]})
    return Blend(path=None, genres=["rock", "pop"], probabilities=np.array([0.5, 0.5]), timeline=timeline,
                 duration_s=240.0, model="test", notes=["blended 9 s of the 240 s track: 45-51 s, 165-168 s"],
                 **fields)


def test_poor_fit_warns_and_names_wider_and_chart_genres(app, pages, demo_catalogue):
    import dataclasses

    from tracklens.dashboard import track
    from tracklens.models import chart_genres

    clip = _demo_clip(demo_catalogue)
    report = track.check_track(clip.read_bytes(), clip.name)
    poor = _blend(fit="poor", fit_reason="a wider genre far ahead of the ten (Soul music)",
                  wider_genres=[("Soul music", 0.41), ("Funk", 0.2)], chart_genres=[("R&B", 0.45), ("pop", 0.3)])
    section = pages["check"].blend_section(dataclasses.replace(report, genre_blend=poor))
    warning = _text(_by_id(section, "check-fit-warning"))
    assert "does not fit these ten genres" in warning and "Soul music (0.41)" in warning and "uncalibrated" in warning
    genres = _by_id(section, "check-chart-genres")
    assert chart_genres.LABEL in _text(genres) and "R&B 0.45" in _text(genres)
    assert re.search(r"R&B: \d+ chart hits", _text(genres)) and " — " in _text(genres)  # artist — song
    ok = pages["check"].blend_section(dataclasses.replace(report, genre_blend=_blend(fit="ok")))
    assert _by_id(ok, "check-fit-warning") is None


def test_timeline_draws_only_the_analysed_windows_on_the_whole_track(pages):
    from tracklens import explore

    blend = _blend()
    fig = explore.blend_timeline(blend.timeline, duration_s=240.0)
    assert list(fig.layout.xaxis.range) == [0, 240.0]
    rock = next(t for t in fig.data if t.name == "rock")
    assert list(rock.x) == [46.5, 49.5, 166.5] and list(rock.width) == [3.0, 3.0, 3.0]
    assert fig.layout.legend.orientation == "h"  # below the plot: a vertical one took half a phone's width
    line = _text(pages["check"].status_line(types.SimpleNamespace(filename="song.mp3", duration_s=240.0,
                                                                    genre_blend=blend)))
    assert line == "song.mp3: 4:00 analysed; genre blend: blended 9 s of the 240 s track: 45-51 s, 165-168 s."


@pytest.mark.parametrize("name, make, expected", [
    ("silence.wav", lambda: _wav_bytes(np.zeros(3 * config.SAMPLE_RATE, np.float32)), "silent"),
    ("blip.wav", lambda: _wav_bytes(0.5 * np.ones(2000, np.float32)), "too short"),
])
def test_check_refuses_bad_audio_with_one_line(app, pages, name, make, expected):
    status, results, summary, player = _check(app, pages, make(), name)
    assert results == [] and "check-error" in _ids(status) and player["ok"] is False
    message = _text(status)
    assert message.startswith(name) and expected in message and "\n" not in message
    assert "tracklens-uploads-" not in message


@pytest.mark.parametrize("error, shown", [
    (TracklensError("song.wav: unsupported channel count (3000)"), "song.wav: unsupported channel count (3000)"),
    (TracklensError("no audio stream"), "song.wav: no audio stream"),
])
def test_check_upload_shows_a_tracklens_error_as_it_is(app, pages, demo_catalogue, monkeypatch, error, shown):
    from tracklens.dashboard import track

    monkeypatch.setattr(track, "_check_track", _raises(error))
    status, results, _, _ = _check(app, pages, _demo_clip(demo_catalogue, 4).read_bytes(), "song.wav")
    assert _text(status) == shown and results == []


@pytest.mark.parametrize("error, detail", [(MemoryError(), "MemoryError"), (ValueError("Input must be finite"), "finite"),
                                           (KeyError("tempo"), "tempo")], ids=["MemoryError", "ValueError", "KeyError"])
def test_check_upload_hides_an_unexpected_error_and_logs_it(app, pages, demo_catalogue, monkeypatch, caplog,
                                                            error, detail):
    from tracklens.dashboard import track

    monkeypatch.setattr(track, "_check_track", _raises(error))
    with caplog.at_level("ERROR", logger=track.LOG.name):
        status, results, _, _ = _check(app, pages, _demo_clip(demo_catalogue, 5).read_bytes(), "song.wav")
    assert _text(status) == f"song.wav: {track.GENERIC_FAILURE}" and results == []
    assert detail not in _text(status) and type(error).__name__ not in _text(status)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
    assert len(logged) == 1 and "song.wav" in logged[0].getMessage()  # the traceback is in the server log


def _raises(error: BaseException):
    def fail(source, name):
        raise error
    return fail


def test_report_cache_keeps_only_the_last_few_uploads(monkeypatch):
    from tracklens.dashboard import track

    analysed = []
    monkeypatch.setattr(track, "_cache", collections.OrderedDict())
    monkeypatch.setattr(track, "_check_track",
                        lambda source, name: analysed.append(name) or types.SimpleNamespace(filename=name))
    for i in range(6):
        track.check_track(f"upload {i}".encode(), f"{i}.wav")
    assert len(track._cache) == track._CACHE_SIZE <= 3
    track.check_track(b"upload 5", "5.wav")  # the newest is still cached
    assert len(analysed) == 6
    track.check_track(b"upload 0", "0.wav")  # the oldest was dropped
    assert len(analysed) == 7


def test_checks_beyond_the_limit_wait_for_a_free_slot(monkeypatch):
    from tracklens.dashboard import track

    running, peak, lock = 0, 0, threading.Lock()

    def slow_check(source, name):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1
        return types.SimpleNamespace(filename=name)

    monkeypatch.setattr(track, "_cache", collections.OrderedDict())
    monkeypatch.setattr(track, "_check_track", slow_check)
    n = track.MAX_CONCURRENT_CHECKS + 3
    with ThreadPoolExecutor(n) as pool:
        reports = list(pool.map(lambda i: track.check_track(f"upload {i}".encode(), f"{i}.wav"), range(n)))
    assert [r.filename for r in reports] == [f"{i}.wav" for i in range(n)]
    assert peak == track.MAX_CONCURRENT_CHECKS


def test_one_check_per_core_runs_at_once():
    """One check per two cores ran four uploads on 2 cores one after another (p95 4-7x one check)."""
    import os

    from tracklens.dashboard import track

    assert os.cpu_count() and track.MAX_CONCURRENT_CHECKS == os.cpu_count()


def test_server_runs_tensorflow_fast_and_plotly_merges_its_template_once(app):
    """oneDNN on (the musicnn blend ~3x faster) and one thread per op unless the environment says
    otherwise; the default template merged once (merging "plotly_white+tracklens" for every
    figure was half of a check page's rendering, under the GIL)."""
    import plotly.graph_objects as go
    import plotly.io as pio

    from tracklens.dashboard import app as app_module

    assert app_module.SERVER_ENV["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert app_module.SERVER_ENV["TF_NUM_INTRAOP_THREADS"] == "1"
    assert "+" not in pio.templates.default
    layout = go.Figure().layout.template.layout
    assert list(layout.colorway) == list(app_module.OKABE_ITO) and layout.plot_bgcolor == "white"


def test_display_name_never_keeps_a_path():
    from tracklens.dashboard import track

    assert track.display_name("../../etc/passwd.wav") == "passwd.wav"
    assert track.display_name("C:\\music\\song.mp3") == "song.mp3"
    assert track.display_name(None) == "upload"


def test_check_refuses_too_long_after_decoding(app, pages, monkeypatch):
    """A file whose header says less than it holds is still stopped by the decoder's limit."""
    from tracklens.dashboard import data

    y = 0.3 * np.sin(np.arange(4 * config.SAMPLE_RATE) * 0.05).astype(np.float32)
    code, answer = _upload(app, _wav_bytes(y), "long.wav")
    monkeypatch.setattr(data, "MAX_UPLOAD_SECONDS", 2.0)
    status, _, _, _ = pages["check"].check_upload({"id": answer["id"], "name": "long.wav"})
    assert "long.wav: too long" in _text(status)


def test_chart_reference_uses_full_audio_features_when_catalogue_has_them(tmp_path, demo_catalogue):
    from tracklens import features
    from tracklens.dashboard import compare, data

    rng = np.random.default_rng(1)
    rows = pd.DataFrame(rng.normal(size=(12, len(features.SUMMARY_COLUMNS))), columns=list(features.SUMMARY_COLUMNS))
    rows = rows.assign(track_id=[f"t{i}" for i in range(12)], label=["a", "b"] * 6, segment=-1,
                       tempo=120.0, loudness=-9.0, key=1, mode=1, duration_ms=30000)
    root = tmp_path / "cat"
    (root / "audio").mkdir(parents=True)
    (root / "charts.csv").write_text((demo_catalogue / "charts.csv").read_text())
    rows.to_parquet(root / "features.parquet")
    try:
        data.configure(root)
        ref = compare.chart_reference()
        assert ref.kind == "audio" and len(ref.table) == 12 and "loudness" in ref.continuous
        assert set(features.SUMMARY_COLUMNS) <= set(ref.continuous)
        row = rows.iloc[3].to_dict()
        columns = ref.columns_for(row, whole_track=False)
        nearest = ref.nearest(row, columns)
        assert nearest["name"].iloc[0] == "t3" and nearest["distance"].iloc[0] == pytest.approx(0.0, abs=1e-6)
        assert ref.chart_map(columns).coords.shape == (12, 2)
    finally:
        data.configure(demo_catalogue)


# --- command line -------------------------------------------------------------------------


def test_dashboard_command_rejects_missing_data_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tracklens.cli", "dashboard", "--data",
                             str(tmp_path / "nope")], capture_output=True, text=True, timeout=120,
                            cwd=config.PACKAGE_DIR)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tracklens: error: --data {tmp_path / 'nope'}: no such folder"


def test_dashboard_help_has_examples():
    result = subprocess.run([sys.executable, "-m", "tracklens.cli", "dashboard", "--help"],
                            capture_output=True, text=True, timeout=60, cwd=config.PACKAGE_DIR)
    assert result.returncode == 0 and "--port" in result.stdout and "tracklens dashboard --data" in result.stdout


def test_serve_refuses_a_busy_port_with_one_line():
    import socket

    from tracklens.dashboard import app as app_module

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(TracklensError, match=f"cannot listen on 127.0.0.1:{port}"):
            app_module._check_port_free("127.0.0.1", port)


def test_check_upload_decodes_m4a(app, pages, demo_catalogue, tmp_path):
    """M4A goes through ffmpeg; the page treats it like any upload."""
    import os
    import shutil

    if shutil.which("ffmpeg") is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg missing in CI: `.ci/system-deps` should have installed it")
        pytest.skip("ffmpeg not installed")
    clip = _demo_clip(demo_catalogue, 2)
    m4a = tmp_path / "song.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c:a", "aac", "-b:a", "96k", str(m4a)], check=True,
                   timeout=60)
    status, results, summary, _ = _check(app, pages, m4a.read_bytes(), "song.m4a")
    assert "check-ok" in _ids(status), _text(status)
    assert _text(status).startswith("song.m4a: 0:06 analysed")
