"""How every figure of the package looks and is built: column names and units, m:ss durations,
fixed genre colours, escaping for Plotly text, and the two-backend plumbing.

Each figure module (:mod:`tracklens.explore`, :mod:`tracklens.model_figures`,
:mod:`tracklens.track_figures`) prepares a small table and hands it to :func:`render`, which draws
it with Plotly (the default) or matplotlib (``backend="matplotlib"``). The helpers here are shared
by all three, so a column reads the same name, unit and colour wherever it is drawn.
"""

from __future__ import annotations

import html
from typing import Callable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from tracklens import config
from tracklens.errors import TracklensError


Backend = Literal["matplotlib", "plotly"]


def display_figures_in_notebooks() -> bool:
    """In an IPython session, let the matplotlib Figures made here display as PNG images.

    The figures are built without pyplot (nothing pops up or leaks), and IPython registers its
    Figure-as-image display only when pyplot is imported: in a fresh Jupyter kernel a returned
    Figure showed as the text ``<Figure size 900x300 with 1 Axes>``. True when a session was found.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:  # no IPython: nothing displays figures anyway
        return False
    shell = get_ipython()
    if shell is None:
        return False
    select_figure_formats(shell, {"png"})
    if type(shell).__module__.startswith("ipykernel"):  # a kernel: its outputs are saved in the notebook
        # By name: registering imports nothing (plotly loads when the first figure is built).
        shell.display_formatter.ipython_display_formatter.for_type_by_name(
            "plotly.graph_objs._figure", "Figure", show_plotly)
    return True


# --- a static image beside each Plotly figure in a notebook ----------------------------------------

STATIC_IMAGE_ENV = "TRACKLENS_PLOTLY_PNG"  # "0": the package's Plotly figures carry no PNG in notebooks
STATIC_IMAGE_TIMEOUT_S = 10.0  # one image at most, the browser's start included (~2.5 s, then ~0.15 s an image)
BROWSER_CLOSE_TIMEOUT_S = 2.0  # then it is killed (Jupyter kills a kernel 5 s after asking it to stop)
STATIC_RENDERER = "tracklens_png"  # the Plotly renderer (plotly.io.renderers) that adds the PNG


def mark_for_static_image(figure):
    """Mark a Plotly figure made by the package: :func:`show_plotly` adds a PNG to its notebook output."""
    figure._tracklens_png = True  # plotly figures take attributes that start with "_"
    return figure


def show_plotly(figure) -> None:
    """Display a Plotly figure in a Jupyter kernel; the package's figures with a PNG beside it.

    A notebook keeps every representation of an output, and the viewer picks one: Jupyter shows
    the interactive figure (Plotly's own output, unchanged), GitHub and ``nbconvert`` (HTML, PDF,
    Markdown) cannot run its JavaScript and show the PNG (without it they showed nothing). The
    PNG is drawn by kaleido (MIT) in a headless Chrome/Chromium (Debian's ``chromium``, found by
    kaleido, or ``BROWSER_PATH``), started once and kept for the session (the first image ~2.5 s,
    then ~0.15 s). Figures not made by the package are displayed as Plotly displays them, and so
    is every figure with ``TRACKLENS_PLOTLY_PNG=0``. When no image can be made (no browser, one
    that fails or hangs: at most :data:`STATIC_IMAGE_TIMEOUT_S`), one warning says why, and the
    figures stay interactive only.
    """
    import os

    import plotly.io as pio

    renderer = pio.renderers.default
    if (getattr(figure, "_tracklens_png", False) and os.environ.get(STATIC_IMAGE_ENV, "1") != "0"
            and pio.renderers.render_on_display and renderer and _drawer.failed is None
            and not {"png", "jpeg", "jpg", "svg", "pdf"} & set(renderer.split("+"))):  # already has an image
        if STATIC_RENDERER not in pio.renderers:
            pio.renderers[STATIC_RENDERER] = _png_renderer()
        pio.show(figure, renderer=f"{renderer}+{STATIC_RENDERER}")  # one output holding both
        return
    figure._ipython_display_()  # as Plotly displays it


def _png_renderer():
    """A Plotly renderer whose part of a figure's output is its PNG (none when it cannot be drawn)."""
    import base64

    from plotly.io.base_renderers import MimetypeRenderer

    class StaticImage(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            png = _drawer.png(fig_dict)
            return {} if png is None else {"image/png": base64.b64encode(png).decode()}

    return StaticImage()


class _Drawer:
    """One kaleido (headless browser) for the session, on an event loop of its own thread.

    Not kaleido's own sync server: when its browser failed to start, that server's thread died
    with a traceback and the next image waited forever (a notebook cell hung). Here every failure,
    and an image that takes longer than STATIC_IMAGE_TIMEOUT_S, comes back as an exception, and the
    browser is stopped then and at exit (:meth:`close`).
    """

    def __init__(self):
        import threading

        self.failed: str | None = None
        self._loop = None
        self._kaleido = None  # set before the browser starts: close() stops one that never answered too
        self._processes: _StartedProcesses | None = None  # the browser's processes, recorded as they start
        self._lock = threading.Lock()  # between the draw (its loop's thread) and close()

    def png(self, fig_dict: dict) -> bytes | None:
        """The figure as PNG bytes, or None (warned once, never tried again) when it cannot be drawn."""
        if self.failed is not None:
            return None
        import asyncio
        import concurrent.futures
        import threading

        try:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="tracklens-kaleido", daemon=True).start()
            return asyncio.run_coroutine_threadsafe(self._draw(fig_dict), self._loop).result(STATIC_IMAGE_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 (the interactive figure is shown whatever happened here)
            if isinstance(exc, concurrent.futures.TimeoutError):  # the draw ends when close() kills the browser
                exc = TimeoutError(f"no image after {STATIC_IMAGE_TIMEOUT_S:g} s")
            self._give_up(exc)
            return None

    async def _draw(self, fig_dict: dict) -> bytes:
        import plotly.io as pio

        browser = self._kaleido
        if browser is None:
            import atexit

            import kaleido

            # mathjax=False: no script from the network (the package's figures use no LaTeX)
            browser = kaleido.Kaleido(page_generator=kaleido.PageGenerator(mathjax=False),
                                      timeout=STATIC_IMAGE_TIMEOUT_S)
            with self._lock:  # close() runs in another thread: it sees this browser, or this sees it gave up
                if self.failed is not None:  # given up (e.g. the import outlasted the bound): start nothing
                    raise RuntimeError(self.failed)
                self._kaleido, self._processes = browser, _StartedProcesses.watch(browser)
            atexit.register(self.close)
            await browser.open()  # starts the browser
        layout = fig_dict.get("layout", {})
        template = layout.get("template", {}).get("layout", {})
        opts = {"format": "png", "scale": 1,  # the sizes plotly's own to_image uses
                "width": layout.get("width") or template.get("width") or pio.defaults.default_width,
                "height": layout.get("height") or template.get("height") or pio.defaults.default_height}
        return await browser.calc_fig(fig_dict, opts=opts)

    def close(self) -> None:
        """Stop the browser (at exit, or when it failed), within BROWSER_CLOSE_TIMEOUT_S.

        choreographer starts it in a session of its own, out of reach of the signals that stop the
        kernel: a browser that hung outlived the process. One that failed, hung or does not close in
        time is killed.
        """
        import asyncio

        with self._lock:
            browser, processes, self._kaleido, self._processes = self._kaleido, self._processes, None, None
        if browser is None:
            return
        if self.failed is None:  # a working browser is asked first; one that failed or hung would not answer
            try:
                asyncio.run_coroutine_threadsafe(browser.close(), self._loop).result(BROWSER_CLOSE_TIMEOUT_S)
            except Exception:  # noqa: BLE001 (killed below)
                pass
        # Every process the browser started so far; one that starts from now on (its start outlasted
        # the bound) is killed as it starts. choreographer sets ``subprocess`` only after the start.
        started = processes.close() if processes is not None else []
        late_set = getattr(browser, "subprocess", None)
        for process in started + ([late_set] if late_set is not None and late_set not in started else []):
            if process.poll() is None:
                _kill_process_group(process)  # choreographer's watchdog then removes its temporary folders

    def _give_up(self, exc: BaseException) -> None:
        import warnings

        reason = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)  # choreographer: a tuple
        self.failed = f"{type(exc).__name__}: {(reason.splitlines() or [''])[0][:200]}"
        self.close()
        warnings.warn(f"tracklens: Plotly figures are shown without a static PNG for GitHub and nbconvert "
                      f"({self.failed}); install Chrome/Chromium (`make system-deps`) or set {STATIC_IMAGE_ENV}=0",
                      RuntimeWarning, stacklevel=2)


