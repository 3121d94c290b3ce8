"""The `tracklens acquire` verbs (spotify, previews, charts, folder) in-process and from a real process.
Each source's own tests are in tests/test_acquire_<source>.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import responses

from tracklens import config
from tracklens.acquire.charts import acquire_charts

from test_acquire_charts import write_charts
from test_acquire_folder import audio_folder  # noqa: F401  (fixture)
from test_acquire_previews import MP3, add_deezer
from test_acquire_spotify import ALBUM, API, SECRET, T3, TOKEN_URL, add_enrichment, fixture, read_rows


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `tracklens ARGS` in-process through cli.main (so `responses` mocks apply)."""
    from tracklens import cli

    monkeypatch.setattr(sys, "argv", ["tracklens", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    return info.value.code or 0, out, err


def test_cli_folder_writes_manifest(monkeypatch, capsys, audio_folder, tmp_path):
    out = tmp_path / "manifest.csv"
    code, stdout, _ = run_cli(monkeypatch, capsys, "acquire", "folder", str(audio_folder), "--out", str(out))
    assert code == 0
    assert "6 files, 3 labels, 3 unreadable" in stdout
    assert len(read_rows(out)) == 6


def test_cli_spotify_without_credentials_is_one_clear_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    monkeypatch.setattr(config, "load_dotenv_once", lambda: None)
    code, _, err = run_cli(monkeypatch, capsys, "acquire", "spotify", "album", ALBUM, "--out", str(tmp_path / "t.csv"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tracklens: error: Spotify credentials are not set")
    assert "Traceback" not in err and not (tmp_path / "t.csv").exists()


def test_cli_spotify_and_previews_end_to_end(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
    tracks = tmp_path / "tracks.csv"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=fixture("spotify_token.json"))
        mock.get(f"{API}/search", json={"tracks": {**fixture("spotify_search_page2.json")["tracks"], "offset": 0}})
        add_enrichment(mock, features_status=403)
        code, stdout, err = run_cli(monkeypatch, capsys, "acquire", "spotify", "search", "svefn", "--out", str(tracks))
        assert code == 0, err
        assert "1 new tracks" in stdout and "audio-features endpoint is closed" in stdout
        assert SECRET not in stdout + err

        add_deezer(mock)
        code, stdout, err = run_cli(monkeypatch, capsys, "acquire", "previews", str(tracks), "--out", str(tmp_path / "p"))
    assert code == 0, err
    assert "1 downloaded, 0 already there, 0 failed" in stdout
    assert (tmp_path / "p" / f"{T3}.mp3").read_bytes() == MP3


def test_cli_charts(monkeypatch, capsys, tmp_path):
    source = write_charts(tmp_path / "hits.csv")
    code, stdout, _ = run_cli(monkeypatch, capsys, "acquire", "charts", str(source), "--out", str(tmp_path / "raw"))
    assert code == 0 and "3 rows, valid; copied to" in stdout

    code, _, err = run_cli(monkeypatch, capsys, "acquire", "charts", str(tmp_path / "nope.csv"))
    assert code == 2 and err.count("\n") == 1 and "nope.csv: no such file" in err

    # the verb validates with the full schema (prepare.load_charts), not only the header
    mistyped = tmp_path / "mistyped.csv"
    mistyped.write_text(source.read_text(encoding="utf-8").replace(",78,", ",seventy-eight,"), encoding="utf-8")
    assert acquire_charts(mistyped, tmp_path / "header-only").rows == 3  # the header check alone passes it
    code, _, err = run_cli(monkeypatch, capsys, "acquire", "charts", str(mistyped), "--out", str(tmp_path / "raw2"))
    assert code == 2 and "popularity" in err and "seventy-eight" in err and not (tmp_path / "raw2").exists()


@pytest.mark.parametrize("verb", ["spotify", "previews", "charts", "folder"])
def test_cli_help_has_examples(monkeypatch, capsys, verb):
    code, stdout, _ = run_cli(monkeypatch, capsys, "acquire", verb, "--help")
    assert code == 0 and "Examples:" in stdout and f"tracklens acquire {verb}" in stdout


def test_cli_error_exit_from_a_real_process(tmp_path):
    tracklens = Path(sys.executable).with_name("tracklens")
    if not tracklens.exists():
        pytest.skip("the tracklens console script is not installed in this environment")
    proc = subprocess.run([str(tracklens), "acquire", "folder", str(tmp_path / "missing"), "--out", str(tmp_path / "m.csv")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"tracklens: error: {tmp_path / 'missing'}: no such folder"]
