"""Which piano keys sound, and when they start: Spotify's basic-pitch network on a mono signal.

basic-pitch (Bittner et al., ICASSP 2022; Apache-2.0; ``models/pretrained/LICENSE-basic-pitch.md``)
is a small polyphonic transcription network. Per frame of 256 samples at 22 050 Hz (86.1 frames a
second) it gives, for the 88 keys of a piano (MIDI 21-108), the probability that the note sounds
(``note``) and that it starts (``onset``), and a finer pitch ``contour`` (3 bins per semitone; kept
only when asked for).
Pitch-class profiles and pitched-onset envelopes read from it see harmony and note starts that a
spectrogram's chroma and spectral flux blur.

The network runs from the shipped ONNX file with onnxruntime on one thread, ~0.4 CPU-s per 30 s of
audio, the same way the basic-pitch package windows a file: 2 s windows overlapping by 30
frames, the overlap's halves dropped when the windows are joined.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tracklens import config, fileio
from tracklens.errors import TracklensError

MODEL_PATH = config.PRETRAINED_DIR / "basic_pitch_nmp.onnx"
MODEL_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"
SAMPLE_RATE = 22_050
HOP = 256
FPS = SAMPLE_RATE / HOP
LOWEST_MIDI = 21  # A0, the first of the 88 keys
WINDOW = 2 * SAMPLE_RATE - HOP  # samples the network reads at once (172 frames)
OVERLAP_FRAMES = 30
_OVERLAP = OVERLAP_FRAMES * HOP
_STEP = WINDOW - _OVERLAP
BATCH = 8  # windows per call: bounds memory on a 10-minute file
# The network's outputs by tensor name (its export names them by position only).
_OUTPUTS = {"contour": "StatefulPartitionedCall:0", "note": "StatefulPartitionedCall:1",
            "onset": "StatefulPartitionedCall:2"}


@dataclass(frozen=True)
class PitchPosteriors:
    """``note``, ``onset`` [shape=(t, 88)] and ``contour`` [shape=(t, 264)] probabilities per frame,
    at ``fps`` frames a second; column 0 is MIDI :data:`LOWEST_MIDI` (A0). ``contour`` is None
    unless asked for (``posteriors(..., contour=True)``): the engine reads only note and onset, and
    the contour was 60 % of the ~90 MB a 10-minute file's posteriors held."""

    note: np.ndarray
    onset: np.ndarray
    contour: np.ndarray | None = None
    fps: ClassVar[float] = FPS


@functools.lru_cache(maxsize=1)
def _session():
    try:
        import onnxruntime
    except ImportError as exc:  # a pinned dependency: a broken install, said once, not as a traceback
        raise TracklensError(f"the basic-pitch network needs the 'onnxruntime' package ({exc}); reinstall tracklens") from exc

    try:
        path = fileio.verified_file(MODEL_PATH, MODEL_SHA256, remedy="reinstall tracklens (the file ships with it)")
    except OSError as exc:  # e.g. unreadable (permissions): verified_file leaves open()'s error as it is
        raise TracklensError(f"{MODEL_PATH}: cannot be read ({exc.strerror or exc}); reinstall tracklens") from exc
    options = onnxruntime.SessionOptions()
    # one thread: the engine already runs one file per core (batch.py), as the other models do
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no onnxruntime lines on a terminal
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def posteriors(y: np.ndarray, *, sr: int, contour: bool = False) -> PitchPosteriors:
    """The network's probabilities for the mono signal ``y`` at ``sr`` Hz (resampled to 22 050 Hz
    when it is not), one frame per 256 samples of the 22 050 Hz signal; the ``contour`` only when
    asked for (the research benches read it, the engine does not)."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise TracklensError(f"pitch posteriors need a non-empty mono signal, got shape {y.shape}")
    if not np.all(np.isfinite(y)):  # the network would answer NaN everywhere, and the key and tempo with it
        raise TracklensError("pitch posteriors: the signal holds NaN or infinite samples")
    if sr != SAMPLE_RATE:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq").astype(np.float32)
    frames = len(y) // HOP
    padded = np.concatenate([np.zeros(_OVERLAP // 2, np.float32), y])
    starts = range(0, len(padded), _STEP)
    session = _session()
    name = session.get_inputs()[0].name
    wanted = [k for k in _OUTPUTS if contour or k != "contour"]
    # Written in place, window by window: joining per-batch parts held every output twice at the end.
    joined: dict[str, np.ndarray] = {}
    row_of = 0
    half = OVERLAP_FRAMES // 2
    for first in range(0, len(starts), BATCH):
        batch = np.zeros((len(starts[first:first + BATCH]), WINDOW, 1), np.float32)
        for row, start in enumerate(starts[first:first + BATCH]):
            window = padded[start:start + WINDOW]
            batch[row, :len(window), 0] = window
        outputs = session.run([_OUTPUTS[k] for k in wanted], {name: batch})
        for key, out in zip(wanted, outputs):
            kept = out[:, half:-half].reshape(-1, out.shape[-1])
            if key not in joined:  # every window gives the same number of frames
                joined[key] = np.empty((len(starts) * (out.shape[1] - 2 * half), out.shape[-1]), np.float32)
            joined[key][row_of:row_of + len(kept)] = kept
        row_of += len(kept)
    return PitchPosteriors(**{key: value[:frames] for key, value in joined.items()})
