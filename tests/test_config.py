"""config.py: `set_home` (``--data-dir``, $TRACKLENS_HOME) moves every writable folder, and the
modules that write there read the folder when they write, not when they were imported."""

from __future__ import annotations

import pytest
import responses

from tracklens import config
from tracklens.acquire.previews import previews_dir
from tracklens.acquire.spotify import acquire_spotify, spotify_client

from test_acquire_spotify import PLAYLIST, SECRET, TOKEN_URL, add_enrichment, add_playlist, fixture


@pytest.fixture
def new_home(tmp_path, monkeypatch):
    """``config.set_home(tmp_path / "home")`` for one test; the old folders come back afterwards
    (conftest's autouse ``_home_restored``)."""
    for variable in ("TRACKLENS_DATA_DIR", "TRACKLENS_CACHE_DIR", "TRACKLENS_MODELS_DIR"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "home"
    config.set_home(home)
    return home.resolve()


def test_acquire_spotify_writes_below_the_home_set_after_import(new_home):
    """acquire copied config.RAW_DATA_DIR at import: after set_home it still wrote to the old home."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.post(TOKEN_URL, json=fixture("spotify_token.json"))
        add_playlist(api)
        add_enrichment(api)
        client = spotify_client(credentials=("test-client-id", SECRET))
        result = acquire_spotify("playlist", PLAYLIST, client=client, progress=False)
    assert result.path == new_home / "data" / "raw" / "spotify_tracks.csv"
    assert result.path.is_file() and result.total_rows == 3


def test_every_default_folder_follows_set_home(new_home, monkeypatch):
    import importlib.util

    from tracklens.dashboard import data
    from tracklens.models import musicnn

    data_dir = new_home / "data"
    assert config.RAW_DATA_DIR == data_dir / "raw" and config.REPORTS_DIR == new_home / "reports"
    assert previews_dir() == data_dir / "raw" / "previews"
    assert data.demo_data_dir() == data_dir / "demo"
    # `make musicnn-weights` unpacks the original package below the interim folder of the home in use
    monkeypatch.delenv("TRACKLENS_MUSICNN_DIR", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)  # no installed musicnn
    unpacked = data_dir / "interim" / "musicnn-0.1.0" / "musicnn"
    (unpacked / musicnn.DEFAULT_MUSICNN).mkdir(parents=True)
    (unpacked / musicnn.DEFAULT_MUSICNN / ".index").write_bytes(b"")
    assert musicnn.find_original_package() == unpacked


HOME_AT_IMPORT = config.HOME


def test_a_cli_data_dir_moves_the_home_for_that_run(tmp_path, run_cli):
    code, out, err = run_cli("--data-dir", tmp_path / "elsewhere", "catalogue", "list")
    assert code in (0, None), err
    assert config.HOME == (tmp_path / "elsewhere").resolve()


def test_the_next_test_has_the_home_back():
    """Runs after the one above (file order): the fixtures in conftest restore config's folders."""
    assert config.HOME == HOME_AT_IMPORT
