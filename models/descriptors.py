"""Spotify-style descriptors (energy, acousticness, ...) estimated from audio, with their error.

Spotify's audio-features endpoint answers 403 to new apps, so a new track has none of the
descriptors chart hits are described by. ``fma/echonest_librosa_650.csv`` (shared data) pairs,
for 650 FMA tracks, Echo Nest's values of them (the analysis behind Spotify's endpoint, same
names and 0-1 scales) with librosa feature means of the same audio. This module

- computes those feature means from a track's audio the way the table did
  (:func:`fma_feature_means`, from the project's one-STFT :class:`~tracklens.features.Analysis`);
- estimates the descriptors whose held-out R² reached :data:`MIN_R2` (:func:`estimate`,
  :func:`estimate_columns`), each with its held-out mean absolute error;
- reads the shipped estimator; ``recipes/descriptors.py`` (``make descriptors-model``, not
  installed) rebuilds it from the table.

The shipped estimator (``models/descriptors/``) is plain JSON: scaler statistics and layer
weights (ridge = one linear layer, MLP = ReLU hidden layer + linear output), read without
pickle and checked against the SHA-256 its ``card.json`` records. The card holds the training
data, recipe, held-out figures and limits.

Only the 44 STFT-based means are used. The table's other 30 (chroma_cqt, chroma_cens, tonnetz)
come from librosa 0.5's CQT, whose filters changed since; on the shipped descriptors dropping
them cost at most 0.02 CV R² (energy 0.708 -> 0.691) and nothing on the held-out split
(measured by ``recipes/descriptors.py``, recorded in the card).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tracklens import config
from tracklens.errors import TracklensError

DESCRIPTORS: tuple[str, ...] = tuple(sorted(config.SPOTIFY_PERCEPTUAL_FEATURES))  # the estimator file's order
DESCRIPTOR_LABEL = "estimated from audio (650 FMA tracks with Echo Nest values)"
ESTIMATOR_DIR = config.MODELS_DIR / "descriptors"
ESTIMATOR_NAME = "estimator.json"
CARD_NAME = "card.json"
FORMAT = "tracklens-descriptor-estimator"
FORMAT_VERSION = 1
TRAINING_TABLE = Path("fma") / "echonest_librosa_650.csv"  # under config.SHARED_DATA_DIR
MIN_R2 = 0.5  # a descriptor ships only when both its CV and final held-out R² reach this


def _table_names(group: str, count: int) -> tuple[str, ...]:
    """pandas' names for ``count`` same-named columns: ``group``, ``group.1``, ..."""
    return (group, *(f"{group}.{i}" for i in range(1, count)))


# The table's STFT-based columns, in its order (its feature file is sorted by name).
STFT_COLUMNS: tuple[str, ...] = (
    *_table_names("chroma_stft", 12), *_table_names("mfcc", 20), "rmse", "spectral_bandwidth",
    "spectral_centroid", *_table_names("spectral_contrast", 7), "spectral_rolloff", "zcr",
)
# The CQT-based ones, used only to measure what leaving them out costs.
CQT_COLUMNS: tuple[str, ...] = (
    *_table_names("chroma_cens", 12), *_table_names("chroma_cqt", 12), *_table_names("tonnetz", 6),
)
assert len(STFT_COLUMNS) == 44 and len(CQT_COLUMNS) == 30

# FMA features.py's analysis settings (librosa 0.5 defaults at 22 050 Hz).
_RECIPE = {"sr": 22_050, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "n_mfcc": 20}


# --- the table's feature recipe -----------------------------------------------------------------


