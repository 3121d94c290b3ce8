"""Audio I/O: turn any audio file (or uploaded bytes) into a validated mono float32 signal.

This is the only module that decodes audio. Everything downstream receives an :class:`AudioClip`.
Every decode path (soundfile, ffmpeg, uploads) shares one check of what it accepts
(:func:`_plan_read`): channel count, sample rate and duration from the header, then finite
samples within [-1, 1], so the CLI, `features` and the dashboard refuse the same files with the
same message, and memory and time stay bounded whatever a header claims.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from tracklens import config
from tracklens.errors import TracklensError, path_text
from tracklens.fileio import special_file_kind

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".au", ".aiff", ".aif", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".mp4"}
)

# What the decoder accepts, checked from the header before any sample is read; every read size
# derives from these checked values (a 65535-channel header made ffmpeg's reader ask for one
# 137 GB block; a 1 Hz one upsampled each 30 s window of a 1.3 MB file to 26.5 M samples).
MAX_CHANNELS = 64  # 7th-order Ambisonics, the widest layout in real use (22.2 surround is 24)
MIN_SAMPLE_RATE = 4_000  # half of telephone audio's 8 kHz: nothing musical is stored lower
MAX_SAMPLE_RATE = 384_000  # the highest studio PCM rate (DXD is 352.8 kHz)
# Lossy decoders overshoot full scale: peaks of 1.25-1.93 measured on MP3/AAC/Opus/Vorbis
# encodings of a full-scale square wave and of clipped noise. Samples up to MAX_PEAK are clipped
# to [-1, 1]; larger ones are not audio scaled to [-1, 1] (e.g. a float WAV of integer values).
MAX_PEAK = 4.0
#: Why a file whose name is not valid UTF-8 is refused (its name could not be written to a table)
NAME_NOT_UTF8 = "its path is not valid UTF-8 (e.g. a Latin-1 name from an old archive); rename it"
HEADER_BYTES = 4096  # read to sniff WAV/AIFF/AU headers before a decoder opens the file


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


# Decoded float32 bytes per block when streaming: bounds memory for long files and for any
# (checked) channel count: 4 MiB is 2^19 stereo frames.
_BLOCK_BYTES = 1 << 22
_FFMPEG_TIMEOUT_S = 300  # ffmpeg decodes 20 min (MAX_DURATION_S) of any format in seconds
_FFPROBE_TIMEOUT_S = 60


def probe_audio(path: str | Path) -> dict:
    """Read an audio file's header only: ``{"duration_s", "sample_rate", "channels"}``.

    soundfile first; formats libsndfile cannot open (M4A/AAC, ...) are probed with ``ffprobe``.
    Raises AudioError with the reason when the file is missing, empty, not audio or holds a
    stream the decoder refuses (channel count, sample rate; see :func:`_check_stream`).
    """
    import soundfile as sf

    path = _check_file(path)
    name = str(path)
    try:
        with quiet_mpg123(_looks_like_mpeg(name, name)):
            info = sf.info(name)
    except Exception as exc:  # libsndfile's error types vary by format
        found = _ffprobe(path, why=_short(exc))
    else:
        found = {"duration_s": info.frames / info.samplerate if info.samplerate > 0 else math.nan,
                 "sample_rate": int(info.samplerate), "channels": int(info.channels)}
        if info.frames <= 0:
            found["duration_s"] = 0.0
    _check_stream(name, **found)
    return found


def load_audio(
    path: str | Path,
    *,
    sr: int | None = config.SAMPLE_RATE,
    offset: float = 0.0,
    max_duration: float = config.MAX_DURATION_S,
    min_duration: float = config.MIN_DURATION_S,
    taps: Sequence[BlockTap] = (),
) -> AudioClip:
    """Decode ``path`` to mono float32 at ``sr`` Hz, reading at most ``max_duration`` seconds.

    WAV, AU, AIFF, FLAC, Ogg Vorbis/Opus and MP3 are decoded by soundfile; anything soundfile
    cannot open (M4A/AAC, damaged files it rejects) goes through the ``ffmpeg`` program. Both
    stream in blocks (downmix + resample per block), so a long file never sits in memory whole;
    longer input is cut at ``max_duration`` and marked ``truncated``.

    Returns an :class:`AudioClip`: ``y`` [shape=(n,)] float32 in [-1, 1], ``sr`` in Hz, and what
    the file holds (``source_sr`` Hz, ``channels``, ``source_duration_s`` s). ``offset``,
    ``max_duration`` and ``min_duration`` are in seconds.

    Raises AudioError for a missing, empty, undecodable, too short (< ``min_duration`` s) or
    silent file, for a path that is not a regular file (FIFO, directory, symlink loop), for a
    stream outside :data:`MAX_CHANNELS` / :data:`MIN_SAMPLE_RATE`..:data:`MAX_SAMPLE_RATE`, and
    for samples that are not finite or far outside [-1, 1], naming the file and the reason.

    ``taps`` (see :class:`BlockTap`) see the same decoding at the file's own rate, every
    channel, before the downmix: one decode feeds the loudness meter and the blend's blocks too.
    ``sr=None`` makes no mono signal (:func:`decode_into`): the too short / silent checks are
    then left to what reads the taps.
    """
    path = _check_file(path)
    name = str(path)
    try:
        clip = _decode(path, name=name, path=name, sr=sr, offset=offset, max_duration=max_duration, taps=taps)
    except BaseException:
        _finish_taps(taps, failed=True)  # the decoder's error is the one to report
        raise
    _finish_taps(taps)
    if sr is not None:
        _validate(clip, min_duration=min_duration, name=name)
    return clip


def _finish_taps(taps: Sequence[BlockTap], *, failed: bool = False) -> None:
    """``finish()`` every tap, also when one raises (a background meter left unfinished would
    never be joined); the first tap's error is raised after all of them, unless the decode failed."""
    error = None
    for tap in taps:
        try:
            tap.finish()
        except BaseException as exc:
            error = error or exc
    if error is not None and not failed:
        raise error


