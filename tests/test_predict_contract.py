"""`tracklens predict`'s CSV contract: columns, error rows, spreadsheet-safe cells, with a demo and the shipped model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tracklens import config
from tracklens.models import store

from model_helpers import _run_cli


@pytest.mark.slow  # shares the session-wide demo training (~1-2 min on 2 cores)
def test_predict_cli_csv_contract_and_error_rows(trained, demo_catalogue, tmp_path):
    import soundfile as sf

    wavs = sorted((demo_catalogue / "audio").glob("*/*.wav"))[:2]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050 * 3, dtype=np.float32), 22050)
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, 0.1 * np.sin(np.arange(4410) / 5.0).astype(np.float32), 22050)
    files = [wavs[0], corrupt, silent, tiny, wavs[1]]
    proc = _run_cli("predict", *map(str, files), "--model", str(trained[0] / "linear"), "--format", "csv",
                    "--sort-into", str(tmp_path / "sorted"))
    assert proc.returncode == 1, proc.stderr
    genres = store.read_card(trained[0] / "linear")["genres"]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == ",".join(["path", "top_genre", *genres, "fit"])
    table = pd.read_csv(__import__("io").StringIO(proc.stdout))
    assert list(table["path"]) == list(map(str, files))
    assert list(table["top_genre"].iloc[1:4]) == ["error"] * 3
    good = table.iloc[[0, 4]]
    np.testing.assert_allclose(good[genres].sum(axis=1), 1.0, atol=1e-4)
    assert set(good["top_genre"]) <= set(genres)
    for bad in (corrupt, silent, tiny):
        assert str(bad) in proc.stderr
    assert len(list((tmp_path / "sorted").glob("*/*.wav"))) == 2 and wavs[0].is_file()  # copied, not moved


def test_predict_cli_default_model_csv_contract_on_real_music(gtzan_clip, tmp_path):
    """`tracklens predict --format csv` with the shipped musicnn model: the stable contract, an
    error row for a corrupt file, and the same forward pass's tags with --tags (json)."""
    from typer.testing import CliRunner

    from tracklens import cli

    good = [gtzan_clip("metal.00002", "full30s"), gtzan_clip("disco.00012", "snippet2to3s")]
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"ID3 not really an mp3")
    result = CliRunner().invoke(cli.app, ["predict", *map(str, [good[0], corrupt, good[1]]), "--format", "csv"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == ",".join(["path", "top_genre", *config.GTZAN_GENRES, "fit"])
    table = pd.read_csv(__import__("io").StringIO("\n".join(lines) + "\n"))
    assert list(table["path"]) == [str(good[0]), str(corrupt), str(good[1])]
    assert table["top_genre"].tolist()[:2] == ["metal", "error"]
    np.testing.assert_allclose(table.iloc[[0, 2]][list(config.GTZAN_GENRES)].sum(axis=1), 1.0, atol=1e-4)
