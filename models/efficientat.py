"""EfficientAT ``mn04_as`` (Schmid, Koutini & Widmer, 2023) re-implemented in Keras 3, with its weights.

EfficientAT (``fschmid56/EfficientAT``, MIT) publishes PyTorch MobileNetV3 audio taggers trained on
AudioSet by knowledge distillation from PaSST transformers. tracklens does not depend on torch:

- :func:`build_mn04` rebuilds the ``mn04_as`` network (MobileNetV3-Large, width 0.4) in Keras;
  every layer that holds weights is named after its PyTorch module path (``features.4.block.2.
  conc_se_layers.0.fc1``), so :func:`assign_state_dict` maps the state dict strictly by name;
- ``models/pretrained/convert_efficientat.py`` (``make efficientat-weights``) reads the ``.pt``
  file without torch and writes the Keras weights shipped beside it, with ``efficientat.json``
  (source SHA-256, class names, front-end constants) and the licence notice;
- :func:`log_mel` reproduces the original front end (``models/preprocess.py``, eval mode) in
  NumPy, and :func:`embed` turns a clip into 10 s windows of 527 AudioSet logits and the pooled
  384-d embedding, plus their track means.
- :meth:`EfficientATEmbedder.embed_layers` adds, from the same forward pass, the feature maps
  of the blocks in :data:`LAYER_TAPS` pooled over time (mean and standard deviation per
  frequency band and channel); :func:`layer_statistics` pools them over frequency too
  (docs/genre-layers.md measures what they add to genre heads and to similarity);
- :func:`embedding_task` runs :func:`embed` on a catalogue through the batch runner
  (``tracklens features SRC --out OUT.parquet --embeddings efficientat``, cached like the
  features), writing ``OUT-stem.mn04_as.parquet``: one row per track, then one per 10 s window
  (windows as :func:`cut_windows` cuts them), columns ``track_id, path, label, checksum`` (as in
  the feature table, so the tables join on ``track_id, segment``), ``segment`` (-1 the track,
  0.. its windows), ``start_s``, ``end_s`` (seconds), ``emb_000`` … ``emb_383`` (the pooled
  embedding) and ``logit_000`` … ``logit_526`` (AudioSet logits, :func:`class_names` order;
  apply a sigmoid for likelihoods), all float32. The track row holds the mean over its windows
  of both (a mean of logits, not of likelihoods).

Architecture (upstream ``models/mn/model.py``, ``block_types.py`` and ``utils.py``, read at
138342a and bae1dd1; ``models/preprocess.py`` at dea76ee):
log-mel (128 bands, frames) -> conv 3x3/2 (8, BN, hard-swish) -> 15 inverted-residual blocks
(the MobileNetV3-Large table, channels scaled by 0.4 and rounded to multiples of 8; squeeze-
excitation over channels in the blocks the table marks) -> conv 1x1 (384, BN, hard-swish) ->
global average pool = the 384-d *embedding* (what the original returns as ``features``) ->
dense 512 hard-swish -> dropout 0.2 -> dense 527 = the *logits* (multi-label: apply a sigmoid).
993,439 weights (BN running statistics included; the state dict's 46 ``num_batches_tracked``
counters are not weights).

Importing this module is cheap; Keras/TensorFlow load inside the functions that need them.
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

from tracklens import batch, config
from tracklens.errors import TracklensError
from tracklens.fileio import verified_file

DEFAULT_MODEL = "mn04_as"
PRETRAINED_DIR = config.MODELS_DIR / "pretrained"
MANIFEST_PATH = PRETRAINED_DIR / "efficientat.json"

# Front end: upstream models/preprocess.py (AugmentMelSTFT in eval mode) with the arguments of
# inference.py / windowed_inference.py (sample_rate 32000, window_size 800, hop_size 320, n_mels 128).
SAMPLE_RATE = 32_000
N_FFT = 1024  # AugmentMelSTFT default n_fft
WIN_LENGTH = 800  # torch.hann_window(800, periodic=False), zero-padded to N_FFT, centred
HOP_LENGTH = 320
N_MELS = 128
PREEMPHASIS = 0.97  # conv1d with kernel [-0.97, 1]: y[n] = x[n+1] - 0.97 x[n] (one sample shorter)
FMIN = 0.0
FMAX = 15_000.0  # fmax=None -> sr // 2 - fmax_aug_range // 2 = 16000 - 2000 // 2
LOG_OFFSET = 1e-5  # (melspec + 0.00001).log()
NORM_SHIFT, NORM_SCALE = 4.5, 5.0  # (melspec + 4.5) / 5.  "fast normalization"
FRONTEND = {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "win_length": WIN_LENGTH,
            "hop_length": HOP_LENGTH, "n_mels": N_MELS, "preemphasis": PREEMPHASIS, "fmin": FMIN,
            "fmax": FMAX, "log_offset": LOG_OFFSET, "norm_shift": NORM_SHIFT, "norm_scale": NORM_SCALE}

# AudioSet clips are 10 s and the model was trained on 1000-frame inputs (get_model's input_dim_t).
WINDOW_S = 10.0
# torch.stft's reflect padding needs more than n_fft // 2 samples after pre-emphasis (one fewer)
MIN_SAMPLES = N_FFT // 2 + 2

# Network: get_model(width_mult=0.4) defaults: strides (2, 2, 2, 2), head "mlp", se_dims "c",
# se_agg "max", se_r 4; BatchNorm2d(eps=0.001); dropout 0.2; 527 classes.
WIDTH_MULT = 0.4
N_CLASSES = 527
EMBEDDING_SIZE = 384  # 6 x the last block's 64 channels
BN_EPSILON = 1e-3
SE_REDUCTION = 4
DROPOUT = 0.2


class Bneck(NamedTuple):
    """One inverted-residual block: MobileNetV3-Large Table 1 (before the width multiplier)."""

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    squeeze_excite: bool
    hard_swish: bool  # else ReLU
    stride: int


MOBILENET_V3_LARGE = (
    Bneck(16, 3, 16, 16, False, False, 1), Bneck(16, 3, 64, 24, False, False, 2),
    Bneck(24, 3, 72, 24, False, False, 1), Bneck(24, 5, 72, 40, True, False, 2),
    Bneck(40, 5, 120, 40, True, False, 1), Bneck(40, 5, 120, 40, True, False, 1),
    Bneck(40, 3, 240, 80, False, True, 2), Bneck(80, 3, 200, 80, False, True, 1),
    Bneck(80, 3, 184, 80, False, True, 1), Bneck(80, 3, 184, 80, False, True, 1),
    Bneck(80, 3, 480, 112, True, True, 1), Bneck(112, 3, 672, 112, True, True, 1),
    Bneck(112, 5, 672, 160, True, True, 2), Bneck(160, 5, 960, 160, True, True, 1),
    Bneck(160, 5, 960, 160, True, True, 1),
)

# Keras weight order per layer type, by state-dict parameter name.
STATE_DICT_PARAMS = {
    "Conv2D": ("weight",),
    "DepthwiseConv2D": ("weight",),
    "BatchNormalization": ("weight", "bias", "running_mean", "running_var"),
    "Dense": ("weight", "bias"),
}
# PyTorch layout -> Keras layout: conv (out, in, kh, kw) -> (kh, kw, in, out); depthwise
# (ch, 1, kh, kw) -> (kh, kw, ch, 1); linear (out, in) -> (in, out).
KERAS_AXES = {"Conv2D": (2, 3, 1, 0), "DepthwiseConv2D": (2, 3, 0, 1), "Dense": (1, 0)}


#: Intermediate feature maps :meth:`EfficientATEmbedder.embed_layers` returns, by name: the layer
#: whose output is taken; shape (freq bands, channels) of mn04_as (time frames at a 10 s window).
LAYER_TAPS = {
    "block03": "features.3.residual",  # (32, 16), 250 frames: low-level spectro-temporal patterns
    "block06": "features.6.residual",  # (16, 16), 125 frames
    "block10": "features.10.residual",  # (8, 32), 63 frames
    "block12": "features.12.residual",  # (8, 48), 63 frames
    "block12_expanded": "features.12.block.1.2",  # (8, 272): block 12's depthwise output (hard-swish)
    "block15": "features.15.residual",  # (4, 64), 32 frames: the last block
    "final_conv": "features.16.2",  # (4, 384): averaged over frequency and time it is the embedding
}


class EfficientATError(TracklensError):
    """Missing, corrupt or mismatched EfficientAT weights, or audio the model cannot take."""


# ----------------------------------------------------------------------------- front end
@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """Kaldi-style mel filter bank (128, 513), as ``torchaudio.compliance.kaldi.get_mel_banks``.

    Triangles spaced evenly on Kaldi's mel scale ``1127 ln(1 + f / 700)`` between FMIN and FMAX,
    evaluated at the mel value of each FFT bin ``k * sr / n_fft`` (k < n_fft / 2), no area
    normalisation; the Nyquist column is zero (the original pads the 512 columns with one).
    Computed in float32 with the same operations, as torch does with its default dtype.
    """
    f32 = np.float32
    mel_low, mel_high = (1127.0 * np.log(1.0 + f / 700.0) for f in (FMIN, FMAX))  # float64 scalars
    delta = f32((mel_high - mel_low) / (N_MELS + 1))
    band = np.arange(N_MELS, dtype=f32)[:, None]
    left, centre, right = (f32(mel_low) + (band + f32(i)) * delta for i in (0, 1, 2))
    bin_mel = f32(1127.0) * np.log(f32(1.0) + (f32(SAMPLE_RATE / N_FFT) * np.arange(N_FFT // 2, dtype=f32)) / f32(700.0))
    up = (bin_mel - left) / (centre - left)
    down = (right - bin_mel) / (right - centre)
    bank = np.maximum(f32(0.0), np.minimum(up, down))
    return np.pad(bank, ((0, 0), (0, 1))).astype(f32)


@functools.lru_cache(maxsize=1)
def _stft_window() -> np.ndarray:
    """Symmetric Hann window of WIN_LENGTH samples, zero-padded to N_FFT, centred (torch.stft)."""
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(np.hanning(WIN_LENGTH), (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


def log_mel(y: np.ndarray, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The model's input: normalised log-mel spectrogram of mono audio, (128, frames) float32.

    Pre-emphasis, ``torch.stft`` (centre, reflect padding, 800-sample Hann window in a 1024-point
    FFT, hop 320), power, Kaldi mel bank (:func:`mel_filterbank`), ``log(x + 1e-5)``,
    ``(x + 4.5) / 5``. ``frames = 1 + (len(y) - 1) // 320``: 1000 for 10 s at 32 kHz.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], mono audio
    sr : sample rate of ``y`` in Hz; resampled to 32 kHz (soxr_hq, as ``librosa.load``) when different
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise EfficientATError(f"EfficientAT needs mono audio, got shape {y.shape}")
    y = _at_model_rate(y, sr)
    if y.size < MIN_SAMPLES:
        raise EfficientATError(f"EfficientAT needs at least {MIN_SAMPLES} samples at 32 kHz "
                               f"({MIN_SAMPLES / SAMPLE_RATE * 1000:.0f} ms), got {y.size}")
    emphasised = y[1:] - np.float32(PREEMPHASIS) * y[:-1]
    padded = np.pad(emphasised, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    spectrum = np.fft.rfft(frames * _stft_window(), axis=-1)
    power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
    mel = mel_filterbank() @ power.T
    return ((np.log(mel + np.float32(LOG_OFFSET)) + np.float32(NORM_SHIFT)) / np.float32(NORM_SCALE)).astype(np.float32)


def _at_model_rate(y: np.ndarray, sr: int) -> np.ndarray:
    """``y`` at 32 kHz (soxr_hq, as ``librosa.load`` and ``audio.load_audio`` resample)."""
    if sr == SAMPLE_RATE:
        return y
    import librosa

    return librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")


def cut_windows(y: np.ndarray, *, window_s: float = WINDOW_S, hop_s: float | None = None):
    """The analysis windows of a 32 kHz track: ``(starts, windows)``, sample offsets (n,) and
    the audio (n, samples).

    Windows of ``window_s`` start every ``hop_s`` (default ``window_s``: no overlap). What is
    left after the last one gets one more window, aligned with the track's end, when it is at
    least half a hop long (5 s by default); a shorter tail is left out. Upstream
    ``windowed_inference.py`` zero-pads the last window instead: a 30.02 s GTZAN clip would get
    a 4th window of 0.02 s audio and 9.98 s silence. A track shorter than one window is one
    window of its own length (the network pools over time, so any length works).

    Measured on 17 GTZAN 30 s clips against upstream ``inference.py`` (the whole clip in one
    pass): cosine of the track-mean embedding 0.988 (min 0.951) and 4.5 of the top-5 classes
    shared, vs 0.984 / 4.5 with an end-aligned 4th window and 0.923 / 4.0 zero-padded.
    """
    size = int(round(window_s * SAMPLE_RATE))
    hop = size if hop_s is None else int(round(hop_s * SAMPLE_RATE))
    if size <= 0 or hop <= 0:
        raise EfficientATError(f"window_s={window_s} and hop_s={hop_s} must be positive")
    if len(y) <= size:
        return np.zeros(1, dtype=np.int64), np.asarray(y)[None, :]
    starts = np.arange(0, len(y) - size + 1, hop, dtype=np.int64)
    if len(y) - (starts[-1] + size) >= hop / 2:
        starts = np.append(starts, len(y) - size)
    return starts, np.stack([y[s:s + size] for s in starts])


# ----------------------------------------------------------------------------- model
def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never more
    than 10 % down: how MobileNet (and upstream ``models/mn/utils.py``) scales channel counts."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def block_settings(width_mult: float = WIDTH_MULT) -> list[Bneck]:
    """MOBILENET_V3_LARGE with every channel count scaled by ``width_mult`` (make_divisible)."""
    return [b._replace(in_channels=make_divisible(b.in_channels * width_mult),
                       expanded=make_divisible(b.expanded * width_mult),
                       out_channels=make_divisible(b.out_channels * width_mult))
            for b in MOBILENET_V3_LARGE]


def build_mn04(n_frames: int | None = None, *, width_mult: float = WIDTH_MULT, n_classes: int = N_CLASSES,
               name: str = DEFAULT_MODEL):
    """EfficientAT's MobileNetV3 audio tagger (``mn04_as`` at the defaults).

    Layers holding weights are named after the PyTorch module paths: ``features.<i>.<0|1>``
    (conv, batch norm) for the stem (i = 0) and the last conv (i = 16), ``features.<i>.block.<j>.
    <0|1>`` inside the inverted-residual blocks (j counts expand, depthwise, squeeze-excitation,
    project as present), ``....conc_se_layers.0.fc1/fc2`` for squeeze-excitation and
    ``classifier.2`` / ``classifier.5`` for the head. Layout is channels-last: (freq, time, ch).

    Parameters
    ----------
    n_frames : frames of the log-mel input (None: any length; the network pools over time)
    width_mult : channel multiplier of MobileNetV3-Large (0.4 for mn04)
    n_classes : logits (527 AudioSet classes)

    Returns
    -------
    keras.Model taking (batch, 128, frames) log-mel and returning ``{"logits": (batch,
    n_classes), "embedding": (batch, 6 x last block channels)}``
    """
    import keras
    from keras import layers

    def conv_bn(x, filters, kernel, stride, path, activation, *, depthwise=False):
        if stride > 1:  # torch pads (k-1)/2 on both sides; Keras "same" would pad only after
            x = layers.ZeroPadding2D((kernel - 1) // 2, name=f"{path}.pad")(x)
        padding = "same" if stride == 1 else "valid"
        conv = (layers.DepthwiseConv2D(kernel, stride, padding, use_bias=False, name=f"{path}.0") if depthwise
                else layers.Conv2D(filters, kernel, stride, padding, use_bias=False, name=f"{path}.0"))
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{path}.1")(conv(x))
        return x if activation is None else layers.Activation(activation, name=f"{path}.2")(x)

    def squeeze_excite(x, path):
        # se_dims "c": one SE branch over channels, so the "max" fusion of branches is the identity
        channels = x.shape[-1]
        scale = layers.GlobalAveragePooling2D(keepdims=True, name=f"{path}.pool")(x)  # over freq and time
        scale = layers.Dense(make_divisible(channels // SE_REDUCTION), activation="relu", name=f"{path}.fc1")(scale)
        scale = layers.Dense(channels, activation="sigmoid", name=f"{path}.fc2")(scale)
        return layers.Multiply(name=f"{path}.scale")([x, scale])

    def inverted_residual(x, b: Bneck, index):
        activation = "hard_swish" if b.hard_swish else "relu"
        part = (f"features.{index}.block.{j}" for j in itertools.count())  # torch numbers what is present
        h = x
        if b.expanded != b.in_channels:
            h = conv_bn(h, b.expanded, 1, 1, next(part), activation)
        h = conv_bn(h, b.expanded, b.kernel, b.stride, next(part), activation, depthwise=True)
        if b.squeeze_excite:
            h = squeeze_excite(h, f"{next(part)}.conc_se_layers.0")
        h = conv_bn(h, b.out_channels, 1, 1, next(part), None)
        if b.stride == 1 and b.in_channels == b.out_channels:
            h = layers.Add(name=f"features.{index}.residual")([h, x])
        return h

    blocks = block_settings(width_mult)
    inputs = keras.Input(shape=(N_MELS, n_frames), name="log_mel")
    x = layers.Reshape((N_MELS, -1, 1), name="add_channel")(inputs)
    x = conv_bn(x, blocks[0].in_channels, 3, 2, "features.0", "hard_swish")
    for index, b in enumerate(blocks, start=1):
        x = inverted_residual(x, b, index)
    x = conv_bn(x, 6 * blocks[-1].out_channels, 1, 1, f"features.{len(blocks) + 1}", "hard_swish")
    embedding = layers.GlobalAveragePooling2D(name="classifier.0")(x)
    # classifier.3 (Hardswish) is folded into classifier.2's activation
    hidden = layers.Dense(make_divisible(1280 * width_mult), activation="hard_swish", name="classifier.2")(embedding)
    hidden = layers.Dropout(DROPOUT, name="classifier.4")(hidden)
    logits = layers.Dense(n_classes, name="classifier.5")(hidden)
    return keras.Model(inputs, {"logits": logits, "embedding": embedding}, name=name)


def assign_state_dict(model, tensors: Mapping[str, np.ndarray]) -> None:
    """Set every weight of ``model`` from a PyTorch state dict; fail on any mismatch.

    Each tensor ``<module path>.<param>`` goes to the layer named ``<module path>`` (converted
    to the Keras layout); ``num_batches_tracked`` counters are skipped. Raises EfficientATError
    naming every tensor left unused, every layer weight left unset and every shape that does
    not fit: a partial load gives plausible-looking garbage.
    """
    unused = {k for k in tensors if not k.endswith(".num_batches_tracked")}
    problems: list[str] = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in STATE_DICT_PARAMS:
            continue
        values = []
        for param, weight in zip(STATE_DICT_PARAMS[kind], layer.weights, strict=True):
            key = f"{layer.name}.{param}"
            if key not in tensors:
                problems.append(f"state dict lacks {key}")
                continue
            unused.discard(key)
            value = np.asarray(tensors[key], dtype=np.float32)
            if kind in KERAS_AXES and value.ndim == len(KERAS_AXES[kind]):
                value = value.transpose(KERAS_AXES[kind])
            if value.shape != tuple(weight.shape):
                problems.append(f"{key}: shape {np.shape(tensors[key])} does not fit layer {layer.name} "
                                f"{tuple(weight.shape)} ({kind})")
                continue
            values.append(value)
        if len(values) == len(layer.weights):
            layer.set_weights(values)
    problems += [f"state dict tensor {key} has no place in the model" for key in sorted(unused)]
    if problems:
        raise EfficientATError("EfficientAT weights do not fit the model: " + "; ".join(problems))


# ----------------------------------------------------------------------------- shipped weights
def read_manifest(weights_dir: str | Path = PRETRAINED_DIR) -> dict:
    """``efficientat.json``: per converted model its weights file, SHA-256s, source, classes, licence."""
    path = Path(weights_dir) / MANIFEST_PATH.name
    if not path.is_file():
        raise EfficientATError(f"{path}: missing; run `make efficientat-weights`")
    return json.loads(path.read_text())


def class_names(name: str = DEFAULT_MODEL) -> tuple[str, ...]:
    """The 527 AudioSet display names in the model's output order (from the shipped manifest)."""
    return tuple(_manifest_entry(name, PRETRAINED_DIR)["classes"])


