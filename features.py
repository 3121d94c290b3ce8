"""Audio features from one analysis per clip: GTZAN-compatible summaries, Spotify-comparable
columns, fixed-length segments and frame matrices; :func:`features_task` hands the per-file
function to the batch runner (:mod:`tracklens.batch`: cache, processes, Dask, outputs).

One :class:`Analysis` holds one STFT of a clip; every spectral feature (mel, MFCC, chroma,
centroid, bandwidth, rolloff, contrast, harmonic/percussive split, onset strength, tempo) is
derived from it, lazily and at most once. Only RMS and zero-crossing rate read the waveform,
because they are defined on time-domain frames (``rms(S=)`` differs from ``rms(y=)``, which is
what the published GTZAN table used) and cost ~1 ms each. The numba kernels that make these
steps fast (median filter, soft mask, inverse STFT, tuning peaks, roll-off, RMS/ZCR, tempogram)
live in :mod:`tracklens.feature_kernels`; this module holds what is computed, not how fast.

Data flow: audio -> features -> (parquet + frames) -> models / explore / dashboard.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from tracklens import batch, config, feature_kernels, key_estimation, loudness, numba_cache, pitch_posteriors, process
from tracklens.audio import AudioClip, load_audio, load_channels
from tracklens.batch import load_frames  # noqa: F401 - callers read the engine's frames as features.load_frames
from tracklens.errors import TracklensError

# Bump when any computed value changes, so cached entries from older code are not reused.
# 2: chroma at the tuning librosa estimates from every frame (was every 2nd)
# 3: loudness is BS.1770-4 over the file's channels (was the mono downmix); key from Albrecht-
#    Shanahan profiles with a minor bias; new columns CARD_COLUMNS (bpm, tempo_alt, true peak, LRA, key confidence)
# 4: a track's key (key, mode, key_confidence, key_runner_up) from the learned key_estimation model
# 5: that model refit on the GTZAN train + valid folds (was train only; same choices, recipes/key_model.py)
# 6: the key model also reads basic-pitch's pitch-class profiles (Analysis.pitch_posteriors; docs/key.md);
#    the tempo half from its pitched onsets (docs/tempo.md)
# 7: the key named is the one of highest expected MIREX score (was the most probable); no key where the
#    notes heard are spread evenly over the 12 pitch classes (noise, drums: docs/key-no-tonal.md)
FEATURE_VERSION = 7

# The Kaggle GTZAN feature table's 57 feature columns, in its order (after `filename, length`).
_SPECTRAL = (
    "chroma_stft", "rms", "spectral_centroid", "spectral_bandwidth", "rolloff",
    "zero_crossing_rate", "harmony", "perceptr",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    *(f"{name}_{stat}" for name in _SPECTRAL for stat in ("mean", "var")),
    "tempo",
    *(f"mfcc{i}_{stat}" for i in range(1, config.N_MFCC + 1) for stat in ("mean", "var")),
)
assert len(SUMMARY_COLUMNS) == 57

# Spotify's audio-defined columns we compute, in chart units (tempo is shared with the GTZAN set).
SPOTIFY_COLUMNS: tuple[str, ...] = ("tempo", "loudness", "key", "mode", "duration_ms")
# Spotify's perceptual columns: no audio definition, so the engine never computes them (README
# "Audio features"); models.descriptors estimates those it can from audio, with their error, as
# extra track columns (energy_est, acousticness_est: see TrackExtras).
SPOTIFY_NOT_COMPUTED: tuple[str, ...] = config.SPOTIFY_PERCEPTUAL_FEATURES
assert {*SPOTIFY_COLUMNS, *SPOTIFY_NOT_COMPUTED} == {*config.SPOTIFY_AUDIO_FEATURES, "duration_ms"}  # order: the CSV's
ID_COLUMNS: tuple[str, ...] = ("track_id", "path", "label", "segment", "start_s", "end_s", "length")
# ``loudness`` is ITU-R BS.1770-4 integrated loudness in LUFS over the file's channels at its own
# rate (tracklens.loudness; was the mono downmix before FEATURE_VERSION 3: 3-6 dB low on stereo).
# ``tempo`` stays the GTZAN-table feature the models were trained on (librosa.feature.tempo of the
# mean-over-bands onset envelope). The columns below are on track rows only (NaN / empty on
# segments): ``bpm``, the tempo a musician would tap (Analysis.tempo_estimate: median-over-bands
# onsets and basic-pitch's pitched onsets, half each; GTZAN valid fold Acc1 0.753 vs 0.59 for
# ``tempo``, docs/tempo.md), its x2 / x1/2 alternative when the
# evidence is close (NaN when not), true peak (dBTP, oversampled), loudness range (EBU Tech 3342,
# LU), the key's confidence (0-1) and its runner-up ("E minor").
CARD_COLUMNS: tuple[str, ...] = (
    "bpm", "tempo_alt", "true_peak_dbtp", "loudness_range_lu", "key_confidence", "key_runner_up",
)
EXTRA_COLUMNS: tuple[str, ...] = ("truncated", "checksum")
FEATURE_COLUMNS: tuple[str, ...] = (
    *ID_COLUMNS, *SUMMARY_COLUMNS, *(c for c in SPOTIFY_COLUMNS if c != "tempo"), *CARD_COLUMNS, *EXTRA_COLUMNS,
)

N_CHROMA = 12
N_CONTRAST_BANDS = 6  # spectral_contrast returns n_bands + 1 rows
SEQUENCE_ROWS: tuple[str, ...] = (
    *(f"mfcc{i}" for i in range(1, config.N_MFCC + 1)),
    "spectral_centroid",
    *(f"chroma{i}" for i in range(N_CHROMA)),
    *(f"contrast{i}" for i in range(N_CONTRAST_BANDS + 1)),
)
HPSS_KERNEL = 31  # librosa.effects.hpss default, which the published table used

# Key profiles, C as tonic (major, minor), from the literature: key_estimation.KEY_PROFILES
# (Krumhansl-Kessler, Temperley, Albrecht-Shanahan and the engine's mix of the first and last).
KEY_PROFILES = key_estimation.KEY_PROFILES


KEY_NAMES = tuple(f"{pc} {mode}" for mode in ("major", "minor")
                  for pc in ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"))


@functools.lru_cache(maxsize=8)
def key_templates(profiles: str) -> np.ndarray:
    """[shape=(24, 12)] rows 0-11: C..B major, 12-23: C..B minor; each z-scored, so a dot
    product with a z-scored chroma / 12 is Pearson's r."""
    major, minor = (np.asarray(p, dtype=np.float64) for p in KEY_PROFILES[profiles])
    t = np.array([np.roll(p, k) for p in (major, minor) for k in range(12)])
    return (t - t.mean(axis=1, keepdims=True)) / t.std(axis=1, keepdims=True)


