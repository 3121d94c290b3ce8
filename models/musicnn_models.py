"""Genre models on musicnn embeddings: the embedding input kinds ``musicnn`` and ``musicnn_fusion``.

The models themselves (``musicnn_linear``, ``musicnn_mlp``, ``musicnn_fusion``) are rows of
:mod:`models.registry` and are trained, scored and saved by :func:`models.train.train_models` like
every other model; this module supplies their rows (:func:`join_embeddings`,
:func:`embedding_inputs`), what their card records about the embedding network
(:func:`card_input`) and, at prediction time, their inputs from audio (:func:`window_inputs`).

Inputs per 3 s patch (musicnn's 187-frame patches; the feature engine's 3 s segments of the
same index cover the same audio): ``musicnn`` = 200-d penultimate embedding + 50 MSD tag
likelihoods; ``musicnn_fusion`` = those + the 57 summary features. Clips shorter than one patch
(2-3 s snippets) contribute their track row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.models import datasets, musicnn

WINDOW_S = config.SEGMENT_SECONDS


def input_columns(table: pd.DataFrame, kind: str) -> list[str]:
    """Model-input columns of a joined table for an input ``kind``."""
    learned = musicnn.embedding_columns(table)
    return learned + list(datasets.summary_columns()) if kind == "musicnn_fusion" else learned


def join_embeddings(features_path: str | Path, table: pd.DataFrame, *,
                    embeddings_path: str | Path | None = None) -> pd.DataFrame:
    """Patch rows (embedding + summary features + fold) of every track of a folded feature table.

    ``table`` comes from :func:`datasets.assign_folds` of ``features_path``; ``embeddings_path``
    defaults to the table ``tracklens features --embeddings musicnn`` writes beside it. Tracks
    with no full patch (shorter than 3 s) keep their track row.
    """
    features_path = Path(features_path)
    emb_path = Path(embeddings_path) if embeddings_path else musicnn.embeddings_path(features_path)
    if not emb_path.exists():  # a file, or a Dask run's folder of parquet parts
        raise TracklensError(f"{emb_path}: no musicnn embeddings beside {features_path.name}; run "
                             f"`tracklens features ... --out {features_path} --embeddings musicnn`")
    emb = pd.read_parquet(emb_path).drop(columns=["label", "path", "checksum"], errors="ignore")
    joined = emb.merge(table, on=["track_id", "segment"], how="inner")
    if joined.empty:
        raise TracklensError(f"{emb_path}: no rows match {features_path.name} (track ids or segments differ)")
    with_patches = set(joined.loc[joined["segment"] >= 0, "track_id"])
    keep = (joined["segment"] >= 0) | ~joined["track_id"].isin(with_patches)
    return joined[keep].reset_index(drop=True)


def card_input() -> dict:
    """What a card records about the embedding network: name, weights SHA-256, origin, licence."""
    manifest = musicnn.read_manifest()[musicnn.DEFAULT_MUSICNN]
    return {"embedding_model": musicnn.DEFAULT_MUSICNN, "embedding_weights_sha256": manifest["weights_sha256"],
            "embedding_origin": manifest["source"], "embedding_licence": manifest["licence"],
            "embedding_weights": f"models/pretrained/{manifest['weights']} (shipped separately, not "
                                 "duplicated here; verified by its SHA-256 at load)"}


def embedding_inputs(rows: pd.DataFrame, kind: str, genres: Sequence[str]) -> datasets.ModelInputs:
    """One embedding input ``kind`` of :func:`join_embeddings`'s rows, with the card's provenance fields."""
    columns = input_columns(rows, kind)
    folds = rows["fold"].to_numpy()
    short = frozenset(rows["track_id"]) - frozenset(rows.loc[rows["segment"] >= 0, "track_id"])
    return datasets.ModelInputs(
        x=rows[columns].to_numpy(np.float32), y=datasets.encode(rows["label"].astype(str), genres),
        track_ids=rows["track_id"].to_numpy(), folds=folds, columns=columns, window_s=WINDOW_S,
        card_input=card_input(), short_tracks=short,
        card_data={"tracks_shorter_than_a_patch": {f: len(short & set(rows.loc[folds == f, "track_id"]))
                                                   for f in datasets.FOLDS}})


def window_inputs(part, columns: Sequence[str]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Raw model inputs of one decoded block for an embedding model: one row per 3 s patch.

    ``columns`` are the card's input columns (``emb_*``, ``tag:*`` and, for fusion, the 57
    summary features of the feature-engine segment with the same index). Returns (x, spans).
    """
    out = musicnn.embed(clip=part)
    n = len(out["embedding"])
    values = {**{c: out["embedding"][:, i] for i, c in enumerate(musicnn.EMBEDDING_COLUMNS)},
              **{f"tag:{t}": out["taggram"][:, i] for i, t in enumerate(out["tag_names"])}}
    spans = [(float(s), float(min(s + musicnn.PATCH_S, part.duration_s))) for s in out["starts_s"]]
    if any(c not in values for c in columns):
        from tracklens.features import featurize_clip

        cf = featurize_clip(part, segment_seconds=WINDOW_S)
        rows = cf.segments or [cf.track]
        for c in columns:
            if c not in values:
                values[c] = np.array([rows[min(i, len(rows) - 1)][c] for i in range(n)], dtype=np.float32)
    missing = [c for c in columns if c not in values]
    if missing:
        raise TracklensError(f"cannot compute model inputs {missing[:3]} from audio")
    return np.stack([values[c] for c in columns], axis=1).astype(np.float32), spans
