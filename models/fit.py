"""Does a track fit the ten genres? A per-track verdict from EfficientAT's AudioSet tags.

A genre model always answers with one of its ten genres, so a techno track came out "hiphop"
(53 %) and an ambient drone "jazz". The evidence used here is independent of the genre model:
EfficientAT's AudioSet likelihoods (sigmoid of the logits, mean over the track's 10 s windows),
which name far more genres than GTZAN's ten. Two rules, either of which flags a track ``poor``:

1. **Not music**: the ``Music`` likelihood is below :data:`RULE` ``min_music`` (speech, noise,
   field recordings). The reason names what AudioSet hears instead (e.g. "Speech 0.71").
2. **A wider genre**: the strongest AudioSet genre *outside* the ten (:data:`WIDER_CLASSES`:
   Techno, Ambient music, Rhythm and blues, Music of Latin America, ...) reaches ``min_wider``
   and beats the strongest genre *inside* them (:data:`GENRE_CLASSES`, e.g. Heavy metal for
   metal) by a factor of ``exp(min_log_ratio)`` or more. A ratio, not a difference: AudioSet's
   genre likelihoods of GTZAN clips are often small (rock.00000: Rock music 0.05), and a
   near-neighbour genre (Funk on a disco clip) often beats them by a few hundredths.

``wider_genres`` lists the strongest outside genres either way, for "closest wider genres".

The thresholds were tuned on the GTZAN *train* fold (in-vocabulary, should be ``ok``) and
out-of-vocabulary audio made with seed 0 (:mod:`models.oov`: techno, ambient drone, espeak-ng
speech, noise), and are scored on the *valid* fold and audio of other seeds
(:func:`tune`; ``fit_rule_rates`` of ``recipes/heads.py`` and ``bench/genre.py`` measure it; the rates
are in README "Genre models").
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from tracklens.errors import TracklensError

#: AudioSet genre classes of each of the ten GTZAN genres.
GENRE_CLASSES: dict[str, tuple[str, ...]] = {
    "blues": ("Blues",), "classical": ("Classical music", "Opera"), "country": ("Country", "Bluegrass"),
    "disco": ("Disco",), "hiphop": ("Hip hop music",), "jazz": ("Jazz", "Swing music"), "metal": ("Heavy metal",),
    "pop": ("Pop music",), "reggae": ("Reggae", "Ska"),
    "rock": ("Rock music", "Punk rock", "Grunge", "Progressive rock", "Rock and roll", "Psychedelic rock"),
}
#: AudioSet genre classes the ten do not cover.
WIDER_CLASSES: tuple[str, ...] = (
    "Electronic music", "House music", "Techno", "Dubstep", "Drum and bass", "Electronica", "Electronic dance music",
    "Trance music", "Ambient music", "New-age music", "Rhythm and blues", "Soul music", "Funk", "Gospel music",
    "Christian music", "Music of Latin America", "Salsa music", "Flamenco", "Folk music", "Traditional music",
    "Music of Africa", "Afrobeat", "Music of Asia", "Carnatic music", "Music of Bollywood", "Middle Eastern music",
    "Vocal music", "A capella", "Music for children",
)
MUSIC_CLASS = "Music"
#: AudioSet's root classes for any music: they describe nothing (left out of reasons and tags).
GENERIC_CLASSES = (MUSIC_CLASS, "Musical instrument")
#: Tuned by :func:`tune` (see the module docstring); ``python -m tracklens.models.fit`` prints the rates again.
RULE = {"min_music": 0.30, "min_log_ratio": 1.2, "min_wider": 0.10}
EPS = 1e-4  # keeps the ratio finite when a likelihood is ~0
N_WIDER = 3  # wider genres listed per track


class Verdict(NamedTuple):
    fit: str  # "ok" or "poor"
    reason: str
    wider_genres: list[tuple[str, float]]


class Evidence(NamedTuple):
    """What the rule reads from one track's AudioSet likelihoods."""

    music: float
    inside: float  # strongest in-vocabulary genre class
    inside_class: str
    wider: list[tuple[str, float]]  # outside genre classes, strongest first
    top_other: tuple[str, float]  # the strongest class that is not Music (for "not music" reasons)


