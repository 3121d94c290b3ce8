"""Catalogues: folders of tracks that tracklens has measured itself, so a track can meet its
neighbours by sound and be compared with values measured the same way.

Public API (``from tracklens import catalogue``)::

    cat = catalogue.build(source, out, meta=None, model=None, jobs=1, scheduler=None, progress=True)
        # source: a folder of audio, a manifest CSV, or the folder `tracklens acquire previews`
        # writes; a rerun analyses only new or changed files (the batch runner's cache)
    cat = catalogue.load(path)             # refuses a catalogue of another engine / model version
    catalogue.available(home=None)         # [Path, ...]: the catalogues in HOME/data/catalogues/
    track = catalogue.analyse(path_or_clip, model=None)   # the builder's per-track analysis
    catalogue.similar(query, cat, top=5, within=None, genre_weight=None, use_labels=None)  # -> DataFrame
    catalogue.format_neighbours([(name, frame_or_error), ...], "table" | "csv" | "json") -> str
    catalogue.percentiles(track, cat, within=None)  # -> DataFrame: value, percentile, p25/median/p75, n
    cat.tracks        # DataFrame, one row per track (columns below)
    cat.card          # dict: engine / model / embedding versions, counts, how it was built
    cat.errors        # DataFrame: path, reason (files that could not be analysed)
    cat.audio_path(track_id)  # Path of the track's audio when it is still on disk, else None
    cat.genres()      # the genre names ``within`` accepts; cat.within(genre) -> bool mask
    cat.model         # the genre model it was built with: analyse queries with the same one
    reports.write_check_report(track, "x.html", neighbours=frame)  # the `check` report (+ CSV, JSON)

``query`` is an audio path, an :class:`audio.AudioClip`, a :class:`Track` from :func:`analyse`
(analyse once, compare with many catalogues; ``Track.row()`` is its catalogue row, ``Track.blend``
the full Blend with timeline) or a raw vector (the 384-d embedding: by sound alone).

A catalogue is a folder::

    CAT/card.json          what built it (engine FEATURE_VERSION, genre model name + SHA-256,
                           embedding weights SHA-256, descriptor estimator SHA-256), counts, source
    CAT/tracks.parquet     one row per analysed track
    CAT/errors.csv         path, reason: files that could not be analysed (the error rows)
    CAT/_analysis.parquet  the batch runner's own table (a folder of parts on a Dask run); a
                           rebuild reuses it and the per-file cache

Columns of ``tracks``, each named after where its value comes from:

- identity: ``track_id`` (file stem), ``path`` (as given), ``audio_file`` (absolute), ``label``
  (sub-folder), ``checksum``; ``artist``, ``title``, ``isrc`` when the source names them
- the feature engine (:mod:`features`): ``bpm`` (the card's tempo; ``tempo_alt`` its ×2 / ×½
  alternative), ``key``, ``mode``, ``key_name``, ``loudness`` (integrated LUFS over the file's
  channels, BS.1770), ``true_peak_dbtp``, ``loudness_range_lu``, ``duration_ms`` and the 57 GTZAN
  summary columns (their ``tempo`` is the GTZAN table's beat-tracker tempo, a model input); the descriptor
  estimates ``energy_est``, ``acousticness_est`` (:mod:`models.descriptors`)
- the genre model (:mod:`models.blend`): ``blend_<genre>`` probabilities, ``top_genre``,
  ``blend_label``, ``fit`` / ``fit_reason`` (:mod:`models.fit`), ``chart_genres`` (chart-genre
  tags from AudioSet, "pop; rock"), ``chart_genre`` (the likeliest)
- the sound embedding: ``emb_000`` ... ``emb_383``, EfficientAT mn04's 384-d embedding averaged
  over the track's 10 s windows (chosen by measurement: docs/compare-by-sound.md); ``as_000`` ...
  ``as_526``: the track's AudioSet likelihoods from the same pass
- ``--meta TABLE``: the table's values prefixed ``spotify_`` (``spotify_energy`` beside the
  engine's ``energy_est``), joined by ISRC or by normalised artist + title

Similarity (:class:`SoundIndex`) is half sound, half genre: ``(1 - GENRE_WEIGHT) * cos(sound) +
GENRE_WEIGHT * cos(blend)``, where ``sound`` is the embedding minus the catalogue's mean embedding
and ``blend`` the genre blend's probability vector (same model). For a catalogue whose tracks carry
genre labels (``use_labels=None``, the default, uses them when they are there; ``True`` insists,
``False`` leaves them out) the embedding projected by a linear discriminant analysis of the
catalogue's labels shares the sound weight (0.2 centred embedding + 0.5 LDA + 0.3 blend). Both were chosen by retrieval inside the GTZAN train fold, never reading the
valid fold (bench/similar.py, docs/compare-by-sound.md); valid-fold queries against a train-fold
catalogue then gave genre precision@5 0.67 (label-free) and 0.70 (labels), against 0.66 for the
previous raw embedding + blend (intervals overlap: 73 queries).
``similar(..., genre_weight=0)`` compares by sound alone.

Data flow: audio -> batch/features -> models -> catalogue -> reports / dashboard / cli.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tracklens import batch, config, features, loudness
from tracklens.acquire.previews import PREVIEWS_INDEX  # a previews folder's index: id, artist, title, isrc
from tracklens.acquire.rows import ARTIST_COLUMNS as _ARTIST_COLUMNS, TITLE_COLUMNS as _TITLE_COLUMNS
from tracklens.acquire.rows import first_artist as _first_artist, normalise_name, pick_column as _pick
from tracklens.errors import TracklensError, one_line
from tracklens.fileio import atomic_write_bytes, file_checksum, read_csv, write_csv

FORMAT = "tracklens-catalogue"
#: 2: loudness measured over the file's channels (BS.1770, as the check page and `tracklens features`
#: measure it; it was the mono downmix's, 3-6 dB low on stereo) and the card's tempo (``bpm``) shown
#: and compared: a catalogue of format 1 is refused with a rebuild hint
FORMAT_VERSION = 2
#: bump when the per-file results of the same file and versions change (the batch cache key)
ANALYSIS_VERSION = 4  # 2: AudioSet block; 3: the engine's card columns (bpm, true peak, ...); 4: loudness over channels
#: the genre model a catalogue is built with: the shipped default, one EfficientAT pass since issue 20,
#: so the embedding, the blend, the fit verdict and the chart-genre tags all come from one forward
#: pass, and the check page (which blends with the default) compares its blend with the catalogue's
DEFAULT_MODEL = "default"
CARD_FILE = "card.json"
TRACKS_FILE = "tracks.parquet"
ERRORS_FILE = "errors.csv"
ANALYSIS_FILE = "_analysis.parquet"
EMBEDDING_SIZE = 384
EMBEDDING_COLUMNS = tuple(f"emb_{i:03d}" for i in range(EMBEDDING_SIZE))
N_AUDIOSET = 527
#: the track's AudioSet likelihoods (EfficientAT's tagger, same pass), in efficientat.class_names() order
AUDIOSET_COLUMNS = tuple(f"as_{i:03d}" for i in range(N_AUDIOSET))
#: the engine's values shown beside a neighbour (and in reports), in this order
VALUE_COLUMNS = ("bpm", "key_name", "loudness", "duration_s", "energy_est", "acousticness_est")
KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
META_PREFIX = "spotify_"
OUTPUT_FORMATS = ("table", "csv", "json")
#: the genre blend's share of the similarity, label-free and with the catalogue's labels (LDA);
#: both chosen inside the GTZAN train fold (bench/similar.py: select_similarity)
GENRE_WEIGHT = 0.5
LABELLED_GENRE_WEIGHT = 0.3
#: with labels, the centred embedding's part of the sound share (the rest: the LDA projection), so
#: 0.2 centred embedding + 0.5 LDA + 0.3 blend; the LDA alone would tie every track of a genre
LABELLED_SOUND_SHARE = 2 / 7
#: below this many tracks the catalogue's mean embedding is too noisy to centre on: raw cosine
MIN_CENTRING_TRACKS = 20


class CatalogueError(TracklensError):
    """A catalogue that cannot be used (missing, damaged, or built by another version)."""


# --- one track ----------------------------------------------------------------------------------


def key_name(key: Any, mode: Any) -> str:
    """``"A minor"`` from the engine's pitch class (0 = C) and mode (1 major, 0 minor); "" if unknown."""
    try:
        k, m = int(key), int(mode)
    except (TypeError, ValueError):
        return ""
    return f"{KEY_NAMES[k % 12]} {'major' if m == 1 else 'minor'}" if k >= 0 else ""


