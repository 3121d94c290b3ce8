"""Fuzz the decoder and the feature engine at scale: mutated WAV/FLAC/AIFF/AU/MP3/Ogg/Opus/M4A
files through audio.load_audio (or load_audio_bytes) and features.featurize_clip.

Run:  .venv/bin/python bench/fuzz.py [--n 10000] [--seed 0] [--jobs 1]
      .venv/bin/python bench/fuzz.py --seed 0 --only 4711 --save fuzz-failures   (reproduce one input)

The inputs and the runner are tests/fuzzing.py's (tests/test_fuzz.py runs a few hundred on
every test run). Prints how many inputs decoded, how many raised the project's own error (by
message kind), and the bad outcomes: another exception type, no answer within the deadline
(10 s) or a crash (a signal); exits 1 when any bad outcome occurred. ``--save`` keeps the bad
inputs there. Each worker process is a core: on the shared machine, keep ``--jobs`` low.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tracklens import fileio
from tracklens.tests import fuzzing


def print_table(counts, total: int, seconds: float) -> None:
    """Outcome counts (project errors by message kind, other exceptions by type) with shares."""
    print(f"{total} inputs in {seconds:.0f} s ({seconds / max(total, 1) * 1000:.0f} ms each)\n")
    print(f"{'outcome':<17} {'kind':<58} {'count':>7} {'share':>7}")
    order = ("decoded", "project error", *fuzzing.BAD_OUTCOMES)
    for outcome in order:
        rows = sorted(((kind, n) for (o, kind), n in counts.items() if o == outcome), key=lambda kv: -kv[1])
        for kind, n in rows or [("", 0)]:
            print(f"{outcome:<17} {kind[:58]:<58} {n:>7} {n / max(total, 1):>7.1%}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="inputs to generate (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="run seed: the same seed gives the same inputs")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--deadline", type=float, default=fuzzing.DEADLINE_S, help="seconds per input")
    parser.add_argument("--only", type=int, nargs="+", help="examine only these input indices")
    parser.add_argument("--save", type=Path, help="folder to keep the inputs with a bad outcome in")
    args = parser.parse_args(argv)

    counts, bad, done, started = {}, [], 0, time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tracklens-fuzz-") as tmp:
        for r in fuzzing.fuzz(args.n, seed=args.seed, workdir=Path(tmp), jobs=args.jobs, deadline_s=args.deadline,
                              only=args.only):
            key = next(iter(fuzzing.outcome_counts([r])))
            counts[key] = counts.get(key, 0) + 1
            done += 1
            if r.outcome in fuzzing.BAD_OUTCOMES:
                bad.append(r)
                print(f"BAD #{r.input.index} ({r.input.how}): {r.outcome}: {r.detail}", file=sys.stderr, flush=True)
                if args.save:
                    fileio.atomic_write_bytes(args.save / f"{args.seed}-{r.input.index}-{r.input.name}", r.input.data)
            if done % 500 == 0:
                print(f"{done} inputs, {len(bad)} bad, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print_table(counts, done, time.monotonic() - started)
    if bad:
        print(f"\n{len(bad)} bad outcome(s); reproduce with: bench/fuzz.py --seed {args.seed} --only "
              + " ".join(str(r.input.index) for r in bad[:20]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
