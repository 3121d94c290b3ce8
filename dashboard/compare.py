"""How an upload is compared with chart hits and catalogues: like with like, each feature in its own way.

The chart table's columns are Spotify's measures. For an upload:

- **tempo** (BPM, the engine's tempogram of spectral-flux and pitched onsets, with its x2 / x1/2
  alternative when the evidence is close; Spotify's is another tracker of the same quantity):
  ranked among the hits;
- **key and mode**: categories, never ranked; the card gives the confidence, the other candidate
  (the engine's ``key_runner_up``) and the share of hits in the same key;
- **loudness**: the upload's integrated loudness (LUFS, ITU-R BS.1770-4 over the channels) is
  *not* Spotify's ``loudness`` (its own dB measure: median -5.3 dB over the Top Hits, where a
  normally mastered -8 LUFS track would rank at P7), so it is never ranked: both are shown side
  by side. True peak, loudness range and the streaming services' normalisation have no
  counterpart among the hits: shown, never ranked;
- **duration**: ranked only for a whole track (at least as long as the shortest hit); an
  excerpt's length says nothing about the song's;
- **acousticness, energy**: estimated from audio (:mod:`models.descriptors`) with their held-out
  error; ranked as a percentile range (the percentiles of estimate - error and estimate + error);
- danceability, instrumentalness, liveness, speechiness, valence: not available (the estimator
  says why).

Percentiles are taken among the hits of the track's chart genres (:func:`genre_peers`), and
:func:`positions` puts each value in words against the middle half of a group (hits, or a
catalogue's tracks measured by the same engine). The Top Hits table has no audio, so it gets no
nearest tracks; with the demo catalogue's audio features (an ``audio`` :class:`Reference`) the
nearest tracks and the 2-D map use a distance that respects each feature: the continuous
features in standard deviations, key on the circle of fifths (a minor key beside its relative
major), mode as a category, duration only for whole tracks. :func:`genre_reliability` says how
often the shipped model is right per genre; :func:`ab_rows` / :func:`sound_likeness` put two
checked tracks side by side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.dashboard import data
from tracklens.librosa_visuals import PITCH_CLASSES

N_NEAREST = 5
#: The Spotify-style descriptors an upload can get, estimated from audio (models.descriptors).
ESTIMATED = ("acousticness", "energy")
# Distance weights: one standard deviation of a continuous feature counts 1; a key across the
# circle of fifths counts 2 (neighbouring keys 0.52: the chord between them on a unit circle); a
# different mode counts 1.
MODE_WEIGHT = 1.0
KEY_AXES = ("key C↔F#", "key A↔D#")  # the circle of fifths' cos/sin axes, named by their poles


def minutes(seconds: float) -> str:
    """``m:ss`` (e.g. 223.3 -> "3:43")."""
    total = int(round(float(seconds)))
    return f"{total // 60}:{total % 60:02d}"


def key_name(key, mode) -> str:
    """Spotify's key (0-11, -1 none) and mode (1 major, 0 minor) as words, e.g. "A minor"."""
    key = int(round(float(key)))
    if not 0 <= key < 12:
        return "no key detected"
    return f"{PITCH_CLASSES[key]} {'major' if int(round(float(mode))) == 1 else 'minor'}"


def fifths_angle(key, mode) -> float:
    """Angle (radians) of a key on the circle of fifths; a minor key sits on its relative major
    (A minor with C major), so keys sharing their notes are neighbours. NaN for no key."""
    key, mode = int(round(float(key))), int(round(float(mode)))
    if not 0 <= key < 12:
        return float("nan")
    major = key if mode == 1 else (key + 3) % 12
    return 2 * np.pi * (major * 7 % 12) / 12


def is_whole_track(duration_s: float, charts: pd.DataFrame) -> bool:
    """An upload at least as long as the shortest chart hit counts as a whole song (a 30 s
    excerpt does not: its length says nothing about the song's)."""
    durations = pd.to_numeric(charts.get("duration_ms", pd.Series(dtype=float)), errors="coerce").dropna()
    return bool(len(durations)) and duration_s * 1000 >= durations.min()


