"""The notebooks: stripped of outputs in git, free of absolute paths and secrets, and they run.

Each notebook is executed top to bottom with nbclient (the venv's python3 kernel) on the demo
catalogue, in a private tracklens home (no evaluation report); a failing cell fails the test with
the cell's error, and each notebook must print what it is about and draw every figure it promises.
"""

from __future__ import annotations

import json
import re

import pytest

from tracklens import config

NOTEBOOK_DIR = config.PACKAGE_DIR / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 240
DEMO_NOTE = "demo data: synthetic chart table and synthesised audio"


def _shipped_model_line() -> str:
    card = json.loads((config.DEFAULT_MODEL_DIR / "card.json").read_text())
    return f"{card['name']}: {card['architecture']} on "


# What each notebook prints on the demo catalogue, and how many figures it draws (one per
# plotting call: 01 six, 02 ten views, 03 ROC + confusion + reliability + blend bar + timeline).
EXPECTED_OUTPUT = {
    "01_charts_popularity.ipynb": (lambda: [DEMO_NOTE, "association with popularity", " tracks from ",
                                            "5-fold CV grouped by artist"], 6),
    "02_audio_visuals.ipynb": (lambda: [DEMO_NOTE, " s at 22050 Hz, "], 10),
    "03_genre_models.ipynb": (lambda: [_shipped_model_line(), "No comparison table under reports/ yet",
                                       " (folder "], 5),
    # 04 on replayed Spotify/Deezer answers (tests/test_playlist.py's): 3 tracks, Deezer has 2 previews.
    "04_sort_your_playlist.ipynb": (lambda: ["3 new tracks, 0 already fetched, 2 skipped",
                                             "Spotify's audio features: closed to this app (403)",
                                             "2 downloaded, 0 already there, 1 failed",
                                             "2 previews analysed now, 0 from the cache, 0 failed"], 2),
}


def test_notebooks_are_numbered_and_present():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["01_charts_popularity.ipynb", "02_audio_visuals.ipynb", "03_genre_models.ipynb",
                     "04_sort_your_playlist.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_clean(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, f"{path.name}: outputs not stripped"
        assert not re.search(r"(?<![\w.])/(work|home|Users|tmp|root)/", source), f"{path.name}: absolute path"
        assert not re.search(r"SPOTIPY_CLIENT_SECRET|client_secret\s*=", source), f"{path.name}: secret"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.fixture
def demo_environment(demo_catalogue, tmp_path, monkeypatch):
    """Kernels see no shared data and find the session's demo catalogue as data/demo."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "demo").symlink_to(demo_catalogue, target_is_directory=True)
    monkeypatch.setenv("TRACKLENS_HOME", str(tmp_path))  # its reports/ is empty
    monkeypatch.setenv("TRACKLENS_SHARED_DATA", str(tmp_path / "no-shared-data"))
    monkeypatch.setenv("TRACKLENS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebooks choose inline themselves
    return data_dir


#: An IPython start-up file for the kernel of notebook 04: Spotify and Deezer answer from the shaped
#: responses of tests/test_playlist.py (`responses` refuses any other URL), with generated previews.
REPLAY_STARTUP = """
import sys
sys.path.insert(0, {tests!r})
import responses
from test_playlist import T1, T3, deezer, generated_mp3, spotify

_replay = responses.RequestsMock(assert_all_requests_are_fired=False)
_replay.start()
spotify(_replay)
deezer(_replay, {{T1: generated_mp3("rock", 1), T3: generated_mp3("classical", 2)}})
"""


@pytest.fixture
def replayed_spotify(demo_environment, tmp_path, monkeypatch):
    """The kernel sees a playlist through replayed answers, and fake credentials (never printed)."""
    from pathlib import Path

    from test_playlist import PLAYLIST, SECRET

    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-replay.py").write_text(REPLAY_STARTUP.format(tests=str(Path(__file__).parent)))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("TRACKLENS_PLAYLIST", f"https://open.spotify.com/playlist/{PLAYLIST}?si=abc")
    return SECRET


@pytest.mark.slow  # a fresh kernel per notebook; ~15-40 s each
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_demo_data(path, demo_environment, request):
    import nbformat

    secret = request.getfixturevalue("replayed_spotify") if path.name.startswith("04_") else None
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()  # raises at the first cell that fails
    except CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell failed:\n{str(exc)[-2000:]}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    expected_lines, expected_figures = EXPECTED_OUTPUT[path.name]
    for line in expected_lines():
        assert line in text, f"{path.name}: its output lacks {line!r}:\n{text[-1500:]}"
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == expected_figures, f"{path.name}: drew {len(figures)} figures"
    if secret is not None:
        assert secret not in json.dumps([c.get("outputs", []) for c in nb.cells])
