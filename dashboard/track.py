"""Check your track: decode an upload in memory, featurize it, blend it, compare it with chart hits.

The upload never touches the file system under a user-chosen name: bytes are decoded by
`audio.load_audio_bytes` (from memory); the file name is only shown and used for its extension.
The chart reference (scaler, 2-D PCA map, nearest-neighbour index) is fitted once per process.

Like with like: the real Top Hits table has no audio, so an upload is compared with it on the
columns computable from audio (tempo, loudness, key, mode, duration). Where the chart catalogue
has audio features (the demo catalogue after `tracklens features`), the full audio feature set
is used for the map and the neighbours.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import hashlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.dashboard import data, memory
from tracklens.errors import TracklensError

#: Chart columns that can be computed from audio (features.spotify_comparable_features).
COMPARABLE_COLUMNS = ("tempo", "loudness", "key", "mode", "duration_ms")
#: Spotify's own descriptors, which no audio analysis here reproduces.
SPOTIFY_ONLY_COLUMNS = ("danceability", "energy", "speechiness", "acousticness",
                        "instrumentalness", "liveness", "valence")
N_NEAREST = 5
N_TAGS = 8
MAX_TAG_PATCHES = 4
# The blend (and, with the musicnn default, the tags) reads at most this much audio: 30 s blocks
# spread over the track. Classifying every 3 s patch of a 4-minute song doubled the check's latency.
MAX_BLEND_SECONDS = 60.0
MAX_DISPLAY_FRAMES = 1200  # spectrogram/chromagram columns sent to the browser
# A report holds no STFT (< 1 MB: decimated pictures, small tables); a few cover re-checking the last uploads.
_CACHE_SIZE = 3
# One check keeps two cores busy (analysis beside the blend thread) and peaks ~500 MB above the
# server for a 4-minute track, so more checks at once add memory, not speed: 4 concurrent 4-minute
# uploads on 2 cores peaked at 2.56 GB without this limit, 1.54 GB with it, and their p50 latency
# fell from 32.6 s to 19.3 s (bench/dashboard.py --clients 4).
MAX_CONCURRENT_CHECKS = max(1, (os.cpu_count() or 2) // 2)
GENERIC_FAILURE = "could not be analysed (an unexpected error on the server; it has been logged)"
LOG = logging.getLogger(__name__)


class UploadError(TracklensError):
    """An upload the page refuses before or after decoding (wrong type, too large, too long);
    the decoder's own refusals (unreadable, silent, over its limits) are ``audio.AudioError``."""


def decode_contents(contents: str, filename: str) -> bytes:
    """Bytes of a dcc.Upload ``contents`` data URI, after type and size checks.

    Raises UploadError naming the file: not an audio extension, not base64, empty, or larger
    than ``data.MAX_UPLOAD_BYTES``.
    """
    name = display_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in data.UPLOAD_EXTENSIONS:
        allowed = ", ".join(e.lstrip(".").upper() for e in data.UPLOAD_EXTENSIONS)
        raise UploadError(f"{name}: unsupported file type '{suffix or 'none'}'; upload {allowed}")
    header, sep, payload = (contents or "").partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise UploadError(f"{name}: the upload arrived malformed (not a base64 data URI); try again")
    if len(payload) * 3 // 4 > data.MAX_UPLOAD_BYTES + 3:
        raise UploadError(f"{name}: too large ({len(payload) * 3 / 4 / 2**20:.1f} MB); "
                          f"the limit is {data.MAX_UPLOAD_MB} MB")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError(f"{name}: the upload arrived malformed ({exc})") from exc
    if not raw:
        raise UploadError(f"{name}: empty file (0 bytes)")
    return raw


def display_name(filename: str | None) -> str:
    """The base name of an uploaded file, for messages only (never used as a path)."""
    name = str(filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable())[:120] or "upload"


def failure_message(exc: BaseException, filename: str | None) -> str:
    """The one line the page shows when a check fails.

    A TracklensError (a bad or over-limit file, as the decoder explains it) is shown as is, with
    the file name in front; anything else is a fault of the server, not of the file: its
    traceback goes to the server log and the user gets a generic line without Python's
    exception name or text.
    """
    name = display_name(filename)
    if isinstance(exc, TracklensError):
        return _with_name(str(exc), name)
    LOG.error("check your track failed for %r", name, exc_info=exc)
    return f"{name}: {GENERIC_FAILURE}"


# --- the chart reference ------------------------------------------------------------------


@dataclass
class Reference:
    """Chart tracks to compare an upload with, and the models fitted on them once.

    table : DataFrame with ``name`` (what to show) and the ``columns`` used
    columns : feature columns of the comparison
    kind : "audio" (full audio features of catalogue clips) or "chart" (audio-computable chart columns)
    coords : np.ndarray [shape=(n, 2)], the PCA map of ``table``
    """

    table: pd.DataFrame
    columns: list
    kind: str
    description: str
    scaler: object = None
    pca: object = None
    coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    neighbours: object = None

    def project(self, row: dict) -> np.ndarray:
        """Standardised features of ``row`` [shape=(1, n_columns)]; missing values -> chart mean."""
        x = np.array([[float(row.get(c, np.nan)) for c in self.columns]])
        x = np.where(np.isfinite(x), x, self.scaler.mean_)
        return self.scaler.transform(x)


