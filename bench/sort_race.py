"""Two processes sorting at once: how many files does `predict --sort-into DIR --move` lose?

Each round, two processes call the function behind ``--sort-into`` at the same moment, each
moving ``--files`` files with the same names and different bytes into one folder; a file is lost
when its bytes are nowhere in the folder afterwards. Prints one line per round and a total.

    python bench/sort_race.py --rounds 10 --files 400
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def _sorter():
    """The sorting function of the tracklens imported (models.output since it moved, else models.blend)."""
    try:
        from tracklens.models.output import sort_into
    except ImportError:
        from tracklens.models.blend import sort_into
    return sort_into


def _child(paths, dest, barrier):
    from tracklens.models.blend import Blend

    results = [Blend(path=str(p), genres=["pop", "rock"], probabilities=np.array([0.8, 0.2]), timeline=pd.DataFrame(),
                     duration_s=1.0, model="bench", fit="ok") for p in paths]
    barrier.wait()
    _sorter()(results, dest, move=True)


def one_round(root: Path, n_files: int) -> int:
    batches = []
    for tag in "ab":
        folder = root / tag
        folder.mkdir()
        batch = []
        for i in range(n_files):
            path = folder / f"song{i:03d}.wav"
            path.write_bytes(f"{tag}:{i}:".encode() * 50)
            batch.append(path)
        batches.append(batch)
    expected = {p.read_bytes() for batch in batches for p in batch}
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    children = [context.Process(target=_child, args=(batch, root / "sorted", barrier)) for batch in batches]
    for child in children:
        child.start()
    for child in children:
        child.join()
    found = {p.read_bytes() for p in (root / "sorted").rglob("*") if p.is_file() and not p.name.startswith(".")}
    return len(expected - found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    lost = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            lost.append(one_round(Path(tmp), args.files))
        print(f"round {r + 1}: {lost[-1]} of {2 * args.files} files lost")
    print(f"total: {sum(lost)} lost in {sum(n > 0 for n in lost)} of {args.rounds} rounds")


if __name__ == "__main__":
    main()
