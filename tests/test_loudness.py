"""BS.1770-4 loudness meter: signals whose loudness is known analytically, channel weights,
true peak, EBU Tech 3342 loudness range, streaming equals one-shot, the channel reader in
audio.py, and agreement with ffmpeg's ebur128 filter when ffmpeg is installed."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from tracklens import audio, loudness
from tracklens.errors import TracklensError

SR = 48_000


def sine(dbfs: float, seconds: float = 5.0, *, hz: float = 997.0, sr: int = SR, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t + phase)


def test_mono_sine_reads_its_power_level():
    """BS.1770-4 2.1: a 0 dBFS 997 Hz sine in one front channel reads -3.01 LKFS (the filter's
    gain at 997 Hz cancels the -0.691 offset; a sine's mean square is 3.01 dB under its peak).
    So a -20 dBFS sine in a mono file reads -23.01 LUFS, as ffmpeg's ebur128 reads it."""
    assert loudness.measure(sine(-20.0), SR).integrated_lufs == pytest.approx(-23.01, abs=0.02)
    assert loudness.measure(sine(-20.0, sr=44_100), 44_100).integrated_lufs == pytest.approx(-23.01, abs=0.02)


def test_stereo_sums_channel_powers_and_ignores_phase():
    """Two alike channels read +3.01 dB over one (EBU Tech 3341 case 1: -23 dBFS per channel
    reads -23.0 LUFS); a phase-inverted right channel reads the same (powers, not a downmix,
    which would read silence)."""
    x = sine(-23.0)
    in_phase = loudness.measure(np.stack([x, x], 1), SR).integrated_lufs
    inverted = loudness.measure(np.stack([x, -x], 1), SR).integrated_lufs
    mono = loudness.measure(x, SR).integrated_lufs
    assert in_phase == pytest.approx(-23.0, abs=0.02)
    assert in_phase - mono == pytest.approx(10 * np.log10(2), abs=1e-6)
    assert inverted == pytest.approx(in_phase, abs=1e-9)


def test_channel_weights_surrounds_and_lfe():
    """5.1 in WAV order (L R C LFE Ls Rs): a surround reads +1.49 dB (weight 1.41) over a front
    channel with the same signal; the LFE is left out."""
    x = sine(-20.0)
    def only(channel: int) -> float:
        six = np.zeros((len(x), 6))
        six[:, channel] = x
        return loudness.measure(six, SR).integrated_lufs
    front, centre, lfe, surround = only(0), only(2), only(3), only(4)
    assert centre == pytest.approx(front, abs=1e-9)
    assert surround - front == pytest.approx(10 * np.log10(1.41), abs=1e-6)
    assert lfe == loudness.FLOOR_LUFS
    assert list(loudness.channel_weights(6)) == [1, 1, 1, 0, 1.41, 1.41]
    with pytest.raises(TracklensError, match="channels=0"):
        loudness.channel_weights(0)


def test_gating_silence_and_short_clips():
    assert loudness.measure(np.zeros(SR * 2), SR).integrated_lufs == loudness.FLOOR_LUFS
    assert loudness.measure(sine(-20.0, 0.3), SR).integrated_lufs == loudness.FLOOR_LUFS  # under one 400 ms block
    # the relative gate: 10 s at -20 dBFS then 10 s 30 dB quieter read as the loud part (within
    # the 0.1 LU that the blocks straddling the change add), not as their mean power (-26 LUFS)
    x = np.concatenate([sine(-20.0, 10.0), sine(-50.0, 10.0)])
    assert loudness.measure(x, SR).integrated_lufs == pytest.approx(-23.01, abs=0.1)


def test_true_peak_finds_inter_sample_peaks():
    """A sine at fs/4 sampled 45 degrees off its crests: every sample is 3.01 dB under the
    waveform's peak, which the 4x oversampled meter finds (BS.1770-4 Annex 2)."""
    x = sine(-3.0, 2.0, hz=SR / 4, phase=np.pi / 4)
    result = loudness.measure(x, SR)
    assert result.sample_peak_dbfs == pytest.approx(-6.01, abs=0.01)
    assert result.true_peak_dbtp == pytest.approx(-3.0, abs=0.2)
    assert loudness.measure(sine(-20.0), SR).true_peak_dbtp == pytest.approx(-20.0, abs=0.01)


def test_loudness_range_of_two_levels():
    """EBU Tech 3342 test 1: 20 s of a 1 kHz stereo sine at -20 dBFS then 20 s at -30 dBFS: 10 LU (+-1)."""
    x = np.concatenate([sine(-20.0, 20.0, hz=1000.0), sine(-30.0, 20.0, hz=1000.0)])
    assert loudness.measure(np.stack([x, x], 1), SR).loudness_range_lu == pytest.approx(10.0, abs=1.0)
    assert loudness.measure(sine(-20.0, 10.0), SR).loudness_range_lu == pytest.approx(0.0, abs=0.01)


def test_streaming_equals_one_shot():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal((SR * 7, 2))
    whole = loudness.measure(x, SR)
    meter = loudness.LoudnessMeter(SR, 2)
    for block in np.array_split(x, [1, 4_801, 100_000, 100_017, 250_000]):
        meter.add(block)
    streamed = meter.result()
    assert streamed.integrated_lufs == pytest.approx(whole.integrated_lufs, abs=1e-9)
    assert streamed.true_peak_dbtp == pytest.approx(whole.true_peak_dbtp, abs=1e-9)
    assert streamed.loudness_range_lu == pytest.approx(whole.loudness_range_lu, abs=1e-9)


def test_meter_refuses_bad_blocks():
    meter = loudness.LoudnessMeter(SR, 2)
    with pytest.raises(TracklensError, match="2 channel"):
        meter.add(np.zeros((10, 3)))
    with pytest.raises(TracklensError, match="NaN"):
        meter.add(np.full((10, 2), np.nan))


def test_streaming_normalisation_sentences():
    spotify, youtube, apple = loudness.normalisation(-9.9, -0.3)
    assert spotify["text"] == "Spotify plays it at \u221214 LUFS: turned down 4.1 dB"
    assert spotify["gain_db"] == pytest.approx(-4.1)
    assert apple["gain_db"] == pytest.approx(-6.1)
    quiet = {n["service"]: n for n in loudness.normalisation(-20.0, -3.0)}
    assert quiet["YouTube"]["gain_db"] == 0.0  # YouTube never turns up
    assert quiet["Spotify"]["gain_db"] == pytest.approx(2.0)  # up until the peak reaches -1 dBTP
    assert quiet["Apple Music"]["gain_db"] == pytest.approx(4.0)


def test_a_quiet_track_whose_peak_is_already_over_the_ceiling_says_why_it_is_left_as_it_is():
    # -15.1 LUFS with a +0.2 dBTP peak (a stereo upload on the check page): Spotify would turn it
    # up 1.1 dB but its peak is already over -1 dBTP. The sentence said "left as it is (only as far
    # as the peaks stay under -1 dBTP)", which reads as if it had been turned up.
    spotify = {n["service"]: n for n in loudness.normalisation(-15.1, 0.2)}["Spotify"]
    assert spotify["gain_db"] == 0.0
    assert spotify["text"] == ("Spotify plays it at \u221214 LUFS: left as it is (it would turn it up 1.1 dB, "
                               "but its true peak is already over \u22121 dBTP)")
    partly = {n["service"]: n for n in loudness.normalisation(-17.0, -1.8)}["Spotify"]
    assert partly["text"] == ("Spotify plays it at \u221214 LUFS: turned up 0.8 dB "
                              "(not the full 3.0 dB: only as far as the peaks stay under \u22121 dBTP)")


def test_load_channels_reads_every_channel_at_the_file_rate(tmp_path):
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal((SR * 2, 2))).astype(np.float32)
    path = tmp_path / "st.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    for source in (path, path.read_bytes()):
        sr, channels, blocks = audio.load_channels(source, name="st.wav")
        assert (sr, channels) == (SR, 2)
        np.testing.assert_array_equal(np.concatenate(list(blocks)), x)
    sr, channels, blocks = audio.load_channels(path, max_duration=0.5)
    assert sum(len(b) for b in blocks) == SR // 2
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(audio.AudioError, match="empty file"):
        audio.load_channels(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 100)
    with pytest.raises(audio.AudioError, match="junk.wav"):
        sr, channels, blocks = audio.load_channels(tmp_path / "junk.wav")
        list(blocks)


