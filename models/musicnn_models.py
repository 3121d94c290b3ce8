"""Genre models on musicnn embeddings: a linear probe, a small MLP and a fusion with the 57
handcrafted features, trained, scored and saved exactly like the design models.

They reuse :mod:`models.train` (``fit_keras`` with the ``linear``/``mlp`` builders, track-level
scoring with cross-fitted temperature) and :mod:`models.store` (card + ``.keras``), and write
their validation predictions where ``tracklens evaluate`` finds them, so they appear in the
same comparison report and per-genre ROC-AUC table.

Inputs per 3 s patch (musicnn's 187-frame patches; the feature engine's 3 s segments of the
same index cover the same audio): ``musicnn`` = 200-d penultimate embedding + 50 MSD tag
likelihoods; ``musicnn_fusion`` = those + the 57 summary features. Clips shorter than one patch
(2-3 s snippets) contribute their track row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.models import datasets, musicnn

# name -> (builder in models.builders, input kind)
EMBEDDING_MODELS = {
    "musicnn_linear": ("linear", "musicnn"),
    "musicnn_mlp": ("mlp", "musicnn"),
    "musicnn_fusion": ("mlp", "musicnn_fusion"),
}
WINDOW_S = config.SEGMENT_SECONDS


def input_columns(table: pd.DataFrame, kind: str) -> list[str]:
    """Model-input columns of a joined table for an input ``kind``."""
    learned = musicnn.embedding_columns(table)
    return learned + list(datasets.summary_columns()) if kind == "musicnn_fusion" else learned


def training_rows(features_path: str | Path, *, embeddings_path: str | Path | None = None,
                  split_dir: str | Path | None = None, valid_fraction: float = 0.25,
                  seed: int = config.DEFAULT_SEED) -> pd.DataFrame:
    """Patch rows (embedding + summary features + fold) of every track in the split.

    ``embeddings_path`` defaults to the table ``tracklens features --embeddings musicnn`` writes
    beside ``features_path``. Tracks with no full patch (shorter than 3 s) keep their track row.
    """
    features_path = Path(features_path)
    emb_path = Path(embeddings_path) if embeddings_path else musicnn.embeddings_path(features_path)
    if not emb_path.is_file():
        raise TracklensError(f"{emb_path}: no musicnn embeddings beside {features_path.name}; run "
                             f"`tracklens features ... --out {features_path} --embeddings musicnn`")
    table = datasets.assign_folds(datasets.read_feature_table(features_path), split_dir=split_dir,
                                  valid_fraction=valid_fraction, seed=seed)
    emb = pd.read_parquet(emb_path).drop(columns=["label", "path", "checksum"], errors="ignore")
    joined = emb.merge(table, on=["track_id", "segment"], how="inner")
    if joined.empty:
        raise TracklensError(f"{emb_path}: no rows match {features_path.name} (track ids or segments differ)")
    with_patches = set(joined.loc[joined["segment"] >= 0, "track_id"])
    keep = (joined["segment"] >= 0) | ~joined["track_id"].isin(with_patches)
    return joined[keep].reset_index(drop=True)


def _short_tracks(rows: pd.DataFrame) -> set:
    """Tracks shorter than one patch (2-3 s snippets): they have only their track row."""
    return set(rows["track_id"]) - set(rows.loc[rows["segment"] >= 0, "track_id"])


def _split_scores(result: dict, short: set, genres) -> dict:
    """Metrics of one scored result for full clips/excerpts and for short snippets separately."""
    from tracklens.models import evaluate

    out = {}
    is_short = np.isin(result["tracks"], list(short))
    for part, mask in (("clips", ~is_short), ("snippets", is_short)):
        if mask.sum() >= 2:
            m = evaluate.classification_metrics(result["y_true"][mask], result["y_score"][mask], class_names=genres)
            out[part] = {"n": int(mask.sum()), **{k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_roc_auc",
                                                                    "log_loss", "ece")}}
    return out


def grouped_cv(architecture: str, x: np.ndarray, y: np.ndarray, track_ids: np.ndarray, *, genres, epochs: int,
               n_folds: int = 5, seed: int = config.DEFAULT_SEED) -> dict:
    """Out-of-fold track-level scores: stratified K-fold grouped by track, fixed epoch count.

    The temperature is fitted on all out-of-fold track predictions (held out from every fit
    that made them); the metrics use cross-fitted temperatures like :func:`models.train.score_model`.
    Tracks of one artist may fall in different folds (GTZAN repeats artists): optimistic.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from tracklens.models.train import refit_keras, score_model

    raw = np.zeros((len(x), len(genres)))
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_idx, test_idx in splitter.split(x, y, groups=track_ids):
        model = refit_keras(architecture, x[fit_idx], y[fit_idx], n_classes=len(genres), epochs=epochs, seed=seed)
        raw[test_idx] = np.asarray(model(x[test_idx], training=False))
    return score_model("cv", track_ids, y, raw, genres=genres, train_s=0.0, infer_s=0.0, n_params=None, seed=seed)


