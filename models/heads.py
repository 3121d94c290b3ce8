"""Genre heads on pretrained embeddings, trained, compared and shipped on the shared GTZAN audio.

The data: every file of ``../shared/data/gtzan`` (manifest.csv: 133 full 30 s clips, 51
classical 15 s excerpts, 214 snippets of 2-3 s; train and valid folds of the fault-filtered,
artist-disjoint split; the test fold is not there and is never used). Each file's model inputs
are computed once, through the blend's own code (:func:`file_windows`: the same blocks,
sample rates and window functions as :func:`models.blend.predict_blend`), and cached under
``data/interim/genre_windows/`` keyed by the file's checksum and the embedding weights.

Then: :data:`CANDIDATES` (linear / MLP heads on musicnn, on EfficientAT, and their late and
early fusion) are scored by :func:`compare` (artist-disjoint valid fold and grouped CV, clips and
snippets apart), :func:`best_candidate` picks what ships, :func:`to_keras` exports the
scikit-learn fits exactly into the Keras builders' layers and :func:`ship` saves the model folder
with its card. :func:`fit_rule_rates` tunes and scores :mod:`models.fit` on the same data plus
seeded out-of-vocabulary audio. ``python -m tracklens.models.heads`` (``make default-model``)
does all of it; ``bench/genre.py`` prints the comparison with timings.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.fileio import file_checksum
from tracklens.errors import TracklensError
from tracklens.fileio import atomic_write_bytes
from tracklens.models import datasets, evaluate

CACHE_VERSION = 1  # bump when the cached inputs of the same file and weights would change
#: manifest kind -> how the comparison groups it: whole clips (30 s, 15 s) or short windows (2-3 s)
LENGTH_GROUPS = {"full30s": "clips", "full30s_16k": "clips", "excerpt15s": "clips", "snippet2to3s": "snippets"}


def cache_dir() -> Path:
    return config.INTERIM_DATA_DIR / "genre_windows"


def shared_files(gtzan_dir: str | Path | None = None) -> pd.DataFrame:
    """The shared GTZAN files: ``path, label, clip, fold, kind, length`` (length: clips / snippets)."""
    gtzan = Path(gtzan_dir) if gtzan_dir else config.SHARED_DATA_DIR / "gtzan"
    manifest_path = gtzan / "manifest.csv"
    if not manifest_path.is_file():
        raise TracklensError(f"{manifest_path}: no GTZAN manifest (the shared data is not there)")
    manifest = pd.read_csv(manifest_path)
    manifest = manifest[manifest["fold"].isin(("train", "valid"))].copy()  # never anything else
    manifest["path"] = [str(gtzan / Path(p).relative_to(Path(p).parts[0], "data", "gtzan")) for p in manifest["path"]]
    manifest["length"] = manifest["kind"].map(LENGTH_GROUPS)
    return manifest.rename(columns={"genre": "label"})[["path", "label", "clip", "fold", "kind", "length"]]


def _weights_key() -> list[str]:
    from tracklens.models import efficientat, musicnn

    return [efficientat.read_manifest()[efficientat.DEFAULT_MODEL]["weights_sha256"],
            musicnn.read_manifest()[musicnn.DEFAULT_MUSICNN]["weights_sha256"]]


def file_windows(path: str | Path) -> dict[str, np.ndarray]:
    """Every model input of one file, computed as the blend computes them (cached).

    Returns ``fusion_x`` (n, 1161) and ``fusion_spans`` (n, 2): the ``fusion`` columns of each
    10 s window (32 kHz decode; the ``efficientat`` kind is their first 911); ``musicnn_x``
    (m, 250) and ``musicnn_spans`` (m, 2): musicnn's embedding + tags per 3 s patch (16 kHz
    decode), the inputs of today's default model.
    """
    key = hashlib.sha256(json.dumps([file_checksum(path), *_weights_key(), CACHE_VERSION]).encode()).hexdigest()
    cached = cache_dir() / key[:2] / f"{key}.npz"
    try:
        with np.load(cached) as stored:
            return {k: stored[k] for k in stored.files}
    except (OSError, ValueError, EOFError):
        pass
    result = _compute_windows(path)
    buffer = io.BytesIO()
    np.savez(buffer, **result)
    atomic_write_bytes(cached, buffer.getvalue())
    return result


def _compute_windows(path) -> dict[str, np.ndarray]:
    from tracklens.models import blend, efficientat_models, musicnn, musicnn_models

    out: dict[str, list] = {"fusion_x": [], "fusion_spans": [], "musicnn_x": [], "musicnn_spans": []}
    columns = efficientat_models.input_columns("fusion")
    for start, end, part in blend.file_blocks(path, sr=efficientat_models.SAMPLE_RATE):
        windows = efficientat_models.window_inputs(part, columns)
        out["fusion_x"].append(windows.x)
        out["fusion_spans"] += [(start + a, start + b) for a, b in windows.spans]
    mnn_columns = efficientat_models.musicnn_columns()
    for start, end, part in blend.file_blocks(path, sr=musicnn.MUSICNN_SR):
        x, spans = musicnn_models.window_inputs(part, mnn_columns)
        out["musicnn_x"].append(x)
        out["musicnn_spans"] += [(start + a, start + b) for a, b in spans]
    return {"fusion_x": np.vstack(out["fusion_x"]), "fusion_spans": np.asarray(out["fusion_spans"], np.float64),
            "musicnn_x": np.vstack(out["musicnn_x"]), "musicnn_spans": np.asarray(out["musicnn_spans"], np.float64)}


def cache_all(files: pd.DataFrame, *, progress: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """:func:`file_windows` of every file (``files`` from :func:`shared_files`), by clip name."""
    from tqdm import tqdm

    return {clip: file_windows(path) for clip, path in tqdm(list(zip(files["clip"], files["path"])),
                                                          desc="genre windows", unit="file", disable=not progress)}



# --- rows of one input kind -------------------------------------------------------------------------

#: Input sets compared: the cached matrix they come from and which of its columns they use.
#: ``efficientat``: embedding + AudioSet logits; ``efficientat_emb``: the embedding only;
#: ``musicnn_window``: the fusion windows' musicnn means alone (the musicnn half of late fusion).
INPUT_SETS = {
    "musicnn": ("musicnn_x", slice(None)),
    "efficientat": ("fusion_x", slice(0, 911)),
    "efficientat_emb": ("fusion_x", slice(0, 384)),
    "musicnn_window": ("fusion_x", slice(911, None)),
    "fusion": ("fusion_x", slice(None)),
}


@dataclass(frozen=True)
class Rows:
    """Window rows of one input set: ``x`` (n, d), ``y`` (n,) class indices, ``clip`` / ``fold`` /
    ``length`` (n,) per row, ``columns`` (d,) and ``genres``."""

    x: np.ndarray
    y: np.ndarray
    clip: np.ndarray
    fold: np.ndarray
    length: np.ndarray
    columns: list[str]
    genres: list[str]

    def subset(self, mask: np.ndarray) -> "Rows":
        return Rows(self.x[mask], self.y[mask], self.clip[mask], self.fold[mask], self.length[mask],
                    self.columns, self.genres)


def input_rows(files: pd.DataFrame, cached: dict[str, dict[str, np.ndarray]], input_set: str) -> Rows:
    """The window rows of ``input_set`` (a key of :data:`INPUT_SETS`) of every file."""
    from tracklens.models import efficientat_models

    key, columns = INPUT_SETS[input_set]
    names = (efficientat_models.musicnn_columns() if key == "musicnn_x"
             else efficientat_models.input_columns("fusion"))[columns]
    genres = list(config.GTZAN_GENRES)
    parts, meta = [], []
    for row in files.itertuples():
        x = cached[row.clip][key][:, columns]
        parts.append(x)
        meta += [(row.label, row.clip, row.fold, row.length)] * len(x)
    label, clip, fold, length = (np.array(v) for v in zip(*meta))
    return Rows(np.vstack(parts).astype(np.float32), datasets.encode(label, genres), clip, fold, length,
                list(names), genres)


# --- heads: a linear layer or a one-hidden-layer MLP, fitted by scikit-learn ----------------------------


def fit_head(kind: str, x: np.ndarray, y: np.ndarray, strength: float, *, seed: int = config.DEFAULT_SEED):
    """A standardising pipeline: ``linear`` = multinomial logistic regression (C = ``strength``),
    ``mlp`` = one ReLU layer of 128 (L2 alpha = ``strength``). Both export exactly to Keras."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "linear":
        head = LogisticRegression(C=strength, max_iter=2000, random_state=seed)
    elif kind == "mlp":
        head = MLPClassifier((MLP_HIDDEN,), alpha=strength, max_iter=400, random_state=seed)
    else:
        raise TracklensError(f"unknown head {kind!r}; choose linear or mlp")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs/adam "did not converge" at max_iter: scored as is
        return make_pipeline(StandardScaler(), head).fit(x, y)


