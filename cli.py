"""The `tracklens` command line: thin commands that call the library modules.

Heavy imports (TensorFlow, librosa, pandas) live inside command bodies so `--help` is instant.
Every TracklensError becomes one line on stderr and exit status 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

import config
from errors import TracklensError

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


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full Python tracebacks on errors."),
) -> None:
    """tracklens: music catalogue exploration and genre blends."""


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
    import demo_data

    cat = demo_data.make_demo_catalogue(
        out, seed=seed, genres=genres, clips_per_genre=clips, clip_seconds=seconds,
        chart_rows=chart_rows, progress=True,
    )
    typer.echo(cat.summary())


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
    from dashboard.app import serve

    serve(host=host, port=port, data_dir=data, debug=debug)


def main() -> None:
    """Console entry point: run the app and turn project errors into clean exits."""
    debug = "--debug" in sys.argv[1:]
    try:
        app(prog_name="tracklens")
    except TracklensError as exc:
        if debug:
            raise
        print(f"tracklens: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("tracklens: interrupted; work already written is kept.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
