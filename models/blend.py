"""The genre blend: a calibrated probability per genre for any track, with a label, a timeline,
a verdict on whether the ten genres fit it, and chart-genre tags.

:class:`GenreModel` wraps a verified model directory (see :mod:`models.store`): the Keras model,
its card and its calibration temperature. :func:`predict_blend` turns an audio file, an
:class:`audio.AudioClip` or a :class:`features.ClipFeatures` into a :class:`Blend`:

- ``probabilities``: one per genre, summing to 1 (temperature-scaled, so 0.6 means right ~60 %
  of the time on the validation fold);
- ``top_genre`` and ``label``: the top genre, or ``"<top>-<second>"`` (e.g. ``"hiphop-metal"``)
  when the second genre's probability is within :data:`BLEND_MARGIN` of the top one's;
- ``timeline``: the blend per analysis window, with each window's exact ``start_s`` / ``end_s``;
  ``analysed`` / ``analysed_s`` say which seconds of the track were read;
- ``fit`` (``ok`` / ``poor``), ``fit_reason`` and ``wider_genres``: whether the ten genres
  describe the track at all (:mod:`models.fit`, from EfficientAT's AudioSet tags);
- ``chart_genres``: AudioSet genres mapped onto the chart table's genres (:mod:`models.chart_genres`;
  uncalibrated likelihoods);
- ``tags`` / ``tags_source``: the track mean of the tagger the model ran (musicnn's MSD tags for
  musicnn and fusion models, else AudioSet's classes) - from the same forward pass.

Any model kind of :mod:`models.registry` works, decoded at the sample rate its card records
(``input.sample_rate``: 16 kHz musicnn, 32 kHz EfficientAT and fusion, 22.05 kHz feature models;
in-memory audio at another rate is resampled to it). A file is decoded once, start to end, at
its own rate and cut into blocks of ~30 s, each resampled to the model's rate on its own
(:class:`BlockCutter`: the samples ``audio.load_audio`` with that block's offset gives; the check
page feeds the same cutter from the decoding it shares with its analysis and loudness meter); the blocks
cover the track back to back, each second once, the tail a shorter last block (:func:`block_plan`;
a plan is arithmetic and bounded, whatever duration a header claims). By default every block of a track up to the 10-minute limit is
blended (:data:`MAX_BLEND_S`; ``max_seconds`` reads fewer, evenly spread). Inside each block the
model classifies windows of ``card.input.window_s`` seconds: 10 s EfficientAT windows
(:mod:`models.efficientat_models`; a shorter input is one shorter window), musicnn's 3 s patches
(:func:`models.musicnn_models.window_inputs`; shorter input is repeat-padded, as musicnn was
trained), 3 s segments for frame models, 10 s for models trained on the published 30 s GTZAN
table (bench/accuracy.py found them as accurate as whole clips once averaged). The track blend
is the normalised geometric mean of the window probabilities (the card's
``calibration.aggregation``, the one its temperature was fitted with), then temperature-scaled.
A summary model analyses input shorter than one window as it is (``SHORT_INPUT``); frame models
need whole 3 s segments, so short input is looped for them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.models import datasets, evaluate, kinds, store

BLEND_MARGIN = 0.10  # a second genre within 0.10 probability of the top one names a blend
# Measured by bench/accuracy.py on the real GTZAN valid fold (see README "Genre models"):
SHORT_INPUT = "as_is"  # summary models: analyse a short clip as it is ("loop": repeat it to one window)
BLOCK_S = 30.0  # audio is decoded in ~30 s blocks; the model's windows inside each are classified
#: The shipped models besides config.DEFAULT_MODEL_DIR, by folder name (``--model default-fast`` works).
FAST_MODEL_DIR = config.DEFAULT_FAST_MODEL_DIR
SHIPPED_NAMES = ("default", "default-fast", "default-table", "fusion", "musicnn")  # fusion, musicnn: earlier recipes, by name
#: predict_blend reads at most this much of a track by default (the feature engine's limit, 10 min)
MAX_BLEND_S = config.FEATURE_MAX_DURATION_S
#: A header's duration above this is treated as unknown (the blocks are then read until the data ends)
MAX_BELIEVED_S = 24 * 3600.0
#: Files up to this long are decoded once and cut into blocks (BlockCutter), longer ones block by
#: block: the check page's upload limit (10 min, + its 0.5 s tolerance), within a second.
ONE_DECODE_MAX_S = MAX_BLEND_S + 1.0


@dataclass
class Blend:
    """One track's genre blend.

    probabilities : np.ndarray [shape=(n_genres,)], sums to 1
    timeline : DataFrame, one row per window: ``start_s``, ``end_s``, one column per genre, ``top_genre``
    """

    path: str | None
    genres: list[str]
    probabilities: np.ndarray
    timeline: pd.DataFrame
    duration_s: float
    model: str
    margin: float = BLEND_MARGIN
    notes: list[str] = field(default_factory=list)
    tags: dict[str, float] | None = None  # tag likelihoods (track mean) of the tagger the model ran
    tags_source: str | None = None  # which tagger: "MSD_musicnn" or "mn04_as (AudioSet)"
    fit: str | None = None  # "ok" / "poor": do the genres describe the track (None: not judged)
    fit_reason: str = ""
    wider_genres: list[tuple[str, float]] = field(default_factory=list)  # AudioSet genres beyond the ten
    chart_genres: list[tuple[str, float]] = field(default_factory=list)  # chart genre, likelihood (uncalibrated)
    analysed_s: float = 0.0  # seconds of audio the blend read (the timeline rows say which)
    embedding: np.ndarray | None = None  # track mean of EfficientAT's window embeddings, when the model's pass made them
    audioset: np.ndarray | None = None  # the track's 527 AudioSet likelihoods the fit verdict read (None: not judged)

    @property
    def blend(self) -> dict[str, float]:
        """``{genre: probability}``, most likely first."""
        order = np.argsort(-self.probabilities, kind="stable")
        return {self.genres[i]: float(self.probabilities[i]) for i in order}

    @property
    def top_genre(self) -> str:
        return self.genres[int(np.argmax(self.probabilities))]

    @property
    def label(self) -> str:
        """The top genre, or ``"top-second"`` when the second is within ``margin`` of the top."""
        (g1, p1), (g2, p2) = list(self.blend.items())[:2] if len(self.genres) > 1 else [(self.top_genre, 1.0)] * 2
        return f"{g1}-{g2}" if g1 != g2 and p1 - p2 <= self.margin else g1

    def top(self, k: int) -> list[tuple[str, float]]:
        return list(self.blend.items())[:k]

    @property
    def analysed(self) -> list[tuple[float, float]]:
        """The stretches of the track the blend read, ``[(start_s, end_s), ...]`` (overlaps merged)."""
        return merge_spans(zip(self.timeline.get("start_s", []), self.timeline.get("end_s", [])))

    def top_tags(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most likely tags of :attr:`tags`, best first (empty without tags)."""
        return sorted((self.tags or {}).items(), key=lambda kv: -kv[1])[:k]