@dataclass
class Track:
    """One track as a catalogue sees it: the engine's values, the genre blend and the embedding.

    values : the engine's whole-track row (bpm, key, mode, loudness, duration_ms, the 57 summary
        columns) plus ``energy_est`` / ``acousticness_est``
    blend : the :class:`models.blend.Blend` (probabilities, timeline, fit, chart genres)
    embedding : float32 (384,), EfficientAT's mean window embedding
    audioset : float32 (527,), the track's AudioSet likelihoods (same pass; the fit verdict's evidence)
    model_dir : the folder of the genre model whose pass made ``blend`` (None: not known). The
        blend is compared with a catalogue's only when the catalogue was built with the same
        weights (:meth:`Catalogue.built_with`), whatever the model's name.
    """

    path: str | None
    values: dict
    blend: Any
    embedding: np.ndarray
    audioset: np.ndarray
    model_dir: Path | None = None
    analysis: Any = field(default=None, repr=False)  # the engine's features.Analysis, for figures (not stored)

    def row(self) -> dict:
        """The track as one catalogue row (JSON scalars; no identity columns, no embedding)."""
        b = self.blend
        row = {k: v for k, v in self.values.items() if k not in ("track_id", "path", "label")}
        row["key_name"] = key_name(row.get("key"), row.get("mode"))
        row["duration_s"] = float(row.get("duration_ms", 0)) / 1000.0
        row.update({f"blend_{g}": float(p) for g, p in zip(b.genres, b.probabilities)})
        row.update(top_genre=b.top_genre, blend_label=b.label, fit=b.fit or "", fit_reason=b.fit_reason or "",
                   chart_genres=chart_text(b.chart_genres),
                   chart_genre=b.chart_genres[0][0] if b.chart_genres else "")
        return row


def chart_text(scores) -> str:
    """Chart-genre tags at or above :data:`models.chart_genres.SHOWN_FROM`, likeliest first: ``"pop; rock"``."""
    from tracklens.models import chart_genres

    return "; ".join(name for name, p in sorted(scores, key=lambda kv: -kv[1]) if p >= chart_genres.SHOWN_FROM)


@functools.lru_cache(maxsize=2)
def _genre_model(name: str):
    from tracklens.models import blend

    return blend.load_model(name)


@functools.lru_cache(maxsize=1)
def _descriptor_extras():
    from tracklens.models import descriptors

    return descriptors.feature_extras()


def analyse(source: Any, *, model: str | None = None, max_duration: float = config.FEATURE_MAX_DURATION_S) -> Track:
    """The builder's analysis of one track: an audio path or an :class:`audio.AudioClip`.

    Values come from the feature engine (decoded at its 22 050 Hz; a file's loudness from all its
    channels at their own rate, a decoded clip's from the clip), the blend and the embedding
    from one pass of the genre model ``model`` (default :data:`DEFAULT_MODEL`) at its own rate.
    Raises AudioError / TracklensError for audio that cannot be analysed.
    """
    from tracklens.audio import AudioClip, load_audio
    from tracklens.models import blend as blend_mod

    model_name = model or DEFAULT_MODEL
    meter = None  # a decoded clip is measured as given (mono)
    if isinstance(source, AudioClip):
        clip = source if source.sr == config.SAMPLE_RATE else _resampled(source, config.SAMPLE_RATE)
        path, blend_source = source.path, source
    else:
        path = str(source)
        meter = loudness.MeterTap()  # the file's channels at its own rate, as the check page measures them
        clip = load_audio(path, sr=config.SAMPLE_RATE, max_duration=max_duration, taps=[meter])
        blend_source = path
    cf = features.featurize_clip(clip, segment_seconds=None, meter=None if meter is None else meter.meter())
    values = dict(cf.track)
    values.update(_descriptor_extras().compute(cf.analysis))
    genre_model = _genre_model(model_name)
    result = blend_mod.predict_blend(genre_model, blend_source, max_seconds=max_duration)
    embedding, audioset = result.embedding, result.audioset
    if embedding is None or audioset is None:  # a model whose pass makes neither: one extra pass
        from tracklens.models import efficientat

        extra = efficientat.embed(clip=clip)
        embedding = extra["mean"] if embedding is None else embedding
        audioset = extra["tags"] if audioset is None else audioset
    return Track(path=path, values=values, blend=result, embedding=np.asarray(embedding, np.float32),
                 audioset=np.asarray(audioset, np.float32), model_dir=genre_model.model_dir, analysis=cf.analysis)