def _index(class_names: Sequence[str]) -> dict[str, int]:
    position = {name: i for i, name in enumerate(class_names)}
    needed = [MUSIC_CLASS, *WIDER_CLASSES, *(c for classes in GENRE_CLASSES.values() for c in classes)]
    missing = [c for c in needed if c not in position]
    if missing:
        raise TracklensError(f"AudioSet classes {missing[:3]} are not among the tagger's classes")
    return position


def evidence(likelihoods: np.ndarray, class_names: Sequence[str], *, known: Sequence[str] | None = None) -> Evidence:
    """The rule's inputs from a track's AudioSet likelihoods (527,) in ``class_names`` order.

    ``known``: the genres the model knows (default all ten); the AudioSet classes of the others
    count as wider genres (how the held-out-genre evaluation treats two genres as unknown)."""
    p = np.asarray(likelihoods, dtype=np.float64)
    position = _index(class_names)
    known = list(GENRE_CLASSES) if known is None else list(known)
    unknown = tuple(c for g, classes in GENRE_CLASSES.items() if g not in known for c in classes)
    inside = max(((c, p[position[c]]) for g in known for c in GENRE_CLASSES[g]), key=lambda cp: cp[1])
    wider = sorted(((c, float(p[position[c]])) for c in (*WIDER_CLASSES, *unknown)), key=lambda cp: -cp[1])
    others = [i for i in np.argsort(-p) if class_names[i] not in GENERIC_CLASSES]
    return Evidence(float(p[position[MUSIC_CLASS]]), float(inside[1]), inside[0], wider,
                    (class_names[others[0]], float(p[others[0]])))


#: How the first rule's verdict begins: AudioSet hears speech, noise or a tone, not music
NOT_MUSIC = "does not sound like music"


def not_music(blend) -> bool:
    """Whether ``blend`` (a :class:`models.blend.Blend`) was judged not music by the first rule:
    its tempo, key, chart genres and neighbours would describe music that is not there."""
    return getattr(blend, "fit", None) == "poor" and str(getattr(blend, "fit_reason", "") or "").startswith(NOT_MUSIC)


def decide(ev: Evidence, rule: dict = RULE) -> Verdict:
    """The verdict for one track's :class:`Evidence` under ``rule``."""
    wider = ev.wider[:N_WIDER]
    if ev.music < rule["min_music"]:
        return Verdict("poor", f"{NOT_MUSIC}: AudioSet hears {ev.top_other[0]} {ev.top_other[1]:.2f} "
                               f"(Music {ev.music:.2f})", wider)
    name, score = ev.wider[0]
    if _wider_wins(score, ev.inside, rule):
        return Verdict("poor", f"sounds like {name} ({score:.2f}), outside the ten genres: {(score + EPS) / (ev.inside + EPS):.0f}x "
                               f"their closest AudioSet genre ({ev.inside_class} {ev.inside:.2f})", wider)
    return Verdict("ok", f"music, closest to {ev.inside_class} ({ev.inside:.2f}) among AudioSet's genres", wider)


def _wider_wins(wider, inside, rule: dict):
    """Rule 2 on scalars or arrays: the outside genre is strong enough and far ahead of the ten."""
    ratio = np.log((np.asarray(wider) + EPS) / (np.asarray(inside) + EPS))
    return (np.asarray(wider) >= rule["min_wider"]) & (ratio >= rule["min_log_ratio"])


def judge(likelihoods: np.ndarray, class_names: Sequence[str], rule: dict = RULE) -> Verdict:
    """``ok`` / ``poor`` for one track, with the reason and its closest wider genres."""
    return decide(evidence(likelihoods, class_names), rule)


# --- tuning -----------------------------------------------------------------------------------------

GRID = {"min_music": tuple(np.round(np.arange(0.05, 0.51, 0.05), 2)),
        "min_log_ratio": tuple(np.round(np.arange(0.2, 3.01, 0.1), 1)),
        "min_wider": tuple(np.round(np.arange(0.0, 0.21, 0.01), 2))}
