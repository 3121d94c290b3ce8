"""The project's one error type: anything a user can cause (bad file, bad column, bad option).

The CLI turns it into a single line on stderr and a non-zero exit; library users catch it.
Messages name the thing that is wrong and, where possible, what to do about it.
"""

import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """``text`` as one line for a terminal: control characters (a newline or an escape sequence
    in a file name) written as Python escapes (``\\n``, ``\\x1b``), so one bad input is one line
    and a name cannot repaint the screen. CSV and JSON keep names as they are (quoted, escaped)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def path_text(path) -> str:
    """``path`` as text any UTF-8 file, table or terminal holds: in a name that is not valid UTF-8
    (``caf\\xe9.wav``, Latin-1 from an old archive) the bytes that are not are written ``\\xe9``
    (Python keeps them as lone surrogates, which pandas, pyarrow and UTF-8 files refuse)."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


class TracklensError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class CredentialsError(TracklensError):
    """Spotify (or another service) credentials are missing or were rejected."""
