"""Could a timbre-dependent tempo prior be learned from other labelled data here? The FMA table
pairs Echo Nest's tempo (Spotify's predecessor) with 74 librosa feature means of the same 650
tracks: if the means predicted log2(tempo), the prior the engine centres on 120 BPM could move
with the sound (docs/tempo.md, "What next"). No GTZAN clip is read.

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data python bench/tempo_prior_fma.py  (seconds)

Prints, per feature set, the 5-fold CV R² (shuffled, seed 0) of a ridge regression on the
standardised means (alpha chosen inside each training fold), and beside it the mean baseline
(R² 0 by definition) and the share of tracks whose predicted tempo is on the right side of
120 BPM against always guessing the majority side.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

PREFIXES = {"all 74 means": ("chroma", "mfcc", "rmse", "spectral", "tonnetz", "zcr", "zero"),
            "mfcc + spectral + rmse + zcr": ("mfcc", "rmse", "spectral", "zcr", "zero")}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    import pandas as pd
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tracklens import config

    path = config.SHARED_DATA_DIR / "fma" / "echonest_librosa_650.csv"
    if not path.is_file():
        print(f"{path}: not found (set TRACKLENS_SHARED_DATA)", file=sys.stderr)
        return 2
    table = pd.read_csv(path)
    print(f"{path.name}: {len(table)} rows; Echo Nest tempo as the target (tracks with tempo > 30 BPM and every mean)")
    print(f"{'features':<30} {'n':>4} {'CV R²':>7} {'side of 120 BPM right':>22} {'majority side':>14}")
    for name, prefixes in PREFIXES.items():
        columns = [c for c in table.columns if c.startswith(prefixes)]
        rows = table.dropna(subset=[*columns, "tempo"])
        rows = rows[rows["tempo"] > 30]
        y = np.log2(rows["tempo"].to_numpy(float))
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 20)))
        predicted = cross_val_predict(model, rows[columns].to_numpy(float), y,
                                      cv=KFold(5, shuffle=True, random_state=0))
        r2 = 1 - ((y - predicted) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        fast = y > np.log2(120)
        side = float(((predicted > np.log2(120)) == fast).mean())
        majority = float(max(fast.mean(), 1 - fast.mean()))
        print(f"{name:<30} {len(y):>4} {r2:>7.3f} {side:>22.3f} {majority:>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
