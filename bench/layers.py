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
bootstrap interval. Options: 0.5 sound (centred on the catalogue mean, as catalogue.SoundIndex
does) + 0.5 genre blend, or either alone; the blend from the shipped fast head's recipe refit on
the catalogue's track means of a representation (bench/similar.train_only_blend). Chosen by
5-fold retrieval inside the train fold (bench/similar.inner_folds) with bench/similar.py's rule
(index <= 450 columns, paired bootstrap gain above zero), today's rule in the same run.
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


#: name -> (window representation, components): standardised, then PCA fitted on the train fold's
#: window rows alone (no labels, no valid rows), keeping that many components.
PCA_REPRESENTATIONS = {
    "all_stats pca128": ("all_stats", 128),
    "mid_stats+emb pca128": ("mid_stats+emb", 128),
    "final_bands pca128": ("final_bands", 128),
}
#: name -> the input sets of a late fusion (heads.compare: one linear head each, window
#: log-probabilities summed with weights chosen by grouped CV on the train fold)
FUSIONS = {
    "late fusion: emb & mid_stats": ("emb", "mid_stats"),
    "late fusion: emb & block12x_stats": ("emb", "block12x_stats"),
    "late fusion: emb & final_bands": ("emb", "final_bands"),
}


def rows_of(files: pd.DataFrame, cached: dict, name: str) -> heads.Rows:
    """:class:`heads.Rows` of one representation (window rows, or file rows for TRACK_REPRESENTATIONS)."""
    from tracklens.models import datasets

    if name in PCA_REPRESENTATIONS:
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        source, components = PCA_REPRESENTATIONS[name]
        rows = rows_of(files, cached, source)
        pca = make_pipeline(StandardScaler(), PCA(components, random_state=0)).fit(rows.x[rows.fold == "train"])
        x = pca.transform(rows.x).astype(np.float32)
        return heads.Rows(x, rows.y, rows.clip, rows.fold, rows.length, [f"{name}_{i}" for i in range(components)], rows.genres)
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


def train_cv_accuracy(rows: dict[str, heads.Rows], candidate: heads.Candidate, seed: int, grid=None) -> float:
    """The selection score: whole-clip accuracy of grouped 5-fold CV inside the train fold alone
    (out-of-fold, at the C each part's CV chose; a fusion at its chosen weights). Optimistic
    (artists repeat across clips), but it never reads the valid fold."""
    oof = []
    for input_set, head in candidate.parts:
        r = rows[input_set]
        oof.append(heads.choose_strength(r, r.fold == "train", head, seed=seed, grid=grid)[1])
    base = rows[candidate.parts[0][0]]
    mask = base.fold == "train"
    weights = heads._choose_weights(base, oof, mask)
    t = heads.track_level(base, heads._fuse(oof, weights), mask)
    clips = t["length"] == "clips"
    return float(np.mean(t["probs"][clips].argmax(axis=1) == t["y"][clips]))


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
    out["weights"] = list(result["weights"])
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


SIMILARITY_WIDTH = 450  # bench/similar.MAX_INDEX_WIDTH: the widest index within `similar`'s 50 ms at 100,000 rows
TODAY = "sound emb + blend(emb head)"


