"""Acquire raw inputs, one module per source; everything is written into ``data/raw`` (or a path
the caller names).

Modules (each source imports only the plumbing below it, config, errors, fileio and audio;
``previews`` also builds on ``deezer``)
- ``web``: the errors a source raises, :class:`RetryPolicy` and :func:`~web.retry_call` (429
  ``Retry-After``, back-off on 5xx and timeouts), one HTTP GET.
- ``rows``: CSV files of dict rows (spreadsheet-safe) and how a row names its song (artist and
  title columns, normalised names, a chart row's id).
- ``spotify``: the Web API client and reader; ``acquire_spotify`` appends tracks to a CSV.
- ``deezer``: a track and its preview link by ISRC, or by artist + title.
- ``previews``: ``download_previews``: 30 s MP3s from Spotify's links, else Deezer's.
- ``charts``: ``acquire_charts``: a Top-Hits-style chart CSV, checked and copied.
- ``folder``: ``folder_manifest`` / ``write_manifest``: one row per audio file of a folder.

Writes are atomic (:mod:`tracklens.fileio`: a temp file in the destination folder, then
``os.replace``), so an interrupted run never leaves a half-written file under its final name,
and every writer resumes: re-running skips what is already there.
"""

# The names the playlist guide and notebook 04 call as ``acquire.<name>`` (the Python API they
# document); the project's own code imports each from its module.
from tracklens.acquire.previews import download_previews
from tracklens.acquire.spotify import acquire_spotify, spotify_client
from tracklens.acquire.web import RetryPolicy

__all__ = ["RetryPolicy", "acquire_spotify", "download_previews", "spotify_client"]
