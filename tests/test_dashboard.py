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


def _data_uri(raw: bytes, mime: str = "audio/wav") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


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


def test_decode_contents_checks_type_size_and_encoding(pages, monkeypatch):
    from tracklens.dashboard import data, track

    raw = b"RIFF" + bytes(100)
    assert track.decode_contents(_data_uri(raw), "a.wav") == raw
    with pytest.raises(track.UploadError, match=r"notes\.txt: unsupported file type '\.txt'"):
        track.decode_contents(_data_uri(raw), "notes.txt")
    with pytest.raises(track.UploadError, match="malformed"):
        track.decode_contents("not a data uri", "a.wav")
    with pytest.raises(track.UploadError, match="malformed"):
        track.decode_contents("data:audio/wav;base64,@@@@", "a.wav")
    with pytest.raises(track.UploadError, match="empty file"):
        track.decode_contents("data:audio/wav;base64,", "a.wav")
    monkeypatch.setattr(data, "MAX_UPLOAD_BYTES", 50)
    with pytest.raises(track.UploadError, match="a.wav: too large"):
        track.decode_contents(_data_uri(raw), "a.wav")


def test_display_name_never_keeps_a_path():
    from tracklens.dashboard import track

    assert track.display_name("../../etc/passwd.wav") == "passwd.wav"
    assert track.display_name("C:\\music\\song.mp3") == "song.mp3"
    assert track.display_name(None) == "upload"


def test_check_upload_gives_blend_and_comparison(pages, demo_catalogue):
    from tracklens.dashboard import data

    clip = sorted((demo_catalogue / "audio").glob("*/*.wav"))[0]
    status, results, summary = pages["check"].check_upload(_data_uri(clip.read_bytes()), clip.name)
    assert "check-ok" in _ids(status)
    ids = _ids(results)
    assert {"check-blend", "check-blend-label", "check-timeline", "check-spectrogram", "check-chromagram",
            "check-comparison-note", "check-profile", "check-map", "check-nearest"} <= ids, ids
    model = data.default_model()
    blend = summary["blend"]
    assert list(blend) and set(blend) == set(model.genres)
    assert sum(blend.values()) == pytest.approx(1.0, abs=1e-3)
    top = max(blend, key=blend.get)
    assert summary["blend_label"].split("-")[0] == top
    text = _text(results)
    assert "danceability" in text and "tempo" in text  # says what was and was not compared


def test_check_report_nearest_and_map(pages, demo_catalogue):
    from tracklens.dashboard import track

    clip = sorted((demo_catalogue / "audio").glob("*/*.wav"))[1]
    report = track.check_track(clip.read_bytes(), clip.name)
    ref = track.chart_reference()
    assert len(report.nearest) == track.N_NEAREST
    assert report.nearest["distance"].is_monotonic_increasing
    z = ref.project(report.track_features)
    brute = np.sqrt(((ref.scaler.transform(ref.table[ref.columns].to_numpy()) - z) ** 2).sum(axis=1))
    assert report.nearest["distance"].iloc[0] == pytest.approx(brute.min())
    assert report.map_xy == pytest.approx(tuple(ref.pca.transform(z)[0]))
    assert report.log_mel.shape[0] == config.N_MELS and report.chroma.shape[0] == 12
    assert report.comparable["duration_ms"] == pytest.approx(6000, abs=50)


@pytest.mark.parametrize("name, make, expected", [
    ("corrupt.wav", lambda: b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(2048), "corrupt.wav"),
    ("silence.wav", lambda: _wav_bytes(np.zeros(3 * config.SAMPLE_RATE, np.float32)), "silent"),
    ("blip.wav", lambda: _wav_bytes(0.5 * np.ones(2000, np.float32)), "too short"),
])
def test_check_upload_refuses_bad_audio_with_one_line(pages, name, make, expected):
    status, results, summary = pages["check"].check_upload(_data_uri(make()), name)
    assert results == [] and "check-error" in _ids(status)
    message = _text(status)
    assert message.startswith(name) and expected in message and "\n" not in message


@pytest.mark.parametrize("error, shown", [
    (TracklensError("song.wav: unsupported channel count (3000)"), "song.wav: unsupported channel count (3000)"),
    (TracklensError("no audio stream"), "song.wav: no audio stream"),
])
def test_check_upload_shows_a_tracklens_error_as_it_is(pages, monkeypatch, error, shown):
    from tracklens.dashboard import track

    monkeypatch.setattr(track, "_check_track", _raises(error))
    status, results, _ = pages["check"].check_upload(_data_uri(b"RIFF" + bytes(64)), "song.wav")
    assert _text(status) == shown and results == []