# --- the "your track" card ----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the "your track" card.

    feature : chart column (``key`` stands for key and mode)
    value : the upload's value in words and units
    percentile : (low, high) among the hits, equal for a point value; None when not ranked
    note : how the value was measured, or why it is not ranked
    """

    feature: str
    label: str
    value: str
    percentile: tuple[float, float] | None
    note: str
    items: tuple[str, ...] = ()  # a value that is several sentences, one per item (``value`` joins them)


@dataclass
class Upload:
    """What the comparison needs of one analysed upload."""

    comparable: dict  # features.spotify_comparable_features: tempo, loudness, key, mode, duration_ms
    duration_s: float
    estimates: dict = field(default_factory=dict)  # descriptor -> (value, held-out error)
    unavailable: dict = field(default_factory=dict)  # descriptor -> why it has no estimate

    def ranked(self, charts: pd.DataFrame) -> tuple[dict, dict]:
        """``(values, errors)``: the features ranked among ``charts`` (see the module docstring)."""
        values = {"tempo": self.comparable["tempo"]}
        if is_whole_track(self.duration_s, charts):
            values["duration_ms"] = self.comparable["duration_ms"]
        values.update({name: value for name, (value, _) in self.estimates.items()})
        errors = {name: error for name, (_, error) in self.estimates.items()}
        return {k: v for k, v in values.items() if k in charts.columns}, errors


DURATION_METHOD = "the decoded audio's length"


def your_track(upload: Upload, charts: pd.DataFrame) -> list[Row]:
    """The card's rows: tempo, key, loudness, duration, then every Spotify descriptor."""
    from tracklens import track_figures
    from tracklens.models import descriptors

    values, errors = upload.ranked(charts)
    profile = track_figures.hit_profile_data(values, charts, features=list(values), errors=errors) if values else None

    def percentile(feature):
        if profile is None or feature not in profile.index:
            return None
        return float(profile.loc[feature, "percentile_low"]), float(profile.loc[feature, "percentile_high"])

    c, n = upload.comparable, len(charts)
    rows = [Row("tempo", "tempo", tempo_text(c), percentile("tempo"),
                f"{TEMPO_METHOD}. {TEMPO_ACCURACY}. The hits' tempo is Spotify's estimate of the same quantity"),
            Row("key", "key", key_text(c), None, f"{KEY_METHOD}. {KEY_ACCURACY}. {_key_note(c, charts)}"),
            Row("loudness", "loudness", f"{c['loudness']:.1f} LUFS", None, _loudness_note(charts)),
            *_loudness_detail_rows(c),
            Row("duration_ms", "duration", minutes(upload.duration_s), percentile("duration_ms"),
                f"{DURATION_METHOD}; ranked among {n} hits (their duration as Spotify lists it)"
                if percentile("duration_ms") else f"{DURATION_METHOD}; {_excerpt_note(upload, charts)}")]
    for name in descriptors.DESCRIPTORS:
        if name in upload.estimates:
            value, error = upload.estimates[name]
            rows.append(Row(name, name, f"{value:.2f} ± {error:.2f}", percentile(name),
                            f"{descriptors.DESCRIPTOR_LABEL}; ± its held-out mean error"))
        else:
            rows.append(Row(name, name, "not available", None,
                            upload.unavailable.get(name, "not estimated from audio")))
    return rows


# How each value on the card is measured, and how well (docs/your-track-numbers.md has the tables
# and the commands: bench/tempo_key.py --fold valid, bench/loudness.py). Tests check that these
# numbers are the documented ones.
ACCURACY_DOC = "docs/your-track-numbers.md"
TEMPO_METHOD = ("tempogram of two onset envelopes, half each: spectral flux (median over mel bands) and note "
                "starts heard by the basic-pitch transcription network; prior centred on 120 BPM; "
                "\"or\": its ×2 or ½ when the evidence for it is close")
TEMPO_ACCURACY = ("Measured on 81 annotated GTZAN clips of the validation fold: within 4% of the annotated "
                  f"tempo on 75% (Acc1 0.75), 94% counting ×2, ×3, ½, ⅓ (Acc2 0.94); see {ACCURACY_DOC}")
KEY_METHOD = ("Albrecht–Shanahan/Krumhansl profile correlation with the pitch classes the basic-pitch transcription network "
              "hears, corrected by key templates learned from annotated GTZAN clips (chroma, constant-Q "
              "octaves, registers and the bass line); the key named is the one of the 24 closest on average to "
              "the likely answers (highest expected MIREX score; most often the most probable one); confidence: "
              "the model's probability of that key; other candidate: the most probable other key (it can be more "
              "probable than the key named, e.g. the key a fifth below it)")
