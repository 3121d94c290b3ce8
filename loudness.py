"""Loudness to the broadcast standard: ITU-R BS.1770-4 integrated loudness over a file's
channels, true peak (BS.1770-4 Annex 2, oversampled), loudness range (EBU Tech 3342), and what
the streaming services' normalisation does to a track.

The meter streams: :meth:`LoudnessMeter.add` takes blocks of ``(frames, channels)`` samples at
the file's own rate (:func:`tracklens.audio.load_channels` yields them), so a 10-minute 96 kHz
master is measured in bounded memory. It keeps the K-weighted energy of every 100 ms step per
channel; the 400 ms gating blocks (75 % overlap) and the 3 s short-term windows (10 Hz) are sums
of consecutive steps, which is how ffmpeg's ``ebur128`` filter and libebur128 measure too.
``bench/loudness.py`` compares this meter with ffmpeg's on generated files (docs/your-track-numbers.md).

Channel weights (BS.1770-4 Table 3): left, right, centre 1.0; surrounds 1.41 (+1.5 dB); LFE
excluded. Channel order is the WAV / SMPTE order (L R C LFE Ls Rs ...), see :func:`channel_weights`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from tracklens.errors import TracklensError

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0  # BS.1770-4 integrated loudness
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342
STEP_S = 0.1  # gating blocks and short-term windows advance by 100 ms
BLOCK_STEPS = 4  # 400 ms gating block
SHORT_TERM_STEPS = 30  # 3 s short-term window (Tech 3342)
SURROUND_WEIGHT = 1.41  # BS.1770-4 Table 3 (+1.5 dB)
# Reported loudness of silence / of a signal with no block above the absolute gate.
FLOOR_LUFS = ABSOLUTE_GATE_LUFS
FLOOR_DBTP = -120.0

# Where the streaming services play a track (their published reference levels). "down_only":
# the service turns loud tracks down but never turns quiet ones up. Spotify turns quiet tracks
# up only as far as the true peak stays at -1 dBTP (Spotify for Artists, "Loudness normalization").
STREAMING_TARGETS = (
    {"service": "Spotify", "lufs": -14.0, "down_only": False, "peak_ceiling_dbtp": -1.0},
    {"service": "YouTube", "lufs": -14.0, "down_only": True, "peak_ceiling_dbtp": None},
    {"service": "Apple Music", "lufs": -16.0, "down_only": False, "peak_ceiling_dbtp": None},
)


@dataclass(frozen=True)
class Loudness:
    """What the meter measured.

    integrated_lufs : BS.1770-4 gated integrated loudness over the channels, LUFS (>= -70)
    true_peak_dbtp : the highest oversampled sample magnitude over channels, dBTP
    sample_peak_dbfs : the highest sample magnitude, dBFS
    loudness_range_lu : EBU Tech 3342 LRA, LU (0 for clips under 3 s)
    sample_rate, channels, duration_s : what was measured
    """

    integrated_lufs: float
    true_peak_dbtp: float
    sample_peak_dbfs: float
    loudness_range_lu: float
    sample_rate: int
    channels: int
    duration_s: float


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770-4 weights for ``channels`` in WAV / SMPTE order [shape=(channels,)].

    1-3 channels (mono, L R, L R C): 1.0 each; 4 (quad L R Ls Rs), 5 (L R C Ls Rs), 6 (5.1:
    L R C LFE Ls Rs), 8 (7.1: L R C LFE Ls Rs Lb Rb): surrounds 1.41, LFE 0. Other layouts
    carry no standard order: every channel counts 1.0.
    """
    s = SURROUND_WEIGHT
    layouts = {4: [1, 1, s, s], 5: [1, 1, 1, s, s], 6: [1, 1, 1, 0, s, s], 8: [1, 1, 1, 0, s, s, s, s]}
    if channels < 1:
        raise TracklensError(f"channels={channels} must be >= 1")
    return np.array(layouts.get(channels, [1.0] * channels), dtype=np.float64)


