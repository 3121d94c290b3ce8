"""Check your track: decode an upload, analyse it, blend it, compare it with the chart hits.

The upload reaches this module as a file the upload route stored under a random name
(`dashboard.uploads`), or as bytes (the warm-up tone, tests); its own name is only shown and
used for its extension. It is decoded in streaming blocks (`audio.load_audio`) and analysed 30 s
at a time (:data:`ANALYSIS_BLOCK_S`), so a check's memory does not grow with the track's length
beyond the decoded signal itself. What is compared with the chart hits, and how, is
`dashboard.compare`'s business.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
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

from tracklens import config, process
from tracklens.dashboard import compare, data
from tracklens.errors import TracklensError
from tracklens.models import fit

N_TAGS = 8
MAX_TAG_PATCHES = 4
# The track is analysed in blocks of about this length and the blocks' results combined: a whole
# 10-minute analysis peaked at 1.5 GB (STFT, chroma, descriptor features), one 30 s block at ~100 MB.
ANALYSIS_BLOCK_S = 30.0
# Spectrogram/chromagram columns sent to the browser: about a half-width panel's pixels on a
# laptop. With 1200 a 30 s clip's check answered 590 KB, 480 KB of it the spectrogram; with 600 a
# 6-minute track's answered 287 KB (issue 19: <= 250 KB). A 30 s clip gets 431 columns either way.
MAX_DISPLAY_FRAMES = 450
# A report holds no STFT (< 1 MB: decimated pictures, small tables); a few cover re-checking the last uploads.
_CACHE_SIZE = 3
# Checks run at most one per core at once, the others wait. One per two cores (the old limit)
# ran four 30 s uploads strictly one after another: their p95 was 4-7x one check's latency. A
# check's memory no longer grows with the track (block-wise analysis), so one per core costs
# little memory (bench/dashboard.py --clients 4: see README "Dashboard").
MAX_CONCURRENT_CHECKS = max(1, os.cpu_count() or 2)
#: How models.fit's "not music" verdict begins (its first rule: AudioSet's Music likelihood is low).
NOT_MUSIC_REASON = fit.NOT_MUSIC
GENERIC_FAILURE = "could not be analysed (an unexpected error on the server; it has been logged)"
LOG = logging.getLogger(__name__)


class UploadError(TracklensError):
    """An upload the page refuses after decoding (too long); the decoder's own refusals
    (unreadable, silent, over its limits) are ``audio.AudioError``."""


MAX_NAME_CHARS = 120  # a longer name is shortened in the middle of its stem: "<start>…<end>.wav"


def display_name(filename: str | None) -> str:
    """The base name of an uploaded file, for messages only (never used as a path).

    Non-printable characters are dropped; a name over MAX_NAME_CHARS keeps its start, its end and
    its whole extension (the upload route reads the type from it), with "…" in between.
    """
    name = str(filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()) or "upload"
    if len(name) <= MAX_NAME_CHARS:
        return name
    stem, dot, suffix = name.rpartition(".")
    suffix = dot + suffix if stem and len(suffix) < 16 else ""
    stem = name[: len(name) - len(suffix)]
    keep = MAX_NAME_CHARS - len(suffix) - 1
    return stem[: keep - keep // 4] + "…" + stem[len(stem) - keep // 4:] + suffix


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


def _with_name(message: str, name: str) -> str:
    return message if message.startswith(name) else f"{name}: {message}"


# --- one upload ---------------------------------------------------------------------------


@dataclass
class TrackReport:
    """Everything the page shows for one upload (small: no STFT is kept).

    genre_blend : the models.blend Blend (its timeline, fit verdict, chart-genre tags...), or
        None without a genre model (``blend_problem`` says why)
    upload : what the chart comparison needs (compare.Upload)
    distance_columns : the continuous features the neighbours and the map used
    """

    filename: str
    duration_s: float
    upload: compare.Upload
    genre_blend: object
    blend_problem: str
    log_mel: np.ndarray
    chroma: np.ndarray
    frame_seconds: float
    whole_track: bool
    distance_columns: list
    map_xy: tuple | None
    nearest: pd.DataFrame
    tags: dict | None = None
    tags_caption: str = ""
    timings: dict = field(default_factory=dict)  # stage -> wall seconds, and "cpu_s" (the check's process CPU)

    @property
    def blend(self) -> dict:
        """``{genre: probability}``, most likely first (empty without a model)."""
        return self.genre_blend.blend if self.genre_blend is not None else {}

    @property
    def fits(self) -> bool:
        """False when the fit rule (models.fit) says the ten genres do not describe the track."""
        return getattr(self.genre_blend, "fit", None) != "poor"

    @property
    def not_music(self) -> bool:
        """True when AudioSet hears speech, noise or a tone rather than music (models.fit's first rule):
        tempo, key, chart genres and neighbours would describe music that is not there."""
        return not self.fits and str(getattr(self.genre_blend, "fit_reason", "")).startswith(NOT_MUSIC_REASON)

    @property
    def blend_label(self) -> str:
        """The blend's label; "does not fit ..." first when the ten genres do not describe the track."""
        if self.genre_blend is None:
            return "unavailable"
        return self.genre_blend.label if self.fits else f"does not fit the ten genres (closest: {self.genre_blend.label})"

    @property
    def comparable(self) -> dict:
        return self.upload.comparable

    def summary(self) -> dict:
        """JSON-able headline for the app-level store."""
        return {"filename": self.filename, "blend_label": self.blend_label,
                "blend": {k: round(float(v), 4) for k, v in self.blend.items()}}


def _no_stage(stage: str) -> None:
    """The default stage listener: hears nothing."""


_stage_listener = threading.local()  # check_track's on_stage, for the check running in this thread
_cache: collections.OrderedDict = collections.OrderedDict()
_cache_lock = threading.Lock()
_check_slots = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)


