"""EfficientAT mn04_as in Keras: shipped weights, torch-free converter, front end, equivalence with PyTorch."""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tracklens.fileio import file_checksum
from tracklens.models import efficientat
from tracklens.models.pretrained import convert_efficientat

FIXTURE = Path(__file__).with_name("fixtures") / "efficientat"
RECORDER = Path(__file__).resolve().parent.parent / "bench" / "efficientat_original.py"
SOURCE = convert_efficientat.shared_weights_dir() / "efficientat" / convert_efficientat.SOURCE_FILE
SOURCE_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"  # shared/weights/README.md
needs_source = pytest.mark.skipif(not SOURCE.is_file(), reason=f"source weights not found at {SOURCE}")


@pytest.fixture(scope="module")
def embedder():
    return efficientat.get_embedder()


@pytest.fixture(scope="module")
def recorder():
    """bench/efficientat_original.py, which recorded the fixture (its synthetic signal and checksum)."""
    spec = importlib.util.spec_from_file_location("efficientat_original", RECORDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def original():
    """The recorded outputs of the PyTorch original (``make efficientat-fixture``)."""
    meta = json.loads((FIXTURE / "original_outputs.json").read_text())
    with np.load(FIXTURE / "original_outputs.npz") as data:
        return meta, {k: data[k] for k in data.files}


def _as_state_dict(model) -> dict[str, np.ndarray]:
    """The model's weights named and laid out like the PyTorch state dict (the loader's inverse)."""
    out = {}
    for layer in model.layers:
        kind = type(layer).__name__
        for param, value in zip(efficientat.STATE_DICT_PARAMS.get(kind, ()), layer.get_weights(), strict=True):
            axes = efficientat.KERAS_AXES.get(kind)
            out[f"{layer.name}.{param}"] = value.transpose(np.argsort(axes)) if axes and value.ndim == len(axes) else value
    return out


# float32 FFT rounding in near-silent bins, magnified by the log: 6.2e-5 measured on the synthetic
# signal; a wrong constant costs >= 3e-2 (periodic window 0.032, pre-emphasis 0.96 0.36)
LOG_MEL_ATOL = 5e-4


def _compare(mine: dict, logits, embedding) -> None:
    """Port vs original: logits within 1e-4, embeddings within 1e-4, same top-5 classes per window."""
    assert mine["logits"].shape == logits.shape and mine["embedding"].shape == embedding.shape
    assert np.abs(mine["logits"] - logits).max() <= 1e-4
    assert np.abs(mine["embedding"] - embedding).max() <= 1e-4
    for ours, theirs in zip(mine["logits"], logits):
        assert list(np.argsort(-ours)[:5]) == list(np.argsort(-theirs)[:5])


def test_import_loads_no_tensorflow():
    code = ("import sys; import tracklens.models.efficientat; "
            "sys.exit(sorted({'tensorflow', 'keras', 'librosa'} & set(sys.modules)) or None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_shipped_weights_manifest_and_architecture(embedder):
    model = embedder.model
    entry = efficientat.read_manifest()[efficientat.DEFAULT_MODEL]
    assert file_checksum(efficientat.PRETRAINED_DIR / entry["weights"]) == entry["weights_sha256"]
    assert entry["source_sha256"] == SOURCE_SHA256 and entry["source_file"] == "mn04_as_mAP_432.pt"
    # 312 tensors in the file: 266 weights + 46 batch-norm counters; 993,439 numbers without the counters
    assert (entry["n_tensors"], entry["n_tensors_loaded"]) == (312, 266)
    assert entry["n_parameters"] == model.count_params() == 993_439
    assert entry["frontend"] == efficientat.FRONTEND and entry["window_s"] == efficientat.WINDOW_S
    names = efficientat.class_names()
    assert len(names) == len(entry["class_mids"]) == 527 and names[0] == "Speech"
    assert {"Blues", "Classical music", "Country", "Disco", "Hip hop music", "Jazz", "Heavy metal",
            "Pop music", "Reggae", "Rock music"} <= set(names)
    licence = (efficientat.PRETRAINED_DIR / "LICENSE-EfficientAT.md").read_text()
    assert licence.count("Permission is hereby granted") == 1 and "Copyright (c) 2022 Florian Schmid" in licence
    # the pretrained weights, not the initial ones: batch-norm statistics moved away from 0 / 1
    assert not np.allclose(model.get_layer("features.16.1").get_weights()[3], 1.0)
    assert [model.get_layer(f"features.{i}.block.1.0").strides for i in (2, 4, 7, 13)] == [(2, 2)] * 4
    assert model.get_layer("features.4.block.2.conc_se_layers.0.fc1").units == 8  # 32 // 4 -> make_divisible 8


def test_load_refuses_corrupt_or_missing_weights(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    for name in ("efficientat.json", "mn04_as.weights.h5"):
        shutil.copy(efficientat.PRETRAINED_DIR / name, folder / name)
    weights = folder / "mn04_as.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(efficientat.EfficientATError, match="SHA-256"):
        efficientat.load_pretrained(weights_dir=folder)
    weights.unlink()
    with pytest.raises(efficientat.EfficientATError, match="mn04_as.weights.h5: missing"):
        efficientat.load_pretrained(weights_dir=folder)
    with pytest.raises(efficientat.EfficientATError, match="no entry for 'mn10_as'"):
        efficientat.load_pretrained("mn10_as", weights_dir=folder)


def test_assign_state_dict_is_strict(embedder):
    tensors = _as_state_dict(embedder.model)
    assert len(tensors) == 266 and tensors["features.0.0.weight"].shape == (8, 1, 3, 3)
    assert tensors["features.1.block.0.0.weight"].shape == (8, 1, 3, 3)  # depthwise, torch layout
    tensors["features.0.1.num_batches_tracked"] = np.array(7)  # counters are skipped
    fresh = efficientat.build_mn04()
    efficientat.assign_state_dict(fresh, tensors)
    batch = np.linspace(-1, 1, 128 * 300, dtype="float32").reshape(1, 128, 300)
    np.testing.assert_array_equal(fresh(batch)["logits"], embedder.model(batch)["logits"])

    missing = dict(tensors)
    del missing["classifier.5.bias"]
    with pytest.raises(efficientat.EfficientATError, match=r"state dict lacks classifier\.5\.bias"):
        efficientat.assign_state_dict(fresh, missing)
    extra = dict(tensors, **{"features.4.block.2.conc_se_layers.1.fc1.weight": np.zeros((8, 32), "float32")})
    with pytest.raises(efficientat.EfficientATError, match=r"conc_se_layers\.1\.fc1\.weight has no place"):
        efficientat.assign_state_dict(fresh, extra)
    wrong = dict(tensors, **{"classifier.2.weight": np.zeros((384, 512), "float32")})
    with pytest.raises(efficientat.EfficientATError, match=r"classifier\.2\.weight: shape \(384, 512\) does not fit"):
        efficientat.assign_state_dict(fresh, wrong)


# ----------------------------------------------------------------------------- reading .pt without torch
def _torch_zip(path: Path, tensors: dict, *, global_name: bytes = b"collections\nOrderedDict\n") -> None:
    """Write ``tensors`` ({name: (storage key, offset, size, stride)}, storages below) the way
    ``torch.save`` lays out a state dict: zip of archive/data.pkl (pickle protocol 2) + archive/data/<key>."""
    def text(s: str) -> bytes:
        return b"X" + struct.pack("<I", len(s.encode())) + s.encode()

    def ints(values) -> bytes:
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"

    storages = {"0": np.arange(12, dtype="<f4"), "1": np.array([42], dtype="<i8")}
    kinds = {"0": b"FloatStorage", "1": b"LongStorage"}
    body = b"\x80\x02}("
    for name, (key, offset, size, stride) in tensors.items():
        body += text(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(" + b"(" + text("storage") + b"ctorch\n" + kinds[key] + b"\n"
        body += text(key) + text("cpu") + b"J" + struct.pack("<i", storages[key].size) + b"tQ"
        body += b"J" + struct.pack("<i", offset) + ints(size) + ints(stride) + b"\x89c" + global_name + b")RtR"
    body += b"u."
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", body)
        for key, values in storages.items():
            archive.writestr(f"archive/data/{key}", values.tobytes())
        archive.writestr("archive/version", "3\n")


def test_read_state_dict_without_torch(tmp_path):
    path = tmp_path / "tiny.pt"
    _torch_zip(path, {"a.weight": ("0", 0, (3, 4), (4, 1)), "a.weight_t": ("0", 0, (4, 3), (1, 4)),
                      "b.bias": ("0", 10, (2,), (1,)), "b.num_batches_tracked": ("1", 0, (), ())})
    tensors = convert_efficientat.read_state_dict(path)
    np.testing.assert_array_equal(tensors["a.weight"], np.arange(12, dtype="float32").reshape(3, 4))
    np.testing.assert_array_equal(tensors["a.weight_t"], tensors["a.weight"].T)  # strides honoured
    np.testing.assert_array_equal(tensors["b.bias"], [10.0, 11.0])
    assert tensors["b.num_batches_tracked"] == 42 and tensors["b.num_batches_tracked"].dtype == np.int64

    _torch_zip(path, {"a.weight": ("0", 0, (3, 4), (4, 1))}, global_name=b"os\nsystem\n")
    with pytest.raises(efficientat.EfficientATError, match="refusing os.system"):
        convert_efficientat.read_state_dict(path)
    _torch_zip(path, {"a.weight": ("0", 6, (3, 4), (4, 1))})
    with pytest.raises(efficientat.EfficientATError, match="runs past its storage"):
        convert_efficientat.read_state_dict(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(efficientat.EfficientATError, match="tiny.pt: not a PyTorch zip archive"):
        convert_efficientat.read_state_dict(path)


@needs_source
def test_conversion_reproduces_shipped_weights_byte_for_byte(tmp_path):
    entry = convert_efficientat.convert(SOURCE, out_dir=tmp_path)
    shipped = efficientat.read_manifest()[efficientat.DEFAULT_MODEL]
    assert entry == shipped
    assert (tmp_path / entry["weights"]).read_bytes() == (efficientat.PRETRAINED_DIR / entry["weights"]).read_bytes()


# ----------------------------------------------------------------------------- front end
def test_front_end_shapes_filterbank_and_errors():
    bank = efficientat.mel_filterbank()
    assert bank.shape == (128, 513) and bank.dtype == np.float32
    assert not bank[:, -1].any()  # the Nyquist column the original pads with zeros
    bin_hz = np.arange(513) * 31.25
    assert not bank[:, bin_hz > 15_000].any() and bank[-1, bin_hz == 15_000 - 31.25] > 0.05  # top band ends at FMAX
    spec = efficientat.log_mel(np.zeros(320_000, "float32"))
    assert spec.shape == (128, 1000)  # 10 s -> 1 + (320000 - 1) // 320 frames
    np.testing.assert_allclose(spec, (np.log(1e-5) + 4.5) / 5, rtol=1e-6)  # silence: log(0 + 1e-5)
    # 22.05 kHz input is resampled to 32 kHz first
    assert efficientat.log_mel(np.ones(22_050, "float32"), sr=22_050).shape == (128, 1 + (32_000 - 1) // 320)
    with pytest.raises(efficientat.EfficientATError, match="mono"):
        efficientat.log_mel(np.zeros((2, 32_000), "float32"))
    with pytest.raises(efficientat.EfficientATError, match="at least 514 samples"):
        efficientat.log_mel(np.zeros(513, "float32"))


@pytest.mark.parametrize("seconds, hop_s, expected_starts_s", [
    (30.02, None, [0, 10, 20]),  # a 0.02 s tail is left out, not a 4th window
    (35.0, None, [0, 10, 20, 25]),  # a 5 s tail gets a window ending with the track
    (34.0, None, [0, 10, 20]),
    (10.0, None, [0]),
    (16.0, 5.0, [0, 5]),  # 1 s left after the last 5 s hop: less than half a hop
    (18.0, 5.0, [0, 5, 8]),
])
def test_cut_windows(seconds, hop_s, expected_starts_s):
    y = np.arange(int(seconds * 32_000), dtype="float32")
    starts, windows = efficientat.cut_windows(y, hop_s=hop_s)
    np.testing.assert_array_equal(starts, np.array(expected_starts_s) * 32_000)
    assert windows.shape == (len(starts), 320_000)
    np.testing.assert_array_equal(windows[:, 0], y[starts])


def test_short_clip_is_one_window_of_its_own_length():
    starts, windows = efficientat.cut_windows(np.ones(64_000, "float32"))
    assert starts.tolist() == [0] and windows.shape == (1, 64_000)


# ----------------------------------------------------------------------------- equivalence with PyTorch
def test_matches_pytorch_original_on_synthetic_signal(embedder, original, recorder):
    meta, arrays = original
    y = recorder.synthetic_signal()
    assert recorder.waveform_sha256(y) == meta["synthetic"]["sha256"], "synthetic input differs from the recording's"
    mel = efficientat.log_mel(y)
    assert np.abs(mel - arrays["synthetic_mel"]).max() <= LOG_MEL_ATOL
    _compare(embedder.embed(y, sr=efficientat.SAMPLE_RATE), arrays["synthetic_logits"], arrays["synthetic_embedding"])


@pytest.mark.slow  # > 10 s on 2 busy cores: five real clips through the network
@pytest.mark.realdata
def test_matches_pytorch_original_on_real_clips(shared_data, embedder, original, recorder):
    from tracklens.audio import load_audio

    meta, arrays = original
    assert len(meta["clips"]) == 5 and meta["torch"].startswith("2.13.0")
    assert [(c["clip"], c["kind"]) for c in meta["clips"]] == list(recorder.CLIPS), "fixture older than the recorder"
    regenerate = (f"choose clip ids that {shared_data / 'gtzan' / 'manifest.csv'} lists in {RECORDER.name}'s CLIPS "
                  f"and re-record {FIXTURE} with `make efficientat-fixture`")
    missing = [c["path"] for c in meta["clips"] if not (shared_data / c["path"]).is_file()]
    if missing:
        pytest.fail(f"the fixture's clips {missing} are no longer in {shared_data} (the shared data changed): {regenerate}")
    top_classes = {}
    for i, clip_meta in enumerate(meta["clips"]):
        clip = load_audio(shared_data / clip_meta["path"], sr=efficientat.SAMPLE_RATE)
        assert recorder.waveform_sha256(clip.y) == clip_meta["sha256"], \
            f"{clip_meta['path']}: decoded samples differ from the recording's (decoder or file changed?): {regenerate}"
        out = embedder.embed(clip=clip)
        assert (out["starts_s"] * efficientat.SAMPLE_RATE).round().astype(int).tolist() == clip_meta["starts"]
        _compare(out, arrays[f"{i}_logits"], arrays[f"{i}_embedding"])
        _, windows = efficientat.cut_windows(clip.y)
        edges = np.stack([np.concatenate([s[:, :8], s[:, -8:]], axis=1) for s in map(efficientat.log_mel, windows)])
        assert np.abs(edges - arrays[f"{i}_mel_edges"]).max() <= LOG_MEL_ATOL
        np.testing.assert_allclose(out["mean"], out["embedding"].mean(axis=0), rtol=1e-6)
        top_classes[Path(clip_meta["path"]).stem] = [name for name, _ in efficientat.top_tags(out["tags"], k=6)]
    # the track means name the GTZAN genre among AudioSet's classes
    for clip, audioset_class in {"blues.00000": "Blues", "classical.00000": "Classical music",
                                 "metal.00000": "Heavy metal", "reggae.00000": "Reggae"}.items():
        assert audioset_class in top_classes[clip], (clip, top_classes[clip])
