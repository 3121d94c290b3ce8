"""The project's one error type: anything a user can cause (bad file, bad column, bad option).

The CLI turns it into a single line on stderr and a non-zero exit; library users catch it.
Messages name the thing that is wrong and, where possible, what to do about it.
"""


class TracklensError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class CredentialsError(TracklensError):
    """Spotify (or another service) credentials are missing or were rejected."""
