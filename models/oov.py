"""Out-of-vocabulary audio, made from a seed: what the ten GTZAN genres do not describe.

Four kinds, each drawn per clip from a generator seeded by ``(seed, kind, index)``:

- ``techno``: four-on-the-floor kick at 122-136 bpm, off-beat open hats, 16th closed hats, a
  clap on 2 and 4 and a filtered saw bass line, optionally a detuned synth stab;
- ``ambient``: a slow synth-pad drone (detuned saws, low-passed, drifting chords every 6-10 s,
  a long reverb) over a low-passed noise wash, no beat;
- ``speech``: English (or another espeak-ng voice) read by ``espeak-ng`` from seeded word
  sequences (needs the ``espeak-ng`` program: ``.ci/system-deps`` installs it);
- ``noise``: white, pink or brown noise, sometimes band-passed or gated.

The fit rule (:mod:`models.fit`) is tuned on one seed's set and tested on others'.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np

from tracklens.errors import TracklensError

KINDS = ("techno", "ambient", "speech", "noise")
SR = 32_000
WORDS = ("music", "river", "morning", "station", "window", "yellow", "number", "garden", "travel", "simple",
         "market", "listen", "paper", "signal", "winter", "forest", "engine", "coffee", "letter", "people",
         "tomorrow", "question", "minute", "problem", "history", "report", "weather", "city", "road", "table")
VOICES = ("en-us", "en", "en-gb-x-rp", "de", "fr", "es", "it", "nl")


def rng_for(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(kind.encode()), index])


def _envelope(n: int, decay_s: float, sr: int) -> np.ndarray:
    return np.exp(-np.arange(n) / (decay_s * sr)).astype(np.float32)


def _place(out: np.ndarray, sound: np.ndarray, times_s: np.ndarray, sr: int) -> None:
    for t in times_s:
        i = int(t * sr)
        if i < len(out):
            out[i:i + len(sound)] += sound[:len(out) - i]


def _one_pole_lowpass(x: np.ndarray, cutoff_hz: float, sr: int) -> np.ndarray:
    from scipy.signal import lfilter

    a = np.exp(-2 * np.pi * cutoff_hz / sr)
    return lfilter([1 - a], [1, -a], x).astype(np.float32)


def techno(duration_s: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    n = int(duration_s * sr)
    beat = 60.0 / rng.uniform(122, 136)
    beats = np.arange(0, duration_s, beat)
    out = np.zeros(n, np.float32)
    t = np.arange(int(0.35 * sr)) / sr
    kick = np.sin(2 * np.pi * (45 * t + 90 * 0.04 * (1 - np.exp(-t / 0.04)))) * _envelope(len(t), 0.12, sr)
    _place(out, 0.9 * kick.astype(np.float32), beats, sr)
    hat = np.diff(rng.standard_normal(int(0.05 * sr)), prepend=0).astype(np.float32) * _envelope(int(0.05 * sr), 0.012, sr)
    _place(out, 0.25 * hat, np.arange(0, duration_s, beat / 4), sr)
    open_hat = np.diff(rng.standard_normal(int(0.2 * sr)), prepend=0).astype(np.float32) * _envelope(int(0.2 * sr), 0.06, sr)
    _place(out, 0.3 * open_hat, beats + beat / 2, sr)
    clap = rng.standard_normal(int(0.15 * sr)).astype(np.float32) * _envelope(int(0.15 * sr), 0.04, sr)
    _place(out, 0.35 * _one_pole_lowpass(clap, 3000, sr), beats[1::2], sr)
    root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    steps = rng.choice([0, 0, 7, 12, 3, 10], size=16)
    bass = np.zeros(n, np.float32)
    step = beat / 4
    for i, start in enumerate(np.arange(0, duration_s, step)):
        if rng.random() < 0.6 or i % 4 == 2:
            f = root * 2 ** (steps[i % 16] / 12)
            tt = np.arange(int(step * 0.9 * sr)) / sr
            saw = (2 * ((f * tt) % 1) - 1) * _envelope(len(tt), 0.08, sr)
            _place(bass, saw.astype(np.float32), np.array([start]), sr)
    out += 0.35 * _one_pole_lowpass(bass, rng.uniform(300, 900), sr)
    if rng.random() < 0.5:  # a detuned stab every bar
        tt = np.arange(int(0.3 * sr)) / sr
        f = root * 4 * 2 ** (rng.choice([0, 3, 7]) / 12)
        stab = sum(np.sign(np.sin(2 * np.pi * f * d * tt)) for d in (0.995, 1.0, 1.005)) * _envelope(len(tt), 0.1, sr)
        _place(out, 0.08 * stab.astype(np.float32), beats[::4] + beat / 2, sr)
    return out


def ambient(duration_s: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    from scipy.signal import fftconvolve

    n = int(duration_s * sr)
    t = np.arange(n) / sr
    root = 65.0 * 2 ** (rng.integers(0, 12) / 12)
    change_s = rng.uniform(6, 10)  # the pad drifts to another chord every 6-10 s
    out = np.zeros(n, np.float64)
    for k, start in enumerate(np.arange(0, duration_s, change_s)):
        shift = 0 if k == 0 else int(rng.choice([-5, -2, 0, 2, 5, 7]))
        chord = [0, *rng.choice([3, 4, 7, 10, 14], size=2, replace=False)]
        seg = (t >= max(0.0, start - 2)) & (t < start + change_s + 2)
        fade = np.clip(np.minimum(t[seg] - (start - 2), start + change_s + 2 - t[seg]) / 2.0, 0, 1)
        for interval in chord:
            f = root * 2 ** ((interval + shift) / 12)
            for detune in (0.996, 1.0, 1.004):  # detuned saws: a synth pad
                out[seg] += fade * (2 * ((f * detune * t[seg] + rng.random()) % 1) - 1)
    out = _one_pole_lowpass(_one_pole_lowpass(out.astype(np.float32), rng.uniform(500, 1500), sr), 2000, sr)
    tail = int(rng.uniform(1.5, 3.0) * sr)  # a long diffuse reverb
    out = out + fftconvolve(out, rng.standard_normal(tail) * np.exp(-np.arange(tail) / (0.5 * sr)), mode="full")[:n] / 50
    wash = _one_pole_lowpass(rng.standard_normal(n).astype(np.float32), rng.uniform(200, 1200), sr)
    out = out / np.max(np.abs(out)) + rng.uniform(0.02, 0.2) * wash / (np.max(np.abs(wash)) + 1e-9)
    return (out * np.minimum(1.0, np.minimum(t, t[-1] - t) / 2.0)).astype(np.float32)


def noise(duration_s: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    n = int(duration_s * sr)
    white = rng.standard_normal(n)
    colour = rng.choice(["white", "pink", "brown"])
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    if colour == "pink":
        spectrum /= np.sqrt(f)
    elif colour == "brown":
        spectrum /= f
    if rng.random() < 0.3:  # band-passed
        low = rng.uniform(100, 2000)
        spectrum[(f < low) | (f > low * rng.uniform(2, 8))] = 0
    out = np.fft.irfft(spectrum, n)
    if rng.random() < 0.3:  # gated in random bursts
        gate = np.repeat(rng.random(int(duration_s * 4) + 1) < 0.6, sr // 4)[:n]
        out = out * gate
    return out.astype(np.float32)


def speech(duration_s: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Seeded words read by espeak-ng, resampled to ``sr``; TracklensError without espeak-ng."""
    import librosa
    import soundfile as sf

    program = shutil.which("espeak-ng")
    if program is None:
        raise TracklensError("espeak-ng is not installed (run .ci/system-deps); speech cannot be made")
    text = ". ".join(" ".join(rng.choice(WORDS, size=rng.integers(4, 9))) for _ in range(int(duration_s / 2) + 2))
    voice = str(rng.choice(VOICES))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([program, "-v", voice, "-s", str(int(rng.integers(130, 190))), "-p", str(int(rng.integers(30, 70))),
                        "-w", str(wav), text], check=True, capture_output=True, timeout=60)
        y, rate = sf.read(wav, dtype="float32")
    y = librosa.resample(y, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
    return np.resize(y, int(duration_s * sr)) if len(y) < duration_s * sr else y[:int(duration_s * sr)]


MAKERS = {"techno": techno, "ambient": ambient, "speech": speech, "noise": noise}


def make_clip(kind: str, seed: int, index: int, *, duration_s: float = 30.0, sr: int = SR) -> np.ndarray:
    """One clip of ``kind``, peak-normalised to a seeded level in [0.3, 0.9]."""
    if kind not in MAKERS:
        raise TracklensError(f"unknown out-of-vocabulary kind {kind!r}; choose from {', '.join(KINDS)}")
    rng = rng_for(seed, kind, index)
    y = MAKERS[kind](duration_s, rng, sr)
    return (y / (np.max(np.abs(y)) + 1e-9) * rng.uniform(0.3, 0.9)).astype(np.float32)


def write_set(folder: str | Path, *, seed: int, per_kind: int, duration_s: float = 30.0,
              kinds=KINDS) -> list[Path]:
    """Write ``per_kind`` clips of each kind as ``folder/<kind>.<seed>.<i>.wav``; returns the paths."""
    import soundfile as sf

    from tracklens.fileio import atomic_path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in kinds:
        for i in range(per_kind):
            path = folder / f"{kind}.{seed}.{i}.wav"
            if not path.is_file():
                with atomic_path(path, suffix=".wav") as tmp:
                    sf.write(tmp, make_clip(kind, seed, i, duration_s=duration_s), SR, subtype="PCM_16")
            paths.append(path)
    return paths