def _audio_feature_table(root: Path | None) -> pd.DataFrame | None:
    """Whole-track rows of a features table written for the catalogue audio, if one exists."""
    if root is None:
        return None
    for path in (root / "features.parquet", root / "features" / "features.parquet"):
        if path.is_file():
            df = pd.read_parquet(path)
            if "segment" in df.columns:
                df = df[df["segment"] == -1]
            return df if len(df) else None
    return None


@functools.lru_cache(maxsize=1)
def chart_reference() -> Reference:
    """Build the comparison reference once: scaler, 2-D PCA map and neighbour index."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    from tracklens import features

    source = data.chart_source()
    audio_rows = _audio_feature_table(source.root) if source.kind == "demo" else None
    if audio_rows is not None:
        columns = [c for c in dict.fromkeys((*features.SUMMARY_COLUMNS, *COMPARABLE_COLUMNS))
                   if c in audio_rows.columns]  # GTZAN's summary columns include tempo
        names = audio_rows.get("track_id", audio_rows.index.astype(str)).astype(str)
        labels = audio_rows["label"].astype(str) if "label" in audio_rows.columns else ""
        table = audio_rows[columns].astype(float).assign(name=names.to_numpy(), group=np.asarray(labels))
        kind = "audio"
        description = (f"the full audio feature set ({len(columns)} features) of the "
                       f"{len(table)} catalogue clips")
    else:
        charts = data.charts()
        columns = [c for c in COMPARABLE_COLUMNS if c in charts.columns]
        table = charts[columns].apply(pd.to_numeric, errors="coerce")
        table = table.assign(name=(charts.get("artist", "").astype(str) + " — " + charts.get("song", "").astype(str)),
                             group=charts.get("year", "").astype(str)).dropna(subset=columns)
        kind = "chart"
        description = (f"the chart columns computable from audio ({', '.join(columns)}) of "
                       f"{len(table)} chart hits")
    table = table.reset_index(drop=True)
    ref = Reference(table=table, columns=columns, kind=kind, description=description)
    if len(table) >= 3:
        ref.scaler = StandardScaler().fit(table[columns].to_numpy())
        z = ref.scaler.transform(table[columns].to_numpy())
        ref.pca = PCA(n_components=2, random_state=config.DEFAULT_SEED).fit(z)
        ref.coords = ref.pca.transform(z)
        ref.neighbours = NearestNeighbors(n_neighbors=min(N_NEAREST, len(table))).fit(z)
    return ref


# --- one upload ---------------------------------------------------------------------------


@dataclass
class TrackReport:
    """Everything the page shows for one upload (small: no STFT is kept)."""

    filename: str
    duration_s: float
    blend: dict
    blend_label: str
    timeline: pd.DataFrame
    comparable: dict
    track_features: dict
    log_mel: np.ndarray
    chroma: np.ndarray
    frame_seconds: float
    map_xy: tuple | None
    nearest: pd.DataFrame
    reference_description: str
    reference_kind: str
    tags: dict | None = None
    notes: list = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-able headline for the app-level store."""
        return {"filename": self.filename, "blend_label": self.blend_label,
                "blend": {k: round(float(v), 4) for k, v in (self.blend or {}).items()}}


_cache: collections.OrderedDict = collections.OrderedDict()
_cache_lock = threading.Lock()
_check_slots = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)


def check_track(raw: bytes, filename: str) -> TrackReport:
    """Decode, featurize, blend and compare one upload (cached by content hash; at most
    ``MAX_CONCURRENT_CHECKS`` at once, the others wait).

    Raises TracklensError (audio.AudioError, UploadError) for unreadable, silent, too short or
    too long audio.
    """
    key = hashlib.sha256(raw).hexdigest()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            report = _cache[key]
            return report if report.filename == display_name(filename) else _renamed(report, filename)
    try:
        with _check_slots:
            report = _check_track(raw, display_name(filename))
    finally:
        memory.return_freed_memory()  # the analysis' arrays are freed by now
    with _cache_lock:
        _cache[key] = report
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return report


def _renamed(report: TrackReport, filename: str) -> TrackReport:
    import dataclasses

    return dataclasses.replace(report, filename=display_name(filename))


def _decode(raw: bytes, name: str):
    from tracklens import audio

    clip = audio.load_audio_bytes(raw, name=name, sr=config.SAMPLE_RATE, max_duration=data.MAX_UPLOAD_SECONDS)
    if clip.truncated or clip.source_duration_s > data.MAX_UPLOAD_SECONDS + 0.5:
        raise UploadError(f"{name}: too long ({clip.source_duration_s / 60:.1f} min); the limit is "
                          f"{data.MAX_UPLOAD_SECONDS / 60:g} min — trim it and upload again")
    return clip


def _with_name(message: str, name: str) -> str:
    return message if message.startswith(name) else f"{name}: {message}"