# --- one analysis per clip -----------------------------------------------------------------


class Analysis:
    """One STFT of a mono clip and everything derived from it, each computed at most once.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32 mono audio
    sr : int > 0, sample rate in Hz
    n_fft, hop_length : STFT frame and hop length in samples

    Attributes (lazy; shapes with ``t = 1 + n // hop_length`` frames)
    ----------
    stft : complex64 [shape=(1 + n_fft/2, t)]
    magnitude, power : float32 [shape=(1 + n_fft/2, t)], |stft| and |stft|**2
    mel : float32 [shape=(128, t)], mel power spectrogram
    log_mel : float32 [shape=(128, t)], mel power in dB (ref 1.0, top_db 80)
    mfcc : float32 [shape=(20, t)]
    tuning : float, estimated tuning (chroma bins) unless given
    chroma : float32 [shape=(12, t)], chroma_stft from the power spectrogram at ``tuning``
    spectral_centroid, spectral_bandwidth, rolloff : [shape=(1, t)] in Hz
    spectral_contrast : [shape=(7, t)] in dB
    rms, zero_crossing_rate : [shape=(1, t)], from time-domain frames of ``y``
    harmonic, percussive : float32 [shape=(n,)], waveforms of the HPSS split
    onset_envelope : [shape=(t,)]; tempo : float, BPM (the GTZAN-table feature the genre models read)
    tempo_estimate : TempoEstimate, ``bpm`` (the tempo to quote: the ``bpm`` column, the check
        page's) and its ×2/×½ ``alternative`` in BPM (NaN when not close)
    key : KeyEstimate, ``key`` 0-11 (0 = C, -1 none), ``mode`` 1 major / 0 minor, ``confidence`` 0-1
    """

    def __init__(self, y: np.ndarray, *, sr: int = config.SAMPLE_RATE, n_fft: int = config.N_FFT,
                 hop_length: int = config.HOP_LENGTH, n_mels: int = config.N_MELS,
                 n_mfcc: int = config.N_MFCC, tuning: float | None = None):
        import librosa

        if isinstance(y, (str, Path)):
            raise TracklensError(f"analyze: {str(y)!r} is a file name, not samples: decode it first "
                                 "(clip = audio.load_audio(path); features.analyze(clip.y, sr=clip.sr))")
        if isinstance(y, AudioClip):
            raise TracklensError("analyze: got an AudioClip: pass clip.y, sr=clip.sr")
        for name, value in (("sr", sr), ("n_fft", n_fft), ("hop_length", hop_length)):
            if not value > 0:
                raise TracklensError(f"analyze: {name}={value!r} must be a positive number of "
                                     f"{'samples per second' if name == 'sr' else 'samples'}")
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1:
            raise TracklensError(f"analyze: y must be mono (1-D), got shape {y.shape}")
        if len(y) < n_fft:
            raise TracklensError(f"analyze: clip of {len(y)} samples is shorter than n_fft={n_fft}")
        if not np.all(np.isfinite(y)):
            raise TracklensError("analyze: y holds NaN or infinite samples")
        self.y, self.sr, self.n_fft, self.hop_length = y, int(sr), int(n_fft), int(hop_length)
        self.n_mels, self.n_mfcc = int(n_mels), int(n_mfcc)
        self._tuning = None if tuning is None else float(tuning)
        # The one STFT: librosa defaults (hann, center=True, constant padding).
        self.stft = librosa.stft(y, n_fft=self.n_fft, hop_length=self.hop_length)

    @property
    def n_frames(self) -> int:
        return self.stft.shape[1]

    @property
    def duration_s(self) -> float:
        return len(self.y) / self.sr

    @functools.cached_property
    def magnitude(self) -> np.ndarray:
        return np.abs(self.stft)

    @functools.cached_property
    def power(self) -> np.ndarray:
        return self.magnitude ** 2

    @functools.cached_property
    def mel(self) -> np.ndarray:
        return feature_kernels.mel_basis(self.sr, self.n_fft, self.n_mels) @ self.power

    @functools.cached_property
    def log_mel(self) -> np.ndarray:
        import librosa

        return librosa.power_to_db(self.mel).astype(np.float32)

    @functools.cached_property
    def mfcc(self) -> np.ndarray:
        import librosa

        return librosa.feature.mfcc(S=self.log_mel, n_mfcc=self.n_mfcc).astype(np.float32)

    @functools.cached_property
    def tuning(self) -> float:
        """Deviation from A440 in fractions of a chroma bin, unless given: the value chroma_stft
        estimates (librosa.estimate_tuning of the power spectrogram), with piptrack's peak search
        as one numba pass. It matters: chroma_stft_var r 0.96 -> 0.999 vs the published table
        (README)."""
        import librosa

        if self._tuning is not None:
            return self._tuning
        pitch, mag = feature_kernels.piptrack_peaks(self.power, sr=self.sr, n_fft=self.n_fft)
        threshold = np.median(mag) if mag.size else 0.0  # librosa.estimate_tuning from here on
        return float(librosa.pitch_tuning(pitch[mag >= threshold], resolution=0.01, bins_per_octave=N_CHROMA))

    @functools.cached_property
    def chroma(self) -> np.ndarray:
        import librosa

        return librosa.feature.chroma_stft(S=self.power, sr=self.sr, tuning=self.tuning).astype(np.float32)

    @functools.cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Three weighted sums over frequency give centroid and bandwidth in one pass each
        # (librosa normalises S per call); same values to float rounding.
        f = self._freqs.astype(np.float32)
        weights = np.stack([np.ones_like(f), f, f * f])
        return tuple((weights @ self.magnitude).astype(np.float64))

    @functools.cached_property
    def spectral_centroid(self) -> np.ndarray:
        m0, m1, _ = self._moments
        return np.where(m0 > 0, m1 / np.where(m0 > 0, m0, 1.0), 0.0)[None, :]

    @functools.cached_property
    def spectral_bandwidth(self) -> np.ndarray:
        # librosa: sqrt(sum_f S_norm (f - centroid)^2) = sqrt(m2/m0 - centroid^2)
        m0, _, m2 = self._moments
        c = self.spectral_centroid[0]
        var = np.where(m0 > 0, m2 / np.where(m0 > 0, m0, 1.0) - c * c, 0.0)
        return np.sqrt(np.maximum(var, 0.0))[None, :]

    @functools.cached_property
    def rolloff(self) -> np.ndarray:
        # librosa.feature.spectral_rolloff (85 %): first bin whose cumulative energy reaches it
        return self._freqs[feature_kernels.rolloff_bins(self.magnitude, 0.85)][None, :]

    @functools.cached_property
    def spectral_contrast(self) -> np.ndarray:
        import librosa

        return librosa.feature.spectral_contrast(S=self.magnitude, sr=self.sr, freq=self._freqs,
                                                 n_bands=N_CONTRAST_BANDS)

    @functools.cached_property
    def _rms_zcr(self) -> tuple[np.ndarray, np.ndarray]:
        return feature_kernels.frame_rms_zcr(self.y, n_fft=self.n_fft, hop_length=self.hop_length,
                                             n_frames=self.n_frames)

    @property
    def rms(self) -> np.ndarray:
        return self._rms_zcr[0]

    @property
    def zero_crossing_rate(self) -> np.ndarray:
        return self._rms_zcr[1]

    @functools.cached_property
    def _freqs(self) -> np.ndarray:
        return feature_kernels.fft_frequencies(self.sr, self.n_fft)

    @functools.cached_property
    def _hpss(self) -> tuple[np.ndarray, np.ndarray]:
        # librosa.decompose.hpss on the shared STFT (kernel 31, soft mask power 2, margin 1),
        # with an exact vectorised running median instead of scipy's generic median_filter.
        mag = self.magnitude
        harm = feature_kernels.median_filter_1d(mag, size=HPSS_KERNEL, axis=-1)
        perc = feature_kernels.median_filter_1d(mag, size=HPSS_KERNEL, axis=0)
        masked = feature_kernels.softmasked_stft(self.stft, harm, perc)
        harmonic = feature_kernels.istft(masked, n_fft=self.n_fft, hop_length=self.hop_length, length=len(self.y))
        # The two soft masks sum to 1, so percussive = istft(stft) - harmonic = y - harmonic
        # (istft(stft(y)) == y to float precision); this saves the second inverse STFT.
        return harmonic, (self.y - harmonic).astype(np.float32)

    @property
    def harmonic(self) -> np.ndarray:
        return self._hpss[0]

    @property
    def percussive(self) -> np.ndarray:
        return self._hpss[1]

    @functools.cached_property
    def onset_envelope(self) -> np.ndarray:
        import librosa

        # onset_strength(y=) computes exactly this log-mel; reuse it.
        return librosa.onset.onset_strength(S=self.log_mel, sr=self.sr, hop_length=self.hop_length)

    @functools.cached_property
    def tempogram(self) -> np.ndarray:
        """Autocorrelation tempogram [shape=(384, t)] of ``onset_envelope`` (librosa.feature.tempo's own; to 1e-14)."""
        return self._tempogram_of(self.onset_envelope)

    def _tempogram_of(self, envelope: np.ndarray) -> np.ndarray:
        return feature_kernels.tempogram(envelope, sr=self.sr, hop_length=self.hop_length, win_length=_TEMPOGRAM_WIN)

    @functools.cached_property
    def tempo(self) -> float:
        """The GTZAN-table ``tempo`` feature (librosa.feature.tempo of the mean-over-bands onset
        envelope), kept as the models were trained on it; :attr:`tempo_estimate` is the tempo
        a musician would tap."""
        return _tempo(self.tempogram, sr=self.sr, hop_length=self.hop_length)

    @functools.cached_property
    def beat_envelope(self) -> np.ndarray:
        """Onset strength with the median over mel bands, as librosa.beat.beat_track takes it:
        one loud band (a bass note, a cymbal wash) does not make an onset (+10.5 points tempo
        Acc1 over the mean on 256 GTZAN clips, NOTES.md)."""
        import librosa

        return librosa.onset.onset_strength(S=self.log_mel, sr=self.sr, hop_length=self.hop_length,
                                            aggregate=np.median)

    @functools.cached_property
    def beat_tempogram(self) -> np.ndarray:
        """Autocorrelation tempogram [shape=(384, t)] of :attr:`beat_envelope`."""
        return self._tempogram_of(self.beat_envelope)

    @functools.cached_property
    def pitched_envelope(self) -> np.ndarray:
        """Where notes start, by pitch rather than by energy: basic-pitch's onset probability
        summed over the 88 keys, at the STFT's frame rate, above its moving average over
        PITCHED_DETREND_FRAMES (sustained notes and reverb raise that floor). It hears the soft,
        legato onsets of classical excerpts that spectral flux misses (docs/tempo.md)."""
        return pitched_onset_envelope(self.pitch_posteriors.onset)

    @functools.cached_property
    def pitched_tempogram(self) -> np.ndarray:
        """Autocorrelation tempogram [shape=(384, t)] of :attr:`pitched_envelope`."""
        return self._tempogram_of(self.pitched_envelope)

    @functools.cached_property
    def tempo_estimate(self) -> "TempoEstimate":
        """The tempo (BPM) a musician would tap, and its x2 / x1/2 alternative when close:
        :func:`estimate_tempo` of :func:`tempo_strength` (the beat and pitched tempograms)."""
        strength = tempo_strength(self.beat_tempogram.mean(axis=1), self.pitched_tempogram.mean(axis=1),
                                  sr=self.sr, hop_length=self.hop_length)
        return estimate_tempo(strength, sr=self.sr, hop_length=self.hop_length)

    @functools.cached_property
    def pitch_posteriors(self) -> "pitch_posteriors.PitchPosteriors":
        """basic-pitch's note and onset probabilities of the signal (86 frames a second, two per
        STFT frame); the key and the tempo read them (~0.4 CPU-s per 30 s, docs/key.md). Not its
        pitch contour: nothing here reads it, and it was 60 % of their memory (~54 of 90 MB for a
        10-minute file)."""
        return pitch_posteriors.posteriors(self.y, sr=self.sr)

    @functools.cached_property
    def key(self) -> KeyEstimate:
        """Key, mode, confidence and runner-up of the learned estimator (:func:`learned_key`)."""
        evidence = key_estimation.KeyEvidence()
        evidence.add(self.y, sr=self.sr, chroma=self.chroma, tuning=self.tuning, posteriors=self.pitch_posteriors)
        return learned_key(evidence)


