"""One place for paths, audio constants and environment settings.

Everything else imports from here; nothing here imports project code.
Secrets are read from the environment (or a `.env` file in the tracklens home) and are never
stored in module globals that might be logged: use :func:`spotify_credentials` when needed.

Two kinds of folders:
- **shipped, read-only** (inside the installed package): the default models and pretrained
  weights, ``PACKAGE_DIR / "models"``. A wheel carries them, so ``tracklens predict`` gives the
  same answer from any folder.
- **writable** (data, cache, reports, trained models): under the *tracklens home*, which is
  ``$TRACKLENS_HOME`` (or ``tracklens --data-dir DIR``), else the repository checkout when the
  command runs inside it (``data/`` and ``reports/`` beside ``prepare.py``, as Cookiecutter Data
  Science lays them out), else the user data folder (``platformdirs``, e.g.
  ``~/.local/share/tracklens``). Nothing is ever written inside site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# A source checkout (an editable install, or the repo itself) holds pyproject.toml; a wheel does not.
REPO_ROOT: Path | None = PACKAGE_DIR if (PACKAGE_DIR / "pyproject.toml").is_file() else None

# Shipped with the package (read-only): default models and pretrained weights.
MODELS_DIR = PACKAGE_DIR / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "default"  # the shipped model: one EfficientAT pass + linear head (models/default/card.json)
DEFAULT_FAST_MODEL_DIR = MODELS_DIR / "default-fast"  # one EfficientAT pass + linear head (the same model since issue 20)
# the shipped 57-feature model, for feature tables (predict/evaluate --features-csv), tracked in git
DEFAULT_TABLE_MODEL_DIR = MODELS_DIR / "default-table"
PRETRAINED_DIR = MODELS_DIR / "pretrained"


def default_home(cwd: Path | None = None) -> Path:
    """The writable tracklens home: $TRACKLENS_HOME, else the checkout we run inside, else the user data folder."""
    env = os.environ.get("TRACKLENS_HOME", "").strip()
    if env:
        return Path(env).expanduser().resolve()
    cwd = (cwd or Path.cwd()).resolve()
    if REPO_ROOT is not None and (cwd == REPO_ROOT or REPO_ROOT in cwd.parents):
        return REPO_ROOT
    import platformdirs

    return Path(platformdirs.user_data_dir("tracklens", appauthor=False))


def set_home(home: str | Path) -> None:
    """Point every writable folder below ``home`` (what ``--data-dir`` and $TRACKLENS_HOME do).

    Module-level names are rebound, so code that reads ``config.DATA_DIR`` at call time follows.
    """
    global HOME, DATA_DIR, RAW_DATA_DIR, INTERIM_DATA_DIR, PROCESSED_DATA_DIR, CACHE_DIR
    global REPORTS_DIR, FIGURES_DIR, TRAINED_MODELS_DIR, SHARED_DATA_DIR
    HOME = Path(home).expanduser().resolve()
    # Cookiecutter-style data flow: raw is immutable input, interim is cache, processed is output.
    DATA_DIR = Path(os.environ.get("TRACKLENS_DATA_DIR", HOME / "data"))
    RAW_DATA_DIR = DATA_DIR / "raw"
    INTERIM_DATA_DIR = DATA_DIR / "interim"
    PROCESSED_DATA_DIR = DATA_DIR / "processed"
    CACHE_DIR = Path(os.environ.get("TRACKLENS_CACHE_DIR", INTERIM_DATA_DIR / "cache"))
    REPORTS_DIR = HOME / "reports"
    FIGURES_DIR = REPORTS_DIR / "figures"
    TRAINED_MODELS_DIR = Path(os.environ.get("TRACKLENS_MODELS_DIR", DATA_DIR / "models"))
    # The real public data lives beside the repository (../shared/data), never inside it.
    SHARED_DATA_DIR = Path(os.environ.get("TRACKLENS_SHARED_DATA", (REPO_ROOT or HOME).parent / "shared" / "data"))


HOME: Path
DATA_DIR: Path
RAW_DATA_DIR: Path
INTERIM_DATA_DIR: Path
PROCESSED_DATA_DIR: Path
CACHE_DIR: Path
REPORTS_DIR: Path
FIGURES_DIR: Path
TRAINED_MODELS_DIR: Path
SHARED_DATA_DIR: Path
set_home(default_home())

def project_relative(path: str | Path) -> str:
    """``path`` as a model card records it: relative to the project (the checkout, else the home)
    when it lies inside the folder that holds the project (``../shared/data/...``), else its name
    alone, so a shipped card never names a build machine's folders."""
    target, base = Path(path).expanduser().resolve(), (REPO_ROOT or HOME)
    if target == base.parent or base.parent in target.parents:
        return os.path.relpath(target, base)
    return target.name


# Audio analysis constants, shared by features, models and visuals.
SAMPLE_RATE = 22_050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
N_MFCC = 20
SEGMENT_SECONDS = 3.0
MIN_DURATION_S = 1.0
MAX_DURATION_S = 20 * 60.0  # longer input is truncated with a note, never read whole
FEATURE_MAX_DURATION_S = 10 * 60.0  # analysed per file by `features` (~1 GB peak per worker at 10 min)

# GTZAN's ten genres, in the order every model's outputs use.
GTZAN_GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)

DEFAULT_SEED = 42

# Spotify's audio-feature columns (its audio-features endpoint; the chart table), in the chart
# table's order: the one list every module derives its feature columns from.
SPOTIFY_AUDIO_FEATURES = (
    "danceability", "energy", "key", "loudness", "mode", "speechiness",
    "acousticness", "instrumentalness", "liveness", "valence", "tempo",
)
#: The ones that are categories coded as integers (pitch class, major/minor), not quantities.
SPOTIFY_CODED_FEATURES = ("key", "mode")
#: The continuous ones, in the same order.
SPOTIFY_CONTINUOUS_FEATURES = tuple(c for c in SPOTIFY_AUDIO_FEATURES if c not in SPOTIFY_CODED_FEATURES)
#: Spotify's perceptual 0-1 scores: no audio definition (the feature engine cannot compute them;
#: models.descriptors estimates some), unlike loudness (dB), tempo (BPM), key and mode.
SPOTIFY_PERCEPTUAL_FEATURES = tuple(c for c in SPOTIFY_CONTINUOUS_FEATURES if c not in ("loudness", "tempo"))

# Kaggle "Top Hits Spotify from 2000-2019" (songs_normalize.csv) columns, in file order.
# Shared by demo_data (writes it), acquire (reads it) and prepare (validates it).
CHART_COLUMNS = (
    "artist", "song", "duration_ms", "explicit", "year", "popularity", *SPOTIFY_AUDIO_FEATURES, "genre",
)
#: The chart table's continuous columns a figure draws (key/mode/explicit are codes).
CHART_CONTINUOUS_FEATURES = (*SPOTIFY_CONTINUOUS_FEATURES, "duration_ms")


def load_dotenv_once() -> None:
    """Load `HOME/.env` into the environment without overriding what is already set."""
    try:
        from dotenv import load_dotenv
    except ImportError:  # python-dotenv is a pinned dependency; stay importable without it
        return
    load_dotenv(HOME / ".env", override=False)


def spotify_credentials() -> tuple[str, str] | None:
    """Return ``(client_id, client_secret)`` from the environment or `.env`, or None if unset."""
    load_dotenv_once()
    client_id = os.environ.get("SPOTIPY_CLIENT_ID", "").strip()
    client_secret = os.environ.get("SPOTIPY_CLIENT_SECRET", "").strip()
    if not client_id or not client_secret:
        return None
    return client_id, client_secret