def _decimate(matrix: np.ndarray, max_frames: int) -> tuple[np.ndarray, int]:
    """Average groups of frames so at most ``max_frames`` columns remain; returns (matrix, step)."""
    step = max(1, int(np.ceil(matrix.shape[1] / max_frames)))
    if step == 1:
        return matrix, 1
    n = matrix.shape[1] // step * step
    return matrix[:, :n].reshape(matrix.shape[0], -1, step).mean(axis=2), step


def _check_track(raw: bytes, name: str) -> TrackReport:
    from tracklens import features

    clip = _decode(raw, name)
    ref = chart_reference()
    # The blend and the tags (one musicnn pass over the track's patches with the shipped model) run
    # beside this thread's analysis: NumPy, librosa and TensorFlow release the GIL, so one upload
    # uses both cores.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="check") as pool:
        blend_job = pool.submit(_blend_and_tags, clip)
        # One analysis for the pictures and the chart comparison; the costly summary features
        # (HPSS, ...) only when the reference has them too.
        a = features.analyze(clip.y, sr=clip.sr)
        comparable = features.spotify_comparable_features(a, duration_s=clip.source_duration_s)
        track_features = {**features.summary_features(a), **comparable} if ref.kind == "audio" else dict(comparable)
        blend, blend_label, timeline, notes, tags = blend_job.result()
    log_mel, step = _decimate(a.log_mel, MAX_DISPLAY_FRAMES)
    chroma, _ = _decimate(a.chroma, MAX_DISPLAY_FRAMES)
    map_xy, nearest = None, pd.DataFrame(columns=["name", "group", "distance"])
    if ref.pca is not None:
        z = ref.project(track_features)
        map_xy = tuple(float(v) for v in ref.pca.transform(z)[0])
        dist, idx = ref.neighbours.kneighbors(z)
        nearest = ref.table.iloc[idx[0]][["name", "group", *ref.columns]].assign(distance=dist[0])
    return TrackReport(
        filename=name, duration_s=clip.duration_s, blend=blend, blend_label=blend_label,
        timeline=timeline, comparable=comparable, track_features=track_features,
        log_mel=log_mel, chroma=chroma, frame_seconds=step * a.hop_length / a.sr,
        map_xy=map_xy, nearest=nearest, reference_description=ref.description,
        reference_kind=ref.kind, tags=tags, notes=notes,
    )


def _blend_and_tags(clip) -> tuple[dict | None, str, pd.DataFrame, list, dict | None]:
    """Genre blend of the whole track, its label, the per-window timeline, notes and musicnn tags.

    The shipped model reads musicnn's embedding and tags per 3 s patch, so the blend's forward
    pass over every patch also gives the tags (``Blend.tags``); another default model (e.g. a
    57-feature one) gets them from :func:`_tags`. Without a usable default model the blend is
    None and the note says why.
    """
    from tracklens.models import blend as blend_module

    model = data.default_model()
    if model is None:
        return None, "unavailable", pd.DataFrame(), [f"No genre blend: {data.default_model_problem()}"], _tags(clip)
    result = blend_module.predict_blend(model, clip, max_seconds=MAX_BLEND_SECONDS)
    if result.tags is None:
        tags = _tags(clip)
    else:
        tags = dict(sorted(result.tags.items(), key=lambda kv: -kv[1])[:N_TAGS])
    return result.blend, result.label, result.timeline, list(result.notes), tags


def warm_up() -> None:
    """Run one 4 s test tone through the whole check (not cached), loading every lazy part."""
    import io

    import soundfile as sf

    t = np.arange(4 * config.SAMPLE_RATE) / config.SAMPLE_RATE
    y = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, y, config.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    _check_track(buffer.getvalue(), "warm-up.wav")


def _tags(clip) -> dict | None:
    """musicnn's most likely tags ``{tag: likelihood}`` where its weights ship, else None
    (only for a default model that does not read musicnn's tags itself).

    Tagging every 3 s patch costs ~0.1 s each here (80 for a 4-minute song), so the tags are
    the mean over at most ``MAX_TAG_PATCHES`` patches spread evenly over the track.
    """
    embedder = _tagger()
    if embedder is None:
        return None
    from tracklens.models import musicnn

    patch_s = musicnn.PATCH_FRAMES * musicnn.MUSICNN_HOP / musicnn.MUSICNN_SR
    n = int(np.ceil((patch_s + 0.05) * clip.sr))  # one patch of samples, a little margin
    last = max(len(clip.y) - n, 0)
    starts = np.unique(np.linspace(0, last, MAX_TAG_PATCHES).round().astype(int))
    batch = np.concatenate([musicnn.patches(musicnn.log_mel(clip.y[s:s + n], sr=clip.sr))[:1] for s in starts])
    out = embedder.embed_patches(batch)
    return dict(musicnn.top_tags(out["tags"], name=embedder.name, k=N_TAGS))


@functools.lru_cache(maxsize=1)
def _tagger():
    """The process-wide musicnn embedder, or None when its module or weights are missing."""
    try:
        from tracklens.models import musicnn

        return musicnn.get_embedder()
    except (ImportError, TracklensError, OSError):
        return None
