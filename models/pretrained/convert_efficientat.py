"""Convert EfficientAT's PyTorch ``mn04_as`` state dict into the Keras weights shipped beside this script.

Usage (what `make efficientat-weights` runs):
    python models/pretrained/convert_efficientat.py [SOURCE.pt] [--labels CSV] [--out DIR]

SOURCE defaults to ``mn04_as_mAP_432.pt`` in the shared weights folder (``$TRACKLENS_WEIGHTS_DIR``,
else ``weights/efficientat/`` beside the shared data), LABELS to ``class_labels_indices.csv``
beside it. No torch is needed: a ``.pt`` file is a zip holding a pickled dict and one raw
storage file per tensor, and a restricted unpickler admits only the four classes such a state
dict uses, refusing anything else (a pickle can otherwise run arbitrary code). Every tensor must
land in the Keras model (missing, unused or mis-shaped ones fail the conversion); the output is
the same bytes on every run, and ``efficientat.json`` records its SHA-256 with the source's.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

from tracklens import config  # noqa: E402
from tracklens.fileio import atomic_path, atomic_write_bytes, file_checksum  # noqa: E402
from tracklens.models import efficientat  # noqa: E402
from tracklens.models.efficientat import EfficientATError  # noqa: E402

SOURCE_FILE = "mn04_as_mAP_432.pt"
LABELS_FILE = "class_labels_indices.csv"
SOURCE_NOTE = ("EfficientAT mn04_as (fschmid56/EfficientAT, MIT; GitHub release v0.0.1 asset "
               "mn04_as_mAP_432.pt), copied from nikih94/swch-audio-classification @ "
               "2b362d97544673ef1da403b44ecbe1174d8619ec resources/mn04_as_mAP_432.pt")
LICENCE = "MIT, Copyright (c) 2022 Florian Schmid (see LICENSE-EfficientAT.md)"
# Storage classes a float32 state dict with int64 batch-norm counters pickles, as NumPy dtypes.
_STORAGE_DTYPES = {"FloatStorage": "f4", "LongStorage": "i8"}


def shared_weights_dir() -> Path:
    """The read-only folder of source weights: ``$TRACKLENS_WEIGHTS_DIR``, else ``weights/`` beside the shared data."""
    return Path(os.environ.get("TRACKLENS_WEIGHTS_DIR", config.SHARED_DATA_DIR.parent / "weights"))


# ----------------------------------------------------------------------------- reading .pt
def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a PyTorch state dict file (zip format, torch >= 1.6), by name, without torch.

    Raises EfficientATError for a file that is not such an archive, or whose pickle asks for
    anything but a dict, ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and
    float32/int64 storages, or whose tensors point outside their storage.
    """
    path = Path(path)
    if not path.is_file():
        raise EfficientATError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise EfficientATError(f"{path}: not a PyTorch zip archive ({exc})") from exc
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise EfficientATError(f"{path}: expected one */data.pkl in the archive, found {len(pickles)}")
        root = pickles[0].removesuffix("data.pkl")
        order = archive.read(root + "byteorder").decode() if root + "byteorder" in archive.namelist() else "little"
        unpickler = _StateDictUnpickler(archive.open(pickles[0]), archive=archive, root=root,
                                        byteorder="<" if order == "little" else ">", name=str(path))
        try:
            state = unpickler.load()
        except (pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError) as exc:
            raise EfficientATError(f"{path}: not a readable state dict ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
        raise EfficientATError(f"{path}: the pickle holds a {type(state).__name__}, not a dict of tensors")
    return dict(state)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict's pickle into NumPy arrays; any other class is refused."""

    def __init__(self, file, *, archive: zipfile.ZipFile, root: str, byteorder: str, name: str):
        super().__init__(file)
        self.archive, self.root, self.byteorder, self.name = archive, root, byteorder, name
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(self.byteorder + _STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing {module}.{name}: a state dict of float32 tensors does not need it")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if key not in self.storages:
            data = self.archive.read(f"{self.root}data/{key}")
            if len(data) != numel * dtype.itemsize:
                raise pickle.UnpicklingError(f"storage {key}: {len(data)} bytes for {numel} x {dtype}")
            self.storages[key] = np.frombuffer(data, dtype=dtype)
        return self.storages[key]


def _rebuild_tensor(storage, offset, size, stride, _requires_grad=False, _hooks=None, _metadata=None):
    """A tensor as a NumPy copy of ``storage[offset:]`` viewed with ``size`` and ``stride`` (in elements)."""
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
        raise ValueError(f"bad tensor geometry {size} / {stride} at {offset}")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.size:
        raise ValueError(f"tensor {size} at {offset} runs past its storage of {storage.size}")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride], writeable=False)
    return view.astype(storage.dtype.newbyteorder("="), copy=True)