def decode_into(path: str | Path, taps: Sequence[BlockTap], *, max_duration: float = config.MAX_DURATION_S) -> AudioClip:
    """Decode ``path`` once for ``taps`` only (no mono signal is made: the returned clip's ``y``
    is empty; its header fields are filled). The same checks and messages as :func:`load_audio`,
    but for too short / silent, which need the decoded signal: the taps judge that (e.g.
    ``blend.BlockCutter.blocks`` calls :func:`check_signal`)."""
    return load_audio(path, sr=None, max_duration=max_duration, taps=taps)


class BlockTap(Protocol):
    """What :func:`load_audio` hands each decoded block to, besides its own downmix.

    ``start(sample_rate, channels, duration_s)`` when a decoder begins (the file's own rate and
    channel count, the header's duration; called again if soundfile failed and ffmpeg starts
    over: forget what came before); ``add(block)`` per block of (frames, channels) float32
    samples at the file's own rate, checked (finite, within MAX_PEAK) but not clipped;
    ``finish()`` once at the end, also when decoding failed.
    """

    def start(self, sample_rate: int, channels: int, duration_s: float) -> None: ...

    def add(self, block: np.ndarray) -> None: ...

    def finish(self) -> None: ...


def _decode(file: Path, *, name: str, path: str | None, sr: int | None, offset: float, max_duration: float,
            taps: Sequence[BlockTap] = ()) -> AudioClip:
    """soundfile, else ffmpeg (the one place a file is decoded: tests count calls here)."""
    try:
        return _decode_soundfile(str(file), name=name, path=path, sr=sr, offset=offset,
                                 max_duration=max_duration, taps=taps)
    except _SoundfileFailed as exc:
        return _decode_ffmpeg(file, name=name, path=path, sr=sr, offset=offset,
                              max_duration=max_duration, why=str(exc), taps=taps)


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
    for ffmpeg (MP4/M4A need a seekable file) that is removed afterwards. The same checks as
    :func:`load_audio` apply, with the same messages.
    """
    import io
    import tempfile

    label = filename or name or "upload"
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AudioError(f"load_audio_bytes takes a file's bytes, got {type(data).__name__}: for a path use load_audio(path)")
    if not data:
        raise AudioError(f"{label}: empty file (0 bytes)")
    _check_sniffed_header(label, data[:HEADER_BYTES])
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


def load_channels(source, *, name: str | None = None, max_duration: float = config.MAX_DURATION_S):
    """Open ``source`` (a path, or an upload's bytes) for reading every channel at the file's own
    sample rate, for meters that need them (BS.1770 loudness sums the channels' powers; a
    downmix reads 3-6 dB low on stereo).

    Returns ``(sample_rate, channels, blocks)``: ``blocks`` yields float32 arrays
    [shape=(frames, channels)] of at most 4 MiB each, at most ``max_duration`` seconds in all,
    not clipped (a lossy decoder's overshoot is a real true peak). The header checks, the sample
    checks and the messages are :func:`load_audio`'s; soundfile first, then ffmpeg (through a
    private temporary file for bytes), stopped after the same timeout.
    """
    import io
    import subprocess
    import tempfile
    import threading

    import soundfile as sf

    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if is_bytes:
        label = name or "upload"
        if not len(source):
            raise AudioError(f"{label}: empty file (0 bytes)")
        _check_sniffed_header(label, bytes(source[:HEADER_BYTES]))
    else:
        path = _check_file(source)
        label = name or str(path)
    try:
        handle = sf.SoundFile(io.BytesIO(bytes(source)) if is_bytes else str(path))
    except Exception as exc:  # libsndfile's error types vary by format
        handle, why = None, _short(exc)
    if handle is not None:
        try:
            plan = _plan_read(label, sample_rate=int(handle.samplerate), channels=int(handle.channels),
                              duration_s=handle.frames / handle.samplerate if handle.samplerate > 0 else math.nan,
                              offset=0.0, max_duration=max_duration)
        except BaseException:
            handle.close()
            raise

        def soundfile_blocks():
            with handle:
                done = 0
                while done < plan.limit:
                    block = handle.read(min(plan.block_frames, plan.limit - done), dtype="float32", always_2d=True)
                    if not len(block):
                        return
                    _check_samples(block, label)
                    done += len(block)
                    yield block

        return plan.source_sr, plan.channels, soundfile_blocks()

    tmp = tempfile.TemporaryDirectory(prefix="tracklens-channels-") if is_bytes else None
    try:
        file = path if tmp is None else Path(tmp.name) / f"upload{Path(label).suffix.lower() or '.bin'}"
        if tmp is not None:
            file.write_bytes(bytes(source))
        exe = _ffmpeg_exe(label, why)
        info = _ffprobe(file, why=why, name=label)
        plan = _plan_read(label, sample_rate=info["sample_rate"], channels=info["channels"],
                          duration_s=info["duration_s"], offset=0.0, max_duration=max_duration)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise

    def ffmpeg_blocks():
        cmd = [exe, "-nostdin", "-v", "error", "-i", str(file), "-map", "0:a:0", "-t", f"{max_duration:.6f}",
               "-vn", "-sn", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(plan.channels),
               "-ar", str(plan.source_sr), "pipe:1"]
        frame_bytes = 4 * plan.channels
        try:
            with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL) as proc:
                watchdog = threading.Timer(_FFMPEG_TIMEOUT_S, proc.kill)
                watchdog.start()
                try:
                    pending = b""
                    while chunk := proc.stdout.read(plan.block_frames * frame_bytes):
                        pending += chunk
                        take = len(pending) // frame_bytes
                        if take:
                            block = np.frombuffer(pending[: take * frame_bytes], dtype="<f4")
                            block = block.reshape(take, plan.channels)
                            _check_samples(block, label)
                            pending = pending[take * frame_bytes:]
                            yield block
                finally:
                    watchdog.cancel()
                    if proc.poll() is None:
                        proc.kill()
        finally:
            if tmp is not None:
                tmp.cleanup()

    return plan.source_sr, plan.channels, ffmpeg_blocks()


class _SoundfileFailed(Exception):
    """soundfile could not decode the input; the message says why (ffmpeg is tried next)."""


# --- what the decoder accepts ---------------------------------------------------------------------

def _require_regular(path: Path) -> os.stat_result:
    """``os.stat`` of ``path`` once it is a regular file (following symlinks), else AudioError.

    Checked before anything opens the file: opening a FIFO for reading blocks until a writer
    appears (forever), and decoders word "directory" or "symlink loop" as unrelated failures.
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AudioError(f"{path}: not a regular file (a symbolic link loop)") from None
        if isinstance(exc, FileNotFoundError):
            raise AudioError(f"{path}: no such file" + (" (broken symbolic link)" if os.path.islink(path) else "")) from None
        raise AudioError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    kind = special_file_kind(info.st_mode)
    if kind:
        raise AudioError(f"{path}: not a regular file ({kind})")
    return info


def _check_file(path: str | Path) -> Path:
    """``path`` as a Path once it names a readable, non-empty regular file whose header (when
    it is a WAV, AIFF or AU one) the decoder accepts; AudioError otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        hint = {"bytes": " (decode a file's bytes with load_audio_bytes)",
                "ndarray": " (samples are decoded already: features.analyze(y, sr=...) takes them)"}
        kind = "None" if path is None else type(path).__name__
        raise AudioError(f"expected a path to an audio file, got {kind}{hint.get(kind, '')}")
    path = Path(path)
    if path_text(path) != str(path):
        raise AudioError(f"{path_text(path)}: {NAME_NOT_UTF8}")
    if _require_regular(path).st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{path}: cannot read (permission denied)")
    with open(path, "rb") as handle:
        _check_sniffed_header(str(path), handle.read(HEADER_BYTES))
    return path


def _check_stream(name: str, *, sample_rate: int, channels: int, duration_s: float = math.nan) -> None:
    """The one check of a stream's header values, whoever read them (our sniff, soundfile,
    ffprobe): raises AudioError naming the file and what is unsupported. NaN duration: unknown."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{name}: unsupported channel count {channels} (tracklens reads 1 to {MAX_CHANNELS} channels)")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: unsupported sample rate {sample_rate} Hz (tracklens reads "
                         f"{MIN_SAMPLE_RATE:,} to {MAX_SAMPLE_RATE:,} Hz)")
    if duration_s <= 0:
        raise AudioError(f"{name}: holds no audio frames")