def check_track(source: bytes | Path, filename: str, *, digest: str | None = None, on_stage=_no_stage) -> TrackReport:
    """Decode, analyse, blend and compare one upload: its bytes, or a stored file (then give its
    SHA-256 as ``digest``). Cached by content hash; at most ``MAX_CONCURRENT_CHECKS`` at once, the
    others wait.

    ``on_stage(name)`` hears each stage as it starts ("decoding", "blending", "comparing").

    Raises TracklensError (audio.AudioError, UploadError) for unreadable, silent, too short or
    too long audio.
    """
    key = digest or hashlib.sha256(source).hexdigest()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            report = _cache[key]
            return report if report.filename == display_name(filename) else \
                dataclasses.replace(report, filename=display_name(filename))
    try:
        with _check_slots:
            _stage_listener.on_stage = on_stage
            report = _check_track(source, display_name(filename))
    finally:
        _stage_listener.on_stage = _no_stage
        process.return_freed_memory()  # the analysis' arrays are freed by now
    with _cache_lock:
        _cache[key] = report
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return report


def cached_report(digest: str, filename: str = "") -> TrackReport | None:
    """The report of an upload checked earlier by this process (by its SHA-256), or None once it
    has left the cache; named ``filename`` when given."""
    with _cache_lock:
        report = _cache.get(str(digest))
    if report is None or not filename or report.filename == display_name(filename):
        return report
    return dataclasses.replace(report, filename=display_name(filename))


@contextlib.contextmanager
def _as_file(source: bytes | Path, name: str):
    """``source`` as a file: a stored upload as it is, bytes (the warm-up tone, tests) in a private
    temporary folder, named by the upload's extension (the decoder reads it) and removed after."""
    if not isinstance(source, (bytes, bytearray)):
        yield Path(source)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tracklens-check-") as folder:
        path = Path(folder) / ("upload" + Path(name).suffix.lower())
        path.write_bytes(bytes(source))
        yield path


@contextlib.contextmanager
def _named_errors(path: Path, name: str):
    """Decoder messages name the stored file: they name the user's file instead."""
    from tracklens import audio

    try:
        yield
    except audio.AudioError as exc:
        raise audio.AudioError(str(exc).replace(str(path), name)) from None
    except TracklensError as exc:
        raise TracklensError(str(exc).replace(str(path), name)) from None


def _decode(path: Path, name: str, taps=()):
    from tracklens import audio

    with _named_errors(path, name):
        clip = audio.load_audio(path, sr=config.SAMPLE_RATE, max_duration=data.MAX_UPLOAD_SECONDS, taps=taps)
    if clip.truncated or data.is_too_long(clip.source_duration_s):
        raise UploadError(data.too_long_line(name, clip.source_duration_s))
    return clip


def _check_track(source: bytes | Path, name: str) -> TrackReport:
    with _as_file(source, name) as path:
        return _check_file(path, name, getattr(_stage_listener, "on_stage", _no_stage))


