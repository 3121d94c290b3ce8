"""Genre models on musicnn embeddings vs. the 57 handcrafted features, on the shared GTZAN pool.

Run:  .venv/bin/python bench/musicnn.py [--out data/processed/musicnn]

Protocol (artist-disjoint): fit on the fault-filtered split's *train* fold of ../shared/data
(45 full clips, 45 classical 15 s excerpts, 178 snippets), score the *valid* fold (51 full
clips + 9 excerpts scored per clip, 46 snippets of 2-3 s scored separately). The folds of that
split share no artist. Within this subset the valid fold holds only 6 genres as clips (no
hiphop/pop/reggae/rock clips; see shared/data/README.md), so balanced accuracy and macro
ROC-AUC are over the genres present. A second, optimistic protocol (5-fold CV stratified by
genre, grouped by clip, over all files; NOT artist-disjoint: GTZAN repeats artists) is printed
for reference. Scores are track-level (patch probabilities averaged per clip), temperature-
calibrated by cross-fitting on the scored rows (models.train.score_model).

Patch-level inputs: musicnn's 3 s patches (200-d penultimate + 50 MSD tags); handcrafted: the
feature engine's 3 s segment rows (57 summary columns), joined on (track, segment index).
Embeddings and features are cached (config.CACHE_DIR) so reruns are fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from tracklens import config


def shared_manifest() -> pd.DataFrame:
    manifest = pd.read_csv(config.SHARED_DATA_DIR / "gtzan" / "manifest.csv")
    manifest["path"] = [str(config.SHARED_DATA_DIR.parent.parent / p) for p in manifest["path"]]
    return manifest.rename(columns={"genre": "label"})


def build_tables(out_dir: Path) -> pd.DataFrame:
    """One row per (track, patch) with embedding, tag and handcrafted columns; track rows have segment -1."""
    from tracklens import features
    from tracklens.models import musicnn

    manifest = shared_manifest()
    emb_path = out_dir / "gtzan_shared.MSD_musicnn.parquet"
    feat_path = out_dir / "gtzan_shared.features.parquet"
    emb, _ = musicnn.extract_embeddings(manifest[["path", "label"]], out=emb_path)
    features.extract_features(manifest[["path", "label"]], out=feat_path, segment_seconds=config.SEGMENT_SECONDS)
    table = musicnn.join_features(emb, feat_path)
    info = manifest.assign(track_id=manifest["clip"])[["track_id", "fold", "kind"]]
    return table.merge(info, on="track_id", how="left")


def column_sets(table: pd.DataFrame) -> dict[str, list[str]]:
    from tracklens import features

    from tracklens.models import musicnn

    hand = list(features.SUMMARY_COLUMNS)
    learned = musicnn.embedding_columns(table)
    return {"handcrafted": hand, "musicnn": learned, "fusion": learned + hand}


def make_model(kind: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "probe":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000, random_state=seed))
    if kind == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier((128,), alpha=1.0, max_iter=300,
                                                             random_state=seed))
    raise ValueError(kind)


MODELS = [  # (name, inputs, classifier, rows it learns from)
    ("handcrafted logreg", "handcrafted", "probe", "patches"),
    ("musicnn probe (track mean)", "musicnn", "probe", "tracks"),
    ("musicnn probe (patches)", "musicnn", "probe", "patches"),
    ("musicnn mlp (patches)", "musicnn", "mlp", "patches"),
    ("fusion probe (patches)", "fusion", "probe", "patches"),
    ("fusion mlp (patches)", "fusion", "mlp", "patches"),
]


def fit_predict(table, train_mask, test_mask, columns, classifier, rows, genres, seed):
    from tracklens.models import datasets

    level = table["segment"] == -1 if rows == "tracks" else table["segment"] >= 0
    # snippets shorter than one segment have no segment rows in the feature table: use their track row
    has_segments = set(table.loc[table["segment"] >= 0, "track_id"])
    if rows == "patches":
        level = level | ((table["segment"] == -1) & ~table["track_id"].isin(has_segments))
    train, test = table[train_mask & level], table[test_mask & level]
    model = make_model(classifier, seed)
    start = time.perf_counter()
    model.fit(train[columns].to_numpy(np.float32), datasets.encode(train["label"].astype(str), genres))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = np.zeros((len(test), len(genres)))
    proba[:, model.classes_] = model.predict_proba(test[columns].to_numpy(np.float32))
    return test, proba, train_s, time.perf_counter() - start


def score(name, test, proba, genres, train_s, infer_s, seed):
    from tracklens.models import datasets
    from tracklens.models.train import score_model

    y = datasets.encode(test["label"].astype(str), genres)
    return score_model(name, test["track_id"].to_numpy(), y, proba, genres=genres, train_s=train_s,
                       infer_s=infer_s, n_params=None, seed=seed)["metrics"]


def speed(n_clips: int = 5) -> None:
    """Seconds per 30 s clip on one thread: musicnn embed (model built once) vs. the feature engine."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tracklens import features
    from tracklens.audio import load_audio
    from tracklens.models import musicnn

    manifest = shared_manifest()
    paths = manifest.loc[manifest["kind"] == "full30s", "path"].iloc[:: max(1, 96 // n_clips)][:n_clips]
    clips = [load_audio(p) for p in paths]
    start = time.perf_counter()
    embedder = musicnn.get_embedder()
    load_s = time.perf_counter() - start
    embedder.embed(clip=clips[0])  # warm-up: graph tracing, librosa caches
    features.featurize_clip(clips[0])
    timings = {"musicnn embed (10 patches)": [], "features.featurize_clip (plain)": []}
    for clip in clips:
        start = time.perf_counter()
        embedder.embed(clip=clip)
        timings["musicnn embed (10 patches)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        features.featurize_clip(clip)
        timings["features.featurize_clip (plain)"].append(time.perf_counter() - start)
    snippet = clips[0].y[: int(2.5 * clips[0].sr)]
    start = time.perf_counter()
    for _ in range(5):
        embedder.embed(snippet, sr=clips[0].sr)
    base = float(np.median(timings["features.featurize_clip (plain)"]))
    print(f"\nSpeed, one thread, TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}; "
          f"model load {load_s:.2f} s; 2.5 s snippet {(time.perf_counter() - start) / 5:.3f} s")
    print(f"{'what':34s} {'s per 30 s clip (median)':>26s} {'ratio vs plain':>15s}")
    for name, values in timings.items():
        print(f"{name:34s} {np.median(values):26.3f} {np.median(values) / base:15.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=config.PROCESSED_DATA_DIR / "musicnn")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--speed-only", action="store_true", help="only the timing table")
    args = parser.parse_args(argv)
    if not config.SHARED_DATA_DIR.is_dir():
        print(f"skipped: no shared data at {config.SHARED_DATA_DIR}")
        return 0
    speed()
    if args.speed_only:
        return 0
    table = build_tables(args.out)
    genres = list(config.GTZAN_GENRES)
    cols = column_sets(table)
    snippet = (table["kind"] == "snippet2to3s").to_numpy()
    train, valid = (table["fold"] == "train").to_numpy(), (table["fold"] == "valid").to_numpy()
    rows = []
    for name, inputs, classifier, level in MODELS:
        test, proba, train_s, infer_s = fit_predict(table, train, valid, cols[inputs], classifier, level, genres, args.seed)
        is_snip = test["kind"].eq("snippet2to3s").to_numpy()
        clips = score(name, test[~is_snip], proba[~is_snip], genres, train_s, infer_s, args.seed)
        snips = score(name, test[is_snip], proba[is_snip], genres, train_s, infer_s, args.seed)
        rows.append({"model": name, "clips_bal_acc": clips["balanced_accuracy"], "clips_auc": clips["macro_roc_auc"],
                     "clips_ece": clips["ece"], "snip_bal_acc": snips["balanced_accuracy"],
                     "snip_auc": snips["macro_roc_auc"], "fit_s": train_s,
                     **{f"auc_{g}": clips[f"roc_auc_{g}"] for g in genres}})
    report = pd.DataFrame(rows).set_index("model")
    base = report.loc["handcrafted logreg", "clips_bal_acc"]
    report["ratio_vs_handcrafted"] = report["clips_bal_acc"] / base
    pd.set_option("display.width", 200)
    n_clip = table.loc[valid & ~snippet & (table["segment"] == -1)].shape[0]
    n_snip = table.loc[valid & snippet & (table["segment"] == -1)].shape[0]
    print(f"\nArtist-disjoint: train fold -> valid fold ({n_clip} clips, {n_snip} snippets; genres present only)")
    print(report[["clips_bal_acc", "clips_auc", "clips_ece", "snip_bal_acc", "snip_auc", "fit_s",
                  "ratio_vs_handcrafted"]].round(3).to_string())
    print("\nPer-genre ROC-AUC on valid clips (NaN: genre absent from the valid clips)")
    print(report[[f"auc_{g}" for g in genres]].rename(columns=lambda c: c[4:]).round(3).to_string())

    # Optimistic reference: stratified group k-fold over every file (clips may share artists).
    from sklearn.model_selection import StratifiedGroupKFold

    tracks = table[table["segment"] == -1]
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=args.seed)
    cv_rows = []
    for name, inputs, classifier, level in MODELS:
        parts = []
        for tr_idx, te_idx in splitter.split(tracks, tracks["label"], groups=tracks["track_id"]):
            tr_ids, te_ids = set(tracks["track_id"].iloc[tr_idx]), set(tracks["track_id"].iloc[te_idx])
            test, proba, *_ = fit_predict(table, table["track_id"].isin(tr_ids).to_numpy(),
                                          table["track_id"].isin(te_ids).to_numpy(), cols[inputs], classifier,
                                          level, genres, args.seed)
            parts.append((test, proba))
        test = pd.concat([p[0] for p in parts])
        proba = np.concatenate([p[1] for p in parts])
        is_snip = test["kind"].eq("snippet2to3s").to_numpy()
        clips = score(name, test[~is_snip], proba[~is_snip], genres, 0, 0, args.seed)
        snips = score(name, test[is_snip], proba[is_snip], genres, 0, 0, args.seed)
        cv_rows.append({"model": name, "clips_bal_acc": clips["balanced_accuracy"], "clips_auc": clips["macro_roc_auc"],
                        "clips_ece": clips["ece"], "snip_bal_acc": snips["balanced_accuracy"],
                        "snip_auc": snips["macro_roc_auc"]})
    cv = pd.DataFrame(cv_rows).set_index("model")
    cv["ratio_vs_handcrafted"] = cv["clips_bal_acc"] / cv.loc["handcrafted logreg", "clips_bal_acc"]
    print("\nOptimistic reference (NOT artist-disjoint): 5-fold CV grouped by clip over all 10 genres")
    print(cv.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
