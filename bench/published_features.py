"""How far the feature engine on the shared Opus copies is from the published GTZAN table, on
every full clip: the measurement behind the bounds of
``tests/test_features.py::test_agrees_with_published_gtzan_features``.

Usage: .venv/bin/python bench/published_features.py [--sample 30] [--draws 2000] [--jobs -1]

The published ``features_30_sec.csv`` was computed by (an older) librosa from the original 22 050 Hz
WAVs; ours come from the 32 kbit/s Opus re-encodings in ``../shared/data/gtzan/audio/`` (kind
``full30s`` in ``manifest.csv``). On the same samples our values equal plain librosa's
(``test_summary_equals_plain_librosa``), so what is left is the codec (and the librosa version).

Prints, per column: the agreement over all full clips (``features.compare_with_reference``), and
the worst a ``--sample``-clip sample gives: the 1st percentile of the Pearson r and the 99th
percentile of the two median errors over ``--draws`` random samples (seed 0). Features are
cached in data/interim/published-features-cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tracklens import config, features

GTZAN = config.SHARED_DATA_DIR / "gtzan"
CACHE = config.PACKAGE_DIR / "data" / "interim" / "published-features-cache"
METRICS = ("pearson_r", "median_rel_err", "median_abs_err_std")


def full_clips() -> pd.DataFrame:
    """Every full 22 050 Hz clip the manifest lists (``audio/``) that the published table has."""
    manifest = pd.read_csv(GTZAN / "manifest.csv")
    full = manifest[manifest["kind"] == "full30s"]
    published = set(pd.read_csv(GTZAN / "features" / "features_30_sec.csv")["filename"].str.removesuffix(".wav"))
    paths = [config.SHARED_DATA_DIR / p.removeprefix("shared/data/") for p in full["path"]]
    frame = pd.DataFrame({"path": list(map(str, paths)), "label": full["genre"].to_numpy(), "clip": full["clip"].to_numpy()})
    return frame[frame["clip"].isin(published)].reset_index(drop=True)


def sample_spread(ours: pd.DataFrame, table: pd.DataFrame, n: int, draws: int) -> pd.DataFrame:
    """Worst-case-ish agreement of an ``n``-clip sample: 1st percentile of r, 99th of the errors."""
    rng = np.random.default_rng(0)
    runs = [features.compare_with_reference(ours.iloc[rng.choice(len(ours), n, replace=False)], table)
            for _ in range(draws)]
    stacked = pd.concat(runs, keys=range(draws))
    by_col = stacked.groupby(level=1)
    return pd.DataFrame({"r_p01": by_col["pearson_r"].quantile(0.01),
                         "rel_err_p99": by_col["median_rel_err"].quantile(0.99),
                         "abs_err_std_p99": by_col["median_abs_err_std"].quantile(0.99)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=30, help="clips per random sample (the test's size)")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=-1)
    args = parser.parse_args(argv)

    clips = full_clips()
    table = pd.read_csv(GTZAN / "features" / "features_30_sec.csv")
    start = time.perf_counter()
    result = features.extract_features(clips[["path", "label"]], out=CACHE / "features.parquet", cache_dir=CACHE,
                                       segment_seconds=None, jobs=args.jobs, progress=False)
    ours = pd.read_parquet(result.out)
    print(f"{len(ours)} full clips ({result.n_errors} errors), {time.perf_counter() - start:.0f} s")
    overall = features.compare_with_reference(ours, table)
    spread = sample_spread(ours, table, args.sample, args.draws)
    report = overall[list(METRICS)].join(spread)
    published_tempo = table.set_index(table["filename"].str.removesuffix(".wav")).loc[ours["track_id"], "tempo"]
    tempo_match = np.abs(ours["tempo"].to_numpy() / published_tempo.to_numpy() - 1) < 0.01
    rng = np.random.default_rng(0)
    sampled = [tempo_match[rng.choice(len(ours), args.sample, replace=False)].mean() for _ in range(args.draws)]
    print(report.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"tempo within 1 % of the published value: {tempo_match.mean():.3f} of {len(ours)} clips; "
          f"1st percentile over {args.sample}-clip samples {np.quantile(sampled, 0.01):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