@functools.lru_cache(maxsize=16)
def k_weighting_sos(sr: int) -> np.ndarray:
    """The two K-weighting biquads of BS.1770-4 at ``sr`` Hz as second-order sections
    [shape=(2, 6)]: the high-shelf pre-filter (+4 dB above ~1.7 kHz) and the RLB high-pass
    (~38 Hz), from their analogue parameters by the bilinear transform, which gives the
    standard's 48 kHz coefficients exactly and the same filters at any other rate (libebur128's
    and pyloudnorm's design)."""
    if sr <= 0:
        raise TracklensError(f"sr={sr} must be > 0")
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / sr)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / sr)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def oversampling_factor(sr: int) -> int:
    """True-peak oversampling: 4x below 96 kHz (BS.1770-4 Annex 2 at 48 kHz), 2x below
    192 kHz, none above; the oversampled rate is always >= 176.4 kHz (ffmpeg's ebur128 reads at
    192 kHz). 8x read full-band noise 0.03 dB closer to the band-limited peak at twice the cost."""
    return 4 if sr < 96_000 else 2 if sr < 192_000 else 1


@functools.lru_cache(maxsize=4)
def _interpolation_filter(factor: int) -> tuple[np.ndarray, float]:
    """Low-pass FIR for ``factor``x interpolation and the largest gain any of its phases can
    give a signal bounded by 1 (the sum of that phase's |taps|).

    32 taps per phase, pass band to 0.98 of the input Nyquist frequency: Annex 2's example
    filter has 12 per phase, which read bench/loudness.py's clipped noise 0.37 dB under ffmpeg
    and 0.56 dB under the band-limited peak; 16 per phase read white noise 0.3 dB under ffmpeg.
    The cost is in the number of outputs, hardly in the taps."""
    from scipy import signal

    taps = 32 * factor + 1  # odd: a whole-sample delay, so the original samples stay on the grid
    h = signal.firwin(taps, 0.98 / factor, window=("kaiser", 8.0)) * factor
    bound = max(float(np.abs(h[phase::factor]).sum()) for phase in range(factor))
    return h, bound


_TP_CONTEXT = 20  # input samples each side that a 32-tap phase filter needs (>= 16)
_ADD_FRAMES = 1 << 16  # frames measured at a time (1.5 s at 44.1 kHz)
_TP_CHUNK = 1024  # input samples per true-peak chunk; chunks that cannot beat the peak are skipped