def merge_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted ``(start, end)`` spans with overlapping or touching ones joined."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted((float(a), float(b)) for a, b in spans):
        if merged and start <= merged[-1][1] + 1e-6:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class GenreModel:
    """A verified, calibrated genre model loaded from a directory (``model.keras`` + ``card.json``)."""

    def __init__(self, keras_model, card: dict, model_dir: Path):
        self.keras_model = keras_model
        self.card = card
        self.model_dir = Path(model_dir)

    @classmethod
    def load(cls, model_dir: str | Path) -> "GenreModel":
        """Load and verify; raises ModelCardError (a TracklensError) with the reason on any doubt."""
        keras_model, card = store.load_keras_model(model_dir)
        kinds.get(card["input"].get("kind", "")).check_weights(card, Path(model_dir))
        return cls(keras_model, card, Path(model_dir))

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def genres(self) -> list[str]:
        return list(self.card["genres"])

    @property
    def input_kind(self) -> str:
        return self.card["input"]["kind"]

    @property
    def kind(self) -> kinds.InputKind:
        """What the card's input kind means (:mod:`models.kinds`)."""
        return kinds.get(self.input_kind)

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) the model's audio is decoded at (the card's; older cards: the feature engine's)."""
        return int(self.card["input"].get("sample_rate", config.SAMPLE_RATE))

    @property
    def window_s(self) -> float:
        """Length (s) of the analysis windows the model classifies (3 s segments, 10 s for table models)."""
        return float(self.card["input"]["window_s"])

    @property
    def aggregation(self) -> str:
        """How window probabilities combine into the track's ("mean_logprob" or "mean_prob")."""
        return self.card["calibration"].get("aggregation", "mean_prob")

    @property
    def temperature(self) -> float:
        return float(self.card["calibration"]["temperature"])

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated probabilities (n, n_genres) for raw inputs of the card's kind and shape."""
        x = np.asarray(x, dtype=np.float32)
        expected = tuple(self.card["input"]["shape"])
        if x.ndim == len(expected):
            x = x[None]
        if x.shape[1:] != expected and self.kind.reads_table:
            raise TracklensError(f"model {self.name} expects inputs of shape {expected}, got {x.shape[1:]}")
        if len(x) == 0:
            return np.zeros((0, len(self.genres)))
        # A direct call, not predict(): no per-shape graph retracing for the few windows of one track.
        return np.vstack([np.asarray(self.keras_model(x[i:i + 256], training=False), dtype=np.float64)
                          for i in range(0, len(x), 256)])

    def calibrate(self, proba: np.ndarray) -> np.ndarray:
        return evaluate.apply_temperature(proba, self.temperature)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, n_genres), rows summing to 1."""
        return self.calibrate(self.predict_raw(x))

    def summary_matrix(self, table: pd.DataFrame) -> np.ndarray:
        """The model's summary columns from a feature table, in the card's order."""
        columns = self.card["input"]["columns"]
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise TracklensError(f"feature table lacks {missing[:5]} needed by model {self.name}")
        return table[columns].to_numpy(np.float32)


def resolve_model_dir(model: str | Path | None, *, table: bool = False) -> Path:
    """``None`` -> the shipped default (``table``: the shipped 57-feature model, for feature tables);
    an existing folder -> itself; a name -> TRAINED_MODELS_DIR/name, else a shipped folder's name
    (:data:`SHIPPED_NAMES`)."""
    if model is None:
        return config.DEFAULT_TABLE_MODEL_DIR if table else config.DEFAULT_MODEL_DIR
    path = Path(model)
    if path.is_dir():
        return path
    candidate = config.TRAINED_MODELS_DIR / str(model)
    if candidate.is_dir():
        return candidate
    if str(model) in SHIPPED_NAMES:
        return config.MODELS_DIR / str(model)
    raise TracklensError(f"model {model!r}: no such folder, and no trained model of that name in {config.TRAINED_MODELS_DIR}")


def load_model(model: str | Path | None = None, *, table: bool = False) -> GenreModel:
    """Load a model by folder or name (default: the shipped model in ``models/default``; with
    ``table``, for GTZAN-schema feature tables, the shipped summary model in ``models/default-table``)."""
    return GenreModel.load(resolve_model_dir(model, table=table))


def load_default_model() -> GenreModel:
    """The shipped default model (``config.DEFAULT_MODEL_DIR``)."""
    return GenreModel.load(config.DEFAULT_MODEL_DIR)


def load_fast_model() -> GenreModel:
    """The shipped one-pass EfficientAT model (:data:`FAST_MODEL_DIR`): cheap enough to blend a
    whole track interactively (README "Genre models" has its cost and accuracy beside the default's)."""
    return GenreModel.load(FAST_MODEL_DIR)


# --- windows over a track ---------------------------------------------------------------------------


#: A remainder shorter than this after the last whole block joins that block instead of being a
#: block of its own (the decoder refuses clips under config.MIN_DURATION_S)
TAIL_MIN_S = config.MIN_DURATION_S


class Block(NamedTuple):
    """One stretch of a track that :func:`predict_blend` decodes and classifies: ``[start_s, end_s)``;
    ``last``: the plan's last block."""

    start_s: float
    end_s: float
    last: bool


def block_plan(duration_s: float, block_s: float, *, max_blocks: int | None = None) -> Iterator[Block]:
    """The blocks that cover ``[0, duration_s)`` exactly once: back to back, ``block_s`` long, and
    a remainder of at least :data:`TAIL_MIN_S` as a shorter last block of its own (a 215 s track
    at 30 s: seven blocks and 210-215 s; a 40 s track: 0-30 and 30-40 s). A remainder under
    :data:`TAIL_MIN_S` is left out (the decoder refuses such a clip, and no model window is that
    short: a 30.013 s GTZAN clip is one 0-30 s block); a track shorter than one block is one block.

    ``max_blocks``: at most that many blocks, those at the centres of equal parts of the track (so
    intro and outro do not stand for the whole). The plan is arithmetic and lazy: a header that
    claims 2^49 samples costs nothing here (the decoder then finds the data ends early). A
    duration that is unknown (NaN) or above :data:`MAX_BELIEVED_S` plans blocks from the start,
    without end: the caller stops when decoding yields less than a block.
    """
    if not block_s > 0:
        raise TracklensError(f"block_s={block_s} must be > 0")
    if duration_s <= 0:  # nothing to read (NaN compares False: it goes on to the unknown-length plan)
        return
    if not duration_s <= MAX_BELIEVED_S:  # unknown (NaN), or a header not believed
        for i in itertools.count() if max_blocks is None else range(max(1, max_blocks)):
            yield Block(i * block_s, (i + 1) * block_s, False)
        return
    n_whole = int(duration_s // block_s)
    tail = duration_s - n_whole * block_s
    n = max(1, n_whole + (tail >= TAIL_MIN_S))

    def block(i: int) -> Block:
        end = min(duration_s, (i + 1) * block_s) if i < n_whole else duration_s
        return Block(i * block_s, end, i == n - 1)

    if max_blocks is None or n <= max_blocks:
        yield from map(block, range(n))
        return
    k = max(1, max_blocks)
    for i in sorted({round((j + 0.5) / k * (n - 1)) for j in range(k)}):
        yield block(int(i))


_loop_to = kinds.loop_to  # bench/accuracy.py loops a short clip as the blend does


def _source_clip(source):
    """(AudioClip or None, path or None, duration in s) without decoding a file."""
    from tracklens.audio import AudioClip, probe_audio

    if isinstance(source, (str, Path)):  # the header's word: block_plan decides how far to believe it
        return None, str(source), float(probe_audio(source)["duration_s"])
    if isinstance(source, AudioClip):
        return source, source.path, source.duration_s
    analysis = getattr(source, "analysis", None)  # features.ClipFeatures
    if analysis is not None:
        track = getattr(source, "track", {}) or {}
        clip = AudioClip(y=np.asarray(analysis.y, dtype=np.float32), sr=int(analysis.sr), path=track.get("path"),
                         source_sr=int(analysis.sr), channels=1, source_duration_s=analysis.duration_s)
        return clip, clip.path, clip.duration_s
    raise TracklensError(f"cannot predict a blend from {type(source).__name__}: pass a path, AudioClip or ClipFeatures")


def _windows(clip, path, duration_s: float, block_s: float, *, max_windows: int | None = None,
             sr: int = config.SAMPLE_RATE) -> Iterator[tuple[float, float, object]]:
    """Yield (start_s, end_s, AudioClip) per block of :func:`block_plan`: slices of an in-memory
    ``clip``, or the blocks of one decoding of the file ``path`` (:class:`BlockCutter`, at
    ``sr``); ``end_s`` is where the decoded audio ends, never a header's promise.

    ``max_windows``: at most that many blocks, at the centres of equal parts of the track. A
    block that decodes short of its plan ends the plan (the data ended before the header said).
    A file up to :data:`ONE_DECODE_MAX_S` long is decoded once and cut (its blocks held at
    ``sr``: 77 MB for 10 minutes at 32 kHz); a longer one, or one whose header gives no
    believable length, is decoded one block at a time by seeking (memory and time bounded by the
    blocks read, however long the file).
    """
    from tracklens.audio import AudioClip, AudioError, decode_into, load_audio

    if clip is None and duration_s <= ONE_DECODE_MAX_S:
        cutter = BlockCutter(sr=sr, block_s=block_s, max_blocks=max_windows, duration_s=duration_s, name=path)
        decode_into(path, [cutter], max_duration=cutter.decode_limit_s())
        yield from cutter.blocks()
        return
    for start, end, _ in block_plan(duration_s, block_s, max_blocks=max_windows):
        planned = end - start
        if clip is not None:
            i0 = int(round(start * clip.sr))
            i1 = int(round(end * clip.sr))
            part = AudioClip(y=clip.y[i0:i1], sr=clip.sr, path=clip.path, source_sr=clip.source_sr,
                             channels=clip.channels, source_duration_s=clip.source_duration_s)
        else:
            try:
                part = load_audio(path, sr=sr, offset=start, max_duration=planned)
            except AudioError:
                if duration_s <= MAX_BELIEVED_S or start == 0:
                    raise
                return  # a track of unknown length ended at a block boundary
        yield start, start + part.duration_s, part
        if part.duration_s < planned - 0.5:
            return


class BlockCutter:
    """A decoder tap (:class:`tracklens.audio.BlockTap`) that cuts one decoding of a file into the
    blocks of :func:`block_plan` and resamples each block on its own to the model's rate ``sr``:
    the samples ``audio.load_audio(path, sr=sr, offset=start, max_duration=end - start)`` gives
    (the same frames, downmix and soxr stream; seeking is sample-exact for the formats soundfile
    reads), without decoding the file once per block or once more beside the page's analysis.

    ``duration_s``: the header's duration as :func:`tracklens.audio.probe_audio` reads it (None:
    the decoder's own header reading, given at ``start``). A block cut short by the end of the
    data ends the plan; a cut-short block under ``config.MIN_DURATION_S`` after the first is
    dropped (a track of unknown length that ended near a block boundary).
    """

    def __init__(self, *, sr: int, block_s: float, max_blocks: int | None = None, duration_s: float | None = None,
                 name: str | None = None):
        self.sr, self.block_s, self.max_blocks, self.name = int(sr), float(block_s), max_blocks, name or "audio"
        self._given_duration = duration_s
        self.duration_s = math.nan if duration_s is None else float(duration_s)
        self._done: list[tuple[float, float, object]] = []

    def decode_limit_s(self) -> float:
        """How many seconds the decoder must read for this plan (finite whatever a header says)."""
        if self.duration_s <= MAX_BELIEVED_S:
            return self.duration_s + 1.0
        return self.block_s * self.max_blocks if self.max_blocks else MAX_BELIEVED_S

    def start(self, sample_rate: int, channels: int, duration_s: float) -> None:
        from tracklens import audio

        self._audio = audio
        if self._given_duration is None:
            self.duration_s = float(duration_s)
        self._header_duration = float(duration_s)  # what each block's clip says of its file, as load_audio's did
        self.native_sr, self.channels = int(sample_rate), int(channels)
        self._plan = iter(block_plan(self.duration_s, self.block_s, max_blocks=self.max_blocks))
        self._done, self._seen, self._ended = [], 0, False
        self._next()

    def _next(self) -> None:
        self._block = next(self._plan, None)
        if self._block is None:
            return
        start, end, _ = self._block
        self._first = int(round(start * self.native_sr))  # audio._plan_read's frames for (offset, max_duration)
        self._stop = self._first + int(round((end - start) * self.native_sr))
        self._got = 0
        self._mixer = self._audio.mono_resampler(self.native_sr, self.sr, name=self.name)

    def add(self, block: np.ndarray) -> None:
        lo, hi = self._seen, self._seen + len(block)
        self._seen = hi
        while self._block is not None and not self._ended:
            a, b = max(self._first, lo), min(self._stop, hi)
            if a < b:
                self._mixer.add(block[a - lo:b - lo])
                self._got += b - a
            if self._stop > hi:
                return
            self._close()
            self._next()

    def _close(self) -> None:
        from tracklens.audio import AudioClip

        start, end, _ = self._block
        if not self._got or (start > 0 and self._got < config.MIN_DURATION_S * self.native_sr):
            self._ended = True  # the data ended at (or just after) a block boundary
            return
        y = self._mixer.result()
        header = self._header_duration
        part = AudioClip(y=y, sr=self.sr, path=self.name, source_sr=self.native_sr, channels=self.channels,
                         source_duration_s=header if math.isfinite(header) else self._seen / self.native_sr)
        self._done.append((start, start + part.duration_s, part))
        if part.duration_s < (end - start) - 0.5:
            self._ended = True

    def finish(self) -> None:
        if getattr(self, "_block", None) is not None and not self._ended:
            self._close()  # the data ended inside this block
            self._ended = True
        self._block = None

    def blocks(self) -> Iterator[tuple[float, float, object]]:
        """(start_s, end_s, AudioClip) per decoded block, in order; AudioError (load_audio's
        words) when what was decoded is too short or silent."""
        from tracklens.audio import check_signal

        decoded = sum(end - start for start, end, _ in self._done)
        peak = max((float(np.max(np.abs(part.y))) for *_, part in self._done if part.y.size), default=0.0)
        check_signal(decoded, peak, name=self.name)
        return iter(self._done)


class WindowRows(NamedTuple):
    """One decoded block's model inputs: ``x`` (n, ...), ``spans`` [(start_s, end_s)] relative to the
    block, and the AudioSet ``logits`` (n, 527) when the model's own pass computed them (else None)."""

    x: np.ndarray
    spans: list[tuple[float, float]]
    logits: np.ndarray | None = None


def file_blocks(path: str | Path, *, sr: int, block_s: float = BLOCK_S) -> Iterator[tuple[float, float, object]]:
    """(start_s, end_s, AudioClip) of every block :func:`predict_blend` decodes from a whole file at
    ``sr`` (recipes/heads.py caches training inputs through it, so they match prediction exactly)."""
    _, name, duration_s = _source_clip(path)
    return _windows(None, name, duration_s, block_s, sr=sr)


def _window_inputs(model: GenreModel, part, *, short_input: str) -> WindowRows:
    """The model's raw inputs for one decoded block: one row per window, with spans (s) (the kind says how)."""
    return WindowRows(*model.kind.window_inputs(part, model.card["input"], short_input=short_input))


def _at_rate(clip, sr: int):
    """``clip`` resampled to ``sr`` (soxr_hq, as the decoder resamples) when it is at another rate."""
    if clip is None or clip.sr == sr:
        return clip
    from dataclasses import replace

    import librosa

    return replace(clip, y=librosa.resample(clip.y, orig_sr=clip.sr, target_sr=sr, res_type="soxr_hq").astype(np.float32),
                   sr=sr)


class _AudioSetEvidence:
    """The track's AudioSet likelihoods, gathered block by block for the fit rule and chart genres:
    from the model's own pass (EfficientAT models) or one extra EfficientAT pass per block."""

    def __init__(self):
        self.rows: list[np.ndarray] = []
        self.problem: str | None = None

    def add(self, logits: np.ndarray | None, part) -> None:
        if self.problem is not None:
            return
        if logits is None:
            try:
                from tracklens.models import efficientat

                logits = efficientat.embed(clip=part)["logits"]
            except TracklensError as exc:  # no tagger: the blend stands, unjudged
                self.problem = str(exc)
                return
        self.rows.append(np.asarray(logits, dtype=np.float64))

    def likelihoods(self) -> np.ndarray | None:
        """Track mean of the windows' sigmoid likelihoods (527,), or None without evidence."""
        if self.problem is not None or not self.rows:
            return None
        return (1.0 / (1.0 + np.exp(-np.vstack(self.rows)))).mean(axis=0)


def predict_blend(model: GenreModel | None, source, *, margin: float = BLEND_MARGIN,
                  short_input: str = SHORT_INPUT, max_seconds: float | None = MAX_BLEND_S,
                  judge_fit: bool = True) -> Blend:
    """The genre blend of one track.

    Parameters
    ----------
    model : a loaded GenreModel, a model's name or folder (as :func:`load_model` takes it; e.g.
        ``"default-fast"``), or None: the shipped default
    source : audio file path, :class:`audio.AudioClip` or :class:`features.ClipFeatures`
        (decoded, or resampled, at the card's sample rate)
    margin : probability gap below which the label names two genres
    short_input : "as_is" or "loop" for input shorter than a summary model's window
    max_seconds : analyse at most about this much audio, as ~30 s blocks evenly spread over the
        track (default: the 10-minute limit; None: all of it). ``Blend.timeline`` and
        ``Blend.analysed`` say exactly which seconds were read.
    judge_fit : also decide whether the ten genres describe the track (:mod:`models.fit`, from
        EfficientAT's AudioSet tags: one extra pass per block for other models) and give the
        chart-genre tags (:mod:`models.chart_genres`)

    Returns
    -------
    Blend, with the track blend = temperature scaling of the windows' normalised geometric mean.
    Raises AudioError / TracklensError for unusable input (corrupt, silent, too short).
    """
    if short_input not in ("loop", "as_is"):
        raise TracklensError(f"short_input={short_input!r} must be 'loop' or 'as_is'")
    if model is None:
        model = load_default_model()
    elif isinstance(model, (str, Path)):
        model = load_model(model)
    elif not isinstance(model, GenreModel):
        raise TracklensError(f"model={model!r}: give a loaded GenreModel, a model's name or folder, or None (the default)")
    block_s, max_blocks = _block_settings(model, max_seconds)
    if isinstance(source, BlockCutter):  # a file already decoded into this model's blocks
        if (source.sr, source.block_s, source.max_blocks) != (model.sample_rate, block_s, max_blocks):
            raise TracklensError("the decoded blocks were cut for another model or max_seconds")
        clip, path, duration_s = None, source.name, source.duration_s
        windows = source.blocks()
    else:
        clip, path, duration_s = _source_clip(source)
        clip = _at_rate(clip, model.sample_rate)
        windows = _windows(clip, path, duration_s, block_s, max_windows=max_blocks, sr=model.sample_rate)
    tag_columns = [i for i, c in enumerate(model.card["input"].get("columns") or []) if c.startswith("tag:")]
    embedding_columns = [i for i, c in enumerate(model.card["input"].get("columns") or []) if c.startswith("eat_")]
    rows, spans, tag_rows, embedding_rows = [], [], [], []
    evidence = _AudioSetEvidence() if judge_fit else None
    decoded_end = 0.0
    for start, end, part in windows:
        decoded_end = max(decoded_end, end)
        block = _window_inputs(model, part, short_input=short_input)
        if len(block.x):
            rows.append(model.predict_raw(block.x))
            spans += [(start + a, min(start + b, end)) for a, b in block.spans]
            tag_rows.append(block.x[:, tag_columns])
            embedding_rows.append(block.x[:, embedding_columns])
            if evidence is not None:
                evidence.add(block.logits, part)
    if not rows:
        raise TracklensError(f"{path or 'clip'}: no analysable audio")
    if not duration_s <= MAX_BELIEVED_S:  # the header did not say (or was not believed): what decoding found
        duration_s = decoded_end
    raw = np.vstack(rows)
    _, mean = evaluate.aggregate_segments(np.zeros(len(raw)), raw, method=model.aggregation)
    track = evaluate.apply_temperature(mean, model.temperature)[0]
    timeline = pd.DataFrame(model.calibrate(raw), columns=model.genres)
    timeline.insert(0, "start_s", [round(a, 3) for a, _ in spans])
    timeline.insert(1, "end_s", [round(b, 3) for _, b in spans])
    timeline["top_genre"] = [model.genres[i] for i in raw.argmax(axis=1)]
    result = Blend(path=path, genres=model.genres, probabilities=track, timeline=timeline, duration_s=duration_s,
                   model=model.name, margin=margin)
    result.analysed_s = float(sum(b - a for a, b in result.analysed))
    result.notes = _notes(model, result, duration_s, short_input)
    if tag_columns:  # the embedding model's inputs include musicnn's tags: their track mean, for free
        names = [model.card["input"]["columns"][i][4:] for i in tag_columns]
        result.tags = dict(zip(names, np.vstack(tag_rows).mean(axis=0).astype(float)))
        result.tags_source = model.card["input"].get("musicnn", model.card["input"]).get("embedding_model")
    if embedding_columns:  # EfficientAT and fusion models: the sound embedding comes with the pass (tracklens.catalogue)
        result.embedding = np.vstack(embedding_rows).mean(axis=0).astype(np.float32)
    if evidence is not None:
        _judge(result, evidence)
    return result


def _block_settings(model: GenreModel, max_seconds: float | None) -> tuple[float, int | None]:
    """(seconds per decoded block: whole model windows, how many blocks at most)."""
    block_s = model.window_s * max(1, int(BLOCK_S // model.window_s))
    return block_s, None if max_seconds is None else max(1, int(max_seconds // block_s))


def block_cutter(model: GenreModel, *, max_seconds: float | None = MAX_BLEND_S, name: str | None = None) -> BlockCutter:
    """A :class:`BlockCutter` for ``model``: give it to ``audio.load_audio(..., taps=[...])``, then
    to :func:`predict_blend` (with the same ``max_seconds``) as the source: the blend of the file
    ``predict_blend(model, path)`` gives, from a decoding shared with other work."""
    block_s, max_blocks = _block_settings(model, max_seconds)
    return BlockCutter(sr=model.sample_rate, block_s=block_s, max_blocks=max_blocks, name=name)


def _notes(model: GenreModel, result: Blend, duration_s: float, short_input: str) -> list[str]:
    """The blend's status lines: what a short input was padded with, and how much was blended."""
    how = model.kind.short_input_note or short_input
    notes = [f"shorter than the model's {model.window_s:g} s window: {how}"] if duration_s < model.window_s else []
    stretches = result.analysed
    if result.analysed_s >= duration_s - 0.5 * model.window_s or len(stretches) == 1 and stretches[0][0] <= 0.01:
        notes.append(f"blended {result.analysed_s:.0f} s of the {duration_s:.0f} s track "
                     f"({len(result.timeline)} window{'' if len(result.timeline) == 1 else 's'} of {model.window_s:g} s)")
    else:
        parts = ", ".join(f"{a:.0f}-{b:.0f} s" for a, b in stretches)
        notes.append(f"blended {result.analysed_s:.0f} s of the {duration_s:.0f} s track: {parts}")
    return notes


def _judge(result: Blend, evidence: _AudioSetEvidence) -> None:
    """Fill the Blend's fit verdict, wider genres, chart-genre tags (and AudioSet tags where none)."""
    from tracklens.models import chart_genres, efficientat, fit

    likelihoods = evidence.likelihoods()
    if likelihoods is None:
        result.fit_reason = f"not judged: {evidence.problem or 'no AudioSet evidence'}"
        return
    names = efficientat.class_names()
    result.audioset = np.asarray(likelihoods, dtype=np.float32)
    verdict = fit.judge(likelihoods, names)
    result.fit, result.fit_reason, result.wider_genres = verdict.fit, verdict.reason, verdict.wider_genres
    result.chart_genres = chart_genres.chart_genre_scores(likelihoods, names)
    if result.tags is None:  # AudioSet's classes, less the root ones every piece of music gets
        result.tags = {n: float(p) for n, p in zip(names, likelihoods) if n not in fit.GENERIC_CLASSES}
        result.tags_source = f"{efficientat.DEFAULT_MODEL} (AudioSet)"


# --- batches and feature tables ---------------------------------------------------------------------


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """The audio files ``predict`` is given: a file as it is (a missing or odd one too, so it gets
    its own error row), a folder walked for audio files (:data:`audio.AUDIO_EXTENSIONS`, sorted,
    hidden names skipped; a folder without any stays, for its error row). Raises TracklensError before any model is loaded when nothing is
    left to predict (only folders without audio, or only names that do not exist)."""
    files: list[Path] = []
    problems: list[str] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = _audio_files_under(given)
            files += found or [given]  # an empty folder keeps a row of its own, saying so
            if not found:
                problems.append(_no_audio_in(given))
        else:
            files.append(given)
            if not (given.exists() or given.is_symlink()):
                problems.append(f"{given}: no such file")
    if problems and len(problems) == len(paths):
        raise TracklensError("nothing to predict: " + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""))
    return files


def _audio_files_under(folder: Path) -> list[Path]:
    """The audio files under ``folder`` (sub-folders too, hidden names skipped), sorted."""
    from tracklens.audio import AUDIO_EXTENSIONS

    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _no_audio_in(folder: Path) -> str:
    import os

    from tracklens.audio import AUDIO_EXTENSIONS

    if not os.access(folder, os.R_OK | os.X_OK):  # walking it finds nothing: it is not "empty"
        return f"{folder}: cannot read this folder (permission denied)"
    return f"{folder}: a folder with no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})"


def predict_files(paths: Sequence[str | Path], *, model: GenreModel | None = None, margin: float = BLEND_MARGIN,
                  progress: bool = False) -> list[Blend | TracklensError]:
    """One Blend per path, or the TracklensError that explains why that file has none (batch continues)."""
    return list(iter_predictions(paths, model=model, margin=margin, progress=progress))


def iter_predictions(paths: Sequence[str | Path], *, model: GenreModel | None = None, margin: float = BLEND_MARGIN,
                     progress: bool = False) -> Iterator[Blend | TracklensError]:
    """:func:`predict_files` one file at a time, each result as soon as that file is done."""
    from tqdm import tqdm

    model = model or load_default_model()
    for path in tqdm(list(paths), desc="predict", unit="file", disable=not progress):
        yield _predict_or_error(model, path, margin=margin)


def _predict_or_error(model: GenreModel, path, *, margin: float) -> Blend | TracklensError:
    """The file's Blend, or the error that explains why it has none: any failure on one file,
    of any type (a decoder's MemoryError included), is that file's; only Ctrl-C and exit stop the batch."""
    if Path(path).is_dir() and not _audio_files_under(Path(path)):  # kept by expand_inputs for this row
        return TracklensError(_no_audio_in(Path(path)))  # as when it is the only input, not "not a regular file"
    try:
        return predict_blend(model, path, margin=margin)
    except TracklensError as exc:
        return exc
    except MemoryError:  # a raw "Unable to allocate 46.6 TiB ..." says nothing a user can act on
        return TracklensError(f"{path}: not analysed: it needs more memory than is free")
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return TracklensError(f"{path}: not analysed ({type(exc).__name__}" + (f": {detail})" if detail else ")"))


def predict_table(model: GenreModel, features_csv: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Blend per row of a GTZAN-schema feature table (summary models only).

    Returns (the normalised table with ``track_id`` and optional ``label``, calibrated probabilities).
    """
    if not model.kind.reads_table:
        raise TracklensError(f"model {model.name} reads {model.input_kind} inputs from audio; a feature table needs a "
                             "summary-feature model (linear, mlp; the shipped one is models/default-table)")
    table = datasets.read_feature_table(features_csv)
    return table, model.predict_proba(model.summary_matrix(table))
