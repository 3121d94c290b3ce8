"""Model directories: a weights file plus a JSON model card, written atomically, verified at load.

A model directory holds

- ``model.keras``: the Keras model (loaded with ``safe_mode=True`` only: no lambdas, no pickles);
- ``card.json``: what the model is and how far to trust it: data, split, feature set, parameters,
  metrics, calibration temperature, library versions and the SHA-256 of ``model.keras``;
- optionally ``history.json`` (training curves) and ``valid_predictions.csv`` (track-level
  validation scores, raw and temperature-scaled: :func:`write_predictions`, :func:`read_predictions`;
  :func:`load_validation_result(s) <load_validation_results>` read them back with the card for the
  comparison report, :func:`load_model_report` for the ROC, confusion and reliability figures).

Baselines (scikit-learn) have a card and predictions but no weights: a fitted scikit-learn model
can only be stored by pickling, and loading a pickle runs arbitrary code. Loading refuses, with a
one-line reason, a card that is missing fields, was edited (``card_sha256``), is from a newer
format, another Keras major version or another feature version, or whose weights do not match
the recorded SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from typing import Sequence

from tracklens.fileio import file_checksum
from tracklens.errors import TracklensError
from tracklens.fileio import atomic_path, atomic_write_bytes, read_csv, write_csv
from tracklens.models import datasets

CARD_NAME = "card.json"
WEIGHTS_NAME = "model.keras"
HISTORY_NAME = "history.json"
PREDICTIONS_NAME = "valid_predictions.csv"
FORMAT = "tracklens-genre-model"
FORMAT_VERSION = 1
REQUIRED_FIELDS = ("format", "format_version", "name", "architecture", "genres", "input", "data", "split",
                   "parameters", "metrics", "calibration", "library_versions", "predictor")
_VERSIONED = ("tracklens", "keras", "tensorflow-cpu", "numpy", "scikit-learn", "librosa")


class ModelCardError(TracklensError):
    """A model directory that must not be used: tampered, incomplete or from another version."""


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model depends on (no heavy imports)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def write_json(path: str | Path, obj) -> None:
    """Atomic, indented JSON write."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def save_model_dir(model_dir: str | Path, card: dict, *, keras_model=None) -> Path:
    """Write ``keras_model`` (if any) and the completed card into ``model_dir``; return the card path.

    The card gains ``format``, ``format_version``, ``library_versions``, ``created_utc``,
    ``predictor`` and, with a model, ``weights_file`` / ``weights_sha256``. The card is written
    last, so a crash leaves no card that vouches for half-written weights.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    card = {"format": FORMAT, "format_version": FORMAT_VERSION, **card,
            "library_versions": library_versions(),
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "predictor": keras_model is not None}
    if keras_model is not None:
        with atomic_path(model_dir / WEIGHTS_NAME, suffix=".keras") as tmp:  # Keras insists on the suffix
            keras_model.save(tmp)
        card["weights_file"] = WEIGHTS_NAME
        card["weights_sha256"] = file_checksum(model_dir / WEIGHTS_NAME)
    card["card_sha256"] = card_digest(card)
    write_json(model_dir / CARD_NAME, card)
    return model_dir / CARD_NAME


def card_digest(card: dict) -> str:
    """SHA-256 of the card's canonical JSON without its own ``card_sha256`` field.

    Catches edits to the card (genre order, temperature, metrics) that the weights hash cannot.
    """
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def read_card(model_dir: str | Path, *, verify_weights: bool = True) -> dict:
    """Read and check ``model_dir/card.json``; raise ModelCardError with the reason on any doubt."""
    model_dir = Path(model_dir)
    path = model_dir / CARD_NAME
    if not path.is_file():
        raise ModelCardError(f"{model_dir}: not a model directory (no {CARD_NAME})")
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelCardError(f"{path}: unreadable model card ({exc})") from exc
    if not isinstance(card, dict):
        raise ModelCardError(f"{path}: the model card is not a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in card]
    if missing:
        raise ModelCardError(f"{path}: model card lacks {missing}; refusing to load")
    if card["format"] != FORMAT or not isinstance(card["format_version"], int):
        raise ModelCardError(f"{path}: not a tracklens genre model card")
    if card.get("card_sha256") != card_digest(card):
        raise ModelCardError(f"{path}: model card does not match its SHA-256 (edited after training); refusing to load")
    if card["format_version"] > FORMAT_VERSION:
        raise ModelCardError(f"{path}: model card format {card['format_version']} is newer than this tracklens "
                             f"understands ({FORMAT_VERSION}); upgrade tracklens")
    if card["predictor"] and verify_weights:
        _check_versions(card, path)
        _check_weights(card, model_dir)
    return card


def _check_versions(card: dict, path: Path) -> None:
    saved = str(card["library_versions"].get("keras", "?"))
    here = library_versions()["keras"]
    if saved.split(".")[0] != here.split(".")[0]:
        raise ModelCardError(f"{path}: model saved with Keras {saved}, this install has Keras {here}; retrain it")
    feature_version = card["input"].get("feature_version")
    if feature_version is not None:
        from tracklens.features import FEATURE_VERSION

        if feature_version != FEATURE_VERSION:
            raise ModelCardError(f"{path}: model expects features version {feature_version}, the feature engine "
                                 f"computes version {FEATURE_VERSION}; retrain it (e.g. `make default-model`)")


def _check_weights(card: dict, model_dir: Path) -> None:
    name = card.get("weights_file")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".keras"):
        raise ModelCardError(f"{model_dir}: model card names no valid weights file; refusing to load")
    weights = model_dir / name
    if not weights.is_file():
        raise ModelCardError(f"{weights}: weights file missing")
    actual = file_checksum(weights)
    if actual != card.get("weights_sha256"):
        raise ModelCardError(f"{weights}: SHA-256 {actual[:12]}... does not match the model card "
                             f"({str(card.get('weights_sha256'))[:12]}...); the model or its card was altered - refusing to load")


def load_keras_model(model_dir: str | Path):
    """Return ``(keras_model, card)`` after verifying the card; safe-mode Keras loading only."""
    card = read_card(model_dir)
    if not card["predictor"]:
        raise ModelCardError(f"{model_dir}: {card['name']} is an evaluated baseline without stored weights; "
                             "it cannot predict (train a Keras model: linear, mlp, cnn, lstm, lstm_cnn)")
    import keras

    try:
        model = keras.saving.load_model(Path(model_dir) / card["weights_file"], compile=False, safe_mode=True)
    except Exception as exc:  # a malformed archive or an unsafe layer
        raise ModelCardError(f"{model_dir}: Keras refused the model file ({str(exc).splitlines()[0][:200]})") from exc
    return model, card


# --- validation predictions -------------------------------------------------------------------


def write_predictions(path: str | Path, result: dict, genres: Sequence[str]) -> Path:
    """Write a model's track-level validation scores: ``track_id``, ``label``, ``raw_<genre>``, ``cal_<genre>``.

    ``result`` holds ``tracks``, ``y_true`` (class indices), ``y_score_raw`` and ``y_score``
    (calibrated), each score matrix [shape=(n_tracks, len(genres))].
    """
    import pandas as pd

    frame = pd.DataFrame({"track_id": result["tracks"], "label": [genres[i] for i in result["y_true"]]})
    for prefix, scores in (("raw_", result["y_score_raw"]), ("cal_", result["y_score"])):
        for j, genre in enumerate(genres):
            frame[prefix + genre] = scores[:, j]
    return write_csv(frame, path, float_format="%.6f")  # track ids are file names: formula cells escaped


def read_predictions(path: str | Path, genres: Sequence[str]) -> dict:
    """Inverse of :func:`write_predictions`: track ids, label indices, raw and calibrated scores."""
    columns = ["track_id", "label", *(f"{prefix}{g}" for prefix in ("raw_", "cal_") for g in genres)]
    try:
        frame = read_csv(path)
    except (OSError, ValueError) as exc:
        raise TracklensError(f"{path}: unreadable predictions ({exc})") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TracklensError(f"{path}: predictions lack column(s) {missing[:4]}; retrain the model")
    try:
        scores = {prefix: frame[[f"{prefix}{g}" for g in genres]].to_numpy(dtype=float) for prefix in ("raw_", "cal_")}
    except ValueError as exc:
        raise TracklensError(f"{path}: predictions hold non-numeric scores ({exc})") from exc
    try:
        y_true = datasets.encode(frame["label"].astype(str), genres)
    except TracklensError as exc:
        raise TracklensError(f"{path}: {exc}") from exc
    return {"tracks": frame["track_id"].to_numpy(), "y_true": y_true, "y_score_raw": scores["raw_"], "y_score": scores["cal_"]}


def load_validation_result(model_dir: str | Path, *, verify_weights: bool = False) -> dict:
    """A trained model's card and saved validation scores, in the form :func:`models.train.score_model` returns.

    Returns ``{"name", "genres", "tracks", "y_true", "y_score_raw", "y_score", "temperature",
    "train_s", "infer_ms", "n_params", "history", "metrics"}`` (``history`` None when absent).
    Raises TracklensError naming the folder when the card or ``valid_predictions.csv`` is missing
    or broken.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir, verify_weights=verify_weights)
    predictions = model_dir / PREDICTIONS_NAME
    if not predictions.is_file():
        raise TracklensError(f"{model_dir}: no {PREDICTIONS_NAME} (validation predictions); this model was "
                             "saved without them, so it cannot be scored or drawn (retrain it)")
    history_path = model_dir / HISTORY_NAME
    try:
        history = json.loads(history_path.read_text()) if history_path.is_file() else None
    except (OSError, ValueError) as exc:
        raise TracklensError(f"{history_path}: unreadable training history ({exc})") from exc
    metrics = card.get("metrics", {})
    return {"name": card["name"], "genres": list(card["genres"]),
            **read_predictions(predictions, card["genres"]),
            "temperature": card["calibration"].get("temperature"), "train_s": metrics.get("train_s"),
            "infer_ms": metrics.get("infer_ms_per_track"), "n_params": metrics.get("n_params"),
            "history": history, "metrics": metrics}


