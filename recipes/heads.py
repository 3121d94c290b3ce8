"""Genre heads on pretrained embeddings, trained, compared and shipped on the shared GTZAN audio.

The data: every file of ``../shared/data/gtzan`` (manifest.csv: 172 full 22 kHz clips + 26 full
clips at 16 kHz, 46 classical 15 s excerpts, 179 snippets of 2-3 s; train and valid folds of the
fault-filtered, artist-disjoint split; the test fold is not there and is never used). Each file's
model inputs are computed once, through the blend's own code (:func:`file_windows`: the same
blocks, sample rates and window functions as :func:`models.blend.predict_blend`), and cached
under ``data/interim/genre_windows/`` keyed by the file's checksum and the embedding weights;
augmented copies (:func:`augmented_windows`) beside them.

Then: :data:`CANDIDATES` (linear / MLP heads on musicnn, on EfficientAT, their late and early
fusion, and EfficientAT heads trained with mixup or augmented audio, :class:`Recipe`) are scored
by :func:`compare` (artist-disjoint valid fold and grouped CV; whole 30 s clips, excerpts and
snippets apart), :func:`best_candidate` picks what ships (accuracy on the valid fold's whole
clips, the cheapest within one standard error), :func:`to_keras` exports the scikit-learn fits
exactly into the Keras builders' layers and :func:`ship` saves the model folder with its card.
:func:`fit_rule_rates` tunes and scores :mod:`models.fit` on the same data plus seeded
out-of-vocabulary audio; :func:`held_out_genre_ood` and :func:`synthetic_ood` score its
continuous form as the open-set literature does (AUROC, FPR at 95 % TPR).
``python recipes/heads.py`` (``make default-model``) ships ``default``,
``default-fast``, ``fusion`` and ``musicnn``; ``bench/genre.py`` prints the comparison with
timings; docs/genre-models.md holds the numbers.

A recipe, not part of the installed package (``recipes/`` is not installed): what users call
(train, evaluate, predict, the blend) lives in :mod:`tracklens.models`.
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
#: manifest kind -> how the comparison groups it: whole 30 s clips (what users upload; the default is
#: chosen on these), classical 15 s excerpts, short windows (2-3 s snippets)
LENGTH_GROUPS = {"full30s": "clips", "full30s_16k": "clips", "excerpt15s": "excerpts", "snippet2to3s": "snippets"}
LENGTHS = ("clips", "excerpts", "snippets")


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


def fit_head(kind: str, x: np.ndarray, y: np.ndarray, strength: float, *, seed: int = config.DEFAULT_SEED,
             sample_weight: np.ndarray | None = None):
    """A standardising pipeline: ``linear`` = multinomial logistic regression (C = ``strength``),
    ``mlp`` = one ReLU layer of 128 (L2 alpha = ``strength``). Both export exactly to Keras.
    ``sample_weight`` (n,) weighs each row's loss (how :func:`fit_rows` gives mixed rows blended targets)."""
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
        pipeline = make_pipeline(StandardScaler(), head)
        weights = {} if sample_weight is None else {f"{pipeline.steps[-1][0]}__sample_weight": sample_weight}
        return pipeline.fit(x, y, **weights)


