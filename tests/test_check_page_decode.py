"""One decode per file (issue 19 items 3 and 7): the check page, `predict_blend(model, path)` and
the engine's `featurize_file` each decode a file once, at its own rate with its channels; the
loudness meter and the blend's blocks are fed from that one decoding and read what a separate
decode gives them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def _stereo_wav(path, seconds: float = 34.0, sr: int = 44_100):
    """A generated 44.1 kHz stereo clip longer than one 30 s blend block (two blocks)."""
    import soundfile as sf

    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(3)
    left = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.05 * rng.standard_normal(len(t))
    right = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(len(t))
    sf.write(path, np.stack([left, right], axis=1).astype(np.float32), sr, subtype="PCM_16")
    return path


@pytest.fixture
def decodes(monkeypatch):
    """Every decoder call (soundfile, ffmpeg, the meter's own channel reader), by name."""
    from tracklens import audio, features

    calls: list[str] = []

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return wrapper

    for name in ("_decode_soundfile", "_decode_ffmpeg", "load_channels"):
        monkeypatch.setattr(audio, name, counted(name, getattr(audio, name)))
    monkeypatch.setattr(features, "load_channels", audio.load_channels)  # imported by name there
    return calls


def test_a_check_decodes_the_upload_once(app, tmp_path, decodes):
    from tracklens import features
    from tracklens.dashboard import data, track
    from tracklens.models import blend

    path = _stereo_wav(tmp_path / "two-blocks.wav")
    report = track.check_track(path, path.name, digest="decode-once-test")
    assert decodes == ["_decode_soundfile"]  # was three: 22 050 Hz mono, the meter's channels, the blend's 32 kHz
    assert report.genre_blend is not None and len(report.genre_blend.timeline) >= 3
    assert {"decode", "analysis", "neighbours", "total", "cpu_s"} <= set(report.timings)
    # the meter fed from the shared decoding reads what the meter's own decoding reads
    alone = features.channel_meter(path).result()
    assert report.comparable["loudness"] == alone.integrated_lufs
    assert report.comparable["true_peak_dbtp"] == alone.true_peak_dbtp
    assert report.comparable["loudness_range_lu"] == alone.loudness_range_lu
    # and the blend is predict_blend's from the file (one decode there too, not one per block)
    decodes.clear()
    expected = blend.predict_blend(data.default_model(), path)
    assert decodes == ["_decode_soundfile"]
    np.testing.assert_allclose(report.genre_blend.probabilities, expected.probabilities, rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(report.genre_blend.timeline, expected.timeline, check_exact=False, atol=1e-6)


def test_blend_blocks_from_one_decoding_equal_one_decode_per_block(tmp_path, decodes):
    """The cutter's blocks are the samples `load_audio(path, offset=start, max_duration=...)`
    gave block by block before (soundfile seeks exactly; soxr's stream is chunk-invariant)."""
    from tracklens import audio
    from tracklens.models import blend

    path = _stereo_wav(tmp_path / "song.wav", seconds=75.0)
    duration = audio.probe_audio(path)["duration_s"]
    cut = list(blend._windows(None, str(path), duration, 30.0, sr=32_000))
    assert decodes == ["_decode_soundfile"]
    per_block = [audio.load_audio(path, sr=32_000, offset=start, max_duration=end - start)
                 for start, end, _ in blend.block_plan(duration, 30.0)]
    assert [round(start, 6) for start, _, _ in cut] == [0.0, 30.0, 60.0]
    for (_, _, part), alone in zip(cut, per_block, strict=True):
        np.testing.assert_array_equal(part.y, alone.y)


def test_the_engine_decodes_a_file_once(tmp_path, decodes):
    from tracklens import config, features

    path = _stereo_wav(tmp_path / "song.wav", seconds=8.0)
    params = {"sr": config.SAMPLE_RATE, "max_duration": config.MAX_DURATION_S, "segment_seconds": None,
              "overlap": 0.0, "n_fft": config.N_FFT, "hop_length": config.HOP_LENGTH}
    result = features.featurize_file(str(path), params)
    assert decodes == ["_decode_soundfile"]
    assert result.rows[0]["loudness"] == features.channel_meter(path).integrated()


def test_the_background_meter_measures_what_the_meter_does_and_stops_when_cancelled():
    from tracklens import loudness

    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal((48_000 * 5, 2))).astype(np.float32)
    blocks = np.array_split(x, 7)
    tap = loudness.MeterTap(background=True)
    tap.start(48_000, 2, 5.0)
    for block in blocks:
        tap.add(block)
    tap.finish()
    assert tap.meter().result() == loudness.measure(x, 48_000)
    cancelled = loudness.MeterTap(background=True)
    cancelled.start(48_000, 2, 5.0)
    cancelled.add(blocks[0])
    cancelled.cancel()  # the check failed: what is queued is dropped, not measured
    for block in blocks[1:]:
        cancelled.add(block)
    cancelled.finish()
    assert cancelled.meter().result().duration_s == 0.0


def test_the_background_meter_queue_stays_bounded_while_decoding():
    """Once the thread measures, the decoder waits for it: a 10-minute 96 kHz stereo master
    (461 MB of float32 blocks) never waits in the queue whole (the bound was only on the wait)."""
    from tracklens import loudness

    rng = np.random.default_rng(6)
    x = (0.1 * rng.standard_normal((48_000 * 6, 2))).astype(np.float32)
    blocks = np.array_split(x, 24)
    tap = loudness.MeterTap(background=True)
    tap.QUEUED_BYTES_BEFORE_MEASURING = 3 * blocks[0].nbytes
    tap.start(48_000, 2, 6.0)
    waiting = []
    for block in blocks:
        tap.add(block)
        waiting.append(tap._queued_bytes)
    tap.finish()
    assert max(waiting) <= tap.QUEUED_BYTES_BEFORE_MEASURING
    assert tap.meter().result() == loudness.measure(x, 48_000)


def test_a_restarted_decoder_gives_the_background_meter_a_clean_start():
    """soundfile failing part way and ffmpeg starting over: the meter reads the second decoding
    only, and an error measuring the first one is forgotten."""
    from tracklens import loudness

    rng = np.random.default_rng(7)
    x = (0.1 * rng.standard_normal((48_000 * 3, 2))).astype(np.float32)
    tap = loudness.MeterTap(background=True)
    tap.start(48_000, 2, 3.0)
    tap.add(x[:1000, :1])  # one channel of two: this meter raises
    tap.start(48_000, 2, 3.0)
    tap.add(x)
    tap.finish()
    assert tap.meter().result() == loudness.measure(x, 48_000)


def test_a_check_that_fails_after_the_decode_cancels_its_meter(app, tmp_path, monkeypatch):
    """The analysis (or the blend) raising leaves no meter thread measuring a failed check."""
    from tracklens import loudness
    from tracklens.dashboard import track
    from tracklens.errors import TracklensError

    taps = []

    class Recorded(loudness.MeterTap):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            taps.append(self)

    def failing(*args, **kwargs):
        raise TracklensError("the analysis failed")

    monkeypatch.setattr(loudness, "MeterTap", Recorded)
    monkeypatch.setattr(track, "analyse", failing)
    path = _stereo_wav(tmp_path / "fails.wav", seconds=6.0)
    with pytest.raises(TracklensError, match="the analysis failed"):
        track.check_track(path, path.name, digest="fails-after-decode")
    assert len(taps) == 1 and taps[0]._cancelled


def test_soundfile_failing_part_way_restarts_every_tap_for_ffmpeg(tmp_path, monkeypatch):
    """A file soundfile stops reading in the middle goes to ffmpeg, which decodes it from the
    start: the meter and the blend's blocks read that decoding only, not the first one's part
    as well (what both read when soundfile decodes the file alone)."""
    import soundfile as sf

    from tracklens import audio, loudness
    from tracklens.models import blend

    path = _stereo_wav(tmp_path / "song.wav", seconds=34.0)

    def decoded(fail: bool):
        meter, cutter = loudness.MeterTap(background=True), blend.BlockCutter(sr=32_000, block_s=30.0, name=str(path))
        if fail:
            reads, real_read = [], sf.SoundFile.read

            def read_then_fail(self, *args, **kwargs):
                reads.append(1)
                if len(reads) > 2:
                    raise RuntimeError("decoder error in the middle")
                return real_read(self, *args, **kwargs)

            monkeypatch.setattr(sf.SoundFile, "read", read_then_fail)
        audio.decode_into(path, [meter, cutter], max_duration=60.0)
        monkeypatch.undo()
        return meter.meter().result(), list(cutter.blocks())

    (meter, blocks), (meter_after_failing, blocks_after_failing) = decoded(False), decoded(True)
    assert meter_after_failing.duration_s == meter.duration_s
    assert meter_after_failing.integrated_lufs == pytest.approx(meter.integrated_lufs, abs=1e-6)
    assert [(s, e) for s, e, _ in blocks_after_failing] == [(s, e) for s, e, _ in blocks]


def test_every_tap_is_finished_when_one_tap_fails_to_finish(tmp_path):
    """A tap whose finish() raises neither skips the others' finish (a background meter would
    never measure) nor hides the decoder's own error."""
    from tracklens import audio, loudness
    from tracklens.errors import TracklensError

    class Broken:
        def start(self, *args):
            pass

        def add(self, block):
            pass

        def finish(self):
            raise TracklensError("the tap failed to finish")

    path = _stereo_wav(tmp_path / "song.wav", seconds=3.0)
    meter = loudness.MeterTap(background=True)
    with pytest.raises(TracklensError, match="failed to finish"):
        audio.decode_into(path, [Broken(), meter])
    assert meter.meter().result().duration_s == pytest.approx(3.0)
    (tmp_path / "junk.wav").write_bytes(b"RIFF" + bytes(200))
    with pytest.raises(audio.AudioError, match="junk.wav"):  # the decoder's error, not the tap's
        audio.decode_into(tmp_path / "junk.wav", [Broken()])
