"""Training: one function fits a Keras model, one fits a baseline, one runs a whole comparison.

Every trained model lands in ``out_dir/<name>/`` with its card (see :mod:`models.store`),
training curves and its validation predictions at track level (raw and temperature-scaled),
which ``tracklens evaluate`` turns into the comparison report.

Honest evaluation: folds are grouped by track (segments never straddle folds), early stopping
and the temperature use the validation fold, and the reported calibrated scores use a temperature
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
from tracklens.models import datasets, evaluate, store

# Per-family defaults: maximum epochs, early-stopping patience, batch size, Adam learning rate.
SUMMARY_FIT = {"epochs": 150, "patience": 20, "batch_size": 32, "learning_rate": 5e-3}
FRAME_FIT = {"epochs": 40, "patience": 8, "batch_size": 32, "learning_rate": 1e-3}
# Segment -> track: normalised geometric mean; bench/accuracy.py measured it against the plain
# mean (better accuracy and ECE on real audio windows). Recorded in each card; the blend follows it.
AGGREGATION = "mean_logprob"
# Models trained on whole-track rows (the published 30 s GTZAN table) predict on 10 s windows:
# bench/accuracy.py measured them as accurate as whole clips once averaged, with a useful timeline.
TRACK_MODEL_WINDOW_S = 10.0


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


def _compiled(architecture: str, x_train: np.ndarray, *, n_classes: int, seed: int, params: dict | None):
    """Seeded, compiled model with the training statistics baked in; returns (model, (mean, var))."""
    keras = _keras()
    from tracklens.models.builders import BUILDERS

    keras.utils.set_random_seed(seed)
    norm = norm_stats(x_train)
    model = BUILDERS[architecture](x_train.shape[1:], n_classes, norm=norm, **(params or {}))
    rate = (SUMMARY_FIT if x_train.ndim == 2 else FRAME_FIT)["learning_rate"]
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="categorical_crossentropy", metrics=["accuracy"])
    return model, norm


def fit_keras(architecture: str, x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
              *, n_classes: int, epochs: int | None = None, patience: int | None = None,
              batch_size: int | None = None, seed: int = config.DEFAULT_SEED, augment: bool = False,
              params: dict | None = None, log: Callable[[str], None] = print):
    """Build, compile and fit one Keras model with early stopping on the validation loss.

    Parameters
    ----------
    architecture : a key of ``models.builders.BUILDERS``
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
    model, norm = _compiled(architecture, x_train, n_classes=n_classes, seed=seed, params=params)
    y_tr = keras.utils.to_categorical(y_train, n_classes)
    y_va = keras.utils.to_categorical(y_valid, n_classes)

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(f"  {architecture} epoch {epoch + 1}/{epochs}: loss {logs.get('loss', 0):.3f} acc "
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


def refit_keras(architecture: str, x: np.ndarray, y: np.ndarray, *, n_classes: int, epochs: int,
                seed: int = config.DEFAULT_SEED, params: dict | None = None):
    """Fit a fresh model on all rows for a fixed number of epochs (no validation data left)."""
    keras = _keras()
    defaults = SUMMARY_FIT if x.ndim == 2 else FRAME_FIT
    model, _ = _compiled(architecture, x, n_classes=n_classes, seed=seed, params=params)
    model.fit(x, keras.utils.to_categorical(y, n_classes), epochs=epochs,
              batch_size=min(defaults["batch_size"], max(8, len(x) // 8)),
              shuffle=True, verbose=0)
    return model


def fit_baseline(name: str, x_train: np.ndarray, y_train: np.ndarray, *, seed: int = config.DEFAULT_SEED):
    """Fit one baseline pipeline by name (``models.baselines.BASELINES``); returns (pipeline, seconds)."""
    from tracklens.models.baselines import BASELINES

    start = time.perf_counter()
    pipe = BASELINES[name](random_state=seed).fit(x_train, y_train)
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


# Predictions CSV I/O lives in store (write_csv/read_csv, broken files a one-line error); these
# names stay importable for models/musicnn_models.py and dashboard/data.py until they use store.
write_predictions, read_predictions = store.write_predictions, store.read_predictions


def _frames(frames: dict, features_path: Path, kind: str, fold_of: dict, genres: Sequence[str]):
    """(x, y, track ids, fold) arrays of one frame matrix kind (from ``features.load_frames``),
    for tracks that have a fold."""
    ids = np.asarray(frames["track_id"]).astype(str)
    folds = np.array([fold_of.get(t, "") for t in ids])
    keep = folds != ""
    if not keep.any():
        raise TracklensError(f"{features_path}: no frame matrices for the tracks in the split")
    labels = np.asarray(frames["label"]).astype(str)[keep]
    return np.asarray(frames[kind])[keep].astype(np.float32), datasets.encode(labels, genres), ids[keep], folds[keep]


def train_models(features_path: str | Path, model_names: Sequence[str], *, out_dir: str | Path,
                 epochs: int | None = None, seed: int = config.DEFAULT_SEED, split_dir: str | Path | None = None,
                 valid_fraction: float = 0.25, augment: bool = False, params: dict | None = None,
                 final: bool = False, name: str | None = None,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Train and score each named model on one feature table; write ``out_dir/<name>/``.

    Parameters
    ----------
    features_path : GTZAN-schema CSV or ``features.parquet`` (frame models need the frames beside it)
    model_names : any of cnn, lstm, lstm_cnn, linear, mlp and the baselines logreg, knn,
        random_forest, svm, gradient_boosting
    params : optional ``{model name: builder keyword arguments}``
    final : after validation, refit Keras models on train + valid for the best epoch count (the
        card keeps the validation scores and temperature of the train-only fit); for shipping
    name : directory and card name (one model only), e.g. ``default``
    split_dir : folder with ``train*.txt`` / ``valid*.txt``; otherwise a seeded stratified
        track split with ``valid_fraction`` of the tracks

    Returns
    -------
    one result dict per model (see :func:`score_model`), in the given order
    """
    unknown = [m for m in model_names if m not in datasets.KERAS_MODELS + datasets.BASELINE_MODELS]
    if unknown or not model_names:
        raise TracklensError(f"unknown model(s) {unknown}; choose from "
                             f"{', '.join(datasets.KERAS_MODELS + datasets.BASELINE_MODELS)}")
    if name and len(model_names) != 1:
        raise TracklensError("--name needs exactly one model in --models")
    features_path, out_dir = Path(features_path), Path(out_dir)
    table = datasets.assign_folds(datasets.read_feature_table(features_path), split_dir=split_dir,
                                  valid_fraction=valid_fraction, seed=seed)
    genres = datasets.genre_order(table["label"])
    fold_of = dict(zip(table["track_id"], table["fold"]))
    rows = datasets.summary_rows(table)
    columns = list(datasets.summary_columns())
    n_tracks = {f: int(table.loc[table["fold"] == f, "track_id"].nunique()) for f in datasets.FOLDS}
    log(f"{features_path.name}: {n_tracks['train']} train / {n_tracks['valid']} valid tracks, "
        f"{len(genres)} genres; models -> {out_dir}")
    results, frames = [], None
    for arch in model_names:
        kind = datasets.MODEL_INPUTS.get(arch, "summary")
        if kind == "summary":
            x = rows[columns].to_numpy(np.float32)
            y = datasets.encode(rows["label"].astype(str), genres)
            ids, folds = rows["track_id"].to_numpy(), rows["fold"].to_numpy()
            row_s = float(rows["duration_s"].median())
            window_s = row_s if (rows["segment"] >= 0).all() else min(TRACK_MODEL_WINDOW_S, row_s)
        else:
            if frames is None:  # read once, shared by every frame model of this run
                from tracklens.features import load_frames

                frames = load_frames(features_path)
            x, y, ids, folds = _frames(frames, features_path, kind, fold_of, genres)
            window_s = row_s = float(config.SEGMENT_SECONDS)
        tr, va = folds == "train", folds == "valid"
        log(f"{arch}: {int(tr.sum())} train / {int(va.sum())} valid rows of {kind} {tuple(x.shape[1:])}")
        keras_model, history, refit = None, None, None
        builder = (params or {}).get(arch, {})
        if arch in datasets.KERAS_MODELS:
            keras_model, history, train_s = fit_keras(arch, x[tr], y[tr], x[va], y[va], n_classes=len(genres),
                                                      epochs=epochs, seed=seed, augment=augment,
                                                      params=builder, log=log)
            start = time.perf_counter()
            proba = keras_model.predict(x[va], verbose=0, batch_size=256)
            n_params = int(keras_model.count_params())
        else:
            pipe, train_s = fit_baseline(arch, x[tr], y[tr], seed=seed)
            start = time.perf_counter()
            proba = pipe.predict_proba(x[va])
            n_params = None
        infer_s = time.perf_counter() - start
        model_name = name or arch
        result = score_model(model_name, ids[va], y[va], proba, genres=genres, train_s=train_s, infer_s=infer_s,
                             n_params=n_params, seed=seed, history=history)
        if final and keras_model is not None:
            best = int(np.argmin(history["val_loss"])) + 1
            log(f"{arch}: refitting on train + valid for {best} epochs (the best validation epoch)")
            keras_model = refit_keras(arch, x, y, n_classes=len(genres), epochs=best, seed=seed, params=builder)
            refit = {"folds": "train+valid", "epochs": best, "rows": int(len(x))}
        card = {
            "name": model_name, "architecture": arch, "genres": list(genres),
            "input": {"kind": kind, "columns": columns if kind == "summary" else None,
                      "shape": list(x.shape[1:]), "window_s": round(window_s, 3), "row_s": round(row_s, 3),
                      "sample_rate": config.SAMPLE_RATE, "n_fft": config.N_FFT,
                      "hop_length": config.HOP_LENGTH, "feature_version": _feature_version()},
            "data": {"features": str(features_path), "rows": {"train": int(tr.sum()), "valid": int(va.sum())},
                     "tracks": n_tracks},
            "split": {"method": "split files" if split_dir else "stratified by genre, grouped by track",
                      "split_dir": str(split_dir) if split_dir else None,
                      "valid_fraction": None if split_dir else valid_fraction, "seed": seed,
                      "refit": refit},
            "parameters": {"epochs_max": epochs, "epochs_run": len(history["loss"]) if history else None,
                           "augment": bool(augment and kind != "summary"), "seed": seed,
                           "builder": builder},
            "calibration": {"temperature": result["temperature"], "fitted_on": "valid fold, track level",
                            "aggregation": AGGREGATION},
            "metrics": {"valid_track_level": result["metrics"],
                        "note": ("scores of the train-only fit on the valid fold; the weights here were then refit "
                                 "on train + valid" if refit else "scores of these weights on the valid fold"), "train_s": round(train_s, 2),
                        "infer_ms_per_track": round(result["infer_ms"], 3), "n_params": n_params},
        }
        model_dir = out_dir / model_name
        store.save_model_dir(model_dir, card, keras_model=keras_model)
        if history:
            store.write_json(model_dir / store.HISTORY_NAME, history)
        store.write_predictions(model_dir / store.PREDICTIONS_NAME, result, genres)
        m = result["metrics"]
        log(f"{model_name}: valid accuracy {m['accuracy']:.3f}, macro ROC-AUC {m['macro_roc_auc']:.3f}, "
            f"ECE {m['ece_uncalibrated']:.3f} -> {m['ece']:.3f} (T={result['temperature']:.2f}), {train_s:.1f} s")
        results.append({**result, "genres": genres, "model_dir": model_dir})
    return results


def _feature_version() -> int:
    from tracklens.features import FEATURE_VERSION

    return int(FEATURE_VERSION)


def evaluate_models(models_dir: str | Path, *, out_dir: str | Path = config.REPORTS_DIR,
                    names: Sequence[str] | None = None) -> tuple[Path, pd.DataFrame]:
    """Build the comparison report from every model directory under ``models_dir``.

    Reads each card and its saved validation predictions (weights are verified for Keras models).
    Returns (path of report.html, the comparison table).
    """
    models_dir = Path(models_dir)
    dirs = sorted(p.parent for p in models_dir.glob(f"*/{store.CARD_NAME}"))
    if names:
        dirs = [d for d in dirs if d.name in set(names)]
    if not dirs:
        raise TracklensError(f"{models_dir}: no trained models found (run `tracklens train` first)")
    results, genres = [], None
    for d in dirs:
        card = store.read_card(d)
        if genres is None:
            genres = card["genres"]
        elif card["genres"] != genres:
            raise TracklensError(f"{d}: genres {card['genres']} differ from the other models' {genres}")
        pred_path = d / store.PREDICTIONS_NAME
        if not pred_path.is_file():
            raise TracklensError(f"{pred_path}: validation predictions missing; retrain {d.name}")
        history_path = d / store.HISTORY_NAME
        history = _read_json(history_path) if history_path.is_file() else None
        metrics = card["metrics"]
        results.append({"name": card["name"], **store.read_predictions(pred_path, genres),
                        "temperature": card["calibration"]["temperature"], "train_s": metrics.get("train_s"),
                        "infer_ms": metrics.get("infer_ms_per_track"), "n_params": metrics.get("n_params"),
                        "history": history})
    report = evaluate.write_report(results, out_dir, class_names=genres)
    return report, evaluate.comparison_table(results, class_names=genres)


def _read_json(path: Path):
    import json

    return json.loads(path.read_text())