_TEMPOGRAM_WIN = 384  # librosa.feature.tempo's ac_size=8 s at 22 050 Hz / 512


def _tempo(tempogram: np.ndarray, *, sr: int, hop_length: int) -> float:
    """librosa.feature.tempo (mean aggregate, log-normal prior at 120 BPM) of tempogram frames."""
    import librosa

    if tempogram.shape[-1] < 1 or not np.any(tempogram):
        return 0.0
    return float(librosa.feature.tempo(tg=tempogram, sr=sr, hop_length=hop_length)[0])


@dataclass(frozen=True)
class TempoEstimate:
    """``bpm``: the tempo; ``alternative``: its double or half when the tempogram's evidence
    for it is close (within ALT_TEMPO_RATIO), else NaN."""

    bpm: float
    alternative: float = float("nan")


# An octave candidate scoring at least this share of the chosen one is shown beside it. Train
# fold: at 0.7 the alternative shows on 48 % of clips and is the right one on 10.5 % (Acc1 of
# "tempo or its alternative" 0.613 -> 0.718); at 0.8, 29 % and 6.2 %.
ALT_TEMPO_RATIO = 0.7
TEMPO_RANGE_BPM = (30.0, 300.0)


def tempo_candidates(tempogram: np.ndarray, *, sr: int, hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of the mean tempogram within TEMPO_RANGE_BPM: ``(bpm, strength)``, each peak's
    lag refined by a parabola through its neighbours (a lag is 2-4 % of the tempo above 120
    BPM, as wide as Acc1's tolerance)."""
    strength = tempogram.mean(axis=1) if tempogram.ndim == 2 else np.asarray(tempogram)
    lag = np.arange(1, len(strength) - 1)
    peaks = lag[(strength[lag] > strength[lag - 1]) & (strength[lag] >= strength[lag + 1])]
    left, mid, right = strength[peaks - 1], strength[peaks], strength[peaks + 1]
    denom = left - 2 * mid + right
    shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, 1.0), 0.0)
    bpm = 60.0 * sr / (hop_length * (peaks + shift))
    height = mid - 0.25 * (left - right) * shift
    keep = (bpm >= TEMPO_RANGE_BPM[0]) & (bpm <= TEMPO_RANGE_BPM[1]) & (height > 0)
    return bpm[keep], height[keep]