@dataclass(frozen=True)
class _ReadPlan:
    """What to read from a checked stream; every size derives from checked header values."""

    source_sr: int
    channels: int
    start: int  # first frame (``offset``)
    limit: int  # frames to read at most (``max_duration``)
    block_frames: int  # frames per read: _BLOCK_BYTES of float32 whatever the channel count


def _plan_read(name: str, *, sample_rate: int, channels: int, duration_s: float, offset: float,
               max_duration: float) -> _ReadPlan:
    _check_stream(name, sample_rate=sample_rate, channels=channels, duration_s=duration_s)
    if not (math.isfinite(offset) and offset >= 0 and math.isfinite(max_duration) and max_duration > 0):
        raise TracklensError(f"{name}: cannot read from {offset!r} s for {max_duration!r} s "
                             "(offset and duration must be finite, offset >= 0, duration > 0)")
    return _ReadPlan(source_sr=sample_rate, channels=channels, start=int(round(offset * sample_rate)),
                     limit=int(round(max_duration * sample_rate)), block_frames=_BLOCK_BYTES // (4 * channels))


def _check_sniffed_header(name: str, head: bytes) -> None:
    """Apply :func:`_check_stream` to a WAV/AIFF/AU header before any decoder reads the file.

    libsndfile and ffmpeg refuse such headers in their own words ("Too many channels
    specified", "Decoder requires channel count"), and some ffmpeg versions accept 65535
    channels; reading the header here gives one message whichever library would have read it.
    """
    found = _sniff_header(head)
    if found is not None:
        _check_stream(name, channels=found[0], sample_rate=found[1])


def _sniff_header(head: bytes) -> tuple[int, int] | None:
    """(channels, sample rate) from the first bytes of a WAV (RIFF/RF64), AU or AIFF file, or None."""
    import struct

    if head[:4] == b".snd" and len(head) >= 24:
        rate, channels = struct.unpack_from(">II", head, 16)
        return channels, rate
    riff = head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"
    aiff = head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")
    if not (riff or aiff):
        return None
    order, wanted = ("<", b"fmt ") if riff else (">", b"COMM")
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], struct.unpack_from(order + "I", head, pos + 4)[0]
        if chunk == wanted and riff and pos + 16 <= len(head):
            channels, rate = struct.unpack_from("<HI", head, pos + 10)
            return channels, rate
        if chunk == wanted and aiff and pos + 26 <= len(head):
            channels = struct.unpack_from(">H", head, pos + 8)[0]
            exponent, mantissa = struct.unpack_from(">HQ", head, pos + 16)  # 80-bit extended float
            shift = (exponent & 0x7FFF) - 16383 - 63
            return channels, min(mantissa >> -shift if shift < 0 else mantissa << min(shift, 64), 2**32)
        pos += 8 + size + (size & 1)
    return None


