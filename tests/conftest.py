"""Shared fixtures. Tests that need ../shared/data use the `shared_data` fixture and skip without it."""

from __future__ import annotations

import os

import pytest

from tracklens import config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _home_restored(monkeypatch):
    """Every test ends with config's folders as it found them: ``--data-dir`` / $TRACKLENS_HOME
    through ``cli.main`` calls ``config.set_home`` for the process, which moved later tests' data
    folder (test_musicnn then no longer found the checkpoints it had been collected with)."""
    for name in [n for n in vars(config) if n == "HOME" or n.endswith("_DIR")]:
        monkeypatch.setattr(config, name, getattr(config, name))  # monkeypatch restores each on teardown


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; skips the test cleanly when it is absent."""
    if not config.SHARED_DATA_DIR.is_dir():
        pytest.skip(f"real data not found at {config.SHARED_DATA_DIR}")
    return config.SHARED_DATA_DIR


@pytest.fixture(scope="session")
def gtzan_clip(shared_data):
    """``gtzan_clip("rock.00016", "full30s")``: the file ``manifest.csv`` lists for that clip id.

    Tests name their real clips by id and kind instead of globbing ``audio*/``, so the shared data
    growing (a full clip replacing a snippet of the same id) changes no test's sample silently:
    a clip that moved or changed kind fails here, saying what the manifest holds now.
    """
    import pandas as pd

    manifest = pd.read_csv(shared_data / "gtzan" / "manifest.csv").set_index("clip")

    def find(clip_id: str, kind: str):
        if clip_id not in manifest.index:
            pytest.fail(f"GTZAN clip {clip_id} is not in {shared_data / 'gtzan' / 'manifest.csv'}: "
                        f"pick another clip id of kind {kind!r} from it")
        row = manifest.loc[clip_id]
        path = shared_data / row["path"].removeprefix("shared/data/")
        if row["kind"] != kind:
            pytest.fail(f"GTZAN clip {clip_id} is now kind {row['kind']!r} ({path}), not {kind!r}: "
                        f"the shared data changed; pick another clip id of kind {kind!r} from manifest.csv")
        return path

    return find


# Small enough to build in ~2 s, big enough for a model to beat chance on held-out clips.
DEMO_TEST_SIZE = {"genres": 6, "clips_per_genre": 8, "clip_seconds": 6.0, "chart_rows": 300}


@pytest.fixture(scope="session")
def demo_catalogue(tmp_path_factory):
    """Path to a small demo catalogue built once per session (see DEMO_TEST_SIZE).

    Layout: ``audio/<genre>/<genre>.NNNNN.wav`` (6 genres x 8 clips x 6 s, 22 050 Hz mono) and
    ``charts.csv`` (Top Hits schema, ~310 rows). Treat it as read-only: it is shared.
    """
    from tracklens import demo_data

    root = tmp_path_factory.mktemp("demo_catalogue")
    demo_data.make_demo_catalogue(root, seed=config.DEFAULT_SEED, **DEMO_TEST_SIZE)
    return root


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``tracklens ARGS`` in-process through ``cli.main`` (the real error handling).

    Returns ``(exit_code, stdout, stderr)``; arguments may be paths or numbers.
    """
    import sys

    from tracklens import cli

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["tracklens", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            cli.main()
        captured = capsys.readouterr()
        return exc.value.code, captured.out, captured.err

    return run


# --- genre models trained once per session on the demo catalogue's features --------------------

KERAS = ("cnn", "lstm", "lstm_cnn", "linear", "mlp")


@pytest.fixture(scope="session")
def demo_features(demo_catalogue, tmp_path_factory):
    from tracklens import features

    out = tmp_path_factory.mktemp("demo_features") / "features.parquet"
    features.extract_features(demo_catalogue / "audio", out=out, segment_seconds=3.0, jobs=1,
                              cache_dir=out.parent / "cache", progress=False)
    return out


@pytest.fixture(scope="session")
def trained(demo_features, tmp_path_factory):
    from tracklens.models import train

    out = tmp_path_factory.mktemp("demo_models")
    results = train.train_models(demo_features, [*KERAS, "logreg", "random_forest"], out_dir=out, epochs=20,
                                 seed=config.DEFAULT_SEED, valid_fraction=0.34, log=lambda line: None,
                                 params={"cnn": {"filters": (8, 16, 32)}, "lstm": {"units": (32, 16)}})
    return out, {r["name"]: r for r in results}


# --- the dashboard app on the demo catalogue --------------------------------------------------

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