class _StartedProcesses:
    """The processes a choreographer browser starts, recorded the moment each starts; after
    :meth:`close`, one that starts is killed at once.

    choreographer starts the browser in a worker thread of its own executor and names the process
    (``browser.subprocess``) only when the event loop resumes the start: a start that outlasted
    STATIC_IMAGE_TIMEOUT_S (a loaded machine, a slow disk) came after :meth:`_Drawer.close` had
    looked, and that browser, in a session of its own, was never killed. Wrapping the executor
    sees the process in the thread that started it, and the lock orders that with close().
    """

    def __init__(self, executor):
        import threading

        self._executor = executor
        self._lock = threading.Lock()
        self._started: list = []
        self._closed = False

    @classmethod
    def watch(cls, browser) -> "_StartedProcesses | None":
        """Record what ``browser`` (a choreographer Browser, not yet opened) starts; None when this
        choreographer has no executor to wrap, or one that cannot be replaced (its internals
        changed: then only ``browser.subprocess`` is known, and the figures are still drawn)."""
        executor = getattr(browser, "_process_executor", None)
        if executor is None or not hasattr(executor, "submit"):
            return None
        watcher = cls(executor)
        try:
            browser._process_executor = watcher
        except (AttributeError, TypeError):  # a read-only attribute, slots: drawing matters more than the watch
            return None
        return watcher if getattr(browser, "_process_executor", None) is watcher else None

    def submit(self, fn, /, *args, **kwargs):
        def recorded():
            import subprocess

            result = fn(*args, **kwargs)
            if isinstance(result, subprocess.Popen):
                with self._lock:
                    self._started.append(result)
                    late = self._closed
                if late:
                    _kill_process_group(result)
            return result

        return self._executor.submit(recorded)

    def __getattr__(self, name):  # the rest of the executor (shutdown, ...) as it was
        return getattr(self._executor, name)

    def close(self) -> list:
        """The processes started so far; any started from now on is killed as it starts."""
        with self._lock:
            self._closed = True
            return list(self._started)


