"""Benchmark: do EfficientAT's intermediate blocks make better genre heads and better "similar by
sound" than its final embedding? (docs/genre-layers.md)

Run:  OMP_NUM_THREADS=1 nice .venv/bin/python bench/layers.py [--cache /tmp/layers-cache] [--only NAME,...]
      [--quick] [--json results.json]
      (first run: one EfficientAT pass over every shared GTZAN file, ~5-10 CPU-minutes, cached per
      file under --cache, outside the repository; then a few CPU-minutes per representation)

Data and protocol: exactly recipes/heads.py's (what bench/genre.py runs): ../shared/data/gtzan,
train and valid folds of the fault-filtered, artist-disjoint split (the test fold is not there and
never read); every file cut into blend.file_blocks -> efficientat.cut_windows 10 s windows at
32 kHz, as the shipped blend does. Per representation one linear head (heads.fit_head: standardise
+ multinomial logistic regression), scored by heads.compare:

- ``valid``: C chosen by 5-fold CV grouped by clip on the train fold alone, fitted on train,
  scored on the valid fold's 73 whole 30 s clips (accuracy +- binomial SE, balanced accuracy);
- ``grouped CV`` over train + valid with the same C: optimistic (GTZAN repeats artists).

Representations are columns of the same forward pass (efficientat.EfficientATEmbedder.embed_layers),
so every one costs one EfficientAT pass; window-level rows unless named ``tracks`` (one row per
file: mean and std over its windows).

Similarity (bench/similar.py's protocol, label-free): catalogue = the train fold's full clips,
queries = the valid fold's full clips (bench/similar.full_clips), each file's representation the
mean over its windows; precision@5 of the query's genre among the five most similar, 95 %
bootstrap interval. Rows: the representation alone (centred on the catalogue mean, as
catalogue.SoundIndex does, or standardised on the catalogue), and in the shipped rule's place
(0.5 centred sound + 0.5 blend, the blend from the shipped fast head's recipe refit on the train
fold's track-mean embeddings: bench/similar.train_only_blend), beside today's rule in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.fileio import atomic_write_bytes, file_checksum

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "recipes"))  # the model recipes (not installed)
sys.path.insert(0, str(HERE))
import heads  # noqa: E402  (recipes/heads.py)

CACHE_VERSION = 1  # bump when the cached arrays of the same file and weights would change
DEFAULT_CACHE = Path("/tmp/layers-cache")
MID_TAPS = ("block06", "block10", "block12", "block15")


# --- one EfficientAT pass per file, every tap pooled over time (cached) -----------------------------


def file_layers(path: str, cache: Path) -> dict[str, np.ndarray]:
    """``embedding`` (n, 384), ``logits`` (n, 527) and ``<tap>/mean``, ``<tap>/std`` (n, bands,
    channels) of every 10 s window of one file, cut as the blend cuts it (blend.file_blocks)."""
    from tracklens.models import blend, efficientat

    weights = efficientat.read_manifest()[efficientat.DEFAULT_MODEL]["weights_sha256"]
    key = hashlib.sha256(json.dumps([file_checksum(path), weights, CACHE_VERSION]).encode()).hexdigest()
    cached = cache / key[:2] / f"{key}.npz"
    try:
        with np.load(cached) as stored:
            return {k: stored[k] for k in stored.files}
    except (OSError, ValueError, EOFError):
        pass
    parts: dict[str, list] = {}
    for _, _, part in blend.file_blocks(path, sr=efficientat.SAMPLE_RATE):
        out = efficientat.get_embedder().embed_layers(clip=part)
        parts.setdefault("embedding", []).append(out["embedding"])
        parts.setdefault("logits", []).append(out["logits"])
        for tap, stats in out["layers"].items():
            for stat, value in stats.items():
                parts.setdefault(f"{tap}/{stat}", []).append(value)
    result = {k: np.concatenate(v).astype(np.float32) for k, v in parts.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **result)
    atomic_write_bytes(cached, buffer.getvalue())
    return result


def cache_all(files: pd.DataFrame, cache: Path) -> dict[str, dict[str, np.ndarray]]:
    from tqdm import tqdm

    return {clip: file_layers(path, cache) for clip, path in tqdm(list(zip(files["clip"], files["path"])),
                                                                 desc="EfficientAT layers", unit="file")}


# --- representations: window rows built from one file's cached arrays ------------------------------


def _stats(layers: dict, taps) -> np.ndarray:
    from tracklens.models import efficientat

    return efficientat.layer_statistics({t: {"mean": layers[f"{t}/mean"], "std": layers[f"{t}/std"]} for t in taps}, tuple(taps))


def _bands(layers: dict, tap: str, *, std: bool = False) -> np.ndarray:
    """The tap's per-band time means (and stds), flattened: frequency-resolved features."""
    mean = layers[f"{tap}/mean"].reshape(len(layers[f"{tap}/mean"]), -1)
    return np.hstack([mean, layers[f"{tap}/std"].reshape(len(mean), -1)]) if std else mean


def _final_std(layers: dict) -> np.ndarray:
    return _stats(layers, ("final_conv",))[:, 384:]