MAX_FLAGGED_IN = 0.05  # tuning keeps in-vocabulary flags on train at or below this, then catches most OOV


def _flags(rows: Sequence[Evidence], rule: dict) -> np.ndarray:
    """decide(...).fit == "poor" for many tracks at once (the same two rules, vectorised)."""
    music, inside = (np.array([getattr(ev, f) for ev in rows], dtype=float) for f in ("music", "inside"))
    wider = np.array([ev.wider[0][1] for ev in rows], dtype=float)
    return (music < rule["min_music"]) | _wider_wins(wider, inside, rule)


def flag_rates(in_vocab: Sequence[Evidence], out_of_vocab: Sequence[Evidence], rule: dict) -> tuple[float, float]:
    """(share of in-vocabulary tracks flagged poor, share of out-of-vocabulary tracks flagged poor)."""
    return tuple(float(_flags(rows, rule).mean()) if len(rows) else float("nan") for rows in (in_vocab, out_of_vocab))


def tune(in_vocab: Sequence[Evidence], out_of_vocab: Sequence[Evidence]) -> dict:
    """The rule flagging the most out-of-vocabulary tracks while flagging at most
    :data:`MAX_FLAGGED_IN` of the in-vocabulary ones; of the rules that tie, the one nearest the
    middle of their range (median of each threshold), so no threshold sits on an edge of the data."""
    import itertools

    scored = []
    for values in itertools.product(*GRID.values()):
        rule = dict(zip(GRID, map(float, values)))
        flagged_in, flagged_out = flag_rates(in_vocab, out_of_vocab, rule)
        if flagged_in <= MAX_FLAGGED_IN:
            scored.append((flagged_out, rule))
    if not scored:
        raise TracklensError("no rule keeps in-vocabulary flags low enough; check the evidence")
    top = max(score for score, _ in scored)
    plateau = [rule for score, rule in scored if score == top]
    middle = {k: float(np.median([r[k] for r in plateau])) for k in GRID}
    scale = {k: float(np.ptp(GRID[k])) for k in GRID}
    return min(plateau, key=lambda r: sum(((r[k] - middle[k]) / scale[k]) ** 2 for k in GRID))


# --- a continuous score, scored as the out-of-distribution literature does ------------------------------


def poor_fit_score(rows: Sequence[Evidence], rule: dict = RULE) -> np.ndarray:
    """How far each track is past the rule (n,): the larger of ``log(wider / inside) -
    min_log_ratio`` (rule 2 without its ``min_wider`` floor) and ``log(min_music / music)``
    (rule 1). Zero or more: one of the rules fires; a threshold on it trades flags of real
    in-vocabulary music against caught out-of-vocabulary tracks (:func:`ood_metrics`)."""
    music, inside = (np.array([getattr(ev, f) for ev in rows], dtype=float) for f in ("music", "inside"))
    wider = np.array([ev.wider[0][1] for ev in rows], dtype=float)
    ratio = np.log((wider + EPS) / (inside + EPS)) - rule["min_log_ratio"]
    return np.maximum(ratio, np.log(rule["min_music"] / (music + EPS)))


def ood_metrics(score_in, score_out) -> dict:
    """AUROC of telling out-of-vocabulary tracks (positives) from in-vocabulary ones by a score
    (higher = less in vocabulary), and the false-positive rate at 95 % true-positive rate: the
    share of in-vocabulary tracks flagged when the threshold flags 95 % of the others."""
    from sklearn.metrics import roc_auc_score

    score_in, score_out = np.asarray(score_in, float), np.asarray(score_out, float)
    if not len(score_in) or not len(score_out):
        raise TracklensError("ood_metrics needs in- and out-of-vocabulary scores")
    y = np.r_[np.zeros(len(score_in)), np.ones(len(score_out))]
    # the highest threshold that still flags 95 % of the out-of-vocabulary tracks
    threshold = np.sort(score_out)[::-1][int(np.ceil(0.95 * len(score_out))) - 1]
    return {"auroc": float(roc_auc_score(y, np.r_[score_in, score_out])),
            "fpr_at_95_tpr": float(np.mean(score_in >= threshold)), "n_in": len(score_in), "n_out": len(score_out)}