def _resampled(clip, sr: int):
    from dataclasses import replace

    import librosa

    y = librosa.resample(clip.y, orig_sr=clip.sr, target_sr=sr, res_type="soxr_hq").astype(np.float32)
    return replace(clip, y=y, sr=sr)


# --- the batch task -----------------------------------------------------------------------------


def analyse_file(path: str, params: dict) -> batch.FileResult:
    """The catalogue's per-file function (what local processes and Dask workers run)."""
    track = analyse(path, model=params["model"], max_duration=params["max_duration"])
    return batch.FileResult(rows=[{**track.row(), "segment": -1}],
                            blocks={"embedding": track.embedding[None, :], "audioset": track.audioset[None, :]})


def model_checksum(model_dir: str | Path) -> str:
    """SHA-256 of a genre model's weights ("" without a ``model.keras``): what identifies the model
    a catalogue was built with (a renamed folder is the same model, one retrained under the same
    name another)."""
    weights = Path(model_dir) / "model.keras"
    return file_checksum(weights) if weights.is_file() else ""


@functools.lru_cache(maxsize=4)
def versions(model: str = DEFAULT_MODEL) -> dict:
    """What a catalogue's numbers depend on: engine version, genre model (name, SHA-256 of its
    files), embedding weights and descriptor estimator. A catalogue built with other versions is
    refused by :func:`load`."""
    from tracklens.models import blend, efficientat

    model_dir = blend.resolve_model_dir(model)
    card = json.loads((model_dir / "card.json").read_text())
    return {
        "engine": {"feature_version": features.FEATURE_VERSION, "catalogue_format": FORMAT_VERSION},
        "model": {"name": card.get("name", str(model)), "dir": str(model_dir), "kind": card["input"]["kind"],
                  "sha256": model_checksum(model_dir), "genres": list(card["genres"])},
        "embedding": {"model": efficientat.DEFAULT_MODEL, "size": EMBEDDING_SIZE, "pooling": "mean of 10 s windows",
                      "weights_sha256": efficientat.read_manifest()[efficientat.DEFAULT_MODEL]["weights_sha256"]},
        "descriptors": {"tag": _descriptor_extras().tag},
    }


def catalogue_task(model: str = DEFAULT_MODEL, *, max_duration: float = config.FEATURE_MAX_DURATION_S) -> batch.Task:
    """The per-track analysis as a :class:`batch.Task`, cached per file by checksum and versions."""
    from tracklens.models import chart_genres  # noqa: F401 - fail here, not in every worker

    v = versions(model)
    genres = v["model"]["genres"]
    value_columns = (*features.SUMMARY_COLUMNS, *(c for c in features.SPOTIFY_COLUMNS if c != "tempo"),
                     *features.CARD_COLUMNS, "start_s", "end_s", "length", "truncated", *_descriptor_extras().columns)
    model_columns = (*(f"blend_{g}" for g in genres), "top_genre", "blend_label", "fit", "fit_reason",
                     "chart_genres", "chart_genre")
    columns = (*batch.ID_COLUMNS, "segment", *value_columns, "key_name", "duration_s", *model_columns,
               *EMBEDDING_COLUMNS, *AUDIOSET_COLUMNS)
    text = ("key_name", "key_runner_up", "top_genre", "blend_label", "fit", "fit_reason", "chart_genres", "chart_genre")
    dtypes = {**dict.fromkeys(("segment", "length", "key", "mode", "duration_ms"), "int64"), "truncated": "bool",
              **dict.fromkeys(text, "str")}
    params = {"model": model, "model_sha256": v["model"]["sha256"], "embedding": v["embedding"]["weights_sha256"],
              "descriptors": v["descriptors"]["tag"], "feature_version": features.FEATURE_VERSION,
              "max_duration": float(max_duration)}
    return batch.Task(name="catalogue", run_file=analyse_file, params=params, version=ANALYSIS_VERSION,
                      columns=columns, dtypes=dtypes, blocks={"embedding": EMBEDDING_COLUMNS, "audioset": AUDIOSET_COLUMNS},
                      warm=features.warm_numba, after_crash=features.check_numba_cache)


# --- names and metadata ---------------------------------------------------------------------------

def _source_names(source: Any, tracks):
    """``artist``, ``title``, ``isrc`` per track from the source: a manifest CSV's own columns,
    the previews folder's index (:data:`PREVIEWS_INDEX`), else a file stem "Artist - Title"."""
    import pandas as pd

    names = pd.DataFrame({"artist": "", "title": "", "isrc": ""}, index=tracks.index)
    table, key = None, None
    src = Path(source) if isinstance(source, (str, Path)) else None
    if src is not None and src.is_file() and src.suffix.lower() == ".csv":
        table, key = read_csv(src, dtype=str, keep_default_na=False), "path"
    elif src is not None and (src / PREVIEWS_INDEX).is_file():
        table, key = read_csv(src / PREVIEWS_INDEX, dtype=str, keep_default_na=False), "id"
    elif isinstance(source, pd.DataFrame):
        table, key = source.astype(str), "path"
    if table is not None and key in table.columns:
        artist, title, isrc = (_pick(table.columns, cols) for cols in (_ARTIST_COLUMNS, _TITLE_COLUMNS, ("isrc",)))
        keys = table[key].map(lambda p: Path(str(p)).stem if key == "path" else str(p))
        for col, found in (("artist", artist), ("title", title), ("isrc", isrc)):
            if found is not None:
                lookup = dict(zip(keys, table[found].astype(str)))
                names[col] = tracks["track_id"].map(lambda t: lookup.get(Path(t).name, "")).fillna("")
    stems = tracks["track_id"].map(lambda t: Path(str(t)).name)
    parsed = stems.str.split(" - ", n=1, expand=True) if stems.str.contains(" - ").any() else None
    if parsed is not None and parsed.shape[1] == 2:
        missing = (names["artist"] == "") & parsed[1].notna()
        names.loc[missing, "artist"] = parsed.loc[missing, 0].str.strip()
        names.loc[missing, "title"] = parsed.loc[missing, 1].str.strip()
    return names