def _check_samples(block: np.ndarray, name: str) -> None:
    """Decoded samples must be finite and near [-1, 1] (see MAX_PEAK); AudioError otherwise."""
    if not block.size:
        return
    low, high = float(block.min()), float(block.max())  # NaN propagates through min/max
    if not (math.isfinite(low) and math.isfinite(high)):
        raise AudioError(f"{name}: decoded audio holds NaN or infinite samples")
    if max(-low, high) > MAX_PEAK:
        raise AudioError(f"{name}: sample values reach {max(-low, high):.3g}, far outside [-1, 1] "
                         "(float audio that was never normalised?)")


class _Downmixer:
    """Collects blocks of (frames, channels) audio as mono at the target rate, resampling as a
    stream (soxr HQ, the same samples as librosa's one-shot ``soxr_hq``); checks each block's
    samples and clips the result to [-1, 1] (lossy decoders and the resampler overshoot)."""

    def __init__(self, source_sr: int, sr: int | None, *, name: str, taps: Sequence[BlockTap] = (),
                 duration_s: float = math.nan, channels: int = 1):
        import soxr

        self.name = name
        self.parts: list[np.ndarray] = []
        self.sr = sr  # None: no mono signal, only the taps
        self.stream = soxr.ResampleStream(source_sr, sr, 1, dtype="float32", quality="HQ") \
            if sr is not None and source_sr != sr else None
        self.taps = taps
        for tap in taps:
            tap.start(source_sr, channels, duration_s)

    def add(self, block: np.ndarray, *, last: bool = False) -> None:
        _check_samples(block, self.name)
        for tap in self.taps:
            tap.add(block)
        if self.sr is None:
            return
        mono = _downmix(block) if block.ndim == 2 else np.ascontiguousarray(block, dtype=np.float32)
        self.parts.append(self.stream.resample_chunk(mono, last=last) if self.stream else mono)

    def result(self) -> np.ndarray:
        if self.stream is not None:
            self.stream, stream = None, self.stream
            self.parts.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
        y = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        return np.clip(y, -1.0, 1.0, out=y)