def estimate_tempo(tempogram: np.ndarray, *, sr: int, hop_length: int) -> TempoEstimate:
    """The tempo of a tempogram [shape=(lags, t)] (or of its mean over frames [shape=(lags,)],
    e.g. a long track's, summed block by block): the candidate peak with the highest strength
    times a log-normal prior (TEMPO_PRIOR), and its x2 / x1/2 alternative when that scores
    within ALT_TEMPO_RATIO of it."""
    bpm, height = tempo_candidates(tempogram, sr=sr, hop_length=hop_length)
    if not bpm.size:
        return TempoEstimate(0.0)
    score = height * _tempo_prior(bpm)
    best = int(np.argmax(score))
    alternative = float("nan")
    for factor in (2.0, 0.5):
        near = np.abs(np.log2(bpm / (bpm[best] * factor))) < 0.06
        if near.any() and score[near].max() >= ALT_TEMPO_RATIO * score[best]:
            alternative = float(bpm[near][np.argmax(score[near])])
            break
    return TempoEstimate(float(bpm[best]), alternative)


def tempo_strength(beat: np.ndarray, pitched: np.ndarray, *, sr: int, hop_length: int) -> np.ndarray:
    """Evidence for each tempogram lag: half the mean tempogram of :attr:`Analysis.beat_envelope`,
    half that of :attr:`Analysis.pitched_envelope`, each divided by its highest value within
    TEMPO_RANGE_BPM (so neither envelope's scale decides). Chosen on the train fold among 74
    variants: Acc1 / Acc2 0.613 / 0.804 -> 0.663 / 0.840; valid fold 0.741 / 0.914 -> 0.753 /
    0.938 (bench/tempo_basic_pitch.py)."""
    fps = sr / hop_length
    lags = slice(int(60 * fps / TEMPO_RANGE_BPM[1]), int(60 * fps / TEMPO_RANGE_BPM[0]))

    def normalised(curve: np.ndarray) -> np.ndarray:  # both tempograms have _TEMPOGRAM_WIN lags
        curve = np.asarray(curve, np.float64)
        return curve / max(float(curve[lags].max()), 1e-9)

    return 0.5 * normalised(beat) + 0.5 * normalised(pitched)


# basic-pitch frames (at the STFT's rate) in the moving average taken off the pitched onsets: 0.51 s
PITCHED_DETREND_FRAMES = 22


def pitched_onset_envelope(onset: np.ndarray) -> np.ndarray:
    """:attr:`Analysis.pitched_envelope` of basic-pitch's onset probabilities [shape=(t, 88)]."""
    from scipy.ndimage import uniform_filter1d

    onsets = onset.sum(axis=1)
    n = len(onsets) // 2  # two posterior frames (256 samples) per STFT frame (512)
    pairs = onsets[:2 * n:2] + onsets[1:2 * n:2]
    return np.maximum(pairs - uniform_filter1d(pairs, PITCHED_DETREND_FRAMES, mode="nearest"), 0.0).astype(np.float32)


TEMPO_PRIOR = (120.0, 1.0)  # log-normal: centre BPM, sd in octaves (librosa.feature.tempo's default)


def _tempo_prior(bpm: np.ndarray) -> np.ndarray:
    centre, octaves = TEMPO_PRIOR
    return np.exp(-0.5 * (np.log2(bpm / centre) / octaves) ** 2)


def analyze(y: np.ndarray, *, sr: int = config.SAMPLE_RATE, n_fft: int = config.N_FFT,
            hop_length: int = config.HOP_LENGTH, **kwargs: Any) -> Analysis:
    """Compute one STFT of mono ``y`` and return the lazy :class:`Analysis` built on it.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], mono samples, finite, at least ``n_fft`` long (a decoded
        clip's ``clip.y``: :func:`audio.load_audio` gives float32 in [-1, 1])
    sr : int > 0, sample rate of ``y`` in Hz (``clip.sr``; default 22 050)
    n_fft : int > 0, STFT frame length in samples (default 2048: 93 ms at 22 050 Hz)
    hop_length : int > 0, hop between frames in samples (default 512: 23 ms at 22 050 Hz)

    Returns
    -------
    Analysis : every feature derived from the one STFT on first access, over
        ``t = 1 + n // hop_length`` frames: e.g. ``log_mel`` [shape=(128, t)] in dB, ``chroma``
        [shape=(12, t)], ``spectral_centroid`` [shape=(1, t)] in Hz, ``tempo`` in BPM (see
        :class:`Analysis`).

    Raises
    ------
    TracklensError
        A file name or an AudioClip instead of samples; ``y`` stereo, holding NaN or shorter than
        ``n_fft``; a non-positive ``sr``, ``n_fft`` or ``hop_length``.
    """
    return Analysis(y, sr=sr, n_fft=n_fft, hop_length=hop_length, **kwargs)


