"""CPU cost of the engine's key per 30 s clip: the FEATURE_VERSION 5 key (CQT octaves + the 24
scores) beside the shipped one (the same + basic-pitch's network and its profiles), in one run.

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/key_cost.py [--clips 8]

Process CPU time (``time.process_time``; the network runs on one thread), median over the first
``--clips`` full 30 s GTZAN train clips (decoding and the chroma_stft the engine computes anyway
are not counted). The network is
reported apart: the tempo reads the same ``Analysis.pitch_posteriors``, so it runs once per file.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from tracklens import audio, config, features, key_estimation as ke, pitch_posteriors


def cpu(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    args = parser.parse_args(argv)
    data = config.SHARED_DATA_DIR
    manifest = csv.DictReader(open(data / "gtzan/manifest.csv"))
    paths = [data / Path(r["path"]).relative_to("shared/data") for r in manifest
             if r["kind"] == "full30s" and r["fold"] == "train"][: args.clips]
    rows = []
    for path in paths:
        a = features.analyze(audio.load_audio(path, sr=config.SAMPLE_RATE).y)
        a.chroma, a.tuning  # the engine's, computed anyway
        pitch_posteriors.posteriors(a.y[: config.SAMPLE_RATE], sr=a.sr)  # the ONNX session, loaded once per process
        (sums, _), t_cqt = cpu(lambda: ke.octave_sums(ke.semitone_cqt_power(a.y, sr=a.sr, tuning=a.tuning)))
        post, t_net = cpu(lambda: pitch_posteriors.posteriors(a.y, sr=a.sr))
        _, t_profiles = cpu(lambda: ke.pitch_class_sums(post.note))
        f = ke.key_features(a.y, sr=a.sr, chroma=a.chroma, tuning=a.tuning, posteriors=post)
        _, t_scores = cpu(lambda: ke.best_keys(ke.KEY_MODEL.probabilities(f)))
        rows.append((t_cqt + t_scores, t_cqt + t_profiles + t_scores, t_net))
    old, new_shared, net = np.median(np.array(rows), axis=0)
    print(f"{len(rows)} GTZAN train clips (30 s), CPU s per clip (median):")
    print(f"  FEATURE_VERSION 5 key (CQT + scores)                      {old:.3f}")
    print(f"  shipped key without the network (+ basic-pitch profiles)  {new_shared:.3f} ({new_shared / old:.2f}x)")
    print(f"  basic-pitch network (pitch_posteriors; the tempo shares it) {net:.3f}")
    total = new_shared + net
    print(f"  shipped key with the network                              {total:.3f} ({total / old:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