KEY_ACCURACY = ("Measured on 61 annotated GTZAN clips of the validation fold: MIREX score 0.69 (a fifth off "
                f"counts 0.5, relative key 0.3, parallel 0.2), exact 0.64; see {ACCURACY_DOC}")
LOUDNESS_METHOD = "integrated loudness, ITU-R BS.1770-4 over the channels (surrounds weighted 1.41, LFE left out)"
LOUDNESS_ACCURACY = f"within 0.01 LU of ffmpeg's ebur128 on 17 test files (mono to 5.1, 44.1-96 kHz; {ACCURACY_DOC})"


def _finite(value) -> bool:
    try:
        return value is not None and bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def tempo_text(c: dict) -> str:
    """"120 BPM", or "120 BPM (or 60)" with the x2 / x1/2 alternative when the evidence is close."""
    text = f"{c['tempo']:.0f} BPM"
    if _finite(c.get("tempo_alt")):
        text += f" (or {c['tempo_alt']:.0f})"
    return text


def key_text(c: dict) -> str:
    """"A minor, confidence 0.62; other candidate C major" (what is known of it). Not "runner-up":
    the key named is the one of highest expected MIREX score, and the other candidate (the most
    probable other key) can be more probable than it."""
    text = key_name(c["key"], c["mode"])
    if not 0 <= int(round(float(c["key"]))) < 12:
        return text
    if _finite(c.get("key_confidence")):
        text += f", confidence {c['key_confidence']:.2f}"
    if c.get("key_runner_up"):
        text += f"; other candidate {c['key_runner_up']}"
    return text


def _key_note(c: dict, charts: pd.DataFrame) -> str:
    if not 0 <= int(c["key"]) < 12 or not {"key", "mode"} <= set(charts.columns):
        return "A category, not a scale: not ranked"
    same = ((charts["key"] == int(c["key"])) & (charts["mode"] == int(c["mode"]))).mean()
    return f"A category, not a scale: not ranked; {same:.1%} of the hits are in {key_name(c['key'], c['mode'])}"


def _loudness_note(charts: pd.DataFrame) -> str:
    head = f"{LOUDNESS_METHOD}; {LOUDNESS_ACCURACY}"
    hits = pd.to_numeric(charts.get("loudness", pd.Series(dtype=float)), errors="coerce").dropna()
    if not len(hits):
        return head
    p10, p50, p90 = np.percentile(hits, [10, 50, 90])
    return (f"{head}. Not ranked: the hits' loudness is Spotify's own dB "
            f"measure (median {p50:.1f} dB, P10-P90 {p10:.1f} to {p90:.1f} dB), not LUFS; the two differ "
            "by a track-dependent amount, so a rank would mislead")


def _loudness_detail_rows(c: dict) -> list[Row]:
    """True peak, loudness range and what the streaming services do: shown, never ranked (the hits
    have no such values)."""
    rows = []
    if _finite(c.get("true_peak_dbtp")):
        rows.append(Row("true_peak_dbtp", "true peak", f"{c['true_peak_dbtp']:.1f} dBTP", None,
                        "ITU-R BS.1770-4 Annex 2: the highest sample over the channels, 4× oversampled "
                        "(2× at 88.2/96 kHz); within 0.2 dB of ffmpeg's ebur128 or of the exact peak. Above −1 dBTP a lossy "
                        "encoding may clip. Not ranked: the hits have no true peak"))
    if _finite(c.get("loudness_range_lu")):
        rows.append(Row("loudness_range_lu", "loudness range", f"{c['loudness_range_lu']:.1f} LU", None,
                        "EBU Tech 3342: the spread (10th to 95th percentile) of 3 s loudness over the track; "
                        "within 0.01 LU of ffmpeg's ebur128. Not ranked: the hits have no loudness range"))
    sentences = tuple(n["text"] for n in c.get("normalisation") or ())
    if sentences:
        rows.append(Row("normalisation", "streaming", "; ".join(sentences), None,
                        "each service's published reference level minus the integrated loudness; Spotify "
                        "turns quiet tracks up only while the true peak stays under −1 dBTP, YouTube never "
                        "turns them up", items=sentences))
    return rows


def _excerpt_note(upload: Upload, charts: pd.DataFrame) -> str:
    hits = pd.to_numeric(charts.get("duration_ms", pd.Series(dtype=float)), errors="coerce").dropna()
    if not len(hits):
        return "no chart durations to compare with"
    return (f"not ranked: shorter than the shortest hit ({minutes(hits.min() / 1000)}), so taken for an "
            f"excerpt; the hits are whole songs (median {minutes(hits.median() / 1000)})")