#: name -> (how a file's window rows are made, note). All from the one forward pass.
WINDOW_REPRESENTATIONS = {
    "emb": (lambda L: L["embedding"], "final 384-d embedding (the shipped default's input)"),
    "emb+final_std": (lambda L: np.hstack([L["embedding"], _final_std(L)]),
                      "embedding + std over freq x time of the final conv (768)"),
    "mid_stats": (lambda L: _stats(L, MID_TAPS), "mean+std over freq x time of blocks 6, 10, 12, 15 (320)"),
    "mid_stats+emb": (lambda L: np.hstack([_stats(L, MID_TAPS), L["embedding"]]), "mid_stats + embedding (704)"),
    "block12x_stats": (lambda L: _stats(L, ("block12_expanded",)), "mean+std of block 12's expanded depthwise output (544)"),
    "block12x_stats+emb": (lambda L: np.hstack([_stats(L, ("block12_expanded",)), L["embedding"]]),
                           "block12x_stats + embedding (928)"),
    "all_stats": (lambda L: _stats(L, tuple(_TAPS())), "mean+std of all 7 taps incl. block 3 and the final conv (1664)"),
    "final_bands": (lambda L: _bands(L, "final_conv"), "final conv, time mean per frequency band (4 x 384 = 1536)"),
    "block15_bands+emb": (lambda L: np.hstack([_bands(L, "block15", std=True), L["embedding"]]),
                          "block 15 per band mean+std (512) + embedding (896)"),
}


def _TAPS():
    from tracklens.models import efficientat

    return efficientat.LAYER_TAPS


#: name -> (which window representation, note): one row per file, mean and std over its windows.
TRACK_REPRESENTATIONS = {
    "emb tracks mean+std": ("emb", "mean and std of the embedding over the file's windows (768), one row per file"),
    "mid_stats+emb tracks mean+std": ("mid_stats+emb", "mean and std of mid_stats+emb over windows (1408), one row per file"),
}


def rows_of(files: pd.DataFrame, cached: dict, name: str) -> heads.Rows:
    """:class:`heads.Rows` of one representation (window rows, or file rows for TRACK_REPRESENTATIONS)."""
    from tracklens.models import datasets

    per_track = name in TRACK_REPRESENTATIONS
    make = WINDOW_REPRESENTATIONS[TRACK_REPRESENTATIONS[name][0] if per_track else name][0]
    parts, meta = [], []
    for row in files.itertuples():
        x = make(cached[row.clip]).astype(np.float32)
        if per_track:
            x = np.concatenate([x.mean(axis=0), x.std(axis=0)])[None, :]
        parts.append(x)
        meta += [(row.label, row.clip, row.fold, row.length)] * len(x)
    label, clip, fold, length = (np.array(v) for v in zip(*meta))
    genres = list(config.GTZAN_GENRES)
    x = np.vstack(parts)
    return heads.Rows(x, datasets.encode(label, genres), clip, fold, length, [f"{name}_{i}" for i in range(x.shape[1])], genres)


# --- genre heads ------------------------------------------------------------------------------------


def genre_row(name: str, result: dict) -> dict:
    out = {"representation": name}
    for protocol in ("valid", "cv"):
        s = heads.scores(result[protocol], result["genres"], length="clips")
        out[protocol] = {"n": s["n"], "accuracy": s["accuracy"], "se": float(np.sqrt(s["accuracy"] * (1 - s["accuracy"]) / s["n"])),
                         "balanced_accuracy": s["balanced_accuracy"],
                         "recall": {g: s[f"recall_{g}"] for g in result["genres"]}}
        every = heads.scores(result[protocol], result["genres"])
        out[protocol]["all_tracks_balanced_accuracy"] = every["balanced_accuracy"]
    out["strength"] = result["strengths"][0]
    return out


# --- similarity ---------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sound_block(train: np.ndarray, query: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Centred (catalogue.SoundIndex) or standardised on the catalogue, then unit length."""
    train, query = train.astype(np.float64), query.astype(np.float64)
    mean = train.mean(axis=0)
    scale = np.where(train.std(axis=0) > 1e-9, train.std(axis=0), 1.0) if how == "standardised" else 1.0
    return _unit((train - mean) / scale), _unit((query - mean) / scale)