def load_validation_results(models_dir: str | Path, *, names: Sequence[str] | None = None) -> list[dict]:
    """:func:`load_validation_result` of every model folder under ``models_dir`` (those in ``names``
    only, when given), weights verified, sorted by folder name; all must share one genre list."""
    models_dir = Path(models_dir)
    dirs = sorted(p.parent for p in models_dir.glob(f"*/{CARD_NAME}"))
    if names:
        dirs = [d for d in dirs if d.name in set(names)]
    if not dirs:
        raise TracklensError(f"{models_dir}: no trained models found (run `tracklens train` first)")
    results = [load_validation_result(d, verify_weights=True) for d in dirs]
    for d, r in zip(dirs, results):
        if r["genres"] != results[0]["genres"]:
            raise TracklensError(f"{d}: genres {r['genres']} differ from the other models' {results[0]['genres']}")
    return results


def load_model_report(model_dir: str | Path) -> dict:
    """The evaluation report of a trained model directory, in the form ``explore``'s figures take.

    Reads ``card.json`` (name, genres, metrics) and ``valid_predictions.csv`` (track-level,
    temperature-calibrated validation scores) as written by ``tracklens train``. Returns
    ``{"model", "class_names", "y_true", "y_score", "metrics"}``.
    """
    result = load_validation_result(model_dir)
    return {"model": result["name"], "class_names": result["genres"], "y_true": result["y_true"],
            "y_score": result["y_score"], "metrics": result["metrics"]}