def _check_file(path: Path, name: str, on_stage) -> TrackReport:
    """The check of one stored file, decoded once: at the file's own rate, every channel, in
    streaming blocks (`audio.load_audio`), which feed the analysis' mono signal (downmix +
    resample to the feature engine's rate), the loudness meter (the channels, in a thread of its
    own) and the blend's blocks (`blend.BlockCutter`: each block resampled to the model's rate
    on its own, the samples `tracklens predict` and ``blend.predict_blend(model, path)`` read,
    the whole track up to the 10-minute limit), so all three give one answer."""
    from tracklens import loudness

    clock = _Clock()
    on_stage("decoding")
    model = data.default_model()
    meter = loudness.MeterTap(background=True)
    cutter = _blend_cutter(model, path)
    try:
        clip = _decode(path, name, taps=[meter] + ([cutter] if cutter is not None else []))
        clock.lap("decode")
        ref = compare.chart_reference()
        on_stage("blending")
        # The blend and the tags run beside this thread's analysis, the meter in a third thread:
        # NumPy, SciPy, librosa and TensorFlow release the GIL, so one upload uses both cores.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="check") as pool:
            blend_job = pool.submit(_timed, _blend_and_tags, clip, path, name, model, cutter)
            analysis = analyse(clip, summary=ref is not None and ref.kind == "audio", meter=_Waiting(meter, clock))
            clock.lap("analysis")
            (genre_blend, problem, tags, caption), clock.marks["blend (own thread)"] = blend_job.result()
            clock.lap("blend wait")
    except BaseException:
        # e.g. too long, or the analysis or the blend failed: nobody will read the measurement,
        # which would otherwise keep a core busy measuring a failed check
        meter.cancel()
        raise
    on_stage("comparing")
    charts = data.charts()
    upload = compare.Upload(comparable=analysis.comparable, duration_s=clip.source_duration_s,
                            estimates=analysis.estimates, unavailable=analysis.unavailable)
    whole = compare.is_whole_track(clip.source_duration_s, charts)
    map_xy, nearest, columns = None, pd.DataFrame(columns=["name", "group", "distance"]), []
    if ref is not None and ref.kind == "audio":  # the chart table has no audio: no neighbours by sound
        row = {**analysis.summary, **analysis.comparable, **{k: v for k, (v, _) in analysis.estimates.items()}}
        columns = ref.columns_for(row, whole_track=whole)
        nearest = ref.nearest(row, columns)
        map_xy = ref.place(row, columns)
    clock.lap("neighbours")
    timings = clock.result()
    LOG.info("checked %r (%.0f s): %s", name, clip.source_duration_s,
             ", ".join(f"{k} {v:.3f}" for k, v in timings.items()))
    return TrackReport(
        filename=name, duration_s=clip.duration_s, upload=upload, genre_blend=genre_blend, blend_problem=problem,
        log_mel=analysis.log_mel, chroma=analysis.chroma, frame_seconds=analysis.frame_seconds,
        whole_track=whole, distance_columns=columns, map_xy=map_xy, nearest=nearest, tags=tags, tags_caption=caption,
        timings=timings,
    )


class _Clock:
    """Wall seconds per stage of one check (``lap``), and the process' CPU seconds over it (all
    threads; other checks running at the same time count too)."""

    def __init__(self):
        import time

        self._time = time
        self.start = self.last = time.perf_counter()
        self.cpu0 = time.process_time()
        self.marks: dict = {}

    def lap(self, stage: str) -> None:
        now = self._time.perf_counter()
        self.marks[stage] = self.marks.get(stage, 0.0) + now - self.last
        self.last = now

    def result(self) -> dict:
        return {**self.marks, "total": self._time.perf_counter() - self.start,
                "cpu_s": self._time.process_time() - self.cpu0}


def _timed(function, *args):
    """(function(*args), its wall seconds): for a stage run in another thread."""
    import time

    start = time.perf_counter()
    return function(*args), time.perf_counter() - start


class _Waiting:
    """The background meter as ``analyse`` reads it: ``result()`` waits for the meter's thread
    (the wait is timed as the stage "meter wait")."""

    def __init__(self, tap, clock: _Clock):
        self.tap, self.clock = tap, clock

    def result(self):
        self.clock.lap("analysis")
        meter = self.tap.meter()
        self.clock.lap("meter wait")
        return meter.result()


def _blend_cutter(model, path: Path):
    """The tap that cuts the decoding into ``model``'s blocks (None without a model)."""
    if model is None:
        return None
    from tracklens.models import blend as blend_module

    return blend_module.block_cutter(model, max_seconds=config.FEATURE_MAX_DURATION_S, name=str(path))


# --- the analysis, block by block ---------------------------------------------------------


