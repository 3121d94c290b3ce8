"""Benchmark: which sound embedding a catalogue should carry, what building one costs, and how
fast ``similar`` answers.

Run:  .venv/bin/python bench/similar.py [--gtzan ../shared/data/gtzan] [--work data/interim/bench_similar]
      [--skip-precision] [--skip-timing] [--skip-latency]
      (first run ~15 CPU-minutes on one core: every full clip analysed by the catalogue builder
      and by musicnn, both cached per file under the tracklens cache; then about 2 minutes)

1. **Genre precision@5** (``precision``). Data: ../shared/data/gtzan, fault-filtered artist-
   disjoint split; the test fold is not there and is never read. Catalogue: the train-fold full
   30 s clips (``full30s`` and the 16 kHz ``full30s_16k`` copies); queries: the valid-fold full
   clips. For each query the five most similar catalogue clips; precision@5 = share of them with
   the query's genre, averaged over queries; ``chance`` = the share of the query's genre in the
   catalogue, averaged the same way; a 95 % bootstrap interval over queries (2,000 draws).
   Every representation is compared by cosine after the transform named (``standardised``:
   mean / std per dimension fitted on the catalogue only; ``pca-whitened``: PCA with whitening
   fitted on the catalogue only, 64 components; ``raw``: none), then L2-normalised.
   The ``blend vector`` rows are LEAKY: the shipped genre heads were refitted on train + valid,
   so they have seen these queries' genres; they are listed for reference and never chosen.
2. **Build throughput** (``timing``): the catalogue's per-file analysis (decode, engine values,
   descriptor estimates, genre blend + fit + chart genres + embedding in one EfficientAT pass)
   on full 30 s clips, this process pinned to one core and TensorFlow to one thread; CPU seconds
   per track (process time, median of the clips after one warm-up) and tracks per minute per
   core. Target: 10,000 30 s previews in <= 1 h on 2 cores = <= 0.72 CPU s per track.
   ``genre pass`` is the blend call alone on the same clips (its share of the total).
3. **``similar`` latency** (``latency``): synthetic catalogues of 10,000 and 100,000 rows with
   random 384-d embeddings; median / p95 of 50 queries (an embedding, so no audio analysis),
   all tracks and ``within`` one genre; the one-off index build is listed apart. Target: <= 50 ms
   at 100,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from tracklens import batch, catalogue, config, features

TOP = 5
BOOTSTRAP = 2000
PCA_COMPONENTS = 64
FULL_KINDS = ("full30s", "full30s_16k")


def one_core() -> None:
    """Pin this process to one CPU and TensorFlow to one thread (the throughput target is per core)."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def full_clips(gtzan: Path) -> pd.DataFrame:
    """Train and valid full clips of the shared GTZAN manifest: ``path, label, clip, fold, kind``."""
    manifest = pd.read_csv(gtzan / "manifest.csv")
    manifest = manifest[manifest["fold"].isin(("train", "valid")) & manifest["kind"].isin(FULL_KINDS)].copy()
    manifest["path"] = [str(gtzan / Path(p).relative_to(*Path(p).parts[:3])) for p in manifest["path"]]
    folds = {fold: set(Path(line.strip()).stem for line in (gtzan / "splits" / f"{fold}_filtered.txt").read_text().split())
             for fold in ("train", "valid")}
    manifest = manifest[[clip in folds[fold] for clip, fold in zip(manifest["clip"], manifest["fold"])]]
    return manifest.rename(columns={"genre": "label"})[["path", "label", "clip", "fold", "kind"]].reset_index(drop=True)


# --- representations ------------------------------------------------------------------------------


def transform(kind: str, train: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices transformed with statistics fitted on ``train`` (the catalogue) only, then L2-normalised."""
    train, query = train.astype(np.float64), query.astype(np.float64)
    if kind == "standardised":
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std > 1e-9, std, 1.0)
        train, query = (train - mean) / std, (query - mean) / std
    elif kind == "pca-whitened":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=min(PCA_COMPONENTS, len(train) - 1, train.shape[1]), whiten=True, random_state=0)
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std > 1e-9, std, 1.0)
        train = pca.fit_transform((train - mean) / std)
        query = pca.transform((query - mean) / std)
    elif kind != "raw":
        raise ValueError(kind)
    norm = lambda m: m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)  # noqa: E731
    return norm(train), norm(query)


def concat(*blocks: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Blocks standardised and L2-normalised apart (equal weight each), then side by side."""
    parts = [transform("standardised", tr, q) for tr, q in blocks]
    return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])


def precision_at_k(train: np.ndarray, train_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray,
                   k: int = TOP) -> np.ndarray:
    """Per query: the share of its ``k`` most similar catalogue rows (cosine; rows already normalised) of its genre."""
    sims = query @ train.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return (train_labels[top] == query_labels[:, None]).mean(axis=1)