def window_logits(pipeline, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Log-probabilities (n, n_classes) of a fitted head, classes it never saw at -inf-like."""
    out = np.full((len(x), n_classes), -30.0)
    out[:, pipeline.classes_] = np.log(np.clip(pipeline.predict_proba(x), 1e-12, 1.0))
    return out


def track_probs(logits: np.ndarray, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids, (n_clips, k) probabilities): the blend's aggregation, softmax of mean log-probabilities."""
    tracks, mean = evaluate.aggregate_segments(clips, evaluate.softmax(logits, axis=1), method="mean_logprob")
    return tracks, mean


# --- training recipes: mixup of two genres, augmented audio ---------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How a head's training rows are extended; scoring always reads the real windows alone.

    ``mixup``: mixed rows per real row, each a convex mix ``lam * a + (1 - lam) * b`` of two
    training windows of *different* genres (lam ~ Beta(:data:`MIXUP_ALPHA`)), trained on the
    blended target (lam of a's genre, 1 - lam of b's: two weighted rows), which is what a genre
    blend claims to measure. ``audio_copies``: augmented copies of each training file's audio
    (:func:`augment_audio`: gain, EQ tilt, small pitch shift, noise), embedded again (EfficientAT
    input sets only; cached like the real windows).
    """

    mixup: int = 0
    audio_copies: int = 0

    def __str__(self) -> str:
        parts = ([f"mixup x{self.mixup}"] if self.mixup else []) + ([f"audio aug x{self.audio_copies}"] if self.audio_copies else [])
        return " + ".join(parts) or "plain"


PLAIN = Recipe()
MIXUP_ALPHA = 0.4
AUG_VERSION = 1  # bump when augment_audio changes
AUG_COPIES = 1  # copies cached per file (a recipe uses the first audio_copies of them; one: the 2-core machine)
#: Input sets whose augmented rows are cached (one EfficientAT pass; musicnn would cost 4x as much).
AUG_SETS = ("efficientat", "efficientat_emb")


def augment_audio(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One augmented copy of mono audio: gain +-6 dB, spectral tilt +-2 dB/octave around 1 kHz,
    pitch shift +-1 semitone by resampling (tempo moves with it, by at most 6 %) and white noise
    at 20-40 dB SNR. The ranges stay inside what recordings of one genre already differ by."""
    steps = rng.uniform(-1.0, 1.0)
    ratio = 2.0 ** (steps / 12.0)
    positions = np.arange(0, len(y) - 1, ratio)
    shifted = np.interp(positions, np.arange(len(y)), y)
    spectrum = np.fft.rfft(shifted)
    freqs = np.maximum(np.fft.rfftfreq(len(shifted), 1.0 / sr), 20.0)
    tilt_db = rng.uniform(-2.0, 2.0) * np.log2(freqs / 1000.0)
    out = np.fft.irfft(spectrum * 10.0 ** (tilt_db / 20.0), n=len(shifted))
    out *= 10.0 ** (rng.uniform(-6.0, 6.0) / 20.0)
    power = float(np.mean(out ** 2)) + 1e-12
    out += rng.normal(0.0, np.sqrt(power / 10.0 ** (rng.uniform(20.0, 40.0) / 10.0)), len(out))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def augmented_windows(path: str | Path, copy: int) -> np.ndarray:
    """EfficientAT's window inputs (n, 911: embedding + AudioSet logits) of augmented copy
    ``copy`` of one file, seeded by the file's checksum and ``copy`` (cached)."""
    from tracklens.audio import AudioClip, load_audio
    from tracklens.models import efficientat_models

    checksum = file_checksum(path)
    key = hashlib.sha256(json.dumps([checksum, *_weights_key(), AUG_VERSION, copy]).encode()).hexdigest()
    cached = cache_dir() / "augmented" / key[:2] / f"{key}.npy"
    try:
        return np.load(cached)
    except (OSError, ValueError, EOFError):
        pass
    clip = load_audio(path, sr=efficientat_models.SAMPLE_RATE)
    rng = np.random.default_rng([copy, int(checksum[:8], 16)])
    y = augment_audio(clip.y, clip.sr, rng)
    part = AudioClip(y=y, sr=clip.sr, path=None, source_sr=clip.sr, channels=1, source_duration_s=len(y) / clip.sr)
    x = efficientat_models.window_inputs(part, efficientat_models.input_columns("efficientat")).x
    buffer = io.BytesIO()
    np.save(buffer, x)
    atomic_write_bytes(cached, buffer.getvalue())
    return x


@dataclass(frozen=True)
class AugmentedRows:
    """Window rows of augmented audio: ``rows`` (clip = the source clip) and ``copy`` (n,)."""

    rows: "Rows"
    copy: np.ndarray


def augmented_rows(files: pd.DataFrame, input_set: str, *, copies: int = AUG_COPIES, progress: bool = True) -> AugmentedRows:
    """:func:`augmented_windows` of every file, ``copies`` each, as rows of ``input_set`` (one of :data:`AUG_SETS`)."""
    from tqdm import tqdm

    from tracklens.models import efficientat_models

    if input_set not in AUG_SETS:
        raise TracklensError(f"no augmented rows for {input_set!r}; only {AUG_SETS}")
    columns = INPUT_SETS[input_set][1]
    genres = list(config.GTZAN_GENRES)
    parts, meta = [], []
    jobs = [(row, c) for row in files.itertuples() for c in range(copies)]
    for row, c in tqdm(jobs, desc="augmented windows", unit="file", disable=not progress):
        x = augmented_windows(row.path, c)[:, columns]
        parts.append(x)
        meta += [(row.label, row.clip, row.fold, row.length, c)] * len(x)
    label, clip, fold, length, copy = (np.array(v) for v in zip(*meta))
    names = efficientat_models.input_columns("fusion")[columns]
    return AugmentedRows(Rows(np.vstack(parts).astype(np.float32), datasets.encode(label, genres), clip, fold, length,
                              list(names), genres), copy.astype(int))


def fit_rows(rows: "Rows", mask: np.ndarray, head: str, strength: float, recipe: Recipe = PLAIN, *,
             augmented: AugmentedRows | None = None, seed: int = config.DEFAULT_SEED):
    """:func:`fit_head` on the rows in ``mask``, extended as ``recipe`` says (augmented rows of
    the same clips; then mixed rows drawn from all of these)."""
    x, y = rows.x[mask], rows.y[mask]
    if recipe.audio_copies:
        if augmented is None:
            raise TracklensError("this recipe needs augmented rows (heads.augmented_rows)")
        extra = np.isin(augmented.rows.clip, rows.clip[mask]) & (augmented.copy < recipe.audio_copies)
        x, y = np.vstack([x, augmented.rows.x[extra]]), np.concatenate([y, augmented.rows.y[extra]])
    weight = np.ones(len(y))
    if recipe.mixup:
        rng = np.random.default_rng(seed)
        a, b = rng.integers(len(y), size=(2, recipe.mixup * len(y)))
        a, b = a[y[a] != y[b]], b[y[a] != y[b]]
        lam = rng.beta(MIXUP_ALPHA, MIXUP_ALPHA, size=len(a)).astype(np.float32)
        mixed = lam[:, None] * x[a] + (1 - lam[:, None]) * x[b]
        x = np.vstack([x, mixed, mixed])
        y = np.concatenate([y, y[a], y[b]])
        weight = np.concatenate([weight, lam, 1 - lam])
    return fit_head(head, x, y, strength, seed=seed, sample_weight=None if not recipe.mixup else weight)


MLP_HIDDEN = 128
STRENGTHS = {"linear": (0.003, 0.01, 0.03, 0.1, 0.3), "mlp": (0.1, 1.0, 3.0, 10.0)}
#: ``--quick``: the values grouped CV on the train fold chose for the shipped heads on 2026-11-25
#: (C = 0.03 for the EfficientAT and fusion heads), not chosen again: 12 fits per candidate
#: instead of 32 (the 2026-12-07 run on the shared 2-core machine at load 15-19 used it).
QUICK_STRENGTHS = {"linear": (0.03,), "mlp": (1.0,)}
N_FOLDS = 5


@dataclass(frozen=True)
class Candidate:
    """A genre model compared here: one head on one input set, or a late fusion of several whose
    window log-probabilities are summed with ``weights`` (chosen on the train fold), trained with
    ``recipe``."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (input set, head kind)
    note: str = ""
    recipe: Recipe = PLAIN


CANDIDATES = (
    Candidate("musicnn_linear", (("musicnn", "linear"),), "the first default's recipe: musicnn 3 s patches, linear"),
    Candidate("musicnn_mlp", (("musicnn", "mlp"),), "musicnn 3 s patches, MLP"),
    Candidate("efficientat_linear", (("efficientat", "linear"),), "mn04 10 s windows (embedding + AudioSet logits), linear"),
    Candidate("efficientat_emb_linear", (("efficientat_emb", "linear"),), "mn04 embedding only, linear"),
    Candidate("efficientat_mlp", (("efficientat", "mlp"),), "mn04 10 s windows, MLP"),
    Candidate("efficientat_linear_mixup", (("efficientat", "linear"),),
              "mn04 windows, linear, + mixup of two genres with blended targets", Recipe(mixup=2)),
    Candidate("efficientat_linear_aug", (("efficientat", "linear"),),
              "mn04 windows, linear, + 1 augmented audio copy (gain, EQ tilt, pitch, noise)", Recipe(audio_copies=1)),
    Candidate("efficientat_linear_aug_mixup", (("efficientat", "linear"),),
              "mn04 windows, linear, + augmented audio + mixup", Recipe(mixup=2, audio_copies=1)),
    Candidate("fusion_late", (("efficientat", "linear"), ("musicnn_window", "linear")),
              "late fusion: weighted sum of the two linear heads' log-probabilities per 10 s window"),
    Candidate("fusion_early", (("fusion", "linear"),), "early fusion: one linear head on both embeddings"),
)

#: The pretrained networks each input set runs (what a blend costs; the fit verdict needs EfficientAT anyway).
NETWORKS = {"musicnn": ("efficientat", "musicnn"), "efficientat": ("efficientat",), "efficientat_emb": ("efficientat",),
            "musicnn_window": ("efficientat", "musicnn"), "fusion": ("efficientat", "musicnn")}
#: CPU seconds per 30 s clip of a blend with the fit verdict, by networks run: decode + networks +
#: head, process CPU time on one pinned core, median of 3 (``bench/genre.py``, 2026-12-07, the
#: shared 2-core machine at load ~11-15: wall time there was 2-3x these). The bench times each
#: candidate in the same run and passes those to :func:`best_candidate`.
CPU_S_PER_30S = {("efficientat",): 0.10, ("efficientat", "musicnn"): 0.29}


def networks(candidate: Candidate) -> tuple[str, ...]:
    return tuple(sorted({n for input_set, _ in candidate.parts for n in NETWORKS[input_set]}))


def candidate_cost(candidate: Candidate, measured: dict[str, float] | None = None) -> float:
    """CPU-s per 30 s clip: the networks it runs decide (the head costs well under a millisecond),
    so the lowest time ``measured`` for any candidate running the same networks (timing noise
    must not rank two candidates that cost the same), else :data:`CPU_S_PER_30S`."""
    same = [t for name, t in (measured or {}).items()
            if name in _BY_NAME and networks(_BY_NAME[name]) == networks(candidate)]
    return min(same) if same else CPU_S_PER_30S[networks(candidate)]


_BY_NAME = {c.name: c for c in CANDIDATES}


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


def oof_logits(rows: Rows, mask: np.ndarray, head: str, strength: float, recipe: Recipe = PLAIN, *, seed: int,
               augmented: AugmentedRows | None = None) -> np.ndarray:
    """Out-of-fold window log-probabilities for the rows in ``mask`` (NaN elsewhere)."""
    k = len(rows.genres)
    out = np.full((len(rows.y), k), np.nan)
    for fit_mask, test_mask in grouped_splits(rows, mask, seed=seed):
        head_fit = fit_rows(rows, fit_mask, head, strength, recipe, augmented=augmented, seed=seed)
        out[test_mask] = window_logits(head_fit, rows.x[test_mask], k)
    return out


def track_level(rows: Rows, logits: np.ndarray, mask: np.ndarray) -> dict:
    """Clip ids, labels, lengths and probabilities of the rows in ``mask``."""
    clips, probs = track_probs(logits[mask], rows.clip[mask])
    first = pd.DataFrame({"clip": rows.clip[mask], "y": rows.y[mask], "length": rows.length[mask]}).groupby("clip").first()
    return {"clips": clips, "y": first.loc[clips, "y"].to_numpy(), "length": first.loc[clips, "length"].to_numpy(),
            "probs": probs}


def choose_strength(rows: Rows, mask: np.ndarray, head: str, recipe: Recipe = PLAIN, *, seed: int,
                    augmented: AugmentedRows | None = None, grid: dict | None = None) -> tuple[float, np.ndarray]:
    """The regularisation with the lowest out-of-fold track log-loss on ``mask`` (over
    ``grid[head]``, default :data:`STRENGTHS`); (strength, its OOF logits)."""
    best = None
    for strength in (grid or STRENGTHS)[head]:
        logits = oof_logits(rows, mask, head, strength, recipe, seed=seed, augmented=augmented)
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
            memo: dict | None = None, augmented: dict[str, AugmentedRows] | None = None,
            grid: dict | None = None) -> dict:
    """Score one candidate two ways (see bench/genre.py):

    ``valid``: regularisation and fusion weights chosen on the train fold alone (grouped CV by
    clip), then fitted on train and scored on the artist-disjoint valid fold, each valid track
    calibrated by a temperature fitted on the other valid tracks (5-fold cross-fitting, as
    :func:`models.train.score_model`);
    ``cv``: 5-fold CV grouped by clip over train + valid with those choices, temperature
    cross-fitted (GTZAN repeats artists across clips, so optimistic).

    The temperature that ships (``temperature``) comes from artist-safe grouped CV: the two folds
    are artist-disjoint, so fit on train -> predict valid and fit on valid -> predict train, and
    one temperature is fitted on all those track-level predictions. The clip-grouped CV inside the
    train fold shares artists across its folds and comes out too confident for new artists
    (``calibration`` holds the valid fold's ECE under each choice). ``memo`` keeps each
    (input set, head, recipe)'s fits across candidates (a late fusion reuses its parts').
    """
    from tracklens.models import train

    memo = {} if memo is None else memo
    augmented = augmented or {}
    recipe = candidate.recipe

    def once(key, make):
        key = (*key, recipe)
        if key not in memo:
            memo[key] = make()
        return memo[key]

    parts = [(input_set, rows[input_set], head) for input_set, head in candidate.parts]
    base = parts[0][1]
    train_mask, valid_mask, every = base.fold == "train", base.fold == "valid", np.ones(len(base.y), bool)
    chosen = [once((name, head, "choose"), lambda r=r, head=head, name=name: choose_strength(
        r, train_mask, head, recipe, seed=seed, augmented=augmented.get(name), grid=grid)) for name, r, head in parts]
    weights = _choose_weights(base, [oof for _, oof in chosen], train_mask)

    def cross_part(name, r, head, strength, fit_on, apply_to):
        head_fit = fit_rows(r, fit_on, head, strength, recipe, augmented=augmented.get(name), seed=seed)
        out = np.full((len(r.y), len(r.genres)), np.nan)
        out[apply_to] = window_logits(head_fit, r.x[apply_to], len(r.genres))
        return out

    valid_logits = _fuse([once((name, head, "valid"), lambda name=name, r=r, head=head, s=s: cross_part(
        name, r, head, s, train_mask, valid_mask)) for (name, r, head), (s, _) in zip(parts, chosen)], weights)
    valid = track_level(base, valid_logits, valid_mask)
    valid["probs_raw"] = valid["probs"]
    valid["probs"] = train.cross_fitted_calibration(valid["y"], valid["probs_raw"], seed=seed)
    reverse_logits = _fuse([once((name, head, "reverse"), lambda name=name, r=r, head=head, s=s: cross_part(
        name, r, head, s, valid_mask, train_mask)) for (name, r, head), (s, _) in zip(parts, chosen)], weights)
    reverse = track_level(base, reverse_logits, train_mask)
    temperature = evaluate.fit_temperature(np.concatenate([valid["y"], reverse["y"]]),
                                           np.vstack([valid["probs_raw"], reverse["probs"]]))
    train_oof = track_level(base, _fuse([oof for _, oof in chosen], weights), train_mask)
    t_train_cv = evaluate.fit_temperature(train_oof["y"], train_oof["probs"])
    clips = valid["length"] == "clips"

    def clip_ece(probs):
        return float(evaluate.expected_calibration_error(valid["y"][clips], probs[clips]))

    calibration = {"temperature_artist_safe": temperature, "temperature_train_grouped_cv": t_train_cv,
                   "valid_clips_ece": {"raw": clip_ece(valid["probs_raw"]),
                                       "train_grouped_cv_T": clip_ece(evaluate.apply_temperature(valid["probs_raw"], t_train_cv)),
                                       "valid_cross_fitted_T": clip_ece(valid["probs"])}}
    cv = track_level(base, _fuse([once((name, head, "cv"), lambda name=name, r=r, head=head, s=s: oof_logits(
        r, every, head, s, recipe, seed=seed, augmented=augmented.get(name))) for (name, r, head), (s, _) in zip(parts, chosen)],
        weights), every)
    cv["probs_raw"] = cv["probs"]
    cv["probs"] = train.cross_fitted_calibration(cv["y"], cv["probs"], seed=seed)
    cv["temperature"] = evaluate.fit_temperature(cv["y"], cv["probs_raw"])
    return {"name": candidate.name, "note": candidate.note, "recipe": str(recipe), "strengths": [s for s, _ in chosen],
            "strength_grid": {head: list((grid or STRENGTHS)[head]) for _, _, head in parts},
            "weights": weights, "temperature": temperature, "calibration": calibration, "valid": valid, "cv": cv,
            "genres": base.genres}


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


def gtzan_evidence(files: pd.DataFrame, *, known: list[str] | None = None) -> list:
    """The fit rule's :class:`models.fit.Evidence` of shared GTZAN files (from their cached windows);
    ``known``: the genres counted as in vocabulary (default all ten)."""
    from tracklens.models import efficientat, fit

    names = efficientat.class_names()
    first = efficientat.EMBEDDING_SIZE
    out = []
    for path in files["path"]:
        logits = file_windows(path)["fusion_x"][:, first:first + len(names)].astype(np.float64)
        out.append(fit.evidence((1.0 / (1.0 + np.exp(-logits))).mean(axis=0), names, known=known))
    return out


def oov_files(seed: int, *, per_kind: int = OOV_PER_KIND) -> list[Path]:
    """The out-of-vocabulary clips of one seed (:mod:`models.oov`, made once under data/interim/oov/)."""
    from tracklens.models import oov

    return oov.write_set(config.INTERIM_DATA_DIR / "oov" / str(seed), seed=seed, per_kind=per_kind)


def _efficientat_pass(path) -> dict:
    from tracklens.audio import load_audio
    from tracklens.models import efficientat

    return efficientat.embed(clip=load_audio(path, sr=efficientat.SAMPLE_RATE))


def file_evidence(path):
    """The fit rule's evidence of one audio file: EfficientAT over its 10 s windows, decoded at 32 kHz."""
    from tracklens.models import efficientat, fit

    return fit.evidence(_efficientat_pass(path)["tags"], efficientat.class_names())


def held_out_genre_ood(rows: Rows, files: pd.DataFrame, *, strength: float, seed: int = config.DEFAULT_SEED,
                       all_pairs: bool = False, rule: dict | None = None, log=print) -> dict:
    """"Does not fit" measured as the open-set literature does: for every pair of genres, treat
    those two as unknown, and score how well each fit score tells their whole clips (both folds)
    from the valid fold's whole clips of the other eight (AUROC, FPR at 95 % TPR).

    Scores: ``audioset_rule`` (:func:`models.fit.poor_fit_score`, the shipped rule's evidence,
    with the two genres' AudioSet classes counted as wider genres) and ``head_msp`` (1 - the
    top probability of a linear head on ``rows`` (EfficientAT windows) fitted on the train
    fold's windows of the eight genres: the maximum-softmax-probability baseline).
    The pairs: five disjoint ones (each genre unknown once, paired by a seeded shuffle), or all
    45 with ``all_pairs``. Returns per-pair rows and the mean / SD over pairs."""
    import itertools

    from tracklens.models import fit

    rule = rule or fit.RULE
    genres = rows.genres
    clip_rows = files.set_index("clip")
    full = files[files["length"] == "clips"]
    pairs = []
    if all_pairs:
        rotation = list(itertools.combinations(range(len(genres)), 2))
    else:
        order = np.random.default_rng(seed).permutation(len(genres))
        rotation = [tuple(sorted(order[i:i + 2])) for i in range(0, len(order), 2)]
    for unknown in rotation:
        known = [g for i, g in enumerate(genres) if i not in unknown]
        names = {genres[i] for i in unknown}
        fit_mask = (rows.fold == "train") & ~np.isin(rows.y, unknown)
        head = fit_head("linear", rows.x[fit_mask], rows.y[fit_mask], strength, seed=seed)
        scored = np.isin(rows.clip, full["clip"]) & ((rows.fold == "valid") | np.isin(rows.y, unknown))
        clips, probs = track_probs(window_logits(head, rows.x[scored], len(genres)), rows.clip[scored])
        is_out = clip_rows.loc[clips, "label"].isin(names).to_numpy()
        msp = 1.0 - probs.max(axis=1)
        tracks = full.set_index("clip").loc[clips].reset_index()
        rule_score = fit.poor_fit_score(gtzan_evidence(tracks, known=known), rule)
        row = {"unknown": "+".join(sorted(names)), "n_in": int((~is_out).sum()), "n_out": int(is_out.sum())}
        for score_name, score in (("audioset_rule", rule_score), ("head_msp", msp)):
            m = fit.ood_metrics(score[~is_out], score[is_out])
            row.update({f"{score_name}_auroc": m["auroc"], f"{score_name}_fpr95": m["fpr_at_95_tpr"]})
        pairs.append(row)
    table = pd.DataFrame(pairs)
    summary = {c: {"mean": float(table[c].mean()), "sd": float(table[c].std())} for c in table.columns if "_" in c and c not in ("n_in", "n_out")}
    log(f"held-out genre pairs ({len(table)}): " + ", ".join(f"{k} {v['mean']:.3f} +- {v['sd']:.3f}" for k, v in summary.items()))
    return {"pairs": table, "summary": summary}


def synthetic_ood(rows: Rows, files: pd.DataFrame, *, strength: float, seed: int = config.DEFAULT_SEED,
                  rule: dict | None = None, log=print) -> dict:
    """The same two scores on the synthetic out-of-vocabulary set (seeds :data:`FIT_TEST_SEEDS`)
    against the valid fold's whole clips (all ten genres; MSP of a head fitted on the train fold)."""
    from tracklens.models import efficientat, fit

    rule = rule or fit.RULE
    valid_full = files[(files["fold"] == "valid") & (files["length"] == "clips")]
    head = fit_head("linear", rows.x[rows.fold == "train"], rows.y[rows.fold == "train"], strength, seed=seed)
    scored = np.isin(rows.clip, valid_full["clip"])
    _, probs = track_probs(window_logits(head, rows.x[scored], len(rows.genres)), rows.clip[scored])
    msp_in = 1.0 - probs.max(axis=1)
    paths = [p for s in FIT_TEST_SEEDS for p in oov_files(s)]
    passes = [_efficientat_pass(p) for p in paths]
    windows = [np.hstack([o["embedding"], o["logits"]])[:, :rows.x.shape[1]] for o in passes]
    msp_out = np.array([1.0 - evaluate.softmax(window_logits(head, x, len(rows.genres)).mean(axis=0)).max() for x in windows])
    rule_in = fit.poor_fit_score(gtzan_evidence(valid_full), rule)
    rule_out = fit.poor_fit_score([fit.evidence(o["tags"], efficientat.class_names()) for o in passes], rule)
    out = {"audioset_rule": fit.ood_metrics(rule_in, rule_out), "head_msp": fit.ood_metrics(msp_in, msp_out)}
    log("synthetic OOV vs valid whole clips: " + ", ".join(f"{k} AUROC {v['auroc']:.3f} FPR95 {v['fpr_at_95_tpr']:.3f}"
                                                          for k, v in out.items()))
    return out


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

#: Candidate -> registry model name (which Keras builder and input kind its card names).
REGISTRY_NAMES = {"musicnn_linear": "musicnn_linear", "musicnn_mlp": "musicnn_mlp",
                  "efficientat_linear": "efficientat_linear", "efficientat_emb_linear": "efficientat_linear",
                  "efficientat_mlp": "efficientat_mlp", "efficientat_linear_mixup": "efficientat_linear",
                  "efficientat_linear_aug": "efficientat_linear", "efficientat_linear_aug_mixup": "efficientat_linear",
                  "fusion_late": "fusion_linear", "fusion_early": "fusion_linear"}


def fit_for_shipping(candidate: Candidate, result: dict, rows: dict[str, Rows], *, seed: int = config.DEFAULT_SEED,
                     augmented: dict[str, AugmentedRows] | None = None):
    """The candidate's heads refitted on train + valid with the choices :func:`compare` made;
    returns (Keras model, the rows it reads: columns of all parts side by side)."""
    augmented = augmented or {}
    parts = [(input_set, rows[input_set], head) for input_set, head in candidate.parts]
    pipelines = [fit_rows(r, np.ones(len(r.y), bool), head, s, candidate.recipe, augmented=augmented.get(name), seed=seed)
                 for (name, r, head), s in zip(parts, result["strengths"])]
    model = to_keras(pipelines, [head for _, _, head in parts], result["weights"], len(parts[0][1].genres))
    joined = parts[0][1]
    if len(parts) > 1:
        joined = Rows(np.hstack([r.x for _, r, _ in parts]), joined.y, joined.clip, joined.fold, joined.length,
                      [c for _, r, _ in parts for c in r.columns], joined.genres)
    return model, joined


def ship(candidate: Candidate, result: dict, rows: dict[str, Rows], out_dir: str | Path, *, card_name: str,
         why: str, comparison: list[dict], seed: int = config.DEFAULT_SEED,
         augmented: dict[str, AugmentedRows] | None = None, cost_s: float | None = None) -> Path:
    """Refit ``candidate`` on train + valid and save it as ``out_dir/card_name`` with its card.

    The card keeps the train-only fit's valid-fold scores (whole clips, excerpts and snippets
    apart), the grouped CV scores (optimistic), the temperature (see :func:`compare`), ``why``
    it ships, its cost and the whole comparison.
    """
    import time

    from tracklens.models import kinds, registry, store, train

    start = time.perf_counter()
    model, joined = fit_for_shipping(candidate, result, rows, seed=seed, augmented=augmented)
    registry_name = REGISTRY_NAMES[candidate.name]
    kind = kinds.get(registry.spec(registry_name).input_kind)
    card_input, window_s = kind.embedding_record(), kind.window_s
    short = frozenset(joined.clip[joined.length == "snippets"])
    inputs = datasets.ModelInputs(x=joined.x, y=joined.y, track_ids=joined.clip, folds=joined.fold,
                                  columns=joined.columns, window_s=window_s, card_input=card_input,
                                  short_tracks=short, card_data={"files": "all train/valid files of the shared "
                                                                 "GTZAN manifest (full clips, 15 s excerpts, snippets)",
                                                                 "valid_tracks": {length: int((result["valid"]["length"] == length).sum())
                                                                                  for length in LENGTHS}})
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
        parameters={"candidate": candidate.name, "heads": [h for _, h in candidate.parts], "recipe": str(candidate.recipe),
                    "mixup": candidate.recipe.mixup, "audio_copies": candidate.recipe.audio_copies,
                    "regularisation": result["strengths"], "fusion_weights": list(result["weights"]), "seed": seed,
                    "fitted_by": "scikit-learn (lbfgs / adam), exported exactly into the Keras layers"},
        calibration={"temperature": result["temperature"],
                     "fitted_on": "artist-safe grouped CV: the train-fold fit's track-level predictions on the valid fold "
                                  "and the valid-fold fit's on the train fold (the folds are artist-disjoint: new artists, "
                                  "as in use)",
                     **result["calibration"]},
        metrics={"valid_by_kind": {length: scores(valid, genres, length=length) for length in LENGTHS},
                 "grouped_cv": {"protocol": f"{N_FOLDS}-fold stratified CV grouped by clip over train + valid; artists "
                                            "repeat across clips (GTZAN), so optimistic",
                                "track_level": scores(cv, genres),
                                **{length: scores(cv, genres, length=length) for length in LENGTHS}},
                 "note": "valid_*: heads fitted on the train fold, scored on the artist-disjoint valid fold (each "
                         "track's temperature fitted on the other valid tracks); 'clips' = whole 30 s clips; the "
                         "weights here were then refit on train + valid",
                 "cpu_s_per_30s_clip": cost_s if cost_s is not None else candidate_cost(candidate),
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
    """One row per candidate x protocol (valid / cv) x length (clips / excerpts / snippets): the
    headline metrics, per-genre recall and per-genre ROC-AUC (NaN where the part lacks the genre)."""
    out = []
    for r in results:
        for protocol in ("valid", "cv"):
            for length in LENGTHS:
                s = scores(r[protocol], r["genres"], length=length)
                out.append({"model": r["name"], "protocol": protocol, "length": length, "n": s["n"],
                            **{k: round(s[k], 4) for k in HEADLINE},
                            **{k: round(v, 4) for k, v in s.items() if k.startswith(("recall_", "roc_auc_"))}})
    return out


#: Input sets one EfficientAT pass computes (no musicnn): the models cheap enough to blend a whole track.
FAST_SETS = ("efficientat", "efficientat_emb")


def clip_accuracy(result: dict) -> tuple[float, float, int]:
    """(accuracy, its binomial standard error, n) on the valid fold's whole 30 s clips."""
    s = scores(result["valid"], result["genres"], length="clips")
    return s["accuracy"], float(np.sqrt(s["accuracy"] * (1 - s["accuracy"]) / s["n"])), s["n"]


def _recipe_earns_its_place(result: dict, results: list[dict]) -> bool:
    """A training recipe (mixup, augmented audio) is kept only where it beats its plain twin (same
    heads on the same inputs) by more than the twin's standard error on the valid fold's whole clips."""
    candidate = _BY_NAME[result["name"]]
    if candidate.recipe == PLAIN:
        return True
    twins = [r for r in results if _BY_NAME[r["name"]].parts == candidate.parts and _BY_NAME[r["name"]].recipe == PLAIN]
    if not twins:
        return False
    acc, se, _ = clip_accuracy(twins[0])
    return clip_accuracy(result)[0] > acc + se


def best_candidate(results: list[dict], *, costs: dict[str, float] | None = None, fast_only: bool = False,
                   names: set[str] | None = None) -> tuple[dict, str]:
    """What ships, measured where users are: the highest accuracy on the artist-disjoint valid
    fold's whole 30 s clips (a recipe candidate only where it beats its plain twin by more than
    an SE); every candidate within one standard error of it counts as tied,
    and of those the cheapest (CPU-s per 30 s clip, :func:`candidate_cost`) ships (equal cost:
    the more accurate, then the higher balanced accuracy). ``fast_only``: among the one-pass EfficientAT candidates; ``names``:
    among these candidates."""
    by_name = {c.name: c for c in CANDIDATES}
    pool = [r for r in results if (not fast_only or all(s in FAST_SETS for s, _ in by_name[r["name"]].parts))
            and (names is None or r["name"] in names) and _recipe_earns_its_place(r, results)]
    top = max(pool, key=lambda r: clip_accuracy(r)[0])
    top_acc, se, n = clip_accuracy(top)
    tied = [r for r in pool if clip_accuracy(r)[0] >= top_acc - se]
    best = min(tied, key=lambda r: (candidate_cost(by_name[r["name"]], costs), -clip_accuracy(r)[0],
                                    -scores(r["valid"], r["genres"], length="clips")["balanced_accuracy"]))
    acc = clip_accuracy(best)[0]
    left_out = [r["name"] for r in results if not _recipe_earns_its_place(r, results) and (names is None or r["name"] in names)
                and (not fast_only or all(s in FAST_SETS for s, _ in by_name[r["name"]].parts))]
    among = ("the one-pass EfficientAT candidates" if fast_only else
             ", ".join(sorted(names)) if names else "all candidates")
    why = (f"{best['name']}: accuracy {acc:.3f} on the artist-disjoint valid fold's {n} whole 30 s clips (train-fold "
           f"fit), at {candidate_cost(by_name[best['name']], costs):.2f} CPU-s per 30 s clip. Among {among} the best was "
           f"{top['name']} ({top_acc:.3f} +- {se:.3f} SE, {candidate_cost(by_name[top['name']], costs):.2f} CPU-s); "
           f"the {len(tied)} within one SE of it count as tied ({', '.join(r['name'] for r in tied)}) and the "
           f"cheapest ships"
           + (f"; training recipes that did not beat their plain twin by more than an SE were left out "
              f"({', '.join(left_out)})" if left_out else "")
           + ". Data: every train/valid file of "
           f"../shared/data/gtzan (test fold never used). metrics.comparison holds every candidate")
    return best, why


def compare_all(*, seed: int = config.DEFAULT_SEED, log=print, candidates=None, grid: dict | None = None):
    """Cache the shared files' inputs (and augmented copies) and :func:`compare` every candidate
    of :data:`CANDIDATES`; returns (results, rows, augmented rows)."""
    files = shared_files()
    cached = cache_all(files)
    rows = {name: input_rows(files, cached, name) for name in INPUT_SETS}
    candidates = candidates or CANDIDATES
    augmented = {}
    if any(c.recipe.audio_copies for c in candidates):
        # train-fold files only (an EfficientAT pass each on the shared 2-core machine): the valid
        # protocol trains on the train fold, so it sees every copy it could; grouped CV and the
        # shipped refit add no augmented copies of valid-fold clips
        augmented = {name: augmented_rows(files[files["fold"] == "train"], name) for name in AUG_SETS}
    results, memo = [], {}
    for candidate in candidates:
        log(f"comparing {candidate.name} ...")
        results.append(compare(candidate, rows, seed=seed, memo=memo, augmented=augmented, grid=grid))
    return results, rows, augmented


#: Shipped folders besides default / default-fast: the earlier recipes, kept by name (``--model fusion``).
NAMED = {"fusion": {"fusion_late", "fusion_early"}, "musicnn": {"musicnn_linear", "musicnn_mlp"}}


def ship_all(results, rows, augmented, out: Path, *, name: str = "default", seed: int = config.DEFAULT_SEED,
             costs: dict[str, float] | None = None, log=print) -> dict[str, Path]:
    """Ship ``name`` (:func:`best_candidate` over all), ``name-fast`` (one EfficientAT pass) and the
    best of each :data:`NAMED` family under its own name."""
    table = comparison(results)
    by_name = {c.name: c for c in CANDIDATES}
    shipped = {}
    choices = [(name, {}), (f"{name}-fast", {"fast_only": True})] + [(folder, {"names": members}) for folder, members in NAMED.items()]
    for folder, how in choices:
        best, why = best_candidate(results, costs=costs, **how)
        log(f"shipping {folder}: {why}")
        shipped[folder] = ship(by_name[best["name"]], best, rows, out, card_name=folder, why=why, comparison=table,
                               seed=seed, augmented=augmented, cost_s=candidate_cost(by_name[best["name"]], costs))
    return shipped


def main(argv: list[str] | None = None) -> None:
    """``make default-model``: compare the candidates; ship the best on whole clips (cost breaking
    ties) as ``OUT/default``, the best one-pass EfficientAT candidate as ``OUT/default-fast`` and
    the best fusion and musicnn models as ``OUT/fusion``, ``OUT/musicnn``."""
    import argparse

    parser = argparse.ArgumentParser(description="Train, compare and ship the genre heads on the shared GTZAN audio.")
    parser.add_argument("--out", type=Path, default=config.MODELS_DIR, help="folder for the shipped model folders")
    parser.add_argument("--name", default="default", help="shipped folder / card name")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    parser.add_argument("--quick", action="store_true", help="regularisation fixed (QUICK_STRENGTHS), not chosen again")
    args = parser.parse_args(argv)
    results, rows, augmented = compare_all(seed=args.seed, grid=QUICK_STRENGTHS if args.quick else None)
    print(pd.DataFrame(comparison(results))[["model", "protocol", "length", "n", *HEADLINE]].to_string(index=False))
    for folder, path in ship_all(results, rows, augmented, args.out, name=args.name, seed=args.seed).items():
        print(folder, path)
    from tracklens.models import fit

    fit_rule_rates(fit.RULE)


if __name__ == "__main__":
    main()