def read_meta(path: str | Path):
    """A metadata table (CSV or parquet) with artist + title (or isrc) columns."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"--meta {path}: no such file")
    try:
        table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else read_csv(path)
    except Exception as exc:
        raise CatalogueError(f"--meta {path}: cannot read it ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    has_names = _pick(table.columns, _ARTIST_COLUMNS) and _pick(table.columns, _TITLE_COLUMNS)
    if not has_names and _pick(table.columns, ("isrc",)) is None:
        raise CatalogueError(f"--meta {path}: needs 'isrc' or 'artist' + title ('song'/'title'/'name') columns")
    return table


def join_meta(tracks, meta, *, prefix: str = META_PREFIX):
    """``tracks`` with the columns of ``meta`` prefixed (``spotify_energy``), matched by ISRC,
    else by normalised first artist + title. Returns ``(table, matched_by)`` where
    ``matched_by`` counts the rows joined each way. The first of duplicate meta rows wins."""
    import pandas as pd

    tracks = tracks.copy()
    m_artist, m_title, m_isrc = (_pick(meta.columns, c) for c in (_ARTIST_COLUMNS, _TITLE_COLUMNS, ("isrc",)))
    renamed = meta.rename(columns={c: prefix + str(c).lower().replace(" ", "_") for c in meta.columns})
    position = pd.Series(-1, index=tracks.index)
    how = pd.Series("", index=tracks.index)
    if m_isrc is not None and "isrc" in tracks.columns:
        by_isrc = {}
        for i, code in enumerate(meta[m_isrc].astype(str).str.strip().str.upper()):
            if code and code != "NAN":
                by_isrc.setdefault(code, i)
        hit = tracks["isrc"].astype(str).str.strip().str.upper().map(by_isrc)
        position[hit.notna()] = hit[hit.notna()].astype(int)
        how[hit.notna()] = "isrc"
    if m_artist is not None and m_title is not None:
        by_name = {}
        for i, (a, t) in enumerate(zip(meta[m_artist], meta[m_title])):
            by_name.setdefault((_first_artist(a), normalise_name(t)), i)
        keys = [(_first_artist(a), normalise_name(t)) for a, t in zip(tracks["artist"], tracks["title"])]
        hit = pd.Series([by_name.get(k, -1) if k[1] else -1 for k in keys], index=tracks.index)
        use = (position < 0) & (hit >= 0)
        position[use] = hit[use]
        how[use] = "artist+title"
    joined = renamed.reset_index(drop=True).reindex(position.to_numpy())  # -1: no row, all NaN
    joined.index = tracks.index
    joined[prefix + "matched_by"] = how
    counts = {k: int((how == k).sum()) for k in ("isrc", "artist+title")}
    return pd.concat([tracks, joined], axis=1), counts


# --- building and loading -------------------------------------------------------------------------


def _check_out(out: Path) -> None:
    """Refuse to build into a folder that holds something other than a catalogue (never delete the user's files)."""
    if out.exists() and not out.is_dir():
        raise CatalogueError(f"--out {out}: a file, not a folder; a catalogue is a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / CARD_FILE).exists() and not (out / ANALYSIS_FILE).exists():
        raise CatalogueError(f"--out {out}: a folder with other files in it; choose a new or empty folder")


def build(source: Any, out: str | Path, *, meta: str | Path | None = None, model: str | None = None,
          jobs: int = 1, scheduler: Any = None, progress: bool = True, cache_dir: str | Path | None = None,
          max_duration: float = config.FEATURE_MAX_DURATION_S) -> "Catalogue":
    """Analyse every audio file of ``source`` into the catalogue folder ``out``; returns it loaded.

    Parameters
    ----------
    source : a folder of audio, a manifest CSV (``tracklens acquire folder``; extra ``artist``,
        ``title``, ``isrc`` columns are kept), the previews folder of ``tracklens acquire previews``
        (its ``previews.csv`` names each file's artist and title), or a DataFrame with ``path``
    out : the catalogue folder (created; an existing catalogue there is rebuilt in place)
    meta : a table (CSV/parquet, e.g. the Top Hits CSV) whose columns join each track, prefixed
        ``spotify_``, by ISRC or normalised artist + title
    model : the genre model (default :data:`DEFAULT_MODEL`)
    jobs, scheduler, cache_dir, progress : as :func:`batch.run` (cache per file: a rerun analyses
        only new or changed files; a Dask run's workers write the parts)

    Files that cannot be analysed are rows of ``errors.csv`` and never stop the build.
    """
    import pandas as pd

    started = time.time()
    out = Path(out)
    _check_out(out)
    meta_table = read_meta(meta) if meta is not None else None  # a bad --meta fails before the long part
    model = model or DEFAULT_MODEL
    task = catalogue_task(model, max_duration=max_duration)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = batch.run(task, source, out=out / ANALYSIS_FILE, jobs=jobs, scheduler=scheduler, cache_dir=cache_dir,
                           progress=progress)
    except BaseException:
        if created and not any(out.iterdir()):  # e.g. a source with no audio: leave no empty catalogue folder
            out.rmdir()
        raise
    table = pd.read_parquet(out / ANALYSIS_FILE)
    table = table[table["segment"] == -1].drop(columns=["segment"]).reset_index(drop=True)
    base = Path(source).parent if isinstance(source, (str, Path)) and Path(source).is_file() else Path.cwd()
    table.insert(2, "audio_file", [str(Path(p) if Path(p).is_absolute() else (base / p if (base / p).exists() else
                                                                             Path(p)).absolute()) for p in table["path"]])
    names = _source_names(source, table)
    for i, col in enumerate(("artist", "title", "isrc")):
        table.insert(4 + i, col, names[col].astype(str).to_numpy())
    matched = None
    if meta_table is not None:
        table, matched = join_meta(table, meta_table)
    errors = read_csv(batch.errors_path(out / ANALYSIS_FILE), dtype=str, keep_default_na=False)
    _write_parquet(table, out / TRACKS_FILE)
    write_csv(errors, out / ERRORS_FILE)
    v = versions(model)
    card = {
        "format": FORMAT, **v,
        "counts": {"tracks": int(len(table)), "errors": int(len(errors)),
                   "analysed_now": result.n_computed, "from_cache": result.n_cached,
                   **({"with_meta": int(sum(matched.values()))} if matched is not None else {})},
        "source": str(source) if not hasattr(source, "columns") else "DataFrame",
        "meta": None if meta is None else {"table": str(meta), "prefix": META_PREFIX, "matched_by": matched},
        "similarity": f"(1 - {GENRE_WEIGHT}) * cosine of the sound embeddings centred on the catalogue mean + "
                      f"{GENRE_WEIGHT} * cosine of the genre blends (use_labels: LDA of the embeddings on the "
                      f"label column, genre weight {LABELLED_GENRE_WEIGHT})",
        "built": {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(time.time() - started, 1),
                  "jobs": jobs, "scheduler": str(scheduler) if scheduler else None,
                  "tracklens": _version(), "max_duration_s": max_duration},
        "columns": {"engine": [c for c in (*features.SPOTIFY_COLUMNS, "key_name", "duration_s", *features.SUMMARY_COLUMNS)],
                    "estimates": list(_descriptor_extras().columns),
                    "model": [c for c in table.columns if c.startswith("blend_") or c in
                              ("top_genre", "blend_label", "fit", "fit_reason", "chart_genres", "chart_genre")],
                    "embedding": f"{EMBEDDING_COLUMNS[0]}..{EMBEDDING_COLUMNS[-1]}",
                    "meta": [c for c in table.columns if c.startswith(META_PREFIX)]},
    }
    atomic_write_bytes(out / CARD_FILE, (json.dumps(card, indent=1, default=str) + "\n").encode())
    return load(out)


def _version() -> str:
    from tracklens import __version__

    return __version__


def _write_parquet(table, path: Path) -> None:
    from tracklens.fileio import atomic_path

    with atomic_path(path, suffix=".parquet") as tmp:
        table.to_parquet(tmp, index=False)


def _rebuild_hint(path: Path, card: dict) -> str:
    source = card.get("source") or "SOURCE"
    meta = f" --meta {card['meta']['table']}" if card.get("meta") else ""
    return f"rebuild it: tracklens catalogue build {source} --out {path}{meta}"


def load(path: str | Path, *, model: str | None = None) -> "Catalogue":
    """The catalogue in folder ``path``. Raises CatalogueError with one line when it is missing,
    damaged, or built by another engine, model, embedding or estimator version (saying how to
    rebuild it)."""
    import pandas as pd

    path = Path(path)
    card_file = path / CARD_FILE
    if not card_file.is_file():
        if not path.exists():
            raise CatalogueError(f"{path}: no such catalogue; build one: tracklens catalogue build SOURCE --out {path}")
        if not path.is_dir():
            raise CatalogueError(f"{path}: a file, not a catalogue (a folder with {CARD_FILE}, from tracklens catalogue build)")
        if any(path.iterdir()):  # e.g. the folder of audio itself: build refuses --out there
            raise CatalogueError(f"{path}: not a catalogue (no {CARD_FILE}); to make one of its audio: "
                                 f"tracklens catalogue build {path} --out NEW_FOLDER")
        raise CatalogueError(f"{path}: not a catalogue (no {CARD_FILE}); build one: tracklens catalogue build SOURCE --out {path}")
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"{card_file}: unreadable ({type(exc).__name__}); {_rebuild_hint(path, {})}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise CatalogueError(f"{card_file}: not a tracklens catalogue card; {_rebuild_hint(path, {})}")
    mismatch = _version_mismatch(card, versions(model or card.get("model", {}).get("name") or DEFAULT_MODEL))
    if mismatch:
        raise CatalogueError(f"{path}: built by {mismatch}; {_rebuild_hint(path, card)}")
    try:
        tracks = pd.read_parquet(path / TRACKS_FILE)
    except Exception as exc:
        raise CatalogueError(f"{path / TRACKS_FILE}: unreadable ({type(exc).__name__}); {_rebuild_hint(path, card)}") from None
    errors_file = path / ERRORS_FILE
    errors = (read_csv(errors_file, dtype=str, keep_default_na=False) if errors_file.is_file()
              else pd.DataFrame(columns=["path", "reason"]))
    return Catalogue(path=path, tracks=tracks, card=card, errors=errors)


def _version_mismatch(card: dict, current: dict) -> str:
    """What differs between the card's versions and this tracklens ("" when nothing does)."""
    checks = (
        ("engine", "feature_version", "engine version"),
        ("engine", "catalogue_format", "catalogue format"),
        ("model", "sha256", "genre model"),
        ("embedding", "weights_sha256", "embedding weights"),
        ("descriptors", "tag", "descriptor estimator"),
    )
    for section, key, what in checks:
        theirs, ours = (card.get(section) or {}).get(key), current[section][key]
        if theirs != ours:
            short = (lambda v: str(v)[:12] if isinstance(v, str) and len(str(v)) > 16 else v)
            return f"{what} {short(theirs)}, this tracklens has {short(ours)}"
    return ""


def catalogues_dir(home: str | Path | None = None) -> Path:
    """Where catalogues live: ``HOME/data/catalogues`` (``config.DATA_DIR`` when ``home`` is None)."""
    return Path(home) / "data" / "catalogues" if home is not None else config.DATA_DIR / "catalogues"


def available(home: str | Path | None = None) -> list[Path]:
    """The catalogue folders (those with a card) in :func:`catalogues_dir`, by name."""
    root = catalogues_dir(home)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / CARD_FILE).is_file())