def _manifest_entry(name: str, weights_dir: Path) -> dict:
    manifest = read_manifest(weights_dir)
    if name not in manifest:
        raise EfficientATError(f"{Path(weights_dir) / MANIFEST_PATH.name}: no entry for {name!r} "
                               f"(have {sorted(manifest)}); run `make efficientat-weights`")
    return manifest[name]


def load_pretrained(name: str = DEFAULT_MODEL, *, weights_dir: str | Path = PRETRAINED_DIR,
                    n_frames: int | None = None):
    """Build ``mn04_as`` and load the shipped weights after verifying their SHA-256.

    Raises EfficientATError when the weights file is missing, not listed in ``efficientat.json``
    or its checksum differs (a corrupted or swapped file).
    """
    weights_dir = Path(weights_dir)
    entry = _manifest_entry(name, weights_dir)
    path = verified_file(weights_dir / entry["weights"], entry["weights_sha256"],
                         remedy="run `make efficientat-weights`", error=EfficientATError)
    model = build_mn04(n_frames, n_classes=len(entry["classes"]), name=name)
    model.load_weights(path)
    return model


# ----------------------------------------------------------------------------- embeddings
class EfficientATEmbedder:
    """A loaded ``mn04_as``, built once and reused: ``embed`` one clip after another.

    Parameters
    ----------
    name : model name in ``efficientat.json``
    batch_size : windows per forward pass
    """

    def __init__(self, name: str = DEFAULT_MODEL, *, batch_size: int = 8):
        import tensorflow as tf

        self.name = name
        self.batch_size = batch_size
        self.model = load_pretrained(name)
        self.class_names = class_names(name)
        # One traced graph for any batch and window length, instead of Keras' per-call overhead.
        spec = tf.TensorSpec((None, N_MELS, None), tf.float32)
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])
        self._tapped = None  # :meth:`embed_layers`' forward pass, built on first use

    def embed(self, y: np.ndarray | None = None, *, sr: int | None = None, clip=None,
              window_s: float = WINDOW_S, hop_s: float | None = None) -> dict:
        """AudioSet logits and embeddings of one clip, per window (see :func:`cut_windows`).

        Pass either ``clip`` (an :class:`audio.AudioClip`) or ``y`` and ``sr``. Each window gets
        its own front end (centre padding included), as upstream ``windowed_inference.py`` does.

        Returns
        -------
        dict with ``logits`` (n_windows, 527), ``taggram`` (n_windows, 527) sigmoid class
        likelihoods, ``embedding`` (n_windows, 384), ``mean`` (384,) and ``tags`` (527,) track
        means of the embeddings and the taggram, ``tag_names``, ``starts_s`` (n_windows,)
        window starts in seconds.
        """
        starts, specs = self._window_specs(y, sr, clip, window_s, hop_s)
        return {**self.embed_log_mel(specs), "starts_s": starts / SAMPLE_RATE}

    def embed_layers(self, y: np.ndarray | None = None, *, sr: int | None = None, clip=None,
                     window_s: float = WINDOW_S, hop_s: float | None = None) -> dict:
        """:meth:`embed`, plus the intermediate feature maps of the same forward pass.

        Returns
        -------
        :meth:`embed`'s dict (the same values) and ``layers``: for each name of
        :data:`LAYER_TAPS`, ``{"mean": (n_windows, bands, channels), "std": (n_windows, bands,
        channels)}``, the block's output pooled over time per frequency band and channel
        (population standard deviation), float32. :func:`layer_statistics` pools them further.
        """
        starts, specs = self._window_specs(y, sr, clip, window_s, hop_s)
        forward = self._tapped_forward()
        parts: dict[str, list] = {}
        for first in range(0, len(specs), self.batch_size):
            for key, value in forward(specs[first:first + self.batch_size]).items():
                parts.setdefault(key, []).append(np.asarray(value, dtype=np.float32))
        joined = {key: np.concatenate(value) for key, value in parts.items()}
        result = self._summary(joined.pop("logits"), joined.pop("embedding"))
        layers = {tap: {"mean": joined[f"{tap}/mean"], "std": joined[f"{tap}/std"]} for tap in LAYER_TAPS}
        return {**result, "layers": layers, "starts_s": starts / SAMPLE_RATE}

    def _window_specs(self, y, sr, clip, window_s, hop_s) -> tuple[np.ndarray, np.ndarray]:
        """Window starts (samples at 32 kHz) and their log-mel spectrograms (n, 128, frames)."""
        if clip is not None:
            y, sr = clip.y, clip.sr
        if y is None or sr is None:
            raise EfficientATError("embed needs a clip, or y and sr")
        starts, windows = cut_windows(_at_model_rate(np.asarray(y, dtype=np.float32), sr),
                                      window_s=window_s, hop_s=hop_s)
        return starts, np.stack([log_mel(w) for w in windows])

    def _tapped_forward(self):
        """The network with :data:`LAYER_TAPS` as extra outputs, pooled over time inside the graph
        (built on first use: the default forward pass stays exactly as it was)."""
        if self._tapped is None:
            import keras
            import tensorflow as tf

            outputs = {"logits": self.model.get_layer("classifier.5").output,
                       "embedding": self.model.get_layer("classifier.0").output}
            outputs.update({tap: self.model.get_layer(layer).output for tap, layer in LAYER_TAPS.items()})
            tapped = keras.Model(self.model.inputs, outputs, name=f"{self.name}_layers")

            def forward(x):
                out = tapped(x, training=False)
                pooled = {"logits": out["logits"], "embedding": out["embedding"]}
                for tap in LAYER_TAPS:  # (batch, bands, frames, channels): pool over frames
                    pooled[f"{tap}/mean"] = tf.reduce_mean(out[tap], axis=2)
                    pooled[f"{tap}/std"] = tf.math.reduce_std(out[tap], axis=2)
                return pooled

            self._tapped = tf.function(forward, input_signature=[tf.TensorSpec((None, N_MELS, None), tf.float32)])
        return self._tapped

    def embed_log_mel(self, specs: np.ndarray) -> dict:
        """:meth:`embed` on log-mel windows already computed, (n_windows, 128, frames)."""
        outputs = {"logits": [], "embedding": []}
        for first in range(0, len(specs), self.batch_size):
            out = self._forward(specs[first:first + self.batch_size])
            for key in outputs:
                outputs[key].append(np.asarray(out[key], dtype=np.float32))
        return self._summary(*(np.concatenate(outputs[key]) for key in outputs))

    def _summary(self, logits: np.ndarray, embedding: np.ndarray) -> dict:
        import scipy.special

        taggram = scipy.special.expit(logits).astype(np.float32)
        return {"logits": logits, "taggram": taggram, "embedding": embedding,
                "mean": embedding.mean(axis=0), "tags": taggram.mean(axis=0), "tag_names": self.class_names}