def window_logits(pipeline, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Log-probabilities (n, n_classes) of a fitted head, classes it never saw at -inf-like."""
    out = np.full((len(x), n_classes), -30.0)
    out[:, pipeline.classes_] = np.log(np.clip(pipeline.predict_proba(x), 1e-12, 1.0))
    return out


def track_probs(logits: np.ndarray, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids, (n_clips, k) probabilities): the blend's aggregation, softmax of mean log-probabilities."""
    tracks, mean = evaluate.aggregate_segments(clips, evaluate.softmax(logits, axis=1), method="mean_logprob")
    return tracks, mean


MLP_HIDDEN = 128
STRENGTHS = {"linear": (0.003, 0.01, 0.03, 0.1, 0.3), "mlp": (0.1, 1.0, 3.0, 10.0)}
N_FOLDS = 5


@dataclass(frozen=True)
class Candidate:
    """A genre model compared here: one head on one input set, or a late fusion of several whose
    window log-probabilities are summed with ``weights`` (chosen on the train fold when None)."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (input set, head kind)
    note: str = ""


CANDIDATES = (
    Candidate("musicnn_linear", (("musicnn", "linear"),), "today's default recipe: musicnn 3 s patches, linear"),
    Candidate("musicnn_mlp", (("musicnn", "mlp"),), "musicnn 3 s patches, MLP"),
    Candidate("efficientat_linear", (("efficientat", "linear"),), "mn04 10 s windows (embedding + AudioSet logits), linear"),
    Candidate("efficientat_emb_linear", (("efficientat_emb", "linear"),), "mn04 embedding only, linear"),
    Candidate("efficientat_mlp", (("efficientat", "mlp"),), "mn04 10 s windows, MLP"),
    Candidate("fusion_late", (("efficientat", "linear"), ("musicnn_window", "linear")),
              "late fusion: weighted sum of the two linear heads' log-probabilities per 10 s window"),
    Candidate("fusion_early", (("fusion", "linear"),), "early fusion: one linear head on both embeddings"),
)


def grouped_splits(rows: Rows, mask: np.ndarray, *, seed: int, n_folds: int = N_FOLDS):
    """Stratified K-fold over the clips of ``rows[mask]`` (a clip's windows stay together):
    yields (fit mask, test mask) over all rows."""
    from sklearn.model_selection import StratifiedGroupKFold

    index = np.flatnonzero(mask)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_idx, test_idx in splitter.split(index, rows.y[index], groups=rows.clip[index]):
        fit_mask, test_mask = np.zeros(len(rows.y), bool), np.zeros(len(rows.y), bool)
        fit_mask[index[fit_idx]], test_mask[index[test_idx]] = True, True
        yield fit_mask, test_mask


def oof_logits(rows: Rows, mask: np.ndarray, head: str, strength: float, *, seed: int) -> np.ndarray:
    """Out-of-fold window log-probabilities for the rows in ``mask`` (NaN elsewhere)."""
    k = len(rows.genres)
    out = np.full((len(rows.y), k), np.nan)
    for fit_mask, test_mask in grouped_splits(rows, mask, seed=seed):
        out[test_mask] = window_logits(fit_head(head, rows.x[fit_mask], rows.y[fit_mask], strength, seed=seed),
                                       rows.x[test_mask], k)
    return out


def track_level(rows: Rows, logits: np.ndarray, mask: np.ndarray) -> dict:
    """Clip ids, labels, lengths and probabilities of the rows in ``mask``."""
    clips, probs = track_probs(logits[mask], rows.clip[mask])
    first = pd.DataFrame({"clip": rows.clip[mask], "y": rows.y[mask], "length": rows.length[mask]}).groupby("clip").first()
    return {"clips": clips, "y": first.loc[clips, "y"].to_numpy(), "length": first.loc[clips, "length"].to_numpy(),
            "probs": probs}


def choose_strength(rows: Rows, mask: np.ndarray, head: str, *, seed: int) -> tuple[float, np.ndarray]:
    """The regularisation with the lowest out-of-fold track log-loss on ``mask``; (strength, its OOF logits)."""
    best = None
    for strength in STRENGTHS[head]:
        logits = oof_logits(rows, mask, head, strength, seed=seed)
        t = track_level(rows, logits, mask)
        loss = evaluate.log_loss(t["y"], t["probs"])
        if best is None or loss < best[0]:
            best = (loss, strength, logits)
    return best[1], best[2]


# --- one candidate, both protocols ----------------------------------------------------------------

FUSION_WEIGHTS = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))


def _fuse(logits: list[np.ndarray], weights: tuple[float, ...]) -> np.ndarray:
    return sum(w * z for w, z in zip(weights, logits))


def _choose_weights(rows: Rows, oof: list[np.ndarray], mask: np.ndarray) -> tuple[float, ...]:
    """Late-fusion weights (two parts: a, 1 - a) with the lowest out-of-fold track log-loss
    after temperature scaling."""
    if len(oof) == 1:
        return (1.0,)
    best = None
    for a in FUSION_WEIGHTS:
        t = track_level(rows, _fuse(oof, (a, 1 - a)), mask)
        loss = evaluate.log_loss(t["y"], evaluate.apply_temperature(t["probs"], evaluate.fit_temperature(t["y"], t["probs"])))
        if best is None or loss < best[0]:
            best = (loss, (float(a), float(1 - a)))
    return best[1]


def compare(candidate: Candidate, rows: dict[str, Rows], *, seed: int = config.DEFAULT_SEED,
            memo: dict | None = None) -> dict:
    """Score one candidate two ways (see bench/genre.py):

    ``valid``: regularisation and fusion weights chosen on the train fold alone (grouped CV by
    clip), then fitted on train and scored on the artist-disjoint valid fold, each valid track
    calibrated by a temperature fitted on the other valid tracks (5-fold cross-fitting, as
    :func:`models.train.score_model`). The temperature that ships (``temperature``) is fitted
    on all of these artist-disjoint predictions: the train fold's own out-of-fold predictions
    share artists across folds and came out too confident for new artists (T 0.8-1.0 there,
    1.1-1.4 on the valid fold);
    ``cv``: 5-fold CV grouped by clip over train + valid with those choices, temperature
    cross-fitted (GTZAN repeats artists across clips, so optimistic). ``memo`` keeps each
    (input set, head)'s fits across candidates (a late fusion reuses its parts').
    """
    from tracklens.models import train

    memo = {} if memo is None else memo

    def once(key, make):
        if key not in memo:
            memo[key] = make()
        return memo[key]

    parts = [(input_set, rows[input_set], head) for input_set, head in candidate.parts]
    base = parts[0][1]
    train_mask, valid_mask, every = base.fold == "train", base.fold == "valid", np.ones(len(base.y), bool)
    chosen = [once((name, head, "choose"), lambda r=r, head=head: choose_strength(r, train_mask, head, seed=seed))
              for name, r, head in parts]
    weights = _choose_weights(base, [oof for _, oof in chosen], train_mask)

    def valid_part(r, head, strength):
        head_fit = fit_head(head, r.x[train_mask], r.y[train_mask], strength, seed=seed)
        return window_logits(head_fit, r.x[valid_mask], len(r.genres))

    valid_logits = np.full((len(base.y), len(base.genres)), np.nan)
    valid_logits[valid_mask] = _fuse([once((name, head, "valid"), lambda r=r, head=head, s=s: valid_part(r, head, s))
                                      for (name, r, head), (s, _) in zip(parts, chosen)], weights)
    valid = track_level(base, valid_logits, valid_mask)
    valid["probs_raw"] = valid["probs"]
    valid["probs"] = train.cross_fitted_calibration(valid["y"], valid["probs_raw"], seed=seed)
    temperature = evaluate.fit_temperature(valid["y"], valid["probs_raw"])
    cv = track_level(base, _fuse([once((name, head, "cv"), lambda r=r, head=head, s=s: oof_logits(r, every, head, s, seed=seed))
                                  for (name, r, head), (s, _) in zip(parts, chosen)], weights), every)
    cv["probs_raw"] = cv["probs"]
    cv["probs"] = train.cross_fitted_calibration(cv["y"], cv["probs"], seed=seed)
    cv["temperature"] = evaluate.fit_temperature(cv["y"], cv["probs_raw"])
    return {"name": candidate.name, "note": candidate.note, "strengths": [s for s, _ in chosen], "weights": weights,
            "temperature": temperature, "valid": valid, "cv": cv, "genres": base.genres}


def scores(track: dict, genres: list[str], *, length: str | None = None) -> dict:
    """Headline metrics, per-genre recall and ROC-AUC of a :func:`track_level` result (one length group or all)."""
    mask = np.ones(len(track["y"]), bool) if length is None else track["length"] == length
    y, probs = track["y"][mask], track["probs"][mask]
    out = evaluate.classification_metrics(y, probs, class_names=genres)
    predicted = probs.argmax(axis=1)
    out.update({f"recall_{g}": float(np.mean(predicted[y == i] == i)) if (y == i).any() else float("nan")
                for i, g in enumerate(genres)})
    return out


# --- export: the fitted heads as Keras models the blend loads -------------------------------------------


def to_keras(pipelines: list, kinds: list[str], weights: tuple[float, ...], n_classes: int):
    """A Keras model (``models.builders``) computing exactly what the fitted heads compute.

    One head: its scaler becomes the Normalization layer and its weights the Dense layers. Several
    linear heads on consecutive column blocks (late fusion): one linear layer whose blocks are
    each head's weights times its fusion weight, which gives ``softmax(sum_i w_i * logits_i)``,
    the normalised product of the heads' probabilities raised to their weights.
    """
    from tracklens.models import builders

    scalers = [p[0] for p in pipelines]
    norm = (np.concatenate([s.mean_ for s in scalers]), np.concatenate([s.scale_ ** 2 for s in scalers]))
    if kinds == ["mlp"]:
        mlp = pipelines[0][-1]
        model = builders.build_mlp((len(norm[0]),), n_classes, hidden=(MLP_HIDDEN,), norm=norm)
        model.get_layer("dense0").set_weights([mlp.coefs_[0], mlp.intercepts_[0]])
        model.get_layer("genre").set_weights([mlp.coefs_[1], mlp.intercepts_[1]])
        return model
    if any(kind != "linear" for kind in kinds):
        raise TracklensError(f"late fusion exports linear heads only, not {kinds}")
    model = builders.build_linear((len(norm[0]),), n_classes, norm=norm)
    kernel = np.vstack([w * p[-1].coef_.T for w, p in zip(weights, pipelines)])
    bias = sum(w * p[-1].intercept_ for w, p in zip(weights, pipelines))
    model.get_layer("genre").set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


# --- the fit rule's data: GTZAN folds (in vocabulary) and seeded out-of-vocabulary audio --------------------

FIT_TUNE_SEED = 0  # OOV audio of this seed tunes the rule (models.fit); other seeds test it
FIT_TEST_SEEDS = (1, 2)
OOV_PER_KIND = 8


def gtzan_evidence(files: pd.DataFrame) -> list:
    """The fit rule's :class:`models.fit.Evidence` of shared GTZAN files (from their cached windows)."""
    from tracklens.models import efficientat, fit

    names = efficientat.class_names()
    first = efficientat.EMBEDDING_SIZE
    out = []
    for path in files["path"]:
        logits = file_windows(path)["fusion_x"][:, first:first + len(names)].astype(np.float64)
        out.append(fit.evidence((1.0 / (1.0 + np.exp(-logits))).mean(axis=0), names))
    return out


def oov_files(seed: int, *, per_kind: int = OOV_PER_KIND) -> list[Path]:
    """The out-of-vocabulary clips of one seed (:mod:`models.oov`, made once under data/interim/oov/)."""
    from tracklens.models import oov

    return oov.write_set(config.INTERIM_DATA_DIR / "oov" / str(seed), seed=seed, per_kind=per_kind)


def file_evidence(path):
    """The fit rule's evidence of one audio file: EfficientAT over its 10 s windows, decoded at 32 kHz."""
    from tracklens.audio import load_audio
    from tracklens.models import efficientat, fit

    out = efficientat.embed(clip=load_audio(path, sr=efficientat.SAMPLE_RATE))
    return fit.evidence(out["tags"], efficientat.class_names())


def fit_rule_rates(rule: dict | None = None, *, log=print) -> dict:
    """Tune the fit rule on the train fold + seed-0 OOV audio; flag rates of ``rule`` (default:
    the tuned one) there and on the valid fold (all files, and whole clips alone) + other seeds' OOV."""
    from tracklens.models import fit

    files = shared_files()
    train_files, valid_files = files[files["fold"] == "train"], files[files["fold"] == "valid"]
    tune_in, tune_out = gtzan_evidence(train_files), [file_evidence(p) for p in oov_files(FIT_TUNE_SEED)]
    tuned = fit.tune(tune_in, tune_out)
    rule = rule or tuned
    test_in = gtzan_evidence(valid_files)
    test_clips = [ev for ev, length in zip(test_in, valid_files["length"]) if length == "clips"]
    test_paths = [p for seed in FIT_TEST_SEEDS for p in oov_files(seed)]
    test_out = [file_evidence(p) for p in test_paths]
    kinds = np.array([p.name.split(".")[0] for p in test_paths])
    flagged_out = np.array([fit.decide(ev, rule).fit == "poor" for ev in test_out])
    rates = {"tuned_rule": tuned, "rule": rule,
             "train_flagged": fit.flag_rates(tune_in, [], rule)[0], "tune_oov_flagged": fit.flag_rates([], tune_out, rule)[1],
             "valid_flagged": fit.flag_rates(test_in, [], rule)[0], "valid_clips_flagged": fit.flag_rates(test_clips, [], rule)[0],
             "test_oov_flagged": float(flagged_out.mean()),
             "test_oov_by_kind": {k: float(flagged_out[kinds == k].mean()) for k in dict.fromkeys(kinds)},
             "n": {"train": len(tune_in), "valid": len(test_in), "valid_clips": len(test_clips),
                   "tune_oov": len(tune_out), "test_oov": len(test_out)}}
    log(f"fit rule tuned on train + seed-{FIT_TUNE_SEED} OOV: {tuned}; scored: {rule}")
    log(f"flagged poor: train fold {rates['train_flagged']:.1%} of {len(tune_in)}, seed-{FIT_TUNE_SEED} OOV "
        f"{rates['tune_oov_flagged']:.0%} of {len(tune_out)} | valid fold {rates['valid_flagged']:.1%} of {len(test_in)} "
        f"(whole clips {rates['valid_clips_flagged']:.1%} of {len(test_clips)}), OOV seeds {FIT_TEST_SEEDS} "
        f"{rates['test_oov_flagged']:.1%} of {len(test_out)} "
        f"({', '.join(f'{k} {v:.0%}' for k, v in rates['test_oov_by_kind'].items())})")
    return rates


# --- shipping ---------------------------------------------------------------------------------------

#: Candidate -> (registry model name, card input kind).
REGISTRY_NAMES = {"musicnn_linear": "musicnn_linear", "musicnn_mlp": "musicnn_mlp",
                  "efficientat_linear": "efficientat_linear", "efficientat_emb_linear": "efficientat_linear",
                  "efficientat_mlp": "efficientat_mlp", "fusion_late": "fusion_linear", "fusion_early": "fusion_linear"}


def fit_for_shipping(candidate: Candidate, result: dict, rows: dict[str, Rows], *, seed: int = config.DEFAULT_SEED):
    """The candidate's heads refitted on train + valid with the choices :func:`compare` made;
    returns (Keras model, the rows it reads: columns of all parts side by side)."""
    parts = [(rows[input_set], head) for input_set, head in candidate.parts]
    pipelines = [fit_head(head, r.x, r.y, s, seed=seed) for (r, head), s in zip(parts, result["strengths"])]
    model = to_keras(pipelines, [head for _, head in parts], result["weights"], len(parts[0][0].genres))
    joined = parts[0][0]
    if len(parts) > 1:
        joined = Rows(np.hstack([r.x for r, _ in parts]), joined.y, joined.clip, joined.fold, joined.length,
                      [c for r, _ in parts for c in r.columns], joined.genres)
    return model, joined


def ship(candidate: Candidate, result: dict, rows: dict[str, Rows], out_dir: str | Path, *, card_name: str,
         why: str, comparison: list[dict], seed: int = config.DEFAULT_SEED) -> Path:
    """Refit ``candidate`` on train + valid and save it as ``out_dir/card_name`` with its card.

    The card keeps the train-only fit's valid-fold scores (clips and snippets apart), the grouped
    CV scores (optimistic), the temperature (see :func:`compare`), ``why`` it ships and the
    whole comparison.
    """
    import time

    from tracklens.models import efficientat_models, musicnn_models, registry, store, train

    start = time.perf_counter()
    model, joined = fit_for_shipping(candidate, result, rows, seed=seed)
    registry_name = REGISTRY_NAMES[candidate.name]
    kind = registry.spec(registry_name).input_kind
    card_input = efficientat_models.card_input(kind) if kind in efficientat_models.KINDS else musicnn_models.card_input()
    window_s = efficientat_models.WINDOW_S if kind in efficientat_models.KINDS else musicnn_models.WINDOW_S
    short = frozenset(joined.clip[joined.length == "snippets"])
    inputs = datasets.ModelInputs(x=joined.x, y=joined.y, track_ids=joined.clip, folds=joined.fold,
                                  columns=joined.columns, window_s=window_s, card_input=card_input,
                                  short_tracks=short, card_data={"files": "all train/valid files of the shared "
                                                                 "GTZAN manifest (full clips, 15 s excerpts, snippets)"})
    genres = joined.genres
    valid, cv = result["valid"], result["cv"]
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    model(joined.x[joined.fold == "valid"], training=False)  # the head alone, as train.score_model times it
    infer_ms = 1000 * (time.perf_counter() - start) / len(valid["clips"])
    card = train.model_card(
        registry_name, inputs, {"metrics": scores(valid, genres), "train_s": train_s, "infer_ms": infer_ms,
                                "n_params": int(model.count_params())},
        card_name=card_name, genres=genres, features_path=shared_files_path(),
        split={"method": "split files (fault-filtered, artist-disjoint train/valid)", "seed": seed,
               "refit": {"folds": "train+valid", "rows": int(len(joined.y))}},
        parameters={"candidate": candidate.name, "heads": [h for _, h in candidate.parts],
                    "regularisation": result["strengths"], "fusion_weights": list(result["weights"]), "seed": seed,
                    "fitted_by": "scikit-learn (lbfgs / adam), exported exactly into the Keras layers"},
        calibration={"temperature": result["temperature"],
                     "fitted_on": "the train-only fit's track-level predictions on the artist-disjoint valid fold "
                                  "(new artists, as in use); grouped CV's out-of-fold temperature, too confident for new "
                                  f"artists, was {cv['temperature']:.2f}"},
        metrics={"valid_by_kind": {length: scores(valid, genres, length=length) for length in ("clips", "snippets")},
                 "grouped_cv": {"protocol": f"{N_FOLDS}-fold stratified CV grouped by clip over train + valid; artists "
                                            "repeat across clips (GTZAN), so optimistic",
                                "track_level": scores(cv, genres),
                                **{length: scores(cv, genres, length=length) for length in ("clips", "snippets")}},
                 "note": "valid_*: heads fitted on the train fold, scored on the artist-disjoint valid fold (each "
                         "track's temperature fitted on the other valid tracks); the weights here were then refit "
                         "on train + valid",
                 "why_shipped": why, "comparison": comparison})
    model_dir = Path(out_dir) / card_name
    store.save_model_dir(model_dir, card, keras_model=model)
    store.write_predictions(model_dir / store.PREDICTIONS_NAME,
                            {"tracks": valid["clips"], "y_true": valid["y"], "y_score_raw": valid["probs_raw"],
                             "y_score": valid["probs"]}, genres)
    return model_dir


def shared_files_path() -> str:
    return "../shared/data/gtzan/manifest.csv"


# --- the comparison -----------------------------------------------------------------------------------

HEADLINE = ("accuracy", "balanced_accuracy", "macro_roc_auc", "ece")


def comparison(results: list[dict]) -> list[dict]:
    """One row per candidate x protocol (valid / cv) x length (clips / snippets): the headline
    metrics, per-genre recall and per-genre ROC-AUC (NaN where the part lacks the genre)."""
    out = []
    for r in results:
        for protocol in ("valid", "cv"):
            for length in ("clips", "snippets"):
                s = scores(r[protocol], r["genres"], length=length)
                out.append({"model": r["name"], "protocol": protocol, "length": length, "n": s["n"],
                            **{k: round(s[k], 4) for k in HEADLINE},
                            **{k: round(v, 4) for k, v in s.items() if k.startswith(("recall_", "roc_auc_"))}})
    return out


#: Input sets one EfficientAT pass computes (no musicnn): the models cheap enough to blend a whole track.
FAST_SETS = ("efficientat", "efficientat_emb")


def best_candidate(results: list[dict], *, fast_only: bool = False) -> tuple[dict, str]:
    """The candidate measuring best on whole clips, and why: the highest balanced accuracy on the
    artist-disjoint valid fold's clips; within 0.01 of it, the higher grouped-CV clip balanced
    accuracy. ``fast_only``: among the one-pass EfficientAT candidates (:data:`FAST_SETS`)."""
    def clip_score(r, protocol):
        return scores(r[protocol], r["genres"], length="clips")["balanced_accuracy"]

    names = {c.name for c in CANDIDATES if not fast_only or all(s in FAST_SETS for s, _ in c.parts)}
    pool = [r for r in results if r["name"] in names]
    top = max(clip_score(r, "valid") for r in pool)
    best = max((r for r in pool if clip_score(r, "valid") >= top - 0.01), key=lambda r: clip_score(r, "cv"))
    among = "the one-pass EfficientAT candidates (cheap enough to blend whole tracks)" if fast_only else "all candidates"
    why = (f"{best['name']}: whole-clip balanced accuracy {clip_score(best, 'valid'):.3f} on the artist-disjoint valid "
           f"fold, best of {among} ({top:.3f}; within 0.01 ranked by grouped-CV clip balanced accuracy, here "
           f"{clip_score(best, 'cv'):.3f}); metrics.comparison holds every candidate")
    return best, why


def compare_all(*, seed: int = config.DEFAULT_SEED, log=print) -> tuple[list[dict], dict[str, Rows]]:
    """Cache the shared files' inputs and :func:`compare` every candidate of :data:`CANDIDATES`."""
    files = shared_files()
    cached = cache_all(files)
    rows = {name: input_rows(files, cached, name) for name in INPUT_SETS}
    results, memo = [], {}
    for candidate in CANDIDATES:
        log(f"comparing {candidate.name} ...")
        results.append(compare(candidate, rows, seed=seed, memo=memo))
    return results, rows


def main(argv: list[str] | None = None) -> None:
    """``make default-model``: compare the candidates; ship the best as ``OUT/default`` and the best
    one-pass EfficientAT candidate as ``OUT/default-fast`` (for whole-track blends on the check page)."""
    import argparse

    parser = argparse.ArgumentParser(description="Train, compare and ship the genre heads on the shared GTZAN audio.")
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR, help="folder for the shipped model folder")
    parser.add_argument("--name", default="default", help="shipped folder / card name")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    args = parser.parse_args(argv)
    results, rows = compare_all(seed=args.seed)
    table = comparison(results)
    print(pd.DataFrame(table)[["model", "protocol", "length", "n", *HEADLINE]].to_string(index=False))
    for name, fast_only in ((args.name, False), (f"{args.name}-fast", True)):
        best, why = best_candidate(results, fast_only=fast_only)
        candidate = next(c for c in CANDIDATES if c.name == best["name"])
        print(f"shipping {name}: {why}")
        print(ship(candidate, best, rows, args.out, card_name=name, why=why, comparison=table, seed=args.seed))
    from tracklens.models import fit

    fit_rule_rates(fit.RULE)


if __name__ == "__main__":
    main()
