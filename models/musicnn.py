"""musicnn (Pons & Serra, 2019) re-implemented in Keras 3, with its pretrained weights.

The musicnn package (PyPI 0.1.0, ISC licence) ships TensorFlow-1 checkpoints but needs TF1 graph
mode and NumPy < 1.17, so tracklens does not depend on it. Instead:

- :func:`build_musicnn` rebuilds the architecture (``MSD_musicnn`` / ``MTT_musicnn``) in Keras;
- :func:`convert_checkpoint` reads a checkpoint's variables by name and writes a Keras weights
  file (``make musicnn-weights``; shipped in ``models/pretrained/`` with the licence notice and
  the source checkpoint's SHA-256);
- :func:`load_pretrained` builds the model and loads the shipped weights after checking their
  SHA-256, so running tracklens needs no musicnn install;
- :func:`log_mel` / :func:`patches` reproduce the original preprocessing, and :func:`embed`
  turns a clip into per-patch 200-d embeddings and a 50-tag taggram.

Architecture (from the package's ``models.py`` and the paper): log-mel (frames, 96) -> batch
norm -> front-end of vertical "timbral" convolutions (7x38, 7x67; 204 filters each) and
horizontal "temporal" convolutions (128x1, 64x1, 32x1; 51 filters each), each max-pooled over
frequency -> 561 features per frame -> mid-end of three 7-frame 1-D convolutions (64 filters,
residual) -> dense concatenation (753 per frame) -> back-end: max and mean over time,
interleaved (1506) -> batch norm -> dense 200 ReLU -> batch norm (the *penultimate* embedding)
-> dense 50 -> sigmoid (the taggram). Dropout (0.5) sits before both dense layers.

Importing this module is cheap; Keras/TensorFlow load inside the functions that need them.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from tracklens import batch, config
from tracklens.errors import TracklensError
from tracklens.fileio import atomic_path, atomic_write_bytes, file_checksum, read_csv, verified_file

# Signal processing of the original (musicnn/configuration.py and the checkpoints' config.json).
MUSICNN_SR = 16_000
MUSICNN_N_FFT = 512
MUSICNN_HOP = 256
MUSICNN_N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
PATCH_S = PATCH_FRAMES * MUSICNN_HOP / MUSICNN_SR  # 2.992 s of audio per patch
EMBEDDING_SIZE = 200

PRETRAINED_DIR = config.MODELS_DIR / "pretrained"
MANIFEST_PATH = PRETRAINED_DIR / "musicnn.json"
DEFAULT_MUSICNN = "MSD_musicnn"
# Where `make musicnn-weights` unpacks the pinned wheel (a cache; never needed at run time).
ORIGINAL_PACKAGE_RELPATH = Path("musicnn-0.1.0") / "musicnn"  # below config.INTERIM_DATA_DIR, read when used
ORIGINAL_SOURCE = ("musicnn==0.1.0 from PyPI, musicnn-0.1.0-py3-none-any.whl sha256 "
                   "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa")

MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)
TAGS = {"MSD_musicnn": MSD_TAGS, "MTT_musicnn": MTT_TAGS}

# Checkpoint variable scope -> (Keras layer, how the kernel is reshaped). tf.compat.v1.layers
# numbered the layers in creation order: input BN, f74, f77, s128, s64, s32, mid-end x3, back-end.
CHECKPOINT_LAYERS: dict[str, str] = {
    "batch_normalization": "input_bn",
    "conv2d": "timbral_7x38", "batch_normalization_1": "timbral_7x38_bn",
    "conv2d_1": "timbral_7x67", "batch_normalization_2": "timbral_7x67_bn",
    "conv2d_2": "temporal_128", "batch_normalization_3": "temporal_128_bn",
    "conv2d_3": "temporal_64", "batch_normalization_4": "temporal_64_bn",
    "conv2d_4": "temporal_32", "batch_normalization_5": "temporal_32_bn",
    "conv2d_5": "midend1", "batch_normalization_6": "midend1_bn",
    "conv2d_6": "midend2", "batch_normalization_7": "midend2_bn",
    "conv2d_7": "midend3", "batch_normalization_8": "midend3_bn",
    "batch_normalization_9": "pool_bn",
    "dense": "penultimate_dense", "batch_normalization_10": "penultimate",
    "dense_1": "logits",
}
# Keras weight order per layer type, by checkpoint variable name.
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")
_DENSE_VARS = ("kernel", "bias")
# Optimizer state saved beside the weights; not part of the model.
_OPTIMIZER_VARS = ("beta1_power", "beta2_power")


class MusicnnError(TracklensError):
    """Missing, corrupt or mismatched musicnn weights, or audio the model cannot take."""


# ----------------------------------------------------------------------------- preprocessing
def log_mel(y: np.ndarray, *, sr: int = MUSICNN_SR) -> np.ndarray:
    """musicnn's input representation: log-compressed 96-band mel power spectrogram.

    Same librosa call as the original ``extractor.batch_data`` (16 kHz, n_fft 512, hop 256,
    96 mels), the same float16 storage, then ``log10(10000 x + 1)`` computed in float32 — what
    NumPy < 2 did (NumPy 2 keeps ``10000 * float16`` in float16 and overflows to inf).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], mono audio
    sr : number > 0, sample rate of ``y`` in Hz; resampled to 16 kHz (soxr_hq, as
        ``librosa.load`` does) when different

    Returns
    -------
    np.ndarray [shape=(frames, 96), dtype=float32], time-major as the model expects
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise MusicnnError(f"musicnn needs mono audio with samples, got shape {y.shape}")
    if sr != MUSICNN_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=MUSICNN_SR, res_type="soxr_hq")
    mel = librosa.feature.melspectrogram(y=y, sr=MUSICNN_SR, hop_length=MUSICNN_HOP,
                                         n_fft=MUSICNN_N_FFT, n_mels=MUSICNN_N_MELS).T
    mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000) * mel + np.float32(1))


