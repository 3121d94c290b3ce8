"""Audio views of one clip: waveform, spectrograms, chroma, MFCC, spectral shape, beats, HPSS.

Every view takes a :class:`features.Analysis` (``features.analyze(y, sr=...)``) and reuses its one
STFT and what is derived from it (mel, chroma, MFCC, centroid, HPSS ...): nothing here computes
a second STFT or loads audio. Figures are matplotlib ``Figure`` objects built without pyplot
(nothing pops up, nothing leaks); axes are in seconds, Hz and dB with colour bars, and titles
carry the file name passed as ``title``. Nothing here reads or writes a file: ``tracklens.reports``
decodes clips and writes the figures.

The spectrogram and chromagram also have Plotly versions for the dashboard
(:func:`spectrogram_figure`, :func:`chromagram_figure`), drawn from the same prepared
:class:`SpecImage` as the matplotlib ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

from tracklens import config, figure_style  # figure_style: its Figures display in notebooks
from tracklens.errors import TracklensError

Kind = Literal["linear", "mel", "chroma", "mfcc"]
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _check_analysis(analysis, where: str) -> None:
    """One line when a view is given a file name, an AudioClip or samples instead of an analysis."""
    if not all(hasattr(analysis, name) for name in ("stft", "sr", "hop_length", "n_frames")):
        kind = "None" if analysis is None else type(analysis).__name__
        raise TracklensError(f"{where}: expected an analysis (features.analyze(clip.y, sr=clip.sr) of "
                             f"clip = audio.load_audio(path)), got {kind}")


def _takes_analysis(view):
    """Checks a view's first argument with :func:`_check_analysis` (the view's name in the message)."""
    import functools

    @functools.wraps(view)
    def checked(analysis, *args, **kwargs):
        _check_analysis(analysis, f"librosa_visuals.{view.__name__}")
        return view(analysis, *args, **kwargs)

    return checked


# --- prepared images ----------------------------------------------------------------------


@dataclass
class SpecImage:
    """One time-frequency image ready to draw.

    values : np.ndarray [shape=(n_rows, t)], dB for spectrograms, 0..1 for chroma
    times : np.ndarray [shape=(t,)], frame centres in seconds (librosa's centred frames: i * frame_s)
    rows : np.ndarray [shape=(n_rows,)], row centres: Hz (linear/mel), pitch class or MFCC index
    kind : "linear", "mel", "chroma" or "mfcc"
    sr : sample rate (Hz) of the analysis, for the frequency axis
    """

    values: np.ndarray
    times: np.ndarray
    rows: np.ndarray
    kind: str
    sr: int
    unit: str
    title: str

    @property
    def label(self) -> str:
        return {"linear": "spectrogram (dB)", "mel": "log-mel spectrogram (dB)", "chroma": "chromagram",
                "mfcc": "MFCC"}[self.kind]


def spec_image(values: np.ndarray, *, kind: Kind, sr: int = config.SAMPLE_RATE,
               frame_seconds: float = config.HOP_LENGTH / config.SAMPLE_RATE, title: str = "") -> SpecImage:
    """Prepare a time-frequency matrix (already in dB for spectrograms) for drawing.

    Parameters
    ----------
    values : np.ndarray [shape=(n_rows, t)]; linear: 1 + n_fft/2 rows, mel: n_mels rows, chroma: 12
    kind : which axis the rows are on
    sr : sample rate in Hz (sets the frequency axis of linear and mel images)
    frame_seconds : seconds between columns (hop_length / sr, times any decimation step)
    """
    import librosa

    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or min(values.shape) < 1:
        raise TracklensError(f"{title or 'image'}: expected a 2-D (rows, frames) matrix, got shape {values.shape}")
    if frame_seconds <= 0:
        raise TracklensError(f"frame_seconds={frame_seconds} must be positive")
    n_rows, n_frames = values.shape
    if kind == "linear":
        rows = librosa.fft_frequencies(sr=sr, n_fft=2 * (n_rows - 1))
    elif kind == "mel":
        rows = librosa.mel_frequencies(n_mels=n_rows, fmax=sr / 2)
    elif kind == "chroma":
        if n_rows != 12:
            raise TracklensError(f"{title or 'chromagram'}: a chromagram has 12 rows, got {n_rows}")
        rows = np.array(PITCH_CLASSES)
    elif kind == "mfcc":
        rows = np.arange(n_rows)
    else:
        raise TracklensError(f"kind={kind!r} must be one of linear, mel, chroma, mfcc")
    unit = "dB" if kind in ("linear", "mel") else ""
    return SpecImage(values, np.arange(n_frames) * frame_seconds, rows, kind, int(sr), unit, title)


@_takes_analysis
def analysis_image(analysis, kind: Kind, *, title: str = "") -> SpecImage:
    """The analysis' own matrix for ``kind``: |STFT| in dB, log-mel, chroma or MFCC (no new STFT)."""
    import librosa

    if kind == "linear":
        values = librosa.amplitude_to_db(analysis.magnitude, ref=np.max)
    else:
        values = {"mel": lambda: analysis.log_mel, "chroma": lambda: analysis.chroma, "mfcc": lambda: analysis.mfcc}[kind]()
    return spec_image(values, kind=kind, sr=analysis.sr, frame_seconds=analysis.hop_length / analysis.sr, title=title)


@_takes_analysis
def frame_times(analysis) -> np.ndarray:
    """Centre time (s) of each STFT frame [shape=(t,)] (librosa's centred frames)."""
    return np.arange(analysis.n_frames) * analysis.hop_length / analysis.sr


# --- matplotlib renderers -----------------------------------------------------------------


def _figure(nrows: int = 1, ncols: int = 1, *, size=(9.0, 3.0), sharex: bool = False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)
    return fig, axes


def draw_image(img: SpecImage, ax, *, colorbar: bool = True, cmap: str | None = None, **kwargs):
    """Draw a SpecImage on a matplotlib axis (librosa.display.specshow); returns the QuadMesh.

    ``kwargs`` go to pcolormesh (e.g. ``vmin``/``vmax`` to share a colour scale).
    """
    import librosa.display

    y_axis = {"linear": "log", "mel": "mel", "chroma": "chroma", "mfcc": None}[img.kind]
    if img.kind == "mel":
        kwargs["fmax"] = img.sr / 2
    mesh = librosa.display.specshow(img.values, x_coords=img.times, x_axis="time", y_axis=y_axis, sr=img.sr,
                                    ax=ax, cmap=cmap or ("magma" if img.unit == "dB" else "viridis"), **kwargs)
    if img.kind in ("linear", "mel"):
        ax.set_ylabel("frequency (Hz)")
    elif img.kind == "mfcc":
        ax.set_ylabel("MFCC coefficient")
    else:
        ax.set_ylabel("pitch class")
    ax.set_xlabel("time (s)")
    ax.set_title(" · ".join(p for p in (img.title, img.label) if p), fontsize=10)
    if colorbar:
        ax.figure.colorbar(mesh, ax=ax, format="%+.0f dB" if img.unit == "dB" else "%.2f",
                           label=img.unit or ("energy" if img.kind == "chroma" else "value"))
    return mesh


def _single(img: SpecImage, *, size=(9.0, 3.4)):
    fig, axes = _figure(size=size)
    draw_image(img, axes[0, 0])
    return fig


@_takes_analysis
def plot_waveform(analysis, *, title: str = "", ax=None, peak: float | None = None):
    """Waveform (amplitude against time in seconds; full scale is ±1).

    ``peak`` fixes the amplitude axis at ±peak (:func:`genre_gallery` gives every row the same
    one, so a quiet clip looks quiet); default: the clip's own peak.
    """
    fig, axes = (ax.figure, None) if ax is not None else _figure()
    ax = ax if ax is not None else axes[0, 0]
    t = np.arange(len(analysis.y)) / analysis.sr
    step = max(1, len(t) // 20000)  # the eye cannot see more points; keeps figures light
    ax.plot(t[::step], analysis.y[::step], lw=0.5, color="tab:blue")
    limit = 1.05 * (peak if peak is not None else waveform_peak([analysis]))
    ax.set(xlabel="time (s)", ylabel="amplitude (full scale ±1)", xlim=(0, analysis.duration_s),
           ylim=(-limit, limit), title=" · ".join(p for p in (title, "waveform") if p))
    return fig


def waveform_peak(analyses) -> float:
    """The largest absolute sample of the analyses (at least 1e-3, so silence still draws)."""
    return max([float(np.max(np.abs(a.y), initial=0.0)) for a in analyses] + [1e-3])


@_takes_analysis
def plot_spectrogram(analysis, *, kind: Literal["linear", "mel"] = "mel", title: str = ""):
    """Linear-frequency (log axis) or log-mel spectrogram in dB with a colour bar."""
    if kind not in ("linear", "mel"):
        raise TracklensError(f"kind={kind!r} must be 'linear' or 'mel'")
    return _single(analysis_image(analysis, kind, title=title))


@_takes_analysis
def plot_chromagram(analysis, *, title: str = ""):
    """Chromagram (energy per pitch class over time)."""
    return _single(analysis_image(analysis, "chroma", title=title), size=(9.0, 3.0))


@_takes_analysis
def plot_mfcc(analysis, *, title: str = ""):
    """MFCCs over time."""
    return _single(analysis_image(analysis, "mfcc", title=title), size=(9.0, 3.0))


def _draw_spectral_shape(analysis, ax, *, title: str = "", image=None):
    # ``image``: the linear spectrogram already prepared by the caller (overview draws it twice)
    draw_image(image if image is not None else analysis_image(analysis, "linear", title=title), ax)
    t = frame_times(analysis)
    ax.plot(t, analysis.spectral_centroid[0], color="white", lw=1, label="spectral centroid")
    ax.plot(t, analysis.rolloff[0], color="cyan", lw=1, label="roll-off (85%)")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(" · ".join(p for p in (title, "centroid and roll-off over the spectrogram") if p), fontsize=10)


@_takes_analysis
def plot_spectral_shape(analysis, *, title: str = ""):
    """Spectral centroid and roll-off (Hz) drawn over the linear spectrogram."""
    fig, axes = _figure(size=(9.0, 3.6))
    _draw_spectral_shape(analysis, axes[0, 0], title=title)
    return fig


def _draw_zcr_rms(analysis, ax, *, title: str = ""):
    t = frame_times(analysis)
    ax.plot(t, analysis.rms[0], color="tab:blue", lw=1, label="RMS")
    ax.set(xlabel="time (s)", ylabel="RMS (amplitude)", xlim=(0, analysis.duration_s))
    twin = ax.twinx()
    twin.plot(t, analysis.zero_crossing_rate[0], color="tab:orange", lw=1, label="zero-crossing rate")
    twin.set_ylabel("zero crossings per sample")
    ax.legend(handles=ax.get_lines() + twin.get_lines(), loc="upper right", fontsize=7)
    ax.set_title(" · ".join(p for p in (title, "RMS and zero-crossing rate") if p), fontsize=10)


@_takes_analysis
def plot_zcr_rms(analysis, *, title: str = ""):
    """RMS energy and zero-crossing rate over time."""
    fig, axes = _figure()
    _draw_zcr_rms(analysis, axes[0, 0], title=title)
    return fig


@_takes_analysis
def beat_times(analysis) -> tuple[float, np.ndarray]:
    """(tempo in BPM, beat times in s) from the analysis' onset envelope (no new spectrogram)."""
    import librosa

    tempo, beats = librosa.beat.beat_track(onset_envelope=analysis.onset_envelope, sr=analysis.sr,
                                           hop_length=analysis.hop_length, units="time")
    return float(np.atleast_1d(tempo)[0]), np.asarray(beats)


def _draw_beats(analysis, ax, *, title: str = ""):
    env = analysis.onset_envelope
    tempo, beats = beat_times(analysis)
    ax.plot(frame_times(analysis)[: len(env)], env / (env.max() or 1), color="tab:blue", lw=0.8, label="onset strength")
    ax.vlines(beats, 0, 1, color="tab:red", alpha=0.6, lw=0.8, linestyles="--", label="beats")
    ax.set(xlabel="time (s)", ylabel="onset strength (norm.)", xlim=(0, analysis.duration_s), ylim=(0, 1.05))
    ax.legend(loc="upper right", fontsize=7)
    # named: librosa's beat tracker is neither the GTZAN-table tempo nor the engine's bpm (the card's)
    ax.set_title(" · ".join(p for p in (title, f"librosa beat tracker: {tempo:.0f} BPM, {len(beats)} beats") if p),
                 fontsize=10)


@_takes_analysis
def plot_beats(analysis, *, title: str = ""):
    """Onset strength with the beats and tempo of librosa's beat tracker (:func:`beat_times`; not
    the engine's ``bpm``, which also reads basic-pitch's pitched onsets)."""
    fig, axes = _figure()
    _draw_beats(analysis, axes[0, 0], title=title)
    return fig


def _draw_hpss(analysis, ax, *, title: str = ""):
    t = np.arange(len(analysis.y)) / analysis.sr
    step = max(1, len(t) // 20000)
    ax.plot(t[::step], analysis.harmonic[::step], lw=0.5, alpha=0.8, label="harmonic")
    ax.plot(t[::step], analysis.percussive[::step], lw=0.5, alpha=0.8, label="percussive")
    ax.set(xlabel="time (s)", ylabel="amplitude", xlim=(0, analysis.duration_s))
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(" · ".join(p for p in (title, "harmonic / percussive split") if p), fontsize=10)


@_takes_analysis
def plot_hpss(analysis, *, title: str = ""):
    """Harmonic and percussive waveforms of the HPSS split (the analysis' own soft masks)."""
    fig, axes = _figure()
    _draw_hpss(analysis, axes[0, 0], title=title)
    return fig


@_takes_analysis
def overview(analysis, *, title: str = ""):
    """Every view of one clip in one tall figure (waveform ... HPSS), sharing the time axis."""
    fig, axes = _figure(8, 1, size=(10.0, 2.6), sharex=True)
    ax = axes[:, 0]
    plot_waveform(analysis, ax=ax[0])
    linear = analysis_image(analysis, "linear")
    draw_image(linear, ax[1])
    draw_image(analysis_image(analysis, "mel"), ax[2])
    draw_image(analysis_image(analysis, "chroma"), ax[3])
    draw_image(analysis_image(analysis, "mfcc"), ax[4])
    _draw_spectral_shape(analysis, ax[5], image=linear)
    _draw_zcr_rms(analysis, ax[6])
    _draw_beats(analysis, ax[7])
    fig.suptitle(f"{title or 'clip'}: {analysis.duration_s:.1f} s at {analysis.sr} Hz")
    return fig


@_takes_analysis
def visualize_Chromagram_y_Spectrogram(analysis, *, title: str = ""):  # noqa: N802 (the user's name)
    """The chromagram and the spectrogram of one song together ("chromagram y spectrogram").

    Top: chromagram (pitch class against time); bottom: linear-frequency spectrogram in dB on
    a log-Hz axis. Both from the same STFT.
    """
    fig, axes = _figure(2, 1, size=(10.0, 3.2), sharex=True)
    draw_image(analysis_image(analysis, "chroma", title=title), axes[0, 0])
    draw_image(analysis_image(analysis, "linear", title=title), axes[1, 0])
    return fig


def genre_gallery(analyses: Mapping[str, object], *, titles: Mapping[str, str] | None = None,
                  views: tuple[str, ...] = ("waveform", "mel", "chroma")):
    """One example per genre side by side: a row per genre, a column per view.

    analyses : genre -> Analysis ; titles : genre -> file name shown in the row's titles
    views : columns, from "waveform", "linear", "mel", "chroma", "mfcc". Each image column
    shares one colour scale (so genres compare), shown by the colour bar under the column; the
    waveforms share one amplitude scale (± the loudest clip's peak).
    """
    if not analyses:
        raise TracklensError("genre gallery needs at least one analysed clip")
    bad = [v for v in views if v not in ("waveform", "linear", "mel", "chroma", "mfcc")]
    if bad:
        raise TracklensError(f"unknown gallery view(s) {bad}")
    for genre, a in analyses.items():
        _check_analysis(a, f"genre_gallery[{genre!r}]")
    titles = dict(titles or {})
    images = {v: {g: analysis_image(a, v) for g, a in analyses.items()} for v in views if v != "waveform"}
    limits = {v: (min(float(i.values.min()) for i in imgs.values()), max(float(i.values.max()) for i in imgs.values()))
              for v, imgs in images.items()}
    peak = waveform_peak(analyses.values())  # one amplitude scale: genres' loudness compares
    fig, axes = _figure(len(analyses), len(views), size=(4.0, 2.1))
    for i, (genre, a) in enumerate(analyses.items()):
        name = f"{genre}: {titles[genre]}" if genre in titles else genre
        for j, view in enumerate(views):
            ax = axes[i, j]
            if view == "waveform":
                plot_waveform(a, ax=ax, peak=peak)
            else:
                low, high = limits[view]
                draw_image(images[view][genre], ax, colorbar=False, vmin=low, vmax=high)
            ax.set_title(f"{name} · {view}", fontsize=8)
            if i < len(analyses) - 1:
                ax.set_xlabel("")
    for j, view in enumerate(views):
        if view != "waveform":
            fig.colorbar(axes[-1, j].collections[0], ax=axes[:, j], location="bottom", shrink=0.8,
                         label=images[view][next(iter(analyses))].unit or "energy")
    fig.suptitle("One example per genre")
    return fig


# --- Plotly versions (dashboard) ----------------------------------------------------------


def _plotly_image(img: SpecImage):
    import plotly.graph_objects as go

    y = list(img.rows) if img.kind == "chroma" else img.rows
    fig = go.Figure(go.Heatmap(
        z=img.values, x=img.times, y=y, colorscale="Magma" if img.unit == "dB" else "Viridis",
        colorbar={"title": img.unit or ("energy" if img.kind == "chroma" else "")},
        hovertemplate="%{x:.2f} s, %{y}" + (" Hz" if img.kind in ("linear", "mel") else "")
                      + ": %{z:.1f}" + (" dB" if img.unit == "dB" else "") + "<extra></extra>",
    ))
    yaxis = {"title": "frequency (Hz)" if img.kind in ("linear", "mel") else "pitch class"}
    if img.kind in ("linear", "mel"):
        yaxis["type"] = "log"
    fig.update_layout(title=" · ".join(p for p in (img.title, img.label) if p), xaxis_title="time (s)", yaxis=yaxis,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig


def spectrogram_figure(log_mel: np.ndarray, *, frame_seconds: float = config.HOP_LENGTH / config.SAMPLE_RATE,
                       sr: int = config.SAMPLE_RATE, title: str = ""):
    """Plotly log-mel spectrogram from an analysis' ``log_mel`` [shape=(n_mels, t)], in dB."""
    return _plotly_image(spec_image(log_mel, kind="mel", sr=sr, frame_seconds=frame_seconds, title=title))


def chromagram_figure(chroma: np.ndarray, *, frame_seconds: float = config.HOP_LENGTH / config.SAMPLE_RATE,
                      title: str = ""):
    """Plotly chromagram from an analysis' ``chroma`` [shape=(12, t)]."""
    return _plotly_image(spec_image(chroma, kind="chroma", frame_seconds=frame_seconds, title=title))
