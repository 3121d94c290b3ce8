"""Genre-model accuracy on the real GTZAN data in ../shared/data, with wall times.

Usage: .venv/bin/python bench/accuracy.py [--parts table,cv,audio,frames,leaky] [--epochs N] [--folds K]

Parts (all track level; the fault-filtered, artist-disjoint split; the test fold is never read):

table   summary-feature models (linear, mlp + 5 baselines) trained on the published feature table's
        train fold, scored on its valid fold (197 tracks); ECE before and after temperature scaling
        (cross-fitted on valid), ratio vs the plain logistic-regression baseline.
cv      stratified 5-fold CV grouped by track over train + valid (640 tracks): mean +- std.
        (Folds are grouped by track, not by artist, so this is more optimistic than `table`.)
audio   the `table` models applied to features the feature engine computes from the shared Opus
        audio of valid-fold tracks: whole 30 s clips vs 10 s vs 3 s windows (mean of window
        probabilities vs mean of log-probabilities), and 2-3 s snippets analysed as they are vs
        looped to one window.
frames  CNN / LSTM / LSTM-CNN on 3 s segments of all available clips (96 full + 54 excerpts),
        stratified K-fold CV grouped by clip (early stopping on an inner split of the training clips).
leaky   the CNN on a random 3 s segment split (segments of one song on both sides): LEAKY, shown
        only to compare with earlier projects' numbers.

Features are computed once with features.extract_features and cached in data/interim/.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.models import datasets, evaluate, registry, train

GTZAN = config.SHARED_DATA_DIR / "gtzan"
TABLE = GTZAN / "features" / "features_30_sec.csv"
SPLITS = GTZAN / "splits"
WORK = config.INTERIM_DATA_DIR / "bench_gtzan"
SUMMARY_MODELS = registry.ALIASES["summary"]
SHOW = ["model", "accuracy", "balanced_accuracy", "macro_roc_auc", "log_loss", "ece_uncalibrated", "ece",
        "train_s", "infer_ms_per_track"]


def log(line: str) -> None:
    if " epoch " not in line:
        print(line, flush=True)


def print_table(title: str, frame: pd.DataFrame) -> None:
    print(f"\n## {title}\n")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def audio_features(segment_s: float) -> pd.DataFrame:
    """Feature-engine rows for every shared clip (cached), joined with fold and kind from the manifest."""
    from tracklens import features

    manifest = pd.read_csv(GTZAN / "manifest.csv")
    sources = pd.DataFrame({"path": [str(config.SHARED_DATA_DIR.parents[1] / p) for p in manifest["path"]],
                            "label": manifest["genre"]})
    out = WORK / f"features_{segment_s:g}s.parquet"
    if not out.is_file():
        features.extract_features(sources, out=out, segment_seconds=segment_s, jobs=1, progress=True)
    rows = pd.read_parquet(out)
    info = manifest.rename(columns={"clip": "track_id"})[["track_id", "fold", "kind"]]
    return rows.merge(info, on="track_id")


# --- part: table --------------------------------------------------------------------------------------


def part_table(epochs: int | None) -> pd.DataFrame:
    out = WORK / "models"
    start = time.perf_counter()
    results = train.train_models(TABLE, SUMMARY_MODELS, out_dir=out, epochs=epochs, split_dir=SPLITS, log=log)
    genres = results[0]["genres"]
    table = evaluate.comparison_table(results, class_names=genres)
    base = table.set_index("model").loc["logreg", "accuracy"]
    table["acc_vs_logreg"] = table["accuracy"] / base
    print_table(f"valid fold, track level (197 tracks, published features; {time.perf_counter() - start:.0f} s wall)",
                table[SHOW + ["acc_vs_logreg"]])
    print_table("per-genre ROC-AUC (valid)", table[["model"] + [c for c in table.columns if c.startswith("roc_auc_")]])
    return table


# --- part: cv -----------------------------------------------------------------------------------------


def part_cv(epochs: int | None, n_folds: int, seed: int = config.DEFAULT_SEED) -> pd.DataFrame:
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    table = datasets.assign_folds(datasets.read_feature_table(TABLE), split_dir=SPLITS)
    genres = datasets.genre_order(table["label"])
    x = table[list(datasets.summary_columns())].to_numpy(np.float32)
    y = datasets.encode(table["label"].astype(str), genres)
    groups = table["track_id"].to_numpy()
    rows = []
    for name in SUMMARY_MODELS:
        scores, start = [], time.perf_counter()
        for k, (tr, te) in enumerate(StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(x, y, groups)):
            if registry.spec(name).family == "keras":  # early stopping on an inner split, never on the scored fold
                fit_idx, stop_idx = train_test_split(tr, test_size=0.15, stratify=y[tr], random_state=seed)
                model, _, _ = train.fit_keras(name, x[fit_idx], y[fit_idx], x[stop_idx], y[stop_idx],
                                              n_classes=len(genres), epochs=epochs, seed=seed, log=log)
                proba = model.predict(x[te], verbose=0)
            else:
                proba = train.fit_baseline(name, x[tr], y[tr], seed=seed)[0].predict_proba(x[te])
            m = evaluate.classification_metrics(y[te], proba, class_names=genres)
            scores.append((m["accuracy"], m["macro_roc_auc"], m["log_loss"]))
        s = np.array(scores)
        rows.append({"model": name, "accuracy": f"{s[:, 0].mean():.3f} ± {s[:, 0].std():.3f}",
                     "macro_roc_auc": f"{s[:, 1].mean():.3f} ± {s[:, 1].std():.3f}",
                     "log_loss": f"{s[:, 2].mean():.3f} ± {s[:, 2].std():.3f}",
                     "wall_s": round(time.perf_counter() - start, 1)})
    frame = pd.DataFrame(rows)
    print_table(f"{n_folds}-fold CV grouped by track over train+valid ({len(y)} tracks; artists may repeat "
                "across folds, so more optimistic than the artist-filtered valid fold)", frame)
    return frame


# --- part: audio --------------------------------------------------------------------------------------


def _score_rows(model, rows: pd.DataFrame, genres, *, method: str = "mean_prob") -> dict:
    proba = model.predict_raw(rows[model.card["input"]["columns"]].to_numpy(np.float32))
    ids, track = evaluate.aggregate_segments(rows["track_id"].to_numpy(), proba, method=method)
    labels = rows.groupby("track_id")["label"].first().loc[ids]
    y = datasets.encode(labels.astype(str), genres)
    calibrated = evaluate.apply_temperature(track, model.temperature)
    m = evaluate.classification_metrics(y, calibrated, class_names=genres)
    window_acc = float(np.mean(proba.argmax(1) == datasets.encode(rows["label"].astype(str), genres)))
    return {"tracks": len(ids), "windows": len(rows), "window_accuracy": window_acc, **m}


def _looped_rows(rows: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Summary rows of each clip looped to ``window_s`` (the blend's treatment of short input)."""
    from tracklens.audio import load_audio
    from tracklens.features import featurize_clip
    from tracklens.models.blend import _loop_to

    out = []
    for path, tid, label in rows[["path", "track_id", "label"]].itertuples(index=False):
        clip = load_audio(path)
        from dataclasses import replace

        looped = replace(clip, y=_loop_to(clip.y, int(round(window_s * clip.sr))))
        out.append({**featurize_clip(looped, segment_seconds=None).track, "track_id": tid, "label": label})
    return pd.DataFrame(out)


