"""`tracklens similar --use-labels / --no-labels` (issue 18): catalogue.similar(..., use_labels=True)
from the command line, labels used by default when the catalogue has them, and a one-line refusal,
before any file is analysed, of --use-labels for an unlabelled catalogue."""

from __future__ import annotations

import io
import shutil

import pandas as pd
import pytest

from test_catalogue import build, fake, refs  # noqa: F401  (fixtures)
from tracklens import catalogue


def test_use_labels_ranks_as_catalogue_similar_with_labels(fake, refs, tmp_path, run_cli):  # noqa: F811
    build(refs, tmp_path / "cat")
    query = refs / "jazz" / "jazz.00001.wav"
    code, out, err = run_cli("similar", query, "--catalogue", tmp_path / "cat", "--top", "4", "--format", "csv",
                             "--use-labels")
    assert code in (0, None), err
    shown = pd.read_csv(io.StringIO(out))
    cat = catalogue.load(tmp_path / "cat")
    expected = catalogue.similar(query, cat, top=4, use_labels=True)
    assert shown["track_id"].tolist() == expected["track_id"].tolist()
    assert shown["similarity"].tolist() == pytest.approx(expected["similarity"].tolist(), abs=1e-4)
    label_free = catalogue.similar(query, cat, top=4, use_labels=False)
    assert shown["similarity"].tolist() != pytest.approx(label_free["similarity"].tolist(), abs=1e-3)  # the flag counts


@pytest.mark.parametrize("flag, labelled", [(None, True), ("--no-labels", False)])
def test_labels_are_used_by_default_when_the_catalogue_has_them(fake, refs, tmp_path, run_cli, flag, labelled):  # noqa: F811
    build(refs, tmp_path / "cat")  # folder source: its sub-folders label the tracks
    query = refs / "jazz" / "jazz.00001.wav"
    code, out, err = run_cli("similar", query, "--catalogue", tmp_path / "cat", "--top", "4", "--format", "csv",
                             *([flag] if flag else []))
    assert code in (0, None), err
    shown = pd.read_csv(io.StringIO(out))["similarity"].tolist()
    cat = catalogue.load(tmp_path / "cat")
    assert shown == pytest.approx(catalogue.similar(query, cat, top=4, use_labels=labelled)["similarity"].tolist(), abs=1e-4)
    assert shown != pytest.approx(catalogue.similar(query, cat, top=4, use_labels=not labelled)["similarity"].tolist(),
                                  abs=1e-3)


def test_an_unlabelled_catalogue_is_refused_in_one_line(fake, refs, tmp_path, run_cli, monkeypatch):  # noqa: F811
    flat = tmp_path / "flat"  # no genre sub-folders, no GTZAN-style names: no labels
    flat.mkdir()
    for i, clip in enumerate(sorted(refs.glob("*/*.wav"))):
        shutil.copy(clip, flat / f"mix{i}.wav")
    build(flat, tmp_path / "cat")
    analysed = []
    monkeypatch.setattr(catalogue, "analyse", lambda *a, **k: analysed.append(a) or pytest.fail("analysed"))
    code, out, err = run_cli("similar", refs / "jazz" / "jazz.00001.wav", "--catalogue", tmp_path / "cat", "--use-labels")
    assert code == 2 and out == "" and not analysed
    assert len(err.strip().splitlines()) == 1 and "--use-labels" in err and "no genre labels" in err
