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
