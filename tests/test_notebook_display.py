"""Figures made without pyplot display as images in a fresh IPython/Jupyter session.

IPython registers its Figure -> PNG display only when pyplot is imported; tracklens' figures never
import pyplot, so in a fresh kernel ``lv.overview(a)`` showed ``<Figure size ...>`` as text.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
import numpy as np
from tracklens import figure_style, librosa_visuals  # noqa: F401
from tracklens.figure_style import mpl_figure
fig, _ = mpl_figure(1)
data, _ = shell.display_formatter.format(fig)
print(sorted(data))
"""


def test_a_figure_displays_as_an_image_in_a_fresh_ipython_session():
    # a child process: a fresh session where nothing has imported pyplot
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "image/png" in done.stdout, done.stdout


def test_outside_ipython_nothing_is_registered():
    from tracklens import figure_style

    assert figure_style.display_figures_in_notebooks() is False  # pytest runs no IPython shell