def patches(spec: np.ndarray, *, n_frames: int = PATCH_FRAMES, hop: int | None = None) -> np.ndarray:
    """Cut a (frames, 96) log-mel into patches of ``n_frames`` frames (3 s), like the original.

    Patches start every ``hop`` frames (default ``n_frames``: no overlap) and the tail shorter
    than a patch is dropped, as in ``extractor.batch_data``. Input shorter than one patch is
    repeat-padded to one patch (the "repeat-pad" the checkpoints were trained with) instead of
    failing.

    Returns
    -------
    np.ndarray [shape=(n_patches, n_frames, 96), dtype=float32]
    """
    hop = n_frames if hop is None else int(hop)
    if hop <= 0:
        raise MusicnnError(f"hop={hop} must be a positive number of frames")
    if spec.shape[0] == 0:
        raise MusicnnError("empty spectrogram: no frames to tag")
    if spec.shape[0] < n_frames:
        reps = -(-n_frames // spec.shape[0])
        spec = np.tile(spec, (reps, 1))[:n_frames]
    starts = range(0, spec.shape[0] - n_frames + 1, hop)
    return np.stack([spec[s:s + n_frames] for s in starts]).astype(np.float32)


# ----------------------------------------------------------------------------- model
def build_musicnn(
    input_shape=(PATCH_FRAMES, MUSICNN_N_MELS),
    n_tags: int = 50,
    *,
    frontend_scale: float = 1.6,
    midend_filters: int = 64,
    backend_units: int = EMBEDDING_SIZE,
    dropout: float = 0.5,
    name: str = "musicnn",
):
    """The musicnn tagger (MSD_musicnn / MTT_musicnn configuration by default).

    Parameters
    ----------
    input_shape : (frames, n_mels): a time-major log-mel patch, (187, 96) for 3 s; frames may
        be None (the model pools over time)
    n_tags : number of sigmoid outputs (50 for both pretrained checkpoints)
    frontend_scale : filters of the front-end: ``int(scale*128)`` timbral, ``int(scale*32)``
        temporal per branch
    midend_filters, backend_units : mid-end conv filters and size of the penultimate layer
    dropout : rate before both dense layers (training only)

    Returns
    -------
    keras.Model with outputs ``{"taggram": (batch, n_tags) in [0, 1], "embedding": (batch,
    backend_units) penultimate activations (after ReLU and batch norm)}``
    """
    import keras
    from keras import layers

    n_frames, n_mels = input_shape
    inputs = keras.Input(shape=(n_frames, n_mels), name="log_mel")
    x = layers.Reshape((-1, n_mels, 1), name="add_channel")(inputs)
    x = layers.BatchNormalization(name="input_bn")(x)

    def pooled_block(h, filters, kernel, padding, block):
        h = layers.Conv2D(filters, kernel, padding=padding, activation="relu", name=block)(h)
        h = layers.BatchNormalization(name=f"{block}_bn")(h)
        h = layers.MaxPooling2D((1, h.shape[2]), name=f"{block}_pool")(h)  # all of frequency
        return layers.Reshape((-1, filters), name=f"{block}_squeeze")(h)

    # Timbral branches pad time only ("same" in time, "valid" in frequency, pooled away anyway).
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    frontend = [pooled_block(padded, int(frontend_scale * 128), (7, int(frac * n_mels)), "valid",
                             f"timbral_7x{int(frac * n_mels)}") for frac in (0.4, 0.7)]
    frontend += [pooled_block(x, int(frontend_scale * 32), (length, 1), "same", f"temporal_{length}")
                 for length in (128, 64, 32)]
    front = layers.Concatenate(name="frontend")(frontend)  # (frames, 561)

    # Mid-end: a 7 x (all features) 2-D conv in the original == a 7-tap Conv1D here.
    midend = [front]
    h = front
    for i in (1, 2, 3):
        c = layers.ZeroPadding1D(3, name=f"midend{i}_pad")(h)
        c = layers.Conv1D(midend_filters, 7, activation="relu", name=f"midend{i}")(c)
        c = layers.BatchNormalization(name=f"midend{i}_bn")(c)
        h = c if i == 1 else layers.Add(name=f"midend{i}_residual")([c, h])
        midend.append(h)
    features = layers.Concatenate(name="midend")(midend)  # (frames, 753)

    # Back-end: max and mean over time, interleaved per feature as the original's
    # concat([max, mean], axis=2) + flatten produced them (the checkpoint depends on that order).
    width = features.shape[-1]
    pools = [layers.Reshape((width, 1), name=f"{kind}_pool_column")(pool(name=f"{kind}_pool")(features))
             for kind, pool in (("max", layers.GlobalMaxPooling1D), ("mean", layers.GlobalAveragePooling1D))]
    x = layers.Flatten(name="pool")(layers.Concatenate(name="pool_interleave")(pools))  # (1506,)
    x = layers.BatchNormalization(name="pool_bn")(x)
    x = layers.Dropout(dropout, name="pool_dropout")(x)
    x = layers.Dense(backend_units, activation="relu", name="penultimate_dense")(x)
    embedding = layers.BatchNormalization(name="penultimate")(x)
    x = layers.Dropout(dropout, name="penultimate_dropout")(embedding)
    logits = layers.Dense(n_tags, name="logits")(x)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    return keras.Model(inputs, {"taggram": taggram, "embedding": embedding}, name=name)


# ----------------------------------------------------------------------------- checkpoints
def read_checkpoint(checkpoint: str | Path) -> dict[str, np.ndarray]:
    """All model variables of a musicnn TF1 checkpoint, by name (optimizer state left out).

    ``checkpoint`` is the checkpoint folder (e.g. ``site-packages/musicnn/MSD_musicnn``) or its
    file prefix. The files are named ``.index`` / ``.data-00000-of-00001`` (an empty basename)
    and the folder's ``checkpoint`` file names the author's machine, so the prefix is read
    directly instead of through ``tf.train.latest_checkpoint``.
    """
    prefix = _checkpoint_prefix(checkpoint)
    from tensorflow.python.training import py_checkpoint_reader

    try:
        reader = py_checkpoint_reader.NewCheckpointReader(prefix)
    except Exception as exc:  # TF raises its own error types for corrupt files
        raise MusicnnError(f"{prefix}: not a readable TensorFlow checkpoint ({exc})") from exc
    names = reader.get_variable_to_shape_map()
    return {name: np.asarray(reader.get_tensor(name)) for name in sorted(names)
            if "/Adam" not in name and name not in _OPTIMIZER_VARS}


def _checkpoint_prefix(checkpoint: str | Path) -> str:
    path = Path(checkpoint)
    prefix = str(path) + os.sep if path.is_dir() else str(path)
    if not Path(prefix + ".index").is_file():
        raise MusicnnError(f"{checkpoint}: no TensorFlow checkpoint here (expected {prefix}.index)")
    return prefix


def assign_checkpoint(model, variables: Mapping[str, np.ndarray]) -> None:
    """Set every weight of ``model`` from checkpoint ``variables``; fail on any mismatch.

    Raises MusicnnError naming every checkpoint variable left unused, every model weight left
    unset, and every shape that does not fit — a partial load would give plausible-looking
    garbage, which is how the original extractor fails when its restore does not work.
    """
    unused = set(variables)
    problems: list[str] = []
    for scope, layer_name in CHECKPOINT_LAYERS.items():
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            problems.append(f"model has no layer {layer_name!r} for checkpoint scope {scope!r}")
            continue
        kinds = _BN_VARS if scope.startswith("batch_normalization") else _DENSE_VARS
        values = []
        for kind, weight in zip(kinds, layer.weights, strict=True):
            name = f"{scope}/{kind}"
            if name not in variables:
                problems.append(f"checkpoint lacks {name}")
                continue
            unused.discard(name)
            value = np.asarray(variables[name], dtype=np.float32)
            if _unit_free(value.shape) == _unit_free(weight.shape):
                # a 7 x F conv2d kernel [7, F, 1, C] is the Conv1D kernel [7, F, C]
                value = value.reshape(tuple(weight.shape))
            if value.shape != tuple(weight.shape):
                problems.append(f"{name}: checkpoint shape {value.shape} != layer {layer_name} {tuple(weight.shape)}")
                continue
            values.append(value)
        if len(values) == len(kinds):
            layer.set_weights(values)
    problems += [f"checkpoint variable {name} has no place in the model" for name in sorted(unused)]
    if problems:
        raise MusicnnError("musicnn weights do not fit the model: " + "; ".join(problems))


def _unit_free(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


def find_original_package() -> Path | None:
    """The original ``musicnn/`` package folder with its checkpoints, if any is on this machine.

    Looks at ``$TRACKLENS_MUSICNN_DIR``, then an installed ``musicnn`` (found without importing
    it: its import needs TF1 graph mode), then what ``make musicnn-weights`` unpacked.
    """
    import importlib.util

    candidates = []
    if os.environ.get("TRACKLENS_MUSICNN_DIR"):
        candidates.append(Path(os.environ["TRACKLENS_MUSICNN_DIR"]))
    spec = importlib.util.find_spec("musicnn")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    candidates.append(config.INTERIM_DATA_DIR / ORIGINAL_PACKAGE_RELPATH)
    return next((c for c in candidates if (c / DEFAULT_MUSICNN / ".index").is_file()), None)


def convert_checkpoint(checkpoint: str | Path, *, name: str = DEFAULT_MUSICNN,
                       out_dir: str | Path = PRETRAINED_DIR, source: str = ORIGINAL_SOURCE) -> dict:
    """Convert one musicnn checkpoint into ``out_dir/<name>.weights.h5`` and record it.

    The weights file is written atomically; ``out_dir/musicnn.json`` gets an entry with the
    SHA-256 of the source checkpoint files and of the weights file (checked on every load).

    Returns the manifest entry.
    """
    if name not in TAGS:
        raise MusicnnError(f"unknown musicnn model {name!r}; choose one of {sorted(TAGS)}")
    prefix = _checkpoint_prefix(checkpoint)
    model = build_musicnn(n_tags=len(TAGS[name]), name=name)
    variables = read_checkpoint(prefix)
    assign_checkpoint(model, variables)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.weights.h5"
    with atomic_path(target, suffix=".weights.h5", locked=False) as tmp:  # Keras insists on the suffix; h5py locks
        model.save_weights(tmp)
    entry = {
        "weights": target.name,
        "weights_sha256": file_checksum(target),
        "source": source,
        "source_checkpoint_sha256": {suffix: file_checksum(prefix + suffix)
                                     for suffix in (".index", ".data-00000-of-00001")},
        "n_variables": len(variables),
        "n_parameters": int(sum(v.size for v in variables.values())),
        "tags": list(TAGS[name]),
        "licence": "ISC, Copyright (c) Music Technology Group, Universitat Pompeu Fabra 2019 "
                   "(see LICENSE-musicnn.md)",
    }
    manifest_path = out_dir / MANIFEST_PATH.name
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[name] = entry
    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return entry


def read_manifest(weights_dir: str | Path = PRETRAINED_DIR) -> dict:
    """``musicnn.json``: per converted model its weights file, SHA-256s, source and licence."""
    path = Path(weights_dir) / MANIFEST_PATH.name
    if not path.is_file():
        raise MusicnnError(f"{path}: missing; run `make musicnn-weights`")
    return json.loads(path.read_text())


def load_pretrained(name: str = DEFAULT_MUSICNN, *, weights_dir: str | Path = PRETRAINED_DIR,
                    input_shape=(PATCH_FRAMES, MUSICNN_N_MELS)):
    """Build musicnn and load the shipped weights after verifying their SHA-256.

    Raises MusicnnError when the weights file is missing, not listed in ``musicnn.json`` or
    its checksum differs (a corrupted or swapped file).
    """
    weights_dir = Path(weights_dir)
    manifest = read_manifest(weights_dir)
    if name not in manifest:
        raise MusicnnError(f"{weights_dir / MANIFEST_PATH.name}: no entry for {name!r} (have {sorted(manifest)}); "
                           "run `make musicnn-weights`")
    entry = manifest[name]
    path = verified_file(weights_dir / entry["weights"], entry["weights_sha256"],
                         remedy="run `make musicnn-weights`", error=MusicnnError)
    model = build_musicnn(input_shape, n_tags=len(entry["tags"]), name=name)
    model.load_weights(path)
    return model


# ----------------------------------------------------------------------------- embeddings
class MusicnnEmbedder:
    """A loaded musicnn, built once and reused: ``embed`` one clip after another.

    Parameters
    ----------
    name : "MSD_musicnn" (default) or "MTT_musicnn"
    batch_size : patches per forward pass
    """

    def __init__(self, name: str = DEFAULT_MUSICNN, *, batch_size: int = 32):
        self.name = name
        self.batch_size = batch_size
        self.model = load_pretrained(name)
        self.tags = TAGS[name]
        import tensorflow as tf

        # One traced graph for any number of patches, instead of Keras' per-call overhead.
        spec = tf.TensorSpec((None, PATCH_FRAMES, MUSICNN_N_MELS), tf.float32)
        self._forward = tf.function(lambda x: self.model(x, training=False), input_signature=[spec])

    def embed(self, y: np.ndarray | None = None, *, sr: int | None = None, clip=None,
              hop: int | None = None) -> dict:
        """Embeddings and taggram of one clip, per 3 s patch.

        Pass either ``clip`` (an :class:`audio.AudioClip`) or ``y`` and ``sr``.

        Returns
        -------
        dict with ``embedding`` (n_patches, 200), ``mean`` (200,) track mean of the
        embeddings, ``taggram`` (n_patches, n_tags) sigmoid tag likelihoods, ``tags`` (mean
        of the taggram, n_tags), ``tag_names``, ``starts_s`` (n_patches,) patch starts in
        seconds.
        """
        if clip is not None:
            y, sr = clip.y, clip.sr
        if y is None or sr is None:
            raise MusicnnError("embed needs a clip, or y and sr")
        batch = patches(log_mel(y, sr=sr), hop=hop)
        return self.embed_patches(batch, hop=hop)

    def embed_patches(self, batch: np.ndarray, *, hop: int | None = None) -> dict:
        """:meth:`embed` on already cut log-mel patches (n_patches, 187, 96)."""
        outputs = {"taggram": [], "embedding": []}
        for start in range(0, len(batch), self.batch_size):
            out = self._forward(batch[start:start + self.batch_size])
            for key in outputs:
                outputs[key].append(np.asarray(out[key]))
        embedding = np.concatenate(outputs["embedding"]).astype(np.float32)
        taggram = np.concatenate(outputs["taggram"]).astype(np.float32)
        step = (hop or PATCH_FRAMES) * MUSICNN_HOP / MUSICNN_SR
        return {"embedding": embedding, "mean": embedding.mean(axis=0), "taggram": taggram,
                "tags": taggram.mean(axis=0), "tag_names": self.tags,
                "starts_s": np.arange(len(batch)) * step}


@functools.lru_cache(maxsize=2)
def get_embedder(name: str = DEFAULT_MUSICNN) -> MusicnnEmbedder:
    """The process-wide :class:`MusicnnEmbedder` for ``name`` (built on first use)."""
    return MusicnnEmbedder(name)


def embed(y: np.ndarray | None = None, *, sr: int | None = None, clip=None,
          name: str = DEFAULT_MUSICNN) -> dict:
    """musicnn embeddings and taggram of one clip with a cached model; see :meth:`MusicnnEmbedder.embed`."""
    return get_embedder(name).embed(y, sr=sr, clip=clip)


def top_tags(tags: np.ndarray, *, name: str = DEFAULT_MUSICNN, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely tags as ``[(tag, likelihood), ...]``, best first."""
    order = np.argsort(-np.asarray(tags))[:k]
    return [(TAGS[name][i], float(tags[i])) for i in order]


# ----------------------------------------------------------------------------- batches
EMBEDDING_VERSION = 1  # bump when embeddings of the same file and weights would change
EMBEDDING_COLUMNS = tuple(f"emb_{i:03d}" for i in range(EMBEDDING_SIZE))


def embeddings_path(features_out: str | Path, name: str = DEFAULT_MUSICNN) -> Path:
    """``features.parquet`` -> ``features.<name>.parquet`` (the embedding table beside it)."""
    out = Path(features_out)
    return out.with_name(out.name.removesuffix(out.suffix) + f".{name}.parquet")


def embed_file(path: str, params: dict) -> batch.FileResult:
    """musicnn's per-file function for the batch runner (``params``: see :func:`embedding_task`):
    the track row (``segment`` -1, the mean of its patches) then one row per 3 s patch."""
    from tracklens.audio import load_audio

    clip = load_audio(path, sr=MUSICNN_SR, max_duration=params["max_duration"])
    result = get_embedder(params["model"]).embed(clip=clip)
    starts = np.asarray(result["starts_s"], dtype=float)
    return batch.window_result(starts, starts + PATCH_S, embedding=result["embedding"], taggram=result["taggram"])


def embedding_task(name: str = DEFAULT_MUSICNN, *, max_duration: float = config.FEATURE_MAX_DURATION_S) -> batch.Task:
    """musicnn embeddings as a :class:`batch.Task` (what ``tracklens features --embeddings musicnn`` runs).

    The table: ``track_id, path, label, checksum, segment, start_s, end_s``, ``emb_000`` …
    ``emb_199`` and one ``tag:<name>`` column per tag (float32); one row per track (``segment``
    -1: mean over its patches) then one per 3 s patch. Cached per file, keyed by its checksum,
    the weights' SHA-256, EMBEDDING_VERSION and ``max_duration`` (seconds embedded per file).
    """
    if name not in TAGS:
        raise MusicnnError(f"unknown musicnn model {name!r}; choose one of {sorted(TAGS)}")
    tag_columns = tuple(f"tag:{t}" for t in TAGS[name])
    params = {"model": name, "weights_sha256": read_manifest().get(name, {}).get("weights_sha256", ""),
              "max_duration": float(max_duration)}
    return batch.Task(name=name, run_file=embed_file, params=params, version=EMBEDDING_VERSION,
                      columns=(*batch.ID_COLUMNS, "segment", "start_s", "end_s", *EMBEDDING_COLUMNS, *tag_columns),
                      dtypes={"segment": "int64"}, blocks={"embedding": EMBEDDING_COLUMNS, "taggram": tag_columns})


def extract_embeddings(sources, *, out: str | Path, name: str = DEFAULT_MUSICNN,
                       cache_dir: str | Path | None = None,
                       max_duration: float = config.FEATURE_MAX_DURATION_S, progress: bool = True,
                       scheduler=None):
    """musicnn embeddings and tags of every audio file in ``sources`` -> ``out`` (parquet).

    Runs :func:`embedding_task` through :func:`batch.run` (the features' cache, resume rule and
    parallel path) in this process, or on a Dask cluster with ``scheduler``.

    Parameters
    ----------
    sources : what :func:`batch.run` takes (folder, manifest CSV, audio file, DataFrame); track
        ids are the same as the features', so the table joins ``features.parquet``
    out : the parquet file (:func:`embeddings_path` names it beside ``features.parquet``)
    cache_dir : the cache folder (default ``config.CACHE_DIR``), so a rerun only embeds new or
        changed files
    max_duration : seconds embedded per file

    Returns ``(table, errors)``: the table of :func:`embedding_task`, and ``{"path", "reason"}``
    for files that could not be embedded (also written to ``<stem>.errors.csv``).
    """
    import pandas as pd

    if not str(out).lower().endswith(".parquet"):
        raise MusicnnError(f"--out {out}: the embedding table must be a .parquet file")
    result = batch.run(embedding_task(name, max_duration=max_duration), sources, out=out, scheduler=scheduler,
                       cache_dir=cache_dir, progress=progress)
    errors = read_csv(result.errors, dtype=str, keep_default_na=False).to_dict("records")
    return pd.read_parquet(result.out), errors


def embedding_columns(table, *, tags: bool = True) -> list[str]:
    """The model-input columns of an embedding table: ``emb_*`` (and ``tag:*``), in order."""
    return [c for c in table.columns if c.startswith("emb_") or (tags and c.startswith("tag:"))]


def join_features(embeddings, features_table, *, columns=None):
    """Embedding rows with the feature engine's summary columns of the same track and segment.

    musicnn's patches (187 frames = 2.992 s) and the feature engine's 3 s segments both start
    at 0 and step by ~3 s, so patch i and segment i cover the same audio to within 0.1 s at
    segment 10; they are matched on ``(track_id, segment)``, track rows (segment -1) with track
    rows. Rows present in only one table are dropped.

    Parameters
    ----------
    embeddings : DataFrame from :func:`extract_embeddings` (or its parquet path)
    features_table : DataFrame from ``features.extract_features`` (or its parquet path)
    columns : feature columns to add (default ``features.SUMMARY_COLUMNS``, the 57)
    """
    import pandas as pd

    if not isinstance(embeddings, pd.DataFrame):
        embeddings = pd.read_parquet(embeddings)
    if not isinstance(features_table, pd.DataFrame):
        features_table = pd.read_parquet(features_table)
    if columns is None:
        from tracklens.features import SUMMARY_COLUMNS as columns
    missing = [c for c in ("track_id", "segment", *columns) if c not in features_table.columns]
    if missing:
        raise MusicnnError(f"feature table lacks columns {missing[:5]}")
    return embeddings.merge(features_table[["track_id", "segment", *columns]], on=["track_id", "segment"], how="inner")