@dataclass
class Catalogue:
    """A loaded catalogue: ``tracks`` (DataFrame), ``card`` (dict), ``errors`` (DataFrame)."""

    path: Path
    tracks: Any
    card: dict
    errors: Any
    _index: Any = field(default=None, repr=False)
    _index_key: Any = field(default=None, repr=False)
    _tags: Any = field(default=None, repr=False)
    _masks: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        return (self.card.get("model") or {}).get("name") or DEFAULT_MODEL

    def built_with(self, model_dir: str | Path | None) -> bool:
        """True when the genre model in ``model_dir`` is the one this catalogue was built with (same
        weights: :func:`model_checksum`), so a blend from it can be compared with the catalogue's
        blends. The one rule: :func:`similar` and the check page go by it."""
        sha = (self.card.get("model") or {}).get("sha256")
        return bool(sha) and model_dir is not None and model_checksum(model_dir) == sha

    def __len__(self) -> int:
        return len(self.tracks)

    def audio_path(self, track_id: str) -> Path | None:
        """The audio file of ``track_id`` when it is still on disk (None otherwise, or for an unknown id)."""
        rows = self.tracks.index[self.tracks["track_id"] == str(track_id)]
        if not len(rows):
            return None
        file = Path(str(self.tracks.at[rows[0], "audio_file"]))
        return file if file.is_file() else None

    def embeddings(self) -> np.ndarray:
        """The raw embedding matrix (n_tracks, 384), float32."""
        return self.tracks[list(EMBEDDING_COLUMNS)].to_numpy(np.float32)

    @property
    def blend_columns(self) -> list[str]:
        return [f"blend_{g}" for g in self.card.get("model", {}).get("genres", [])]

    def labels(self) -> np.ndarray | None:
        """The tracks' genre labels (the ``label`` column: a manifest's or a folder's) when every track
        has one and at least two labels have two tracks each; else None (an unlabelled catalogue)."""
        if "label" not in self.tracks.columns:
            return None
        labels = self.tracks["label"].fillna("").astype(str).str.strip().to_numpy()
        counts = dict(zip(*np.unique(labels, return_counts=True)))
        if "" in counts or sum(n >= 2 for n in counts.values()) < 2 or len(labels) <= len(counts):
            return None
        return labels

    def index(self, genre_weight: float | None = None, *, use_labels: bool = False) -> "SoundIndex":
        """The similarity index for ``genre_weight`` (None: the default of the mode) and
        ``use_labels`` (built on first use, then kept)."""
        key = (genre_weight, use_labels)
        if self._index is None or self._index_key != key:
            labels = self.labels() if use_labels else None
            if use_labels and labels is None:
                raise CatalogueError(f"{self.name}: its tracks carry no genre labels (every track needs one in "
                                     f"the label column, two genres at least); compare without use_labels")
            blends = self.tracks[self.blend_columns].to_numpy(np.float32) if self.blend_columns else None
            self._index = SoundIndex(self.embeddings(), blends, genre_weight=genre_weight, labels=labels)
            self._index_key = key
        return self._index

    def genres(self) -> list[str]:
        """Every genre ``within`` accepts here: blend genres, chart genres, metadata genres."""
        found = set(self.card.get("model", {}).get("genres", []))
        for tags in self._genre_tags():
            found.update(tags)
        names = {g.lower(): g for g in sorted(found, reverse=True)}  # one spelling per genre
        return sorted(names.values(), key=str.lower)

    def _genre_tags(self) -> list[set[str]]:
        """Per track, the genres it belongs to (as written): its blend's top genre and label's
        parts, its chart-genre tags, its metadata genre(s)."""
        if self._tags is None:
            t = self.tracks
            columns = [t[c].fillna("").astype(str) for c in ("top_genre", "blend_label", "chart_genres",
                                                               f"{META_PREFIX}genre") if c in t.columns]
            splitters = {"blend_label": "-", "chart_genres": "; ", f"{META_PREFIX}genre": ","}
            self._tags = [set() for _ in range(len(t))]
            for col in columns:
                sep = splitters.get(col.name)
                for tags, text in zip(self._tags, col):
                    tags.update(p.strip() for p in (text.split(sep) if sep else [text]) if p.strip())
        return self._tags

    def within(self, genre: str) -> np.ndarray:
        """Boolean mask of the tracks of ``genre`` (any case): their blend's top genre or label
        names it, or a chart-genre tag, or the metadata's genre. Raises CatalogueError for a
        genre no track has."""
        wanted = genre.strip().lower()
        if wanted not in self._masks:
            mask = np.fromiter((wanted in {g.lower() for g in tags} for tags in self._genre_tags()), bool,
                               count=len(self.tracks))
            if not mask.any():
                raise CatalogueError(f"--within {genre}: no track of that genre in {self.name}; "
                                     f"its genres: {', '.join(self.genres())}")
            self._masks[wanted] = mask
        return self._masks[wanted]


