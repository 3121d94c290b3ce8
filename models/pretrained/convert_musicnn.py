"""Convert musicnn's TF1 checkpoints into the Keras weights files shipped beside this script.

Usage (what `make musicnn-weights` runs after fetching the pinned wheel):
    python models/pretrained/convert_musicnn.py MUSICNN_PACKAGE_DIR [--models MSD_musicnn MTT_musicnn]

MUSICNN_PACKAGE_DIR is the `musicnn/` folder of musicnn 0.1.0 (an unpacked wheel or a
`pip install --no-deps musicnn==0.1.0` site-packages). Every checkpoint variable must land in
the Keras model (the loader fails on any missing, unused or mis-shaped one); the result and the
SHA-256 of source and output go to `musicnn.json`.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from tracklens.models import musicnn  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package_dir", type=Path, help="the musicnn/ package folder holding <model>/.index")
    parser.add_argument("--models", nargs="+", default=["MSD_musicnn", "MTT_musicnn"], choices=sorted(musicnn.TAGS))
    parser.add_argument("--out", type=Path, default=musicnn.PRETRAINED_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in args.models:
        entry = musicnn.convert_checkpoint(args.package_dir / name, name=name, out_dir=args.out)
        size = (args.out / entry["weights"]).stat().st_size
        print(f"{name}: {entry['n_variables']} variables, {entry['n_parameters']:,} parameters -> "
              f"{args.out / entry['weights']} ({size / 1e6:.2f} MB, sha256 {entry['weights_sha256'][:16]}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
