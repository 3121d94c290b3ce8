"""Keras model builders: ``build_x(input_shape, n_classes, *, ...) -> keras.Model``.

Pure functions in the style of the keras-io audio examples: named layers, no ``compile``/``fit``
(training lives in :mod:`models.train`; :mod:`models.registry` says which builder each model
uses). Every model ends in a softmax layer named ``genre`` and takes its input exactly as the
feature engine stores it, so a saved ``.keras`` file is self-contained:

- ``cnn``       log-mel patches ``(n_mels, frames)``, e.g. ``(128, 130)`` for 3 s
- ``lstm``      frame sequences ``(n_features, frames)`` (MFCC + spectral features per frame)
- ``lstm_cnn``  the same sequences; a Conv1D front-end and an LSTM back-end
- ``linear``    the 57 summary features ``(57,)`` (softmax regression)
- ``mlp``       the 57 summary features ``(57,)``

``norm=(mean, variance)`` bakes the training statistics into a ``Normalization`` layer (per
feature for summaries, per band/feature for frame inputs), so callers pass raw features.
Regularisation as the design asks: GaussianNoise on the input, Dropout before the classifier,
L2 kernel regularizers everywhere and a small L1 activity regularizer on hidden dense layers.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers, regularizers


def _normalized_input(input_shape, norm, *, axis: int | None):
    """Input plus an optional fixed Normalization (statistics from the training fold)."""
    inputs = keras.Input(shape=tuple(input_shape), name="features")
    if norm is None:
        return inputs, inputs
    mean, variance = (np.asarray(v, dtype="float32") for v in norm)
    x = layers.Normalization(axis=axis, mean=mean, variance=np.maximum(variance, 1e-8), name="normalize")(inputs)
    return inputs, x


def _time_major_input(input_shape, norm, *, noise: float):
    """(n_features, frames) input, normalised per feature, transposed to (frames, n_features), noised."""
    inputs, x = _normalized_input(input_shape, norm, axis=1)
    x = layers.Permute((2, 1), name="time_major")(x)
    return inputs, layers.GaussianNoise(noise, name="noise")(x)


def _classifier(x, n_classes: int, *, dropout: float, l2: float):
    x = layers.Dropout(dropout, name="dropout_out")(x)
    return layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizers.L2(l2), name="genre")(x)


def build_cnn(
    input_shape: Sequence[int],
    n_classes: int,
    *,
    filters: Sequence[int] = (16, 32, 64),
    input_pool: int = 2,
    noise: float = 0.1,
    dropout: float = 0.3,
    l2: float = 1e-4,
    norm=None,
    name: str = "cnn",
) -> keras.Model:
    """2-D CNN on a log-mel patch.

    Parameters
    ----------
    input_shape : (n_mels, frames), e.g. (128, 130) for 3 s at hop 512 / 22 050 Hz
    n_classes : number of genres (softmax outputs)
    filters : channels of each conv block (3x3 conv, batch norm, ReLU, 2x2 max-pool)
    input_pool : max-pool the patch by this factor first (4x less compute on 2 CPU cores)
    noise : std of GaussianNoise on the normalised input (training only)
    dropout, l2 : classifier dropout and L2 weight penalty
    norm : optional (mean, variance), each shape (n_mels,): per-band input statistics
    """
    inputs, x = _normalized_input(input_shape, norm, axis=1)
    x = layers.Reshape((*tuple(input_shape), 1), name="add_channel")(x)
    x = layers.GaussianNoise(noise, name="noise")(x)
    if input_pool > 1:
        x = layers.MaxPooling2D(input_pool, name="pool_in")(x)
    for i, n_filters in enumerate(filters):
        x = layers.Conv2D(n_filters, 3, padding="same", use_bias=False,
                          kernel_regularizer=regularizers.L2(l2), name=f"conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)  # settles within a few small epochs
        x = layers.Activation("relu", name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, _classifier(x, n_classes, dropout=dropout, l2=l2), name=name)


def build_lstm(
    input_shape: Sequence[int],
    n_classes: int,
    *,
    units: Sequence[int] = (64, 32),
    noise: float = 0.1,
    dropout: float = 0.3,
    l2: float = 1e-4,
    norm=None,
    name: str = "lstm",
) -> keras.Model:
    """Stacked LSTM on frame sequences.

    input_shape : (n_features, frames), the feature engine's ``sequence`` layout; the model
    transposes to (frames, n_features) itself. ``norm`` is per feature, shape (n_features,).
    """
    inputs, x = _time_major_input(input_shape, norm, noise=noise)
    for i, n_units in enumerate(units):
        last = i == len(units) - 1
        x = layers.LSTM(n_units, return_sequences=not last, kernel_regularizer=regularizers.L2(l2), name=f"lstm{i}")(x)
    x = layers.Dense(64, activation="relu", kernel_regularizer=regularizers.L2(l2),
                     activity_regularizer=regularizers.L1(1e-5), name="hidden")(x)
    return keras.Model(inputs, _classifier(x, n_classes, dropout=dropout, l2=l2), name=name)


def build_lstm_cnn(
    input_shape: Sequence[int],
    n_classes: int,
    *,
    filters: Sequence[int] = (64, 64),
    units: int = 64,
    noise: float = 0.1,
    dropout: float = 0.3,
    l2: float = 1e-4,
    norm=None,
    name: str = "lstm_cnn",
) -> keras.Model:
    """Conv1D front-end (local timbre patterns, 4x shorter sequence) and an LSTM back-end.

    input_shape : (n_features, frames); ``norm`` per feature, shape (n_features,).
    """
    inputs, x = _time_major_input(input_shape, norm, noise=noise)
    for i, n_filters in enumerate(filters):
        x = layers.Conv1D(n_filters, 5 if i == 0 else 3, padding="same", activation="relu",
                          kernel_regularizer=regularizers.L2(l2), name=f"conv{i}")(x)
        x = layers.MaxPooling1D(2, name=f"pool{i}")(x)
    x = layers.LSTM(units, kernel_regularizer=regularizers.L2(l2), name="lstm")(x)
    return keras.Model(inputs, _classifier(x, n_classes, dropout=dropout, l2=l2), name=name)


def build_linear(
    input_shape: Sequence[int],
    n_classes: int,
    *,
    noise: float = 0.05,
    l2: float = 1e-3,
    norm=None,
    name: str = "linear",
) -> keras.Model:
    """Softmax regression on summary features (input noise + L2 as its only regularisers)."""
    inputs, x = _normalized_input(input_shape, norm, axis=-1)
    x = layers.GaussianNoise(noise, name="noise")(x)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizers.L2(l2), name="genre")(x)
    return keras.Model(inputs, outputs, name=name)


def build_mlp(
    input_shape: Sequence[int],
    n_classes: int,
    *,
    hidden: Sequence[int] = (128, 64),
    noise: float = 0.1,
    dropout: float = 0.4,
    l2: float = 1e-3,
    norm=None,
    name: str = "mlp",
) -> keras.Model:
    """Multi-layer perceptron on summary features."""
    inputs, x = _normalized_input(input_shape, norm, axis=-1)
    x = layers.GaussianNoise(noise, name="noise")(x)
    for i, width in enumerate(hidden):
        x = layers.Dense(width, activation="relu", kernel_regularizer=regularizers.L2(l2),
                         activity_regularizer=regularizers.L1(1e-5), name=f"dense{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=regularizers.L2(l2), name="genre")(x)
    return keras.Model(inputs, outputs, name=name)
