"""playlist.py and `tracklens playlist`: a Spotify playlist -> Deezer previews -> the catalogue's
analysis -> one table per track. Spotify and Deezer answer from shaped responses (`responses`;
payloads from tests/fixtures/api, shaped from the OpenAPI spec and the recorded Deezer JSON in
../shared/data/api); the previews are generated audio (demo_data's synthesiser) encoded as MP3.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import responses
import soundfile as sf
from responses import matchers

from tracklens import config, demo_data
from tracklens.acquire.spotify import spotify_client
from tracklens.acquire.web import RateLimitError, RetryPolicy
from tracklens import playlist as pl
from tracklens.errors import CredentialsError, TracklensError

FIXTURES = Path(__file__).parent / "fixtures" / "api"
API = "https://api.spotify.com/v1"
TOKEN_URL = "https://accounts.spotify.com/api/token"
SECRET = "s3cr3t-never-printed"
PLAYLIST = "37i9dQZF1DXcBWIGoYBM5M"
T1, T2, T3 = "0TrackOne0000000000001", "0TrackTwo0000000000002", "0TrackThree00000000003"
ISRC = {T1: "USSM11600001", T2: "USSM11600002", T3: "GBAAA9900003"}
DEEZER = "https://api.deezer.com/track/isrc:{}"
PREVIEW = "https://cdnt-preview.dzcdn.net/api/1/1/test/{}.mp3"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def generated_mp3(genre: str, seed: int, duration_s: float = 6.0) -> bytes:
    """A synthesised clip (demo_data) as MP3 bytes, as a Deezer preview is served."""
    y = demo_data.synthesize_clip(genre, duration_s=duration_s, rng=np.random.default_rng(seed))
    buffer = io.BytesIO()
    sf.write(buffer, y, config.SAMPLE_RATE, format="MP3")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def previews() -> dict[str, bytes]:
    return {T1: generated_mp3("rock", 1), T3: generated_mp3("classical", 2)}


@pytest.fixture
def policy() -> RetryPolicy:
    return RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=4.0, max_retry_after=60.0,
                       sleep=lambda s: None)


@pytest.fixture
def client():
    return spotify_client(credentials=("test-client-id", SECRET))


def spotify(mock, *, page1_status: int = 200, page2_status: int = 200, headers: dict | None = None,
            page1_order: list[str] | None = None):
    """The playlist's two pages (T1, T2, a local file / T3, a removed track), artists, and the
    audio-features endpoint answering 403 as it does to apps created after November 2024.
    ``page1_order``: the page's tracks as these ids, in this order (the local file after them)."""
    mock.post(TOKEN_URL, json=fixture("spotify_token.json"))
    first = fixture("spotify_playlist_items_page1.json") if page1_status == 200 else fixture(f"spotify_error_{page1_status}.json")
    if page1_order is not None:
        by_id = {(entry.get("item") or {}).get("id"): entry for entry in first["items"]}
        first["items"] = [by_id[i] for i in page1_order] + [by_id[None]]
    mock.get(f"{API}/playlists/{PLAYLIST}/items", json=first, status=page1_status, headers=headers,
             match=[matchers.query_param_matcher({"limit": "100"}, strict_match=False)])
    second = fixture("spotify_playlist_items_page2.json") if page2_status == 200 else fixture(f"spotify_error_{page2_status}.json")
    mock.get(f"{API}/playlists/{PLAYLIST}/items", json=second, status=page2_status, headers=headers,
             match=[matchers.query_param_matcher({"offset": "3", "limit": "3"})])
    mock.get(f"{API}/artists/", json=fixture("spotify_artists_several.json"))
    mock.get(f"{API}/audio-features/", json=fixture("spotify_error_403.json"), status=403)


def deezer(mock, previews: dict[str, bytes]):
    """T1 and T3 have previews on Deezer (the recorded track object, its preview URL ours); T2 is a miss
    by ISRC and by search (the one result is another artist's cover)."""
    recorded = fixture("deezer_track_isrc.json")
    for track_id, body in previews.items():
        mock.get(DEEZER.format(ISRC[track_id]), json={**recorded, "isrc": ISRC[track_id], "preview": PREVIEW.format(track_id)})
        mock.get(PREVIEW.format(track_id), body=body, headers={"Content-Type": "audio/mpeg"})
    mock.get(DEEZER.format(ISRC[T2]), json=fixture("deezer_error_not_found.json"))  # HTTP 200 + error body
    # ... then Deezer's search by artist + title, which finds only a cover by someone else
    mock.get("https://api.deezer.com/search", json={"data": [{**recorded, "id": 99, "title": "Sorry",
                                                               "artist": {"id": 9, "name": "Karaoke Stars"}}],
                                                     "total": 1})


