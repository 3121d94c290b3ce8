"""`predict`'s window plans: every second of a track read once (the tail too), and a plan bounded
by the duration limit and by what decoding yields, whatever a header claims."""

from __future__ import annotations

import itertools
import math
import resource
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tracklens import audio, config
from tracklens.models import blend

SR = config.SAMPLE_RATE
GENRES = ["pop", "rock"]


class _FixedProbabilities:
    def __call__(self, x, training=False):
        return np.tile([0.8, 0.2], (len(x), 1))


@pytest.fixture
def stub_model() -> blend.GenreModel:
    """A summary model of 3 s windows (so 30 s blocks) over the real decode + feature path."""
    card = {"name": "stub", "genres": GENRES,
            "input": {"kind": "summary", "window_s": 3.0, "shape": [1], "columns": ["rms_mean"]},
            "calibration": {"temperature": 1.0, "aggregation": "mean_prob"}}
    return blend.GenreModel(_FixedProbabilities(), card, Path("stub"))


def _plan(duration_s, block_s=30.0, **kwargs):
    return [(b.start_s, b.end_s) for b in blend.block_plan(duration_s, block_s, **kwargs)]


def _tone(path: Path, seconds: float, fmt: str | None = None, subtype: str | None = None) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    y = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) / 1.5).astype(np.float32)
    sf.write(path, y, SR, format=fmt, subtype=subtype)
    return path


# --- the plan covers the track exactly once ---------------------------------------------------------


def test_a_40_s_track_is_two_blocks_not_one_read_twice():
    """A 40 s file was blended as "6 windows of 10 s", 10-30 s twice."""
    assert _plan(40.0) == [(0.0, 30.0), (30.0, 40.0)]


def test_a_215_s_track_keeps_its_last_5_s():
    """A 215 s file dropped its last 5 s."""
    plan = _plan(215.0)
    assert plan[-1] == (210.0, 215.0) and len(plan) == 8


def test_a_30_s_clip_is_one_block_as_before():
    assert _plan(30.013) == [(0.0, 30.0)]  # 13 ms is no window, and the decoder refuses it alone
    assert _plan(2.0) == [(0.0, 2.0)]
    assert _plan(0.5) == [(0.0, 0.5)]


@pytest.mark.parametrize("duration", [1.0, 29.9, 30.0, 31.0, 59.5, 61.0, 215.0, 599.99, 3600.0])
def test_blocks_tile_the_track(duration):
    plan = _plan(duration)
    assert plan[0][0] == 0.0
    assert all(a[1] == b[0] for a, b in zip(plan, plan[1:]))  # back to back: no gap, no overlap
    assert 0.0 <= duration - plan[-1][1] < blend.TAIL_MIN_S
    assert all(0 < end - start <= 30.0 for start, end in plan)


def test_a_capped_plan_spreads_whole_blocks_over_the_track():
    plan = _plan(3600.0, max_blocks=20)
    assert len(plan) == 20 and plan == sorted(set(plan))
    assert plan[0][0] < 180 and plan[-1][1] > 3420  # neither only the intro nor only the outro


# --- lying headers ----------------------------------------------------------------------------------


def test_a_header_claiming_2_49_samples_costs_nothing_to_plan():
    """`window_starts` built an np.arange over the header's duration: 2^49 samples OOM-killed the
    batch, or raised "Unable to allocate 46.6 TiB"."""
    claimed = 2 ** 49 / 22050
    started = time.perf_counter()
    assert len(_plan(claimed, max_blocks=20)) == 20
    assert len(list(itertools.islice(blend.block_plan(claimed, 30.0), 5))) == 5
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("duration", [math.nan, math.inf])
def test_an_unknown_length_is_read_from_the_start(duration):
    """An MP3 of unknown length / a FLAC with a NaN duration gave "arange: cannot compute length"."""
    assert list(itertools.islice(_plan(duration, max_blocks=3), 3)) == [(0.0, 30.0), (30.0, 60.0), (60.0, 90.0)]


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _lying_ogg(path: Path, granule: int) -> Path:
    """A 20 s Ogg Vorbis whose last page claims ``granule`` samples (CRC fixed, so decoders believe it)."""
    _tone(path, 20.0, fmt="OGG", subtype="VORBIS")
    data = bytearray(path.read_bytes())
    last = data.rfind(b"OggS")
    data[last + 6:last + 14] = struct.pack("<q", granule)
    n_segments = data[last + 26]
    length = 27 + n_segments + sum(data[last + 27:last + 27 + n_segments])
    data[last + 22:last + 26] = bytes(4)
    data[last + 22:last + 26] = struct.pack("<I", _ogg_crc(bytes(data[last:last + length])))
    path.write_bytes(bytes(data))
    return path


