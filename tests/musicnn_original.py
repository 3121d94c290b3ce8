"""Run the ORIGINAL musicnn graph on audio files, for the equivalence test (a subprocess).

Independent of tracklens' re-implementation on purpose: nothing from the project is imported.

- Graph: the author's own saved graph (``<checkpoint>/.meta``, written by TF 1.12 during
  training), imported in TF1 graph mode and restored with its own saver. The package's
  ``models.py`` cannot be re-run under TF 2.16+ (``tf.compat.v1.layers`` needs Keras 2), so the
  saved graph is the most faithful original available. The stale ``_output_shapes``
  attributes of its gradient nodes are dropped so that TF 2 accepts the import.
- Preprocessing: ``musicnn.extractor.batch_data`` line by line (librosa.load at 16 kHz, mel
  n_fft 512 / hop 256 / 96 bands, float16 storage, ``log10(10000 x + 1)``, 187-frame patches
  without overlap), with one fix: the scaling is done in float32, as NumPy 1.x promoted
  ``10000 * float16`` (NumPy 2 keeps float16 and overflows to inf).

Usage: python tests/musicnn_original.py CHECKPOINT_DIR OUT.npz AUDIO [AUDIO ...]
Writes OUT.npz with ``<i>_taggram`` (patches, 50), ``<i>_penultimate`` (patches, 200) and
``<i>_batch`` (patches, 187, 96) for the i-th audio file.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import meta_graph_pb2  # noqa: E402

SR, FFT_HOP, FFT_SIZE, N_MELS = 16000, 256, 512, 96  # musicnn/configuration.py


def batch_data(audio_file, n_frames, overlap):
    audio, sr = librosa.load(audio_file, sr=SR)
    audio_rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=FFT_HOP,
                                               n_fft=FFT_SIZE, n_mels=N_MELS).T
    audio_rep = audio_rep.astype(np.float16)
    audio_rep = np.log10(10000 * audio_rep.astype(np.float32) + 1)  # the NumPy-1 promotion
    last_frame = audio_rep.shape[0] - n_frames + 1
    return np.stack([audio_rep[t:t + n_frames] for t in range(0, last_frame, overlap)])


def main(checkpoint_dir, out_path, audio_files):
    tf.compat.v1.disable_eager_execution()
    n_frames = librosa.time_to_frames(3, sr=SR, n_fft=FFT_SIZE, hop_length=FFT_HOP) + 1
    prefix = os.path.join(checkpoint_dir, "")
    meta = meta_graph_pb2.MetaGraphDef()
    with open(prefix + ".meta", "rb") as handle:
        meta.ParseFromString(handle.read())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        sess = tf.compat.v1.Session(graph=graph)
        saver.restore(sess, prefix)  # raises on any missing variable (unlike the extractor)
        x = graph.get_tensor_by_name("model/Placeholder:0")
        is_training = graph.get_tensor_by_name("model/Placeholder_2:0")
        taggram = graph.get_tensor_by_name("model/Sigmoid:0")
        penultimate = graph.get_tensor_by_name("model/batch_normalization_10/batchnorm/add_1:0")
        out = {}
        for i, path in enumerate(audio_files):
            batch = batch_data(path, n_frames, n_frames)
            # the extractor feeds one patch at a time (BATCH_SIZE = 1)
            rows = [sess.run([taggram, penultimate], feed_dict={x: batch[j:j + 1], is_training: False})
                    for j in range(len(batch))]
            out[f"{i}_taggram"] = np.concatenate([r[0] for r in rows])
            out[f"{i}_penultimate"] = np.concatenate([r[1] for r in rows])
            out[f"{i}_batch"] = batch
    np.savez(out_path, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