def mono_resampler(source_sr: int, sr: int, *, name: str) -> _Downmixer:
    """A fresh downmix + soxr HQ resampling stream from ``source_sr`` to ``sr``, as
    :func:`load_audio` makes one per decode: ``.add(block)`` (frames, channels) blocks in
    order, then ``.result()`` (mono float32 clipped to [-1, 1]). The same samples whatever
    the block sizes (soxr's stream is chunk-invariant)."""
    return _Downmixer(source_sr, sr, name=name)


def _downmix(block: np.ndarray) -> np.ndarray:
    """The mean of a (frames, channels) block's channels as float32, added channel by channel:
    the same bits as ``block.mean(axis=1)`` and librosa's ``to_mono`` (both add the channels in
    order, then divide), 20x faster for stereo, whose mean numpy takes frame by frame (27 of the
    62 ms that 30 s of 44.1 kHz stereo MP3 took to load)."""
    mono = np.array(block[:, 0], dtype=np.float32)
    for channel in range(1, block.shape[1]):
        mono += block[:, channel]
    mono /= block.shape[1]
    return mono


# --- decoders -------------------------------------------------------------------------------------


# --- libmpg123's own lines -------------------------------------------------------------------------
# libsndfile decodes MP3 with libmpg123, which writes notes ("Note: Illegal Audio-MPEG-Header ...",
# "[src/libmpg123/id3.c:...] error: ...") straight to file descriptor 2: a terminal showed a dozen
# unprefixed lines per damaged file, beside tracklens' own one-line verdict. While an MPEG stream
# is opened or read, fd 2 goes to a temp file; afterwards every captured line that is not
# libmpg123's is written back to the real stderr (so nothing else is lost, only delayed). Threads
# share one redirection (a count under a lock): the first in sets it up, the last out restores it.