def fake_analysis(monkeypatch, values: dict | None = None):
    """Replace the catalogue step by a table of known values (the fast tests need no genre model)."""
    def analyse(folder, tracks, *, jobs, model, progress):
        ids = sorted(p.stem for p in (folder / "previews").glob("*.mp3"))
        rows = [{"track_id": i, "bpm": 128.0, "key": 9, "mode": 0, "loudness": -9.4, "energy_est": 0.7,
                 "acousticness_est": 0.1, "blend_rock": 0.6, "blend_jazz": 0.3, "blend_pop": 0.1,
                 "top_genre": "rock", "blend_label": "rock", "fit": "good", "fit_reason": "", **(values or {})}
                for i in ids]
        return pd.DataFrame(rows, columns=["track_id"] + (list(rows[0])[1:] if rows else [])), {}, len(ids)
    monkeypatch.setattr(pl, "analyse_previews", analyse)


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, mode, code, name", [
    (9, 0, "8A", "A minor"), (0, 1, "8B", "C major"), (7, 1, "9B", "G major"), (4, 0, "9A", "E minor"),
    (5, 1, "7B", "F major"), (11, 1, "1B", "B major"), (8, 0, "1A", "G# minor"), (2, 0, "7A", "D minor"),
    (6, 1, "2B", "F# major"), (1, 0, "12A", "C# minor"),
])
def test_camelot_codes_follow_the_wheel(key, mode, code, name):
    assert pl.camelot(key, mode) == code and pl.key_name(key, mode) == name


def test_every_key_has_its_own_code_and_bad_keys_none():
    codes = {pl.camelot(k, m) for k in range(12) for m in (0, 1)}
    assert len(codes) == 24
    assert pl.camelot(-1, 1) == pl.camelot(None, 0) == pl.camelot(3, 2) == ""
    assert pl.camelot_order("8A") < pl.camelot_order("8B") < pl.camelot_order("9A")


# --- the flow (fast: the analysis step replaced) ---------------------------------------------------


def test_table_says_whose_measure_each_column_is_and_keeps_the_track_without_a_preview(
        monkeypatch, tmp_path, client, policy, previews):
    fake_analysis(monkeypatch)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock)
        deezer(mock, previews)
        result = pl.sort_playlist(PLAYLIST, tmp_path / "table.csv", work=tmp_path / "work", client=client,
                                  policy=policy, progress=False)
    table = pd.read_csv(tmp_path / "table.csv", keep_default_na=False)
    assert list(table["spotify_id"]) == [T1, T2, T3]
    assert list(table.columns[:len(pl.IDENTITY_COLUMNS)]) == list(pl.IDENTITY_COLUMNS)
    measures = [c for c in table.columns if c not in pl.IDENTITY_COLUMNS]
    assert all(c.startswith(("spotify_", "tracklens_")) for c in measures), measures
    by_id = table.set_index("spotify_id")
    assert by_id.loc[T1, "status"] == "analysed" and by_id.loc[T1, "tracklens_camelot"] == "8A"
    assert by_id.loc[T1, "tracklens_key"] == "A minor" and by_id.loc[T1, "spotify_duration"] == "3:26"
    assert by_id.loc[T2, "status"] == "no preview: not found: Deezer search found no track by 'Beyoncé' titled 'Sorry' (1 other results)"
    assert by_id.loc[T2, "tracklens_tempo_bpm"] == ""  # no measure invented for it
    from tracklens.models import descriptors

    error = descriptors.load_estimator().held_out_mae["energy"]
    assert float(by_id.loc[T1, "tracklens_energy_err"]) == pytest.approx(error, abs=1e-3)
    assert by_id.loc[T1, "tracklens_genre_blend"] == "rock 60%, jazz 30%, pop 10%"
    assert "spotify_energy" not in table.columns  # the audio-features endpoint answered 403
    lines = result.summary_lines()
    assert lines[0].startswith("3 tracks: 2 analysed from their preview, 1 without")
    assert any("audio-features endpoint is closed" in line for line in lines)
    assert any(T2 in line and "Deezer search found no track" in line for line in lines)