# --- summaries ------------------------------------------------------------------------------


def _summarise(frames: dict[str, np.ndarray], *, harmonic: np.ndarray, percussive: np.ndarray,
               mfcc: np.ndarray, tempo: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, values in frames.items():
        out[f"{name}_mean"] = float(np.mean(values))
        out[f"{name}_var"] = float(np.var(values))
    out["harmony_mean"], out["harmony_var"] = float(np.mean(harmonic)), float(np.var(harmonic))
    out["perceptr_mean"], out["perceptr_var"] = float(np.mean(percussive)), float(np.var(percussive))
    out["tempo"] = float(tempo)
    for i, row in enumerate(mfcc, start=1):
        out[f"mfcc{i}_mean"] = float(np.mean(row))
        out[f"mfcc{i}_var"] = float(np.var(row))
    return {name: out[name] for name in SUMMARY_COLUMNS}


def _frame_features(a: Analysis, frames: slice = slice(None)) -> dict[str, np.ndarray]:
    return {
        "chroma_stft": a.chroma[:, frames], "rms": a.rms[:, frames],
        "spectral_centroid": a.spectral_centroid[:, frames],
        "spectral_bandwidth": a.spectral_bandwidth[:, frames], "rolloff": a.rolloff[:, frames],
        "zero_crossing_rate": a.zero_crossing_rate[:, frames],
    }


def summary_features(analysis: Analysis) -> dict[str, float]:
    """The 57 GTZAN-table features of a whole clip: ``{column: value}`` in SUMMARY_COLUMNS order.

    Means and (population) variances over frames; ``harmony``/``perceptr`` are the mean and
    variance of the harmonic/percussive waveforms; ``tempo`` in BPM.
    """
    a = analysis
    return _summarise(_frame_features(a), harmonic=a.harmonic, percussive=a.percussive,
                      mfcc=a.mfcc, tempo=a.tempo)


@dataclass(frozen=True)
class KeyEstimate:
    """A key with how sure: ``key`` 0-11 (0 = C; -1 none), ``mode`` 1 major / 0 minor,
    ``confidence`` 0-1 (the named key's share of the 24: the learned model's probability in
    :func:`learned_key`, the correlations' softmax in :func:`key_estimate`), the runner-up key and
    mode (in :func:`learned_key` the most probable other key, which can be more probable than the
    key named: key_estimation.best_keys)."""

    key: int
    mode: int
    confidence: float
    runner_up_key: int
    runner_up_mode: int

    @property
    def name(self) -> str | None:
        return KEY_NAMES[self.key + 12 * (1 - self.mode)] if self.key >= 0 else None

    @property
    def runner_up_name(self) -> str | None:
        return KEY_NAMES[self.runner_up_key + 12 * (1 - self.runner_up_mode)] if self.runner_up_key >= 0 else None


NO_KEY = KeyEstimate(-1, -1, float("nan"), -1, -1)  # Spotify's "no key detected"
# Chosen on the train fold (108 keyed GTZAN clips; docs/your-track-numbers.md), MIREX weighted:
# on the engine's chroma_stft, Krumhansl 0.543, Temperley 0.585, Albrecht-Shanahan 0.631;
# chroma_cqt, the harmonic part's chroma, log or band-limited chroma were no better. Minor keys'
# correlations raised by KEY_MINOR_BIAS: Albrecht 0.631 -> 0.658 (the card said "minor" 85 times
# where annotators say 134). Albrecht's minor profile weighs the fifth (0.214) as its tonic (0.220):
# alone it read a lone A (a 220 Hz tone) as D minor; 3/4 Albrecht + 1/4 Krumhansl (z-scored)
# keeps the tonic ahead, at 0.642 on train (valid: 0.551 either way).
KEY_PROFILE = "albrecht+krumhansl"
KEY_MINOR_BIAS = 0.03
KEY_SHARPNESS = 8.0  # softmax sharpness behind ``confidence``: the train fold's best log-likelihood (5-20 tried)


def key_estimate(chroma: np.ndarray, *, profiles: str = KEY_PROFILE, minor_bias: float = KEY_MINOR_BIAS,
                 sharpness: float = KEY_SHARPNESS) -> KeyEstimate:
    """Key, mode, confidence and runner-up from chroma by profile correlation.

    chroma : np.ndarray [shape=(12, t)] or [shape=(12,)]
    profiles : a name in KEY_PROFILES
    minor_bias : added to the minor keys' correlations
    sharpness : of the softmax over the 24 correlations whose best share is ``confidence``
    """
    profile = np.asarray(chroma, dtype=np.float64)
    if profile.ndim == 2:
        profile = profile.mean(axis=1)
    if profile.shape != (N_CHROMA,) or not np.any(profile > 0) or np.ptp(profile) == 0:
        return NO_KEY
    z = (profile - profile.mean()) / profile.std()
    r = key_templates(profiles) @ z / N_CHROMA  # Pearson r with the 24 rotated profiles
    r[N_CHROMA:] += minor_bias
    order = np.argsort(-r)
    p = np.exp(sharpness * (r - r[order[0]]))
    best, second = int(order[0]), int(order[1])
    return KeyEstimate(best % N_CHROMA, 1 if best < N_CHROMA else 0, float(p[best] / p.sum()),
                       second % N_CHROMA, 1 if second < N_CHROMA else 0)


def learned_key(evidence: key_estimation.KeyEvidence) -> KeyEstimate:
    """The track's key by :mod:`tracklens.key_estimation`'s model (profile correlation plus
    templates on the chroma, CQT octaves and basic-pitch's pitch-class profiles; its recipe fitted
    on the GTZAN train fold alone: valid-fold MIREX 0.693 vs 0.551 for :func:`key_estimate`,
    docs/key.md); ``confidence`` the model's probability of its key. :data:`NO_KEY` for silence
    (a flat chroma, or no note basic-pitch hears) and for noise and drums (no tonal content:
    key_estimation.NO_TONAL_SPREAD)."""
    f = evidence.features()
    if f is None:
        return NO_KEY
    return KeyEstimate(*key_estimation.best_keys(key_estimation.KEY_MODEL.probabilities(f)))


def estimate_key(chroma: np.ndarray, **kwargs: Any) -> tuple[int, int]:
    """``(key, mode)`` of :func:`key_estimate` (same arguments): pitch class 0-11 (0 = C,
    Spotify's convention; -1 none) and 1 major / 0 minor."""
    k = key_estimate(chroma, **kwargs)
    return k.key, k.mode


# --- scoring tempo and key against annotations (bench/tempo_key.py, tests) -------------------


def parse_key(text: str) -> tuple[int, int] | None:
    """An annotation's key: "G minor" -> (7, 0); "" -> None. Mode 1 major, 0 minor (Spotify's
    convention); sharps as in KEY_NAMES."""
    if not text:
        return None
    tonic, mode = text.split()
    return KEY_NAMES.index(f"{tonic} major"), 1 if mode == "major" else 0


def tempo_scores(estimate: float, reference: float) -> tuple[bool, bool]:
    """(Acc1, Acc2): within 4 % of the reference; also at x2, x3, 1/2, 1/3 of it."""
    ok = lambda factor: abs(estimate * factor - reference) <= 0.04 * reference
    return ok(1.0), any(ok(f) for f in (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0))


mirex_key_score = key_estimation.mirex_key_score  # the key model's decision reads the same weights


def spotify_comparable_features(analysis: Analysis, *, duration_s: float | None = None,
                                meter: loudness.LoudnessMeter | None = None) -> dict[str, float]:
    """Spotify's audio-defined columns in chart units: ``tempo`` (BPM), ``loudness`` (ITU-R
    BS.1770-4 integrated LUFS over the channels that ``meter`` measured; without one, of the
    analysed mono signal), ``key`` (0-11, -1 none), ``mode`` (1 major, 0 minor),
    ``duration_ms`` (int; ``duration_s`` overrides the analysed length, e.g. a truncated file).
    """
    a = analysis
    key = a.key
    seconds = a.duration_s if duration_s is None else duration_s
    meter = meter if meter is not None else mono_meter(a.y, sr=a.sr)
    return {"tempo": a.tempo, "loudness": meter.integrated(), "key": key.key, "mode": key.mode,
            "duration_ms": int(round(seconds * 1000))}


def card_features(analysis: Analysis, measured: loudness.Loudness) -> dict:
    """The track row's CARD_COLUMNS: true peak and loudness range from ``measured``, the
    tempo's alternative, the key's confidence and runner-up from ``analysis``."""
    tempo, key = analysis.tempo_estimate, analysis.key
    return {"bpm": tempo.bpm, "tempo_alt": tempo.alternative, "true_peak_dbtp": measured.true_peak_dbtp,
            "loudness_range_lu": measured.loudness_range_lu, "key_confidence": key.confidence,
            "key_runner_up": key.runner_up_name}


def mono_meter(y: np.ndarray, *, sr: int) -> loudness.LoudnessMeter:
    """A loudness meter fed with mono ``y`` (for input that has no channels to measure)."""
    meter = loudness.LoudnessMeter(sr, 1)
    meter.add(y)
    return meter


def channel_meter(source, *, name: str | None = None,
                  max_duration: float = config.MAX_DURATION_S) -> loudness.LoudnessMeter:
    """A loudness meter fed with every channel of ``source`` (a path or an upload's bytes;
    ``name`` for messages) at its own rate, as BS.1770 measures."""
    sr, channels, blocks = load_channels(source, name=name, max_duration=max_duration)
    return loudness.measure_blocks(blocks, sr, channels)


# --- segments and frames --------------------------------------------------------------------


def segment_bounds(n_samples: int, *, sr: int, segment_seconds: float | None,
                   overlap: float = 0.0) -> list[tuple[int, int]]:
    """Sample ranges ``[(start, end), ...]`` of the full-length windows that fit in the clip.

    Windows of ``segment_seconds`` advance by ``segment_seconds * (1 - overlap)``; a trailing
    partial window is dropped, so every segment has the same length and frame count.
    """
    if not segment_seconds:
        return []
    if not 0 < segment_seconds < math.inf:  # NaN and inf too (inf: an OverflowError traceback)
        raise TracklensError(f"segment_seconds={segment_seconds} must be > 0")
    if not 0.0 <= overlap < 1.0:
        raise TracklensError(f"overlap={overlap} must be in [0, 1)")
    length = int(round(segment_seconds * sr))
    step = max(1, int(round(length * (1.0 - overlap))))
    return [(start, start + length) for start in range(0, n_samples - length + 1, step)]


def segment_n_frames(segment_seconds: float, *, sr: int = config.SAMPLE_RATE,
                     hop_length: int = config.HOP_LENGTH) -> int:
    """Frames per segment (``1 + samples // hop``; 130 for 3 s at 22 050 Hz, hop 512)."""
    return 1 + int(round(segment_seconds * sr)) // hop_length


def sequence_matrix(analysis: Analysis) -> np.ndarray:
    """Per-frame features for sequence models: [shape=(40, t)] rows as in SEQUENCE_ROWS
    (MFCC 20, spectral centroid in kHz, chroma 12, spectral contrast 7 in dB)."""
    a = analysis
    return np.vstack([a.mfcc, a.spectral_centroid / 1000.0, a.chroma, a.spectral_contrast]).astype(np.float32)


@dataclass
class ClipFeatures:
    """Everything computed for one clip, for in-memory use (predict, dashboard).

    track : dict, the whole-track row (``segment`` = -1) with FEATURE_COLUMNS keys
    segments : list of dicts, one row per segment (``segment`` = 0, 1, ...)
    frames : dict of float32 arrays for the segments: ``log_mel`` (n_seg, 128, T),
        ``mfcc`` (n_seg, 20, T), ``sequence`` (n_seg, 40, T); T = segment_n_frames(...)
    analysis : the whole-track :class:`Analysis` (for plots of the full clip)
    """

    track: dict
    segments: list = field(default_factory=list)
    frames: dict = field(default_factory=dict)
    analysis: Analysis | None = None


def featurize_clip(clip: AudioClip, *, segment_seconds: float | None = config.SEGMENT_SECONDS,
                   overlap: float = 0.0, track_id: str | None = None, label: str | None = None,
                   n_fft: int = config.N_FFT, hop_length: int = config.HOP_LENGTH,
                   meter: loudness.LoudnessMeter | None = None) -> ClipFeatures:
    """Analyse ``clip`` once and derive the track row, segment rows and segment frame matrices.

    Segment values come from slices of the whole-track frame features (and of the harmonic /
    percussive waveforms), never from a second analysis. ``meter``: the file's channels
    measured (loudness columns: a ``loudness.MeterTap``'s meter fed by the decode, as
    :func:`featurize_file` does, or :func:`channel_meter`); without one, the mono clip is measured.
    """
    a = analyze(clip.y, sr=clip.sr, n_fft=n_fft, hop_length=hop_length)
    meter = meter if meter is not None else mono_meter(a.y, sr=a.sr)
    track_id = track_id if track_id is not None else (Path(clip.path).stem if clip.path else "clip")
    base = {"track_id": track_id, "path": clip.path, "label": label, "truncated": bool(clip.truncated)}
    track = {**base, "segment": -1, "start_s": 0.0, "end_s": a.duration_s, "length": len(a.y),
             **summary_features(a), **spotify_comparable_features(a, duration_s=clip.source_duration_s, meter=meter),
             **card_features(a, meter.result())}

    bounds = segment_bounds(len(a.y), sr=a.sr, segment_seconds=segment_seconds, overlap=overlap)
    segments, frames = [], {"log_mel": [], "mfcc": [], "sequence": []}
    if bounds:
        n_t = segment_n_frames(segment_seconds, sr=a.sr, hop_length=hop_length)
        seq = sequence_matrix(a)
        for k, (s0, s1) in enumerate(bounds):
            f0 = int(round(s0 / hop_length))
            f0 = min(f0, a.n_frames - n_t)
            cols = slice(f0, f0 + n_t)
            summary = _summarise(_frame_features(a, cols), harmonic=a.harmonic[s0:s1],
                                 percussive=a.percussive[s0:s1], mfcc=a.mfcc[:, cols],
                                 tempo=_tempo(a.tempogram[:, cols], sr=a.sr, hop_length=hop_length))
            key, mode = estimate_key(a.chroma[:, cols])
            segments.append({**base, "segment": k, "start_s": s0 / a.sr, "end_s": s1 / a.sr,
                             "length": s1 - s0, **summary,
                             "loudness": meter.integrated(s0 / a.sr, s1 / a.sr),
                             "key": key, "mode": mode, **_NO_CARD_VALUES,
                             "duration_ms": int(round((s1 - s0) / a.sr * 1000))})
            frames["log_mel"].append(a.log_mel[:, cols])
            frames["mfcc"].append(a.mfcc[:, cols])
            frames["sequence"].append(seq[:, cols])
    n_t = segment_n_frames(segment_seconds, sr=a.sr, hop_length=hop_length) if segment_seconds else 0
    shapes = {"log_mel": a.n_mels, "mfcc": a.n_mfcc, "sequence": len(SEQUENCE_ROWS)}
    frames = {name: (np.stack(mats).astype(np.float32) if mats else np.zeros((0, shapes[name], n_t), np.float32))
              for name, mats in frames.items()}
    return ClipFeatures(track=track, segments=segments, frames=frames, analysis=a)


# --- the engine as a batch task (tracklens.batch runs it: cache, processes, Dask, outputs) ---

FRAME_KINDS: tuple[str, ...] = ("log_mel", "mfcc", "sequence")
_NO_CARD_VALUES = {**dict.fromkeys(CARD_COLUMNS, float("nan")), "key_runner_up": None}
_FEATURE_DTYPES = {**dict.fromkeys(("segment", "length", "key", "mode", "duration_ms"), "int64"), "truncated": "bool",
                   "key_runner_up": "str"}


@dataclass(frozen=True)
class TrackExtras:
    """More whole-track columns that a later stage computes from the same :class:`Analysis`
    (the descriptor estimates of ``models.descriptors``), plugged in without features importing it.

    columns : the names ``compute`` returns, appended to FEATURE_COLUMNS
    compute : ``Analysis -> {column: value}``; module-level, so worker processes can unpickle it
    tag : names ``compute`` and the weights it uses (part of the cache key: new weights, new values)
    """

    columns: tuple[str, ...]
    compute: Callable[[Any], dict[str, float]]
    tag: str


def featurize_file(path: str, params: dict, extras: TrackExtras | None = None) -> batch.FileResult:
    """The engine's per-file function, what local processes and Dask workers run: decode
    ``path`` (``params``: see :func:`features_task`) and analyse it once.

    Returns the track row (with ``extras``' columns) then the segment rows (without
    ``track_id``, ``path``, ``label`` and ``checksum``, which the runner adds) and, with
    segments, their frame matrices. Raises TracklensError for a file that cannot be decoded or
    analysed.
    """
    meter = loudness.MeterTap()  # one decode: the meter reads its channels at the file's rate
    clip = load_audio(path, sr=params["sr"], max_duration=params["max_duration"], taps=[meter])
    cf = featurize_clip(clip, segment_seconds=params["segment_seconds"], overlap=params["overlap"],
                        track_id="", n_fft=params["n_fft"], hop_length=params["hop_length"],
                        meter=meter.meter())
    if extras is not None:
        cf.track.update(extras.compute(cf.analysis))
    rows = [cf.track, *cf.segments]
    for row in rows:
        for key in ("track_id", "path", "label"):
            row.pop(key, None)
    frames = {kind: cf.frames[kind] for kind in FRAME_KINDS} if params["segment_seconds"] else {}
    return batch.FileResult(rows=rows, frames=frames)


WARM_CLIP_SECONDS = 4.0  # one 3 s segment and a whole track: every code path of featurize_clip


def warm_kernels() -> None:
    """Run every numba kernel of the analysis once (feature_kernels' and librosa's it calls), on a
    4 s tone with clicks: the warm-up workload :mod:`tracklens.numba_cache` compiles under its lock."""
    sr = config.SAMPLE_RATE
    t = np.arange(int(WARM_CLIP_SECONDS * sr)) / sr
    # a tone plus clicks: tuning, chroma, HPSS, onsets and tempo all see real content
    y = 0.3 * np.sin(2 * np.pi * 440.0 * t) + (np.arange(len(t)) % (sr // 2) < 64) * 0.5
    clip = AudioClip(y=y.astype(np.float32), sr=sr, path=None, source_sr=sr, channels=1,
                     source_duration_s=WARM_CLIP_SECONDS)
    featurize_clip(clip, segment_seconds=config.SEGMENT_SECONDS)


def warm_numba(*, check: bool = False) -> None:
    """Compile the analysis' numba kernels once in this process, before any pool or thread
    (:func:`numba_cache.warm_numba` with :func:`warm_kernels`; ``check``: see there)."""
    numba_cache.warm_numba(warm_kernels, check=check)


def check_numba_cache() -> bool:
    """Check numba's cache in a child process and rebuild it when damaged (:func:`numba_cache.check_cache`)."""
    return numba_cache.check_cache(warm_kernels)


def _prepare_process(**kwargs: Any) -> None:
    """The features task's ``warm`` hook, run before any pool and in each worker before each
    file: numba's compile cache (:func:`warm_numba`, ``kwargs``), and glibc's allocator told to
    keep freed blocks (:func:`process.keep_freed_memory`: the measured reason is there)."""
    process.keep_freed_memory()
    warm_numba(**kwargs)


def features_task(*, segment_seconds: float | None = config.SEGMENT_SECONDS, overlap: float = 0.0,
                  max_duration: float = config.FEATURE_MAX_DURATION_S, extras: TrackExtras | None = None) -> batch.Task:
    """The feature engine as a :class:`batch.Task`: :func:`featurize_file` with these parameters,
    FEATURE_COLUMNS (then ``extras``' columns, filled on track rows only), and frame matrices
    per segment (``log_mel``, ``mfcc``, ``sequence``).

    Its ``warm`` hook (:func:`_prepare_process`) compiles numba's cache before any pool and in
    each worker before its first file, under numba_cache's host lock (numba #10128), and keeps
    freed arrays in the process; after a worker crash the cache is checked.
    """
    if not 0 < max_duration < math.inf:  # NaN and inf too: they failed every file, one by one
        raise TracklensError(f"max_duration={max_duration} must be > 0 seconds")
    segment_bounds(1, sr=config.SAMPLE_RATE, segment_seconds=segment_seconds, overlap=overlap)  # validates
    params = {"segment_seconds": float(segment_seconds or 0.0), "overlap": float(overlap), "sr": config.SAMPLE_RATE,
              "n_fft": config.N_FFT, "hop_length": config.HOP_LENGTH, "max_duration": float(max_duration)}
    frames = {}
    if params["segment_seconds"]:
        n_t = segment_n_frames(params["segment_seconds"], sr=params["sr"], hop_length=params["hop_length"])
        frames = {"log_mel": (config.N_MELS, n_t), "mfcc": (config.N_MFCC, n_t), "sequence": (len(SEQUENCE_ROWS), n_t)}
    run_file, columns = featurize_file, FEATURE_COLUMNS
    if extras is not None:
        params["extras"] = extras.tag
        run_file, columns = functools.partial(featurize_file, extras=extras), (*FEATURE_COLUMNS, *extras.columns)
    return batch.Task(name="features", run_file=run_file, params=params, version=FEATURE_VERSION,
                      columns=columns, dtypes=_FEATURE_DTYPES, frames=frames,
                      frames_meta={"feature_version": FEATURE_VERSION, "sequence_rows": list(SEQUENCE_ROWS), **params},
                      warm=_prepare_process, after_crash=check_numba_cache)


def extract_features(
    sources: Any,
    *,
    out: str | Path,
    segment_seconds: float | None = config.SEGMENT_SECONDS,
    overlap: float = 0.0,
    jobs: int = 1,
    scheduler: Any = None,
    cache_dir: str | Path | None = None,
    max_duration: float = config.FEATURE_MAX_DURATION_S,
    extras: TrackExtras | None = None,
    progress: bool = True,
) -> batch.RunResult:
    """Features of every audio file in ``sources`` -> ``out`` (parquet) and its side files.

    Parameters
    ----------
    sources, out, jobs, scheduler, cache_dir, progress : as :func:`batch.run` takes them (a
        folder, manifest CSV, audio file or DataFrame; ``out`` a ``.parquet`` path or URL)
    segment_seconds, overlap : fixed windows per track (None or 0: whole tracks only, no frames)
    max_duration : seconds analysed per file; longer files are cut and marked ``truncated``
    extras : more whole-track columns from the same analysis (:class:`TrackExtras`; the CLI adds
        the descriptor estimates ``energy_est``, ``acousticness_est`` this way)

    Returns a :class:`batch.RunResult`. The table has one row per track (``segment`` -1) then
    its segments, columns FEATURE_COLUMNS, in source order; the frames (see
    :func:`batch.load_frames`) and ``<stem>.errors.csv`` are written beside it (a Dask run
    writes a folder of parts: see :mod:`tracklens.batch`). Cached per file: keyed by checksum,
    these parameters and FEATURE_VERSION. Raises TracklensError when a worker process crashes:
    finished files stay cached, numba's compiled-code cache (the usual cause, see
    :mod:`tracklens.numba_cache`) is checked and rebuilt when damaged, and rerunning resumes.
    """
    task = features_task(segment_seconds=segment_seconds, overlap=overlap, max_duration=max_duration, extras=extras)
    return batch.run(task, sources, out=out, jobs=jobs, scheduler=scheduler, cache_dir=cache_dir, progress=progress)


def compare_with_reference(ours: Any, reference: Any, *, columns: Iterable[str] = SUMMARY_COLUMNS):
    """Per-column agreement of whole-track features with a reference table (e.g. the published
    GTZAN ``features_30_sec.csv``), matched on the file stem (``blues.00000``).

    Returns a DataFrame indexed by column: ``n``, ``pearson_r``, ``median_rel_err``
    (median |ours - ref| / |ref|) and ``median_abs_err_std`` (median |ours - ref| / std(ref),
    stable where values cross zero).
    """
    import pandas as pd

    ours = ours[ours["segment"] == -1] if "segment" in ours.columns else ours
    left = ours.set_index(ours["track_id"].astype(str).map(lambda s: Path(s).name))
    key = reference["filename"] if "filename" in reference.columns else reference["track_id"]
    right = reference.set_index(key.astype(str).map(lambda s: Path(s).stem))
    common = left.index.intersection(right.index)
    if len(common) < 3:
        raise TracklensError(f"only {len(common)} clips in common with the reference table; need 3+")
    rows = {}
    for col in columns:
        a = left.loc[common, col].astype(float).to_numpy()
        b = right.loc[common, col].astype(float).to_numpy()
        diff = np.abs(a - b)
        rows[col] = {"n": len(common), "pearson_r": float(np.corrcoef(a, b)[0, 1]),
                     "median_rel_err": float(np.median(diff / np.maximum(np.abs(b), 1e-12))),
                     "median_abs_err_std": float(np.median(diff) / max(np.std(b), 1e-12))}
    return pd.DataFrame.from_dict(rows, orient="index")
