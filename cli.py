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
