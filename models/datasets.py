"""Training data for the genre models: feature tables, fold assignment and label encoding.

Two table schemas are accepted, so the same commands run on the published GTZAN features, on
the full GTZAN, on the demo catalogue or on a user's own labelled folders:

- the Kaggle GTZAN CSV (``filename, length, <57 summary columns>, label``): one row per track;
- ``features.parquet`` from :func:`features.extract_features` (``track_id, path, label, segment,
  start_s, end_s, length, <57 summary columns>, ...``): whole-track rows (``segment`` = -1) and
  fixed-length segment rows; frame matrices beside it, read with :func:`features.load_frames`.

Folds come from split files (``train*.txt`` / ``valid*.txt``, one ``genre/clip.ext`` per line, as
in the fault-filtered GTZAN split) or from a seeded split stratified by genre and grouped by track,
so segments of one track never straddle folds. A ``test`` list is never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError

FOLDS = ("train", "valid")
# Models trained on whole-track rows (the published 30 s GTZAN table) predict on 10 s windows:
# bench/accuracy.py measured them as accurate as whole clips once averaged, with a useful timeline.
TRACK_MODEL_WINDOW_S = 10.0


def summary_columns() -> tuple[str, ...]:
    """The 57 GTZAN summary feature names, in the Kaggle table's order (from the feature engine)."""
    from tracklens.features import SUMMARY_COLUMNS

    return tuple(SUMMARY_COLUMNS)


def track_id_from_name(name: str) -> str:
    """``"blues/blues.00029.wav"`` or ``"blues.00029.opus"`` -> ``"blues.00029"`` (the file stem)."""
    return Path(str(name).strip()).stem


