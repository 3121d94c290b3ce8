"""Chart-table preprocessing: engineered features, popularity bands, a stratified split, scaling.

Input is a cleaned chart table (:func:`prepare.prepare_charts`). The order of work is

1. :func:`engineer_features` adds ``duration_min``, ``decade``, ``has_feat``, one
   ``genre_<name>`` flag per genre in the comma-separated ``genre`` string, ``n_genres`` and
   ``popularity_band``;
2. :func:`split_by_popularity` splits rows into train/validate/test (70/15/15), stratified by
   popularity band, so each band has the same share in every split;
3. :func:`fit_scaler` learns means and scales from the train split only, and
   :func:`apply_scaler` applies them to any split (validate/test rows never influence it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tracklens import config, prepare
from tracklens.errors import TracklensError
from tracklens.prepare import split_genres  # the one genre parser (re-exported for views)

#: Popularity bands as (name, lowest, highest), inclusive. Cut points 60 and 72 split the real
#: table's non-zero rows into roughly equal thirds (534 / 726 / 614 of 1874). Popularity 0 is a
#: band of its own: in the Top Hits table those 126 rows are mostly re-releases and duplicate
#: track ids that Spotify scores 0, not unpopular hits, so lumping them into "low" would
#: distort it; a model can also leave them out by band.
POPULARITY_BANDS: tuple[tuple[str, int, int], ...] = (
    ("zero", 0, 0),
    ("low", 1, 59),
    ("mid", 60, 71),
    ("high", 72, 100),
)
BAND_NAMES = tuple(name for name, _, _ in POPULARITY_BANDS)

SPLIT_NAMES = ("train", "validate", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)

#: Continuous columns that :func:`fit_scaler` standardises (binary and categorical ones are not).
SCALED_COLUMNS = ("duration_min", "year", *config.SPOTIFY_CONTINUOUS_FEATURES)
#: Model inputs besides the ``genre_*`` flags (see :func:`feature_columns`). Not features:
#: ``artist``, ``song`` (identifiers), ``genre`` (expanded into flags), ``popularity`` and
#: ``popularity_band`` (targets), ``duration_ms`` (same as ``duration_min``), ``decade``
#: (coarser ``year``, kept for grouping and plots).
FEATURE_COLUMNS = (
    *SCALED_COLUMNS, "explicit", "key", "mode", "has_feat", "n_genres",
)

# "(feat. X)", "[ft. X]", "(with X)", "Featuring X", "feat.X". A bare "with" in a title
# ("Stay With Me") is not a feature; "(with Flowers in My Hair)" is a known false positive.
FEAT_PATTERN = re.compile(
    r"[\(\[]\s*(?:feat\.?|ft\.?|featuring|with)\s|\b(?:feat|ft)\.|\bfeaturing\b", re.IGNORECASE
)


def genre_slug(genre: str) -> str:
    """Column-name form of a genre: ``"hip hop"`` -> ``"hip_hop"``, ``"R&B"`` -> ``"r_and_b"``."""
    slug = re.sub(r"[^0-9a-z]+", "_", genre.strip().lower().replace("&", " and ")).strip("_")
    if not slug:
        raise TracklensError(f"genre {genre!r} has no letters or digits to name a column after")
    return slug


def popularity_band(popularity):
    """Band name(s) of popularity value(s) by :data:`POPULARITY_BANDS`.

    Parameters
    ----------
    popularity : int or array-like of int, 0..100

    Returns
    -------
    str, or pandas.Series [shape=(n,), dtype=category (ordered zero < low < mid < high)]

    Raises
    ------
    TracklensError
        A value is missing or outside 0..100.
    """
    scalar = np.ndim(popularity) == 0
    values = pd.Series([popularity] if scalar else popularity)
    index = values.index
    values = pd.to_numeric(values, errors="coerce")
    bad = values.isna() | ~values.between(0, 100)
    if bad.any():
        raise TracklensError(f"popularity must be a number in 0..100; got {values.where(bad).dropna().tolist()[:3] or 'missing values'}")
    edges = [-0.5] + [hi + 0.5 for _, _, hi in POPULARITY_BANDS]
    bands = pd.cut(values, bins=edges, labels=list(BAND_NAMES), ordered=True)
    bands.index = index
    return str(bands.iloc[0]) if scalar else bands.rename("popularity_band")


def engineer_features(df: pd.DataFrame, *, genres=None) -> pd.DataFrame:
    """Add the engineered columns to a cleaned chart table (returns a new DataFrame).

    Parameters
    ----------
    df : pandas.DataFrame
        A table with at least ``song``, ``duration_ms``, ``year``, ``genre`` and ``popularity``.
    genres : sequence of str, optional
        Genre vocabulary for the ``genre_*`` flags. Default: every genre seen in `df`, sorted.
        Pass the training table's vocabulary to give other tables the same columns.

    Returns
    -------
    pandas.DataFrame
        `df` plus ``duration_min`` (float, minutes), ``decade`` (int, e.g. 2010), ``has_feat``
        (bool: a featured artist in the title), ``genre_<slug>`` (bool, one per genre),
        ``n_genres`` (int) and ``popularity_band`` (ordered category).
    """
    missing = [c for c in ("song", "duration_ms", "year", "genre", "popularity") if c not in df.columns]
    if missing:
        raise TracklensError(f"engineer_features needs column(s) {missing}; run prepare first")
    out = df.copy()
    out["duration_min"] = out["duration_ms"].astype("float64") / 60_000.0
    out["decade"] = (out["year"].astype("int64") // 10) * 10
    out["has_feat"] = out["song"].fillna("").astype(str).str.contains(FEAT_PATTERN)
    lists = out["genre"].map(split_genres)
    vocab = sorted({g for row in lists for g in row}, key=str.lower) if genres is None else list(genres)
    slugs = [genre_slug(g) for g in vocab]
    if len(set(slugs)) != len(slugs):
        raise TracklensError(f"genres {vocab} give clashing column names {slugs}")
    wanted = [{genre_slug(g) for g in row} for row in lists]
    flags = {f"genre_{s}": [s in row for row in wanted] for s in slugs}
    out = pd.concat([out, pd.DataFrame(flags, index=out.index, dtype=bool)], axis=1)
    out["n_genres"] = lists.map(len).astype("int64")
    out["popularity_band"] = popularity_band(out["popularity"])
    return out


def feature_columns(df: pd.DataFrame) -> list[str]:
    """Model input columns of an engineered table: :data:`FEATURE_COLUMNS` + its genre flags."""
    return [c for c in FEATURE_COLUMNS if c in df.columns] + [c for c in df.columns if c.startswith("genre_")]


def _allocate(n: int, fractions) -> np.ndarray:
    """Split n items by fractions with largest-remainder rounding (counts sum to n)."""
    exact = np.asarray(fractions, float) * n
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def split_by_popularity(df: pd.DataFrame, *, seed: int = config.DEFAULT_SEED,
                        fractions=DEFAULT_FRACTIONS) -> dict[str, pd.DataFrame]:
    """Stratified train/validate/test split by popularity band.

    Each band's rows are shuffled with `seed` and cut by `fractions` (largest-remainder
    rounding), so every band's share in each split matches its share of the whole to within
    one row.

    Parameters
    ----------
    df : pandas.DataFrame
        Needs ``popularity_band`` or ``popularity``.
    seed : int
        Random seed; the same seed and table give the same split.
    fractions : (float, float, float)
        Train, validate and test shares; positive, summing to 1.

    Returns
    -------
    dict {"train", "validate", "test"} -> pandas.DataFrame
        Rows keep the input's order within each split; the index is reset.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise TracklensError(f"fractions={fractions} must be three positive numbers summing to 1")
    if len(df) < 3:
        raise TracklensError(f"cannot split {len(df)} row(s) three ways")
    bands = df["popularity_band"] if "popularity_band" in df.columns else popularity_band(df["popularity"])
    rng = np.random.default_rng(seed)
    positions = np.arange(len(df))
    parts: list[list[np.ndarray]] = [[], [], []]
    for band in BAND_NAMES:  # fixed order: the rng draws do not depend on row order of bands
        members = rng.permutation(positions[(bands == band).to_numpy()])
        for k, chunk in enumerate(np.split(members, np.cumsum(_allocate(members.size, fractions))[:-1])):
            parts[k].append(chunk)
    return {
        name: df.iloc[np.sort(np.concatenate(chunks))].reset_index(drop=True)
        for name, chunks in zip(SPLIT_NAMES, parts)
    }


