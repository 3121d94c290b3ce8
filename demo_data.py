"""The seeded demo catalogue: synthesised genre clips and a Top-Hits-style chart table.

Nothing here is real music. Each "genre" is a recipe (tempo range, drum pattern, swing,
timbre, chord quality, noise) rendered with numpy at 22 050 Hz; every clip draws its own
tempo, key, mix, noise level and gain from a generator seeded by ``(seed, genre, clip)``,
so a catalogue is identical for a seed and independent of how many clips are asked for.
Some recipes deliberately overlap (rock/metal share distortion, blues/country share tempo
and chords), and a quarter of the clips borrow a neighbouring genre's drums or timbre
(:data:`NEIGHBOURS`), so a model has to learn, not memorise one cue.

The chart table has the exact column schema of Kaggle's "Top Hits Spotify from 2000-2019"
(``songs_normalize.csv``), marginals close to the real one, modest real correlations to
``popularity``, and the real table's faults (duplicates, ``set()`` genres, an empty song,
popularity 0). It is not linked to the audio.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tracklens import config, fileio
from tracklens.fileio import atomic_output
from tracklens.errors import TracklensError

# Order matters only for the default subset (`n_genres`): the first six are mutually distinct.
DEMO_GENRES = ("blues", "classical", "disco", "hiphop", "metal", "reggae", "country", "rock")

# 16 steps per 4/4 bar; 1 = hit. Patterns are per genre; clips randomly drop/add a few hits.
_FOUR_FLOOR = "1000100010001000"
_BACKBEAT = "0000100000001000"
_EIGHTHS = "1010101010101010"
_OFFBEATS = "0010001000100010"


@dataclass(frozen=True)
class GenreStyle:
    """Recipe for one synthetic genre; ranges are sampled per clip."""

    tempo: tuple[float, float]  # bpm range
    swing: tuple[float, float]  # delay of off-16ths as a fraction of a 16th
    kick: str | None
    snare: str | None
    hat: str | None
    harmonics: tuple[float, ...]  # amplitudes of partials 1..n of the chord voice
    chord: tuple[int, ...]  # intervals above the root, semitones
    progression: tuple[int, ...]  # chord roots per bar, semitones above the key
    strum: str  # when chord notes are re-struck (16-step pattern)
    chord_decay: float  # seconds; long = pad, short = stab/pluck
    drive: float  # tanh distortion gain (0 = clean)
    fm_index: float  # FM brightness of the bass
    bass_pattern: str
    noise: tuple[float, float]  # background noise level range (relative)
    crackle: float  # vinyl-like click density per second
    vibrato: float  # depth in semitones


STYLES: dict[str, GenreStyle] = {
    "blues": GenreStyle(
        tempo=(72, 100), swing=(0.45, 0.6), kick="1000000010000000", snare=_BACKBEAT,
        hat=_EIGHTHS, harmonics=(1, 0.6, 0.45, 0.3, 0.2, 0.12), chord=(0, 4, 7, 10),
        progression=(0, 5, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7), strum=_EIGHTHS, chord_decay=0.35,
        drive=0.8, fm_index=0.5, bass_pattern="1000100010001000", noise=(0.01, 0.04),
        crackle=0.0, vibrato=0.15),
    "classical": GenreStyle(
        tempo=(60, 96), swing=(0.0, 0.0), kick=None, snare=None, hat=None,
        harmonics=(1, 0.5, 0.33, 0.25, 0.2, 0.16, 0.14, 0.12), chord=(0, 4, 7, 12),
        progression=(0, 5, 7, 0, 9, 5, 7, 0), strum="1000000000000000", chord_decay=3.0,
        drive=0.0, fm_index=0.0, bass_pattern="1000000010000000", noise=(0.002, 0.01),
        crackle=0.0, vibrato=0.25),
    "disco": GenreStyle(
        tempo=(114, 130), swing=(0.0, 0.05), kick=_FOUR_FLOOR, snare=_BACKBEAT,
        hat=_OFFBEATS, harmonics=(1, 0.2, 0.5, 0.1, 0.3), chord=(0, 3, 7, 10),
        progression=(0, 0, 5, 5), strum="0010001000100010", chord_decay=0.15, drive=0.0,
        fm_index=2.0, bass_pattern=_EIGHTHS, noise=(0.005, 0.02), crackle=0.0, vibrato=0.0),
    "hiphop": GenreStyle(
        tempo=(80, 98), swing=(0.2, 0.35), kick="1000001000100000", snare=_BACKBEAT,
        hat="1010101010101011", harmonics=(1, 0.3, 0.1), chord=(0, 3, 7),
        progression=(0, 8, 3, 10), strum="1000000000000000", chord_decay=1.2, drive=0.0,
        fm_index=0.2, bass_pattern="1000001000100000", noise=(0.01, 0.03), crackle=6.0,
        vibrato=0.0),
    "metal": GenreStyle(
        tempo=(140, 190), swing=(0.0, 0.0), kick="1111111111111111", snare=_BACKBEAT,
        hat=_EIGHTHS, harmonics=(1, 0.8, 0.6, 0.5, 0.4, 0.3), chord=(0, 7, 12),
        progression=(0, 0, 3, 5), strum="1111111111111111", chord_decay=0.12, drive=6.0,
        fm_index=1.0, bass_pattern="1111111111111111", noise=(0.03, 0.08), crackle=0.0,
        vibrato=0.0),
    "reggae": GenreStyle(
        tempo=(68, 88), swing=(0.1, 0.25), kick="0000000010000000", snare="0000000010000000",
        hat=_EIGHTHS, harmonics=(1, 0.4, 0.25, 0.1), chord=(0, 4, 7),
        progression=(0, 5, 0, 7), strum="0000100000001000", chord_decay=0.12, drive=0.0,
        fm_index=0.3, bass_pattern="1000000110100000", noise=(0.005, 0.02), crackle=0.0,
        vibrato=0.0),
    "country": GenreStyle(
        tempo=(96, 128), swing=(0.05, 0.2), kick="1000000010000000", snare=_BACKBEAT,
        hat=_EIGHTHS, harmonics=(1, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1), chord=(0, 4, 7),
        progression=(0, 5, 7, 0), strum="1000100010001000", chord_decay=0.5, drive=0.0,
        fm_index=0.3, bass_pattern="1000000010000000", noise=(0.01, 0.03), crackle=0.0,
        vibrato=0.05),
    "rock": GenreStyle(
        tempo=(100, 140), swing=(0.0, 0.05), kick="1000000010100000", snare=_BACKBEAT,
        hat=_EIGHTHS, harmonics=(1, 0.7, 0.5, 0.35, 0.25), chord=(0, 7, 12),
        progression=(0, 5, 7, 5), strum=_EIGHTHS, chord_decay=0.3, drive=2.5, fm_index=0.6,
        bass_pattern=_EIGHTHS, noise=(0.02, 0.05), crackle=0.0, vibrato=0.0),
}


# Genre ambiguity: a clip sometimes borrows its neighbour's drums or its neighbour's sound,
# as real tracks cross genre lines. Pairs chosen so the confusions are musically plausible.
NEIGHBOURS = {
    "blues": "country", "country": "rock", "rock": "metal", "metal": "rock",
    "disco": "hiphop", "hiphop": "reggae", "reggae": "hiphop", "classical": "country",
}
BORROW_PROBABILITY = 0.25


def _clip_style(genre: str, rng) -> GenreStyle:
    """The genre's recipe, with its neighbour's drums and/or timbre swapped in at random."""
    style, other = STYLES[genre], STYLES[NEIGHBOURS[genre]]
    if style.kick and other.kick and rng.random() < BORROW_PROBABILITY:
        style = replace(style, kick=other.kick, snare=other.snare, hat=other.hat, swing=other.swing)
    if rng.random() < BORROW_PROBABILITY:
        style = replace(style, harmonics=other.harmonics, drive=other.drive, fm_index=other.fm_index)
    return style


# --- audio ------------------------------------------------------------------------------------


def _wavetable(harmonics: tuple[float, ...], size: int = 4096) -> np.ndarray:
    """One period of a waveform with the given partial amplitudes, peak-normalised."""
    phase = np.arange(size) / size
    table = sum(a * np.sin(2 * np.pi * (k + 1) * phase) for k, a in enumerate(harmonics))
    return table / np.max(np.abs(table))


def _step_times(n_steps: int, step_s: float, swing: float) -> np.ndarray:
    """Onset times (s) of 16th steps, off-16ths delayed by `swing` of a step."""
    steps = np.arange(n_steps)
    return steps * step_s + (steps % 2) * swing * step_s


def _onsets(pattern: str, n_bars: int, times: np.ndarray, rng, flip: float) -> np.ndarray:
    """Times of the hits of a 16-step `pattern`, with a fraction `flip` of steps toggled."""
    hits = np.tile(np.array([c == "1" for c in pattern]), n_bars)
    toggle = rng.random(hits.size) < flip
    return times[: hits.size][hits ^ toggle]


def _decay_envelope(n: int, sr: int, onsets: np.ndarray, decay_s: float, attack_s: float) -> np.ndarray:
    """Envelope that restarts at each onset: linear attack then exponential decay."""
    idx = np.zeros(n, dtype=bool)
    pos = np.clip((onsets * sr).astype(int), 0, n - 1)
    idx[pos] = True
    marks = np.where(idx, np.arange(n), -1)
    last = np.maximum.accumulate(marks)
    since = (np.arange(n) - last) / sr
    env = np.exp(-since / decay_s) * np.minimum(1.0, since / max(attack_s, 1.0 / sr))
    env[last < 0] = 0.0
    return env


def _place(buffer: np.ndarray, sound: np.ndarray, onsets: np.ndarray, sr: int, gain: float) -> None:
    """Add `sound` into `buffer` at each onset time (s)."""
    for t in onsets:
        start = int(t * sr)
        if start >= buffer.size:
            continue
        end = min(buffer.size, start + sound.size)
        buffer[start:end] += gain * sound[: end - start]


def _drum_kit(sr: int, rng) -> dict[str, np.ndarray]:
    """Kick, snare and hat one-shots with small per-clip variation."""
    t = np.arange(int(0.35 * sr)) / sr
    f0 = rng.uniform(45, 60)
    kick_f = f0 + rng.uniform(80, 120) * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(kick_f) / sr) * np.exp(-t / rng.uniform(0.12, 0.25))
    noise = rng.standard_normal(t.size)
    snare = (0.6 * noise + 0.5 * np.sin(2 * np.pi * rng.uniform(170, 210) * t)) * np.exp(-t / rng.uniform(0.06, 0.12))
    hat = np.diff(noise, prepend=0.0) * np.exp(-t / rng.uniform(0.015, 0.04))
    return {"kick": kick, "snare": snare, "hat": 0.35 * hat}


def _voice(freq: np.ndarray, table: np.ndarray, sr: int) -> np.ndarray:
    """Wavetable oscillator following a per-sample frequency track (Hz)."""
    # table.size is a power of two, so a bit mask wraps the phase (cheaper than a modulo)
    index = (np.cumsum(freq) * (table.size / sr)).astype(np.int64) & (table.size - 1)
    return table[index]


def synthesize_clip(genre: str, *, duration_s: float, sr: int = config.SAMPLE_RATE, rng) -> np.ndarray:
    """Render one clip of a demo genre.

    Parameters
    ----------
    genre : str
        A key of :data:`STYLES`.
    duration_s : float > 0
        Clip length in seconds.
    sr : int > 0
        Sample rate in Hz.
    rng : np.random.Generator
        Source of all per-clip variation (tempo, key, mix, noise, gain).

    Returns
    -------
    y : np.ndarray [shape=(round(duration_s * sr),), dtype=float32]
        Mono signal with peak in [0.3, 0.9].
    """
    style = _clip_style(genre, rng)
    n = int(round(duration_s * sr))
    t = np.arange(n) / sr
    bpm = rng.uniform(*style.tempo)
    step_s = 60.0 / bpm / 4
    swing = rng.uniform(*style.swing)
    n_bars = int(np.ceil(duration_s / (16 * step_s))) + 1
    times = _step_times(16 * n_bars, step_s, swing)
    flip = rng.uniform(0.0, 0.05)  # per-clip pattern variation

    key = int(rng.integers(0, 12))
    root_midi = 45 + key  # A2 .. G#3
    bar_of_sample = np.minimum((t / (16 * step_s)).astype(int), n_bars - 1)
    offset = rng.integers(0, len(style.progression))  # start anywhere in the progression
    bar_roots = np.array(style.progression)[(np.arange(n_bars) + offset) % len(style.progression)]

    # Harmony: one wavetable voice per chord note, re-struck on the strum pattern.
    # Per-clip timbre: each partial within about ±4 dB of the recipe (another player, instrument).
    table = _wavetable(tuple(a * 10 ** (rng.uniform(-4, 4) / 20) for a in style.harmonics))
    vib_hz = rng.uniform(4.5, 6.5)
    vib = 2 ** (style.vibrato * np.sin(2 * np.pi * vib_hz * t) / 12) if style.vibrato else 1.0
    chord = np.zeros(n)
    for interval in style.chord:
        bar_hz = 440.0 * 2 ** ((root_midi + 12 + bar_roots + interval - 69) / 12)
        chord += _voice(bar_hz[bar_of_sample] * vib, table, sr)
    strum = _onsets(style.strum, n_bars, times, rng, flip)
    attack = 0.25 if style.chord_decay > 1.0 else 0.004
    chord *= _decay_envelope(n, sr, strum, style.chord_decay, attack)
    if style.drive > 0:
        chord = np.tanh(style.drive * chord) / np.tanh(style.drive)

    # Bass: FM sine on the chord root.
    bass_phase = np.cumsum((440.0 * 2 ** ((root_midi + bar_roots - 69) / 12))[bar_of_sample]) / sr
    bass = np.sin(2 * np.pi * bass_phase + style.fm_index * np.sin(4 * np.pi * bass_phase))
    bass_decay = 0.9 if genre == "hiphop" else 0.25
    bass *= _decay_envelope(n, sr, _onsets(style.bass_pattern, n_bars, times, rng, flip), bass_decay, 0.005)

    drums = np.zeros(n)
    if style.kick:
        kit = _drum_kit(sr, rng)
        for part, gain in (("kick", 1.0), ("snare", 0.7), ("hat", 0.5)):
            pattern = getattr(style, part)
            _place(drums, kit[part], _onsets(pattern, n_bars, times, rng, flip), sr, gain)

    noise = rng.standard_normal(n) * rng.uniform(*style.noise)
    if style.crackle:
        clicks = rng.integers(0, n, size=int(style.crackle * duration_s))
        noise[clicks] += rng.uniform(-0.5, 0.5, clicks.size)

    # Per-clip mix: each component within about ±6 dB of its nominal level.
    level = lambda: 10 ** (rng.uniform(-6, 6) / 20)  # noqa: E731
    y = 0.5 * level() * chord + 0.6 * level() * bass + 0.8 * level() * drums
    y = y / (np.max(np.abs(y)) + 1e-9) + noise * level()
    # Recording chain: a random one-pole low-pass (dull to bright) so spectral balance alone
    # does not give the genre away.
    from scipy.signal import lfilter

    pole = np.exp(-2 * np.pi * rng.uniform(1500, 9000) / sr)
    y = lfilter([1 - pole], [1, -pole], y)
    y *= rng.uniform(0.3, 0.9) / (np.max(np.abs(y)) + 1e-9)
    return y.astype(np.float32)


def _clip_rng(seed: int, genre: str, index: int) -> np.random.Generator:
    """A generator for one clip that depends only on (seed, genre, clip index)."""
    genre_id = int.from_bytes(genre.encode(), "little") % (2**32)
    return np.random.default_rng([seed, genre_id, index])


# --- chart table ------------------------------------------------------------------------------

# Genre strings and weights taken from the real table's most common values (counts per 2000).
_CHART_GENRES = {
    "pop": 428, "hip hop, pop": 277, "hip hop, pop, R&B": 244, "pop, Dance/Electronic": 221,
    "pop, R&B": 178, "hip hop": 124, "hip hop, pop, Dance/Electronic": 78, "rock": 58,
    "rock, pop": 43, "Dance/Electronic": 41, "rock, metal": 38, "pop, latin": 28, "pop, rock": 26,
    "hip hop, Dance/Electronic": 16, "latin": 15, "pop, rock, metal": 14, "hip hop, pop, latin": 14,
    "R&B": 13, "country": 10, "metal": 9, "pop, country": 8, "pop, Folk/Acoustic": 8,
}
# Songs per year in the real table (1998..2020).
_YEAR_WEIGHTS = {
    1998: 1, 1999: 38, 2000: 74, 2001: 108, 2002: 90, 2003: 97, 2004: 96, 2005: 104, 2006: 95,
    2007: 94, 2008: 97, 2009: 84, 2010: 107, 2011: 99, 2012: 115, 2013: 89, 2014: 104, 2015: 99,
    2016: 99, 2017: 111, 2018: 107, 2019: 89, 2020: 3,
}
_NAME_PARTS = (
    ("Lil", "DJ", "Big", "Young", "MC", "The", "Miss", "King", "Lady", "Saint", ""),
    ("Nova", "Rio", "Kash", "Zoë", "Björn", "Ayo", "Mara", "Jules", "Dex", "Sola", "Rocío",
     "Théo", "Kenzo", "Luna", "Ezra", "Malik", "Ivy", "Noor", "Søren", "Kai"),
    ("", "", "", " & The Static", " Brothers", "", " X", "", "", ""),
)
_TITLE_WORDS = (
    "Love", "Night", "Fire", "Heart", "Dance", "Money", "Summer", "Crazy", "Tonight", "Gold",
    "Falling", "Young", "Wild", "Home", "Forever", "Lights", "Stay", "Run", "Dream", "Alone",
    "Electric", "Paradise", "Baby", "Shine", "Down", "Girl", "Boy", "Closer", "Sweet", "Rain",
)


def _artist_names(n: int, rng) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        pre, core, post = (p[rng.integers(len(p))] for p in _NAME_PARTS)
        name = f"{pre} {core}{post}".strip()
        if name not in seen:  # retry on a clash; 11 x 20 x 10 combinations is plenty
            seen.add(name)
            names.append(name)
    return names


def _song_title(rng, artists: list[str]) -> str:
    words = rng.choice(_TITLE_WORDS, size=int(rng.integers(1, 4)), replace=False)
    title = " ".join(words)
    r = rng.random()
    if r < 0.12:
        title += f" (feat. {artists[rng.integers(len(artists))]})"
    elif r < 0.16:
        title += f" (with {artists[rng.integers(len(artists))]})"
    elif r < 0.18:
        title += " - Radio Edit"
    return title


def make_chart_table(n_rows: int = 1000, *, seed: int = config.DEFAULT_SEED):
    """A synthetic chart table in the exact Top Hits schema.

    Parameters
    ----------
    n_rows : int >= 50
        Rows before the injected faults (duplicates add about 3 %).
    seed : int
        Random seed; the same seed gives the same table.

    Returns
    -------
    pandas.DataFrame [shape=(about 1.03 * n_rows, 18)]
        Columns :data:`config.CHART_COLUMNS`. ``popularity`` rises modestly with danceability,
        loudness, a per-artist "star power" and recent years; 6 % of rows have popularity 0
        (re-release artefacts, as in the real table).
    """
    import pandas as pd

    if n_rows < 50:
        raise TracklensError(f"n_rows={n_rows} is too small for a chart table (need >= 50)")
    rng = np.random.default_rng([seed, 7])
    n_artists = max(10, int(n_rows / 2.4))
    artists = _artist_names(n_artists, rng)
    genre_names = list(_CHART_GENRES)
    gw = np.array(list(_CHART_GENRES.values()), float)
    artist_genre = rng.choice(len(genre_names), size=n_artists, p=gw / gw.sum())
    star = rng.normal(0, 1, n_artists)
    # A few prolific artists, many one-hit ones (as in the real table).
    aw = 1.0 / np.arange(1, n_artists + 1) ** 0.6
    a_idx = rng.choice(n_artists, size=n_rows, p=aw / aw.sum())
    genre = np.array([genre_names[artist_genre[a]] for a in a_idx], dtype=object)
    is_hiphop = np.array(["hip hop" in g for g in genre])
    is_rock = np.array([("rock" in g) or ("metal" in g) for g in genre])
    is_dance = np.array(["Dance" in g for g in genre])

    years = np.array(list(_YEAR_WEIGHTS))
    yw = np.array(list(_YEAR_WEIGHTS.values()), float)
    year = rng.choice(years, size=n_rows, p=yw / yw.sum())

    def beta(mean, conc, size):
        return rng.beta(mean * conc, (1 - mean) * conc, size)

    danceability = np.clip(beta(0.66, 10, n_rows) + 0.06 * is_hiphop + 0.04 * is_dance - 0.08 * is_rock, 0.13, 0.975)
    energy = np.clip(beta(0.72, 8, n_rows) + 0.08 * is_rock + 0.04 * is_dance, 0.055, 0.999)
    loudness = np.clip(-5.5 + 5.0 * (energy - 0.72) + rng.normal(0, 1.6, n_rows) + 0.05 * (year - 2009), -20.5, -0.3)
    speechiness = np.clip(rng.lognormal(np.log(0.06), 0.6, n_rows) + 0.08 * is_hiphop, 0.023, 0.576)
    acousticness = np.clip(beta(0.13, 2.5, n_rows) * (1.4 - energy), 1.9e-5, 0.976)
    instrumentalness = np.where(rng.random(n_rows) < 0.55, 0.0, rng.lognormal(np.log(2e-5), 2.5, n_rows))
    # ...and a few near-instrumental tracks, as in the real table (mean 0.015).
    instrumentalness = np.where(rng.random(n_rows) < 0.015, rng.uniform(0.05, 0.985, n_rows), instrumentalness)
    instrumentalness = np.clip(instrumentalness, 0.0, 0.985)
    liveness = np.clip(rng.lognormal(np.log(0.14), 0.65, n_rows), 0.0215, 0.853)
    mode = (rng.random(n_rows) < 0.55).astype(int)
    valence = np.clip(beta(0.55, 4, n_rows) + 0.25 * (danceability - 0.66) + 0.04 * mode, 0.038, 0.973)
    tempo = np.clip(rng.normal(120, 27, n_rows), 60.0, 210.0)
    key = rng.integers(0, 12, n_rows)
    explicit = rng.random(n_rows) < np.where(is_hiphop, 0.6, 0.12)
    duration_ms = np.clip(rng.normal(236_000 - 1_200 * (year - 2000), 37_000, n_rows), 113_000, 484_000).astype(int)

    # Popularity: modest, real dependence on a few features plus artist star power.
    z = (
        0.30 * (danceability - 0.66) / 0.14
        + 0.20 * (loudness + 5.5) / 1.9
        + 0.12 * (year - 2009.5) / 5.9
        + 0.50 * star[a_idx]
        + rng.normal(0, 0.8, n_rows)
    )
    # A long left tail (songs that faded) as in the real table: non-zero median 67, sd 15.
    fade = np.where(rng.random(n_rows) < 0.25, rng.exponential(18, n_rows), 0.0)
    popularity = np.clip(np.round(69 + 9 * z - fade), 1, 89).astype(int)
    popularity[rng.random(n_rows) < 0.06] = 0

    df = pd.DataFrame({
        "artist": [artists[a] for a in a_idx],
        "song": [_song_title(rng, artists) for _ in range(n_rows)],
        "duration_ms": duration_ms,
        "explicit": explicit,
        "year": year,
        "popularity": popularity,
        "danceability": danceability.round(3),
        "energy": energy.round(3),
        "key": key,
        "loudness": loudness.round(3),
        "mode": mode,
        "speechiness": speechiness.round(4),
        "acousticness": acousticness.round(5),
        "instrumentalness": instrumentalness.round(6),
        "liveness": liveness.round(4),
        "valence": valence.round(3),
        "tempo": tempo.round(3),
        "genre": genre,
    })

    # Faults the real table has: exact duplicate rows, re-released duplicates (same artist and
    # song, another year and popularity), `set()` genres, and one empty song title.
    exact = df.sample(frac=0.015, random_state=int(rng.integers(2**31)))
    rerelease = df.sample(frac=0.02, random_state=int(rng.integers(2**31))).copy()
    rerelease["year"] = np.minimum(rerelease["year"] + rng.integers(1, 4, len(rerelease)), 2020)
    rerelease["popularity"] = np.where(rng.random(len(rerelease)) < 0.5, 0, rerelease["popularity"] - 5).clip(0)
    df = pd.concat([df, exact, rerelease], ignore_index=True)
    df = df.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    no_genre = rng.choice(len(df), size=max(1, len(df) // 90), replace=False)
    df.loc[no_genre, "genre"] = "set()"
    df.loc[int(rng.integers(len(df))), "song"] = ""
    return df[list(config.CHART_COLUMNS)]


# --- the catalogue ----------------------------------------------------------------------------


def _remove_stale_clips(audio_dir: Path, wanted: set[tuple[str, int]]) -> None:
    """Delete demo clips a previous, larger run left behind, so a folder matches its arguments.

    Only files named like our own output (``<demo genre>/<genre>.NNNNN.wav``) are touched.
    """
    for genre in DEMO_GENRES:
        folder = audio_dir / genre
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{genre}.[0-9][0-9][0-9][0-9][0-9].wav"):
            if (genre, int(path.name.split(".")[1])) not in wanted:
                path.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


@dataclass
class DemoCatalogue:
    """What :func:`make_demo_catalogue` wrote."""

    root: Path
    audio_dir: Path
    charts_csv: Path
    genres: tuple[str, ...]
    clips_per_genre: int
    clip_seconds: float
    n_chart_rows: int

    def summary(self) -> str:
        n = len(self.genres) * self.clips_per_genre
        return (
            f"{n} clips ({len(self.genres)} genres x {self.clips_per_genre}, {self.clip_seconds:g} s, "
            f"{config.SAMPLE_RATE} Hz) in {self.audio_dir}; {self.n_chart_rows} chart rows in {self.charts_csv}"
        )


def make_demo_catalogue(
    out_dir,
    *,
    seed: int = config.DEFAULT_SEED,
    genres=DEMO_GENRES,
    clips_per_genre: int = 20,
    clip_seconds: float = 10.0,
    chart_rows: int = 1000,
    progress: bool = False,
) -> DemoCatalogue:
    """Write a synthetic, labelled demo catalogue to `out_dir`.

    Writes ``out_dir/audio/<genre>/<genre>.NNNNN.wav`` (22 050 Hz, mono, 16-bit PCM) and
    ``out_dir/charts.csv`` (Top Hits schema). Every file is written atomically; re-running
    with the same arguments rewrites identical files, and demo clips a larger earlier run
    left behind are removed (other files in the folder are left alone).

    Parameters
    ----------
    out_dir : str or Path
        Destination folder (created).
    seed : int
        Random seed; a seed fixes every clip and every chart row.
    genres : sequence of str or int
        Genre names from :data:`DEMO_GENRES`, or an int n for the first n of them.
    clips_per_genre : int >= 1
    clip_seconds : float, 1..60
    chart_rows : int >= 50
    progress : bool
        Show a tqdm progress bar over clips.

    Returns
    -------
    DemoCatalogue
    """
    import soundfile as sf

    if isinstance(genres, int):
        if not 2 <= genres <= len(DEMO_GENRES):
            raise TracklensError(f"genres={genres} must be between 2 and {len(DEMO_GENRES)}")
        genres = DEMO_GENRES[:genres]
    genres = tuple(genres)
    unknown = [g for g in genres if g not in STYLES]
    if unknown:
        raise TracklensError(f"unknown demo genre(s) {unknown}; choose from {', '.join(DEMO_GENRES)}")
    if clips_per_genre < 1:
        raise TracklensError(f"clips_per_genre={clips_per_genre} must be >= 1")
    if not 1.0 <= clip_seconds <= 60.0:
        raise TracklensError(f"clip_seconds={clip_seconds} must be between 1 and 60")

    root = Path(out_dir)
    audio_dir = root / "audio"
    try:
        audio_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TracklensError(f"{root}: cannot create the output folder ({exc.strerror})") from exc

    jobs = [(g, i) for g in genres for i in range(clips_per_genre)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="demo clips", unit="clip")
    for genre, i in jobs:
        y = synthesize_clip(genre, duration_s=clip_seconds, rng=_clip_rng(seed, genre, i))
        path = audio_dir / genre / f"{genre}.{i:05d}.wav"
        with atomic_output(path, "wb") as handle:
            sf.write(handle, y, config.SAMPLE_RATE, subtype="PCM_16", format="WAV")

    _remove_stale_clips(audio_dir, {(g, i) for g in genres for i in range(clips_per_genre)})
    charts = make_chart_table(chart_rows, seed=seed)
    charts_csv = fileio.write_csv(charts, root / "charts.csv")
    return DemoCatalogue(root, audio_dir, charts_csv, genres, clips_per_genre, clip_seconds, len(charts))


# --- where notebooks read from ------------------------------------------------------------

#: The small demo catalogue notebooks build when neither real nor demo data is there.
NOTEBOOK_DEMO_SIZE = {"genres": 6, "clips_per_genre": 4, "clip_seconds": 8.0, "chart_rows": 400}


def example_sources(*, demo_dir: str | Path | None = None) -> dict:
    """Where the notebooks read from: real data when present, else the demo catalogue.

    Real: the Top Hits CSV and the GTZAN clips under ``config.SHARED_DATA_DIR``. Demo:
    ``demo_dir`` (default ``config.DATA_DIR / "demo"``, what ``make demo`` writes), built small
    (:data:`NOTEBOOK_DEMO_SIZE`) if it does not exist yet. Returns ``{"kind", "charts",
    "audio", "note"}``; the paths are the files and folders to read.
    """
    charts = config.SHARED_DATA_DIR / "spotify" / "songs_normalize.csv"
    audio_dir = config.SHARED_DATA_DIR / "gtzan" / "audio"
    if charts.is_file() and audio_dir.is_dir():
        return {"kind": "real", "charts": charts, "audio": audio_dir,
                "note": "real data: Top Hits Spotify 2000-2019 and GTZAN clips (shared data folder)"}
    demo = Path(demo_dir) if demo_dir is not None else config.DATA_DIR / "demo"
    if not (demo / "charts.csv").is_file() or not (demo / "audio").is_dir():
        make_demo_catalogue(demo, seed=config.DEFAULT_SEED, **NOTEBOOK_DEMO_SIZE)
    return {"kind": "demo", "charts": demo / "charts.csv", "audio": demo / "audio",
            "note": "demo data: synthetic chart table and synthesised audio (the real data was not found)"}