def _kill_process_group(process) -> None:
    """Kill a browser started by choreographer with every process it started (its wrapper, Chrome
    and Chrome's helpers share the process group it leads); SIGTERM was not enough: the wrapper
    could hang in its own handler."""
    import os
    import signal
    import subprocess

    try:
        if hasattr(os, "killpg") and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        else:  # Windows (choreographer starts Chrome itself, no wrapper), or not a group leader
            process.kill()
        process.wait(5)
    except (OSError, subprocess.TimeoutExpired):  # gone already
        pass


_drawer = _Drawer()


display_figures_in_notebooks()  # every figure module imports this one


def plotly_text(value) -> str:
    """``value`` shown as typed in a Plotly figure.

    Plotly reads a subset of HTML in every label, legend entry, hover text, title and annotation
    (``<b>``, ``<span style=...>``, ``<a href=...>``, ``<br>``), so a file name or a table cell like
    ``<b style="font-size:90px">BIG.wav`` became 90 px bold text and ``<a href=...>`` a link.
    Plotly decodes ``&lt; &gt; &amp;`` back for display: escaped, the text reads as written.
    Every name that comes from the user's data or an upload goes through this before it reaches
    a Plotly figure (the matplotlib renderers draw text literally and get it unescaped).
    """
    return html.escape(str(value), quote=False)