def _options(reps: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """Similarity options: name -> (sound representation or None, representation the blend head reads or None)."""
    out = {TODAY: ("emb", "emb")}
    for r in reps:
        if r == "emb":
            out |= {"sound emb alone": ("emb", None), "blend(emb head) alone": (None, "emb")}
            continue
        out |= {f"sound {r} alone": (r, None), f"blend({r} head) alone": (None, r),
                f"sound {r} + blend(emb head)": (r, "emb"), f"sound emb + blend({r} head)": ("emb", r),
                f"sound {r} + blend({r} head)": (r, r)}
    return out


def _precision(x: dict, option: tuple, labels: np.ndarray, cat: np.ndarray, query: np.ndarray, genres: list[str]) -> np.ndarray:
    """Per query precision@5: 0.5 centred sound + 0.5 blend (or either alone), fitted on ``cat`` only."""
    import similar  # bench/similar.py

    sound, head = option
    parts_c, parts_q = [], []
    share = np.sqrt(0.5) if sound and head else 1.0
    if sound:
        c, q = sound_block(x[sound][cat], x[sound][query], "centred")
        parts_c.append(share * c), parts_q.append(share * q)
    if head:
        probs = _unit(similar.train_only_blend(x[head], labels, cat, genres))
        parts_c.append(share * probs[cat]), parts_q.append(share * probs[query])
    return similar.precision_at_k(np.hstack(parts_c), labels[cat], np.hstack(parts_q), labels[query])


def similarity_rows(cached: dict, names: list[str], gtzan: Path) -> dict:
    """Every option scored by 5-fold retrieval inside the train fold (bench/similar.inner_folds:
    the selection score, optimistic) and once valid -> train. Rule, as bench/similar.py's: the
    best inner precision@5 among options whose index fits SIMILARITY_WIDTH columns replaces
    today's only when its per-query inner gain has a 95 % paired bootstrap interval above zero."""
    import similar  # bench/similar.py

    files = similar.full_clips(gtzan)
    is_train = (files["fold"] == "train").to_numpy()
    labels = files["label"].to_numpy()
    genres = list(config.GTZAN_GENRES)
    x = {r: np.vstack([WINDOW_REPRESENTATIONS[r][0](cached[c]).mean(axis=0) for c in files["clip"]]).astype(np.float64)
         for r in dict.fromkeys(["emb", *names])}
    train = np.flatnonzero(is_train)
    fold = similar.inner_folds(files["clip"].to_numpy()[train], labels[train])
    masks = []
    for k in range(similar.INNER_FOLDS):
        cat, query = np.zeros(len(labels), bool), np.zeros(len(labels), bool)
        cat[train[fold != k]], query[train[fold == k]] = True, True
        masks.append((cat, query))
    rows = []
    for name, option in _options(list(x)).items():
        inner = np.concatenate([_precision(x, option, labels, cat, query, genres) for cat, query in masks])
        valid = _precision(x, option, labels, is_train, ~is_train, genres)
        width = (x[option[0]].shape[1] if option[0] else 0) + (len(genres) if option[1] else 0)
        rows.append({"option": name, "width": width, "inner_per_query": inner, "inner": float(inner.mean()),
                     "valid_per_query": valid, "valid": float(valid.mean()), "valid_ci95": similar.bootstrap_interval(valid)})
    today = next(r for r in rows if r["option"] == TODAY)
    eligible = sorted((r for r in rows if r["width"] <= SIMILARITY_WIDTH), key=lambda r: -r["inner"])
    best = eligible[0]
    gain = best["inner_per_query"] - today["inner_per_query"]
    rng = np.random.default_rng(0)
    draws = gain[rng.integers(0, len(gain), (similar.BOOTSTRAP, len(gain)))].mean(axis=1)
    low, high = (float(v) for v in np.quantile(draws, [0.025, 0.975]))
    chance = float(np.mean([np.mean(labels[is_train] == g) for g in labels[~is_train]]))
    for r in rows:
        r.pop("inner_per_query"), r.pop("valid_per_query")
    return {"rows": rows, "chance": chance, "best_inner": best["option"], "gain": float(gain.mean()), "gain_ci95": [low, high],
            "replaces_today": low > 0, "n_inner_queries": int(len(gain)), "n_queries": int((~is_train).sum())}


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
    print("| representation | valid acc ± SE | valid balanced | grouped CV (optimistic) | train-fold CV (selection) | C |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results["genre"]:
        v, c = r["valid"], r["cv"]
        print(f"| {r['representation']} | {v['accuracy']:.3f} ± {v['se']:.3f} ({round(v['accuracy'] * v['n'])}/{v['n']}) | "
              f"{v['balanced_accuracy']:.3f} | {c['accuracy']:.3f} ± {c['se']:.3f} | {r['train_cv']:.3f} | {r['strength']} |")
    if results["genre"]:
        pick = max(results["genre"], key=lambda r: r["train_cv"])  # first of equals: list order
        base = next((r for r in results["genre"] if r["representation"] == "emb"), None)
        print(f"\nPicked on the train fold alone (best train-fold CV whole-clip accuracy): {pick['representation']} "
              f"-> valid {pick['valid']['accuracy']:.3f} ± {pick['valid']['se']:.3f}"
              + (f" (shipped input 'emb': {base['valid']['accuracy']:.3f} ± {base['valid']['se']:.3f}; beats it by more "
                 f"than one SE: {pick['valid']['accuracy'] - base['valid']['accuracy'] > base['valid']['se']})" if base else ""))
    if results.get("similarity"):
        sim = results["similarity"]
        print(f"\n## Similarity, label-free: 0.5 centred sound + 0.5 blend, or either alone (chance {sim['chance']:.3f})\n")
        print(f"inner: 5-fold retrieval inside the train fold ({sim['n_inner_queries']} queries, optimistic, the selection "
              f"score); valid: {sim['n_queries']} valid full clips -> the train-fold catalogue\n")
        print("| option | index width | inner precision@5 | valid precision@5 | 95 % CI |")
        print("| --- | ---: | ---: | ---: | --- |")
        for r in sorted(sim["rows"], key=lambda r: -r["inner"]):
            print(f"| {r['option']} | {r['width']} | {r['inner']:.3f} | {r['valid']:.3f} | {r['valid_ci95'][0]:.2f}-{r['valid_ci95'][1]:.2f} |")
        print(f"\nBest inner within {SIMILARITY_WIDTH} columns: {sim['best_inner']}, inner gain over today "
              f"{sim['gain']:+.3f} (95 % CI {sim['gain_ci95'][0]:+.3f} to {sim['gain_ci95'][1]:+.3f}); replaces today's rule: "
              f"{sim['replaces_today']}")
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

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    genre_names = names or [*WINDOW_REPRESENTATIONS, *TRACK_REPRESENTATIONS, *PCA_REPRESENTATIONS, *FUSIONS]
    names = names or list(WINDOW_REPRESENTATIONS)
    files = heads.shared_files(args.gtzan)
    cached = cache_all(files, args.cache)
    results: dict = {"genre": [], "similarity": {}, "cost": {}}
    if not args.skip_genre:
        grid = heads.QUICK_STRENGTHS if args.quick else None
        memo_rows: dict[str, heads.Rows] = {}
        for name in genre_names:
            started = time.process_time()
            parts = FUSIONS.get(name, (name,))
            for part in parts:
                if part not in memo_rows:
                    memo_rows[part] = rows_of(files, cached, part)
            candidate = heads.Candidate(name, tuple((part, "linear") for part in parts))
            r = genre_row(name, heads.compare(candidate, {p: memo_rows[p] for p in parts}, seed=args.seed, grid=grid))
            r["train_cv"] = train_cv_accuracy(memo_rows, candidate, args.seed, grid)
            results["genre"].append(r)
            print(f"{name}: valid {r['valid']['accuracy']:.3f} ± {r['valid']['se']:.3f}, balanced "
                  f"{r['valid']['balanced_accuracy']:.3f}, grouped CV {r['cv']['accuracy']:.3f} "
                  f"(C {r['strength']}, {time.process_time() - started:.0f} CPU-s)", flush=True)
    if not args.skip_similarity:
        window_names = [n for n in names if n in WINDOW_REPRESENTATIONS]
        results["similarity"] = similarity_rows(cached, window_names, args.gtzan)
    if not args.skip_cost:
        results["cost"] = cost(args.gtzan / "audio" / "rock" / "rock.00000.opus")
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