def similarity_rows(cached: dict, names: list[str], gtzan: Path) -> tuple[list[dict], float]:
    import similar  # bench/similar.py

    files = similar.full_clips(gtzan)
    is_train = (files["fold"] == "train").to_numpy()
    labels = files["label"].to_numpy()
    genres = list(config.GTZAN_GENRES)
    track = lambda name: np.vstack([WINDOW_REPRESENTATIONS[name][0](cached[c]).mean(axis=0) for c in files["clip"]])  # noqa: E731
    emb = track("emb")
    blend_today = similar.train_only_blend(emb, labels, is_train, genres)  # today's honest blend
    rows = []

    def score(name: str, how: str, train: np.ndarray, query: np.ndarray) -> None:
        per_query = similar.precision_at_k(train, labels[is_train], query, labels[~is_train])
        low, high = similar.bootstrap_interval(per_query)
        rows.append({"representation": name, "how": how, "precision@5": float(per_query.mean()), "ci95": [low, high]})

    half = np.sqrt(0.5)
    for name in names:
        x = track(name)
        for how in ("centred", "standardised"):
            tr, q = sound_block(x[is_train], x[~is_train], how)
            score(name, f"{how}, alone", tr, q)
            blend = _unit(blend_today)
            score(name, f"0.5 {how} + 0.5 blend (today's head)", np.hstack([half * tr, half * blend[is_train]]),
                  np.hstack([half * q, half * blend[~is_train]]))
        own = similar.train_only_blend(x, labels, is_train, genres)  # the same head recipe on this representation
        tr, q = sound_block(x[is_train], x[~is_train], "centred")
        score(name, "0.5 centred + 0.5 blend of a head on it", np.hstack([half * tr, half * _unit(own)[is_train]]),
              np.hstack([half * q, half * _unit(own)[~is_train]]))
    chance = float(np.mean([np.mean(labels[is_train] == g) for g in labels[~is_train]]))
    return rows, chance


# --- cost ------------------------------------------------------------------------------------------


def cost(path: Path, repeats: int = 3) -> dict[str, float]:
    """Process CPU-s of one 30 s clip's pass: embed (what ships) and embed_layers (with the taps),
    decode included, this process pinned to one core and TensorFlow to one thread."""
    import tensorflow as tf

    from tracklens.audio import load_audio
    from tracklens.models import efficientat

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    embedder = efficientat.get_embedder()
    out = {}
    for name, fn in (("embed", embedder.embed), ("embed_layers", embedder.embed_layers)):
        run = lambda: fn(clip=load_audio(path, sr=efficientat.SAMPLE_RATE))  # noqa: E731
        run()
        times = []
        for _ in range(repeats):
            start = time.process_time()
            run()
            times.append(time.process_time() - start)
        out[name] = statistics.median(times)
    return out


# --- report --------------------------------------------------------------------------------------------


def print_report(results: dict) -> None:
    print("\n## Genre heads (linear, heads.compare; whole 30 s clips)\n")
    print("| representation | valid acc ± SE | valid balanced | grouped CV (optimistic) | C |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in results["genre"]:
        v, c = r["valid"], r["cv"]
        print(f"| {r['representation']} | {v['accuracy']:.3f} ± {v['se']:.3f} ({round(v['accuracy'] * v['n'])}/{v['n']}) | "
              f"{v['balanced_accuracy']:.3f} | {c['accuracy']:.3f} ± {c['se']:.3f} | {r['strength']} |")
    if results.get("similarity"):
        print(f"\n## Similarity, label-free (valid full clips -> train-fold catalogue; chance {results['chance']:.3f})\n")
        print("| representation | how | precision@5 | 95 % CI |")
        print("| --- | --- | ---: | --- |")
        for r in results["similarity"]:
            print(f"| {r['representation']} | {r['how']} | {r['precision@5']:.3f} | {r['ci95'][0]:.2f}-{r['ci95'][1]:.2f} |")
    if results.get("cost"):
        print("\nCPU-s per 30 s clip (decode + EfficientAT pass, one core, median of 3): "
              + ", ".join(f"{k} {v:.3f}" for k, v in results["cost"].items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="per-file EfficientAT layers (outside the repo)")
    parser.add_argument("--gtzan", type=Path, default=config.SHARED_DATA_DIR / "gtzan")
    parser.add_argument("--only", default="", help="comma-separated representations (default: all)")
    parser.add_argument("--quick", action="store_true", help="C fixed at 0.03 instead of chosen")
    parser.add_argument("--skip-genre", action="store_true")
    parser.add_argument("--skip-similarity", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()] or [*WINDOW_REPRESENTATIONS, *TRACK_REPRESENTATIONS]
    files = heads.shared_files(args.gtzan)
    cached = cache_all(files, args.cache)
    results: dict = {"genre": [], "similarity": [], "cost": {}}
    if not args.skip_genre:
        grid = heads.QUICK_STRENGTHS if args.quick else None
        for name in names:
            started = time.process_time()
            rows = rows_of(files, cached, name)
            candidate = heads.Candidate(name, ((name, "linear"),))
            r = genre_row(name, heads.compare(candidate, {name: rows}, seed=args.seed, grid=grid))
            results["genre"].append(r)
            print(f"{name}: valid {r['valid']['accuracy']:.3f} ± {r['valid']['se']:.3f}, balanced "
                  f"{r['valid']['balanced_accuracy']:.3f}, grouped CV {r['cv']['accuracy']:.3f} "
                  f"(C {r['strength']}, {time.process_time() - started:.0f} CPU-s)", flush=True)
    if not args.skip_similarity:
        window_names = [n for n in names if n in WINDOW_REPRESENTATIONS]
        results["similarity"], results["chance"] = similarity_rows(cached, window_names, args.gtzan)
    if not args.skip_cost:
        results["cost"] = cost(args.gtzan / "audio" / "rock" / "rock.00000.opus")
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