@dataclass
class TrackAnalysis:
    """The whole track's analysis, combined from its blocks.

    comparable : tempo (BPM, of the blocks' mean tempogram; tempo_alt its x2 / x1/2 when close),
        loudness (BS.1770-4 integrated LUFS over the file's channels), true_peak_dbtp,
        loudness_range_lu (EBU Tech 3342), normalisation (loudness.normalisation: what Spotify,
        YouTube, Apple Music do), key and mode (features.learned_key of the blocks' evidence;
        key_confidence, key_runner_up), duration_ms (of the file)
    estimates : descriptor -> (estimate, held-out error), from the frame-weighted means of the
        estimator's features; ``unavailable`` says why the others have none
    summary : the 57 summary features (blocks' duration-weighted means), only when asked for
    log_mel, chroma : decimated to at most MAX_DISPLAY_FRAMES columns of ``frame_seconds``
    """

    comparable: dict
    estimates: dict
    unavailable: dict
    summary: dict
    log_mel: np.ndarray
    chroma: np.ndarray
    frame_seconds: float


def block_bounds(n_samples: int, sr: int, block_s: float = ANALYSIS_BLOCK_S) -> list[tuple[int, int]]:
    """Sample ranges of about ``block_s`` seconds covering the signal (a 40 s track is one block,
    a 50 s one two of 25 s: no block is shorter than 2/3 of ``block_s``)."""
    n_blocks = max(1, int(round(n_samples / (block_s * sr))))
    edges = np.linspace(0, n_samples, n_blocks + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:]))