class LoudnessMeter:
    """A streaming BS.1770-4 / Tech 3342 meter for ``channels`` channels at ``sr`` Hz.

    Feed it ``(frames, channels)`` (or mono ``(frames,)``) float blocks with :meth:`add`, then
    read :meth:`result`. ``weights`` overrides :func:`channel_weights`.
    """

    def __init__(self, sr: int, channels: int, *, weights=None):
        if not (isinstance(sr, (int, np.integer)) and sr > 0):
            raise TracklensError(f"sr={sr!r} must be a positive integer")
        self.sr, self.channels = int(sr), int(channels)
        self.weights = channel_weights(self.channels) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.weights.shape != (self.channels,):
            raise TracklensError(f"weights must hold one value per channel ({self.channels})")
        sos = k_weighting_sos(self.sr)
        self._sos = sos
        self._zi = np.zeros((sos.shape[0], self.channels, 2))
        self._steps: list[np.ndarray] = []  # per 100 ms step: K-weighted sum of squares per channel
        self._partial = np.zeros(self.channels)
        self._partial_n = 0
        self._n = 0
        self._sample_peak = 0.0
        self._true_peak = 0.0
        self._factor = oversampling_factor(self.sr)
        self._tp_tail = None  # the last 2 * _TP_CONTEXT input samples, for the next block's edges

    def _step_end(self, k: int) -> int:
        """Sample index where 100 ms step ``k`` ends (rounded, so 11 025 Hz steps alternate 1102/1103)."""
        return int(round((k + 1) * STEP_S * self.sr))

    def add(self, block) -> None:
        """Measure the next ``(frames, channels)`` (or mono ``(frames,)``) samples; a long block
        is measured in pieces of _ADD_FRAMES, so memory stays bounded (the float64 copies of
        10 minutes at once took ~300 MB)."""
        block = np.asarray(block)
        if block.ndim == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise TracklensError(f"block of shape {np.shape(block)} does not hold {self.channels} channel(s)")
        for start in range(0, len(block), _ADD_FRAMES):
            self._add(block[start:start + _ADD_FRAMES])

    def _add(self, block: np.ndarray) -> None:
        from scipy import signal

        x = np.asarray(block, dtype=np.float64)
        if not len(x):
            return
        if not np.all(np.isfinite(x)):
            raise TracklensError("block holds NaN or infinite samples")
        self._sample_peak = max(self._sample_peak, float(np.max(np.abs(x))))
        self._add_true_peak(x)
        weighted, self._zi = signal.sosfilt(self._sos, x.T, axis=-1, zi=self._zi)
        sq = np.square(weighted)
        start = self._n
        self._n += len(x)
        pos = 0
        while True:
            end = self._step_end(len(self._steps)) - start
            if end > len(x):
                break
            self._steps.append(self._partial + sq[:, pos:end].sum(axis=1))
            self._partial = np.zeros(self.channels)
            self._partial_n = 0
            pos = end
        self._partial = self._partial + sq[:, pos:].sum(axis=1)
        self._partial_n += len(x) - pos

    def _add_true_peak(self, x: np.ndarray, *, last: bool = False) -> None:
        """Oversample the new samples with _TP_CONTEXT samples of context each side (the edge
        samples wait for the next block's context; the last block's see silence after it)."""
        if self._factor == 1:
            self._true_peak = self._sample_peak
            return
        c = _TP_CONTEXT
        head = self._tp_tail if self._tp_tail is not None else np.zeros((c, self.channels))
        data = np.concatenate([head, x]) if len(x) else head
        if last:
            data = np.concatenate([data, np.zeros((c, self.channels))])
        if len(data) >= 2 * c + 1:
            self._true_peak = max(self._true_peak, self._interpolated_peak(data))
            self._tp_tail = data[-2 * c:]
        else:
            self._tp_tail = data

    def _interpolated_peak(self, data: np.ndarray) -> float:
        """The largest interpolated magnitude for input samples data[c : -c], at least the
        current true peak. A chunk whose samples (with context) are all below
        ``true peak / bound`` cannot hold a higher interpolated value, so it is not oversampled:
        music then oversamples a few per cent of its chunks (the same result, 20-50x less work)."""
        from scipy import signal

        c, f = _TP_CONTEXT, self._factor
        h, bound = _interpolation_filter(f)
        delay = (len(h) - 1) // 2  # linear phase: output f*i + delay is input sample i
        starts = np.arange(c, len(data) - c, _TP_CHUNK)
        # the largest |sample| over channels: np.maximum column by column (abs().max(axis=1) over a
        # 2-column array took 1.8 ms per 65 536 frames, a quarter of a loud master's meter time)
        magnitude = np.abs(data[:, 0])
        for channel in range(1, data.shape[1]):
            np.maximum(magnitude, np.abs(data[:, channel]), out=magnitude)
        local = np.array([magnitude[s - c:min(s + _TP_CHUNK, len(data) - c) + c].max() for s in starts])
        best = self._true_peak
        for i in np.argsort(-local):
            if local[i] * bound <= best:
                break
            s = starts[i]
            e = min(s + _TP_CHUNK, len(data) - c)
            up = signal.upfirdn(h, data[s - c:e + c], up=f, axis=0)
            best = max(best, float(np.max(np.abs(up[f * c + delay:f * (e - s + c) + delay]))))
        return best

    # --- results -------------------------------------------------------------------------

    def _weighted_steps(self) -> np.ndarray:
        """Per 100 ms step, the channel-weighted K-weighted energy [shape=(steps,)]."""
        if not self._steps:
            return np.zeros(0)
        return np.stack(self._steps) @ self.weights

    def _window_power(self, steps: np.ndarray, width: int) -> np.ndarray:
        """Mean power of windows of ``width`` consecutive steps, one per step."""
        if len(steps) < width:
            return np.zeros(0)
        csum = np.concatenate([[0.0], np.cumsum(steps)])
        bounds = [self._step_end(k) for k in range(-1, len(steps))]
        bounds[0] = 0
        bounds = np.asarray(bounds)
        return (csum[width:] - csum[:-width]) / (bounds[width:] - bounds[:-width])

    def integrated(self, start_s: float = 0.0, end_s: float | None = None) -> float:
        """Gated integrated loudness (LUFS) of the 100 ms steps within [start_s, end_s)."""
        steps = self._weighted_steps()
        k0 = int(round(start_s / STEP_S))
        k1 = len(steps) if end_s is None else min(len(steps), int(round(end_s / STEP_S)))
        return gated_loudness(self._window_power(steps[k0:k1], BLOCK_STEPS), relative_gate_lu=RELATIVE_GATE_LU)

    def loudness_range(self) -> float:
        """EBU Tech 3342 loudness range (LU): the 10th to 95th percentile of the 3 s short-term
        loudness, after the absolute gate and a relative gate 20 LU under their mean power."""
        z = self._window_power(self._weighted_steps(), SHORT_TERM_STEPS)
        level = _lufs(z)
        z = z[level >= ABSOLUTE_GATE_LUFS]
        if not z.size:
            return 0.0
        relative = float(_lufs(np.array([z.mean()]))[0]) + LRA_RELATIVE_GATE_LU
        kept = _lufs(z)
        kept = kept[kept >= relative]
        if not kept.size:
            return 0.0
        low, high = np.percentile(kept, [10, 95])
        return float(high - low)

    def result(self) -> Loudness:
        self._add_true_peak(np.zeros((0, self.channels)), last=True)
        true_peak = max(self._true_peak, self._sample_peak)
        return Loudness(
            integrated_lufs=self.integrated(), true_peak_dbtp=_db(true_peak), sample_peak_dbfs=_db(self._sample_peak),
            loudness_range_lu=self.loudness_range(), sample_rate=self.sr, channels=self.channels,
            duration_s=self._n / self.sr)


