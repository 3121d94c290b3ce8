"""Record what the PyTorch original of EfficientAT ``mn04_as`` outputs on real clips (the test fixture).

Run:  .venv/bin/python bench/efficientat_original.py [--torch-venv data/interim/torch-venv]
      (``make efficientat-fixture``; writes tests/fixtures/efficientat/original_outputs.{npz,json})

Two interpreters, three steps:

1. project venv: decode each clip with ``tracklens.audio.load_audio`` at 32 kHz and cut it with
   ``efficientat.cut_windows`` (10 s windows), so both sides see the same samples;
2. side venv (created on first use: ``pip install torch==2.13.0 numpy``, the CPU build on this
   machine's disk; no CUDA, no torchaudio, no torchvision): this same file with ``--torch-side``
   rebuilds upstream's modules from plain torch (``fschmid56/EfficientAT`` @ bae1dd1:
   ``models/preprocess.py`` AugmentMelSTFT in eval mode, ``models/mn/model.py`` MN with the
   ``mlp`` head, ``models/mn/block_types.py`` InvertedResidual / ConcurrentSEBlock /
   SqueezeExcitation, ``models/mn/utils.py`` make_divisible; torchvision 0.14's
   ConvNormActivation; torchaudio 0.13's ``compliance.kaldi.get_mel_banks``), loads
   ``mn04_as_mAP_432.pt`` with ``torch.load(weights_only=True)`` and ``load_state_dict(strict=True)``
   (so every module name and shape is upstream's), and runs each window as ``windowed_inference.py``
   does: front end per window, ``model(spec.unsqueeze(0))`` -> (logits, features);
3. project venv: write the fixture (logits, 384-d features and the log-mel's first and last 8
   frames of each window; the same and the whole log-mel for :func:`synthetic_signal`; a JSON
   with versions, clips and the SHA-256 of every input waveform) and print how far the Keras
   port is from it.

The torch side imports nothing from tracklens, on purpose: it re-reads the upstream code, not
the port (which is why its block table repeats the one in models/efficientat.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402

# GTZAN clip ids and the kind ../shared/data/gtzan/manifest.csv must list them as: four 30 s clips
# of genres AudioSet names, one 2-3 s snippet (a single window shorter than 10 s). By id, not by
# path: when the shared data grows, a full clip replaces a snippet of the same id (rock.00016 did),
# and the recorder then stops with the manifest's answer instead of recording another file.
CLIPS = (("blues.00000", "full30s"), ("classical.00000", "full30s"), ("metal.00000", "full30s"),
         ("reggae.00000", "full30s"), ("rock.00017", "snippet2to3s"))
TORCH_VERSION = "2.13.0"
EDGE_FRAMES = 8  # log-mel frames kept at each end of a window (where centre padding acts)
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "efficientat"


def synthetic_signal(seconds: float = 2.5, sr: int = 32_000) -> np.ndarray:
    """A closed-form test signal (tone, chirp, amplitude-modulated 6 kHz tone): lets the test
    compare front end and model with the original without the shared clips."""
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (100 + 1000 * t) * t)
         + 0.1 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 6000 * t))
    return y.astype(np.float32)


def clip_paths(shared_data: Path) -> list[str]:
    """CLIPS as paths relative to ``shared_data``, from its ``gtzan/manifest.csv``; SystemExit
    naming the clip when one is missing or of another kind."""
    import csv

    with open(shared_data / "gtzan" / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = {row["clip"]: row for row in csv.DictReader(handle)}
    paths = []
    for clip, kind in CLIPS:
        row = rows.get(clip)
        if row is None or row["kind"] != kind:
            found = f"kind {row['kind']!r} at {row['path']}" if row else "absent"
            raise SystemExit(f"{clip}: the manifest lists it as {found}, not {kind!r}; choose another clip "
                             f"id of that kind for CLIPS in {Path(__file__).name}")
        paths.append(row["path"].removeprefix("shared/data/"))
    return paths


def waveform_sha256(y: np.ndarray) -> str:
    """SHA-256 of a waveform's float32 samples (what the fixture records for each input)."""
    return hashlib.sha256(np.ascontiguousarray(y, dtype="<f4").tobytes()).hexdigest()