def read_class_labels(path: str | Path) -> list[tuple[str, str]]:
    """``(mid, display_name)`` of each AudioSet class, in output order, from ``class_labels_indices.csv``."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or [r.get("index") for r in rows] != [str(i) for i in range(len(rows))]:
        raise EfficientATError(f"{path}: expected columns index,mid,display_name with index 0, 1, 2, ...")
    return [(r["mid"], r["display_name"]) for r in rows]


# ----------------------------------------------------------------------------- conversion
def convert(source: str | Path, *, labels: str | Path | None = None, out_dir: str | Path = efficientat.PRETRAINED_DIR,
            name: str = efficientat.DEFAULT_MODEL) -> dict:
    """Convert ``source`` into ``out_dir/<name>.weights.h5`` and record it in ``out_dir/efficientat.json``.

    Returns the manifest entry.
    """
    source = Path(source)
    labels = source.with_name(LABELS_FILE) if labels is None else Path(labels)
    tensors = read_state_dict(source)
    classes = read_class_labels(labels)
    model = efficientat.build_mn04(n_classes=len(classes), name=name)
    efficientat.assign_state_dict(model, tensors)
    out_dir = Path(out_dir)
    target = out_dir / f"{name}.weights.h5"
    # Keras wants the suffix; h5py locks the file itself (locked=False). h5py writes datasets without
    # timestamps (track_times=False) and Keras names groups by layer order: same weights, same bytes.
    with atomic_path(target, suffix=".weights.h5", locked=False) as tmp:
        model.save_weights(tmp)
    loaded = [v for k, v in tensors.items() if not k.endswith(".num_batches_tracked")]
    entry = {
        "weights": target.name,
        "weights_sha256": file_checksum(target),
        "source": SOURCE_NOTE,
        "source_file": source.name,
        "source_sha256": file_checksum(source),
        "labels_file": labels.name,
        "labels_sha256": file_checksum(labels),
        "n_tensors": len(tensors),
        "n_tensors_loaded": len(loaded),
        "n_parameters": int(sum(v.size for v in loaded)),
        "frontend": efficientat.FRONTEND,
        "window_s": efficientat.WINDOW_S,
        "classes": [display for _, display in classes],
        "class_mids": [mid for mid, _ in classes],
        "licence": LICENCE,
    }
    manifest_path = out_dir / efficientat.MANIFEST_PATH.name
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[name] = entry
    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
    return entry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, nargs="?", help=f"the state dict (default: <shared weights>/efficientat/{SOURCE_FILE})")
    parser.add_argument("--labels", type=Path, help=f"class list (default: {LABELS_FILE} beside SOURCE)")
    parser.add_argument("--out", type=Path, default=efficientat.PRETRAINED_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    source = args.source or shared_weights_dir() / "efficientat" / SOURCE_FILE
    try:
        entry = convert(source, labels=args.labels, out_dir=args.out)
    except (EfficientATError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = (args.out / entry["weights"]).stat().st_size
    print(f"{source.name}: {entry['n_tensors_loaded']} of {entry['n_tensors']} tensors, "
          f"{entry['n_parameters']:,} weights -> {args.out / entry['weights']} "
          f"({size / 1e6:.2f} MB, sha256 {entry['weights_sha256'][:16]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
