"""One place for paths, audio constants and environment settings.

Everything else imports from here; nothing here imports project code.
Secrets are read from the environment (or a `.env` file at the project root) and are never
stored in module globals that might be logged: use :func:`spotify_credentials` when needed.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parent

# Cookiecutter-style data flow: raw is immutable input, interim is cache, processed is output.
DATA_DIR = Path(os.environ.get("TRACKLENS_DATA_DIR", PROJ_ROOT / "data"))
RAW_DATA_DIR = DATA_DIR / "raw"
INTERIM_DATA_DIR = DATA_DIR / "interim"
PROCESSED_DATA_DIR = DATA_DIR / "processed"
CACHE_DIR = Path(os.environ.get("TRACKLENS_CACHE_DIR", INTERIM_DATA_DIR / "cache"))
REPORTS_DIR = PROJ_ROOT / "reports"
FIGURES_DIR = REPORTS_DIR / "figures"
MODELS_DIR = PROJ_ROOT / "models"
TRAINED_MODELS_DIR = Path(os.environ.get("TRACKLENS_MODELS_DIR", DATA_DIR / "models"))
DEFAULT_MODEL_DIR = MODELS_DIR / "default"  # the shipped model (musicnn embeddings + linear head), tracked in git
# the shipped 57-feature model, for feature tables (predict/evaluate --features-csv), tracked in git
DEFAULT_TABLE_MODEL_DIR = MODELS_DIR / "default-table"

# The real public data lives beside the repository, never inside it.
SHARED_DATA_DIR = Path(os.environ.get("TRACKLENS_SHARED_DATA", PROJ_ROOT.parent / "shared" / "data"))

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

# Kaggle "Top Hits Spotify from 2000-2019" (songs_normalize.csv) columns, in file order.
# Shared by demo_data (writes it), acquire (reads it) and prepare (validates it).
CHART_COLUMNS = (
    "artist", "song", "duration_ms", "explicit", "year", "popularity", "danceability",
    "energy", "key", "loudness", "mode", "speechiness", "acousticness", "instrumentalness",
    "liveness", "valence", "tempo", "genre",
)


def load_dotenv_once() -> None:
    """Load `PROJ_ROOT/.env` into the environment without overriding what is already set."""
    try:
        from dotenv import load_dotenv
    except ImportError:  # python-dotenv is a pinned dependency; stay importable without it
        return
    load_dotenv(PROJ_ROOT / ".env", override=False)


def spotify_credentials() -> tuple[str, str] | None:
    """Return ``(client_id, client_secret)`` from the environment or `.env`, or None if unset."""
    load_dotenv_once()
    client_id = os.environ.get("SPOTIPY_CLIENT_ID", "").strip()
    client_secret = os.environ.get("SPOTIPY_CLIENT_SECRET", "").strip()
    if not client_id or not client_secret:
        return None
    return client_id, client_secret
