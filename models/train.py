"""Training: the one path every model of :mod:`models.registry` is trained, scored and saved by.

:func:`train_models` reads a feature table (and the frames or embeddings beside it, once),
assigns folds, and for each named model gathers its rows (:func:`model_inputs`), fits it
(:func:`fit_keras` or :func:`fit_baseline`), scores it (:func:`score_model`) and writes
``out_dir/<name>/``: the card (built by :func:`model_card`, the one place cards are made; see
:mod:`models.store`), training curves and the track-level validation predictions (raw and
temperature-scaled) that ``tracklens evaluate`` turns into the comparison report.

Honest evaluation: folds are grouped by track (segments never straddle folds), early stopping
and the temperature use the validation fold (with ``final``, the temperature comes from grouped
CV's out-of-fold predictions instead), and the reported calibrated scores use a temperature
fitted on the *other* validation tracks (cross-fitting), so calibration is not scored on the data
it was fitted to.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError
from tracklens.models import datasets, evaluate, kinds, registry, store

# Per-family defaults: maximum epochs, early-stopping patience, batch size, Adam learning rate.
SUMMARY_FIT = {"epochs": 150, "patience": 20, "batch_size": 32, "learning_rate": 5e-3}
FRAME_FIT = {"epochs": 40, "patience": 8, "batch_size": 32, "learning_rate": 1e-3}
# Segment -> track: normalised geometric mean; bench/accuracy.py measured it against the plain
# mean (better accuracy and ECE on real audio windows). Recorded in each card; the blend follows it.
AGGREGATION = "mean_logprob"


def _keras():
    import keras

    return keras


def norm_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training-fold mean and variance (f,): per column of (n, f) inputs, per row of (n, f, t) ones."""
    axes = (0,) if x.ndim == 2 else (0, 2)
    return x.mean(axis=axes, dtype=np.float64).astype(np.float32), x.var(axis=axes, dtype=np.float64).astype(np.float32)


