"""Fast exact versions of the librosa and scipy steps one :class:`features.Analysis` runs: numba
kernels, each behind a function that takes the plain numpy / librosa path when numba is missing
or the input is not in the dtype and memory layout the kernel is compiled and warmed for (so
nothing compiles outside :mod:`tracklens.numba_cache`'s lock).

Each function gives the values of the computation it replaces (bit for bit, or to float rounding
where its docstring says so; tests/test_features.py compares them):

- :func:`median_filter_1d`: scipy.ndimage.median_filter along one axis (HPSS), ~40x faster
- :func:`softmasked_stft`, :func:`istft`: librosa.decompose.hpss's soft mask and inverse STFT
- :func:`piptrack_peaks`: librosa.piptrack's peaks (the tuning estimate)
- :func:`rolloff_bins`, :func:`frame_rms_zcr`: spectral roll-off, RMS and zero-crossing rate
- :func:`tempogram`: librosa.feature.tempogram from sliding sums

The kernels are compiled with ``cache=True``: :mod:`tracklens.numba_cache` warms, locks and
repairs that cache (``features.warm_kernels`` runs every kernel once); where an installed
package keeps it is decided here, before the first decorator runs.
"""

from __future__ import annotations

import functools

import numpy as np

from tracklens import config, numba_cache
from tracklens.errors import TracklensError

# Frames between direct sums in the tempogram kernel (bounds the sliding sums' rounding drift).
TEMPOGRAM_REFRESH = 128

# --- the numba kernels ------------------------------------------------------------------------

