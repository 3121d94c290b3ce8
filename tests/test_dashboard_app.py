"""The Dash app (dashboard/app.py) and the `tracklens dashboard` command: navigation, server defaults."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from tracklens import config
from tracklens.errors import TracklensError

from dashboard_helpers import _ids


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


def test_serve_refuses_a_busy_port_with_one_line():
    import socket

    from tracklens.dashboard import app as app_module

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        with pytest.raises(TracklensError, match=f"cannot listen on 127.0.0.1:{port}"):
            app_module._check_port_free("127.0.0.1", port)


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