FFMPEG = shutil.which("ffmpeg")


def _ebur128(path) -> dict:
    log = path.with_suffix(".log")
    subprocess.run([FFMPEG, "-nostats", "-v", "error", "-i", str(path), "-af",
                    f"ebur128=metadata=1:peak=true,ametadata=print:file={log}", "-f", "null", "-"], check=True)
    text = log.read_text()
    last = lambda key: float(re.findall(rf"lavfi\.r128\.{key}=(-?[\d.]+)", text)[-1])
    peak = max(float(v) for v in re.findall(r"lavfi\.r128\.true_peak=([\d.]+)", text))
    return {"I": last("I"), "LRA": last("LRA"), "TP": 20 * np.log10(peak)}


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")
@pytest.mark.parametrize("sr,channels", [(44_100, 2), (48_000, 6), (96_000, 1)])
def test_agrees_with_ffmpeg_ebur128(tmp_path, sr, channels):
    """Wide (independent channels) noise with three sections of different level: integrated
    within 0.1 LU, LRA within 0.5 LU, true peak within 0.2 dB of ffmpeg's ebur128."""
    rng = np.random.default_rng(sr + channels)
    n = sr * 12
    env = np.repeat([1.0, 0.3, 0.6], n // 3 + 1)[:n, None]
    x = (0.05 * rng.standard_normal((n, channels)) * env).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    sr_read, n_channels, blocks = audio.load_channels(path)
    ours = loudness.measure_blocks(blocks, sr_read, n_channels).result()
    ref = _ebur128(path)
    assert ours.integrated_lufs == pytest.approx(ref["I"], abs=0.1)
    assert ours.loudness_range_lu == pytest.approx(ref["LRA"], abs=0.5)
    assert ours.true_peak_dbtp == pytest.approx(ref["TP"], abs=0.2)


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed")
def test_load_channels_falls_back_to_ffmpeg_for_bytes_and_paths(tmp_path):
    """M4A (AAC), which soundfile cannot open: both channels at the file's rate through ffmpeg,
    from a path and from an upload's bytes, and the loudness of the decoded AAC is the WAV's
    within what the lossy codec changes (0.2 LU)."""
    from scipy import signal

    rng = np.random.default_rng(2)
    # noise under 6 kHz: AAC keeps it (full-band noise lost 0.3 LU to the encoder's low-pass)
    x = signal.sosfilt(signal.butter(8, 6000, fs=44_100, output="sos"), rng.standard_normal((44_100 * 4, 2)), axis=0)
    x = 0.1 * x / x.std()
    x[:, 1] *= 0.5
    wav = tmp_path / "src.wav"
    sf.write(wav, x.astype(np.float32), 44_100, subtype="FLOAT")
    m4a = tmp_path / "song.m4a"
    subprocess.run([FFMPEG, "-v", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "256k", str(m4a)], check=True)
    want = loudness.measure(x, 44_100).integrated_lufs
    for source in (m4a, m4a.read_bytes()):
        sr, channels, blocks = audio.load_channels(source, name="song.m4a")
        assert (sr, channels) == (44_100, 2)
        assert loudness.measure_blocks(blocks, sr, channels).result().integrated_lufs == pytest.approx(want, abs=0.2)


def test_load_channels_refuses_a_header_it_cannot_read(tmp_path):
    """A WAV header announcing 65 535 channels is refused before any read, with load_audio's message."""
    import struct

    header = (b"RIFF" + struct.pack("<I", 36 + 8) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 65535, 8_000,
                                                                               8_000 * 65535, 65535, 8)
              + b"data" + struct.pack("<I", 8) + b"\0" * 8)
    path = tmp_path / "wide.wav"
    path.write_bytes(header)
    for source in (path, header):
        with pytest.raises(audio.AudioError, match="unsupported channel count 65535"):
            audio.load_channels(source, name="wide.wav")


def test_true_peak_chunk_skip_gives_the_full_filters_result():
    """The meter skips chunks that cannot beat the peak found so far; the result must be one
    full pass's (loud clipped noise: every chunk is near the peak; quiet noise with one burst:
    one is)."""
    from scipy import signal

    rng = np.random.default_rng(4)
    loud = np.clip(0.6 * rng.standard_normal((SR * 3, 2)), -0.99, 0.99)
    burst = 0.01 * rng.standard_normal((SR * 3, 1))
    burst[SR:SR + 300] *= 60
    h, _ = loudness._interpolation_filter(loudness.oversampling_factor(SR))
    for x in (loud, burst):
        full = max(np.max(np.abs(signal.upfirdn(h, x[:, c], up=4))) for c in range(x.shape[1]))
        full = max(full, np.max(np.abs(x)))  # the meter never reads under the sample peak
        assert loudness.measure(x, SR).true_peak_dbtp == pytest.approx(20 * np.log10(full), abs=1e-9)