def part_audio() -> pd.DataFrame:
    from tracklens.models.blend import GenreModel

    models = {name: GenreModel.load(WORK / "models" / name) for name in ("linear", "mlp")
              if (WORK / "models" / name / "model.keras").is_file()}
    if not models:
        print("\n(audio: run the `table` part first)")
        return pd.DataFrame()
    three_s = audio_features(3.0)  # whole-clip rows and 3 s windows come from the same table
    by_window = {"whole clip": three_s, "10 s windows": audio_features(10.0), "3 s windows": three_s}
    rows = []
    for name, model in models.items():
        genres = model.genres
        for window, frame in by_window.items():
            valid = frame[(frame["fold"] == "valid") & (frame["kind"] == "full30s")]
            valid = valid[valid["segment"] == -1] if window == "whole clip" else valid[valid["segment"] >= 0]
            for method in ("mean_prob", "mean_logprob") if window != "whole clip" else ("mean_prob",):
                rows.append({"model": name, "input": f"51 valid 30 s clips, {window}", "aggregation": method,
                             **_score_rows(model, valid, genres, method=method)})
        snippets = by_window["whole clip"]
        snippets = snippets[(snippets["fold"] == "valid") & (snippets["kind"] == "snippet2to3s") & (snippets["segment"] == -1)]
        rows.append({"model": name, "input": "46 valid 2-3 s snippets, as is", "aggregation": "-",
                     **_score_rows(model, snippets, genres)})
        rows.append({"model": name, "input": f"46 valid 2-3 s snippets, looped to {model.window_s:g} s",
                     "aggregation": "-", **_score_rows(model, _looped_rows(snippets, model.window_s), genres)})
    frame = pd.DataFrame(rows)[["model", "input", "aggregation", "tracks", "windows", "window_accuracy", "accuracy",
                                "macro_roc_auc", "log_loss", "ece"]]
    print_table("published-table models on features computed from the shared audio (valid fold; temperature "
                "from the valid fold of the table)", frame)
    return frame