def test_tempo_is_the_engines_bpm_and_its_alternative_belongs_to_it(monkeypatch, tmp_path, client, policy, previews):
    # The catalogue row holds two tempos: ``tempo`` (the GTZAN-table feature the genre models read)
    # and ``bpm`` (the engine's tempo, the check page's; ``tempo_alt`` is *its* x2 / x1/2). The
    # table's tempo must be ``bpm``, or its alternative column belongs to another estimate.
    fake_analysis(monkeypatch, {"tempo": 107.7, "bpm": 106.1, "tempo_alt": 212.2})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock)
        deezer(mock, previews)
        result = pl.sort_playlist(PLAYLIST, None, work=tmp_path / "work", client=client, policy=policy, progress=False)
    row = result.table.set_index("spotify_id").loc[T1]
    assert (row["tracklens_tempo_bpm"], row["tracklens_tempo_alt_bpm"]) == (106.1, 212.2)


def test_rerun_fetches_and_downloads_only_what_is_new(monkeypatch, tmp_path, client, policy, previews):
    fake_analysis(monkeypatch)
    work = tmp_path / "work"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock)
        deezer(mock, previews)
        first = pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=work, client=client, policy=policy, progress=False)
        downloads = len([c for c in mock.calls if "dzcdn" in c.request.url])
        second = pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=work, client=client, policy=policy,
                                  sort="tempo", progress=False)
        again = len([c for c in mock.calls if "dzcdn" in c.request.url])
    assert (first.fetched, first.downloaded, downloads) == (3, 2, 2)
    assert (second.fetched, second.downloaded, again) == (0, 0, 2)  # nothing new: no track, no preview again
    assert len(second.table) == 3


def test_a_rerun_follows_the_playlist_as_it_is_now(monkeypatch, tmp_path, client, policy, previews):
    # tracks.csv is appended across runs: a track taken out of the playlist stayed in the table, and a
    # reordered playlist kept the old order as its "position"
    fake_analysis(monkeypatch)
    work = tmp_path / "work"

    def sort_when_page1_is(order):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            spotify(mock, page1_order=order)
            deezer(mock, previews)
            return pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=work, client=client, policy=policy, progress=False)

    first = sort_when_page1_is(None)
    second = sort_when_page1_is([T2])  # T1 taken out
    third = sort_when_page1_is([T2, T1])  # T1 back, after T2
    assert list(first.table["spotify_id"]) == [T1, T2, T3]
    assert list(second.table["spotify_id"]) == [T2, T3] and list(second.table["position"]) == [1, 2]
    assert any("1 track fetched before is no longer in the playlist" in p for p in second.problems)
    assert T1 in (work / "tracks.csv").read_text()  # nothing fetched before is deleted
    assert list(third.table["spotify_id"]) == [T2, T1, T3] and third.fetched == 0 and third.downloaded == 0


@pytest.mark.parametrize("status, error, words", [
    (404, TracklensError, "Spotify has no playlist"),
    (403, TracklensError, "403 Forbidden"),
    (401, CredentialsError, "401 Unauthorized"),
])
def test_a_private_missing_or_refused_playlist_is_one_line(tmp_path, client, policy, status, error, words):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock, page1_status=status)
        with pytest.raises(error, match=words) as caught:
            pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=tmp_path / "work", client=client, policy=policy,
                             progress=False)
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    assert not (tmp_path / "t.csv").exists()


def test_rate_limit_after_the_first_page_keeps_the_rows_fetched(monkeypatch, tmp_path, client, policy, previews):
    fake_analysis(monkeypatch)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock, page2_status=429, headers={"Retry-After": "1"})
        deezer(mock, previews)
        result = pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=tmp_path / "work", client=client,
                                  policy=policy, progress=False)
    assert list(result.table["spotify_id"]) == [T1, T2]  # page 1 kept
    (line,) = [p for p in result.problems if p.startswith("Spotify:")]
    assert "429" in line or "rate-limited" in line
    assert "\n" not in line


