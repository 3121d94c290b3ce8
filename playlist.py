"""Sort your playlist again: a Spotify playlist with its audio features measured from previews.

Spotify's audio-features endpoint answers 403 to apps created after 27 November 2024, so a
playlist's tempo, key or energy can no longer be read from Spotify. :func:`sort_playlist` joins
what tracklens already has::

    Spotify playlist metadata (acquire.spotify)
      -> 30 s previews, Deezer by ISRC (acquire.previews)
      -> the catalogue's per-track analysis (catalogue.build: feature engine, descriptor
         estimates, genre blend and fit, through the batch runner)
      -> one table, one row per playlist track (playlist_table)

Every column's name says whose measure it is: ``spotify_*`` comes from Spotify's metadata (or its
audio features, when the endpoint still answers this app), ``tracklens_*`` was measured here
from the 30 s preview. A track without a preview keeps its row, with ``status`` saying why.

Resumable and cached: the work folder holds ``tracks.csv`` (appended, never re-fetched per
track), ``previews/<spotify id>.mp3`` (a file there is never downloaded again) and
``catalogue/`` (the batch runner's per-file cache: a rerun analyses only new previews). A
failure of one step is one line in ``result.problems``; the rows finished before it are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracklens import config
from tracklens.acquire.previews import download_previews
from tracklens.acquire.spotify import AUDIO_FEATURE_COLUMNS, acquire_spotify, parse_spotify_ref
from tracklens.acquire.web import RetryPolicy
from tracklens.errors import TracklensError

#: The table's first columns, in order: who the track is and what happened to it.
IDENTITY_COLUMNS = ("position", "spotify_id", "title", "artists", "album", "isrc", "status")
#: Spotify's metadata carried into the table (renamed ``spotify_<name>``).
SPOTIFY_METADATA = ("duration_ms", "popularity", "explicit", "release_date", "artist_genres")
#: How the table can be sorted (``--sort``): a short name -> the column, ascending.
SORT_KEYS = {
    "playlist": "position", "tempo": "tracklens_tempo_bpm", "energy": "tracklens_energy_est",
    "acousticness": "tracklens_acousticness_est", "key": "tracklens_camelot_order",
    "loudness": "tracklens_loudness_lufs", "duration": "spotify_duration_ms", "popularity": "spotify_popularity",
}
ANALYSED = "analysed"
NO_PREVIEW = "no preview"


def camelot(key: Any, mode: Any) -> str:
    """The Camelot wheel code of a key: pitch class 0-11 (0 = C) and mode (1 major, 0 minor).

    The wheel numbers the major keys by fifths, C major = 8B (each fifth up adds 1); a minor key
    has its relative major's number with the letter A (A minor = 8A).

    ``camelot(9, 0)`` (A minor) -> ``"8A"``; ``camelot(0, 1)`` (C major) -> ``"8B"``; "" when unknown.
    DJs mix tracks whose codes are equal or one apart (same letter) or share the number.
    """
    try:
        pitch, major = int(key), int(mode)
    except (TypeError, ValueError):
        return ""
    if not 0 <= pitch <= 11 or major not in (0, 1):
        return ""
    relative_major = pitch if major else (pitch + 3) % 12
    number = (relative_major * 7 + 7) % 12 + 1
    return f"{number}{'B' if major else 'A'}"


def camelot_order(code: str) -> float:
    """A sort key walking the wheel: 1A, 1B, 2A, 2B, ... 12B (NaN for "")."""
    if not code:
        return float("nan")
    return int(code[:-1]) + (0.5 if code[-1] == "B" else 0.0)


def key_name(key: Any, mode: Any) -> str:
    """``"A minor"`` from a pitch class (0 = C) and mode (the catalogue's names); "" when unknown."""
    from tracklens import catalogue

    return catalogue.key_name(key, mode) if camelot(key, mode) else ""


def work_folder(playlist: str, work: str | Path | None = None) -> Path:
    """Where a playlist's metadata, previews and analysis are kept (read at call time)."""
    if work is not None:
        return Path(work)
    return config.DATA_DIR / "playlists" / parse_spotify_ref("playlist", playlist)


@dataclass
class PlaylistResult:
    """What :func:`sort_playlist` did: the table, where it went, and one line per problem."""

    table: Any  # DataFrame, one row per playlist track (see playlist_table)
    path: Path | None
    work: Path
    fetched: int = 0  # tracks new to tracks.csv this run
    downloaded: int = 0  # previews downloaded this run
    analysed_now: int = 0  # previews analysed this run (the rest came from the cache)
    problems: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        t = self.table
        analysed = int((t["status"] == ANALYSED).sum()) if len(t) else 0
        lines = [f"{len(t)} tracks: {analysed} analysed from their preview, {len(t) - analysed} without "
                 f"({self.fetched} new from Spotify, {self.downloaded} previews downloaded, "
                 f"{self.analysed_now} analysed now) -> {self.path or 'not written'}"]
        return lines + self.problems


def sort_playlist(playlist: str, out: str | Path | None = None, *, work: str | Path | None = None,
                  sort: str = "playlist", client=None, session=None, policy: RetryPolicy | None = None,
                  market: str | None = None, workers: int = 4, jobs: int = 1, model: str | None = None,
                  progress: bool = True) -> PlaylistResult:
    """Fetch a playlist's metadata and previews, analyse them, and write one table per track.

    Parameters
    ----------
    playlist : a Spotify playlist ID, URI or open.spotify.com URL
    out : the table's CSV path (None: not written); an existing file is replaced only when it is
        a table this function wrote
    work : the work folder (default ``DATA_DIR/playlists/<playlist id>``)
    sort : a :data:`SORT_KEYS` name (tracks without that value last)
    client, session, policy, market : the Spotify client, the requests session for Deezer and the
        previews, the retry policy, the Spotify market (as in :mod:`acquire.web`)
    workers : parallel preview downloads ; jobs : analysis processes ; model : the genre model
        (default the catalogue's)

    Returns
    -------
    PlaylistResult ; its table is the playlist as Spotify lists it now, in its order (tracks taken
    out since an earlier run stay in ``tracks.csv``, not in the table). A private or missing
    playlist, a 401/403/429/5xx from Spotify with nothing fetched before it raises TracklensError
    (one line). Failures after some rows were fetched, and tracks without a preview, are lines in
    ``problems``; their rows stay in the table.
    """
    if sort not in SORT_KEYS:
        raise TracklensError(f"sort={sort!r}: sort by one of {', '.join(SORT_KEYS)}")
    out = Path(out) if out is not None else None
    if out is not None:
        _check_out(out)
    folder = work_folder(playlist, work)
    folder.mkdir(parents=True, exist_ok=True)
    tracks_csv = folder / "tracks.csv"
    result = PlaylistResult(table=None, path=None, work=folder)

    playlist_now = None  # the playlist's track ids in its order, when Spotify answered every page
    try:
        fetched = acquire_spotify("playlist", playlist, tracks_csv, client=client, market=market,
                                  policy=policy, progress=progress)
        result.fetched = fetched.added
        playlist_now = fetched.ids
        if "audio-features" in fetched.unavailable:
            result.problems.append("note: Spotify's audio-features endpoint is closed to this app (403): "
                                   "every audio column is tracklens's, measured from the preview")
    except TracklensError as exc:
        if not _has_rows(tracks_csv):
            raise
        result.problems.append(f"Spotify: {exc} (the table holds the tracks fetched before)")

    from tracklens.fileio import read_csv

    tracks = read_csv(tracks_csv, dtype=str, keep_default_na=False)
    if playlist_now is not None:
        tracks, gone = in_playlist_order(tracks, playlist_now)
        if gone:
            result.problems.append(f"{gone} track{'s' if gone != 1 else ''} fetched before {'are' if gone != 1 else 'is'} "
                                   f"no longer in the playlist: left out of the table (kept in {tracks_csv.name})")
    previews = download_previews(tracks_csv, folder / "previews", workers=workers, session=session,
                                 policy=policy, progress=progress)
    result.downloaded = len(previews.downloaded)
    catalogue_tracks, catalogue_errors, result.analysed_now = analyse_previews(
        folder, tracks, jobs=jobs, model=model, progress=progress)
    table = playlist_table(tracks, catalogue_tracks, missing=previews.failed, failed=catalogue_errors)
    table = sort_table(table, sort)
    for track_id, reason in previews.failed.items():
        result.problems.append(f"{_title_of(tracks, track_id)}: {reason}")
    for track_id, reason in catalogue_errors.items():
        result.problems.append(f"{_title_of(tracks, track_id)}: analysis failed: {reason}")
    result.table = table
    if out is not None:
        from tracklens.fileio import write_csv

        out.parent.mkdir(parents=True, exist_ok=True)
        result.path = write_csv(table, out)
    return result


def in_playlist_order(tracks, ids: list[str]):
    """``(tracks, n_gone)``: the rows of ``tracks.csv`` for the playlist as Spotify lists it now
    (``ids``, its order; a track listed twice keeps its first place), and how many rows were
    left out because the playlist no longer holds them (tracks.csv is appended across runs)."""
    order = {}
    for track_id in ids:
        order.setdefault(track_id, len(order))
    rank = tracks["id"].map(order)
    kept = tracks[rank.notna()].assign(_rank=rank[rank.notna()])
    kept = kept.sort_values("_rank", kind="stable").drop(columns="_rank").drop_duplicates("id")
    return kept.reset_index(drop=True), int(rank.isna().sum())


def _has_rows(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle) > 1


def _check_out(out: Path) -> None:
    """Refuse to replace a file that is not a table this module wrote (never overwrite the user's)."""
    if out.is_dir():
        raise TracklensError(f"--out {out}: a folder; give the table's file name, e.g. {out / 'playlist.csv'}")
    if out.exists():
        with open(out, encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        if not header.startswith(",".join(IDENTITY_COLUMNS[:2])):
            raise TracklensError(f"--out {out}: exists and is not a tracklens playlist table; "
                                 "choose a new file name (nothing was overwritten)")


def _title_of(tracks, track_id: str) -> str:
    row = tracks[tracks["id"] == track_id]
    if row.empty:
        return track_id
    return f"{row['artists'].iloc[0]} - {row['name'].iloc[0]} ({track_id})"


def analyse_previews(folder: str | Path, tracks, *, jobs: int = 1, model: str | None = None, progress: bool = True):
    """The catalogue's analysis (:func:`catalogue.build`) of the previews in ``folder/previews``,
    built into ``folder/catalogue`` (its per-file cache: a rerun analyses only new previews).

    Returns ``(tracks table, {spotify id: why its analysis failed}, number analysed now)``.
    """
    import pandas as pd

    from tracklens import catalogue

    folder = Path(folder)
    preview_dir = folder / "previews"
    files = [preview_dir / f"{i}.mp3" for i in tracks["id"] if (preview_dir / f"{i}.mp3").is_file()]
    if not files:
        return pd.DataFrame(columns=["track_id"]), {}, 0
    names = tracks.set_index("id")
    source = pd.DataFrame({"path": [str(f) for f in files], "label": "",
                           "artist": [names.at[f.stem, "artists"] for f in files],
                           "title": [names.at[f.stem, "name"] for f in files],
                           "isrc": [names.at[f.stem, "isrc"] for f in files]})
    cat = catalogue.build(source, folder / "catalogue", model=model, jobs=jobs, progress=progress)
    errors = {Path(str(p)).stem: str(r) for p, r in zip(cat.errors.get("path", []), cat.errors.get("reason", []))}
    analysed_now = int(cat.card.get("counts", {}).get("analysed_now", 0))
    return cat.tracks, errors, analysed_now


def _held_out_errors() -> dict[str, float]:
    """Each shipped descriptor estimate's held-out mean absolute error (models/descriptors card)."""
    from tracklens.models import descriptors

    return dict(descriptors.load_estimator().held_out_mae)


def playlist_table(tracks, analysed, *, missing: dict | None = None, failed: dict | None = None):
    """One row per playlist track: Spotify's metadata beside what tracklens measured.

    Parameters
    ----------
    tracks : the playlist's ``tracks.csv`` (:data:`acquire.spotify.TRACK_COLUMNS`), playlist order
    analysed : the catalogue's ``tracks`` table (``track_id`` = the Spotify id = the preview's stem)
    missing : Spotify id -> why it has no preview ; failed : Spotify id -> why its analysis failed

    Returns
    -------
    DataFrame with :data:`IDENTITY_COLUMNS`, then ``spotify_*`` (Spotify's metadata, and the audio
    features it still served, if any) and ``tracklens_*``: tempo (BPM, the engine's ``bpm``; and its
    ×2/×½ alternative when the engine gives ``tempo_alt``), key (musical and Camelot), loudness (integrated LUFS of
    the 30 s preview), the descriptor estimates with their held-out error, the genre blend (top
    genres as text and one column per genre) and its fit verdict.
    """
    import numpy as np
    import pandas as pd

    missing, failed = dict(missing or {}), dict(failed or {})
    tracks = tracks.reset_index(drop=True)
    out = pd.DataFrame({
        "position": np.arange(1, len(tracks) + 1),
        "spotify_id": tracks["id"], "title": tracks["name"], "artists": tracks["artists"],
        "album": tracks.get("album", ""), "isrc": tracks.get("isrc", ""),
    })
    for column in SPOTIFY_METADATA:
        if column in tracks.columns:
            out[f"spotify_{column}"] = tracks[column]
    out["spotify_duration_ms"] = pd.to_numeric(out.get("spotify_duration_ms"), errors="coerce")
    out["spotify_popularity"] = pd.to_numeric(out.get("spotify_popularity"), errors="coerce")
    out.insert(out.columns.get_loc("spotify_duration_ms") + 1, "spotify_duration",
               out["spotify_duration_ms"].map(_m_ss))
    for column in AUDIO_FEATURE_COLUMNS:  # filled only where Spotify still served them
        values = pd.to_numeric(tracks.get(column, pd.Series(dtype=str)), errors="coerce")
        if values.notna().any():
            out[f"spotify_{column}"] = values.to_numpy()

    by_id = analysed.set_index("track_id") if len(analysed) else pd.DataFrame()
    measured = pd.DataFrame(index=out["spotify_id"])
    if len(by_id):
        a = by_id.reindex(out["spotify_id"])
        # The engine's tempo is ``bpm`` (``tempo`` is the GTZAN-table feature the genre models
        # read; ``tempo_alt`` is bpm's alternative); a catalogue from before the card columns has ``tempo`` only
        tempo = a["bpm"] if "bpm" in a.columns else a["tempo"]
        measured["tracklens_tempo_bpm"] = pd.to_numeric(tempo, errors="coerce").round(1).to_numpy()
        if "tempo_alt" in a.columns:
            measured["tracklens_tempo_alt_bpm"] = pd.to_numeric(a["tempo_alt"], errors="coerce").round(1).to_numpy()
        keys, modes = a["key"].to_numpy(), a["mode"].to_numpy()
        measured["tracklens_key"] = [key_name(k, m) if pd.notna(k) else "" for k, m in zip(keys, modes)]
        measured["tracklens_camelot"] = [camelot(k, m) if pd.notna(k) else "" for k, m in zip(keys, modes)]
        measured["tracklens_loudness_lufs"] = pd.to_numeric(a["loudness"], errors="coerce").round(1).to_numpy()
        errors = _held_out_errors()
        for name in ("energy", "acousticness"):
            column = f"{name}_est"
            if column in a.columns:
                values = pd.to_numeric(a[column], errors="coerce")
                measured[f"tracklens_{name}_est"] = values.round(3).to_numpy()
                measured[f"tracklens_{name}_err"] = np.where(values.notna(), round(errors.get(name, np.nan), 3), np.nan)
        blend_columns = [c for c in a.columns if c.startswith("blend_") and c != "blend_label"]
        measured["tracklens_genre_blend"] = [_blend_text(row) for row in a[blend_columns].to_dict("records")]
        measured["tracklens_top_genre"] = a["top_genre"].fillna("").to_numpy()
        measured["tracklens_genre_fit"] = a["fit"].fillna("").to_numpy()
        measured["tracklens_genre_fit_reason"] = a["fit_reason"].fillna("").to_numpy()
        for c in blend_columns:
            measured[f"tracklens_{c}"] = pd.to_numeric(a[c], errors="coerce").round(3).to_numpy()
    out = pd.concat([out.reset_index(drop=True), measured.reset_index(drop=True)], axis=1)
    if "tracklens_camelot" in out.columns:
        out["tracklens_camelot_order"] = out["tracklens_camelot"].map(camelot_order)
    analysed_ids = set(by_id.index) if len(by_id) else set()
    out.insert(IDENTITY_COLUMNS.index("status"), "status", [
        ANALYSED if i in analysed_ids else
        f"{NO_PREVIEW}: {missing[i]}" if i in missing else
        f"analysis failed: {failed[i]}" if i in failed else NO_PREVIEW
        for i in out["spotify_id"]])
    return out


def _m_ss(ms) -> str:
    import math

    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return ""
    total = int(round(float(ms) / 1000))
    return f"{total // 60}:{total % 60:02d}"


def _blend_text(probabilities: dict, top: int = 3) -> str:
    """ "rock 45%, blues 20%, country 12%": the ``top`` genres of a blend row."""
    import math

    items = [(k.removeprefix("blend_"), float(v)) for k, v in probabilities.items()
             if v is not None and not (isinstance(v, float) and math.isnan(v))]
    items.sort(key=lambda kv: -kv[1])
    return ", ".join(f"{g} {p:.0%}" for g, p in items[:top])


def sort_table(table, by: str = "playlist"):
    """``table`` sorted by a :data:`SORT_KEYS` name; tracks without the value keep playlist order, last."""
    if by not in SORT_KEYS:
        raise TracklensError(f"sort by one of {', '.join(SORT_KEYS)}; got {by!r}")
    column = SORT_KEYS[by]
    if column not in table.columns:
        return table
    return table.sort_values([column, "position"], na_position="last", kind="stable").reset_index(drop=True)
