"""The dashboard's read-only data layer: chart table, evaluation reports, default model.

Everything is loaded once per process and cached (`functools.lru_cache`); callbacks only read.
:func:`configure` picks the data folder (``--data``) and clears the caches (its own and those
registered with :func:`cleared_on_configure`); ``track.warm_up`` loads everything at start-up so
the first request does not pay for it.

Where the chart table comes from, in order: the ``--data`` folder (its `charts.csv` or Top Hits
`songs_normalize.csv`); the real Top Hits table in ``config.SHARED_DATA_DIR``; the demo
catalogue in :func:`demo_data_dir` (written by `make demo`).
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from tracklens import config
from tracklens.errors import TracklensError

# The upload limit is a duration: 10 minutes at any sample rate and bit depth the decoder takes,
# checked from the file's header before anything is decoded, and again by the decoder, which stops
# reading at the limit (a header that says less than the file holds costs no more than the limit).
MAX_UPLOAD_SECONDS = 10 * 60.0


def is_too_long(duration_s: float) -> bool:
    """Longer than the upload limit (half a second's grace for rounding); NaN (unknown) is not."""
    return math.isfinite(duration_s) and duration_s > MAX_UPLOAD_SECONDS + 0.5


def too_long_line(name: str, duration_s: float) -> str:
    """The one line for an upload over the duration limit (the server's header check, the upload
    route and the decoder all say it the same way)."""
    return (f"{name}: too long ({duration_s / 60:.1f} min); the limit is "
            f"{MAX_UPLOAD_SECONDS / 60:g} min — trim it and upload again")


UPLOAD_EXTENSIONS = (".wav", ".mp3", ".ogg", ".opus", ".flac", ".m4a")
# The byte cap is only a backstop that no honest master of up to 10 minutes reaches: an upload is
# streamed to disk (never held in memory) and decoded in blocks, so its size costs disk and upload
# time only. 10 minutes of 32-bit (integer or float) 192 kHz stereo PCM is 921.6 MB; 16 MiB more
# for tags and cover art, rounded up to whole MB (2^20 bytes): 895 MB. A 96 kHz 24-bit master of
# 10 minutes is 345.6 MB, of 6 minutes 207.4 MB (the old 48 kHz-based cap, 166 MB, refused it).
# Wider formats (more channels, 64-bit, 384 kHz) are accepted up to the duration that fits.
LARGEST_FORMAT = {"bits": 32, "sample_rate": 192_000, "channels": 2}
_TAGS_BYTES = 16 << 20
_LARGEST_BYTES = math.ceil((int(MAX_UPLOAD_SECONDS) * LARGEST_FORMAT["sample_rate"] * LARGEST_FORMAT["channels"]
                            * LARGEST_FORMAT["bits"] // 8 + _TAGS_BYTES) / 2**20) * 2**20
# TRACKLENS_MAX_UPLOAD_MB lowers the byte cap (the browser tests use it to exercise the refusal).
MAX_UPLOAD_BYTES = int(float(os.environ.get("TRACKLENS_MAX_UPLOAD_MB", "0")) * 2**20) or _LARGEST_BYTES
MAX_UPLOAD_MB = round(MAX_UPLOAD_BYTES / 2**20)


def byte_cap_text() -> str:
    """The byte cap and where it comes from, e.g. "files up to 895 MB (10 minutes of 32-bit 192 kHz stereo WAV)"."""
    text = f"files up to {MAX_UPLOAD_MB} MB"
    if MAX_UPLOAD_BYTES != _LARGEST_BYTES:
        return text
    f = LARGEST_FORMAT
    return text + (f" ({MAX_UPLOAD_SECONDS / 60:g} minutes of {f['bits']}-bit {f['sample_rate'] / 1000:g} kHz "
                   f"{'stereo' if f['channels'] == 2 else str(f['channels']) + '-channel'} WAV)")


def demo_data_dir() -> Path:
    """The catalogue `make demo` writes, below the data folder in use (read when called: set_home moves it)."""
    return config.DATA_DIR / "demo"


TOP_HITS_RELPATH = Path("spotify") / "songs_normalize.csv"
CHART_FILENAMES = ("charts.csv", "songs_normalize.csv", str(TOP_HITS_RELPATH))

_settings: dict = {"data_dir": None}
_caches_to_clear: list = []  # lru_cache'd readers elsewhere that depend on the data folder


def cleared_on_configure(cached):
    """Decorator for an ``lru_cache``'d function that reads what :func:`configure` chooses: the
    next ``configure`` clears it (the dependents register here, so this layer imports none of them)."""
    _caches_to_clear.append(cached)
    return cached


@dataclass(frozen=True)
class ChartSource:
    """Where the chart table was found.

    path : the CSV, or None when there is none
    kind : "top_hits" (real Spotify table, no audio), "demo" (with audio) or "none"
    root : the folder holding it (chart audio and features are looked for there)
    """

    path: Path | None
    kind: str
    root: Path | None
    label: str
    notes: tuple = field(default_factory=tuple)


def configure(data_dir: str | Path | None = None) -> None:
    """Use ``data_dir`` for the chart table (None: shared data or the demo) and clear caches."""
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise TracklensError(f"--data {data_dir}: no such folder")
        if _chart_csv_in(data_dir) is None:
            raise TracklensError(
                f"--data {data_dir}: no chart table found (looked for {', '.join(CHART_FILENAMES)})")
    _settings["data_dir"] = data_dir
    for cached in (chart_source, _prepared, _load_report, default_model, *_caches_to_clear):
        cached.cache_clear()


def _chart_csv_in(folder: Path) -> Path | None:
    for name in CHART_FILENAMES:
        if (folder / name).is_file():
            return folder / name
    return None


@functools.lru_cache(maxsize=1)
def chart_source() -> ChartSource:
    """Find the chart table (see the module docstring for the order)."""
    data_dir = _settings["data_dir"]
    if data_dir is not None:
        path = _chart_csv_in(data_dir)
        kind = "demo" if (data_dir / "audio").is_dir() else "top_hits"
        return ChartSource(path, kind, data_dir, f"{path} ({'demo catalogue' if kind == 'demo' else 'Top Hits'})")
    shared = config.SHARED_DATA_DIR / TOP_HITS_RELPATH
    if shared.is_file():
        return ChartSource(shared, "top_hits", shared.parent, "Top Hits Spotify (real data)")
    demo = demo_data_dir() / "charts.csv"
    if demo.is_file():
        return ChartSource(demo, "demo", demo.parent, "demo catalogue (generated)")
    return ChartSource(None, "none", None, "none found",
                       notes=("No chart table found: run `make demo` or start with `--data DIR`.",))


@functools.lru_cache(maxsize=1)
def _prepared():
    from tracklens import prepare

    source = chart_source()
    if source.path is None:
        return None, {}
    return prepare.prepare_charts(source.path)


def charts():
    """The cleaned chart table (a DataFrame; empty with the chart columns when none exists)."""
    import pandas as pd

    df, _ = _prepared()
    if df is None:
        from tracklens import prepare

        return pd.DataFrame(columns=list(prepare.CHART_COLUMNS))
    return df



@dataclass(frozen=True)
class ModelReport:
    """The latest `tracklens evaluate` report and each model's validation predictions.

    table : DataFrame, one row per model (the report's comparison.csv)
    path : the comparison.csv it came from
    predictions : {model name: {"y_true" (n,) int, "y_score" (n, k) calibrated, "genres"}} for
        the models whose directories (with valid_predictions.csv) were found
    """

    table: object
    path: Path
    predictions: dict


def _model_dirs() -> list[Path]:
    roots = [config.TRAINED_MODELS_DIR, demo_data_dir() / "models"]
    if _settings["data_dir"] is not None:
        roots.insert(0, _settings["data_dir"] / "models")
    return [r for r in roots if r.is_dir()]


def model_report() -> ModelReport | None:
    """The newest comparison.csv under ``config.REPORTS_DIR`` (None when there is none yet).

    Cached per file and modification time, so a report written while the dashboard runs shows
    up on the next page load.
    """
    if not config.REPORTS_DIR.is_dir():
        return None
    tables = sorted(config.REPORTS_DIR.glob("**/comparison.csv"), key=lambda p: p.stat().st_mtime)
    if not tables:
        return None
    return _load_report(tables[-1], tables[-1].stat().st_mtime)


@functools.lru_cache(maxsize=2)
def _load_report(path: Path, mtime: float) -> ModelReport | None:
    from tracklens import fileio

    try:
        table = fileio.read_csv(path)  # undoes the formula escaping of model names
    except (OSError, ValueError):
        return None  # half-written or foreign: as if absent
    if "model" not in table.columns:
        return None
    from tracklens.models import store

    predictions = {}
    for name in table["model"].astype(str):
        for root in _model_dirs():
            folder = root / name
            if (folder / store.PREDICTIONS_NAME).is_file() and (folder / store.CARD_NAME).is_file():
                try:
                    result = store.load_validation_result(folder)
                except (TracklensError, OSError):
                    continue
                predictions[name] = {"y_true": result["y_true"], "y_score": result["y_score"],
                                     "genres": list(result["genres"])}
                break
    return ModelReport(table=table, path=path, predictions=predictions)


def shipped_model_report() -> tuple[dict | None, str]:
    """The shipped default model's validation report for the models page, or ``(None, why)``.

    The report is :func:`models.store.load_model_report`'s (``model``, ``class_names``,
    ``y_true``, ``y_score``, ``metrics``) plus the ``card``; it needs no training. Cached per
    card modification time.
    """
    from tracklens.models import store

    folder = config.DEFAULT_MODEL_DIR
    try:
        mtime = (folder / store.CARD_NAME).stat().st_mtime
    except OSError:
        return None, f"{folder}: the shipped default model is missing (run `make default-model`)"
    return _load_shipped_report(folder, mtime)


@functools.lru_cache(maxsize=1)
def _load_shipped_report(folder: Path, mtime: float) -> tuple[dict | None, str]:
    from tracklens.models import store

    try:
        return {**store.load_model_report(folder), "card": store.read_card(folder, verify_weights=False)}, ""
    except (TracklensError, OSError) as exc:
        return None, str(exc)


_model_problem: dict = {}


@functools.lru_cache(maxsize=1)
def default_model():
    """The shipped default genre model (loaded once), or None when it is missing or refused.

    :func:`default_model_problem` then says why.
    """
    from tracklens.models import blend

    try:
        return blend.load_default_model()
    except TracklensError as exc:
        _model_problem["reason"] = f"{exc} (run `make default-model`)"
        return None


def default_model_problem() -> str:
    """Why :func:`default_model` is None ("" when it loaded)."""
    default_model()
    return _model_problem.get("reason", "")


def chart_years() -> tuple[int, int] | None:
    """The first and last year of the chart table, from its rows (None without any)."""
    import pandas as pd

    years = pd.to_numeric(charts().get("year", pd.Series(dtype=float)), errors="coerce").dropna()
    return (int(years.min()), int(years.max())) if len(years) else None


def chart_label() -> str:
    """The chart table's label with the years its rows span (e.g. "... (real data), 1998–2020")."""
    years = chart_years()
    return chart_source().label + (f", {years[0]}–{years[1]}" if years else "")


def source_info() -> dict:
    """A small JSON-able description of what the dashboard shows (for the header/footer)."""
    source = chart_source()
    model = default_model()
    name = getattr(model, "name", None) or ("none" if model is None else type(model).__name__)
    return {"label": chart_label(), "kind": source.kind, "notes": list(source.notes), "model": name}