def fma_feature_means(analysis) -> dict[str, float]:
    """The 44 STFT-based feature means of FMA's ``features.py`` (librosa 0.5), keyed as the table.

    With ``S = |stft(y, n_fft=2048, hop_length=512)|`` at 22 050 Hz mono, means over frames of
    ``chroma_stft(S=S**2)`` (tuning estimated from every frame), ``mfcc(S=power_to_db(
    melspectrogram(S=S**2)), n_mfcc=20)``, librosa 0.5's ``rmse(S=S)`` (= sqrt of the mean of
    ``S**2`` over frequency bins; today's ``rms(S=)`` normalises differently), spectral
    bandwidth, centroid, ``contrast(n_bands=6)`` and rolloff of ``S``, and
    ``zero_crossing_rate(y, frame_length=2048, hop_length=512)``.

    Parameters
    ----------
    analysis : tracklens.features.Analysis
        Built with the project defaults (22 050 Hz, n_fft 2048, hop 512, 128 mels, 20 MFCCs).

    Returns
    -------
    dict
        ``{column: mean}`` for :data:`STFT_COLUMNS`, in that order.

    Notes
    -----
    librosa 0.5 padded the STFT by reflection, the shared STFT pads with zeros: only the two
    frames at each end differ; on 6 GTZAN clips the means moved by at most 0.05 (MFCC; the
    table's MFCC sd is >= 4.4), 0.6 Hz (rolloff) and 0.03 dB (contrast).
    """
    import librosa

    got = {"sr": analysis.sr, "n_fft": analysis.n_fft, "hop_length": analysis.hop_length,
           "n_mels": analysis.n_mels, "n_mfcc": analysis.n_mfcc}
    if got != _RECIPE:
        raise TracklensError(f"descriptor features need an analysis with {_RECIPE}, got {got}")
    # Not analysis.chroma: its tuning comes from every 2nd frame, which moved chroma means by up
    # to 0.028 on GTZAN rock.00008 (0.2 of the table's sd); the full estimate costs ~0.2 s.
    chroma = librosa.feature.chroma_stft(S=analysis.power, sr=analysis.sr)
    rmse = np.sqrt(np.mean(analysis.power, axis=0))
    groups = (chroma, analysis.mfcc, rmse[None, :], analysis.spectral_bandwidth, analysis.spectral_centroid,
              analysis.spectral_contrast, analysis.rolloff, analysis.zero_crossing_rate)
    means = np.concatenate([np.mean(values, axis=1, dtype=np.float64) for values in groups])
    return dict(zip(STFT_COLUMNS, means.tolist()))


# --- the shipped estimator ---------------------------------------------------------------------


class DescriptorEstimate(NamedTuple):
    """One descriptor's estimate in [0, 1] and its held-out mean absolute error."""

    value: float
    held_out_mae: float