def test_an_ogg_claiming_2_49_samples_is_one_plain_error_row(stub_model, tmp_path):
    """An 18 KB Ogg whose last page claims 2^49 samples got the whole batch OOM-killed."""
    liar = _lying_ogg(tmp_path / "liar.ogg", 2 ** 49)
    assert audio.probe_audio(liar)["duration_s"] > 1e10  # the header does lie
    good = _tone(tmp_path / "good.wav", 5.0)
    blend.predict_files([good], model=stub_model)  # imports and compiles: not what is measured
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = blend.predict_files([liar, good], model=stub_model)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(results[1], blend.Blend)
    if isinstance(results[0], blend.Blend):  # read until the data ended
        assert results[0].duration_s == pytest.approx(20.0, abs=0.1)
    else:
        text = str(results[0])
        assert "\n" not in text and "allocate" not in text and "arange" not in text and "Error" not in text
        assert text.startswith(f"{liar}: damaged or truncated file")  # what decoding found, said plainly
    assert grown_mb < 200  # 2^46 samples held 4.5 GB resident


def test_a_track_of_unknown_length_is_blended_to_where_its_data_ends(stub_model, tmp_path, monkeypatch):
    song = _tone(tmp_path / "song.wav", 40.0)
    real = audio.probe_audio
    monkeypatch.setattr(audio, "probe_audio", lambda path: {**real(path), "duration_s": math.nan})
    result = blend.predict_blend(stub_model, song, judge_fit=False)
    assert result.duration_s == pytest.approx(40.0, abs=0.01)
    assert result.timeline["end_s"].max() > 36.0


def test_a_40_s_file_is_blended_once_through(stub_model, tmp_path):
    song = _tone(tmp_path / "song.wav", 40.0)
    result = blend.predict_blend(stub_model, song, judge_fit=False)
    spans = list(zip(result.timeline["start_s"], result.timeline["end_s"]))
    assert all(a[1] <= b[0] + 1e-6 for a, b in zip(spans, spans[1:]))  # no second read of any second
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(39.0)  # 13 whole 3 s windows
    clip = audio.load_audio(song, sr=SR, max_duration=60.0)
    from_memory = blend.predict_blend(stub_model, clip, judge_fit=False)  # an in-memory clip: the same plan
    assert from_memory.timeline[["start_s", "end_s"]].values.tolist() == result.timeline[["start_s", "end_s"]].values.tolist()


def test_ten_thousand_hostile_durations_give_bounded_plans():
    """Fuzz the planner as a hostile header would: tiny, huge, NaN, inf, negative, odd block sizes."""
    rng = np.random.default_rng(22)
    specials = [0.0, -1.0, -math.inf, math.inf, math.nan, 1e-300, 2.0 ** 63 / 8000, 1e308, 0.999, 1.0, 30.0]
    durations = [*specials, *(10.0 ** rng.uniform(-3, 20, 10_000 - len(specials)))]
    started = time.perf_counter()
    for i, duration in enumerate(durations):
        block_s = float(rng.choice([3.0, 10.0, 30.0, 29.999]))
        max_blocks = None if i % 3 == 0 else int(rng.integers(1, 40))
        plan = list(itertools.islice(blend.block_plan(duration, block_s, max_blocks=max_blocks), 100))
        if max_blocks is not None:
            assert len(plan) <= max_blocks
        for start, end, _ in plan:
            assert 0.0 <= start < end and end - start <= block_s + 1e-9
        if 0 < duration <= blend.MAX_BELIEVED_S:
            assert plan and all(end <= duration for _, end, _ in plan)
        if not duration > 0 and not math.isnan(duration):
            assert plan == []
    assert time.perf_counter() - started < 20.0
