"""The `tracklens` command line: thin commands that call the library modules.

Heavy imports (TensorFlow, librosa, pandas) live inside command bodies so `--help` is instant.
Every TracklensError becomes one line on stderr and exit status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from tracklens import config
from tracklens.errors import TracklensError, one_line, path_text
from tracklens.models import registry  # no numpy: the --models help is built from it

app = typer.Typer(
    name="tracklens",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help=(
        "Explore music catalogues and find the genre blend of any track.\n\n"
        "Typical flow: demo-data (or acquire) -> prepare -> split -> features -> train -> "
        "evaluate -> predict / dashboard. Run `tracklens COMMAND --help` for each."
    ),
)
acquire_app = typer.Typer(
    no_args_is_help=True,
    help="Collect raw data: Spotify metadata, audio previews, chart CSVs, folders of audio.",
)
app.add_typer(acquire_app, name="acquire")

SeedOption = typer.Option(config.DEFAULT_SEED, "--seed", help="Random seed (results are reproducible for a seed).")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        from tracklens import features

        try:
            number = version("tracklens")
        except PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
            number = "not installed"
        typer.echo(f"tracklens {number} (feature engine version {features.FEATURE_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full Python tracebacks on errors."),
    show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                      help="Print the version and the feature engine's version, then exit."),
    data_dir: Optional[Path] = typer.Option(
        None, "--data-dir", envvar="TRACKLENS_HOME", show_envvar=True,
        help="Folder for data/, reports/ and the cache (default: the repository checkout when run "
             "inside it, else your user data folder, e.g. ~/.local/share/tracklens)."),
) -> None:
    """tracklens: music catalogue exploration and genre blends."""
    if data_dir is not None:
        if data_dir.exists() and not data_dir.is_dir():
            raise TracklensError(f"--data-dir / TRACKLENS_HOME {data_dir}: a file, not a folder")
        config.set_home(data_dir)


# --- commands -------------------------------------------------------------------------------
# Each command: parse options, call one library function, print a short summary.


@app.command("demo-data")
def demo_data_cmd(
    out: Path = typer.Option(..., "--out", help="Folder to write the catalogue into (created)."),
    seed: int = SeedOption,
    genres: int = typer.Option(8, "--genres", min=2, max=8, help="How many synthetic genres (2-8)."),
    clips: int = typer.Option(20, "--clips", min=1, help="Clips per genre."),
    seconds: float = typer.Option(10.0, "--seconds", min=1.0, max=60.0, help="Length of each clip in seconds."),
    chart_rows: int = typer.Option(1000, "--chart-rows", min=50, help="Rows of the synthetic chart table."),
) -> None:
    """Generate the synthetic demo catalogue: labelled audio clips and a chart table.

    Writes OUT/audio/<genre>/<genre>.NNNNN.wav (22 050 Hz mono WAV; the audio is synthesised,
    not real music) and OUT/charts.csv (the Top Hits column schema). Same seed, same files.

    Examples:

      tracklens demo-data --out data/demo

      tracklens demo-data --out /tmp/tiny --genres 4 --clips 5 --seconds 6 --seed 7
    """
    from tracklens import demo_data

    cat = demo_data.make_demo_catalogue(
        out, seed=seed, genres=genres, clips_per_genre=clips, clip_seconds=seconds,
        chart_rows=chart_rows, progress=True,
    )
    typer.echo(cat.summary())


@app.command("prepare")
def prepare_cmd(
    csv: Path = typer.Argument(..., help="A chart CSV in the Top Hits schema (e.g. data/demo/charts.csv)."),
    out: Path = typer.Option(..., "--out", help="Where to write the cleaned CSV."),
    drop_bad_values: bool = typer.Option(
        False, "--drop-bad-values", help="Drop rows with mistyped values instead of stopping."),
) -> None:
    """Clean a chart table: check the schema, fix dtypes, handle nulls, drop duplicates.

    Prints what was dropped or filled and why. Stops with one line naming the column and
    the file if a column is missing or holds values of the wrong type.

    Examples:

      tracklens prepare data/demo/charts.csv --out data/demo/charts_clean.csv

      tracklens prepare ../shared/data/spotify/songs_normalize.csv --out data/processed/charts.csv
    """
    from tracklens import prepare

    report = prepare.prepare_file(csv, out, bad_values="drop" if drop_bad_values else "raise")
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"wrote {out}")


@app.command("split")
def split_cmd(
    csv: Path = typer.Argument(..., help="A chart CSV, ideally the output of `tracklens prepare`."),
    out: Path = typer.Option(..., "--out", help="Folder for train.csv, validate.csv and test.csv."),
    seed: int = SeedOption,
    fractions: str = typer.Option("0.7,0.15,0.15", "--fractions", help="Train,validate,test shares."),
) -> None:
    """Add engineered features and split a chart table by popularity band (stratified).

    Adds duration_min, decade, has_feat, genre_* flags and popularity_band, then writes
    OUT/train.csv, OUT/validate.csv and OUT/test.csv, each band with the same share in every
    split. Prints the counts and the band shares. The input is cleaned as `prepare` would.

    Examples:

      tracklens split data/demo/charts_clean.csv --out data/demo/splits

      tracklens split data/processed/charts.csv --out data/processed/splits --seed 7 --fractions 0.8,0.1,0.1
    """
    from tracklens import preprocessing

    try:
        shares = tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise TracklensError(f"--fractions {fractions!r} must be three numbers like 0.7,0.15,0.15") from None
    result = preprocessing.split_file(csv, out, seed=seed, fractions=shares)
    if result.cleaned_rows:
        typer.echo(f"note: {result.cleaned_rows} rows of {csv} were dropped by cleaning; run `tracklens prepare` to see why")
    for line in result.lines():
        typer.echo(line)


@app.command("figures")
def figures_cmd(
    charts: Optional[Path] = typer.Option(None, "--charts", help="A chart CSV (raw or prepared; cleaned by the `prepare` rules first)."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="A folder of <genre>/<clip> audio files (GTZAN layout)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNG figures.", show_default="reports/figures"),
    seed: int = SeedOption,
) -> None:
    """Write the main exploration figures as PNGs and print the statistics behind them.

    From a chart table: correlation heatmaps (Pearson, Spearman) with p-values and bootstrap
    intervals, each feature against popularity, distributions by genre and popularity band,
    yearly trends, a hit profile and the cross-validated popularity model. From an audio folder:
    a per-genre gallery, every librosa view of the first clip, HPSS, chromagram + spectrogram.
    Prints the strongest and weakest correlations with popularity (with intervals) and the
    model's CV scores against its baseline.

    Examples:

      tracklens figures --charts data/demo/charts.csv --audio data/demo/audio --out reports/figures

      tracklens figures --charts ../shared/data/spotify/songs_normalize.csv --out reports/figures
    """
    from tracklens import reports

    out = out or config.FIGURES_DIR
    paths, summary = reports.write_main_figures(out, charts=charts, audio_dir=audio, seed=seed)
    if summary:
        typer.echo(summary)
    typer.echo(f"wrote {len(paths)} figures to {out}")


class PlaylistSort(str, Enum):
    playlist = "playlist"
    tempo = "tempo"
    energy = "energy"
    acousticness = "acousticness"
    key = "key"
    loudness = "loudness"
    duration = "duration"
    popularity = "popularity"


@app.command("playlist")
def playlist_cmd(
    playlist: str = typer.Argument(..., metavar="PLAYLIST", help="Spotify playlist URL, URI or ID."),
    out: Path = typer.Option(..., "--out", "-o", help="The table (CSV), one row per track; replaced on a rerun."),
    sort: PlaylistSort = typer.Option(PlaylistSort.playlist, "--sort", help="Row order: playlist order, or by a measure (key: around the Camelot wheel)."),
    work: Optional[Path] = typer.Option(None, "--work", show_default="data/playlists/<playlist id>", help="Folder for the metadata, previews and analysis cache."),
    market: Optional[str] = typer.Option(None, "--market", help="ISO country code for availability."),
    workers: int = typer.Option(4, "--workers", min=1, max=16, help="Parallel preview downloads."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Processes analysing previews."),
) -> None:
    """Sort your playlist again: tempo, key, energy ... measured from each track's 30 s preview.

    Spotify's metadata -> previews from Deezer by ISRC -> tracklens's analysis -> one table per
    track: tempo (BPM), key (musical and Camelot), loudness (LUFS of the preview), duration,
    estimated energy / acousticness with their held-out error, the genre blend and its fit. Each
    column says whose measure it is (spotify_* or tracklens_*). A rerun fetches and analyses only
    what is new; a track without a preview keeps a row that says so. Needs SPOTIPY_CLIENT_ID and
    SPOTIPY_CLIENT_SECRET (environment or .env).

    \b
    Examples:
      tracklens playlist https://open.spotify.com/playlist/<playlist id> --out playlist.csv
      tracklens playlist spotify:playlist:<playlist id> --out playlist.csv --sort tempo
    """
    from tracklens import playlist as playlist_mod

    result = playlist_mod.sort_playlist(playlist, out, work=work, sort=sort.value, market=market,
                                        workers=workers, jobs=jobs)
    for line in result.summary_lines():
        typer.echo(line)


@app.command()
def dashboard(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 0.0.0.0 exposes it to your network."),
    port: int = typer.Option(8050, "--port", min=1, max=65535, help="TCP port."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder with a chart table (charts.csv or Top Hits songs_normalize.csv); default: ../shared/data, else the demo catalogue."),
    debug: bool = typer.Option(False, "--debug", help="Dash's debug server with reloading and tracebacks (never on a shared network)."),
) -> None:
    """Serve the dashboard: charts & popularity, model comparison, check your track.

    \b
    Examples:
      tracklens dashboard                      # http://127.0.0.1:8050/
      tracklens dashboard --data data/demo --port 8060
    """
    from tracklens.dashboard.app import serve

    serve(host=host, port=port, data_dir=data, debug=debug)


# --- acquire --------------------------------------------------------------------------------


class SpotifySource(str, Enum):
    playlist = "playlist"
    album = "album"
    artist = "artist"
    search = "search"


@acquire_app.command("spotify")
def acquire_spotify_cmd(
    source: SpotifySource = typer.Argument(..., metavar="SOURCE", help="playlist, album, artist (its top tracks) or search."),
    ref: str = typer.Argument(..., metavar="ID_OR_QUERY", help="Spotify ID, URI or open.spotify.com URL; the query text for search."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default="data/raw/spotify_tracks.csv", help="Tracks CSV; an existing one is resumed (no duplicate ids)."),
    market: Optional[str] = typer.Option(None, "--market", help="ISO country code for availability (top tracks default to US)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most this many tracks from the source (search: default 50)."),
) -> None:
    """Fetch track metadata from the Spotify Web API into a CSV (one row per track).

    Needs SPOTIPY_CLIENT_ID and SPOTIPY_CLIENT_SECRET in the environment or .env (see
    docs/data.md, "Spotify credentials"). Columns: id, name, artists, artist_ids, album, release_date, popularity,
    explicit, duration_ms, isrc, preview_url, artist_genres, source and Spotify's audio
    features (empty: that endpoint is closed to new apps). Re-running appends only new tracks;
    rate limits (429) and server errors are retried with back-off.

    \b
    Examples:
      tracklens acquire spotify playlist https://open.spotify.com/playlist/<playlist id>
      tracklens acquire spotify album spotify:album:1ATL5GLyefJaxhQzSPVrLX --out data/raw/album.csv
      tracklens acquire spotify artist https://open.spotify.com/artist/6vWDO969PvNqNYHIOW5v0m
      tracklens acquire spotify search "genre:jazz year:1959" --limit 30
    """
    from tracklens.acquire import spotify

    result = spotify.acquire_spotify(source.value, ref, out, market=market, limit=limit)  # None: the default CSV
    typer.echo(f"{result.added} new tracks, {result.already_present} already in the file, "
               f"{result.skipped} skipped (local/removed/episodes) -> {result.path} ({result.total_rows} rows)")
    for endpoint in result.unavailable:
        typer.echo(f"note: Spotify's {endpoint} endpoint is closed to this app (403); its columns stay empty")


@acquire_app.command("previews")
def acquire_previews_cmd(
    tracks: Path = typer.Argument(..., help="Tracks CSV with id and isrc and/or preview_url (from `acquire spotify`), or a chart table with artist and song/title columns (searched on Deezer)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", show_default="data/raw/previews", help="Folder for <track id>.mp3 files."),
    workers: int = typer.Option(4, "--workers", min=1, max=16, help="Parallel downloads."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N tracks."),
) -> None:
    """Download 30 s MP3 previews: Spotify's preview_url, else Deezer's preview by ISRC, else
    (a chart table, which has no ISRC) Deezer's search by artist + title, taking only a result
    whose normalised artist and title match (never a cover under another name).

    Downloads are atomic and resumable: files already there are skipped, a cut download never
    leaves a file behind. Chart rows get ids from artist + title, and OUT/previews.csv names
    each file's song, so `tracklens catalogue build OUT --meta TABLE` can join the table.
    Prints what failed and why; exit status 0 even when some tracks have no preview.

    \b
    Examples:
      tracklens acquire previews data/raw/spotify_tracks.csv
      tracklens acquire previews data/raw/album.csv --out data/raw/album_previews --workers 2
      tracklens acquire previews ../shared/data/spotify/songs_normalize.csv --out data/raw/tophits
    """
    from tracklens.acquire import previews

    report = previews.download_previews(tracks, out, workers=workers, limit=limit)  # None: the default folder
    for line in report.summary_lines():
        typer.echo(line)


@acquire_app.command("charts")
def acquire_charts_cmd(
    path: Path = typer.Argument(..., help="A Top-Hits-style chart CSV (artist, song, ..., genre)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder or .csv path for the copy (default: data/raw/)."),
) -> None:
    """Validate a chart CSV (the Kaggle "Top Hits Spotify 2000-2019" schema) and copy it into data/raw.

    A missing, empty or mis-shaped file is refused with the file and column named.

    \b
    Examples:
      tracklens acquire charts ../shared/data/spotify/songs_normalize.csv
      tracklens acquire charts my_charts.csv --out data/raw/charts.csv
    """
    from tracklens import prepare
    from tracklens.acquire import charts

    result = charts.acquire_charts(path, out, validate=prepare.load_charts)  # full schema, types too
    verb = "copied to" if result.copied else "already at"
    typer.echo(f"{path}: {result.rows} rows, valid; {verb} {result.path}")


@acquire_app.command("folder")
def acquire_folder_cmd(
    path: Path = typer.Argument(..., help="Folder of audio: <label>/<file> or GTZAN-style <label>.00042.wav."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest CSV to write (replaces only an earlier manifest)."),
    decode: bool = typer.Option(False, "--decode", help="Decode every file fully to catch damage past the header (slower)."),
) -> None:
    """Write a manifest of a folder of audio: path, label, duration_s, sample_rate, channels, checksum, error.

    Labels come from sub-folder names or GTZAN-style file names. Unreadable files (corrupt,
    empty, not audio) are listed with the reason in `error`, never fatal.

    \b
    Examples:
      tracklens acquire folder data/demo/audio --out data/demo/manifest.csv
      tracklens acquire folder ../shared/data/gtzan/audio --out data/raw/gtzan_manifest.csv --decode
    """
    from tracklens.acquire import folder

    frame = folder.write_manifest(path, out, decode=decode)
    bad = frame[frame["error"] != ""]
    labels = frame.loc[frame["label"] != "", "label"].nunique()
    typer.echo(f"{len(frame)} files, {labels} labels, {len(bad)} unreadable -> {out}")
    for row in bad.head(10).itertuples():
        typer.echo(one_line(f"  {row.path}: {row.error}"))
    if len(bad) > 10:
        typer.echo(f"  ... and {len(bad) - 10} more (see the error column)")


# --- audio features (features.py) -----------------------------------------------------------


@app.command("features")
def features_cmd(
    source: Path = typer.Argument(..., readable=False, help="A manifest CSV (from `acquire folder`), a folder of audio, or one audio file."),
    out: str = typer.Option(..., "--out", "-o", help="Feature table to write (.parquet; with --scheduler a folder of parquet parts, may be an fsspec URL such as s3://bucket/f.parquet). It and its side files replace only files an earlier run wrote."),
    segment: float = typer.Option(config.SEGMENT_SECONDS, "--segment", help="Segment length in seconds (0: whole tracks only, no frame matrices)."),
    overlap: float = typer.Option(0.0, "--overlap", help="Segment overlap as a fraction in [0, 1), e.g. 0.5."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Local worker processes (-1: all cores)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786): run the files on that cluster instead of local processes; the workers write the outputs."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=f"Per-file result cache (default {config.CACHE_DIR})."),
    max_duration: float = typer.Option(config.FEATURE_MAX_DURATION_S, "--max-duration", help="Seconds analysed per file; longer files are cut and marked truncated."),
    embeddings: Optional[str] = typer.Option(None, "--embeddings", help="Also write pretrained embeddings, a comma list: 'musicnn' -> OUT-stem.MSD_musicnn.parquet (200-d per 3 s patch and track mean, 50 MSD tags), 'efficientat' -> OUT-stem.mn04_as.parquet (384-d + 527 AudioSet logits per 10 s window and track mean); cached like the features."),
) -> None:
    """Compute audio features: one row per track (segment -1) and per segment, 57 GTZAN
    columns + Spotify-comparable tempo/loudness/key/mode/duration_ms, and on track rows
    acousticness_est/energy_est (estimated from audio, held-out MAE 0.12/0.10: docs/audio-features.md).

    Writes OUT (parquet), OUT-stem.frames.npz (log-mel 128xT, MFCC 20xT, sequence 40xT per
    segment), OUT-stem.errors.csv (unreadable files and why; never fatal) and, last,
    OUT-stem.manifest.json (the run's id and each file's SHA-256: a run killed half-way never
    leaves a table that reads with another run's frames). Results are
    cached per file (checksum + parameters): a rerun, or a run after Ctrl-C or a crashed
    worker process, computes only what is new or changed. With --scheduler the workers write
    OUT as a folder of parquet parts (pandas.read_parquet reads it like a file) with the frames
    per part in OUT/_frames/, and a rerun redoes only the parts that are missing.

    \b
    Examples:
      tracklens features data/demo/manifest.csv --out data/demo/features.parquet
      tracklens features ../shared/data/gtzan/audio --out data/processed/gtzan.parquet --jobs -1
      tracklens features songs/ --out songs.parquet --segment 3 --overlap 0.5
      tracklens features manifest.csv --out s3://bucket/f.parquet --scheduler tcp://10.0.0.5:8786
      tracklens features songs/ --out songs.parquet --embeddings musicnn,efficientat
    """
    from tracklens import batch, features

    names = [name.strip() for name in (embeddings or "").split(",") if name.strip()]
    tasks = []
    if names:
        from tracklens.models import efficientat, musicnn

        # name -> its batch.Task: a per-file embedding function plugs in with one entry here
        embedders = {"musicnn": musicnn.embedding_task, "efficientat": efficientat.embedding_task}
        unknown = [name for name in names if name not in embedders]
        if unknown:
            raise TracklensError(f"--embeddings {embeddings!r}: no pretrained model {unknown[0]!r}; "
                                 f"choose from {', '.join(embedders)}")
        tasks = [embedders[name](max_duration=max_duration) for name in dict.fromkeys(names)]

    from tracklens.models import descriptors

    try:
        result = features.extract_features(source, out=out, segment_seconds=segment or None, overlap=overlap,
                                           jobs=jobs, scheduler=scheduler, cache_dir=cache_dir,
                                           max_duration=max_duration, extras=descriptors.feature_extras())
    except OSError as exc:  # cannot write: say where and why; the files done so far stay cached
        from tracklens.fileio import os_error_line

        cache = Path(cache_dir or config.CACHE_DIR).absolute()
        failed = Path(os.path.abspath(exc.filename)) if exc.filename else None
        if failed is not None and (failed == cache or cache in failed.parents or failed in cache.parents):
            remedy = "choose a writable --cache-dir (or --data-dir / TRACKLENS_HOME)"
        else:
            remedy = f"files finished so far are kept in the cache ({cache}); rerun once it can be written"
        raise TracklensError(f"cannot write: {os_error_line(exc)}; {remedy}") from exc
    typer.echo(f"{result.n_tracks} tracks, {result.n_segments} segments ({result.n_computed} computed, "
               f"{result.n_cached} from cache) -> {result.out}")
    if result.frames:
        typer.echo(f"frame matrices -> {result.frames}")
    if result.n_errors:
        typer.echo(f"{result.n_errors} file{'s' if result.n_errors != 1 else ''} skipped, reasons in {result.errors}")
        _echo_first_errors(result.errors, result.n_errors)
    for task, name in zip(tasks, dict.fromkeys(names)):
        # one process locally: each model is loaded once and TensorFlow uses the cores itself
        done = batch.run(task, source, out=batch.sibling(out, f".{task.name}.parquet"), scheduler=scheduler,
                         cache_dir=cache_dir)
        typer.echo(f"{name} ({task.name}) embeddings of {done.n_tracks} tracks -> {done.out}"
                   + (f" ({done.n_errors} files skipped)" if done.n_errors else ""))


def _echo_first_errors(errors_csv, n_errors: int, shown: int = 5) -> None:
    """The first few ``path: reason`` lines of a run's errors file (a local one), as `catalogue
    build` prints them: one line per bad input, without opening the file."""
    from tracklens import fileio

    if not Path(str(errors_csv)).is_file():  # a Dask run's URL: the count and the file's name say enough
        return
    for row in fileio.read_csv(errors_csv, dtype=str, keep_default_na=False).head(shown).itertuples():
        typer.echo(one_line(f"  {row.path}: {row.reason}"))
    if n_errors > shown:
        typer.echo(f"  ... and {n_errors - shown} more in {errors_csv}")


# --- genre models (models/) -----------------------------------------------------------------

_MODEL_NAMES_HELP = registry.names_help()


def _model_list(text: str) -> list[str]:
    return registry.parse_names(text)


@app.command()
def train(
    features: Path = typer.Option(..., "--features", help="features.parquet from `tracklens features` (frames beside it) or a GTZAN-schema CSV (filename, 57 features, label)."),
    models: str = typer.Option("linear,mlp", "--models", help=_MODEL_NAMES_HELP),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Maximum epochs for Keras models (early stopping on the validation fold; default 150 summary / 40 frame models)."),
    seed: int = SeedOption,
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for <model>/ directories (model.keras + card.json).", show_default="data/models"),
    splits: Optional[Path] = typer.Option(None, "--splits", help="Folder with train*.txt / valid*.txt (genre/clip.ext per line), e.g. the fault-filtered GTZAN split; default: a seeded split stratified by genre, grouped by track."),
    valid_fraction: float = typer.Option(0.25, "--valid-fraction", min=0.05, max=0.5, help="Share of tracks in the validation fold when --splits is not given."),
    augment: bool = typer.Option(False, "--augment", help="SpecAugment masks + mixup for the frame models."),
    final: bool = typer.Option(False, "--final", help="After validation (for shipping): CV grouped by track over train + valid at the best epoch count (its out-of-fold predictions set the temperature), then a refit on train + valid for that count; the card keeps the validation and CV scores."),
    name: Optional[str] = typer.Option(None, "--name", help="Directory/card name for a single model (e.g. default)."),
) -> None:
    """Train genre models; each lands in OUT/<model>/ with a model card, curves and validation predictions.

    Prints a line per epoch and the validation scores (track level, temperature-calibrated).

    \b
    Examples:
      tracklens train --features data/demo/features/features.parquet --models all --epochs 10
      tracklens train --features ../shared/data/gtzan/features/features_30_sec.csv \\
          --splits ../shared/data/gtzan/splits --models summary --out data/models/gtzan
    """
    from tracklens.models import train as train_module

    out = out or config.TRAINED_MODELS_DIR
    results = train_module.train_models(features, _model_list(models), out_dir=out, epochs=epochs, seed=seed,
                                        split_dir=splits, valid_fraction=valid_fraction, augment=augment,
                                        final=final, name=name, log=lambda line: typer.echo(line))
    typer.echo(f"{len(results)} model(s) in {out}; next: tracklens evaluate --models-dir {out}")


@app.command()
def evaluate(
    models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="Folder of trained model directories.", show_default="data/models"),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (comparison.csv, figures/, report.html).", show_default="reports/models"),
    features_csv: Optional[Path] = typer.Option(None, "--features-csv", help="Instead: score one summary-feature model (--model) on a GTZAN-schema feature table with a label column."),
    model: Optional[str] = typer.Option(None, "--model", help="With --features-csv: model name or folder (default: the shipped 57-feature model, models/default-table)."),
) -> None:
    """Compare trained models: accuracy, balanced accuracy, macro and per-genre ROC-AUC, log-loss, ECE, times.

    ECE is top-label, over equal-width confidence bins (how many is printed under the table): the
    same number the cards, the reliability diagrams and the dashboard show.

    \b
    Examples:
      tracklens evaluate --models-dir data/demo/models --out reports/demo
      tracklens evaluate --features-csv ../shared/data/gtzan/features/features_30_sec.csv
    """
    if features_csv is not None:
        from tracklens.models import blend, datasets, evaluate as ev

        genre_model = blend.load_model(model, table=True)
        table, proba = blend.predict_table(genre_model, features_csv)
        if table["label"].isna().any():
            raise TracklensError(f"{features_csv}: scoring needs a label column on every row")
        scores = ev.classification_metrics(datasets.encode(table["label"].astype(str), genre_model.genres), proba,
                                           class_names=genre_model.genres)
        typer.echo(f"{genre_model.name} on {features_csv} ({scores['n']} rows):")
        for key in ("accuracy", "balanced_accuracy", "macro_roc_auc", "log_loss", "ece"):
            typer.echo(f"  {key:18s} {scores[key]:.3f}")
        typer.echo(f"({ev.ECE_NOTE})")
        return
    from tracklens import reports
    from tracklens.models import evaluate as ev

    report, table = reports.evaluate_models(models_dir or config.TRAINED_MODELS_DIR,
                                            out_dir=out or config.REPORTS_DIR / "models")
    with __import__("pandas").option_context("display.width", 160, "display.max_columns", 12):
        typer.echo(table[["model", "accuracy", "balanced_accuracy", "macro_roc_auc", "log_loss", "ece",
                          "train_s", "infer_ms_per_track"]].round(3).to_string(index=False))
    typer.echo(f"({ev.ECE_NOTE})\nreport: {report}")


def _print_as_they_finish(names, results, genres, *, fmt: str, top: int, tags: bool = False) -> list:
    """Print each file's row as soon as it is done, so a batch stopped at file 58 has printed 57
    rows; errors go to stderr as they happen (the table shows them in its rows). Returns the results."""
    from tracklens.models import blend, output

    done = []

    def recorded():
        for result in results:
            done.append(result)
            if fmt != "table" and not isinstance(result, blend.Blend):
                print(f"tracklens: {one_line(str(result))}", file=sys.stderr, flush=True)
            yield result

    for piece in output.format_pieces(names, recorded(), genres, fmt=fmt, top=top, tags=tags):
        typer.echo(piece, nl=False)  # click flushes every echo
    return done


def _sort_files(results, dest: Path, *, move: bool) -> bool:
    """--sort-into: sort the classified files and say what happened; True when all could be sorted."""
    from tracklens.models import output

    outcomes = output.sort_into(results, dest, move=move)
    for outcome in outcomes:
        if outcome.note:
            print(f"tracklens: {one_line(outcome.note)}", file=sys.stderr)
    print(one_line(output.sort_summary(outcomes, dest)), file=sys.stderr)
    return all(o.action != "failed" for o in outcomes)


def _show_progress(fmt: str) -> bool:
    """A progress bar on stderr when a person watches it: stderr a terminal, and stdout not the same
    terminal in json (whose "[" has no line of its own for the bar to stay off)."""
    return sys.stderr.isatty() and not (fmt == "json" and sys.stdout.isatty())


def _predict_progress(n_files: int | None, model: str | None, *, fmt: str):
    """The ``predict`` bar (files done of ``n_files``), drawn now, before the model loads, saying so."""
    from tqdm import tqdm

    bar = tqdm(total=n_files, desc=f"loading model {model or 'default'}", unit="file", file=sys.stderr,
               leave=False, disable=not _show_progress(fmt), dynamic_ncols=True,
               mininterval=0, miniters=1)  # a file takes seconds: draw every one
    bar.refresh()
    return bar


def _counted(results, bar):
    """``results`` as they come, the bar counting each and erased while its row prints (rows and
    bar share the terminal), redrawn after it."""
    for result in results:
        bar.clear()
        bar.n += 1  # counted now: after the last row the caller may not come back (zip stops first)
        yield result
        bar.refresh()


# Audio arguments take readable=False: click's own check refused a whole batch for one unreadable
# file (and printed usage lines); the library gives that file its own one-line error instead.


@app.command()
def predict(
    paths: Optional[list[Path]] = typer.Argument(None, readable=False, help="Audio files (wav, mp3, flac, ogg, opus, m4a, ...) or folders of them (walked, sub-folders too)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name (in data/models, or a shipped one: default, default-fast, fusion, musicnn, default-table) or folder; default: the shipped models/default (one linear layer on EfficientAT's embedding, chosen on whole clips: docs/genre-models.md; 'fusion' adds musicnn at ~3x the cost, 'musicnn' is the first default), or models/default-table with --features-csv."),
    fmt: str = typer.Option("table", "--format", help="table, csv (path,top_genre,<one column per genre>,fit) or json (with the per-window timeline, fit reason and chart-genre tags)."),
    top: int = typer.Option(3, "--top", min=1, help="Genres shown per file in the table format."),
    sort_into: Optional[Path] = typer.Option(None, "--sort-into", help="Copy each file into DIR/<top genre>/, or DIR/_does-not-fit/ when the ten genres do not describe it (never overwrites)."),
    move: bool = typer.Option(False, "--move", help="With --sort-into: move instead of copy."),
    features_csv: Optional[Path] = typer.Option(None, "--features-csv", help="Score the rows of a GTZAN-schema feature table instead of audio files."),
    tags: bool = typer.Option(False, "--tags", help="Also show the top-5 tags of the tagger the model ran (musicnn's MSD tags: rock, female vocalists, chillout, ...; or AudioSet's classes), from the same pass (csv: a trailing tags column)."),
) -> None:
    """Genre blend of each file: a probability per genre (summing to 1), the top genre and a blend label.

    The label names two genres (e.g. hiphop-metal) when the second is within 0.10 of the top.
    Every window of the track is blended (up to 10 minutes). The fit column says whether the ten
    genres describe the track at all (ok / poor: speech, noise or a genre outside them, e.g.
    techno; see docs/models.md, "Does the track fit the ten genres?"); table and json also list chart-genre tags (AudioSet
    genres mapped onto the chart table's genres, uncalibrated). Each file's row is printed as soon
    as it is done. A file that cannot be analysed gets an error row (csv: top_genre=error) and the
    batch goes on; the exit status is then 1. --sort-into never overwrites or loses a file, also
    with other runs sorting into the same folder: a name taken by a different file gets a -1,
    -2... suffix, a file already in its genre folder stays where it is, a track the genres do not
    fit (fit: poor) goes to DIR/_does-not-fit/, and the last line counts what was copied, already
    there, skipped or failed.

    \b
    Examples:
      tracklens predict song.mp3 other.wav
      tracklens predict data/demo/audio/*/*.wav --format csv > blends.csv
      tracklens predict inbox/ --sort-into sorted/
      tracklens predict --features-csv ../shared/data/gtzan/features/features_30_sec.csv --format csv
      tracklens predict song.mp3 --tags
    """
    from tracklens import fileio
    from tracklens.models import blend, output

    if tags and features_csv is not None:
        raise TracklensError("--tags needs audio files, not --features-csv")
    output.check_format(fmt)
    if features_csv is None and not paths:
        raise TracklensError("give at least one audio file (or --features-csv PATH)")

    if sort_into is not None:
        output.check_sort_destination(sort_into)  # a file or a read-only folder: said before the model loads
    if features_csv is None:
        paths = blend.expand_inputs(paths)  # folders walked, nothing-to-do refused before the model loads
    # Progress from the first second: loading the model (TensorFlow and the weights) takes 18-33 s cold.
    with _predict_progress(len(paths) if features_csv is None else None, model, fmt=fmt) as bar:
        genre_model = blend.load_model(model, table=features_csv is not None)
        bar.set_description(f"predict ({genre_model.name})")
        genres = genre_model.genres
        if features_csv is not None:
            table, proba = blend.predict_table(genre_model, features_csv)
            bar.clear()
            names, results = list(table["track_id"]), [
                blend.Blend(path=t, genres=genres, probabilities=p, timeline=__import__("pandas").DataFrame(),
                            duration_s=float(d), model=genre_model.name)
                for t, p, d in zip(table["track_id"], proba, table["duration_s"])]
            if fmt == "csv":  # all rows at once: one CSV render instead of one per row
                typer.echo(fileio.to_csv_text(output.csv_frame(names, results, genres)), nl=False)
                return
        else:
            names = [path_text(p) for p in paths]  # a name that is not UTF-8: \xNN, so a CSV can hold it
            results = _counted(blend.iter_predictions(paths, model=genre_model), bar)
        results = _print_as_they_finish(names, results, genres, fmt=fmt, top=top, tags=tags)
    sorted_all = _sort_files(results, sort_into, move=move) if sort_into is not None else True
    if not sorted_all or any(not isinstance(r, blend.Blend) for r in results):
        raise typer.Exit(1)


# --- catalogues and compare by sound (catalogue.py) ------------------------------------------

catalogue_app = typer.Typer(
    no_args_is_help=True,
    help="Catalogues: folders of tracks tracklens has measured itself (values, genre blend, sound embedding).",
)
app.add_typer(catalogue_app, name="catalogue")


@catalogue_app.command("build")
def catalogue_build_cmd(
    source: Path = typer.Argument(..., readable=False, help="A folder of audio, a manifest CSV (`acquire folder`), or the folder `acquire previews` wrote."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Catalogue folder to write; a rebuild adds only new or changed files."),
    name: Optional[str] = typer.Option(None, "--name", help="Instead of --out: HOME/data/catalogues/NAME, where the dashboard's picker and `similar --catalogue NAME` find it (default name: the source's)."),
    meta: Optional[Path] = typer.Option(None, "--meta", help="Metadata table (CSV/parquet, e.g. the Top Hits CSV) joined by ISRC or normalised artist + title; its columns arrive prefixed spotify_."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Local worker processes (-1: all cores)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786): the workers analyse the files and write the parts."),
    model: Optional[str] = typer.Option(None, "--model", help="Genre model (default: the shipped default: the blend, fit, chart genres and embedding from one EfficientAT pass)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help=f"Per-file result cache (default {config.CACHE_DIR})."),
) -> None:
    """Analyse every track of SOURCE into a catalogue: the engine's values (tempo, key, mode,
    LUFS, duration, energy/acousticness estimates), the genre blend, fit and chart-genre tags,
    and a sound embedding, in CAT/tracks.parquet with CAT/card.json (versions, counts, source).

    Unreadable files are listed in CAT/errors.csv and never stop the build. Results are cached
    per file: a rebuild analyses only new or changed files.

    \b
    Examples:
      tracklens catalogue build data/demo/audio --name demo
      tracklens catalogue build my_refs/ --out refs_catalogue --jobs -1
      tracklens acquire previews ../shared/data/spotify/songs_normalize.csv --out data/raw/tophits
      tracklens catalogue build data/raw/tophits --name tophits --meta ../shared/data/spotify/songs_normalize.csv
    """
    from tracklens import catalogue

    if out is not None and name is not None:
        raise TracklensError("give --out or --name, not both")
    if name is not None and (not name.strip() or Path(name).name != name or name.startswith(".") or one_line(name) != name):
        raise TracklensError(f"--name {name!r}: a plain folder name (no '/', not hidden, no control characters)")
    out = out or catalogue.catalogues_dir() / (name or (source.stem if source.is_file() else source.name))
    cat = catalogue.build(source, out, meta=meta, jobs=jobs, scheduler=scheduler, model=model, cache_dir=cache_dir)
    counts = cat.card["counts"]
    typer.echo(f"{counts['tracks']} tracks ({counts['analysed_now']} analysed now, {counts['from_cache']} from cache), "
               f"{counts['errors']} unreadable -> {cat.path}")
    if cat.card.get("meta"):
        by = cat.card["meta"]["matched_by"]
        typer.echo(f"--meta: {sum(by.values())} of {counts['tracks']} tracks matched "
                   f"({by.get('isrc', 0)} by ISRC, {by.get('artist+title', 0)} by artist + title)")
    for row in cat.errors.head(5).itertuples():
        typer.echo(one_line(f"  {row.path}: {row.reason}"))
    if len(cat.errors) > 5:
        typer.echo(f"  ... and {len(cat.errors) - 5} more in {cat.path / catalogue.ERRORS_FILE}")


@catalogue_app.command("list")
def catalogue_list_cmd() -> None:
    """List the catalogues in the tracklens home (HOME/data/catalogues/) with their track counts.

    \b
    Examples:
      tracklens catalogue list
      tracklens --data-dir ~/music-lab catalogue list
    """
    from tracklens import catalogue

    found = catalogue.available()
    if not found:
        typer.echo(f"no catalogues in {catalogue.catalogues_dir()} (build one: tracklens catalogue build SOURCE)")
    for path in found:
        try:
            card = __import__("json").loads((path / catalogue.CARD_FILE).read_text())
            typer.echo(one_line(f"{path.name}: {card['counts']['tracks']} tracks, model {card['model']['name']}, "
                                f"built {card['built']['at']}"))
        except (OSError, ValueError, KeyError, TypeError):
            typer.echo(one_line(f"{path.name}: unreadable card"))


@app.command("similar")
def similar_cmd(
    files: list[Path] = typer.Argument(..., readable=False, help="Audio files to compare."),
    catalogue_path: Path = typer.Option(..., "--catalogue", "-c", help="Catalogue folder (or a name in HOME/data/catalogues/)."),
    top: int = typer.Option(5, "--top", "-k", min=1, help="Neighbours per file."),
    within: Optional[str] = typer.Option(None, "--within", help="Only catalogue tracks of this genre (blend genre, chart genre or the metadata's genre)."),
    fmt: str = typer.Option("table", "--format", help="table, csv (a query column first) or json."),
    use_labels: Optional[bool] = typer.Option(None, "--use-labels/--no-labels", help="Also compare by an LDA of the catalogue's genre labels (ranks by genre first). Default: whenever every track carries a label (genre sub-folders or a manifest's label column); --use-labels insists, --no-labels compares by sound and blend alone."),
) -> None:
    """The catalogue tracks that sound most like each FILE: similarity (cosine of sound
    embeddings centred on the catalogue's mean, and of genre blends), genre / chart genre, and the
    values side by side, measured the same way. A catalogue whose tracks all carry a genre label
    (sub-folders or a manifest's label column) is also compared by an LDA of the embeddings on
    those labels ("same kind of music" first: it measured best, docs/compare-by-sound.md), unless
    --no-labels.

    A file that cannot be analysed gets an error entry and the others go on (exit status 1).

    \b
    Examples:
      tracklens similar song.mp3 --catalogue demo
      tracklens similar mix1.wav mix2.wav --catalogue tophits --top 10 --within rock
      tracklens similar song.mp3 --catalogue tophits --format csv > neighbours.csv
      tracklens similar song.mp3 --catalogue gtzan-refs --no-labels
    """
    from tracklens import catalogue

    if fmt not in catalogue.OUTPUT_FORMATS:
        raise TracklensError(f"--format {fmt}: use one of {', '.join(catalogue.OUTPUT_FORMATS)}")
    cat = catalogue.load(_catalogue_folder(catalogue_path))
    if within:
        cat.within(within)  # an unknown genre fails before any file is analysed
    if use_labels and cat.labels() is None:  # so does a catalogue without labels
        raise TracklensError(f"--use-labels: the tracks of {cat.name} carry no genre labels (every track needs one, "
                             "two genres of two tracks at least); leave out --use-labels")
    from tracklens.models import fit

    results = []
    for path in files:
        try:
            track = catalogue.analyse(path, model=cat.model)  # what similar(path) analyses, kept for its fit
            results.append((path_text(path), catalogue.similar(track, cat, top=top, within=within, use_labels=use_labels)))
        except TracklensError as exc:
            results.append((path_text(path), exc))
            continue
        if fit.not_music(track.blend):  # listed (asked for), but said: the check page shows none
            print(one_line(f"tracklens: note: {path_text(path)} {track.blend.fit_reason}; its neighbours are "
                           "by sound, not by music"), file=sys.stderr)
    typer.echo(catalogue.format_neighbours(results, fmt))
    if any(isinstance(r, Exception) for _, r in results):
        raise typer.Exit(1)


def _catalogue_folder(path: Path) -> Path:
    """``path`` itself, or the catalogue of that name in the tracklens home."""
    from tracklens import catalogue

    named = catalogue.catalogues_dir() / str(path)
    return named if not path.exists() and len(path.parts) == 1 and named.is_dir() else path


@app.command("check")
def check_cmd(
    file: Path = typer.Argument(..., readable=False, help="The audio file to check."),
    out: Path = typer.Option(..., "--out", "-o", help="Report to write (.html); OUT-stem.values.csv and OUT-stem.json go beside it. An existing one is replaced only when an earlier `tracklens check` wrote it."),
    catalogue_path: Optional[Path] = typer.Option(None, "--catalogue", "-c", help="Also list the nearest tracks by sound in this catalogue."),
    top: int = typer.Option(5, "--top", "-k", min=1, help="Neighbours listed."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Leave out the spectrogram figure (a smaller file)."),
    model: Optional[str] = typer.Option(None, "--model", help="Genre model (default: the catalogue's, else the shipped default; with a catalogue another model's blend is compared by sound alone)."),
) -> None:
    """Check one track and write a self-contained HTML report: the engine's values with their
    sources, the genre blend and its timeline, fit and chart-genre tags, the nearest catalogue
    tracks by sound, and figures (inline; the page needs no other file). The values are also
    written as CSV and JSON beside it. The numbers are the check page's: tempo is the tempo a
    musician taps, loudness is BS.1770 over the file's channels. A track the fit rule hears as
    not music (speech, noise, a tone) gets no neighbours, as on the page.

    \b
    Examples:
      tracklens check song.mp3 --out song-check.html
      tracklens check song.mp3 --catalogue demo --out song-check.html
    """
    from tracklens import catalogue, reports
    from tracklens.models import fit

    reports.check_report_paths(out)  # a user's file in the way is refused before the analysis
    cat = catalogue.load(_catalogue_folder(catalogue_path)) if catalogue_path is not None else None
    track = catalogue.analyse(file, model=model or (cat.model if cat is not None else None))
    # as on the check page: no neighbours for speech, noise or a tone (they would rank music that is not there)
    heard_no_music = cat is not None and fit.not_music(track.blend)
    neighbours = catalogue.similar(track, cat, top=top) if cat is not None and not heard_no_music else None
    written = reports.write_check_report(track, out, neighbours=neighbours, figures=not no_figures,
                                         catalogue_name=cat.name if cat is not None else None)
    typer.echo(one_line(f"{file}: {track.blend.label} (fit {track.blend.fit or 'not judged'}) -> {written['html']} "
                        f"(+ {written['csv'].name}, {written['json'].name})"))
    if heard_no_music:
        typer.echo(one_line(f"note: {file} {track.blend.fit_reason}; no neighbours in {cat.name} are listed"))


# `tracklens --help` lists the verbs in the order of the data flow, not of definition.
_FLOW = ["demo-data", "prepare", "split", "features", "train", "evaluate", "predict", "catalogue", "similar", "check",
         "playlist", "figures", "dashboard"]


def _flow_position(command) -> int:
    name = command.name or command.callback.__name__.replace("_", "-")
    return _FLOW.index(name) if name in _FLOW else len(_FLOW)


app.registered_commands.sort(key=_flow_position)


INTERRUPTED = "tracklens: interrupted; work already written is kept."
TERMINATED = "tracklens: terminated; work already written is kept."
_signalled: list[int] = []  # SIGTERM received: main() reports it as such


def _terminate_like_ctrl_c(signum, frame) -> None:
    """SIGTERM (``kill``, a service manager, a closed session) unwinds as Ctrl-C does: temp
    files are removed, worker pools stopped and finished work kept; the default action killed
    the process where it stood."""
    _signalled.append(signum)
    raise KeyboardInterrupt


def _stopped_line() -> tuple[str, int]:
    """The last line and exit status after Ctrl-C (130) or SIGTERM (143, 128 + 15)."""
    import signal

    return (TERMINATED, 128 + signal.SIGTERM) if _signalled else (INTERRUPTED, 130)


def _leaf_command(args: list[str]):
    """``(index in args, click command)`` of the (sub)command ``args`` run, or ``(None, None)``."""
    command, at, i = typer.main.get_command(app), None, 0
    while hasattr(command, "commands"):  # a group (typer ships its own copy of click: duck-typed)
        takes_value = {o for p in command.params if p.param_type_name == "option" and not p.is_flag for o in p.opts}
        while i < len(args) and args[i].startswith("-"):
            i += 1 + (args[i] in takes_value)  # skip the group's options (and a value: --data-dir DIR)
        if i >= len(args) or args[i] not in command.commands:
            return None, None
        command, at, i = command.commands[args[i]], i, i + 1
    return at, command


def _hoist_debug(args: list[str]) -> list[str]:
    """``args`` with every ``--debug`` moved before the verb, where the root option reads it, so
    `tracklens features --debug ...` works too. A command with its own ``--debug`` (dashboard:
    Dash's debug server) keeps those after its name; nothing after ``--`` is touched."""
    stop = args.index("--") if "--" in args else len(args)
    at, command = _leaf_command(args[:stop])
    owns_debug = command is not None and any("--debug" in getattr(p, "opts", ()) for p in command.params)
    moved = {i for i in range(at if owns_debug else stop) if args[i] == "--debug"}
    return ["--debug", *(a for i, a in enumerate(args) if i not in moved)] if moved else args


def _expand_tilde_after_equals(args: list[str]) -> list[str]:
    """``--out=~/x`` as ``--out ~/x`` reads: bash and zsh leave a tilde after ``=`` as it is, and
    `check song.wav --out=~/r.html` wrote into a folder named ``~`` in the current one (a trap:
    ``rm -rf ~`` to remove it removes the home folder). Nothing after ``--`` is touched."""
    stop = args.index("--") if "--" in args else len(args)
    expanded = []
    for i, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if i < stop and arg.startswith("--") and equals and value.startswith("~"):
            arg = f"{name}={os.path.expanduser(value)}"
        expanded.append(arg)
    return expanded


LOKY_CLEANUP_WARNING = "ignore:resource_tracker:UserWarning"


def main() -> None:
    """Console entry point: run the app and turn project errors into clean exits."""
    args = sys.argv[1:]
    debug = "--debug" in args
    # TensorFlow's C++ start-up notices (CPU instructions, absl) say nothing to a user; its errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # After Ctrl-C, joblib's killed workers leave semaphores that loky's resource tracker (a child
    # process, hence the environment) removes, warning "resource_tracker: There appear to be N
    # leaked semlock objects" after our last line: nothing is left behind, so the warning only
    # buried "tracklens: interrupted ...".
    filters = os.environ.get("PYTHONWARNINGS", "")
    if LOKY_CLEANUP_WARNING not in filters:
        os.environ["PYTHONWARNINGS"] = f"{filters},{LOKY_CLEANUP_WARNING}".lstrip(",")
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    try:
        app(args=_hoist_debug(_expand_tilde_after_equals(args)), prog_name="tracklens")
    except TracklensError as exc:
        if debug:
            raise
        print(f"tracklens: error: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a read-only or full disk, a path through a file: the path and the cause
        if debug:
            raise
        from tracklens.fileio import os_error_line

        print(f"tracklens: error: {one_line(os_error_line(exc))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        line, status = _stopped_line()
        print(line, file=sys.stderr)
        sys.exit(status)
    except SystemExit as exc:
        if exc.code == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into a silent exit 130
            line, status = _stopped_line()
            print(line, file=sys.stderr)
            sys.exit(status)
        raise


if __name__ == "__main__":
    main()