# --- neighbours and map -------------------------------------------------------------------


@dataclass(frozen=True)
class ChartMap:
    """A 2-D PCA map of the chart tracks for one set of encoded features."""

    coords: np.ndarray  # (n, 2)
    axis_titles: tuple[str, str]
    pca: object


@dataclass
class Reference:
    """Chart tracks to compare an upload with, and how features are encoded for the distance.

    table : DataFrame with ``name``, ``group`` and the raw feature columns
    continuous : columns compared in standard deviations of the hits (``mean``/``scale``)
    kind : "chart" (the chart table's columns) or "audio" (catalogue clips' full audio features)
    """

    table: pd.DataFrame
    continuous: list
    kind: str
    source: str
    mean: pd.Series = None
    scale: pd.Series = None
    has_key: bool = True

    def __post_init__(self):
        values = self.table[self.continuous].astype(float)
        self.mean, self.scale = values.mean(), values.std(ddof=0).replace(0.0, 1.0)
        self._encoded_by_columns: dict = {}  # two column sets at most: with and without duration
        self._maps: dict = {}

    def columns_for(self, row: dict, *, whole_track: bool) -> list[str]:
        """The continuous columns both the chart and ``row`` have (duration only for whole tracks)."""
        return [c for c in self.continuous if c in row and np.isfinite(float(row[c]))
                and (c != "duration_ms" or whole_track)]

    def encode(self, rows: pd.DataFrame, columns: list[str]) -> np.ndarray:
        """Rows as distance coordinates: z-scores of ``columns``, then (with key) the circle of
        fifths' cos and sin (no key: the centre) and the mode (0/1, times MODE_WEIGHT)."""
        parts = [((rows[columns].astype(float) - self.mean[columns]) / self.scale[columns]).to_numpy()]
        if self.has_key:
            angle = np.array([fifths_angle(k, m) for k, m in zip(rows["key"], rows["mode"])])
            parts += [np.nan_to_num(np.cos(angle))[:, None], np.nan_to_num(np.sin(angle))[:, None],
                      MODE_WEIGHT * (rows["mode"].astype(float).to_numpy()[:, None] == 1)]
        return np.hstack(parts)

    def coordinate_names(self, columns: list[str]) -> list[str]:
        return [*columns, *KEY_AXES, "mode"] if self.has_key else list(columns)

    def describe(self, columns: list[str]) -> str:
        """One sentence: which features the distance uses, and how."""
        shown = ", ".join("duration" if c == "duration_ms" else c for c in columns)
        text = f"{shown} (each in standard deviations of the {len(self.table)} {self.source})"
        if self.has_key:
            text += ", key on the circle of fifths (a minor key beside its relative major) and mode (major/minor)"
        return text

    def nearest(self, row: dict, columns: list[str], k: int = N_NEAREST) -> pd.DataFrame:
        """The ``k`` chart tracks nearest to ``row`` (Euclidean in :meth:`encode`'s coordinates)."""
        chart = self._encoded(tuple(columns))
        me = self.encode(pd.DataFrame([row]), columns)
        distance = np.sqrt(((chart - me) ** 2).sum(axis=1))
        order = np.argsort(distance, kind="stable")[:k]
        return self.table.iloc[order].assign(distance=distance[order])

    def chart_map(self, columns: list[str]) -> ChartMap:
        """The PCA map of the chart tracks in these coordinates (fitted once per column set)."""
        key = tuple(columns)
        if key not in self._maps:
            from sklearn.decomposition import PCA

            pca = PCA(n_components=2, random_state=config.DEFAULT_SEED).fit(self._encoded(key))
            names = self.coordinate_names(columns)
            titles = tuple(_axis_title(i, pca, names) for i in range(2))
            self._maps[key] = ChartMap(pca.transform(self._encoded(key)), titles, pca)
        return self._maps[key]

    def place(self, row: dict, columns: list[str]) -> tuple[float, float]:
        """``row``'s position on :meth:`chart_map`."""
        xy = self.chart_map(columns).pca.transform(self.encode(pd.DataFrame([row]), columns))[0]
        return float(xy[0]), float(xy[1])

    def _encoded(self, columns: tuple) -> np.ndarray:
        if columns not in self._encoded_by_columns:
            self._encoded_by_columns[columns] = self.encode(self.table, list(columns))
        return self._encoded_by_columns[columns]