def band_shares(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Percentage of each popularity band in the whole table and in each split.

    Returns
    -------
    pandas.DataFrame [shape=(n_bands, 1 + n_splits)]
        Rows: band names; columns ``whole`` then the split names; values in percent.
    """
    whole = pd.concat(splits.values())["popularity_band"]
    table = {"whole": whole.value_counts(normalize=True)}
    for name, part in splits.items():
        table[name] = part["popularity_band"].value_counts(normalize=True)
    return (pd.DataFrame(table).reindex(list(BAND_NAMES)).fillna(0.0) * 100).round(2)


# --- scaling ----------------------------------------------------------------------------------


def fit_scaler(train: pd.DataFrame, *, columns=SCALED_COLUMNS):
    """A :class:`sklearn.preprocessing.StandardScaler` fitted on the train split only.

    Parameters
    ----------
    train : pandas.DataFrame
        The train split (engineered); must hold every column in `columns`.
    columns : sequence of str

    Returns
    -------
    sklearn.preprocessing.StandardScaler
        Fitted; ``feature_names_in_`` records `columns`, ``mean_``/``scale_`` their statistics.
    """
    from sklearn.preprocessing import StandardScaler

    columns = list(columns)
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise TracklensError(f"cannot fit the scaler: train split lacks column(s) {missing}")
    return StandardScaler().fit(train[columns].astype("float64"))


def apply_scaler(scaler, df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` with the scaler's columns standardised by the train statistics."""
    columns = list(scaler.feature_names_in_)
    out = df.copy()
    out[columns] = scaler.transform(df[columns].astype("float64"))
    return out


# --- the split command ------------------------------------------------------------------------


@dataclass
class SplitResult:
    """What :func:`split_file` wrote."""

    paths: dict[str, Path]
    counts: dict[str, int]
    shares: pd.DataFrame
    cleaned_rows: int  # rows prepare dropped from the input (0 for an already clean table)
    genre_flags: list[str]  # the genre_* columns of every split

    def lines(self) -> list[str]:
        out = [f"{name}: {self.counts[name]} rows -> {path}" for name, path in self.paths.items()]
        out.append(f"genre flags: {len(self.genre_flags)} genre_* columns" if self.genre_flags
                   else "genre: no genres known (no genre_* columns)")
        out.append("popularity band shares (%):")
        out += self.shares.to_string().splitlines()
        return out


def split_file(src, out_dir, *, seed: int = config.DEFAULT_SEED, fractions=DEFAULT_FRACTIONS) -> SplitResult:
    """Clean (idempotently), engineer and split a chart CSV into ``out_dir/{train,validate,test}.csv``.

    The genre vocabulary comes from the whole table so all three files have the same columns.
    Files are written atomically, formula-like text cells escaped (:func:`fileio.write_csv`).
    """
    clean, report = prepare.prepare_charts(src)
    if len(clean) < len(SPLIT_NAMES):
        raise TracklensError(f"{src}: {len(clean)} row(s) left after cleaning; cannot split three ways")
    engineered = engineer_features(clean)
    splits = split_by_popularity(engineered, seed=seed, fractions=fractions)
    out_dir = Path(out_dir)
    paths = {name: prepare.write_csv_atomic(part, out_dir / f"{name}.csv") for name, part in splits.items()}
    flags = [c for c in engineered.columns if c.startswith("genre_")]
    return SplitResult(paths, {k: len(v) for k, v in splits.items()}, band_shares(splits), report.n_dropped, flags)