@pytest.mark.parametrize("error, detail", [(MemoryError(), "MemoryError"), (ValueError("Input must be finite"), "finite"),
                                           (KeyError("tempo"), "tempo")], ids=["MemoryError", "ValueError", "KeyError"])
def test_check_upload_hides_an_unexpected_error_and_logs_it(pages, monkeypatch, caplog, error, detail):
    from tracklens.dashboard import track

    monkeypatch.setattr(track, "_check_track", _raises(error))
    with caplog.at_level("ERROR", logger=track.LOG.name):
        status, results, _ = pages["check"].check_upload(_data_uri(b"RIFF" + bytes(64)), "song.wav")
    assert _text(status) == f"song.wav: {track.GENERIC_FAILURE}" and results == []
    assert detail not in _text(status) and type(error).__name__ not in _text(status)
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
    assert len(logged) == 1 and "song.wav" in logged[0].getMessage()  # the traceback is in the server log


def _raises(error: BaseException):
    def fail(raw, name):
        raise error
    return fail


def test_report_cache_keeps_only_the_last_few_uploads(monkeypatch):
    from tracklens.dashboard import track

    analysed = []
    monkeypatch.setattr(track, "_cache", collections.OrderedDict())
    monkeypatch.setattr(track, "_check_track",
                        lambda raw, name: analysed.append(name) or types.SimpleNamespace(filename=name))
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

    def slow_check(raw, name):
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


def test_check_upload_refuses_too_long(pages, monkeypatch):
    from tracklens.dashboard import data

    monkeypatch.setattr(data, "MAX_UPLOAD_SECONDS", 2.0)
    y = 0.3 * np.sin(np.arange(4 * config.SAMPLE_RATE) * 0.05).astype(np.float32)
    status, results, _ = pages["check"].check_upload(_data_uri(_wav_bytes(y)), "long.wav")
    assert "long.wav: too long" in _text(status)


def test_check_layout_states_limits(pages):
    from tracklens.dashboard import data

    layout = pages["check"].layout()
    assert {"check-upload", "check-status", "check-player", "check-results"} <= _ids(layout)
    assert f"{data.MAX_UPLOAD_MB} MB" in _text(layout)
    upload = next(c for c in layout.children if getattr(c, "id", None) == "check-upload-zone").children
    assert upload.max_size == data.MAX_UPLOAD_BYTES


def test_chart_reference_uses_full_audio_features_when_catalogue_has_them(tmp_path, demo_catalogue, monkeypatch):
    from tracklens import features
    from tracklens.dashboard import data, track

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
        ref = track.chart_reference()
        assert ref.kind == "audio" and len(ref.table) == 12 and ref.coords.shape == (12, 2)
        assert set(features.SUMMARY_COLUMNS) <= set(ref.columns)
        dist, idx = ref.neighbours.kneighbors(ref.project(rows.iloc[3].to_dict()))
        assert ref.table["name"].iloc[idx[0][0]] == "t3" and dist[0][0] == pytest.approx(0.0, abs=1e-6)
    finally:
        data.configure(demo_catalogue)


# --- command line -------------------------------------------------------------------------


def test_dashboard_command_rejects_missing_data_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tracklens.cli", "dashboard", "--data",
                             str(tmp_path / "nope")], capture_output=True, text=True, timeout=120,
                            cwd=config.PROJ_ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tracklens: error: --data {tmp_path / 'nope'}: no such folder"


def test_dashboard_help_has_examples():
    result = subprocess.run([sys.executable, "-m", "tracklens.cli", "dashboard", "--help"],
                            capture_output=True, text=True, timeout=60, cwd=config.PROJ_ROOT)
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


def test_check_upload_decodes_m4a(pages, demo_catalogue, tmp_path):
    """M4A goes through ffmpeg (a private temporary folder); the page treats it like any upload."""
    import os
    import shutil

    if shutil.which("ffmpeg") is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg missing in CI: `.ci/system-deps` should have installed it")
        pytest.skip("ffmpeg not installed")
    clip = sorted((demo_catalogue / "audio").glob("*/*.wav"))[2]
    m4a = tmp_path / "song.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c:a", "aac", "-b:a", "96k", str(m4a)], check=True,
                   timeout=60)
    status, results, summary = pages["check"].check_upload(_data_uri(m4a.read_bytes(), "audio/mp4"), "song.m4a")
    assert "check-ok" in _ids(status), _text(status)
    assert "song.m4a: 6.0 s analysed" in _text(status) or "song.m4a: 6.1 s analysed" in _text(status)
