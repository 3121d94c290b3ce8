"""Audio I/O: turn any audio file (or uploaded bytes) into a validated mono float32 signal.

This is the only module that decodes audio. Everything downstream receives an :class:`AudioClip`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracklens import config
from tracklens.errors import TracklensError

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


# Decoded samples per block when streaming: bounds memory for long files (~4 MB of float32 stereo).
_BLOCK_FRAMES = 1 << 19
_FFMPEG_TIMEOUT_S = 300


def probe_audio(path: str | Path) -> dict:
    """Read an audio file's header only: ``{"duration_s", "sample_rate", "channels"}``.

    soundfile first; formats libsndfile cannot open (M4A/AAC, ...) are probed with ``ffprobe``.
    Raises AudioError with the reason when the file is missing, empty or not audio.
    """
    import soundfile as sf

    path = _check_file(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's error types vary by format
        return _ffprobe(path, why=_short(exc))
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: holds no audio frames")
    return {"duration_s": info.frames / info.samplerate, "sample_rate": int(info.samplerate),
            "channels": int(info.channels)}


def load_audio(
    path: str | Path,
    *,
    sr: int = config.SAMPLE_RATE,
    offset: float = 0.0,
    max_duration: float = config.MAX_DURATION_S,
    min_duration: float = config.MIN_DURATION_S,
) -> AudioClip:
    """Decode ``path`` to mono float32 at ``sr`` Hz, reading at most ``max_duration`` seconds.

    WAV, AU, AIFF, FLAC, Ogg Vorbis/Opus and MP3 are decoded by soundfile; anything soundfile
    cannot open (M4A/AAC, damaged files it rejects) goes through the ``ffmpeg`` program. Both
    stream in blocks (downmix + resample per block), so a long file never sits in memory whole;
    longer input is cut at ``max_duration`` and marked ``truncated``.

    Raises AudioError for a missing, empty, undecodable, too short (< ``min_duration`` s) or
    silent file, naming the file and the reason.
    """
    path = _check_file(path)
    name = str(path)
    try:
        clip = _decode_soundfile(str(path), name=name, path=name, sr=sr, offset=offset,
                                 max_duration=max_duration)
    except _SoundfileFailed as exc:
        clip = _decode_ffmpeg(path, name=name, path=name, sr=sr, offset=offset,
                              max_duration=max_duration, why=str(exc))
    _validate(clip, min_duration=min_duration, name=name)
    return clip


def load_audio_bytes(
    data: bytes,
    *,
    filename: str | None = None,
    name: str | None = None,
    sr: int = config.SAMPLE_RATE,
    max_duration: float = config.MAX_DURATION_S,
    min_duration: float = config.MIN_DURATION_S,
) -> AudioClip:
    """Decode an uploaded file's bytes like :func:`load_audio` (``clip.path`` is None).

    ``filename`` (alias ``name``) is used in messages and for its extension only. Formats
    soundfile reads are decoded from memory; others are written to a private temporary folder
    for ffmpeg (MP4/M4A need a seekable file) that is removed afterwards.
    """
    import io
    import tempfile

    label = filename or name or "upload"
    if not data:
        raise AudioError(f"{label}: empty file (0 bytes)")
    try:
        clip = _decode_soundfile(io.BytesIO(data), name=label, path=None, sr=sr, offset=0.0,
                                 max_duration=max_duration)
    except _SoundfileFailed as exc:
        suffix = Path(label).suffix.lower()
        suffix = suffix if suffix in AUDIO_EXTENSIONS else ".bin"
        with tempfile.TemporaryDirectory(prefix="tracklens-upload-") as tmp:
            tmp_path = Path(tmp) / f"upload{suffix}"
            tmp_path.write_bytes(data)
            clip = _decode_ffmpeg(tmp_path, name=label, path=None, sr=sr, offset=0.0,
                                  max_duration=max_duration, why=str(exc))
    _validate(clip, min_duration=min_duration, name=label)
    return clip


class _SoundfileFailed(Exception):
    """soundfile could not decode the input; the message says why (ffmpeg is tried next)."""


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    return path


class _Downmixer:
    """Collects blocks of (frames, channels) audio as mono at the target rate, resampling as a
    stream (soxr HQ, the same samples as librosa's one-shot ``soxr_hq``)."""

    def __init__(self, source_sr: int, sr: int):
        import soxr

        self.parts: list[np.ndarray] = []
        self.stream = soxr.ResampleStream(source_sr, sr, 1, dtype="float32", quality="HQ") if source_sr != sr else None

    def add(self, block: np.ndarray, *, last: bool = False) -> None:
        mono = np.ascontiguousarray(block.mean(axis=1) if block.ndim == 2 else block, dtype=np.float32)
        self.parts.append(self.stream.resample_chunk(mono, last=last) if self.stream else mono)

    def result(self) -> np.ndarray:
        if self.stream is not None:
            self.add(np.zeros(0, np.float32), last=True)
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


def _decode_soundfile(source, *, name: str, path: str | None, sr: int, offset: float,
                      max_duration: float) -> AudioClip:
    import soundfile as sf

    try:
        handle = sf.SoundFile(source)
    except Exception as exc:
        raise _SoundfileFailed(_short(exc)) from exc
    with handle:
        source_sr, channels, total = int(handle.samplerate), int(handle.channels), int(handle.frames)
        if source_sr <= 0 or total <= 0:
            raise AudioError(f"{name}: holds no audio frames")
        start = int(round(offset * source_sr))
        limit = int(round(max_duration * source_sr))
        mixer = _Downmixer(source_sr, sr)
        done = 0
        try:
            if start:
                handle.seek(start)
            while done < limit:
                block = handle.read(min(_BLOCK_FRAMES, limit - done), dtype="float32", always_2d=True)
                if not len(block):
                    break
                done += len(block)
                mixer.add(block)
        except Exception as exc:
            raise _SoundfileFailed(f"decoding failed after {done / source_sr:.1f} s ({_short(exc)})") from exc
    expected = min(limit, total - start)
    if expected - done > max(1.0 * source_sr, 0.05 * expected):
        # e.g. a cut-off MP3: the header promises more than the data holds
        raise AudioError(f"{name}: damaged or truncated file (decoded {done / source_sr:.1f} s of the "
                         f"{expected / source_sr:.1f} s its header announces)")
    y = mixer.result()
    return AudioClip(y=y, sr=sr, path=path, source_sr=source_sr, channels=channels,
                     source_duration_s=total / source_sr, truncated=total - start > limit)


def _ffmpeg_exe(name: str, why: str) -> str:
    import shutil

    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioError(f"{name}: not readable by soundfile ({why}) and the ffmpeg program, needed for "
                         "M4A/AAC, is not installed (`make system-deps`)")
    return exe


def _ffprobe(path: Path, *, why: str, name: str | None = None) -> dict:
    import json
    import shutil
    import subprocess

    name = name or str(path)
    _ffmpeg_exe(name, why)
    exe = shutil.which("ffprobe")
    if exe is None:
        raise AudioError(f"{name}: not readable by soundfile ({why}); ffprobe is missing")
    cmd = [exe, "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=sample_rate,channels:format=duration", "-of", "json", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=_FFMPEG_TIMEOUT_S, check=False)
        info = json.loads(done.stdout or b"{}")
    except (subprocess.TimeoutExpired, ValueError) as exc:
        raise AudioError(f"{name}: not readable as audio ({why}; ffprobe: {_short(exc)})") from exc
    streams = info.get("streams") or []
    if done.returncode != 0 or not streams:
        reason = _short_text(done.stderr) or "no audio stream"
        raise AudioError(f"{name}: not readable as audio (soundfile: {why}; ffmpeg: {reason.replace(str(path) + ': ', '')})")
    stream = streams[0]
    try:
        duration = float((info.get("format") or {}).get("duration") or "nan")
    except ValueError:
        duration = float("nan")
    return {"duration_s": duration, "sample_rate": int(stream.get("sample_rate") or 0),
            "channels": int(stream.get("channels") or 0)}


def _decode_ffmpeg(file: Path, *, name: str, path: str | None, sr: int, offset: float,
                   max_duration: float, why: str) -> AudioClip:
    """Decode with the ffmpeg program: float32 PCM at the file's own rate streamed through a
    pipe in blocks, downmixed and resampled here exactly like the soundfile path."""
    import subprocess

    exe = _ffmpeg_exe(name, why)
    info = _ffprobe(file, why=why, name=name)
    source_sr, channels = info["sample_rate"], info["channels"]
    if source_sr <= 0 or channels <= 0:
        raise AudioError(f"{name}: not readable as audio ({why}; ffmpeg: no sample rate/channels)")
    cmd = [exe, "-nostdin", "-v", "error"]
    if offset:
        cmd += ["-ss", f"{offset:.6f}"]
    # Half a second more than allowed tells a long file from one that is exactly max_duration.
    cmd += ["-i", str(file), "-map", "0:a:0", "-t", f"{max_duration + 0.5:.6f}", "-vn", "-sn",
            "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(channels), "-ar", str(source_sr), "pipe:1"]
    limit = int(round(max_duration * source_sr))
    mixer = _Downmixer(source_sr, sr)
    done, pending = 0, b""
    frame_bytes = 4 * channels
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            while chunk := proc.stdout.read(_BLOCK_FRAMES * frame_bytes):
                pending += chunk
                n = len(pending) // frame_bytes
                if done < limit and n:
                    take = min(n, limit - done)
                    block = np.frombuffer(pending[: take * frame_bytes], dtype="<f4").reshape(take, channels)
                    mixer.add(block)
                    done += take
                pending = pending[n * frame_bytes:] if done < limit else b""
                if done >= limit and len(chunk) and proc.poll() is None:
                    truncated_early = True
                    proc.kill()
                    break
            else:
                truncated_early = False
            err = proc.stderr.read()
            proc.wait(timeout=_FFMPEG_TIMEOUT_S)
        except BaseException:
            proc.kill()
            raise
    if done == 0:
        raise AudioError(f"{name}: not readable as audio (soundfile: {why}; "
                         f"ffmpeg: {_short_text(err).replace(str(file) + ': ', '') or 'no samples decoded'})")
    duration = info["duration_s"]
    truncated = truncated_early or (np.isfinite(duration) and duration - offset > max_duration + 1e-3)
    y = mixer.result()
    return AudioClip(y=y, sr=sr, path=path, source_sr=source_sr, channels=channels,
                     source_duration_s=float(duration) if np.isfinite(duration) else done / source_sr,
                     truncated=bool(truncated))


def _validate(clip: AudioClip, *, min_duration: float, name: str) -> None:
    if not np.all(np.isfinite(clip.y)):
        raise AudioError(f"{name}: decoded audio holds NaN or infinite samples")
    if clip.duration_s < min_duration:
        raise AudioError(f"{name}: too short ({clip.duration_s:.2f} s < {min_duration:g} s)")
    if float(np.max(np.abs(clip.y))) < 1e-4:
        raise AudioError(f"{name}: silent (peak amplitude below -80 dBFS)")


def _short(exc: BaseException) -> str:
    import re

    # libsndfile repeats the path ("Error opening '/x.wav': Format not recognised."); the
    # caller names the file already.
    text = re.sub(r"^Error opening .*?: ", "", _short_text(str(exc)))
    return text.rstrip(".") or type(exc).__name__


def _short_text(text: str | bytes | None) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