# ----------------------------------------------------------------------------- torch side
def torch_side(state_dict_path: str, windows_path: str, out_path: str) -> None:
    """Step 2: the original front end and model on every window of ``windows_path``."""
    import math

    import torch
    from torch import nn

    torch.set_grad_enabled(False)

    def make_divisible(v, divisor=8):  # models/mn/utils.py
        new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
        return new_v + divisor if new_v < 0.9 * v else new_v

    def conv_norm_activation(c_in, c_out, kernel, stride=1, groups=1, activation=None):
        # torchvision.ops.misc.ConvNormActivation: padding (k-1)//2, no bias before the norm
        parts = [nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                 nn.BatchNorm2d(c_out, eps=0.001, momentum=0.01)]
        return nn.Sequential(*parts, *([activation()] if activation else []))

    class SqueezeExcitation(nn.Module):  # se_dim 1 (channels): mean over frequency and time
        def __init__(self, channels, squeeze):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(channels, squeeze), nn.Linear(squeeze, channels)

        def forward(self, x):
            scale = x.mean((2, 3), keepdim=True)
            shape = scale.size()
            scale = self.fc2(torch.relu(self.fc1(scale.squeeze(2).squeeze(2))))
            return torch.sigmoid(scale).view(shape) * x

    class ConcurrentSEBlock(nn.Module):  # se_dims [1], se_agg "max", se_r 4
        def __init__(self, channels):
            super().__init__()
            self.conc_se_layers = nn.ModuleList([SqueezeExcitation(channels, make_divisible(channels // 4, 8))])

        def forward(self, x):
            return torch.stack([layer(x) for layer in self.conc_se_layers]).max(dim=0)[0]

    class InvertedResidual(nn.Module):
        def __init__(self, c_in, kernel, expanded, c_out, use_se, activation, stride):
            super().__init__()
            act = nn.Hardswish if activation == "HS" else nn.ReLU
            parts = [conv_norm_activation(c_in, expanded, 1, activation=act)] if expanded != c_in else []
            parts.append(conv_norm_activation(expanded, expanded, kernel, stride, groups=expanded, activation=act))
            parts += [ConcurrentSEBlock(expanded)] if use_se else []
            parts.append(conv_norm_activation(expanded, c_out, 1))
            self.block = nn.Sequential(*parts)
            self.use_res_connect = stride == 1 and c_in == c_out

        def forward(self, x):
            result = self.block(x)
            return result + x if self.use_res_connect else result

    class MN(nn.Module):
        def __init__(self, width_mult=0.4, num_classes=527):
            super().__init__()
            ch = lambda c: make_divisible(c * width_mult, 8)  # noqa: E731  InvertedResidualConfig.adjust_channels
            table = [(16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2),
                     (24, 3, 72, 24, False, "RE", 1), (24, 5, 72, 40, True, "RE", 2),
                     (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
                     (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1),
                     (80, 3, 184, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
                     (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
                     (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1),
                     (160, 5, 960, 160, True, "HS", 1)]
            layers = [conv_norm_activation(1, ch(16), 3, 2, activation=nn.Hardswish)]
            layers += [InvertedResidual(ch(i), k, ch(e), ch(o), se, act, s) for i, k, e, o, se, act, s in table]
            layers.append(conv_norm_activation(ch(160), 6 * ch(160), 1, activation=nn.Hardswish))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(start_dim=1),
                                            nn.Linear(6 * ch(160), ch(1280)), nn.Hardswish(inplace=True),
                                            nn.Dropout(p=0.2, inplace=True), nn.Linear(ch(1280), num_classes))

        def forward(self, x):
            x = self.features(x)
            features = nn.functional.adaptive_avg_pool2d(x, (1, 1)).squeeze()
            return self.classifier(x).squeeze(), features

    def kaldi_mel_banks(num_bins, window_length_padded, sample_freq, low_freq, high_freq):
        # torchaudio.compliance.kaldi.get_mel_banks with vtln_warp_factor 1.0 (no warping)
        mel_scale_scalar = lambda f: 1127.0 * math.log(1.0 + f / 700.0)  # noqa: E731
        num_fft_bins = window_length_padded / 2
        fft_bin_width = sample_freq / window_length_padded
        mel_low, mel_high = mel_scale_scalar(low_freq), mel_scale_scalar(high_freq)
        delta = (mel_high - mel_low) / (num_bins + 1)
        band = torch.arange(num_bins).unsqueeze(1)
        left = mel_low + band * delta
        centre = mel_low + (band + 1.0) * delta
        right = mel_low + (band + 2.0) * delta
        mel = (1127.0 * (1.0 + fft_bin_width * torch.arange(num_fft_bins) / 700.0).log()).unsqueeze(0)
        up, down = (mel - left) / (centre - left), (right - mel) / (right - centre)
        return torch.max(torch.zeros(1), torch.min(up, down))

    # AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320) in eval mode: n_fft 1024,
    # fmin 0.0, fmax = sr // 2 - fmax_aug_range // 2 = 15000
    window = torch.hann_window(800, periodic=False)
    preemphasis = torch.as_tensor([[[-.97, 1]]])
    mel_basis = nn.functional.pad(kaldi_mel_banks(128, 1024, 32000, 0.0, 32000 // 2 - 2000 // 2), (0, 1), value=0)

    def mel_frontend(x):  # x: (1, samples)
        x = nn.functional.conv1d(x.unsqueeze(1), preemphasis).squeeze(1)
        x = torch.stft(x, 1024, hop_length=320, win_length=800, center=True, normalized=False,
                       window=window, return_complex=True)
        power = torch.view_as_real(x).pow(2).sum(dim=-1)  # upstream: return_complex=False, (x ** 2).sum(-1)
        return ((torch.matmul(mel_basis, power) + 0.00001).log() + 4.5) / 5.

    model = MN()
    model.load_state_dict(torch.load(state_dict_path, map_location="cpu", weights_only=True), strict=True)
    model.eval()
    out = {}
    with np.load(windows_path) as data:
        for key in sorted(k for k in data.files if k.endswith("_windows")):
            clip = key.removesuffix("_windows")
            logits, features, edges = [], [], []
            for w in data[key]:
                spec = mel_frontend(torch.from_numpy(np.ascontiguousarray(w))[None, :])
                preds, feats = model(spec.unsqueeze(0))
                logits.append(preds.reshape(-1).numpy())
                features.append(feats.reshape(-1).numpy())
                edges.append(torch.cat([spec[0, :, :EDGE_FRAMES], spec[0, :, -EDGE_FRAMES:]], dim=1).numpy())
            out[f"{clip}_logits"], out[f"{clip}_embedding"], out[f"{clip}_mel_edges"] = map(np.stack, (logits, features, edges))
            if clip == "synthetic":  # short: its whole log-mel is kept
                out["synthetic_mel"] = spec[0].numpy()
    out["versions"] = np.array(json.dumps({"torch": torch.__version__, "numpy": np.__version__,
                                           "python": sys.version.split()[0]}))
    np.savez(out_path, **out)


# ----------------------------------------------------------------------------- project side
def ensure_torch_venv(venv: Path) -> Path:
    """The side venv's python, created with torch==TORCH_VERSION (CPU) and NumPy on first use."""
    python = venv / "bin" / "python"
    check = f"import torch, numpy; assert torch.__version__.startswith('{TORCH_VERSION}')"
    if not (python.exists() and subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0):
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}", f"numpy=={np.__version__}"],
                       check=True)
    return python


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-venv", type=Path, default=Path("data/interim/torch-venv"))
    parser.add_argument("--out", type=Path, default=FIXTURE_DIR)
    parser.add_argument("--torch-side", nargs=3, metavar=("STATE_DICT", "WINDOWS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.torch_side:
        torch_side(*args.torch_side)
        return 0

    from tracklens import config
    from tracklens.audio import load_audio
    from tracklens.fileio import file_checksum
    from tracklens.models import efficientat
    from tracklens.models.pretrained.convert_efficientat import SOURCE_FILE, shared_weights_dir

    state_dict = shared_weights_dir() / "efficientat" / SOURCE_FILE
    clips = []
    windows = {}
    for i, ((clip_id, kind), rel) in enumerate(zip(CLIPS, clip_paths(config.SHARED_DATA_DIR))):
        y = load_audio(config.SHARED_DATA_DIR / rel, sr=efficientat.SAMPLE_RATE).y
        starts, windows[f"{i}_windows"] = efficientat.cut_windows(y)
        clips.append({"path": rel, "clip": clip_id, "kind": kind, "n_samples": int(y.size), "sha256": waveform_sha256(y),
                      "starts": starts.tolist()})
    synthetic = synthetic_signal()
    windows["synthetic_windows"] = synthetic[None, :]
    python = ensure_torch_venv(args.torch_venv)
    with tempfile.TemporaryDirectory(prefix="efficientat-original-") as tmp:
        np.savez(Path(tmp) / "windows.npz", **windows)
        subprocess.run([str(python), __file__, "--torch-side", str(state_dict), str(Path(tmp) / "windows.npz"),
                        str(Path(tmp) / "original.npz")], check=True)
        with np.load(Path(tmp) / "original.npz") as data:
            original = {k: data[k] for k in data.files}
    versions = json.loads(str(original.pop("versions")))
    write_fixture(args.out, original, {
        "script": "bench/efficientat_original.py", "what": "upstream EfficientAT mn04_as re-created in plain "
        "torch (see the script's docstring), eval mode, one forward pass per 10 s window", **versions,
        "state_dict": SOURCE_FILE, "state_dict_sha256": file_checksum(state_dict),
        "decoder": "tracklens.audio.load_audio(path, sr=32000)", "window_s": efficientat.WINDOW_S,
        "edge_frames": EDGE_FRAMES, "clips": clips,
        "synthetic": {"function": "synthetic_signal()", "n_samples": int(synthetic.size),
                      "sha256": waveform_sha256(synthetic)}})
    report(original, windows)
    return 0


def write_fixture(out_dir: Path, arrays: dict, meta: dict) -> None:
    """``original_outputs.npz`` (float32 arrays, compressed) and ``original_outputs.json``, atomically."""
    from tracklens.fileio import atomic_path, atomic_write_bytes

    with atomic_path(out_dir / "original_outputs.npz", suffix=".npz") as tmp:
        np.savez_compressed(tmp, **{k: v.astype(np.float32) for k, v in arrays.items()})
    atomic_write_bytes(out_dir / "original_outputs.json", (json.dumps(meta, indent=1) + "\n").encode())


def report(original: dict, windows: dict) -> None:
    """Print the Keras port's largest differences from the recording, per clip."""
    from tracklens.models import efficientat

    embedder = efficientat.get_embedder()
    for key, batch in windows.items():
        clip = key.removesuffix("_windows")
        specs = np.stack([efficientat.log_mel(w) for w in batch])
        out = embedder.embed_log_mel(specs)
        edges = np.concatenate([specs[:, :, :EDGE_FRAMES], specs[:, :, -EDGE_FRAMES:]], axis=2)
        same_top5 = all(list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5])
                        for a, b in zip(out["logits"], original[f"{clip}_logits"]))
        print(f"{CLIPS[int(clip)][0] if clip.isdigit() else clip}: {len(batch)} windows, max |diff| log-mel edges "
              f"{np.abs(edges - original[f'{clip}_mel_edges']).max():.2e}, logits "
              f"{np.abs(out['logits'] - original[f'{clip}_logits']).max():.2e}, embedding "
              f"{np.abs(out['embedding'] - original[f'{clip}_embedding']).max():.2e}, same top-5: {same_top5}")


if __name__ == "__main__":
    sys.exit(main())