#: The terms of :meth:`SoundIndex.rule`: how the neighbours of :func:`similar` were ranked, in words.
SOUND_RULE = "the cosine of the EfficientAT sound embeddings centred on the catalogue's mean"
LDA_RULE = "the cosine of their projection on the catalogue's genre labels (LDA)"
BLEND_RULE = "the cosine of the genre blends"
#: The key of ``similar(...).attrs`` that holds that rule (reports and the check page print it).
RULE_ATTR = "similarity_rule"
#: The key of ``similar(...).attrs`` that says whether the query's blend took part (False: by sound
#: alone, the query's blend came from another genre model than the catalogue's, or there was none).
WITH_BLEND_ATTR = "with_blend"


class SoundIndex:
    """Cosine similarity of tracks by sound and genre blend: each block L2-normalised and scaled by
    the square root of its share, so one dot product gives ``(1 - w) cos(sound) + w cos(blend)``.

    ``sound``: the embedding minus the catalogue's mean embedding (raw below
    ``MIN_CENTRING_TRACKS`` tracks). Given the catalogue tracks' genre ``labels`` (a catalogue
    with labels only), the sound share is split between that and the embedding projected by a
    shrinkage LDA fitted on the labels (``LABELLED_SOUND_SHARE`` of it to the centred embedding),
    and ``w`` defaults to ``LABELLED_GENRE_WEIGHT``. Only the catalogue is fitted, never the query."""

    def __init__(self, embeddings: np.ndarray, blends: np.ndarray | None = None, *, genre_weight: float | None = None,
                 labels: np.ndarray | None = None):
        if genre_weight is None:
            genre_weight = GENRE_WEIGHT if labels is None else LABELLED_GENRE_WEIGHT
        if not 0.0 <= genre_weight <= 1.0:
            raise CatalogueError(f"genre_weight={genre_weight} must be between 0 and 1")
        self.genre_weight = genre_weight if blends is not None and blends.shape[1] else 0.0
        self.n_genres = blends.shape[1] if blends is not None else 0
        embeddings = np.asarray(embeddings, np.float64)
        self._lda = None
        self.centre = embeddings.mean(axis=0) if len(embeddings) >= MIN_CENTRING_TRACKS else np.zeros(embeddings.shape[1])
        if labels is not None:
            from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

            try:
                self._lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(embeddings, np.asarray(labels))
            except np.linalg.LinAlgError:  # Ledoit-Wolf on 2 tracks per label can leave it singular: shrink fully
                self._lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=1.0).fit(embeddings, np.asarray(labels))
        self.matrix = np.ascontiguousarray(self.transform(embeddings, blends))  # row-major: fast products
        self.sound_width = self.matrix.shape[1] - self.n_genres

    def _sound_parts(self, embeddings: np.ndarray) -> list[np.ndarray]:
        """The sound blocks, each unit length and scaled by the square root of its share."""
        x = np.atleast_2d(np.asarray(embeddings, np.float64))
        share = 1.0 - self.genre_weight
        if self._lda is None:
            return [np.sqrt(share) * _unit(x - self.centre)]
        return [np.sqrt(share * LABELLED_SOUND_SHARE) * _unit(x - self.centre),
                np.sqrt(share * (1.0 - LABELLED_SOUND_SHARE)) * _unit(self._lda.transform(x))]

    def transform(self, embeddings: np.ndarray, blends: np.ndarray | None = None) -> np.ndarray:
        parts = self._sound_parts(embeddings)
        if self.n_genres:
            blends = np.zeros((len(parts[0]), self.n_genres), np.float32) if blends is None else blends
            parts.append(np.sqrt(self.genre_weight) * _unit(blends))
        return np.hstack(parts).astype(np.float32)

    def rule(self, *, with_blend: bool) -> str:
        """What :meth:`scores` computes, in words (a neighbour table's caption): the shares of the
        centred embedding, its LDA projection (with labels) and the blend (``with_blend``: a query
        blend of the catalogue's genre model was given)."""
        blend_share = self.genre_weight if with_blend else 0.0
        sound_share = 1.0 - blend_share
        terms = ([(sound_share, SOUND_RULE)] if self._lda is None else
                 [(sound_share * LABELLED_SOUND_SHARE, SOUND_RULE), (sound_share * (1 - LABELLED_SOUND_SHARE), LDA_RULE)])
        if blend_share:
            terms.append((blend_share, BLEND_RULE))
        if len(terms) == 1:
            return f"{SOUND_RULE} (by sound alone)"
        halves = all(abs(share - 0.5) < 1e-9 for share, _ in terms)  # "half ..., half ..." as the captions said
        text = ", ".join(f"{'half' if halves else f'{share:.2g} ×'} {term}" for share, term in terms)
        return text if blend_share else f"{text} (by sound alone)"

    def scores(self, embedding: np.ndarray, blend: np.ndarray | None = None) -> np.ndarray:
        """Similarity of one track (raw ``embedding``, its blend probabilities in the catalogue's
        genre order) with every catalogue track; without ``blend``, by sound alone (-1..1)."""
        if blend is None and self.genre_weight:
            query = np.hstack(self._sound_parts(embedding))[0].astype(np.float32)
            return (self.matrix[:, :self.sound_width] @ query) / (1.0 - self.genre_weight)
        return self.matrix @ self.transform(np.atleast_2d(embedding), None if blend is None else np.atleast_2d(blend))[0]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, np.float32))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _query_vectors(query: Any, cat: "Catalogue") -> tuple[np.ndarray, np.ndarray | None]:
    """(embedding, blend in the catalogue's genre order or None) of a query."""
    if isinstance(query, np.ndarray):
        n_genres = len(cat.blend_columns)
        if query.shape == (EMBEDDING_SIZE,):
            return query.astype(np.float32), None
        if query.shape == (EMBEDDING_SIZE + n_genres,):
            return query[:EMBEDDING_SIZE].astype(np.float32), query[EMBEDDING_SIZE:].astype(np.float32)
        raise CatalogueError(f"a query vector must have shape ({EMBEDDING_SIZE},) (an embedding) or "
                             f"({EMBEDDING_SIZE + n_genres},) (embedding then blend), not {query.shape}")
    track = query if isinstance(query, Track) else analyse(query, model=cat.model)
    by_genre = dict(zip(track.blend.genres, np.asarray(track.blend.probabilities, np.float32)))
    genres = [c.removeprefix("blend_") for c in cat.blend_columns]
    if set(genres) - by_genre.keys() or not cat.built_with(track.model_dir):  # another model's blend: by sound alone
        return track.embedding, None
    return track.embedding, np.array([by_genre[g] for g in genres], np.float32)