def _augmented_batches(x, y_onehot, *, batch_size: int, seed: int, fill: np.ndarray, mixup_alpha: float = 0.2):
    """A PyDataset of SpecAugment-style masked, mixup-blended batches for frame inputs (n, f, t)."""
    keras = _keras()

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            xb, yb = x[idx].copy(), y_onehot[idx].astype(np.float32)
            n_f, n_t = xb.shape[1:]
            for row in xb:  # one frequency band and one time span masked to the training mean
                f0, fw = self.rng.integers(n_f), self.rng.integers(1, max(2, n_f // 8))
                t0, tw = self.rng.integers(n_t), self.rng.integers(1, max(2, n_t // 8))
                row[f0:f0 + fw] = fill[f0:f0 + fw]
                row[:, t0:t0 + tw] = fill
            lam = self.rng.beta(mixup_alpha, mixup_alpha, size=(len(idx), 1))
            partner = self.rng.permutation(len(idx))
            xb = lam[:, :, None] * xb + (1 - lam[:, :, None]) * xb[partner]
            yb = lam * yb + (1 - lam) * yb[partner]
            return xb.astype(np.float32), yb

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

    return Batches()


def _compiled(name: str, x_train: np.ndarray, *, n_classes: int, seed: int, params: dict | None):
    """Seeded, compiled model with the training statistics baked in; returns (model, (mean, var))."""
    if registry.spec(name).family != "keras":
        raise TracklensError(f"{name} is a baseline, not a Keras model")
    keras = _keras()
    keras.utils.set_random_seed(seed)
    norm = norm_stats(x_train)
    model = registry.factory(name)(x_train.shape[1:], n_classes, norm=norm, **(params or {}))
    rate = (SUMMARY_FIT if x_train.ndim == 2 else FRAME_FIT)["learning_rate"]
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="categorical_crossentropy", metrics=["accuracy"])
    return model, norm


def fit_keras(name: str, x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
              *, n_classes: int, epochs: int | None = None, patience: int | None = None,
              batch_size: int | None = None, seed: int = config.DEFAULT_SEED, augment: bool = False,
              params: dict | None = None, log: Callable[[str], None] = print):
    """Build, compile and fit one Keras model with early stopping on the validation loss.

    Parameters
    ----------
    name : a Keras model of ``models.registry.MODELS`` (e.g. ``mlp``, ``musicnn_linear``)
    x_train, x_valid : (n, 57) summaries or (n, f, t) frame matrices, raw (normalised inside)
    y_train, y_valid : (n,) class indices
    augment : SpecAugment masks + mixup on frame inputs (ignored for summaries)
    params : extra builder keyword arguments

    Returns
    -------
    (model with the best validation weights, history dict, train seconds)
    """
    keras = _keras()
    defaults = SUMMARY_FIT if x_train.ndim == 2 else FRAME_FIT
    epochs = epochs or defaults["epochs"]
    patience = patience or defaults["patience"]
    # Tiny training sets get smaller batches, so a few epochs still make enough optimiser steps.
    batch_size = batch_size or min(defaults["batch_size"], max(8, len(x_train) // 8))
    model, norm = _compiled(name, x_train, n_classes=n_classes, seed=seed, params=params)
    y_tr = keras.utils.to_categorical(y_train, n_classes)
    y_va = keras.utils.to_categorical(y_valid, n_classes)

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"  {name} epoch {epoch + 1}/{epochs}: loss {logs.get('loss', 0):.3f} acc "
                f"{logs.get('accuracy', 0):.3f} | val_loss {logs.get('val_loss', 0):.3f} val_acc {logs.get('val_accuracy', 0):.3f}")

    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
                 EpochLine()]
    start = time.perf_counter()
    if augment and x_train.ndim == 3:
        data = _augmented_batches(x_train.astype(np.float32), y_tr, batch_size=batch_size, seed=seed, fill=norm[0][:, None])
        history = model.fit(data, validation_data=(x_valid, y_va), epochs=epochs, callbacks=callbacks, verbose=0)
    else:
        history = model.fit(x_train, y_tr, validation_data=(x_valid, y_va), epochs=epochs, batch_size=batch_size,
                            shuffle=True, callbacks=callbacks, verbose=0)
    train_s = time.perf_counter() - start
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}, train_s


def refit_keras(name: str, x: np.ndarray, y: np.ndarray, *, n_classes: int, epochs: int,
                seed: int = config.DEFAULT_SEED, params: dict | None = None):
    """Fit a fresh model on all rows for a fixed number of epochs (no validation data left)."""
    keras = _keras()
    defaults = SUMMARY_FIT if x.ndim == 2 else FRAME_FIT
    model, _ = _compiled(name, x, n_classes=n_classes, seed=seed, params=params)
    model.fit(x, keras.utils.to_categorical(y, n_classes), epochs=epochs,
              batch_size=min(defaults["batch_size"], max(8, len(x) // 8)),
              shuffle=True, verbose=0)
    return model


def fit_baseline(name: str, x_train: np.ndarray, y_train: np.ndarray, *, seed: int = config.DEFAULT_SEED):
    """Fit one baseline pipeline by name (a baseline of ``models.registry.MODELS``); returns (pipeline, seconds)."""
    if registry.spec(name).family != "baseline":
        raise TracklensError(f"{name} is a Keras model, not a baseline")
    start = time.perf_counter()
    pipe = registry.factory(name)(random_state=seed).fit(x_train, y_train)
    return pipe, time.perf_counter() - start


def cross_fitted_calibration(y_true: np.ndarray, y_score: np.ndarray, *, seed: int = config.DEFAULT_SEED,
                             n_splits: int = 5) -> np.ndarray:
    """Temperature-scaled scores where each track's temperature was fitted on the other tracks."""
    from sklearn.model_selection import KFold

    out = np.empty_like(y_score, dtype=np.float64)
    splits = KFold(n_splits=min(n_splits, len(y_true)), shuffle=True, random_state=seed).split(y_true)
    for fit_idx, apply_idx in splits:
        t = evaluate.fit_temperature(y_true[fit_idx], y_score[fit_idx])
        out[apply_idx] = evaluate.apply_temperature(y_score[apply_idx], t)
    return out


def _track_level(track_ids, labels_idx, proba, *, method: str = AGGREGATION):
    """Aggregate segment rows to tracks; returns (track ids, (n_tracks,) labels, (n_tracks, k) probs)."""
    tracks, probs = evaluate.aggregate_segments(track_ids, proba, method=method)
    first_label = pd.Series(labels_idx, index=np.asarray(track_ids)).groupby(level=0).first()
    return tracks, first_label.loc[tracks].to_numpy(), probs


def score_model(name: str, track_ids, y_true, proba, *, genres, train_s: float, infer_s: float,
                n_params: int | None, seed: int, history: dict | None = None) -> dict:
    """Track-level raw/calibrated scores, temperature and metrics for one model's validation rows."""
    tracks, y_track, raw = _track_level(track_ids, y_true, proba)
    temperature = evaluate.fit_temperature(y_track, raw)
    calibrated = cross_fitted_calibration(y_track, raw, seed=seed)
    metrics = evaluate.classification_metrics(y_track, calibrated, class_names=genres)
    metrics["ece_uncalibrated"] = evaluate.expected_calibration_error(y_track, raw)
    metrics["accuracy_uncalibrated"] = float(np.mean(raw.argmax(1) == y_track))
    return {"name": name, "tracks": tracks, "y_true": y_track, "y_score_raw": raw, "y_score": calibrated,
            "temperature": temperature, "metrics": metrics, "train_s": train_s,
            "infer_ms": 1000.0 * infer_s / max(len(tracks), 1), "n_params": n_params, "history": history}


def scores_by_length(result: dict, short_tracks: frozenset, genres: Sequence[str]) -> dict:
    """Headline metrics of a scored result for full clips and for short snippets (tracks shorter
    than one window) separately; a part with fewer than 2 tracks is left out."""
    out = {}
    is_short = np.isin(result["tracks"], list(short_tracks))
    for part, mask in (("clips", ~is_short), ("snippets", is_short)):
        if mask.sum() >= 2:
            m = evaluate.classification_metrics(result["y_true"][mask], result["y_score"][mask], class_names=genres)
            out[part] = {"n": int(mask.sum()), **{k: m[k] for k in ("accuracy", "balanced_accuracy", "macro_roc_auc",
                                                                    "log_loss", "ece")}}
    return out


def grouped_cv(name: str, x: np.ndarray, y: np.ndarray, track_ids: np.ndarray, *, genres, epochs: int,
               n_folds: int = 5, seed: int = config.DEFAULT_SEED, params: dict | None = None) -> dict:
    """Out-of-fold track-level scores of a Keras model: stratified K-fold grouped by track, fixed epochs.

    The temperature is fitted on all out-of-fold track predictions (held out from every fit
    that made them); the metrics use cross-fitted temperatures like :func:`score_model`.
    Tracks of one artist may fall in different folds (GTZAN repeats artists): optimistic.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    raw = np.zeros((len(x), len(genres)))
    n_folds = min(n_folds, len(set(track_ids)))  # every fold needs a track
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_idx, test_idx in splitter.split(x, y, groups=track_ids):
        model = refit_keras(name, x[fit_idx], y[fit_idx], n_classes=len(genres), epochs=epochs, seed=seed,
                            params=params)
        raw[test_idx] = np.asarray(model(x[test_idx], training=False))
    return score_model("cv", track_ids, y, raw, genres=genres, train_s=0.0, infer_s=0.0, n_params=None, seed=seed)


def _read_sources(sources: set, features_path: Path, table: pd.DataFrame, embeddings_path) -> dict:
    """Each input source the models need, read once and before any training (a missing file fails fast)."""
    out = {}
    if "frames" in sources:
        from tracklens.features import load_frames

        out["frames"] = load_frames(features_path)
    if "embeddings" in sources:
        from tracklens.models import musicnn_models

        out["embeddings"] = musicnn_models.join_embeddings(features_path, table, embeddings_path=embeddings_path)
    return out


def model_inputs(kind: str, table: pd.DataFrame, genres: Sequence[str], sources: dict, *,
                 features_path: Path) -> datasets.ModelInputs:
    """The training rows of one input kind (see :data:`models.registry.INPUT_SOURCES`)."""
    source = registry.INPUT_SOURCES[kind]
    if source == "summary":
        return datasets.summary_inputs(table, genres)
    if source == "frames":
        return datasets.frame_inputs(sources["frames"], kind, table, genres, features_path=features_path)
    from tracklens.models import musicnn_models

    return musicnn_models.embedding_inputs(sources["embeddings"], kind, genres)


def model_card(model_name: str, inputs: datasets.ModelInputs, result: dict, *, card_name: str, genres,
               features_path: Path, split: dict, parameters: dict, calibration: dict, metrics: dict) -> dict:
    """The card of one trained model (:mod:`models.store` adds versions and checksums when saving).

    ``split``, ``parameters``, ``calibration`` and ``metrics`` hold the run's fields; the input,
    data and the valid-fold scores come from ``inputs`` and ``result``.
    """
    kind = kinds.get(registry.spec(model_name).input_kind)
    folds = inputs.folds
    return {
        "name": card_name, "architecture": registry.architecture(model_name), "genres": list(genres),
        "input": kind.card_input(inputs.columns, list(inputs.x.shape[1:]), round(inputs.window_s, 3),
                                 **inputs.card_input),
        "data": {"features": config.project_relative(features_path),
                 "rows": {f: int((folds == f).sum()) for f in datasets.FOLDS},
                 "tracks": {f: int(len(set(inputs.track_ids[folds == f]))) for f in datasets.FOLDS},
                 **inputs.card_data},
        "split": split,
        "parameters": parameters,
        "calibration": {**calibration, "aggregation": AGGREGATION},
        "metrics": {"valid_track_level": result["metrics"], **metrics,
                    "train_s": round(result["train_s"], 2), "infer_ms_per_track": round(result["infer_ms"], 3),
                    "n_params": result["n_params"]},
    }


def _fit_and_score(model_name: str, inputs: datasets.ModelInputs, *, card_name: str, genres, epochs, seed,
                   augment: bool, params: dict, log):
    """Fit on the train fold, score on the valid fold; returns (fitted model, history or None, result)."""
    x, y = inputs.x, inputs.y
    tr, va = inputs.folds == "train", inputs.folds == "valid"
    if registry.spec(model_name).family == "keras":
        model, history, train_s = fit_keras(model_name, x[tr], y[tr], x[va], y[va], n_classes=len(genres),
                                            epochs=epochs, seed=seed, augment=augment, params=params, log=log)
        predict, n_params = (lambda rows: model.predict(rows, verbose=0, batch_size=256)), int(model.count_params())
    else:
        (model, train_s), history = fit_baseline(model_name, x[tr], y[tr], seed=seed), None
        predict, n_params = model.predict_proba, None
    start = time.perf_counter()
    proba = predict(x[va])
    result = score_model(card_name, inputs.track_ids[va], y[va], proba, genres=genres, train_s=train_s,
                         infer_s=time.perf_counter() - start, n_params=n_params, seed=seed, history=history)
    return model, history, result


def _finalize(model_name: str, inputs: datasets.ModelInputs, history: dict, *, genres, seed, cv_folds: int,
              params: dict, log):
    """``final``: grouped CV over train + valid at the best validation epoch count (its out-of-fold
    predictions give the temperature), then a refit on all rows for that count.

    Returns (refit model, refit record, CV record, calibration record).
    """
    best = int(np.argmin(history["val_loss"])) + 1
    x, y, ids = inputs.x, inputs.y, inputs.track_ids
    log(f"{model_name}: {cv_folds}-fold CV grouped by track over train + valid, {best} epochs per fit")
    cv_result = grouped_cv(model_name, x, y, ids, genres=genres, epochs=best, n_folds=cv_folds, seed=seed,
                           params=params)
    cv = {"protocol": f"{cv_folds}-fold stratified CV grouped by track over train + valid ({len(set(ids))} "
                      "tracks); artists may repeat across folds (GTZAN), so optimistic",
          "track_level": cv_result["metrics"]}
    if inputs.short_tracks is not None:
        cv.update(scores_by_length(cv_result, inputs.short_tracks, genres))
    calibration = {"temperature": cv_result["temperature"],
                   "fitted_on": f"{cv_folds}-fold CV grouped by track over train + valid, out-of-fold track-level "
                                "predictions"}
    cm = cv["track_level"]
    log(f"  grouped CV (optimistic): accuracy {cm['accuracy']:.3f}, balanced {cm['balanced_accuracy']:.3f}, "
        f"macro ROC-AUC {cm['macro_roc_auc']:.3f}, ECE {cm['ece']:.3f}; temperature {calibration['temperature']:.2f}")
    log(f"{model_name}: refitting on train + valid for {best} epochs (the best validation epoch)")
    model = refit_keras(model_name, x, y, n_classes=len(genres), epochs=best, seed=seed, params=params)
    return model, {"folds": "train+valid", "epochs": best, "rows": int(len(x))}, cv, calibration


def _log_scores(name: str, result: dict, by_length: dict, log) -> None:
    m = result["metrics"]
    log(f"{name}: valid accuracy {m['accuracy']:.3f}, balanced {m['balanced_accuracy']:.3f}, macro ROC-AUC "
        f"{m['macro_roc_auc']:.3f}, ECE ({evaluate.ECE_BINS} bins) {m['ece_uncalibrated']:.3f} -> {m['ece']:.3f} "
        f"(T={result['temperature']:.2f}), {result['train_s']:.1f} s")
    for part, pm in by_length.items():
        log(f"  valid {part} ({pm['n']}): accuracy {pm['accuracy']:.3f}, balanced {pm['balanced_accuracy']:.3f}, "
            f"macro ROC-AUC {pm['macro_roc_auc']:.3f}")


def train_models(features_path: str | Path, model_names: Sequence[str], *, out_dir: str | Path,
                 embeddings_path: str | Path | None = None, epochs: int | None = None,
                 seed: int = config.DEFAULT_SEED, split_dir: str | Path | None = None, valid_fraction: float = 0.25,
                 augment: bool = False, params: dict | None = None, final: bool = False, name: str | None = None,
                 cv_folds: int = 5, log: Callable[[str], None] = print) -> list[dict]:
    """Train and score each named model on one feature table; write ``out_dir/<name>/``.

    Parameters
    ----------
    features_path : GTZAN-schema CSV or ``features.parquet`` (frame models need the frames beside
        it, embedding models the musicnn table beside it)
    model_names : names from :data:`models.registry.MODELS`, in any mix of input kinds
    embeddings_path : the musicnn table for the embedding models (default: beside ``features_path``)
    params : optional ``{model name: builder keyword arguments}``
    final : after validation, for shipping: ``cv_folds``-fold CV grouped by track over train +
        valid at the best validation epoch count (the card's temperature is fitted on its
        out-of-fold predictions), then a refit of the Keras models on train + valid for that count;
        the card keeps the train-only fit's valid-fold scores and the CV scores, labelled
    name : directory and card name (one model only), e.g. ``default``
    split_dir : folder with ``train*.txt`` / ``valid*.txt``; otherwise a seeded stratified
        track split with ``valid_fraction`` of the tracks

    Returns
    -------
    one result dict per model (see :func:`score_model`), in the given order
    """
    if not model_names:
        raise TracklensError("no model named; give at least one model name")
    specs = {m: registry.spec(m) for m in model_names}
    if name and len(model_names) != 1:
        raise TracklensError("--name needs exactly one model in --models")
    features_path, out_dir = Path(features_path), Path(out_dir)
    table = datasets.assign_folds(datasets.read_feature_table(features_path), split_dir=split_dir,
                                  valid_fraction=valid_fraction, seed=seed)
    genres = datasets.genre_order(table["label"])
    sources = _read_sources({registry.INPUT_SOURCES[s.input_kind] for s in specs.values()}, features_path, table,
                            embeddings_path)
    split = {"method": "split files" if split_dir else "stratified by genre, grouped by track",
             "split_dir": config.project_relative(split_dir) if split_dir else None,
             "valid_fraction": None if split_dir else valid_fraction, "seed": seed}
    n_tracks = {f: int(table.loc[table["fold"] == f, "track_id"].nunique()) for f in datasets.FOLDS}
    log(f"{features_path.name}: {n_tracks['train']} train / {n_tracks['valid']} valid tracks, "
        f"{len(genres)} genres; models -> {out_dir}")
    results = []
    for model_name, model_spec in specs.items():
        inputs = model_inputs(model_spec.input_kind, table, genres, sources, features_path=features_path)
        log(f"{model_name}: {int((inputs.folds == 'train').sum())} train / {int((inputs.folds == 'valid').sum())} "
            f"valid rows of {model_spec.input_kind} {tuple(inputs.x.shape[1:])}")
        card_name, builder = name or model_name, (params or {}).get(model_name, {})
        model, history, result = _fit_and_score(model_name, inputs, card_name=card_name, genres=genres,
                                                epochs=epochs, seed=seed, augment=augment, params=builder, log=log)
        by_length = {} if inputs.short_tracks is None else scores_by_length(result, inputs.short_tracks, genres)
        _log_scores(card_name, result, by_length, log)
        refit, cv = None, None
        calibration = {"temperature": result["temperature"], "fitted_on": "valid fold, track level"}
        if final and model_spec.family == "keras":
            model, refit, cv, calibration = _finalize(model_name, inputs, history, genres=genres, seed=seed,
                                                      cv_folds=cv_folds, params=builder, log=log)
        card = model_card(
            model_name, inputs, result, card_name=card_name, genres=genres, features_path=features_path,
            split={**split, "refit": refit},
            parameters={"epochs_max": epochs, "epochs_run": len(history["loss"]) if history else None,
                        "augment": bool(augment and inputs.x.ndim == 3), "seed": seed, "builder": builder},
            calibration=calibration,
            metrics={**({"valid_by_kind": by_length} if inputs.short_tracks is not None else {}),
                     "note": ("valid_*: the train-only fit scored on the valid fold; the weights here were then "
                              "refit on train + valid" if refit else "scores of these weights on the valid fold"),
                     "grouped_cv": cv})
        model_dir = out_dir / card_name
        store.save_model_dir(model_dir, card, keras_model=model if model_spec.family == "keras" else None)
        if history:
            store.write_json(model_dir / store.HISTORY_NAME, history)
        store.write_predictions(model_dir / store.PREDICTIONS_NAME, result, genres)
        results.append({**result, "genres": genres, "model_dir": model_dir})
    return results
