"""Experiment: order-aware cadence evidence for the learned key model (issue 19, item 2; docs/key.md).

Run:  PYTHONPATH=.. TRACKLENS_SHARED_DATA=../shared/data nice python bench/key_cadence.py \
          --cache /tmp/keyfeat.pkl --bp-cache data/interim/basic_pitch --jobs 2 [--valid]
      (the recipe's feature pickle and basic-pitch's cached outputs, bench/basic_pitch_cache.py;
      ~6 minutes of fits on 2 busy cores: 72 variants and the recipe, 50 fits each)

The model's profiles are sums over frames: they cannot tell a tonic from its dominant, which
share most notes, and a fifth off is the commonest miss left. A bass line *moves* to its tonic:
V -> I and IV -> I arrivals are order-aware evidence a profile cannot see. Here basic-pitch's
bass line (per frame the lowest note above its 0.3 threshold, below ``top`` MIDI) becomes a
sequence of bass notes (runs of one pitch class at least ``min_frames`` long; shorter runs are
flicker and are skipped, silent frames keep the last note), and each change of bass note
``a -> b`` counts in a 12 x 12 transition histogram. Read per pitch class ``p`` as 12-bin
blocks, so the model's templates (rolled to each candidate tonic, hence equivariant) weigh them
like any profile:

- ``from fifth``: arrivals on ``p`` from ``p + 7`` (a fifth above / fourth below: V -> I when
  ``p`` is the tonic; its template also reads I -> IV, ii -> V at other degrees);
- ``from fourth``: arrivals on ``p`` from ``p + 5`` (IV -> I);
- ``arrivals``: every arrival on ``p`` (how often the bass goes to ``p``, from anywhere);
- ``asymmetry``: arrivals on ``p`` from ``p + 7`` minus departures from ``p`` to ``p + 7``, and the
  same for ``p + 5``: the direction of the motion alone (V -> I against I -> V).
- ``ends+held``: notes on ``p`` followed by a rest of at least ``REST_FRAMES`` (a phrase end), and
  the squared lengths of the notes on ``p`` (long notes weigh most).

The same blocks are read from the chord roots (per frame the root of the strongest major or
minor triad of the note posterior, at basic-pitch's threshold or soft), and each reading is tried
with the changes counted once or by the arriving note's length, and with the blocks at scale 1 or
3 (the templates' one L2 then shrinks them 9 times less).

Every variant is the recipe's model (templates on its 11 blocks, L2 300, snippets at weight
0.5, the engine's expected-MIREX decision) plus those blocks, z-scored as the others; scored with
the recipe's grouped 10-fold CV on the **train** fold alone (5 shuffles, ``key_model.cv_splits``),
gains paired per clip against the recipe (``--only`` runs a subset; the CV is deterministic, so
rows of separate runs agree). Decision rule, fixed before any valid number: score
the train-chosen variant once on valid (``--valid``) only if it beats the recipe by more than
one paired SE on train CV; ship it only if its valid MIREX is then at least 0.693.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))  # the model recipes (not installed)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import key_model  # noqa: E402  (recipes/key_model.py)
import key_rerank  # noqa: E402  (bench/key_rerank.py: the CV table, the valid report)

from tracklens import config, key_estimation as ke  # noqa: E402

N = ke.N_PITCH
SHIPPED = key_rerank.SHIPPED
REFERENCE = "recipe"
NOTE_OUTPUT = "StatefulPartitionedCall_1"  # basic-pitch's note posterior in the cache (pitch_posteriors._OUTPUTS)
def bass_pitch_classes(note: np.ndarray, *, top: int = 109) -> np.ndarray:
    """Per frame of basic-pitch's note posterior [shape=(t, 88)] the pitch class of the lowest note
    above its threshold and below MIDI ``top`` (the engine's bass line), -1 where none is."""
    on = np.asarray(note)[:, :top - ke.BP_LOWEST_MIDI] > ke.FRAME_THRESHOLD
    return np.where(on.any(axis=1), (ke.BP_LOWEST_MIDI + on.argmax(axis=1)) % N, -1)


def chord_roots(note: np.ndarray, *, threshold: float = ke.FRAME_THRESHOLD) -> np.ndarray:
    """Per frame the root of the strongest major or minor triad (a triad as strong as its weakest
    note; per pitch class its strongest octave, values at or below ``threshold`` 0), -1 where no
    triad sounds. At basic-pitch's threshold 0.3 three notes rarely sound at once on GTZAN's mixes
    (median 3 % of a train clip's frames): ``threshold`` 0 names a triad in every frame."""
    note = np.asarray(note, dtype=np.float64)
    pcs = (ke.BP_LOWEST_MIDI + np.arange(note.shape[1])) % N
    act = np.stack([note[:, pcs == p].max(axis=1) for p in range(N)], axis=1)
    act = act * (act > threshold)
    roots = np.arange(N)
    triads = np.hstack([np.minimum(np.minimum(act[:, roots], act[:, (roots + third) % N]), act[:, (roots + 7) % N])
                        for third in (4, 3)])  # [t, 24]: major, minor triads by root
    return np.where(triads.max(axis=1) > 0, triads.argmax(axis=1) % N, -1)


class PitchClassMotion:
    """The 12 x 12 histogram of changes of a per-frame pitch class (the bass note, the chord
    root; row: from, column: to), accumulated block by block: the note in progress and the last
    note carry over, so blocks add up to the whole."""

    def __init__(self, labels, *, min_frames: int, by_length: bool = False) -> None:
        self.labels, self.min_frames, self.by_length = labels, min_frames, by_length
        self.counts = np.zeros((N, N))
        self.ends = np.zeros(N)  # per pitch class: notes followed by a rest of at least REST_FRAMES (a phrase end)
        self.held = np.zeros(N)  # per pitch class: the squared lengths of its notes (long notes weigh most)
        self.run_pc, self.run_len, self.last = -1, 0, -1

    def add(self, note: np.ndarray) -> None:
        """One block of basic-pitch's note posterior [shape=(t, 88)]."""
        pcs = self.labels(note)
        if not len(pcs):
            return
        edges = np.flatnonzero(np.diff(pcs)) + 1
        for start, stop in zip(np.r_[0, edges], np.r_[edges, len(pcs)]):
            pc = int(pcs[start])
            if pc == self.run_pc:
                self.run_len += stop - start
                continue
            self._close(self.counts, self.ends, self.held)
            self.run_pc, self.run_len = pc, stop - start

    def _close(self, counts: np.ndarray, ends: np.ndarray, held: np.ndarray) -> None:
        if self.run_pc < 0:
            if self.run_len >= REST_FRAMES and self.last >= 0:
                ends[self.last] += 1
        elif self.run_len >= self.min_frames:
            if self.last >= 0 and self.last != self.run_pc:
                counts[self.last, self.run_pc] += self.run_len if self.by_length else 1
            held[self.run_pc] += self.run_len ** 2
            self.last = self.run_pc

    def statistics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the change histogram, the phrase ends, the held notes) with the run in progress closed
        (the state is left as it was)."""
        out, last = (self.counts.copy(), self.ends.copy(), self.held.copy()), self.last
        self._close(*out)
        self.last = last
        return out


# readings of a per-frame pitch class: {name: (the labels, the shortest run of frames that counts as a note,
# whether a change counts once or by the arriving note's length in frames: a cadence lands and stays)};
# the bass line below MIDI 109 (every register, as the engine's bass block) or below C4 (60)
READINGS = {f"bass {register}, {n} frames{', by length' if by_length else ''}":
            (partial(bass_pitch_classes, top=top), n, by_length)
            for register, top in (("any register", 109), ("below C4", 60))
            for n in (3, 9) for by_length in (False, True)}
READINGS.update({f"chord roots{soft}, {n} frames": (partial(chord_roots, threshold=t), n, False)
                 for soft, t in (("", ke.FRAME_THRESHOLD), (" (soft)", 0.0)) for n in (9, 20)})
# the cadence blocks multiplied by this: the templates' one L2 (300) shrinks them scale**2 times less
SCALES = (1.0, 3.0)
BLOCK_SETS = {"V,IV->I": ("from fifth", "from fourth"), "V,IV->I+arrivals": ("from fifth", "from fourth", "arrivals"),
              "asymmetry": ("fifth asymmetry", "fourth asymmetry"), "ends+held": ("phrase ends", "held notes")}
REST_FRAMES = 20  # a rest this long (232 ms) after a note ends a phrase



def cadence_blocks(counts: np.ndarray, ends: np.ndarray, held: np.ndarray) -> dict[str, np.ndarray]:
    """{name: 12-bin block indexed by the arrival's pitch class} of a bass-change histogram."""
    p = np.arange(N)
    return {"from fifth": counts[(p + 7) % N, p], "from fourth": counts[(p + 5) % N, p],
            "arrivals": counts.sum(axis=0),
            # order alone: V -> I minus I -> V, IV -> I minus I -> IV (a profile sees neither direction)
            "fifth asymmetry": counts[(p + 7) % N, p] - counts[p, (p + 7) % N],
            "fourth asymmetry": counts[(p + 5) % N, p] - counts[p, (p + 5) % N],
            "phrase ends": ends, "held notes": held}


def with_cadence(rows: list[dict], bp_cache: Path) -> list[dict]:
    """``rows``, each with ``features_<reading>``: its KeyFeatures and every cadence block of that
    bass-line reading appended (z-scored), in the order of ``cadence_blocks``."""
    out = []
    for r in rows:
        if r["features"] is None:
            out.append(r)
            continue
        note = np.load(bp_cache / f"{r['clip']}__{r['kind']}.npz")[NOTE_OUTPUT]
        extra = {}
        for name, (labels, min_frames, by_length) in READINGS.items():
            motion = PitchClassMotion(labels, min_frames=min_frames, by_length=by_length)
            motion.add(note)
            blocks = [ke._zscore(b) for b in cadence_blocks(*motion.statistics()).values()]
            for scale in SCALES:
                extra[f"features_{name} x{scale:g}"] = ke.KeyFeatures(
                    r["features"].profile, np.vstack([r["features"].blocks, scale * np.array(blocks)]))
        out.append({**r, **extra})
    return out


BLOCK_NAMES = tuple(cadence_blocks(np.zeros((N, N)), np.zeros(N), np.zeros(N)))
VARIANTS = {REFERENCE: (None, None)}
VARIANTS.update({f"{blocks} ({reading}) x{scale:g}": (f"{reading} x{scale:g}", blocks)
                 for reading in READINGS for blocks in BLOCK_SETS for scale in SCALES})


def register_sets() -> None:
    """The recipe's FEATURE_SETS plus one per cadence block set (joblib's workers import the recipe afresh)."""
    for name, blocks in BLOCK_SETS.items():
        key_model.FEATURE_SETS[name] = (*range(ke.N_BLOCKS), *(ke.N_BLOCKS + BLOCK_NAMES.index(b) for b in blocks))


def variant_keys(variant: str, train, train_snippets, test) -> list[tuple[int, int]]:
    """The keys the variant's model, fitted on (``train``, ``train_snippets``), names for ``test``."""
    reading, blocks = VARIANTS[variant]
    if reading is None:
        return key_model.model_keys(key_model.fit(train, train_snippets, SHIPPED), test)
    register_sets()
    swap = lambda rows: [{**r, "features": r[f"features_{reading}"]} for r in rows]  # noqa: E731
    choice = key_model.Choice(SHIPPED.l2, SHIPPED.snippet_weight, blocks)
    return key_model.model_keys(key_model.fit(swap(train), swap(train_snippets), choice), swap(test))


def fold_keys(train, train_snippets, held, seed, *, variants) -> dict[str, list[tuple[int, int]]]:
    return {v: variant_keys(v, train, train_snippets, held) for v in variants}


def cross_validate(full, snippets, variants, *, jobs: int, seeds=range(5), n_splits: int = 10) -> dict[str, np.ndarray]:
    """{variant: [len(seeds), len(full)] per-clip MIREX} of the recipe's grouped CV."""
    return key_rerank.grouped_cv(full, snippets, partial(fold_keys, variants=variants), variants,
                                 jobs=jobs, seeds=seeds, n_splits=n_splits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="recipes/key_model.py's feature pickle")
    parser.add_argument("--bp-cache", type=Path, required=True, help="folder of <clip>__<kind>.npz basic-pitch outputs")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=5, help="CV shuffles")
    parser.add_argument("--valid", action="store_true",
                        help="score the train-CV choice once on the valid fold (only if it beats the recipe by > 1 SE)")
    parser.add_argument("--only", nargs="*", default=None, metavar="TEXT",
                        help="only the variants whose name contains one of these (the recipe always; the CV is "
                             "deterministic, so rows of separate runs agree)")
    args = parser.parse_args(argv)
    variants = [v for v in VARIANTS if v == REFERENCE or args.only is None or any(t in v for t in args.only)]
    rows = with_cadence(key_model.load_rows(config.SHARED_DATA_DIR, jobs=args.jobs, cache=args.cache), args.bp_cache)
    train, train_snippets = key_model.split(rows, ("train",))
    valid, _ = key_model.split(rows, ("valid",))
    print(f"train: {len(train)} full clips + {len(train_snippets)} snippets; valid: {len(valid)} full clips")

    per_clip = cross_validate(train, train_snippets, variants, jobs=args.jobs, seeds=range(args.seeds))
    print(f"\ntrain fold, grouped 10-fold CV (mean of {args.seeds} shuffles; recipes/key_model.py's folds); "
          f"gain paired against the {REFERENCE} (L2 300, 11 blocks, expected MIREX):")
    chosen, qualifies = key_rerank.cv_table(per_clip, variants, REFERENCE)

    if args.valid:
        if not qualifies:
            print("valid fold not scored: the train-CV choice does not beat the recipe by more than one SE")
            return 0
        print("\nvalid fold, scored once (fitted on the train fold alone):")
        ref_keys = key_model.model_keys(ke.KEY_MODEL_TRAIN_ONLY, valid)
        ref = key_rerank.report_valid("KEY_MODEL_TRAIN_ONLY, expected MIREX", ref_keys, valid, None)
        key_rerank.report_valid(f"chosen: {chosen}", variant_keys(chosen, train, train_snippets, valid), valid, ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