def test_a_rate_limit_before_any_row_is_one_line(tmp_path, client, policy):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock, page1_status=429, headers={"Retry-After": "2"})
        with pytest.raises(RateLimitError, match="429|rate-limited") as caught:
            pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=tmp_path / "work", client=client, policy=policy,
                             progress=False)
    assert "\n" not in str(caught.value)


def test_a_spotify_server_error_is_one_line_before_any_row_and_a_problem_after(monkeypatch, tmp_path, client, policy,
                                                                              previews):
    from tracklens.acquire.web import ServiceError

    fake_analysis(monkeypatch)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock, page1_status=503)
        with pytest.raises(ServiceError, match="server error \\(HTTP 503\\)") as caught:
            pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=tmp_path / "w1", client=client, policy=policy,
                             progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "t.csv").exists()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock, page2_status=503)
        deezer(mock, previews)
        result = pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=tmp_path / "w2", client=client, policy=policy,
                                  progress=False)
    assert list(result.table["spotify_id"]) == [T1, T2]  # page 1 kept, and written
    (line,) = [p for p in result.problems if p.startswith("Spotify:")]
    assert "HTTP 503" in line and "\n" not in line and (tmp_path / "t.csv").exists()


def test_without_credentials_one_line_says_the_playlist_needs_them(monkeypatch, tmp_path):
    # the line said "everything except `acquire spotify` works without them" to a playlist user
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    monkeypatch.setattr(config, "load_dotenv_once", lambda: None)
    with pytest.raises(CredentialsError, match="only `acquire spotify` and `playlist` need them") as caught:
        pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=tmp_path / "w", progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "t.csv").exists()


def test_out_never_overwrites_a_file_it_did_not_write(tmp_path):
    mine = tmp_path / "notes.csv"
    mine.write_text("name,value\nx,1\n")
    with pytest.raises(TracklensError, match="not a tracklens playlist table"):
        pl.sort_playlist(PLAYLIST, mine, work=tmp_path / "work")
    assert mine.read_text() == "name,value\nx,1\n"
    with pytest.raises(TracklensError, match="sort by one of"):
        pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", sort="bpm")


def test_sorting_by_key_walks_the_camelot_wheel():
    table = pd.DataFrame({"position": [1, 2, 3, 4], "tracklens_camelot": ["9B", "8A", "", "8B"]})
    table["tracklens_camelot_order"] = table["tracklens_camelot"].map(pl.camelot_order)
    assert list(pl.sort_table(table, "key")["tracklens_camelot"]) == ["8A", "8B", "9B", ""]


def test_cli_prints_one_line_for_bad_input_and_no_secret(tmp_path, monkeypatch, capsys):
    from tracklens import cli

    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
    monkeypatch.setattr("sys.argv", ["tracklens", "playlist", "https://open.spotify.com/album/1ATL5GLyefJaxhQzSPVrLX",
                                     "--out", str(tmp_path / "t.csv")])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "is a Spotify album, not a playlist" in err
    assert SECRET not in err


# --- the flow with the real analysis (the catalogue's genre model and engine) ----------------------


@pytest.mark.slow  # the genre model's first load (~20 s)
def test_whole_flow_on_generated_previews_then_a_rerun_analyses_nothing(tmp_path, client, policy, previews, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")  # the batch runner's per-file cache, empty
    work = tmp_path / "work"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock)
        deezer(mock, previews)
        first = pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=work, client=client, policy=policy,
                                 sort="tempo", progress=False)
        second = pl.sort_playlist(PLAYLIST, tmp_path / "t.csv", work=work, client=client, policy=policy,
                                  sort="tempo", progress=False)
    assert first.analysed_now == 2 and second.analysed_now == 0  # the catalogue's per-file cache
    table = second.table
    analysed = table[table["status"] == "analysed"]
    assert set(analysed["spotify_id"]) == {T1, T3}
    assert analysed["tracklens_tempo_bpm"].between(40, 250).all()
    assert analysed["tracklens_camelot"].str.fullmatch(r"(1[0-2]|[1-9])[AB]").all()
    assert analysed["tracklens_key"].str.fullmatch(r"[A-G]#? (major|minor)").all()
    assert analysed["tracklens_loudness_lufs"].between(-70, 0).all()
    assert analysed["tracklens_energy_est"].between(0, 1).all() and (analysed["tracklens_energy_err"] > 0).all()
    assert analysed["tracklens_genre_fit"].isin(["ok", "poor"]).all()  # models.fit's two verdicts
    blend = analysed.filter(like="tracklens_blend_")
    np.testing.assert_allclose(blend.sum(axis=1), 1.0, atol=0.01)
    assert list(table["tracklens_tempo_bpm"].iloc[:2]) == sorted(analysed["tracklens_tempo_bpm"])  # sorted by tempo
    assert table["status"].iloc[-1].startswith("no preview")  # the Deezer miss last, still a row
    written = "".join(p.read_text(errors="replace") for p in work.rglob("*") if p.is_file() and p.suffix in (".csv", ".json"))
    assert SECRET not in written + (tmp_path / "t.csv").read_text() + capsys.readouterr().out