_MPG123_LINE = re.compile(rb"^(\[[^\]]*libmpg123[^\]]*\]|Note: |Warning: )")
_MPEG_SUFFIXES = (".mp3", ".mp2", ".mp1", ".mpga", ".mpeg")
_quiet_lock = threading.Lock()
_quiet_state: dict = {"depth": 0}


def _looks_like_mpeg(source, name: str) -> bool:
    if str(name).lower().endswith(_MPEG_SUFFIXES):
        return True
    try:
        if isinstance(source, io.BytesIO):
            head = source.getbuffer()[:3].tobytes()
        else:
            with open(source, "rb") as handle:
                head = handle.read(3)
    except OSError:
        return False
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


@contextmanager
def quiet_mpg123(active: bool = True):
    """Keep libmpg123's own lines off stderr for the duration (see the comment above)."""
    if not active:
        yield
        return
    state = _quiet_state
    with _quiet_lock:
        if state["depth"] == 0:
            try:
                sys.stderr.flush()
                capture = tempfile.TemporaryFile()
                saved = os.dup(2)
                os.dup2(capture.fileno(), 2)
            except (OSError, ValueError):  # no usable fd 2: nothing to keep clean
                active = False
            else:
                state.update(capture=capture, saved=saved)
        if active:
            state["depth"] += 1
    if not active:
        yield
        return
    try:
        yield
    finally:
        with _quiet_lock:
            state["depth"] -= 1
            if state["depth"] == 0:
                capture, saved = state.pop("capture"), state.pop("saved")
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                kept = [line for line in capture.read().splitlines(keepends=True) if not _MPG123_LINE.match(line)]
                capture.close()
                if kept:
                    os.write(2, b"".join(kept))


def _decode_soundfile(source, *, name: str, path: str | None, sr: int | None, offset: float,
                      max_duration: float, taps: Sequence[BlockTap] = ()) -> AudioClip:
    with quiet_mpg123(_looks_like_mpeg(source, name)):
        return _decode_soundfile_quietly(source, name=name, path=path, sr=sr, offset=offset,
                                         max_duration=max_duration, taps=taps)