def _axis_title(i: int, pca, names: list[str]) -> str:
    """"component 1 (31 %): +energy, -acousticness": the two features it loads on most."""
    loadings = pca.components_[i]
    top = np.argsort(-np.abs(loadings))[:2]
    parts = ", ".join(f"{'+' if loadings[j] > 0 else '-'}{names[j].replace('duration_ms', 'duration')}" for j in top)
    return f"component {i + 1} ({pca.explained_variance_ratio_[i]:.0%}): {parts}"


def _audio_feature_table(root) -> pd.DataFrame | None:
    """Whole-track rows of a features table written for the catalogue audio, if one exists."""
    if root is None:
        return None
    for path in (root / "features.parquet", root / "features" / "features.parquet"):
        if path.is_file():
            df = pd.read_parquet(path)
            if "segment" in df.columns:
                df = df[df["segment"] == -1]
            return df if len(df) else None
    return None


@data.cleared_on_configure
@functools.lru_cache(maxsize=1)
def chart_reference() -> Reference | None:
    """The comparison reference, built once per process (None with fewer than 3 usable rows).

    With the demo catalogue's audio features (after `tracklens features`): its clips, on the full
    summary feature set computed the same way as the upload's (loudness included: both are LUFS).
    Otherwise the chart table's columns an upload can be given: tempo, acousticness and energy
    (estimated), duration (whole tracks), key and mode.
    """
    from tracklens import features

    source = data.chart_source()
    audio_rows = _audio_feature_table(source.root) if source.kind == "demo" else None
    if audio_rows is not None:
        continuous = [c for c in dict.fromkeys((*features.SUMMARY_COLUMNS, "tempo", "loudness", "duration_ms"))
                      if c in audio_rows.columns]
        has_key = {"key", "mode"} <= set(audio_rows.columns)
        names = audio_rows.get("track_id", audio_rows.index.astype(str)).astype(str)
        labels = audio_rows["label"].astype(str) if "label" in audio_rows.columns else ""
        table = audio_rows[continuous + (["key", "mode"] if has_key else [])].astype(float)
        table = table.assign(name=names.to_numpy(), group=np.asarray(labels))
        kind, what = "audio", "catalogue clips"
    else:
        charts = data.charts()
        continuous = [c for c in ("tempo", *ESTIMATED, "duration_ms") if c in charts.columns]
        has_key = {"key", "mode"} <= set(charts.columns)
        table = charts[continuous + (["key", "mode"] if has_key else [])].apply(pd.to_numeric, errors="coerce")
        table = table.assign(name=charts.get("artist", "").astype(str) + " — " + charts.get("song", "").astype(str),
                             group=charts.get("year", "").astype(str)).dropna()
        kind, what = "chart", "chart hits"
    table = table.reset_index(drop=True)
    if len(table) < 3:
        return None
    return Reference(table=table, continuous=continuous, kind=kind, source=what, has_key=has_key)


# --- how sure: the shipped model on its validation fold -----------------------------------


@dataclass(frozen=True)
class GenreReliability:
    """How the shipped model did for one genre on its validation fold (track level, top genre).

    named : validation tracks the model called ``genre``; right : of those, how many were ``genre``
    tracks : validation tracks of ``genre``; found : of those, how many the model called ``genre``
    confused_with : the genre most often swapped with this one, either way, and how many tracks
    """

    genre: str
    named: int
    right: int
    tracks: int
    found: int
    confused_with: tuple[str, int] | None
    n_valid: int

    def sentence(self) -> str:
        """"When the model says country, it is right for 9 of the 11 validation tracks it called
        country (82%); it found 9 of the 23 country tracks. It most often confuses country and pop
        (7 tracks either way)." """
        g = self.genre
        if self.named:
            said = (f"When the model says {g}, it is right for {self.right} of the {self.named} validation tracks "
                    f"it called {g} ({self.right / self.named:.0%})")
        else:
            said = f"The model named no validation track {g}"
        found = (f"; it found {self.found} of the {self.tracks} {g} tracks." if self.tracks
                 else f"; the validation fold has no {g} tracks.")
        confused = ""
        if self.confused_with is not None:
            other, n = self.confused_with
            confused = f" It most often confuses {g} and {other} ({n} track{'s' if n != 1 else ''} either way)."
        return said + found + confused