# --- part: frames -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _frames_and_genres():
    """The 3 s frame matrices and genre order, read once per run (every frame model uses them)."""
    from tracklens import features

    genres = datasets.genre_order(audio_features(3.0)["label"])  # first: it writes the file if missing
    return features.load_frames(WORK / "features_3s.parquet"), genres


def _frame_data(kind: str):
    data, genres = _frames_and_genres()
    ids = np.asarray(data["track_id"]).astype(str)
    return data[kind], datasets.encode(np.asarray(data["label"]).astype(str), genres), ids, genres


def part_frames(epochs: int | None, n_folds: int, augment: bool, names=("cnn", "lstm", "lstm_cnn"),
                seed: int = config.DEFAULT_SEED) -> pd.DataFrame:
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    rows = []
    for name in names:
        x, y, ids, genres = _frame_data(registry.spec(name).input_kind)
        for aug in ((False, True) if augment and name == "cnn" else (False,)):
            oof = np.zeros((len(y), len(genres)))
            start, train_s = time.perf_counter(), 0.0
            for tr, te in StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(x, y, ids):
                clips = np.unique(ids[tr])
                clip_label = pd.Series(y[tr], index=ids[tr]).groupby(level=0).first().loc[clips]
                _, stop_clips = train_test_split(clips, test_size=0.15, stratify=clip_label, random_state=seed)
                stop = np.isin(ids[tr], stop_clips)
                model, _, seconds = train.fit_keras(name, x[tr][~stop], y[tr][~stop], x[tr][stop], y[tr][stop],
                                                    n_classes=len(genres), epochs=epochs, seed=seed, augment=aug, log=log)
                train_s += seconds
                oof[te] = model.predict(x[te], verbose=0)
            tracks, y_track, raw = train._track_level(ids, y, oof)
            calibrated = train.cross_fitted_calibration(y_track, raw, seed=seed)
            m = evaluate.classification_metrics(y_track, calibrated, class_names=genres)
            rows.append({"model": name + (" +augment" if aug else ""), "segments": len(y), "clips": len(tracks),
                         "segment_accuracy": float(np.mean(oof.argmax(1) == y)), "accuracy": m["accuracy"],
                         "balanced_accuracy": m["balanced_accuracy"], "macro_roc_auc": m["macro_roc_auc"],
                         "ece_uncalibrated": evaluate.expected_calibration_error(y_track, raw), "ece": m["ece"],
                         "train_s_per_fold": train_s / n_folds, "params": model.count_params(),
                         "wall_s": time.perf_counter() - start})
    frame = pd.DataFrame(rows)
    print_table(f"frame models on 3 s segments of the shared audio, {n_folds}-fold CV grouped by clip "
                f"(track level: {train.AGGREGATION} of segment probabilities; clips are not artist-disjoint and "
                "classical has 64 of the 150 clips, so read balanced accuracy)", frame)
    return frame


def part_leaky(epochs: int | None, seed: int = config.DEFAULT_SEED) -> pd.DataFrame:
    from sklearn.model_selection import train_test_split

    x, y, ids, genres = _frame_data("log_mel")
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    model, _, seconds = train.fit_keras("cnn", x[tr], y[tr], x[te], y[te], n_classes=len(genres), epochs=epochs,
                                        seed=seed, log=log)
    acc = float(np.mean(model.predict(x[te], verbose=0).argmax(1) == y[te]))
    frame = pd.DataFrame([{"model": "cnn", "split": "random 3 s segments (LEAKY)", "segment_accuracy": acc,
                           "train_s": seconds}])
    print_table("LEAKY: random segment split, segments of one song on both sides (not a real score)", frame)
    return frame


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="table,cv,audio,frames", help="comma-separated: table,cv,audio,frames,leaky")
    parser.add_argument("--epochs", type=int, default=None, help="max epochs for Keras models (default per family)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--augment", action="store_true", help="also the CNN with SpecAugment + mixup")
    parser.add_argument("--frame-models", default="cnn,lstm,lstm_cnn", help="frame models for the frames part")
    args = parser.parse_args(argv)
    if not GTZAN.is_dir():
        print(f"real data not found at {GTZAN}; nothing to benchmark")
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    start = time.perf_counter()
    for part in parts:
        t0 = time.perf_counter()
        {"table": lambda: part_table(args.epochs), "cv": lambda: part_cv(args.epochs, args.folds),
         "audio": part_audio, "frames": lambda: part_frames(args.epochs, args.folds, args.augment, args.frame_models.split(",")),
         "leaky": lambda: part_leaky(args.epochs)}[part]()
        print(f"({part}: {time.perf_counter() - t0:.0f} s wall)")
    print(f"\ntotal {time.perf_counter() - start:.0f} s wall on this machine")


if __name__ == "__main__":
    main()