def _decode_soundfile_quietly(source, *, name: str, path: str | None, sr: int | None, offset: float,
                              max_duration: float, taps: Sequence[BlockTap] = ()) -> AudioClip:
    import soundfile as sf

    try:
        handle = sf.SoundFile(source)
    except Exception as exc:
        raise _SoundfileFailed(_short(exc)) from exc
    with handle:
        total = int(handle.frames)
        plan = _plan_read(name, sample_rate=int(handle.samplerate), channels=int(handle.channels),
                          duration_s=total / handle.samplerate if handle.samplerate > 0 else math.nan,
                          offset=offset, max_duration=max_duration)
        mixer = _Downmixer(plan.source_sr, sr, name=name, taps=taps, channels=plan.channels,
                           duration_s=total / plan.source_sr)
        done = 0
        try:
            if plan.start:
                handle.seek(plan.start)
            while done < plan.limit:
                block = handle.read(min(plan.block_frames, plan.limit - done), dtype="float32", always_2d=True)
                if not len(block):
                    break
                done += len(block)
                mixer.add(block)
        except AudioError:
            raise
        except Exception as exc:
            raise _SoundfileFailed(f"decoding failed after {done / plan.source_sr:.1f} s ({_short(exc)})") from exc
    source_sr = plan.source_sr
    expected = min(plan.limit, total - plan.start)
    if expected - done > max(1.0 * source_sr, 0.05 * expected):
        # e.g. a cut-off MP3: the header promises more than the data holds
        raise AudioError(f"{name}: damaged or truncated file (decoded {done / source_sr:.1f} s of the "
                         f"{expected / source_sr:.1f} s its header announces)")
    y = mixer.result()
    return AudioClip(y=y, sr=sr or source_sr, path=path, source_sr=source_sr, channels=plan.channels,
                     source_duration_s=total / source_sr, truncated=total - plan.start > plan.limit)


def _ffmpeg_exe(name: str, why: str) -> str:
    import shutil

    exe = shutil.which("ffmpeg")
    if exe is None:
        raise AudioError(f"{name}: not readable by soundfile ({why}) and the ffmpeg program, needed for "
                         "M4A/AAC, is not installed (`make system-deps`)")
    return exe


def _ffprobe(path: Path, *, why: str, name: str | None = None) -> dict:
    """The first audio stream's ``{"duration_s", "sample_rate", "channels"}`` as ffprobe reads
    them (unchecked; NaN duration when unknown). AudioError when there is no audio stream."""
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
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=_FFPROBE_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise AudioError(f"{name}: not readable as audio (soundfile: {why}; ffprobe took longer than "
                         f"{_FFPROBE_TIMEOUT_S} s)") from None
    info = _json_object(done.stdout) if done.returncode == 0 else {}
    streams = [s for s in info.get("streams") or [] if isinstance(s, dict)]
    if not streams:  # ffprobe failed (its stdout is then cut-off JSON) or found no audio stream
        reason = _short_text(done.stderr).replace(str(path) + ": ", "") or "no audio stream"
        raise AudioError(f"{name}: not readable as audio: no audio stream found (soundfile: {why}; ffmpeg: {reason})")
    stream, container = streams[0], info.get("format") if isinstance(info.get("format"), dict) else {}
    return {"duration_s": _number(container.get("duration"), math.nan),
            "sample_rate": int(_number(stream.get("sample_rate"), 0)), "channels": int(_number(stream.get("channels"), 0))}