#: Continuous features worth a scatter, a trend or a distribution (key/mode/explicit are codes).
CONTINUOUS_FEATURES = config.CHART_CONTINUOUS_FEATURES

#: Each chart column's name in words and its unit: the one map every figure, table and control
#: labels a column by (:func:`feature_name`, :func:`feature_label`, :func:`format_feature`).
#: Spotify's descriptors are 0-1 scores; its loudness is the track's integrated level in dB
#: relative to digital full scale (hence negative), not an upload's LUFS. Duration is stored in
#: ms, drawn in minutes with m:ss ticks (:data:`DISPLAY_SCALE`).
COLUMN_LABELS: dict[str, tuple[str, str | None]] = {
    "duration_ms": ("duration", "m:ss"),
    "tempo": ("tempo", "BPM"),
    "loudness": ("loudness", "dB, Spotify"),
    "popularity": ("popularity", "0–100"),
    **{f: (f, "0–1") for f in config.SPOTIFY_PERCEPTUAL_FEATURES},
    "key": ("key", None), "mode": ("mode", None), "explicit": ("explicit", None), "year": ("year", None),
}
#: Units of the columns in axis titles (from :data:`COLUMN_LABELS`).
AXIS_UNITS = {c: unit for c, (_, unit) in COLUMN_LABELS.items() if unit}
#: Columns drawn under another name (from :data:`COLUMN_LABELS`).
DISPLAY_NAMES = {c: name for c, (name, _) in COLUMN_LABELS.items() if name != c}
#: The factor from a column's stored unit to the drawn one.
DISPLAY_SCALE = {"duration_ms": 1 / 60_000}


def feature_name(column: str) -> str:
    """The name a column is drawn under in words (``duration_ms`` is drawn as ``duration``)."""
    return DISPLAY_NAMES.get(column, column)


def feature_label(column: str) -> str:
    """An axis title with the unit: ``"tempo (BPM)"``, ``"duration (m:ss)"``; the name alone without one."""
    unit = AXIS_UNITS.get(column)
    return f"{feature_name(column)} ({unit})" if unit else feature_name(column)


def minutes_text(minutes: float) -> str:
    """Minutes as m:ss: 3.5 -> "3:30"."""
    total = int(round(float(minutes) * 60))
    return f"{'-' if total < 0 else ''}{abs(total) // 60}:{abs(total) % 60:02d}"