@functools.lru_cache(maxsize=2)
def get_embedder(name: str = DEFAULT_MODEL) -> EfficientATEmbedder:
    """The process-wide :class:`EfficientATEmbedder` for ``name`` (built on first use)."""
    return EfficientATEmbedder(name)


def embed(y: np.ndarray | None = None, *, sr: int | None = None, clip=None, name: str = DEFAULT_MODEL,
          window_s: float = WINDOW_S, hop_s: float | None = None) -> dict:
    """EfficientAT logits and embeddings of one clip with a cached model; see :meth:`EfficientATEmbedder.embed`."""
    return get_embedder(name).embed(y, sr=sr, clip=clip, window_s=window_s, hop_s=hop_s)


def layer_statistics(layers: Mapping[str, Mapping[str, np.ndarray]], taps: tuple[str, ...] | None = None) -> np.ndarray:
    """Channel mean and standard deviation over frequency *and* time of each tap, from
    :meth:`EfficientATEmbedder.embed_layers`' per-band time statistics: (n_windows, 2 x channels
    summed over ``taps``), per tap its channel means then its channel deviations.

    The per-band statistics combine exactly: the mean over bands of the band means, and the
    variance over bands and frames = mean over bands of (band variance + band mean^2) - mean^2
    (every band has the same number of frames).
    """
    parts = []
    for tap in taps or tuple(LAYER_TAPS):
        mean, std = np.asarray(layers[tap]["mean"], np.float64), np.asarray(layers[tap]["std"], np.float64)
        overall = mean.mean(axis=1)
        variance = (std ** 2 + mean ** 2).mean(axis=1) - overall ** 2
        parts += [overall, np.sqrt(np.maximum(variance, 0.0))]
    return np.concatenate(parts, axis=1).astype(np.float32)