def read_feature_table(path: str | Path) -> pd.DataFrame:
    """Read a GTZAN-schema CSV or a ``features.parquet`` into one normalised frame.

    Returns
    -------
    DataFrame with ``track_id``, ``label`` (str, may be missing for unlabelled CSVs),
    ``segment`` (-1 = whole track), ``duration_s`` and the 57 summary columns (float64), in file
    order. Raises TracklensError naming the file and what is missing.
    """
    path = Path(path)
    if not path.exists():  # a file, or a Dask run's folder of parquet parts (pd.read_parquet reads both)
        raise TracklensError(f"{path}: no such feature table")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise TracklensError(f"{path}: cannot read feature table ({exc})") from exc
    columns = summary_columns()
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TracklensError(f"{path}: missing feature columns {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                             "(expected the GTZAN 57-feature schema)")
    out = pd.DataFrame(index=df.index)
    if "track_id" in df.columns:
        out["track_id"] = df["track_id"].astype(str)
    elif "filename" in df.columns:
        out["track_id"] = df["filename"].map(track_id_from_name)
    else:
        raise TracklensError(f"{path}: needs a 'track_id' or 'filename' column")
    out["label"] = df["label"].astype("string") if "label" in df.columns else pd.NA
    out["segment"] = df["segment"].astype(int) if "segment" in df.columns else -1
    if {"start_s", "end_s"} <= set(df.columns):
        out["duration_s"] = (df["end_s"] - df["start_s"]).astype(float)
    else:  # the Kaggle table's `length` is in samples at 22 050 Hz
        out["duration_s"] = df["length"].astype(float) / config.SAMPLE_RATE if "length" in df.columns else np.nan
    values = df[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy()).all(axis=1)
    if bad.any():
        first = out["track_id"][bad].iloc[0]
        raise TracklensError(f"{path}: {int(bad.sum())} row(s) with missing or non-numeric features (first: {first})")
    return pd.concat([out, values], axis=1).reset_index(drop=True)


def read_split_dir(split_dir: str | Path) -> dict[str, str]:
    """Map track id -> ``"train"`` / ``"valid"`` from ``train*.txt`` and ``valid*.txt`` in ``split_dir``.

    Any test list in the folder is deliberately ignored (the holdout is never touched here).
    """
    split_dir = Path(split_dir)
    folds: dict[str, str] = {}
    for fold in FOLDS:
        files = sorted(split_dir.glob(f"{fold}*.txt"))
        if len(files) != 1:
            raise TracklensError(f"{split_dir}: expected one {fold}*.txt split file, found {len(files)}")
        for line in files[0].read_text().splitlines():
            if line.strip():
                tid = track_id_from_name(line)
                if folds.get(tid, fold) != fold:
                    raise TracklensError(f"{files[0]}: track {tid} is in both train and valid")
                folds[tid] = fold
    return folds


def stratified_track_split(track_labels: pd.Series, *, valid_fraction: float = 0.25,
                           seed: int = config.DEFAULT_SEED) -> dict[str, str]:
    """Seeded train/valid split of tracks, stratified by genre (segments follow their track).

    track_labels : Series indexed by track id, one genre per track
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < valid_fraction < 1.0:
        raise TracklensError(f"valid_fraction={valid_fraction} must be in (0, 1)")
    check_min_tracks(track_labels)
    ids = track_labels.index.to_numpy()
    n_valid = max(int(round(valid_fraction * len(ids))), track_labels.nunique())
    train_ids, valid_ids = train_test_split(ids, test_size=n_valid, stratify=track_labels.to_numpy(),
                                            random_state=seed)
    return {**{t: "train" for t in train_ids}, **{t: "valid" for t in valid_ids}}


def check_min_tracks(track_labels: pd.Series, *, min_tracks: int = 2) -> None:
    """Raise TracklensError naming every genre with fewer than ``min_tracks`` tracks."""
    counts = track_labels.value_counts()
    few = sorted(counts[counts < min_tracks].index)
    if few:
        detail = ", ".join(f"{g!r} ({counts[g]} track{'s' if counts[g] != 1 else ''})" for g in few)
        raise TracklensError(f"genre {detail} has fewer than {min_tracks} tracks; "
                             "add tracks or drop the genre before training")


def track_labels(table: pd.DataFrame) -> pd.Series:
    """One genre per track id; raises when a track carries two labels or none."""
    if table["label"].isna().any():
        raise TracklensError(f"{int(table['label'].isna().sum())} row(s) without a genre label; training needs labels")
    per_track = table.groupby("track_id", sort=False)["label"].agg(lambda s: set(s))
    mixed = per_track[per_track.map(len) > 1]
    if len(mixed):
        raise TracklensError(f"track {mixed.index[0]!r} has more than one label: {sorted(mixed.iloc[0])}")
    return per_track.map(lambda s: next(iter(s))).astype(str)


def genre_order(labels: Sequence[str]) -> list[str]:
    """Class order for a model: GTZAN's order for GTZAN genres, then any others alphabetically."""
    present = set(map(str, labels))
    known = [g for g in config.GTZAN_GENRES if g in present]
    return known + sorted(present - set(known))


def assign_folds(table: pd.DataFrame, *, split_dir: str | Path | None = None, valid_fraction: float = 0.25,
                 seed: int = config.DEFAULT_SEED) -> pd.DataFrame:
    """Add a ``fold`` column (train / valid); rows of tracks in no fold are dropped.

    With ``split_dir`` the split files decide; otherwise a seeded grouped stratified split.
    Raises TracklensError when a fold ends up empty or a genre has < 2 training tracks.
    """
    labels = track_labels(table)
    check_min_tracks(labels)
    folds = read_split_dir(split_dir) if split_dir else stratified_track_split(
        labels, valid_fraction=valid_fraction, seed=seed)
    out = table.assign(fold=table["track_id"].map(folds)).dropna(subset=["fold"]).reset_index(drop=True)
    for fold in FOLDS:
        if not (out["fold"] == fold).any():
            raise TracklensError(f"no tracks in the {fold} fold (check the split files against the table's track ids)")
    check_min_tracks(track_labels(out[out["fold"] == "train"]))
    return out


def summary_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows summary models learn from: segment rows when the table has them, else track rows.

    Segment rows give more (and window-consistent) samples; the published GTZAN table has
    whole-track rows only. Track-level scores always aggregate back to one row per track.
    """
    segments = table[table["segment"] >= 0]
    return (segments if len(segments) else table[table["segment"] < 0]).reset_index(drop=True)


def encode(labels: Sequence[str], genres: Sequence[str]) -> np.ndarray:
    """Genre names -> class indices (int64), raising on a genre the model does not know."""
    index = {g: i for i, g in enumerate(genres)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise TracklensError(f"genre(s) {unknown} not among the model's genres {list(genres)}")
    return np.array([index[g] for g in labels], dtype=np.int64)


# --- one model's training rows ------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInputs:
    """The rows one input kind trains on, and what the model card records about them.

    x : (n, ...) raw model inputs (float32); y : (n,) class indices; track_ids, folds : (n,)
    columns : input column names (None for frame matrices)
    window_s : seconds of audio behind one row at prediction time
    card_input, card_data : further fields of the card's ``input`` and ``data`` sections
    short_tracks : tracks shorter than one window, scored apart in the card (None: not tracked)
    """

    x: np.ndarray
    y: np.ndarray
    track_ids: np.ndarray
    folds: np.ndarray
    columns: list[str] | None
    window_s: float
    card_input: dict = field(default_factory=dict)
    card_data: dict = field(default_factory=dict)
    short_tracks: frozenset | None = None


def _feature_engine_card(row_s: float) -> dict:
    from tracklens.features import FEATURE_VERSION

    return {"row_s": round(row_s, 3), "n_fft": config.N_FFT, "hop_length": config.HOP_LENGTH,
            "feature_version": int(FEATURE_VERSION)}


def summary_inputs(table: pd.DataFrame, genres: Sequence[str]) -> ModelInputs:
    """The 57 summary features of :func:`summary_rows` of a folded table."""
    rows = summary_rows(table)
    columns = list(summary_columns())
    row_s = float(rows["duration_s"].median())
    window_s = row_s if (rows["segment"] >= 0).all() else min(TRACK_MODEL_WINDOW_S, row_s)
    return ModelInputs(x=rows[columns].to_numpy(np.float32), y=encode(rows["label"].astype(str), genres),
                       track_ids=rows["track_id"].to_numpy(), folds=rows["fold"].to_numpy(), columns=columns,
                       window_s=window_s, card_input=_feature_engine_card(row_s))


def frame_inputs(frames: dict, kind: str, table: pd.DataFrame, genres: Sequence[str], *,
                 features_path: str | Path) -> ModelInputs:
    """One frame matrix ``kind`` (from ``features.load_frames``) of the tracks that have a fold in ``table``."""
    fold_of = dict(zip(table["track_id"], table["fold"]))
    ids = np.asarray(frames["track_id"]).astype(str)
    folds = np.array([fold_of.get(t, "") for t in ids])
    keep = folds != ""
    if not keep.any():
        raise TracklensError(f"{features_path}: no frame matrices for the tracks in the split")
    labels = np.asarray(frames["label"]).astype(str)[keep]
    return ModelInputs(x=np.asarray(frames[kind])[keep].astype(np.float32), y=encode(labels, genres),
                       track_ids=ids[keep], folds=folds[keep], columns=None, window_s=float(config.SEGMENT_SECONDS),
                       card_input=_feature_engine_card(float(config.SEGMENT_SECONDS)))