try:
    import numba

    # an installed tracklens caches its kernels in the user cache folder, not in site-packages
    numba_cache.use_user_cache(config.PACKAGE_DIR, checkout=config.REPO_ROOT is not None)

    @numba.njit(cache=True, nogil=True)
    def _running_median_axis0(x, k, idx):
        """Median over a sliding window of odd length ``k`` along axis 0 of C-contiguous 2-D
        ``x``, all columns in lockstep; ``idx`` maps padded positions to rows (the edge mode).

        Each column keeps its window sorted; one step removes the leaving value and inserts
        the arriving one with compares and min/max only, the same few operations for every
        column, so the loop over a row vectorises (4x faster than one sorted window per row
        with a data-dependent shift). Equals ``scipy.ndimage.median_filter(x, size=(k, 1),
        mode="reflect")`` exactly: every output is one of the inputs.
        """
        n, n_cols = x.shape
        out = np.empty_like(x)
        inf = np.float32(np.inf)
        # rows 1..k: the sorted windows; row 0 = -inf and row k + 1 = +inf end every column
        buf = np.empty((k + 2, n_cols), x.dtype)
        nxt = np.empty((k + 2, n_cols), x.dtype)
        buf[0], nxt[0], buf[k + 1], nxt[k + 1] = -inf, -inf, inf, inf
        window = np.empty(k, x.dtype)
        for c in range(n_cols):
            for j in range(k):
                window[j] = x[idx[j], c]
            window.sort()
            for j in range(k):
                buf[j + 1, c] = window[j]
        out[0] = buf[k // 2 + 1]
        for i in range(1, n):
            leaving, arriving = x[idx[i - 1]], x[idx[i - 1 + k]]
            for j in range(1, k + 1):
                below, here, above, dest = buf[j - 1], buf[j], buf[j + 1], nxt[j]
                for c in range(n_cols):
                    # d(j): sorted row j with `leaving` removed (rows at or past it move up);
                    # then `arriving` goes between d(j - 1) and d(j).
                    old = leaving[c]
                    d_below = below[c] if below[c] < old else here[c]
                    d_here = here[c] if here[c] < old else above[c]
                    dest[c] = max(d_below, min(d_here, arriving[c]))
            buf, nxt = nxt, buf
            out[i] = buf[k // 2 + 1]
        return out

    @numba.njit(cache=True, nogil=True)
    def _harmonic_stft_t(stft_t, harm_t, perc):
        """``(stft * softmask(harm, perc)).T`` in one pass: librosa.util.softmask(power=2,
        split_zeros=True) in float32, written frame-major for the inverse FFT.

        ``stft_t``, ``harm_t`` : [shape=(t, f)]; ``perc`` : [shape=(f, t)] (the layouts the two
        median filters produce, so nothing is transposed or copied first).
        """
        n_t, n_f = stft_t.shape
        out = np.empty_like(stft_t)
        half = np.float32(0.5)
        for t0 in range(0, n_t, 32):  # blocks of frames: perc's strided reads stay in cache
            t1 = min(t0 + 32, n_t)
            for t in range(t0, t1):
                for f in range(n_f):
                    h = harm_t[t, f]
                    p = perc[f, t]
                    h2 = h * h
                    den = h2 + p * p
                    out[t, f] = stft_t[t, f] * (h2 / den if den > 0 else half)
        return out

    @numba.njit(cache=True, nogil=True)
    def _overlap_add(frames, window, sum_square, hop_length, tiny):
        """librosa.istft's windowed overlap-add of ``frames`` [shape=(t, n_fft)], divided by
        ``sum_square`` where it exceeds ``tiny``; float32, each sample's terms added in the
        order n_fft/hop shifted copies add them (one pass: 15 -> 4 ms for 30 s)."""
        n_t, n_fft = frames.shape
        y = np.zeros(hop_length * (n_t - 1) + n_fft, np.float32)
        for k in range(n_fft // hop_length):
            part = window[k * hop_length:(k + 1) * hop_length]
            for t in range(n_t):
                # views indexed by the loop counter alone: the loop vectorises
                out = y[(t + k) * hop_length:(t + k + 1) * hop_length]
                frame = frames[t, k * hop_length:(k + 1) * hop_length]
                for j in range(hop_length):
                    out[j] += frame[j] * part[j]
        for i in range(len(y)):
            if sum_square[i] > tiny:
                y[i] /= sum_square[i]
        return y

    @numba.njit(cache=True, nogil=True)
    def _hann_tempogram(padded, n_frames, n, refresh, tiny):
        """librosa's autocorrelation tempogram [shape=(n, n_frames)] of a padded onset envelope:
        frame t is ``padded[t:t + n]`` times a periodic Hann window, autocorrelated and divided
        by its largest value (librosa.util.normalize, norm=inf).

        Hann is a sum of three complex exponentials, so each lag's autocorrelation is a fixed
        combination of five sliding sums over ``p[s] = padded[s] * padded[s + lag]`` (plain,
        and weighted by cos/sin of one and two window periods); each slides one frame with
        O(1) work (a rotation) instead of two 768-point FFTs per frame (17 -> 4 ms for 30 s).
        Recomputed directly every ``refresh`` frames, so rounding cannot drift: within 1e-14
        of librosa's FFT values on GTZAN.
        """
        theta = 2.0 * np.pi / n
        turn = theta * np.arange(n)
        cos1, sin1, cos2, sin2 = np.cos(turn), np.sin(turn), np.cos(2.0 * turn), np.sin(2.0 * turn)
        step1c, step1s, step2c, step2s = np.cos(theta), np.sin(theta), np.cos(2.0 * theta), np.sin(2.0 * theta)
        plain, c1, s1, c2, s2 = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
        row = np.empty(n)
        out = np.empty((n, n_frames))
        for t in range(n_frames):
            for lag in range(n):
                if t % refresh == 0:  # sums over i of p[t + i] * (1, e^{j theta i}, e^{2j theta i})
                    a0 = a1r = a1i = a2r = a2i = 0.0
                    for i in range(n - lag):
                        p = np.float64(padded[t + i]) * np.float64(padded[t + i + lag])
                        a0 += p
                        a1r += p * cos1[i]
                        a1i += p * sin1[i]
                        a2r += p * cos2[i]
                        a2i += p * sin2[i]
                    plain[lag], c1[lag], s1[lag], c2[lag], s2[lag] = a0, a1r, a1i, a2r, a2i
                else:  # p[t - 1] leaves, p[t - 1 + n - lag] arrives (at phase -lag), rotate by -1 step
                    leaving = np.float64(padded[t - 1]) * np.float64(padded[t - 1 + lag])
                    arriving = np.float64(padded[t - 1 + n - lag]) * np.float64(padded[t - 1 + n])
                    plain[lag] += arriving - leaving
                    re = c1[lag] - leaving + arriving * cos1[lag]
                    im = s1[lag] - arriving * sin1[lag]
                    c1[lag], s1[lag] = re * step1c + im * step1s, im * step1c - re * step1s
                    re = c2[lag] - leaving + arriving * cos2[lag]
                    im = s2[lag] - arriving * sin2[lag]
                    c2[lag], s2[lag] = re * step2c + im * step2s, im * step2c - re * step2s
                # w[i] w[i + lag] = 1/4 + cos(lag)/8 - cos(i)/4 - cos(i + lag)/4 + cos(2i + lag)/8
                row[lag] = (0.25 * (1.0 + 0.5 * cos1[lag]) * plain[lag] - 0.25 * c1[lag]
                            - 0.25 * (cos1[lag] * c1[lag] - sin1[lag] * s1[lag])
                            + 0.125 * (cos1[lag] * c2[lag] - sin1[lag] * s2[lag]))
            top = 0.0
            for lag in range(n):
                top = max(top, abs(row[lag]))
            top = top if top >= tiny else 1.0
            for lag in range(n):
                out[lag, t] = row[lag] / top
        return out

    @numba.njit(cache=True, nogil=True)
    def _tuning_peaks(power_t, lo, hi, sr, n_fft):
        """The peaks librosa.piptrack (defaults) finds in ``power_t`` [shape=(t, f)] between
        bins ``lo`` and ``hi``: their interpolated frequencies and magnitudes, float32, frame by
        frame; the same values bit for bit (librosa's float64 steps where numba's stencils take
        them), in one pass instead of eight full-size temporaries (15 ms -> 1.5 ms for 30 s).
        """
        n_t, n_f = power_t.shape
        cap = n_t * ((hi - lo + 1) // 2 + 1)  # local maxima are never adjacent
        pitch = np.empty(cap, np.float32)
        mag = np.empty(cap, np.float32)
        n = 0
        zero = np.float32(0.0)
        for t in range(n_t):
            s = power_t[t]
            top = s[0]
            for f in range(1, n_f):
                top = max(top, s[f])
            ref = np.float32(0.1) * top  # piptrack's threshold: 0.1 of the frame's maximum
            for f in range(lo, hi):
                here = s[f] if s[f] > ref else zero
                left = s[f - 1] if s[f - 1] > ref else zero
                right = s[f + 1] if s[f + 1] > ref else zero
                if here > left and here >= right:  # librosa.util.localmax
                    # librosa's parabolic-interpolation stencil, in its float64 arithmetic
                    a = np.float64(s[f + 1] + s[f - 1]) - 2.0 * np.float64(s[f])
                    b = np.float64(s[f + 1] - s[f - 1]) / 2.0
                    shift = zero if abs(b) >= abs(a) else np.float32(-b / a)
                    slope = (s[f + 1] - s[f - 1]) / np.float32(2.0)  # np.gradient
                    pitch[n] = np.float32((f + np.float64(shift)) * sr / n_fft)
                    mag[n] = s[f] + (np.float32(0.5) * slope) * shift
                    n += 1
        return pitch[:n], mag[:n]

    @numba.njit(cache=True, nogil=True)
    def _rolloff_bins(mag_t, roll_percent):
        """Per frame of ``mag_t`` [shape=(t, f)], the first bin whose running float32 sum
        reaches ``roll_percent`` of the frame's total (numpy's cumsum/argmax, without the
        (f, t) cumulative-sum array)."""
        n_t, n_f = mag_t.shape
        out = np.zeros(n_t, np.int64)
        for t in range(n_t):
            total = np.float32(0.0)
            for f in range(n_f):
                total += mag_t[t, f]
            threshold = roll_percent * total
            acc = np.float32(0.0)
            for f in range(n_f):
                acc += mag_t[t, f]
                if acc >= threshold:
                    out[t] = f
                    break
        return out

    @numba.njit(cache=True, nogil=True)
    def _frame_rms_zcr(y, n_fft, hop_length, n_frames):
        """librosa.feature.rms(y=) and zero_crossing_rate(y) with centred frames of ``n_fft``
        samples, from running sums in one pass over ``y`` (no padded or framed copies).

        RMS pads with zeros and sums float64 squares; ZCR pads with the edge samples, counts
        |y| <= 1e-10 as 0 (positive) and crossings between neighbours inside a frame.
        """
        pad = n_fft // 2
        n = len(y)
        m = n + 2 * pad
        csq = np.zeros(m + 1)
        ccross = np.zeros(m, np.int64)  # ccross[i]: crossings between padded samples j, j+1 for j < i
        tiny = np.float32(1e-10)
        acc = 0.0
        count = 0
        prev_neg = False
        for i in range(m):
            j = min(max(i - pad, 0), n - 1)
            v = y[j]
            if pad <= i < pad + n:
                acc += np.float64(v) * np.float64(v)
            csq[i + 1] = acc
            neg = v < 0 and abs(v) > tiny
            if i > 0 and neg != prev_neg:
                count += 1
            ccross[i] = count
            prev_neg = neg
        rms = np.empty(n_frames, np.float32)
        zcr = np.empty(n_frames)
        for t in range(n_frames):
            s = t * hop_length
            power = (csq[s + n_fft] - csq[s]) / n_fft
            rms[t] = np.sqrt(max(power, 0.0))
            zcr[t] = (ccross[s + n_fft - 1] - ccross[s]) / n_fft
        return rms, zcr


except ImportError:  # pragma: no cover - numba ships with librosa
    _running_median_axis0 = _harmonic_stft_t = _overlap_add = _hann_tempogram = _tuning_peaks = None
    _rolloff_bins = _frame_rms_zcr = None


# --- what the analysis calls: the kernel where it applies, the numpy / librosa formula otherwise ---


def median_filter_1d(x: np.ndarray, *, size: int, axis: int) -> np.ndarray:
    """Exact median filter of odd ``size`` along ``axis`` of a 2-D array (scipy "reflect" edges).

    Same values as ``scipy.ndimage.median_filter`` with a 1-D kernel, ~40x faster. The result
    is C-contiguous in the layout where ``axis`` is the outer one (along axis 1: the transpose
    of a C-contiguous array), which costs no copy when ``x`` is already in that layout.
    """
    if size % 2 != 1 or size < 1:
        raise TracklensError(f"median filter size={size} must be a positive odd integer")
    if _running_median_axis0 is None or x.shape[axis] <= size // 2:  # tiny inputs: scipy's edge rule
        from scipy.ndimage import median_filter

        shape = [1, 1]
        shape[axis] = size
        return median_filter(x, size=shape, mode="reflect")
    along = np.ascontiguousarray(x if axis == 0 else x.T)
    out = _running_median_axis0(along, size, _reflect_index(along.shape[0], size))
    return out if axis == 0 else out.T


@functools.lru_cache(maxsize=32)
def _reflect_index(n: int, size: int) -> np.ndarray:
    # scipy.ndimage mode="reflect" (d c b a | a b c d | d c b a), periodic for pads longer than n
    i = np.arange(-(size // 2), n + size // 2) % (2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def softmasked_stft(stft: np.ndarray, harm: np.ndarray, perc: np.ndarray) -> np.ndarray:
    """``stft * librosa.util.softmask(harm, perc, power=2, split_zeros=True)`` in float32, for
    the median-filtered magnitudes ``harm`` (along time) and ``perc`` (along frequency).

    librosa's STFT is frame-major in memory (F order): there the kernel writes the product
    frame-major too (what :func:`istft` reads), taking ``.T`` views and the layouts the two
    median filters return, so nothing is transposed or copied first.
    """
    if _harmonic_stft_t is not None and stft.flags.f_contiguous:
        return _harmonic_stft_t(stft.T, np.ascontiguousarray(harm.T), np.ascontiguousarray(perc)).T
    h2, p2 = harm * harm, perc * perc
    den = h2 + p2
    mask_h = np.divide(h2, den, out=np.full_like(den, 0.5), where=den > 0)
    return stft * mask_h


@functools.lru_cache(maxsize=8)
def mel_basis(sr: int, n_fft: int, n_mels: int):
    """librosa.filters.mel as a float32 sparse matrix [shape=(n_mels, 1 + n_fft/2)]."""
    import librosa
    import scipy.sparse

    # Sparse: each FFT bin feeds at most 2 mel bands, so this is ~2 k products per frame
    # instead of 131 k (7x faster than the dense product, same values to float rounding).
    return scipy.sparse.csr_array(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32))


@functools.lru_cache(maxsize=8)
def fft_frequencies(sr: int, n_fft: int) -> np.ndarray:
    """librosa.fft_frequencies, computed once per (sr, n_fft)."""
    import librosa

    return librosa.fft_frequencies(sr=sr, n_fft=n_fft)


@functools.lru_cache(maxsize=8)
def _istft_window(n_fft: int, hop_length: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    import librosa
    import scipy.signal

    window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    sum_square = librosa.filters.window_sumsquare(window="hann", n_frames=n_frames, win_length=n_fft, n_fft=n_fft,
                                                  hop_length=hop_length, dtype=np.float32)
    return window, sum_square


def istft(stft: np.ndarray, *, n_fft: int, hop_length: int, length: int) -> np.ndarray:
    """librosa.istft (Hann, center=True, ``length``) to float rounding, ~4x faster: one batched
    inverse FFT and an overlap-add of n_fft/hop shifted copies instead of a per-frame loop."""
    import scipy.fft

    if n_fft % hop_length:
        import librosa

        return librosa.istft(stft, n_fft=n_fft, hop_length=hop_length, length=length).astype(np.float32)
    n_frames = stft.shape[1]
    window, sum_square = _istft_window(n_fft, hop_length, n_frames)
    frames = scipy.fft.irfft(np.ascontiguousarray(stft.T), n=n_fft, axis=1).astype(np.float32, copy=False)
    tiny = np.finfo(np.float32).tiny
    if _overlap_add is not None:
        y = _overlap_add(frames, window, sum_square, hop_length, tiny)
    else:
        frames *= window
        y = np.zeros(hop_length * (n_frames - 1) + n_fft, np.float32)
        for k in range(n_fft // hop_length):
            part = frames[:, k * hop_length:(k + 1) * hop_length].reshape(-1)
            y[k * hop_length:k * hop_length + part.size] += part
        nonzero = sum_square > tiny
        y[nonzero] /= sum_square[nonzero]
    y = y[n_fft // 2:n_fft // 2 + length]
    return y if len(y) == length else np.pad(y, (0, length - len(y)))


def piptrack_peaks(power: np.ndarray, *, sr: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """The nonzero entries of ``librosa.piptrack(S=power, sr=sr, n_fft=n_fft)`` (pitches, mags;
    float32), frame by frame: what estimate_tuning reads, without the two (f, t) arrays."""
    # piptrack's band: 150 Hz <= f < min(4 kHz, Nyquist), never the first or last bin
    freqs = fft_frequencies(sr, n_fft)
    band = np.flatnonzero((freqs >= 150.0) & (freqs < min(4000.0, sr / 2)))
    if _tuning_peaks is not None and power.dtype == np.float32 and power.T.flags.c_contiguous and band.size:
        return _tuning_peaks(power.T, band[0], band[-1] + 1, float(sr), n_fft)
    import librosa

    pitches, mags = librosa.piptrack(S=power, sr=sr, n_fft=n_fft)
    frames, bins = np.nonzero(pitches.T)
    return pitches.T[frames, bins], mags.T[frames, bins]


def rolloff_bins(magnitude: np.ndarray, roll_percent: float = 0.85) -> np.ndarray:
    """Per frame of ``magnitude`` [shape=(f, t)], the first bin whose cumulative energy reaches
    ``roll_percent`` of the frame's total (librosa.feature.spectral_rolloff's rule) [shape=(t,)]."""
    if _rolloff_bins is not None and magnitude.dtype == np.float32 and magnitude.flags.f_contiguous:
        return _rolloff_bins(magnitude.T, np.float32(roll_percent))
    cum = np.cumsum(magnitude, axis=0)
    return np.argmax(cum >= roll_percent * cum[-1], axis=0)


def frame_rms_zcr(y: np.ndarray, *, n_fft: int, hop_length: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """librosa.feature.rms(y=) and zero_crossing_rate(y) of ``n_frames`` centred frames of
    ``n_fft`` samples, each [shape=(1, n_frames)] (RMS float32)."""
    if _frame_rms_zcr is not None:
        rms, zcr = _frame_rms_zcr(y, n_fft, hop_length, n_frames)
        return rms[None, :], zcr[None, :]
    # librosa.feature.rms(y=...): centred frames of n_fft samples, zero padding; as running
    # sums (float64) instead of a framed copy of the signal.
    pad = n_fft // 2
    sq = np.concatenate([np.zeros(pad), np.square(y, dtype=np.float64), np.zeros(pad)])
    csum = np.concatenate([[0.0], np.cumsum(sq)])
    starts = np.arange(n_frames) * hop_length
    power = (csum[starts + n_fft] - csum[starts]) / n_fft
    rms = np.sqrt(np.maximum(power, 0.0)).astype(np.float32)[None, :]
    # librosa.feature.zero_crossing_rate(y): edge-padded centred frames, |y| <= 1e-10 counts
    # as 0 (positive), crossings between neighbours inside a frame / frame length.
    y = np.pad(y, pad, mode="edge")
    y = np.where(np.abs(y) <= 1e-10, np.float32(0.0), y)
    change = np.signbit(y[1:]) != np.signbit(y[:-1])
    csum = np.concatenate([[0], np.cumsum(change, dtype=np.int64)])
    zcr = ((csum[starts + n_fft - 1] - csum[starts]) / n_fft)[None, :]
    return rms, zcr


def tempogram(envelope: np.ndarray, *, sr: int, hop_length: int, win_length: int) -> np.ndarray:
    """librosa.feature.tempogram (autocorrelation, Hann window of ``win_length`` frames) of an
    onset envelope [shape=(t,)] -> [shape=(win_length, t)]; within 1e-14 of librosa's values."""
    import librosa

    if _hann_tempogram is None or envelope.dtype != np.float32:
        return librosa.feature.tempogram(onset_envelope=envelope, sr=sr, hop_length=hop_length,
                                         win_length=win_length)
    # librosa.feature.tempogram's centring: half a window of linear ramp to 0 each side
    padded = np.pad(envelope, win_length // 2, mode="linear_ramp", end_values=[0, 0])
    return _hann_tempogram(padded, len(envelope), win_length, TEMPOGRAM_REFRESH, np.finfo(np.float64).tiny)