def top_tags(tags: np.ndarray, *, name: str = DEFAULT_MODEL, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely AudioSet classes as ``[(class, likelihood), ...]``, best first."""
    order = np.argsort(-np.asarray(tags))[:k]
    names = class_names(name)
    return [(names[i], float(tags[i])) for i in order]


# ----------------------------------------------------------------------------- batches
EMBEDDING_VERSION = 1  # bump when the table rows of the same file and weights would change
EMBEDDING_COLUMNS = tuple(f"emb_{i:03d}" for i in range(EMBEDDING_SIZE))
LOGIT_COLUMNS = tuple(f"logit_{i:03d}" for i in range(N_CLASSES))


def embed_file(path: str, params: dict) -> batch.FileResult:
    """The per-file function of :func:`embedding_task`: the track row then one row per window."""
    from tracklens.audio import load_audio

    clip = load_audio(path, sr=SAMPLE_RATE, max_duration=params["max_duration"])
    result = get_embedder(params["model"]).embed(clip=clip)
    starts = np.asarray(result["starts_s"], dtype=float)
    ends = np.minimum(starts + WINDOW_S, clip.duration_s)  # a track shorter than a window is one window
    return batch.window_result(starts, ends, embedding=result["embedding"], logits=result["logits"])


def embedding_task(name: str = DEFAULT_MODEL, *, max_duration: float = config.FEATURE_MAX_DURATION_S) -> batch.Task:
    """EfficientAT embeddings and logits as a :class:`batch.Task` (the table: module docstring);
    cached per file by its checksum, the weights' SHA-256, EMBEDDING_VERSION and ``max_duration``."""
    params = {"model": name, "weights_sha256": _manifest_entry(name, PRETRAINED_DIR)["weights_sha256"],
              "max_duration": float(max_duration)}
    return batch.Task(name=name, run_file=embed_file, params=params, version=EMBEDDING_VERSION,
                      columns=(*batch.ID_COLUMNS, "segment", "start_s", "end_s", *EMBEDDING_COLUMNS, *LOGIT_COLUMNS),
                      dtypes={"segment": "int64"}, blocks={"embedding": EMBEDDING_COLUMNS, "logits": LOGIT_COLUMNS})