def bootstrap_interval(values: np.ndarray, *, draws: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (draws, len(values)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def musicnn_means(files: pd.DataFrame, work: Path) -> pd.DataFrame:
    """musicnn's mean embedding (200) per file, through the batch runner (cached per file)."""
    from tracklens.models import musicnn

    task = musicnn.embedding_task()
    out = batch.run(task, files[["path", "label"]], out=work / "musicnn.parquet", jobs=1, progress=True).out
    table = pd.read_parquet(out, columns=["path", "segment", *musicnn.EMBEDDING_COLUMNS])
    return table[table["segment"] == -1].set_index("path")[list(musicnn.EMBEDDING_COLUMNS)]


def precision(gtzan: Path, work: Path) -> dict:
    files = full_clips(gtzan)
    cat = catalogue.build(files[["path", "label"]], work / "gtzan_catalogue", progress=True)
    tracks = cat.tracks.set_index("path").loc[files["path"]].reset_index()
    is_train = (files["fold"] == "train").to_numpy()
    labels = files["label"].to_numpy()
    mnn = musicnn_means(files, work).loc[files["path"]].to_numpy(np.float32)

    genres = cat.card["model"]["genres"]
    blocks = {
        "three values (tempo, acousticness_est, energy_est)": tracks[["tempo", "acousticness_est", "energy_est"]].to_numpy(),
        "57 GTZAN features": tracks[list(features.SUMMARY_COLUMNS)].to_numpy(),
        "EfficientAT mean embedding (384)": tracks[list(catalogue.EMBEDDING_COLUMNS)].to_numpy(),
        "AudioSet likelihoods (527, same pass)": tracks[list(catalogue.AUDIOSET_COLUMNS)].to_numpy(),
        "musicnn mean embedding (200)": mnn,
        "blend vector (10) - LEAKY: heads saw valid": tracks[[f"blend_{g}" for g in genres]].to_numpy(),
    }
    rows = []

    def score(name: str, how: str, train: np.ndarray, query: np.ndarray) -> None:
        per_query = precision_at_k(train, labels[is_train], query, labels[~is_train])
        low, high = bootstrap_interval(per_query)
        rows.append({"representation": name, "transform": how, "precision@5": float(per_query.mean()),
                     "ci95": f"{low:.2f}-{high:.2f}", "per_genre": pd.Series(per_query).groupby(labels[~is_train]).mean().round(2).to_dict()})

    for name, x in blocks.items():
        for how in ("raw", "standardised", "pca-whitened"):
            score(name, how, *transform(how, x[is_train], x[~is_train]))
    pairs = {
        "EfficientAT + musicnn (concatenated)": ("EfficientAT mean embedding (384)", "musicnn mean embedding (200)"),
        "EfficientAT + AudioSet likelihoods (concatenated)": ("EfficientAT mean embedding (384)", "AudioSet likelihoods (527, same pass)"),
    }
    for name, (a, b) in pairs.items():
        score(name, "standardised per block", *concat((blocks[a][is_train], blocks[a][~is_train]),
                                                        (blocks[b][is_train], blocks[b][~is_train])))
    # what the catalogue ships: its own index on its own columns (the same numbers as "EfficientAT ... standardised")
    train_cat = catalogue.SoundIndex(blocks["EfficientAT mean embedding (384)"][is_train])
    shipped = train_cat.transform(blocks["EfficientAT mean embedding (384)"][~is_train])
    score("shipped: catalogue.SoundIndex", "standardised", train_cat.matrix, shipped)

    chance = float(np.mean([np.mean(labels[is_train] == g) for g in labels[~is_train]]))
    return {"rows": rows, "chance": chance, "n_catalogue": int(is_train.sum()), "n_queries": int((~is_train).sum()),
            "catalogue_genres": pd.Series(labels[is_train]).value_counts().to_dict(),
            "query_genres": pd.Series(labels[~is_train]).value_counts().to_dict()}


# --- build throughput ----------------------------------------------------------------------------


def timing(gtzan: Path, n_clips: int) -> dict:
    from tracklens.models import blend

    files = full_clips(gtzan)
    files = files[files["kind"] == "full30s"].groupby("label").head(2).head(n_clips + 1)
    task = catalogue.catalogue_task()
    task.warm()
    total, genre_pass = [], []
    for i, path in enumerate(files["path"]):
        t0 = time.process_time()
        catalogue.analyse_file(path, task.params)
        t1 = time.process_time()
        blend.predict_blend(catalogue._genre_model(catalogue.DEFAULT_MODEL), path)  # noqa: SLF001 - same model object
        t2 = time.process_time()
        if i:  # the first clip pays for loading the models
            total.append(t1 - t0)
            genre_pass.append(t2 - t1)
    per_track = statistics.median(total)
    return {"clips": len(total), "cpu_s_per_track": per_track, "genre_pass_cpu_s": statistics.median(genre_pass),
            "tracks_per_min_per_core": 60.0 / per_track,
            "hours_for_10k_on_2_cores": 10_000 * per_track / 2 / 3600}


# --- similar latency ------------------------------------------------------------------------------


def synthetic_catalogue(n: int, *, seed: int = 0) -> catalogue.Catalogue:
    rng = np.random.default_rng(seed)
    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    emb = rng.normal(size=(n, catalogue.EMBEDDING_SIZE)).astype(np.float32)
    top = rng.choice(genres, n)
    tracks = pd.DataFrame({"track_id": [f"t{i:06d}" for i in range(n)], "path": "", "audio_file": "",
                           "artist": "", "title": "", "top_genre": top, "blend_label": top,
                           "chart_genres": rng.choice(["pop", "rock", "hip hop; pop"], n),
                           "tempo": rng.uniform(60, 180, n), "key_name": "C major", "loudness": -9.0,
                           "duration_s": 30.0, "energy_est": rng.uniform(0, 1, n),
                           "acousticness_est": rng.uniform(0, 1, n)})
    tracks = pd.concat([tracks, pd.DataFrame(emb, columns=list(catalogue.EMBEDDING_COLUMNS))], axis=1)
    card = {"model": {"name": catalogue.DEFAULT_MODEL, "genres": genres}}
    return catalogue.Catalogue(path=Path(f"synthetic-{n}"), tracks=tracks, card=card, errors=pd.DataFrame())


def latency(sizes=(10_000, 100_000), n_queries: int = 50) -> list[dict]:
    rows = []
    rng = np.random.default_rng(1)
    for n in sizes:
        cat = synthetic_catalogue(n)
        t0 = time.perf_counter()
        cat.index()
        build_s = time.perf_counter() - t0
        for within in (None, "rock"):
            times = []
            for q in rng.normal(size=(n_queries, catalogue.EMBEDDING_SIZE)).astype(np.float32):
                t0 = time.perf_counter()
                catalogue.similar(q, cat, top=TOP, within=within)
                times.append(time.perf_counter() - t0)
            rows.append({"rows": n, "within": within or "all tracks", "median_ms": 1000 * statistics.median(times),
                         "p95_ms": 1000 * float(np.quantile(times, 0.95)), "index_build_s": build_s})
    return rows


# --- report ------------------------------------------------------------------------------------------


def print_report(results: dict) -> None:
    if "precision" in results:
        p = results["precision"]
        print(f"\n## Genre precision@5: {p['n_queries']} valid-fold full clips as queries, "
              f"catalogue of {p['n_catalogue']} train-fold full clips (chance {p['chance']:.2f})\n")
        print("| representation | transform | precision@5 | 95 % CI |\n| --- | --- | ---: | --- |")
        for r in p["rows"]:
            print(f"| {r['representation']} | {r['transform']} | {r['precision@5']:.3f} | {r['ci95']} |")
        best = max((r for r in p["rows"] if "LEAKY" not in r["representation"]), key=lambda r: r["precision@5"])
        print(f"\nbest non-leaky: {best['representation']} ({best['transform']}) {best['precision@5']:.3f}; "
              f"per genre: {best['per_genre']}")
        print(f"catalogue genres: {p['catalogue_genres']}\nquery genres: {p['query_genres']}")
    if "timing" in results:
        t = results["timing"]
        print(f"\n## Build throughput (one core, {t['clips']} full 30 s clips, median)\n")
        print(f"CPU s per track {t['cpu_s_per_track']:.3f} (genre pass alone {t['genre_pass_cpu_s']:.3f}); "
              f"{t['tracks_per_min_per_core']:.0f} tracks/min/core; 10,000 previews on 2 cores: "
              f"{t['hours_for_10k_on_2_cores']:.2f} h (target <= 1 h: <= 0.72 CPU s per track)")
    if "latency" in results:
        print("\n## similar latency (synthetic 384-d embeddings, 50 queries)\n")
        print("| rows | candidates | median ms | p95 ms | index build s |\n| ---: | --- | ---: | ---: | ---: |")
        for r in results["latency"]:
            print(f"| {r['rows']:,} | {r['within']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['index_build_s']:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gtzan", type=Path, default=config.SHARED_DATA_DIR / "gtzan")
    parser.add_argument("--work", type=Path, default=config.INTERIM_DATA_DIR / "bench_similar")
    parser.add_argument("--timing-clips", type=int, default=10)
    parser.add_argument("--skip-precision", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not (args.gtzan / "manifest.csv").is_file() and not (args.skip_precision and args.skip_timing):
        sys.exit(f"{args.gtzan}: no GTZAN manifest (the shared data is not there)")
    one_core()
    results = {}
    if not args.skip_timing:
        results["timing"] = timing(args.gtzan, args.timing_clips)
    if not args.skip_latency:
        results["latency"] = latency()
    if not args.skip_precision:
        results["precision"] = precision(args.gtzan, args.work)
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