def train_embedding_models(features_path: str | Path, model_names: Sequence[str] = tuple(EMBEDDING_MODELS), *,
                           out_dir: str | Path, embeddings_path: str | Path | None = None,
                           epochs: int | None = None, seed: int = config.DEFAULT_SEED,
                           split_dir: str | Path | None = None, valid_fraction: float = 0.25,
                           final: bool = False, name: str | None = None, cv_folds: int = 5,
                           log: Callable[[str], None] = print) -> list[dict]:
    """Train, score and save each named embedding model into ``out_dir/<name>/``.

    Same protocol and outputs as :func:`models.train.train_models` (early stopping and
    temperature on the valid fold, cross-fitted calibrated scores, card + predictions).
    With ``final`` (for shipping): also ``cv_folds``-fold CV grouped by track over train +
    valid at the best validation epoch count, then a refit on train + valid for that count;
    the card's temperature is then the one fitted on the CV's out-of-fold predictions, and
    its metrics keep the train-only valid-fold scores and the CV scores, labelled.
    ``name`` renames the directory and card (one model only), e.g. ``default``.
    Returns one result dict per model.
    """
    from tracklens.models import store
    from tracklens.models.train import fit_keras, refit_keras, score_model, write_predictions

    unknown = [m for m in model_names if m not in EMBEDDING_MODELS]
    if unknown or not model_names:
        raise TracklensError(f"unknown embedding model(s) {unknown}; choose from {', '.join(EMBEDDING_MODELS)}")
    if name and len(model_names) != 1:
        raise TracklensError("--name needs exactly one model in --models")
    rows = training_rows(features_path, embeddings_path=embeddings_path, split_dir=split_dir,
                         valid_fraction=valid_fraction, seed=seed)
    genres = datasets.genre_order(rows["label"])
    y = datasets.encode(rows["label"].astype(str), genres)
    tr, va = (rows["fold"] == "train").to_numpy(), (rows["fold"] == "valid").to_numpy()
    manifest = musicnn.read_manifest()[musicnn.DEFAULT_MUSICNN]
    name_given, results = name, []
    short = _short_tracks(rows)
    for model_name in model_names:
        architecture, kind = EMBEDDING_MODELS[model_name]
        name = name_given or model_name
        columns = input_columns(rows, kind)
        x = rows[columns].to_numpy(np.float32)
        log(f"{name}: {int(tr.sum())} train / {int(va.sum())} valid rows of {kind} ({len(columns)},)")
        model, history, train_s = fit_keras(architecture, x[tr], y[tr], x[va], y[va], n_classes=len(genres),
                                            epochs=epochs, seed=seed, log=log)
        start = time.perf_counter()
        proba = model.predict(x[va], verbose=0, batch_size=256)
        result = score_model(name, rows["track_id"].to_numpy()[va], y[va], proba, genres=genres, train_s=train_s,
                             infer_s=time.perf_counter() - start, n_params=int(model.count_params()), seed=seed,
                             history=history)
        valid_parts = _split_scores(result, short, genres)
        temperature, refit, cv = result["temperature"], None, None
        calibration_note = "valid fold, track level"
        if final:
            best = int(np.argmin(history["val_loss"])) + 1
            ids = rows["track_id"].to_numpy()
            log(f"{name}: {cv_folds}-fold CV grouped by track over train + valid, {best} epochs per fit")
            cv_result = grouped_cv(architecture, x, y, ids, genres=genres, epochs=best, n_folds=cv_folds, seed=seed)
            temperature = cv_result["temperature"]
            calibration_note = (f"{cv_folds}-fold CV grouped by track over train + valid, out-of-fold track-level "
                                "predictions")
            cv = {"protocol": f"{cv_folds}-fold stratified CV grouped by track over train + valid ({len(set(ids))} "
                              "tracks); artists may repeat across folds (GTZAN), so optimistic",
                  "track_level": cv_result["metrics"], **_split_scores(cv_result, short, genres)}
            log(f"{name}: refitting on train + valid for {best} epochs")
            model = refit_keras(architecture, x, y, n_classes=len(genres), epochs=best, seed=seed)
            refit = {"folds": "train+valid", "epochs": best, "rows": int(len(x))}
        card = {
            "name": name, "architecture": architecture, "genres": list(genres),
            "input": {"kind": kind, "columns": columns, "shape": [len(columns)], "window_s": WINDOW_S,
                      "sample_rate": musicnn.MUSICNN_SR, "embedding_model": musicnn.DEFAULT_MUSICNN,
                      "embedding_weights_sha256": manifest["weights_sha256"],
                      "embedding_origin": manifest["source"], "embedding_licence": manifest["licence"],
                      "embedding_weights": f"models/pretrained/{manifest['weights']} (shipped separately, not "
                                           "duplicated here; verified by its SHA-256 at load)"},
            "data": {"features": str(features_path), "rows": {"train": int(tr.sum()), "valid": int(va.sum())},
                     "tracks": {f: int(rows.loc[rows["fold"] == f, "track_id"].nunique()) for f in datasets.FOLDS},
                     "tracks_shorter_than_a_patch": {f: len(short & set(rows.loc[rows["fold"] == f, "track_id"]))
                                                     for f in datasets.FOLDS}},
            "split": {"method": "split files" if split_dir else "stratified by genre, grouped by track",
                      "split_dir": str(split_dir) if split_dir else None, "seed": seed, "refit": refit},
            "parameters": {"epochs_max": epochs, "epochs_run": len(history["loss"]), "seed": seed},
            "calibration": {"temperature": temperature, "fitted_on": calibration_note,
                            "aggregation": "mean_logprob"},
            "metrics": {"valid_track_level": result["metrics"], "valid_by_kind": valid_parts,
                        "note": ("valid_*: the train-only fit scored on the valid fold (artist-disjoint with the "
                                 "split files); the weights here were then refit on train + valid"
                                 if refit else "scores of these weights on the valid fold"),
                        "grouped_cv": cv, "train_s": round(train_s, 2),
                        "infer_ms_per_track": round(result["infer_ms"], 3), "n_params": int(model.count_params())},
        }
        model_dir = Path(out_dir) / name
        store.save_model_dir(model_dir, card, keras_model=model)
        store.write_json(model_dir / store.HISTORY_NAME, history)
        write_predictions(model_dir / store.PREDICTIONS_NAME, result, genres)
        m = result["metrics"]
        log(f"{name}: valid accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro ROC-AUC "
            f"{m['macro_roc_auc']:.3f}, ECE {m['ece']:.3f}, {train_s:.1f} s")
        for part, pm in valid_parts.items():
            log(f"  valid {part} ({pm['n']}): accuracy {pm['accuracy']:.3f}, balanced {pm['balanced_accuracy']:.3f}, "
                f"macro ROC-AUC {pm['macro_roc_auc']:.3f}")
        if cv:
            cm = cv["track_level"]
            log(f"  grouped CV (optimistic): accuracy {cm['accuracy']:.3f}, balanced {cm['balanced_accuracy']:.3f}, "
                f"macro ROC-AUC {cm['macro_roc_auc']:.3f}, ECE {cm['ece']:.3f}; temperature {temperature:.2f}")
        results.append({**result, "genres": genres, "model_dir": model_dir})
    return results


def window_inputs(part, columns: Sequence[str]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Raw model inputs of one decoded block for an embedding model: one row per 3 s patch.

    ``columns`` are the card's input columns (``emb_*``, ``tag:*`` and, for fusion, the 57
    summary features of the feature-engine segment with the same index). Returns (x, spans).
    """
    out = musicnn.embed(clip=part)
    n = len(out["embedding"])
    values = {**{c: out["embedding"][:, i] for i, c in enumerate(musicnn.EMBEDDING_COLUMNS)},
              **{f"tag:{t}": out["taggram"][:, i] for i, t in enumerate(out["tag_names"])}}
    patch_s = musicnn.PATCH_FRAMES * musicnn.MUSICNN_HOP / musicnn.MUSICNN_SR
    spans = [(float(s), float(min(s + patch_s, part.duration_s))) for s in out["starts_s"]]
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