def _lufs(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(power)


def _db(amplitude: float) -> float:
    return float(max(20.0 * math.log10(amplitude), FLOOR_DBTP)) if amplitude > 0 else FLOOR_DBTP


def gated_loudness(block_power: np.ndarray, *, relative_gate_lu: float = RELATIVE_GATE_LU) -> float:
    """BS.1770-4 gating of 400 ms blocks' channel-weighted mean powers: the absolute gate at
    -70 LUFS, then a relative gate ``relative_gate_lu`` under the absolute-gated mean. Returns
    LUFS, FLOOR_LUFS when no block passes (silence or a clip under 400 ms)."""
    level = _lufs(block_power)
    gated = block_power[level >= ABSOLUTE_GATE_LUFS]
    if not gated.size:
        return FLOOR_LUFS
    relative = float(_lufs(np.array([gated.mean()]))[0]) + relative_gate_lu
    kept = block_power[(level >= ABSOLUTE_GATE_LUFS) & (level > relative)]
    return float(max(_lufs(np.array([kept.mean()]))[0], FLOOR_LUFS)) if kept.size else FLOOR_LUFS


def measure(samples, sr: int, *, weights=None) -> Loudness:
    """Measure in-memory ``samples`` [shape=(frames,) or (frames, channels)] at ``sr`` Hz."""
    x = np.asarray(samples)
    meter = LoudnessMeter(sr, 1 if x.ndim == 1 else x.shape[1], weights=weights)
    meter.add(x)
    return meter.result()


def measure_blocks(blocks, sr: int, channels: int) -> LoudnessMeter:
    """Feed an iterable of ``(frames, channels)`` blocks to a new meter; returns the meter
    (its :meth:`~LoudnessMeter.result`, and :meth:`~LoudnessMeter.integrated` of any span)."""
    meter = LoudnessMeter(sr, channels)
    for block in blocks:
        meter.add(block)
    return meter


class MeterTap:
    """A decoder tap (:class:`tracklens.audio.BlockTap`): measures the file's channels at its own
    rate while :func:`tracklens.audio.load_audio` decodes it for something else, so one decode
    feeds both. ``background=True`` measures in a thread of its own (the true peak of a loud
    6-minute 48 kHz master is ~1.4 CPU s: what follows the decoder need not wait for it). That
    thread starts when the decoder is done, or once :data:`QUEUED_BYTES_BEFORE_MEASURING` of
    blocks wait: measuring beside the decoder slowed it 3-6x on a busy machine (the meter's
    Python loops hold the GIL), and the blend and the analysis wait for the decoder. Until
    measured, the blocks wait in memory (a 6-minute 48 kHz stereo file: 138 MB of float32); once
    the thread measures, :meth:`add` waits while more than that many bytes wait, so a
    10-minute 96 kHz stereo master (461 MB of float32) never sits in the queue whole.

    :meth:`meter` returns the fed :class:`LoudnessMeter` (waiting for the thread), or raises what
    measuring raised; None when no decoder started.
    """

    _DONE = object()
    QUEUED_BYTES_BEFORE_MEASURING = 192 << 20  # beyond this, measure while decoding, and the decoder waits for the meter

    def __init__(self, *, background: bool = False):
        import queue
        import threading

        self._meter: LoudnessMeter | None = None
        self._error: BaseException | None = None
        self._queue = queue.SimpleQueue() if background else None
        self._thread = threading.Thread(target=self._measure, name="loudness-meter", daemon=True) \
            if background else None
        self._started = False
        self._queued_bytes = 0  # added and not yet taken by the thread (guarded by _room)
        self._room = threading.Condition()
        self._cancelled = False

    def start(self, sample_rate: int, channels: int, duration_s: float) -> None:
        meter = LoudnessMeter(int(sample_rate), int(channels))  # a decoder that starts over: a fresh meter
        if self._queue is None:
            self._meter = meter
        else:
            self._queue.put((meter, None))

    def add(self, block) -> None:
        if self._queue is None:
            self._meter.add(block)
            return
        block = np.asarray(block)
        with self._room:
            self._queued_bytes += block.nbytes
        self._queue.put((None, block))
        if self._queued_bytes > self.QUEUED_BYTES_BEFORE_MEASURING:
            self._start_thread()
            with self._room:  # bound the queue: the meter is slower than decoding a WAV
                while (self._queued_bytes > self.QUEUED_BYTES_BEFORE_MEASURING and not self._cancelled
                       and self._thread.is_alive()):
                    self._room.wait(timeout=1.0)

    def finish(self) -> None:
        if self._queue is not None:
            self._queue.put((self._DONE, None))
            self._start_thread()

    def _start_thread(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def _measure(self) -> None:
        meter = None
        while True:
            new, block = self._queue.get()
            if new is self._DONE:
                break
            if new is not None:  # a decoder (re)started: what the last one fed, errors too, is forgotten
                meter, self._error = new, None
                continue
            try:
                if self._error is None and not self._cancelled:
                    meter.add(block)
            except BaseException as exc:  # given to whoever reads the meter
                self._error = exc
            finally:
                with self._room:
                    self._queued_bytes -= block.nbytes
                    self._room.notify_all()
        self._meter = meter

    def cancel(self) -> None:
        """Measure nothing more (the check failed: a 10-minute upload refused as too long would
        otherwise keep a core busy measuring it); the queued blocks are dropped."""
        with self._room:
            self._cancelled = True
            self._room.notify_all()

    def meter(self) -> LoudnessMeter | None:
        if self._thread is not None and self._started:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._meter


def normalisation(integrated_lufs: float, true_peak_dbtp: float) -> list[dict]:
    """What each service in STREAMING_TARGETS does to a track at ``integrated_lufs``:
    ``[{"service", "target_lufs", "gain_db", "text"}]``; gain_db < 0 turns it down.
    Example text: "Spotify plays it at -14 LUFS: turned down 4.1 dB"."""
    out = []
    for t in STREAMING_TARGETS:
        gain = t["lufs"] - integrated_lufs
        limited = ""
        if gain > 0 and t["down_only"]:
            gain, limited = 0.0, " (it never turns tracks up)"
        elif gain > 0 and t["peak_ceiling_dbtp"] is not None and true_peak_dbtp + gain > t["peak_ceiling_dbtp"]:
            wanted, gain = gain, max(0.0, t["peak_ceiling_dbtp"] - true_peak_dbtp)
            # say why: "left as it is (only as far as ...)" read as if it had been turned up
            limited = (f" (it would turn it up {wanted:.1f} dB, but its true peak is already over "
                       f"{t['peak_ceiling_dbtp']:g} dBTP)" if gain < 0.05 else
                       f" (not the full {wanted:.1f} dB: only as far as the peaks stay under {t['peak_ceiling_dbtp']:g} dBTP)")
        if abs(gain) < 0.05:
            action = "left as it is"
        else:
            action = f"turned {'down' if gain < 0 else 'up'} {abs(gain):.1f} dB"
        out.append({"service": t["service"], "target_lufs": t["lufs"], "gain_db": round(gain, 2),
                    "text": f"{t['service']} plays it at {t['lufs']:g} LUFS: {action}{limited}".replace("-", "\u2212")})
    return out