class DescriptorEstimator:
    """The shipped descriptors: per descriptor a standardised ridge or small MLP, as arrays.

    Attributes
    ----------
    columns : tuple of str, the feature columns the models read (:data:`STFT_COLUMNS`)
    held_out_mae : dict, descriptor -> held-out mean absolute error (from the card)
    unavailable : dict, descriptor -> why it is not estimated
    card : dict, the model card
    """

    def __init__(self, spec: dict, card: dict):
        self.columns = tuple(spec["columns"])
        self.card = card
        self._models = {name: _as_arrays(model) for name, model in spec["descriptors"].items()}
        self.held_out_mae = {name: card["descriptors"][name]["held_out"]["mae"] for name in self._models}
        self.unavailable = dict(card["not_shipped"])

    @property
    def descriptors(self) -> tuple[str, ...]:
        return tuple(self._models)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """Estimates in [0, 1] for rows of ``features`` [shape=(n, len(columns))], per descriptor."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if features.shape[1] != len(self.columns) or not np.all(np.isfinite(features)):
            raise TracklensError(f"descriptor estimator: need {len(self.columns)} finite features per row, "
                                 f"got shape {features.shape}")
        return {name: _forward(model, features) for name, model in self._models.items()}


def _as_arrays(model: dict) -> dict:
    return {"input_mean": np.asarray(model["input_mean"]), "input_scale": np.asarray(model["input_scale"]),
            "layers": [(np.asarray(layer["weights"]), np.asarray(layer["bias"])) for layer in model["layers"]]}


def _forward(model: dict, features: np.ndarray) -> np.ndarray:
    """Scaled input through linear layers with ReLU between them; output clipped to [0, 1]."""
    hidden = (features - model["input_mean"]) / model["input_scale"]
    *inner, (out_weights, out_bias) = model["layers"]
    for weights, bias in inner:
        hidden = np.maximum(hidden @ weights + bias, 0.0)
    return np.clip((hidden @ out_weights + out_bias)[:, 0], 0.0, 1.0)


@functools.lru_cache(maxsize=4)
def load_estimator(directory: str | Path | None = None) -> DescriptorEstimator:
    """Read the estimator in ``directory`` (default: the shipped one), checking it; cached.

    Only JSON is read (no pickle). Raises TracklensError when a file is missing or unreadable,
    the format is unknown, or ``estimator.json`` does not match the SHA-256 in ``card.json``.
    """
    directory = Path(directory) if directory is not None else ESTIMATOR_DIR
    card = _read_json(directory / CARD_NAME)
    estimator_path = directory / ESTIMATOR_NAME
    try:
        raw = estimator_path.read_bytes()
    except OSError as exc:
        raise TracklensError(f"{estimator_path}: cannot read the descriptor estimator ({exc.strerror})") from None
    if hashlib.sha256(raw).hexdigest() != card.get("estimator_sha256"):
        raise TracklensError(f"{estimator_path}: does not match the SHA-256 in {CARD_NAME}; rebuild it with "
                             "`make descriptors-model`")
    spec = _parse_json(raw, estimator_path)
    if (spec.get("format"), spec.get("format_version")) != (FORMAT, FORMAT_VERSION):
        raise TracklensError(f"{estimator_path}: not a {FORMAT} v{FORMAT_VERSION} file")
    try:
        if tuple(spec["columns"]) != STFT_COLUMNS or set(spec["descriptors"]) != set(card["shipped"]):
            raise TracklensError(f"{estimator_path}: columns or descriptors differ from this version and its card")
        return DescriptorEstimator(spec, card)
    except (KeyError, TypeError, ValueError) as exc:
        raise TracklensError(f"{directory}: malformed descriptor estimator or card ({exc!r})") from None


def _read_json(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TracklensError(f"{path}: cannot read ({exc.strerror})") from None
    return _parse_json(raw, path)


def _parse_json(raw: bytes, path: Path) -> dict:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TracklensError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise TracklensError(f"{path}: expected a JSON object")
    return value


def estimate(y: np.ndarray | None = None, *, sr: int = config.SAMPLE_RATE,
             analysis=None) -> dict[str, DescriptorEstimate]:
    """Estimate the shipped descriptors of one clip, each with its held-out error.

    Parameters
    ----------
    y : np.ndarray, optional
        Mono audio; resampled to 22 050 Hz when ``sr`` differs. Give ``y`` or ``analysis``.
    sr : int
        Sample rate of ``y``.
    analysis : tracklens.features.Analysis, optional
        An analysis already made at the project defaults (reuses its STFT).

    Returns
    -------
    dict
        ``{descriptor: DescriptorEstimate(value, held_out_mae)}`` for the shipped descriptors
        (see ``load_estimator().unavailable`` for the others and why).
    """
    if (y is None) == (analysis is None):
        raise TracklensError("descriptors.estimate: give exactly one of y or analysis")
    if analysis is None:
        analysis = _analyze(y, sr)
    estimator = load_estimator()
    means = fma_feature_means(analysis)
    values = estimator.predict(np.array([[means[c] for c in estimator.columns]]))
    return {name: DescriptorEstimate(float(v[0]), estimator.held_out_mae[name]) for name, v in values.items()}


def _analyze(y: np.ndarray, sr: int):
    from tracklens import features

    y = np.asarray(y, dtype=np.float32)
    if sr != _RECIPE["sr"]:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=_RECIPE["sr"])
    return features.analyze(y, sr=_RECIPE["sr"])


def estimate_columns(analysis) -> dict[str, float]:
    """``{"<descriptor>_est": value}`` for the shipped descriptors, for a batch feature table."""
    return {f"{name}_est": result.value for name, result in estimate(analysis=analysis).items()}


def feature_extras():
    """The shipped estimates as extra track columns of ``tracklens features`` output
    (``features.TrackExtras``: ``acousticness_est``, ``energy_est``), keyed in the cache by the
    estimator's SHA-256. Raises TracklensError when the shipped estimator cannot be read."""
    from tracklens import features

    estimator = load_estimator()
    return features.TrackExtras(columns=tuple(f"{name}_est" for name in estimator.descriptors),
                                compute=estimate_columns,
                                tag=f"descriptors {estimator.card['estimator_sha256']}")


def predict_exported(model: dict, features: np.ndarray) -> np.ndarray:
    """One descriptor model in its JSON form (as ``estimator.json`` stores it) on feature rows,
    computed as the shipped estimator computes it (the recipe checks its export with this)."""
    return _forward(_as_arrays(model), features)