def analyse(clip, *, summary: bool = False, meter=None) -> TrackAnalysis:
    """Analyse ``clip`` block by block (see :class:`TrackAnalysis` for how blocks combine);
    ``meter``: what measured the file's channels, read by its ``result()`` (a LoudnessMeter, e.g.
    features.channel_meter's, or the check's background loudness.MeterTap, waited for), else
    the mono clip is measured."""
    from tracklens import features, key_estimation, loudness, pitch_posteriors

    estimator, unavailable = _descriptor_estimator()
    hop = config.HOP_LENGTH
    step = max(1, int(np.ceil((1 + len(clip.y) // hop) / MAX_DISPLAY_FRAMES)))
    key_evidence, n_frames = key_estimation.KeyEvidence(), 0
    beat_strength, pitched_strength, weights, fma_means, summaries, log_mels, chromas = 0.0, 0.0, [], [], [], [], []
    bounds = block_bounds(len(clip.y), clip.sr)
    # basic-pitch is most of the analysis' CPU and onnxruntime lets go of the GIL: its thread runs
    # one block ahead of the rest of the analysis (two cores: a 6-minute master 7.1 -> 5.9 s).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitch") as pitch_pool:
        def posteriors_of(i):
            begin, stop = bounds[i]
            return pitch_pool.submit(pitch_posteriors.posteriors, clip.y[begin:stop], sr=clip.sr)

        upcoming = posteriors_of(0)
        for i, (start, end) in enumerate(bounds):
            block_posteriors = upcoming.result()
            upcoming = posteriors_of(i + 1) if i + 1 < len(bounds) else None
            a = features.analyze(clip.y[start:end], sr=clip.sr)
            a.pitch_posteriors = block_posteriors  # the cached property, computed in the pitch thread
            key_evidence.add(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=a.pitch_posteriors)
            n_frames += a.n_frames
            beat_strength = beat_strength + a.beat_tempogram.sum(axis=1)
            pitched_strength = pitched_strength + a.pitched_tempogram.sum(axis=1)
            weights.append(end - start)
            if estimator is not None:
                from tracklens.models import descriptors

                fma_means.append((descriptors.fma_feature_means(a), a.n_frames))
            if summary:
                summaries.append(features.summary_features(a))
            log_mels.append(_decimate(a.log_mel, step))
            chromas.append(_decimate(a.chroma, step))
            del a  # its STFT and derived arrays go before the next block's
    key = features.learned_key(key_evidence)
    strength = features.tempo_strength(beat_strength / n_frames, pitched_strength / n_frames, sr=clip.sr, hop_length=hop)
    tempo = features.estimate_tempo(strength, sr=clip.sr, hop_length=hop)
    measured = (meter or features.mono_meter(clip.y, sr=clip.sr)).result()
    comparable = {"tempo": tempo.bpm, "tempo_alt": tempo.alternative,
                  "loudness": measured.integrated_lufs, "true_peak_dbtp": measured.true_peak_dbtp,
                  "loudness_range_lu": measured.loudness_range_lu,
                  "normalisation": loudness.normalisation(measured.integrated_lufs, measured.true_peak_dbtp),
                  "key": key.key, "mode": key.mode, "key_confidence": key.confidence,
                  "key_runner_up": key.runner_up_name,
                  "duration_ms": int(round(clip.source_duration_s * 1000))}
    return TrackAnalysis(
        comparable=comparable, estimates=_estimates(estimator, fma_means), unavailable=unavailable,
        summary=pd.DataFrame(summaries).mul(weights, axis=0).sum().div(sum(weights)).to_dict() if summary else {},
        log_mel=np.hstack(log_mels), chroma=np.hstack(chromas), frame_seconds=step * hop / clip.sr)


def _decimate(matrix: np.ndarray, step: int) -> np.ndarray:
    """Average groups of ``step`` frames (the last group may be shorter)."""
    if step == 1:
        return matrix
    starts = np.arange(0, matrix.shape[1], step)
    return np.add.reduceat(matrix, starts, axis=1) / np.diff(np.append(starts, matrix.shape[1]))


def _descriptor_estimator():
    """(the shipped descriptor estimator or None, {descriptor: why it has no estimate})."""
    from tracklens.models import descriptors

    try:
        estimator = descriptors.load_estimator()
    except TracklensError as exc:
        return None, {name: f"no descriptor estimator ({exc})" for name in descriptors.DESCRIPTORS}
    return estimator, dict(estimator.unavailable)


def _estimates(estimator, fma_means: list[tuple[dict, int]]) -> dict:
    """descriptor -> (estimate, held-out error) from the blocks' feature means, frame-weighted."""
    if estimator is None or not fma_means:
        return {}
    frames = np.array([n for _, n in fma_means], dtype=float)
    matrix = np.array([[means[c] for c in estimator.columns] for means, _ in fma_means])
    values = estimator.predict((frames @ matrix / frames.sum())[None, :])
    return {name: (float(v[0]), float(estimator.held_out_mae[name])) for name, v in values.items()}


# --- the genre blend and tags -------------------------------------------------------------


def _blend_and_tags(clip, path: Path, name: str, model=None, cutter=None) -> tuple[object, str, dict | None, str]:
    """(the models.blend Blend or None, why there is none, tags, where the tags come from).

    The shipped model reads musicnn's embedding and tags per 3 s patch, so the blend's forward
    pass over every patch also gives the tags (``Blend.tags``); another default model (e.g. a
    57-feature one) gets them from :func:`_tags`.
    """
    from tracklens.models import blend as blend_module

    if model is None:
        tags = _tags(clip)
        return None, f"No genre blend: {data.default_model_problem()}", tags, _fallback_caption(tags)
    # The whole track up to the upload limit, as `tracklens predict` reads it (issue 19: the page
    # blended 60 s and gave other probabilities than predict for the same file); the cutter's
    # blocks are `predict_blend(model, path)`'s, from the page's one decode.
    with _named_errors(path, name):
        result = blend_module.predict_blend(model, cutter if cutter is not None else path,
                                            max_seconds=config.FEATURE_MAX_DURATION_S)
    if result.tags is None:
        tags = _tags(clip)
        return result, "", tags, _fallback_caption(tags)
    tags = dict(sorted(result.tags.items(), key=lambda kv: -kv[1])[:N_TAGS])
    source = getattr(result, "tags_source", None) or "the model's tagger"
    analysed = getattr(result, "analysed_s", 0.0) or result.duration_s
    return result, "", tags, f"{source}, mean over every window of the {analysed:.0f} s the blend read"


def _fallback_caption(tags: dict | None) -> str:
    return f"musicnn: mean of {MAX_TAG_PATCHES} 3 s excerpts spread over the track" if tags else ""


def warm_up() -> str:
    """Load the chart table, model, tagger and comparison map, and run one 4 s test tone through
    the whole check (not cached), so the first upload pays for no imports or JIT compilation;
    return a one-line summary of what the dashboard serves."""
    import io

    import soundfile as sf

    t = np.arange(4 * config.SAMPLE_RATE) / config.SAMPLE_RATE
    y = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, y, config.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    df, model, reference = data.charts(), data.default_model(), compare.chart_reference()
    _check_track(buffer.getvalue(), "warm-up.wav")
    model_text = getattr(model, "name", None) or f"none ({data.default_model_problem()})"
    compared = (f"neighbours among {len(reference.table)} {reference.source}" if reference is not None
                else "no chart tracks to compare with")
    return f"{len(df)} chart rows from {data.chart_label()}; genre model {model_text}; {compared}"


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

    n = int(np.ceil((musicnn.PATCH_S + 0.05) * clip.sr))  # one patch of samples, a little margin
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