# --- the playlist's figures (explore) ------------------------------------------------------------


def _small_table() -> pd.DataFrame:
    return pd.DataFrame({
        "artists": ["a", "b", "c", "d"], "title": ["w", "x", "y", "z"],
        "tracklens_tempo_bpm": [120.0, 90.0, None, 140.0], "tracklens_energy_est": [0.5, 0.3, None, 0.9],
        "tracklens_energy_err": [0.11, 0.11, None, 0.11], "tracklens_camelot": ["8A", "8A", "", "9B"]})


def test_key_wheel_counts_tracks_per_camelot_key_and_names_each_key():
    from tracklens import track_figures

    for key in range(12):
        for mode in (0, 1):
            assert track_figures.camelot_key(pl.camelot(key, mode)) == pl.key_name(key, mode)
    d = track_figures.camelot_wheel_data(_small_table())
    assert len(d) == 24 and d["tracks"].sum() == 3 and d.attrs["n_unknown"] == 1
    assert d.set_index("code").loc["8A", "titles"] == "a - w; b - x"
    assert d.set_index("code").loc["12B", "angle"] == 0.0  # 12 at the top, as the wheel is printed
    fig = track_figures.camelot_wheel(_small_table())
    assert "1 track without a key left out" in fig.layout.title.subtitle.text
    assert track_figures.camelot_wheel(_small_table(), backend="matplotlib").axes


def test_tempo_energy_scatter_draws_each_estimate_with_its_error():
    from tracklens import track_figures

    fig = track_figures.playlist_scatter(_small_table())
    (points,) = fig.data
    np.testing.assert_allclose(np.asarray(points.x, dtype=float), [120, 90, 140])
    np.testing.assert_allclose(np.asarray(points.error_y.array, dtype=float), [0.11] * 3)
    assert fig.layout.xaxis.title.text == "tempo (BPM, tracklens)" and "estimate" in fig.layout.yaxis.title.text
    assert "1 without a value left out" in fig.layout.title.subtitle.text
    with pytest.raises(TracklensError, match="lacks column"):
        track_figures.playlist_scatter(_small_table().drop(columns="tracklens_energy_est"))


def test_cli_writes_the_sorted_table_and_prints_what_it_did(tmp_path, monkeypatch, capsys, previews):
    from tracklens import cli

    fake_analysis(monkeypatch)  # the replayed answers hold no 429 or 5xx: the default retries never sleep
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "test-client-id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", SECRET)
    out = tmp_path / "playlist.csv"
    monkeypatch.setattr("sys.argv", ["tracklens", "playlist", f"spotify:playlist:{PLAYLIST}", "--out", str(out),
                                     "--sort", "tempo", "--work", str(tmp_path / "work")])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        spotify(mock)
        deezer(mock, previews)
        with pytest.raises(SystemExit) as exit_:
            cli.main()
    assert exit_.value.code == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("3 tracks: 2 analysed from their preview, 1 without")
    assert SECRET not in printed.out + printed.err + out.read_text()
    table = pd.read_csv(out)
    assert list(table["spotify_id"])[-1] == T2  # sorted by tempo: the track without one last


def test_playlist_help_is_instant_and_has_examples():
    import subprocess
    import sys

    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from tracklens import cli\n"
            "result = CliRunner().invoke(cli.app, ['playlist', '--help'])\n"
            "assert result.exit_code == 0 and 'tracklens playlist https://open.spotify.com/playlist/' in result.output\n"
            "print(sorted(m for m in ('tensorflow', 'pandas', 'librosa', 'spotipy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=config.PACKAGE_DIR, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