def _json_object(text: bytes) -> dict:
    import json

    try:
        value = json.loads(text or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _decode_ffmpeg(file: Path, *, name: str, path: str | None, sr: int | None, offset: float,
                   max_duration: float, why: str, taps: Sequence[BlockTap] = ()) -> AudioClip:
    """Decode with the ffmpeg program: float32 PCM at the file's own rate streamed through a
    pipe in blocks, downmixed and resampled here exactly like the soundfile path.

    ffmpeg's messages go to a temporary file, not a second pipe: a damaged file can make it
    write more than a pipe holds (64 KiB) while we wait on its audio, and both would wait forever.
    A watchdog stops it after _FFMPEG_TIMEOUT_S.
    """
    import subprocess
    import tempfile
    import threading

    exe = _ffmpeg_exe(name, why)
    info = _ffprobe(file, why=why, name=name)
    plan = _plan_read(name, sample_rate=info["sample_rate"], channels=info["channels"],
                      duration_s=info["duration_s"], offset=offset, max_duration=max_duration)
    cmd = [exe, "-nostdin", "-v", "error"]
    if offset:
        cmd += ["-ss", f"{offset:.6f}"]
    # Half a second more than allowed tells a long file from one that is exactly max_duration.
    cmd += ["-i", str(file), "-map", "0:a:0", "-t", f"{max_duration + 0.5:.6f}", "-vn", "-sn",
            "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(plan.channels), "-ar", str(plan.source_sr), "pipe:1"]
    mixer = _Downmixer(plan.source_sr, sr, name=name, taps=taps, channels=plan.channels,
                       duration_s=info["duration_s"])
    frame_bytes = 4 * plan.channels
    done, pending, more_after_limit = 0, b"", False
    expired = threading.Event()
    with tempfile.TemporaryFile() as messages, \
            subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=messages) as proc:
        watchdog = threading.Timer(_FFMPEG_TIMEOUT_S, lambda: (expired.set(), proc.kill()))
        watchdog.start()
        try:
            while done < plan.limit and (chunk := proc.stdout.read(plan.block_frames * frame_bytes)):
                pending += chunk
                take = min(len(pending) // frame_bytes, plan.limit - done)
                if take:
                    mixer.add(np.frombuffer(pending[: take * frame_bytes], dtype="<f4").reshape(take, plan.channels))
                    done += take
                    pending = pending[take * frame_bytes:]
            if done >= plan.limit:  # anything beyond the limit means the file goes on
                more_after_limit = bool(pending) or bool(proc.stdout.read(frame_bytes))
                proc.kill()
            proc.wait()  # bounded by the watchdog
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
        messages.seek(0)
        err = messages.read()[-4096:]
    if expired.is_set():
        raise AudioError(f"{name}: not readable as audio (ffmpeg took longer than {_FFMPEG_TIMEOUT_S} s and was stopped)")
    if done == 0:
        raise AudioError(f"{name}: not readable as audio (soundfile: {why}; "
                         f"ffmpeg: {_short_text(err).replace(str(file) + ': ', '') or 'no samples decoded'})")
    duration = info["duration_s"]
    if done < plan.limit:  # ffmpeg reached the end: the decoded length is the truth, whatever the header says
        truncated, duration = False, offset + done / plan.source_sr
    else:
        truncated = more_after_limit or (math.isfinite(duration) and duration - offset > max_duration + 1e-3)
        duration = duration if math.isfinite(duration) else offset + done / plan.source_sr
    return AudioClip(y=mixer.result(), sr=sr or plan.source_sr, path=path, source_sr=plan.source_sr, channels=plan.channels,
                     source_duration_s=float(duration), truncated=bool(truncated))


def _validate(clip: AudioClip, *, min_duration: float, name: str) -> None:
    check_signal(clip.duration_s, float(np.max(np.abs(clip.y))) if clip.y.size else 0.0,
                 min_duration=min_duration, name=name)


def check_signal(duration_s: float, peak: float, *, name: str, min_duration: float = config.MIN_DURATION_S) -> None:
    """AudioError when decoded audio is too short or silent (what every decode path refuses)."""
    if duration_s < min_duration:
        raise AudioError(f"{name}: too short ({duration_s:.2f} s < {min_duration:g} s)")
    if peak < 1e-4:
        raise AudioError(f"{name}: silent (peak amplitude below -80 dBFS)")


def _short(exc: BaseException) -> str:
    import re

    # libsndfile repeats the path ("Error opening '/x.wav': Format not recognised."); the
    # caller names the file already. Its "File does not exist or is not a regular file (possibly
    # a pipe?)" means "no format I know" here: the path was checked to be a regular file first.
    text = re.sub(r"^Error opening .*?: ", "", _short_text(str(exc)))
    if text.startswith("File does not exist or is not a regular file"):
        text = "format not recognised"
    return text.rstrip(".") or type(exc).__name__


#: ffmpeg's log prefix names its decoder's address in memory ("[flac @ 0x55fde7886c80] "): not for a user
FFMPEG_CONTEXT = re.compile(r"\[[\w:.-]+ @ 0x[0-9a-f]+\] ")


def _short_text(text: str | bytes | None) -> str:
    """The last line of a decoder's messages, without ffmpeg's memory-address prefix, at most 200 characters."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return FFMPEG_CONTEXT.sub("", lines[-1])[:200] if lines else ""