def similar(query: Any, cat: "Catalogue | str | Path", *, top: int = 5, within: str | None = None,
            genre_weight: float | None = None, use_labels: bool | None = None):
    """The ``top`` catalogue tracks most similar to ``query``, most similar first.

    ``query``: an audio path, an AudioClip, a :class:`Track` (analyse once, compare often) or a
    vector (the raw 384-d embedding: by sound alone; or the embedding followed by the blend);
    ``within``: only tracks of that genre (blend, chart genre or metadata genre:
    :meth:`Catalogue.within`); ``genre_weight``: the blend's share of the similarity (0: sound alone;
    None: ``GENRE_WEIGHT``, or ``LABELLED_GENRE_WEIGHT`` with labels); ``use_labels``: compare by an
    LDA of the catalogue's genre labels too (True: CatalogueError for a catalogue without labels;
    None, the default: whenever the catalogue carries labels — the rule that measured best, see
    docs/compare-by-sound.md; False: never).

    Returns a DataFrame: ``rank``, ``similarity`` (-1..1), ``track_id``, ``artist``, ``title``,
    ``top_genre``, ``blend_label``, ``chart_genres``, the engine's values (:data:`VALUE_COLUMNS`),
    Spotify's values when the catalogue has them, ``path``; ``attrs[RULE_ATTR]`` says in words how
    the similarity was computed (labels or not, blend or sound alone: :meth:`SoundIndex.rule`),
    ``attrs[WITH_BLEND_ATTR]`` whether the blend took part.
    """
    cat = cat if isinstance(cat, Catalogue) else load(cat)
    if top < 1:
        raise CatalogueError(f"--top {top}: must be at least 1")
    candidates = np.flatnonzero(cat.within(within)) if within else None
    embedding, blend = _query_vectors(query, cat)
    if use_labels is None:
        use_labels = cat.labels() is not None
    index = cat.index(genre_weight, use_labels=use_labels)
    scores = index.scores(embedding, blend)
    if candidates is None:
        candidates = np.arange(len(scores))
    k = min(top, len(candidates))
    if k == 0:
        frame = neighbour_frame(cat, np.array([], int), np.array([]))
    else:
        sub = scores[candidates]
        part = np.argpartition(-sub, k - 1)[:k] if k < len(sub) else np.arange(len(sub))
        order = part[np.lexsort((candidates[part], -sub[part]))]  # ties: catalogue order
        frame = neighbour_frame(cat, candidates[order], sub[order])
    frame.attrs[RULE_ATTR] = index.rule(with_blend=blend is not None)
    frame.attrs[WITH_BLEND_ATTR] = blend is not None
    return frame