def duration_ticks(low: float, high: float, *, target: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions (minutes) at 15 s, 30 s, 1, 2, 5 or 10 min steps over [low, high], about
    ``target`` of them, with their m:ss labels (Plotly formats numbers only)."""
    span = max(float(high) - float(low), 1e-9)
    step = next((s for s in (0.25, 0.5, 1, 2, 5, 10, 20) if span / s <= target), 30.0)
    vals = list(np.arange(np.ceil(low / step) * step, high + 1e-9, step))
    return vals, [minutes_text(v) for v in vals]


def hover_label(column: str) -> str:
    """A column's label for a hover's plain number: a duration there is decimal minutes, not m:ss."""
    return f"{feature_name(column)} (min)" if column in DISPLAY_SCALE else feature_label(column)


def axis_ticks_plotly(feature: str, values) -> dict:
    """Plotly axis properties that write a duration axis (in minutes) as m:ss; {} for other columns."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if feature != "duration_ms" or not len(values):
        return {}
    vals, text = duration_ticks(values.min(), values.max())
    return {"tickmode": "array", "tickvals": vals, "ticktext": text}


def axis_ticks_mpl(axis, feature: str) -> None:
    """Write a matplotlib duration axis (in minutes) as m:ss."""
    if feature == "duration_ms":
        from matplotlib.ticker import FuncFormatter

        axis.set_major_formatter(FuncFormatter(lambda v, _: minutes_text(v)))


# --- shared helpers -----------------------------------------------------------------------


def render(data, renderers: Mapping[str, Callable], backend: str):
    """Draw prepared ``data`` with the renderer for ``backend``."""
    try:
        renderer = renderers[backend]
    except KeyError:
        raise TracklensError(f"backend={backend!r} is not one of {sorted(renderers)}") from None
    figure = renderer(data)
    return mark_for_static_image(figure) if backend == "plotly" and hasattr(figure, "to_image") else figure


def mpl_figure(n_panels: int, *, ncols: int = 4, panel_size=(3.2, 2.6)):
    """A matplotlib Figure (no pyplot state, so nothing pops up or leaks) with a grid of axes."""
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = int(np.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


#: One fixed colour per genre in every figure and page (the blend bar, the timeline, the map, the
#: ROC curves; the check page's swatches): ranked colours made orange rock for one upload and metal
#: for the next. Okabe & Ito's colour-blind-safe set plus Tol's wine and olive; black stays for
#: "your track". Other names (chart genres, another model's genres) get a stable colour from
#: :data:`OTHER_COLOURS` by a hash of the name.
GENRE_COLOURS = {"blues": "#0072B2", "classical": "#CC79A7", "country": "#E69F00", "disco": "#56B4E9",
                 "hiphop": "#009E73", "jazz": "#882255", "metal": "#4D4D4D", "pop": "#F0E442",
                 "reggae": "#999933", "rock": "#D55E00"}
OTHER_COLOURS = ("#332288", "#44AA99", "#AA4499", "#DDCC77", "#117733", "#88CCEE", "#661100", "#6699CC")


def genre_colour(genre: str) -> str:
    """The genre's fixed colour (hex), the same wherever it is drawn."""
    import zlib

    name = str(genre)
    if name in GENRE_COLOURS:
        return GENRE_COLOURS[name]
    return OTHER_COLOURS[zlib.crc32(name.encode()) % len(OTHER_COLOURS)]


def text_colour_on(colour: str) -> str:
    """Black or white, whichever reads better on ``colour`` (hex; WCAG relative luminance)."""
    rgb = [int(colour.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#1b1b1b" if luminance > 0.179 else "#ffffff"


#: Plotly margins (px) for figures without a legend or colour bar on the right: Plotly's 80 px on
#: each side left a phone-wide (~330 px) figure half its width for the plot.
COMPACT_MARGIN = {"l": 60, "r": 20, "t": 90, "b": 60}


def plotly_grid(titles: Sequence[str], *, ncols: int = 4, **kwargs):
    from plotly.subplots import make_subplots

    ncols = max(1, min(ncols, len(titles)))
    nrows = int(np.ceil(len(titles) / ncols))
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=list(titles), **kwargs)
    positions = [(i // ncols + 1, i % ncols + 1) for i in range(len(titles))]
    return fig, positions


def in_display_units(d: pd.DataFrame, columns: Sequence[str], *, per_unit: Sequence[str] = ()) -> pd.DataFrame:
    """A long table (with a ``feature`` column) with ``columns`` in each feature's drawn unit
    (:data:`DISPLAY_SCALE`) and ``per_unit`` columns (densities) divided by the same factor."""
    scale = d["feature"].astype(str).map(lambda f: DISPLAY_SCALE.get(f, 1.0)).astype(float)
    out = d.assign(**{c: d[c] * scale for c in columns}, **{c: d[c] / scale for c in per_unit})
    out.attrs.update(d.attrs)
    return out



def format_feature(feature: str, value: float) -> str:
    """A chart value with its unit (:data:`AXIS_UNITS`): "120 BPM", "-5.3 dB, Spotify", a
    duration as "3:43", a 0-1 score as "0.72"."""
    value = float(value)
    if feature == "duration_ms":
        return minutes_text(value / 60_000)
    unit = AXIS_UNITS.get(feature, "")
    if not unit or unit[0].isdigit():  # a score's range is no unit to repeat after each value
        return f"{value:.3g}"
    return f"{value:.0f} {unit}" if unit == "BPM" else f"{value:.1f} {unit}"
