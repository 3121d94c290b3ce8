"""Audio I/O: turn any audio file (or uploaded bytes) into a validated mono float32 signal.

This is the only module that decodes audio. Everything downstream receives an :class:`AudioClip`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import config
from errors import TracklensError

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".au", ".aiff", ".aif", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4"}
)


class AudioError(TracklensError):
    """A file that cannot be used as audio: unreadable, empty, silent or too short."""


@dataclass(frozen=True)
class AudioClip:
    """Decoded mono audio at ``sr`` Hz.

    y : np.ndarray [shape=(n,), dtype=float32], finite, in [-1, 1]
    sr : int > 0, the sample rate of ``y``
    path : the source file, or None for in-memory input
    source_sr, channels, source_duration_s : what the file itself holds
    truncated : True when the file was longer than the max duration and was cut
    """

    y: np.ndarray
    sr: int
    path: str | None
    source_sr: int
    channels: int
    source_duration_s: float
    truncated: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.y) / self.sr


def file_checksum(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (hex string)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def probe_audio(path: str | Path) -> dict:
    """Read an audio file's header only: ``{"duration_s", "sample_rate", "channels"}``.

    Raises AudioError with the reason when the file is empty or not decodable audio.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's error types vary by format
        raise AudioError(f"{path}: not readable as audio ({_short(exc)})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: holds no audio frames")
    return {"duration_s": info.frames / info.samplerate, "sample_rate": int(info.samplerate), "channels": int(info.channels)}


def load_audio(
    path: str | Path,
    *,
    sr: int = config.SAMPLE_RATE,
    offset: float = 0.0,
    max_duration: float = config.MAX_DURATION_S,
    min_duration: float = config.MIN_DURATION_S,
) -> AudioClip:
    """Decode ``path`` to mono float32 at ``sr`` Hz, reading at most ``max_duration`` seconds.

    Raises AudioError for a missing, empty, undecodable, too short (< ``min_duration`` s) or
    silent file, naming the file and the reason.
    """
    import soundfile as sf

    path = Path(path)
    header = probe_audio(path)
    source_sr = header["sample_rate"]
    start = int(round(offset * source_sr))
    n_frames = int(round(max_duration * source_sr))
    try:
        data, file_sr = sf.read(str(path), start=start, frames=n_frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: decoding failed ({_short(exc)})") from exc
    truncated = header["duration_s"] - offset > max_duration + 1e-6
    clip = _finish(data, file_sr, sr=sr, path=str(path), channels=header["channels"],
                   source_duration_s=header["duration_s"], truncated=truncated)
    _validate(clip, min_duration=min_duration, name=str(path))
    return clip


def _finish(data: np.ndarray, file_sr: int, *, sr: int, path: str | None, channels: int,
            source_duration_s: float, truncated: bool) -> AudioClip:
    y = data.mean(axis=1) if data.ndim == 2 else data
    y = np.asarray(y, dtype=np.float32)
    if file_sr != sr and len(y):
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq").astype(np.float32)
    return AudioClip(y=y, sr=sr, path=path, source_sr=int(file_sr), channels=channels,
                     source_duration_s=float(source_duration_s), truncated=truncated)


def _validate(clip: AudioClip, *, min_duration: float, name: str) -> None:
    if not np.all(np.isfinite(clip.y)):
        raise AudioError(f"{name}: decoded audio holds NaN or infinite samples")
    if clip.duration_s < min_duration:
        raise AudioError(f"{name}: too short ({clip.duration_s:.2f} s < {min_duration:g} s)")
    if float(np.max(np.abs(clip.y))) < 1e-4:
        raise AudioError(f"{name}: silent (peak amplitude below -80 dBFS)")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