def genre_reliability(report: dict, genre: str) -> GenreReliability | None:
    """:class:`GenreReliability` of ``genre`` from a validation report (``class_names``, ``y_true``,
    ``y_score``: :func:`models.store.load_model_report`), or None when the model has no such genre."""
    names = list(report["class_names"])
    if genre not in names:
        return None
    c = names.index(genre)
    y_true = np.asarray(report["y_true"], dtype=int)
    predicted = np.asarray(report["y_score"], dtype=float).argmax(axis=1)
    swaps = {other: int(((y_true == c) & (predicted == j)).sum() + ((y_true == j) & (predicted == c)).sum())
             for j, other in enumerate(names) if j != c}
    other, n = max(swaps.items(), key=lambda kv: kv[1]) if swaps else ("", 0)
    return GenreReliability(genre=genre, named=int((predicted == c).sum()), right=int(((predicted == c) & (y_true == c)).sum()),
                            tracks=int((y_true == c).sum()), found=int(((y_true == c) & (predicted == c)).sum()),
                            confused_with=(other, n) if n else None, n_valid=len(y_true))


# --- the hits to compare with: those of the track's chart genres --------------------------

#: Fewer hits than this in the track's chart genres and the percentiles are taken among all hits
#: (a percentile among a handful of tracks moves by 1/n per track).
MIN_GENRE_PEERS = 30
#: Chart genres (strongest first) whose hits form the comparison group.
N_PEER_GENRES = 2


@dataclass(frozen=True)
class Peers:
    """The chart hits a track is ranked among, and who they are in words."""

    table: pd.DataFrame
    genres: tuple[str, ...]  # the chart genres chosen; () for all hits
    description: str


def genre_peers(charts: pd.DataFrame, chart_genres, *, all_hits: bool = False) -> Peers:
    """The hits tagged with any of the track's strongest chart genres (at most
    :data:`N_PEER_GENRES`, each from ``models.chart_genres.SHOWN_FROM``), or all hits when asked,
    when the track has no chart genres or when fewer than :data:`MIN_GENRE_PEERS` hits carry them."""
    from tracklens.models.chart_genres import SHOWN_FROM
    from tracklens.prepare import split_genres

    everyone = Peers(charts, (), f"all {len(charts)} chart hits")
    if all_hits:
        return everyone
    genres = tuple(g for g, p in list(chart_genres or [])[:N_PEER_GENRES] if p >= SHOWN_FROM)
    if not genres or "genre" not in charts.columns:
        return Peers(charts, (), f"all {len(charts)} chart hits (no chart genre it clearly sounds like)")
    tagged = charts[charts["genre"].map(lambda value: any(g in split_genres(value) for g in genres))]
    named = " or ".join(genres)
    if len(tagged) < MIN_GENRE_PEERS:
        return Peers(charts, (), f"all {len(charts)} chart hits (only {len(tagged)} are tagged {named})")
    return Peers(tagged, genres, f"the {len(tagged)} chart hits tagged {named}, the chart genres it sounds like")


# --- where you sit, in words ----------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """One value of the track among a group's values of the same quantity.

    percentile : share (%) of the group below the value (ties count half)
    low, high : the group's middle half (25th and 75th percentiles)
    """

    feature: str
    label: str
    value: float
    unit: str
    percentile: float
    low: float
    high: float
    n: int

    def sentence(self, group: str) -> str:
        """"tempo 128 BPM: typical for rock tracks here (middle half 110-140 BPM)"; "energy 0.42:
        lower than 80 % of rock tracks here". No verdict, no score: where it sits, in words."""
        unit = f" {self.unit}" if self.unit else ""
        number = _NUMBER_FORMATS.get(self.unit, "{:.2f}").format
        head = f"{self.label} {number(self.value)}{unit}"
        if self.value < self.low:
            return f"{head}: lower than {100 - self.percentile:.0f}% of {group}."
        if self.value > self.high:
            return f"{head}: higher than {self.percentile:.0f}% of {group}."
        return f"{head}: typical for {group} (middle half {number(self.low)} to {number(self.high)}{unit})."


_NUMBER_FORMATS = {"BPM": "{:.0f}", "s": "{:.0f}", "LUFS": "{:.1f}"}  # else 0-1 descriptors: two decimals


#: A value's place is said only among at least this many tracks.
MIN_GROUP = 5


