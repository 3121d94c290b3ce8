"""Write basic-pitch's outputs for every GTZAN train / valid file, the cache that
bench/key_basic_pitch.py and bench/tempo_basic_pitch.py read (``--bp-cache``).

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/basic_pitch_cache.py --out data/interim/basic_pitch
      (~0.35 CPU-s per 30 s clip: ~2 CPU-minutes for the 423 files; files already there are kept)

One ``<clip>__<kind>.npz`` per manifest row (kind as in gtzan/manifest.csv), float16 arrays named
as the network's outputs: ``StatefulPartitionedCall_0`` the contour (t, 264),
``StatefulPartitionedCall_1`` the note (t, 88) and ``StatefulPartitionedCall_2`` the onset
(t, 88) probabilities, from :func:`tracklens.pitch_posteriors.posteriors` (the shipped ONNX
network). The tables in docs/key.md and docs/tempo.md were first made from the package's TFLite
model; the two agree to 2.4e-4, which moves one near-tied valid key (see docs/key.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from tracklens import audio, config, pitch_posteriors

NAMES = {"contour": "StatefulPartitionedCall_0", "note": "StatefulPartitionedCall_1", "onset": "StatefulPartitionedCall_2"}


def main(argv=None) -> int:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the cache (created)")
    args = parser.parse_args(argv)
    gtzan = config.SHARED_DATA_DIR / "gtzan"
    manifest = pd.read_csv(gtzan / "manifest.csv")
    manifest = manifest[manifest["fold"].isin(("train", "valid"))]
    args.out.mkdir(parents=True, exist_ok=True)
    for row in tqdm(list(manifest.itertuples()), desc="basic-pitch", unit="file"):
        target = args.out / f"{row.clip}__{row.kind}.npz"
        if target.exists():
            continue
        clip = audio.load_audio(gtzan / Path(row.path).relative_to("shared/data/gtzan"), sr=pitch_posteriors.SAMPLE_RATE)
        p = pitch_posteriors.posteriors(clip.y, sr=clip.sr, contour=True)
        np.savez(target, **{NAMES[k]: getattr(p, k).astype(np.float16) for k in NAMES})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