#: the engine's numeric values a track is placed among (percentiles, middle half)
COMPARABLE_VALUES = ("bpm", "loudness", "duration_s", "energy_est", "acousticness_est")


def percentiles(query: Any, cat: "Catalogue | str | Path", *, within: str | None = None,
                columns: tuple[str, ...] = COMPARABLE_VALUES):
    """Where a track sits among the catalogue's tracks (of genre ``within``, else all), value by
    value, every value measured by the same engine: one row per column with ``value``,
    ``percentile`` (share of catalogue tracks below it, ties counted half, 0-100), ``p25``,
    ``median``, ``p75`` and ``n`` (tracks compared). ``query``: a :class:`Track`, a catalogue row
    (dict / Series) or an audio path (analysed with the catalogue's model)."""
    import pandas as pd

    cat = cat if isinstance(cat, Catalogue) else load(cat)
    if isinstance(query, Track):
        row = query.row()
    elif isinstance(query, (dict, pd.Series)):
        row = dict(query)
    else:
        row = analyse(query, model=cat.model).row()
    pool = cat.tracks[cat.within(within)] if within else cat.tracks
    out = []
    for col in columns:
        values = pd.to_numeric(pool[col], errors="coerce").dropna().to_numpy() if col in pool.columns else np.array([])
        value = row.get(col)
        value = float(value) if value is not None and np.isfinite(value) else np.nan
        if len(values) and np.isfinite(value):
            pct = 100.0 * (np.sum(values < value) + 0.5 * np.sum(values == value)) / len(values)
            p25, median, p75 = np.percentile(values, [25, 50, 75])
        else:
            pct = p25 = median = p75 = np.nan
        out.append({"value_name": col, "value": value, "percentile": pct, "p25": p25, "median": median,
                    "p75": p75, "n": len(values)})
    return pd.DataFrame(out)


def neighbour_frame(cat: "Catalogue", rows: np.ndarray, scores: np.ndarray):
    """Catalogue rows ``rows`` with their similarity, values side by side (see :func:`similar`)."""
    import pandas as pd

    t = cat.tracks
    columns = ["track_id", "artist", "title", "top_genre", "blend_label", "chart_genres", *VALUE_COLUMNS]
    spotify = [c for c in (f"{META_PREFIX}genre", *(META_PREFIX + c for c in ("tempo", "energy", "acousticness",
                                                                          "danceability", "valence", "loudness")))
               if c in t.columns]
    shown = [t.columns.get_loc(c) for c in (*columns, *spotify, "path") if c in t.columns]
    frame = t.iloc[np.asarray(rows, int), shown].reset_index(drop=True)  # rows and columns at once: no wide copy
    frame.insert(0, "similarity", np.round(np.asarray(scores, float), 4))
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def format_neighbours(results: list[tuple[str, Any]], fmt: str = "table") -> str:
    """Neighbour tables of several queries as text: ``table`` (aligned, one block per query),
    ``csv`` (spreadsheet-safe, a ``query`` column first) or ``json`` (a list of objects)."""
    import pandas as pd

    from tracklens.fileio import to_csv_text

    if fmt not in OUTPUT_FORMATS:
        raise CatalogueError(f"--format {fmt}: use one of {', '.join(OUTPUT_FORMATS)}")
    if fmt == "json":
        items = [{"query": q, "error": str(r)} if isinstance(r, Exception) else
                 {"query": q, "neighbours": json.loads(r.to_json(orient="records"))} for q, r in results]
        return json.dumps(items, indent=1)
    if fmt == "csv":
        frames = []
        for q, r in results:
            if isinstance(r, Exception):
                frames.append(pd.DataFrame({"query": [q], "error": [str(r)]}))
            else:
                frames.append(r.assign(query=q)[["query", *r.columns]])
        return to_csv_text(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), index=False)
    blocks = []
    for q, r in results:
        q = one_line(q)  # a newline in a file name would split its block's heading
        if isinstance(r, Exception):
            blocks.append(f"{q}: error: {one_line(str(r))}")
            continue
        empty = [c for c in ("artist", "title") if c in r.columns and not r[c].astype(str).str.strip().any()]
        shown = r.drop(columns=[c for c in ("path", *empty) if c in r.columns])
        with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_colwidth", 28):
            blocks.append(f"{q}\n{shown.to_string(index=False, float_format=lambda v: f'{v:.3g}')}")
    return "\n\n".join(blocks)