def positions(values: dict, table: pd.DataFrame, columns: dict) -> list[Position]:
    """The track's :class:`Position` per ``columns`` entry ``{track key: (table column, label, unit)}``
    whose value and at least :data:`MIN_GROUP` of the group's values are known."""
    out = []
    for key, (column, label, unit) in columns.items():
        value = values.get(key)
        if value is None or column not in table.columns or not np.isfinite(float(value)):
            continue
        group = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy(float)
        if len(group) < MIN_GROUP:
            continue
        value = float(value)
        below, equal = float((group < value).sum()), float((group == value).sum())
        low, high = np.percentile(group, [25, 75])
        out.append(Position(key, label, value, unit, 100 * (below + equal / 2) / len(group), float(low), float(high),
                            len(group)))
    return out


def upload_values(upload: Upload) -> dict:
    """The upload's values under the keys of :data:`CATALOGUE_VALUES` / :data:`CHART_VALUES` (the
    card's tempo, the loudness over the file's channels: as a catalogue measures its tracks)."""
    c = upload.comparable
    values = {"tempo": c["tempo"], "loudness": c["loudness"], "duration_s": upload.duration_s}
    values.update({f"{name}_est": value for name, (value, _) in upload.estimates.items()})
    return values


#: Catalogue columns compared with an upload: the engine's own values on both sides (the upload's
#: tempo is the card's, the catalogue's ``bpm``; its ``tempo`` is the GTZAN table's, a model input).
CATALOGUE_VALUES = {"tempo": ("bpm", "tempo", "BPM"), "loudness": ("loudness", "loudness", "LUFS"),
                    "energy_est": ("energy_est", "energy (estimated)", ""),
                    "acousticness_est": ("acousticness_est", "acousticness (estimated)", ""),
                    "duration_s": ("duration_s", "duration", "s")}
#: Top Hits columns compared with an upload (Spotify's values; loudness is another measure: left out).
CHART_VALUES = {"tempo": ("tempo", "tempo", "BPM"), "energy_est": ("energy", "energy (estimated)", ""),
                "acousticness_est": ("acousticness", "acousticness (estimated)", "")}


# --- A/B: two checked tracks side by side ---------------------------------------------------------


def ab_rows(a, b) -> list[tuple[str, str, str]]:
    """(what, track A, track B) rows: the blend's label and top three genres, then the values."""

    def blend_text(report, k):
        items = list(report.blend.items())
        return f"{items[k][0]} {items[k][1]:.0%}" if len(items) > k else "—"

    def values(report):
        c = report.upload.comparable
        est = {name: f"{v:.2f} ± {e:.2f}" for name, (v, e) in report.upload.estimates.items()}
        return {"tempo": f"{c['tempo']:.0f} BPM", "key": key_name(c["key"], c["mode"]),
                "loudness": f"{c['loudness']:.1f} LUFS", "duration": minutes(report.duration_s), **est}

    rows = [("blend", a.blend_label, b.blend_label)]
    rows += [(f"genre {k + 1}", blend_text(a, k), blend_text(b, k)) for k in range(3)]
    va, vb = values(a), values(b)
    rows += [(name, va.get(name, "—"), vb.get(name, "—")) for name in dict.fromkeys([*va, *vb])]
    return rows


def sound_likeness(a, b) -> str:
    """How alike two tracks sound, in one sentence: the cosine of their EfficientAT embeddings, and
    how far apart their blends are (half the L1 distance: 0 the same blend, 1 no genre in common)."""
    parts = []
    ea, eb = (getattr(r.genre_blend, "embedding", None) for r in (a, b))
    if ea is not None and eb is not None:
        ea, eb = np.asarray(ea, float), np.asarray(eb, float)
        cosine = float(ea @ eb / max(np.linalg.norm(ea) * np.linalg.norm(eb), 1e-12))
        parts.append(f"cosine similarity of their sound embeddings {cosine:.2f} (EfficientAT; 1 is the same sound)")
    if a.blend and b.blend:
        genres = set(a.blend) | set(b.blend)
        distance = 0.5 * sum(abs(a.blend.get(g, 0.0) - b.blend.get(g, 0.0)) for g in genres)
        parts.append(f"blends {1 - distance:.0%} alike (the share of probability they have in common)")
    return f"How alike {a.filename} and {b.filename} are: " + ("; ".join(parts) or "nothing to compare") + "."
