"""Decoding: every format path, every bad input from issue 4, bounded memory on long files."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tracklens import audio
from tracklens import config, fileio
from tracklens.audio import AudioError
from tracklens.errors import TracklensError

SR = config.SAMPLE_RATE
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def tone(seconds: float, *, sr: int = SR, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def ffmpeg(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(src), *args, str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One small file per case, written once for the module."""
    d = tmp_path_factory.mktemp("audio")
    out = {}
    out["wav"] = d / "tone.wav"
    sf.write(out["wav"], tone(3.0), SR, subtype="PCM_16")
    out["stereo48k"] = d / "stereo48k.wav"
    left = tone(2.0, sr=48000, freq=440.0)
    sf.write(out["stereo48k"], np.stack([left, left], axis=1), 48000)
    out["u8"] = d / "eight_bit.wav"
    sf.write(out["u8"], tone(2.0, amp=0.5), SR, subtype="PCM_U8")
    out["short"] = d / "short.wav"
    sf.write(out["short"], tone(0.2), SR)
    out["silence"] = d / "silence.wav"
    sf.write(out["silence"], np.zeros(2 * SR, np.float32), SR)
    out["zero"] = d / "zero.wav"
    out["zero"].write_bytes(b"")
    out["random"] = d / "random.wav"
    out["random"].write_bytes(np.random.default_rng(0).bytes(20_000))
    out["unicode"] = d / "bläck métal ♫ my song (v2).wav"
    sf.write(out["unicode"], tone(2.0), SR)
    if shutil.which("ffmpeg"):
        out["mp3"] = ffmpeg(out["wav"], d / "tone.mp3", "-c:a", "libmp3lame", "-b:a", "64k")
        data = out["mp3"].read_bytes()
        out["truncated_mp3"] = d / "truncated.mp3"
        out["truncated_mp3"].write_bytes(data[: len(data) // 2])
        out["m4a"] = ffmpeg(out["wav"], d / "tone.m4a", "-c:a", "aac", "-b:a", "96k")
        out["opus"] = ffmpeg(out["wav"], d / "tone.opus", "-c:a", "libopus", "-b:a", "32k")
    return out


def test_wav_is_decoded_unchanged(files):
    clip = audio.load_audio(files["wav"])
    assert clip.sr == SR and clip.source_sr == SR and clip.channels == 1 and not clip.truncated
    assert clip.y.dtype == np.float32 and clip.y.ndim == 1
    np.testing.assert_allclose(clip.y, tone(3.0), atol=1 / 2**15)


def test_48k_stereo_is_downmixed_and_resampled(files):
    clip = audio.load_audio(files["stereo48k"])
    assert (clip.source_sr, clip.channels, clip.sr) == (48000, 2, SR)
    assert clip.duration_s == pytest.approx(2.0, abs=1e-3)
    # the same tone at 22 050 Hz: resampling keeps it (edges aside)
    np.testing.assert_allclose(clip.y[2000:-2000], tone(2.0)[2000:len(clip.y) - 2000], atol=2e-3)


@pytest.mark.parametrize("channels", [2, 3])
def test_multichannel_decoding_equals_librosa_load(tmp_path, channels):
    """Downmix and resampling give librosa.load's samples bit for bit (what plain librosa and
    the equality tests against it read)."""
    import librosa

    rng = np.random.default_rng(channels)
    path = tmp_path / f"{channels}ch.wav"
    sf.write(path, (0.3 * rng.standard_normal((3 * 44100, channels))).astype(np.float32), 44100, subtype="FLOAT")
    np.testing.assert_array_equal(audio.load_audio(path).y, librosa.load(path, sr=SR)[0])


def test_8bit_wav(files):
    clip = audio.load_audio(files["u8"])
    assert np.max(np.abs(clip.y)) == pytest.approx(0.5, abs=0.02)
    assert np.corrcoef(clip.y, tone(2.0, amp=0.5))[0, 1] > 0.99


@pytest.mark.parametrize("case, message", [
    ("zero", "empty file (0 bytes)"),
    ("random", "not readable as audio"),
    ("short", "too short (0.20 s < 1 s)"),
    ("silence", "silent"),
])
def test_bad_inputs_raise_one_clear_line(files, case, message):
    with pytest.raises(AudioError) as err:
        audio.load_audio(files[case])
    text = str(err.value)
    assert text.startswith(str(files[case])) and message in text and "\n" not in text


def test_missing_file():
    with pytest.raises(AudioError, match="no such file"):
        audio.load_audio("/no/such/file.wav")


@pytest.mark.parametrize("value, kind", [(None, "None"), (np.zeros(100, dtype=np.float32), "ndarray"),
                                         (b"RIFF....WAVE", "bytes"), (123, "int")])
def test_something_other_than_a_path_is_named_in_one_line(value, kind):
    # in a notebook: load_audio(clip.y), load_audio(df), load_audio(uploaded_bytes)
    for read in (audio.load_audio, audio.probe_audio):
        with pytest.raises(AudioError, match=f"expected a path to an audio file, got {kind}") as err:
            read(value)
        assert "\n" not in str(err.value)


def test_load_audio_bytes_given_a_path_points_to_load_audio(tmp_path):
    # was TypeError: a bytes-like object is required, not 'str'
    for path in ("song.mp3", tmp_path / "song.mp3"):
        with pytest.raises(AudioError, match=r"load_audio_bytes takes a file's bytes, got .*: for a path use load_audio\(path\)"):
            audio.load_audio_bytes(path)


@needs_ffmpeg
def test_mp3_opus_and_m4a_decode(files):
    reference = tone(3.0)
    for case in ("mp3", "opus", "m4a"):
        clip = audio.load_audio(files[case])
        assert clip.duration_s == pytest.approx(3.0, abs=0.1), case
        middle = clip.y[SR: 2 * SR]  # codecs add a little delay/padding at the edges
        assert np.sqrt(np.mean(middle**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.1), case


@needs_ffmpeg
def test_m4a_goes_through_ffmpeg_and_is_probed(files, monkeypatch):
    calls = []
    real = subprocess.Popen

    def spy(cmd, *args, **kwargs):
        calls.append(cmd[0])
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    clip = audio.load_audio(files["m4a"], max_duration=1.0)
    assert any(Path(c).name == "ffmpeg" for c in calls)
    assert clip.truncated and clip.duration_s == pytest.approx(1.0, abs=1e-3)
    assert audio.probe_audio(files["m4a"])["sample_rate"] == SR


@needs_ffmpeg
def test_truncated_mp3_is_reported(files):
    with pytest.raises(AudioError, match="damaged or truncated"):
        audio.load_audio(files["truncated_mp3"])


def test_unicode_and_spaces_in_file_name(files):
    clip = audio.load_audio(files["unicode"])
    assert clip.path == str(files["unicode"]) and clip.duration_s == pytest.approx(2.0)


@needs_ffmpeg
def test_load_audio_bytes_from_memory_and_temp_dir(files, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the private temp dir lands here
    wav = audio.load_audio_bytes(files["wav"].read_bytes(), filename="song.wav")
    m4a = audio.load_audio_bytes(files["m4a"].read_bytes(), name="my song.m4a")
    assert wav.path is None and wav.duration_s == pytest.approx(3.0)
    assert m4a.duration_s == pytest.approx(3.0, abs=0.1)
    assert list(tmp_path.iterdir()) == []  # cleaned up
    with pytest.raises(AudioError, match=r"^upload\.wav: empty file"):
        audio.load_audio_bytes(b"", filename="upload.wav")
    with pytest.raises(AudioError, match=r"^junk\.wav: not readable as audio"):
        audio.load_audio_bytes(files["random"].read_bytes(), filename="junk.wav")


def test_twenty_minute_file_is_streamed_and_truncated(tmp_path):
    """A 20-minute file (8 kHz, a repeated 1 s pattern: cheap to write) read with a 60 s limit:
    only what is kept is ever in memory."""
    path = tmp_path / "long.wav"
    pattern = tone(1.0, sr=8000, freq=220.0)
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, subtype="PCM_16") as handle:
        for _ in range(20):
            handle.write(np.tile(pattern, 60))
    assert sf.info(str(path)).duration == pytest.approx(1200.0)
    tracemalloc.start()
    clip = audio.load_audio(path, max_duration=60.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert clip.truncated and clip.source_duration_s == pytest.approx(1200.0)
    assert clip.duration_s == pytest.approx(60.0, abs=1e-3)
    # whole file decoded at once would be 1200 s x 8000 x 4 B = 38 MB (+ resampled copies)
    assert peak < 3 * clip.y.nbytes + 8 * 2**20, f"peak {peak / 2**20:.1f} MB"
    full = audio.probe_audio(path)
    assert full["duration_s"] == pytest.approx(1200.0)


# --- what the decoder accepts: one check for every path (files, uploads, probe) -------------------


def _with_wav_header(src: Path, dst: Path, *, channels: int | None = None, rate: int | None = None) -> Path:
    """A copy of the PCM WAV ``src`` whose fmt chunk claims other channels / sample rate."""
    import struct

    data = bytearray(src.read_bytes())
    fmt = data.find(b"fmt ")
    if channels is not None:
        data[fmt + 10: fmt + 12] = struct.pack("<H", channels)
    if rate is not None:
        data[fmt + 12: fmt + 16] = struct.pack("<I", rate)
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("channels, rate, message", [
    (65535, None, "unsupported channel count 65535"),
    (0, None, "unsupported channel count 0"),
    # 1 Hz: each 30 s window of a 1.3 MB file was upsampled to 26.5 M samples (predict ran > 600 s)
    (None, 1, "unsupported sample rate 1 Hz"),
    (None, 1_000_000, "unsupported sample rate 1000000 Hz"),
])
def test_header_values_outside_the_accepted_range_are_refused_on_every_path(files, tmp_path, channels, rate, message):
    bad = _with_wav_header(files["wav"], tmp_path / "bad.wav", channels=channels, rate=rate)
    for read in (audio.load_audio, audio.probe_audio, lambda p: audio.load_audio_bytes(p.read_bytes(), name=str(p))):
        with pytest.raises(AudioError) as err:
            read(bad)
        assert str(err.value).startswith(f"{bad}: {message}"), err.value


@needs_ffmpeg
def test_ffprobe_header_values_are_checked_before_any_read(files, monkeypatch):
    """Some ffprobe versions accept a 65535-channel header: the read size (block x channels) was
    then a 137 GB MemoryError that no caller expected."""
    real = audio._ffprobe

    def claims_65535_channels(path, *, why, name=None):
        return {**real(path, why=why, name=name), "channels": 65535}

    monkeypatch.setattr(audio, "_ffprobe", claims_65535_channels)
    with pytest.raises(AudioError, match="unsupported channel count 65535"):
        audio.load_audio(files["m4a"])


@pytest.mark.parametrize("value, outcome", [(np.nan, "NaN or infinite"), (1e30, "far outside"), (1.5, None)])
def test_float_samples_must_be_finite_and_near_full_scale(tmp_path, value, outcome):
    y = tone(2.0)
    y[SR // 2] = value
    path = tmp_path / "float.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    if outcome is None:  # a lossy-decoder-like overshoot is clipped, never passed on
        clip = audio.load_audio(path)
        assert np.max(np.abs(clip.y)) == pytest.approx(1.0)
        return
    with pytest.raises(AudioError, match=outcome):
        audio.load_audio(path)


def test_what_is_not_a_regular_file_is_named_and_never_opened(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    loop = tmp_path / "loop.wav"
    loop.symlink_to(tmp_path / "loop2.wav")
    (tmp_path / "loop2.wav").symlink_to(loop)
    for path, kind in ((fifo, "a named pipe"), (folder, "a directory"), (loop, "a symbolic link loop")):
        with pytest.raises(AudioError, match=rf"^{path}: not a regular file \({kind}\)$"):
            audio.load_audio(path)
        with pytest.raises(AudioError, match="not a regular file"):
            audio.probe_audio(path)
    # hashing a FIFO would block forever in open(): it must be refused first
    outcome = []

    def checksum():
        try:
            fileio.file_checksum(fifo)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    worker = threading.Thread(target=checksum, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # release the blocked open() before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert outcome and isinstance(outcome[0], TracklensError) and "not a regular file" in str(outcome[0])


@needs_ffmpeg
@pytest.mark.parametrize("content", [b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10), b"these are my notes\n" * 20])
def test_mp3_without_audio_says_no_audio_stream(tmp_path, content):
    path = tmp_path / "song.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioError) as err:
        audio.load_audio(path)
    text = str(err.value)
    assert "no audio stream" in text and "pipe" not in text, text


def _fake_ffmpeg(tmp_path: Path, monkeypatch, script: str) -> None:
    """Put an ``ffmpeg`` running ``script`` first on PATH (the real ffprobe is still found)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "ffmpeg"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")


def _load_within(path: Path, seconds: float):
    """load_audio(path) in a thread: (finished in time, the AudioError or clip)."""
    import threading

    box = []
    worker = threading.Thread(target=lambda: box.append(_try_load(path)), daemon=True)
    worker.start()
    worker.join(seconds)
    return not worker.is_alive(), (box[0] if box else None)


def _try_load(path):
    try:
        return audio.load_audio(path)
    except AudioError as exc:
        return exc


@needs_ffmpeg
def test_a_hanging_ffmpeg_is_stopped(files, tmp_path, monkeypatch):
    _fake_ffmpeg(tmp_path, monkeypatch, "exec sleep 60")
    monkeypatch.setattr(audio, "_FFMPEG_TIMEOUT_S", 1)
    finished, result = _load_within(files["m4a"], 15)
    assert finished and isinstance(result, AudioError) and "took longer than 1 s" in str(result), result


@needs_ffmpeg
def test_ffmpeg_writing_more_messages_than_a_pipe_holds_does_not_deadlock(files, tmp_path, monkeypatch):
    # 1 MB of messages and no audio: with stderr on a pipe, ffmpeg and the reader waited on each other
    _fake_ffmpeg(tmp_path, monkeypatch, "head -c 1000000 /dev/zero | tr '\\000' x >&2; echo >&2; echo 'bad packet' >&2; exit 1")
    finished, result = _load_within(files["m4a"], 30)
    assert finished and isinstance(result, AudioError) and "bad packet" in str(result), result


def test_decoder_messages_drop_ffmpeg_memory_addresses():
    """ffmpeg prefixes its lines with the decoder's address ("[flac @ 0x55fde7886c80] "): the
    one-line reason a user reads keeps the words and drops the address, on every path."""
    from tracklens.audio import _short_text

    assert _short_text(b"noise\n[flac @ 0x55fde7886c80] Invalid data found when processing input\n") == \
        "Invalid data found when processing input"
    assert _short_text("[mp3float @ 0x7f00aa] Header missing") == "Header missing"
    assert _short_text("") == ""
