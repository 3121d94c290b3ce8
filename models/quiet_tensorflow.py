"""TensorFlow imported quietly: its start-up lines never reach a terminal or a notebook.

``import tensorflow`` (``import keras`` runs it first) writes, before absl's logging is set up and
so whatever ``TF_CPP_MIN_LOG_LEVEL`` says (TensorFlow 2.21, twice per process)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1796630050.694793   26483 port.cc:153] oneDNN custom operations are on. You may see ...

The one switch that silences the oneDNN line, ``TF_ENABLE_ONEDNN_OPTS=0``, also turns the oneDNN
kernels off (the dashboard's blend of a 30 s clip is ~3x faster with them: dashboard/app.py), so
the first import of TensorFlow instead runs with the process's stderr (file descriptor 2, where
C++ writes) sent to a temporary file; afterwards the absl lines under ``TF_CPP_MIN_LOG_LEVEL``'s
severity (2 unless the user set it: errors still show) are dropped and every other line is
written back to stderr, in order.

:func:`install` (``models/__init__.py`` calls it) sets that default and puts a one-shot import hook
for ``tensorflow`` on ``sys.meta_path``, so whichever module imports TensorFlow or Keras first, in
the CLI, the dashboard, a script or a notebook, imports it quietly.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

#: absl's log-line prefix: severity (I info, W warning, E error, F fatal), MMDD, hh:mm:ss.us (before
#: absl's set-up the seconds count from 1970: "00:00:1796630050.69"), thread id, file:line].
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] ")
_SEVERITIES = "IWEF"
#: absl's notice before its own set-up, and the line cpu_feature_guard's notice continues on.
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_CONTINUATION = "To enable the following instructions:"


def min_log_level() -> int:
    """TensorFlow's ``TF_CPP_MIN_LOG_LEVEL`` (0 shows everything; 2, our default, errors only)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def drop_start_up_lines(text: str, level: int) -> str:
    """``text`` without absl's lines of a severity under ``level`` (with their continuation and
    absl's preamble when any is dropped); every other line as it was."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        match = _ABSL_LINE.match(line)
        if match:
            dropping = _SEVERITIES.index(match.group(1)) < level
        elif line.rstrip("\r\n") == _ABSL_PREAMBLE:
            dropping = level > 0
        elif not (dropping and line.startswith(_CONTINUATION)):
            dropping = False
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def start_up_lines_dropped():
    """While the block runs, file descriptor 2 goes to a temporary file; then its text comes back
    to stderr less :func:`drop_start_up_lines`'. Without a usable descriptor 2, does nothing."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()  # Python's own stderr writes of the block land in the file too
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = drop_start_up_lines(capture.read().decode("utf-8", errors="replace"), min_log_level())
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


class _QuietTensorFlowImport:
    """A ``sys.meta_path`` finder for ``tensorflow`` alone: it finds the package as the other finders
    would and runs its first execution under :func:`start_up_lines_dropped`; then leaves."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        uninstall()
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module):
            try:
                with start_up_lines_dropped():
                    run(module)
            finally:
                with contextlib.suppress(AttributeError):
                    del loader.exec_module  # back to the class's own

        loader.exec_module = exec_module
        return spec


_HOOK = _QuietTensorFlowImport()


def install() -> None:
    """``TF_CPP_MIN_LOG_LEVEL=2`` unless set, and the import hook unless TensorFlow is loaded already."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def uninstall() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_HOOK)
