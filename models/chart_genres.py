"""Chart-genre tags: AudioSet's music-genre classes mapped onto the chart table's genre words.

The ten GTZAN genres leave out most of what charts play (R&B, Dance/Electronic, latin, ...).
EfficientAT's AudioSet taggers name many more genres; :data:`AUDIOSET_TO_CHART` maps each of
those classes onto the vocabulary of the chart table's ``genre`` column
(``spotify/songs_normalize.csv``, read with :func:`prepare.split_genres`; :func:`chart_vocabulary`),
so a track outside the ten still learns which chart genres it sounds like.

A chart genre's score is the highest AudioSet likelihood (sigmoid of the logit, mean over the
track's windows) among its classes. These are **uncalibrated tag likelihoods**, not a
distribution and not the blend's probabilities: several can be high at once, and their scale
is AudioSet's (where a clear genre often scores only 0.2-0.5).

AudioSet classes left out on purpose: ``Reggae`` and ``Ska`` (the chart table files dancehall
artists such as Sean Paul and Shaggy under "hip hop, pop"; no chart word fits), ``Music for
children``, ``Christmas music``, mood and function classes (``Happy music``, ``Theme music``...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from tracklens.errors import TracklensError

#: The chart table's genre words, most frequent first (checked against the table by the tests).
CHART_GENRES = ("pop", "hip hop", "R&B", "Dance/Electronic", "rock", "metal", "latin", "country",
                "Folk/Acoustic", "World/Traditional", "easy listening", "blues", "jazz", "classical")
LABEL = "chart-genre tags (AudioSet likelihoods, uncalibrated)"
SHOWN_FROM = 0.05  # summaries name chart genres from this likelihood up (speech scores ~0.00 everywhere)

AUDIOSET_TO_CHART: dict[str, str] = {
    "Pop music": "pop",
    "Hip hop music": "hip hop",
    "Rhythm and blues": "R&B", "Soul music": "R&B", "Funk": "R&B", "Gospel music": "R&B",
    "Electronic music": "Dance/Electronic", "House music": "Dance/Electronic", "Techno": "Dance/Electronic",
    "Dubstep": "Dance/Electronic", "Drum and bass": "Dance/Electronic", "Electronica": "Dance/Electronic",
    "Electronic dance music": "Dance/Electronic", "Trance music": "Dance/Electronic",
    "Ambient music": "Dance/Electronic", "Disco": "Dance/Electronic", "Dance music": "Dance/Electronic",
    "Rock music": "rock", "Punk rock": "rock", "Grunge": "rock", "Progressive rock": "rock",
    "Rock and roll": "rock", "Psychedelic rock": "rock", "Independent music": "rock",
    "Heavy metal": "metal",
    "Music of Latin America": "latin", "Salsa music": "latin", "Flamenco": "latin",
    "Country": "country", "Bluegrass": "country",
    "Folk music": "Folk/Acoustic",
    "Traditional music": "World/Traditional", "Music of Africa": "World/Traditional", "Afrobeat": "World/Traditional",
    "Music of Asia": "World/Traditional", "Carnatic music": "World/Traditional",
    "Music of Bollywood": "World/Traditional", "Middle Eastern music": "World/Traditional",
    "New-age music": "easy listening", "Swing music": "easy listening", "Background music": "easy listening",
    "Blues": "blues",
    "Jazz": "jazz",
    "Classical music": "classical", "Opera": "classical",
}


def chart_vocabulary(chart_csv: str | Path) -> list[str]:
    """The distinct genre words of a chart table's ``genre`` column, most frequent first."""
    import collections

    import pandas as pd

    from tracklens.prepare import split_genres

    try:
        genres = pd.read_csv(chart_csv, usecols=["genre"])["genre"]
    except (OSError, ValueError) as exc:
        raise TracklensError(f"{chart_csv}: cannot read its genre column ({exc})") from exc
    counts = collections.Counter(g for value in genres for g in split_genres(value))
    return [g for g, _ in counts.most_common()]


def class_indices(class_names: Sequence[str]) -> dict[str, list[int]]:
    """Chart genre -> the indices of its AudioSet classes in ``class_names`` (the model's order)."""
    position = {name: i for i, name in enumerate(class_names)}
    missing = [name for name in AUDIOSET_TO_CHART if name not in position]
    if missing:
        raise TracklensError(f"AudioSet classes {missing[:3]} are not among the tagger's classes")
    out: dict[str, list[int]] = {g: [] for g in CHART_GENRES}
    for name, genre in AUDIOSET_TO_CHART.items():
        out[genre].append(position[name])
    return out


def chart_genre_scores(likelihoods: np.ndarray, class_names: Sequence[str]) -> list[tuple[str, float]]:
    """``[(chart genre, score), ...]``, highest first, from one track's AudioSet likelihoods (527,)."""
    likelihoods = np.asarray(likelihoods, dtype=np.float64)
    scores = [(genre, float(likelihoods[idx].max())) for genre, idx in class_indices(class_names).items()]
    return sorted(scores, key=lambda gs: -gs[1])
