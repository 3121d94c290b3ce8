"""Fuzzing as a habit: a seeded, bounded run of tests/fuzzing.py on every test run.

bench/fuzz.py runs the same at scale (10,000+ inputs). Each input decodes or raises a
TracklensError; any other exception, a hang past 10 s or a crash names the input (index and
mutations) so `bench/fuzz.py --seed 7 --only INDEX` reproduces it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tracklens.tests import fuzzing

N_INPUTS = 200  # ~1 min on the 2 shared cores, worker start-up (imports, numba) included
SEED = 7


@pytest.mark.slow
def test_mutated_audio_decodes_or_raises_a_project_error(tmp_path):
    results = list(fuzzing.fuzz(N_INPUTS, seed=SEED, workdir=tmp_path, jobs=2))
    assert sorted(r.input.index for r in results) == list(range(N_INPUTS))
    bad = [f"#{r.input.index} ({r.input.how}): {r.outcome}: {r.detail}"
           for r in results if r.outcome in fuzzing.BAD_OUTCOMES]
    assert not bad, "\n".join(bad)
    outcomes = Counter(r.outcome for r in results)
    # the mutants reach both sides: enough decode for the feature engine to be exercised too
    assert outcomes["decoded"] >= N_INPUTS // 10 and outcomes["project error"] >= N_INPUTS // 10, outcomes


def test_the_runner_reports_hangs_and_crashes(tmp_path):
    """The harness itself: a hung input is stopped at its deadline, a crash is named by its
    signal, and the worker is replaced so the inputs after them still run."""
    inputs = [fuzzing.FuzzInput(i, f"{i}.bin", data, False, data.decode())
              for i, data in enumerate([b"fine", b"hang", b"crash", b"fine"])]
    results = {r.input.index: r for r in fuzzing.run(inputs, tmp_path, jobs=1, deadline_s=2.0,
                                                     examine_fn=fuzzing.examine_harness_probe, warm_up=False)}
    assert [results[i].outcome for i in range(4)] == ["decoded", "timeout", "crash", "decoded"]
    assert results[2].detail == "SIGSEGV" and results[1].seconds < 10
    assert list(tmp_path.iterdir()) == []  # every input file is removed once examined
