"""The one module that writes figures and reports to disk.

The views (:mod:`tracklens.explore`, :mod:`tracklens.librosa_visuals`) take data and return
figures. This module sits at the end of the flow: it reads the inputs (a chart CSV cleaned by
:func:`prepare.prepare_charts`, audio clips decoded by :mod:`tracklens.audio` and analysed once by
:func:`features.analyze`, trained model folders read by :mod:`models.store`), asks the views for
figures and writes each one atomically through :mod:`tracklens.fileio`, so an interrupted run
never leaves half a PNG behind.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from tracklens import audio, config, explore, features, librosa_visuals, prepare, track_figures
from tracklens.errors import TracklensError
from tracklens.fileio import atomic_output, atomic_write_bytes, has_csv_header, to_csv_text, write_csv
from tracklens.model_figures import confusion_matrix, reliability_diagram, roc_curves, training_curves
from tracklens.models import evaluate, popularity, store


def save_figure(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Write a matplotlib figure (PNG/SVG/PDF by suffix) or a Plotly figure (HTML) atomically."""
    path = Path(path)
    if hasattr(fig, "savefig"):
        with atomic_output(path, "wb") as handle:
            fig.savefig(handle, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
    elif path.suffix.lower() == ".html":
        with atomic_output(path, "w", encoding="utf-8") as handle:
            fig.write_html(handle, include_plotlyjs=True, full_html=True)
    else:
        raise TracklensError(f"{path}: Plotly figures are written as .html here")
    return path


# --- chart figures ----------------------------------------------------------------------------


def write_chart_figures(df: pd.DataFrame, out_dir: str | Path, *, seed: int = config.DEFAULT_SEED) -> tuple[list[Path], str]:
    """Render the main chart figures of a cleaned table as PNGs in ``out_dir``.

    Returns the written paths and a text summary (correlations with intervals, model scores).
    The correlations and the popularity model are computed once, for both figure and summary.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    pearson = explore.corr_data(df, method="pearson", seed=seed)
    spearman = explore.corr_data(df, method="spearman", seed=seed)
    report = popularity.popularity_model(df, seed=seed)
    track = explore.example_track(df)
    mpl = "matplotlib"
    jobs = {
        "charts_corr_pearson.png": lambda: explore.corr_heatmap(pearson, backend=mpl),
        "charts_corr_spearman.png": lambda: explore.corr_heatmap(spearman, backend=mpl),
        "charts_param_viz.png": lambda: explore.param_viz(df, backend=mpl),
        "charts_by_genre.png": lambda: explore.catplot_viz(df, by="genre", backend=mpl),
        "charts_by_band.png": lambda: explore.catplot_viz(df, by="band", backend=mpl),
        "charts_distributions.png": lambda: explore.distribution_plots(df, backend=mpl),
        "charts_yearly_trends.png": lambda: explore.yearly_trends(df, backend=mpl),
        "charts_hit_profile.png": lambda: track_figures.hit_profile(track, df, backend=mpl),
        "charts_popularity_model.png": lambda: explore.popularity_model_figure(report, backend=mpl),
    }
    written = [save_figure(make(), out_dir / name) for name, make in tqdm(jobs.items(), desc="chart figures", leave=False)]
    summary = "\n".join([explore.summarize_correlations(pearson), explore.summarize_correlations(spearman),
                         explore.summarize_popularity(report)])
    return written, summary


# --- audio figures ----------------------------------------------------------------------------


def genre_examples(audio_dir: str | Path, *, per_genre: int = 1) -> dict[str, list[Path]]:
    """The first ``per_genre`` audio files (sorted by name) of each ``<genre>/`` folder of ``audio_dir``."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise TracklensError(f"{audio_dir}: not a folder of audio")
    examples = {}
    for folder in sorted(p for p in audio_dir.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in audio.AUDIO_EXTENSIONS)
        if files:
            examples[folder.name] = files[:per_genre]
    if not examples:
        raise TracklensError(f"{audio_dir}: no <genre>/<clip> audio files found")
    return examples


def analyze_file(path: str | Path, *, max_seconds: float = 30.0):
    """Decode a file (:func:`audio.load_audio`, at most ``max_seconds``) and analyse it once."""
    clip = audio.load_audio(path, sr=config.SAMPLE_RATE, max_duration=max_seconds)
    return features.analyze(clip.y, sr=clip.sr)


def write_audio_figures(audio_dir: str | Path, out_dir: str | Path, *, max_seconds: float = 30.0) -> list[Path]:
    """Gallery (first clip of each genre folder), overview, HPSS and chroma+spectrogram of the first clip.

    ``audio_dir`` holds ``<genre>/<clip>`` files (GTZAN layout); each clip is analysed once.
    Unreadable files are skipped for the next file of the same genre.
    """
    out_dir = Path(out_dir)
    analyses, names, errors = {}, {}, []
    for genre, files in genre_examples(audio_dir, per_genre=5).items():
        for path in files:  # an unreadable or too short file is skipped for the next one
            try:
                analyses[genre], names[genre] = analyze_file(path, max_seconds=max_seconds), path.name
                break
            except TracklensError as exc:  # audio.AudioError included
                errors.append(str(exc))
    if not analyses:
        raise TracklensError(f"{audio_dir}: none of the example clips could be analysed ({errors[0]})")
    first = next(iter(analyses))
    views = {
        "audio_genre_gallery.png": lambda: librosa_visuals.genre_gallery(analyses, titles=names),
        "audio_overview.png": lambda: librosa_visuals.overview(analyses[first], title=names[first]),
        "audio_hpss.png": lambda: librosa_visuals.plot_hpss(analyses[first], title=names[first]),
        "audio_chromagram_spectrogram.png":
            lambda: librosa_visuals.visualize_Chromagram_y_Spectrogram(analyses[first], title=names[first]),
    }
    return [save_figure(make(), out_dir / name) for name, make in views.items()]


# --- the figures command ----------------------------------------------------------------------


def write_main_figures(out_dir: str | Path | None = None, *, charts: str | Path | None = None,
                       audio_dir: str | Path | None = None, seed: int = config.DEFAULT_SEED) -> tuple[list[Path], str]:
    """The main figures of a chart CSV (cleaned by :func:`prepare.prepare_charts` first) and/or a
    ``<genre>/<clip>`` audio folder, as PNGs in ``out_dir`` (default ``config.FIGURES_DIR``, read
    at call time so ``--data-dir`` moves it); returns (paths, text summary)."""
    if charts is None and audio_dir is None:
        raise TracklensError("nothing to draw: give a chart CSV, an audio folder, or both")
    out_dir = Path(out_dir) if out_dir is not None else config.FIGURES_DIR
    written, summary = [], []
    if charts is not None:
        df, report = prepare.prepare_charts(charts)
        summary.append(f"{charts}: {report.rows_in} rows read, {len(df)} kept after cleaning (duplicates dropped)")
        paths, text = write_chart_figures(df, out_dir, seed=seed)
        written += paths
        summary.append(text)
    if audio_dir is not None:
        written += write_audio_figures(audio_dir, out_dir)
    return written, "\n".join(summary)


# --- the genre-model comparison report (tracklens evaluate) -------------------------------------


def model_figures(result: dict, *, class_names: Sequence[str]) -> dict:
    """The report's matplotlib figures of one scored model: ROC, confusion, reliability (calibrated
    and, with ``y_score_raw``, before temperature scaling) and, with a ``history``, training curves."""
    name, mpl = result["name"], "matplotlib"
    report = {"model": name, "class_names": list(class_names), "y_true": result["y_true"], "y_score": result["y_score"]}
    figures = {"roc": roc_curves(report, backend=mpl),
               "confusion": confusion_matrix(report, backend=mpl),
               "reliability": reliability_diagram(report, backend=mpl)}
    if result.get("y_score_raw") is not None:
        raw = {**report, "model": f"{name} before temperature scaling", "y_score": result["y_score_raw"]}
        figures["reliability_raw"] = reliability_diagram(raw, backend=mpl)
    if result.get("history"):
        figures["training"] = training_curves(result["history"], model=name, backend=mpl)
    return figures


def write_report(results: Sequence[dict], out_dir: str | Path, *, class_names: Sequence[str],
                 title: str = "tracklens genre models") -> Path:
    """Write ``comparison.csv`` (:func:`models.evaluate.comparison_table`), each model's figures
    (:func:`model_figures`, PNG under ``figures/``) and ``report.html`` into ``out_dir``.

    Each result as :func:`models.train.score_model` returns it (``name``, ``y_true``, ``y_score``,
    optionally ``y_score_raw``, ``history`` and costs). Returns the path of the HTML page.
    """
    out_dir = Path(out_dir)
    table = evaluate.comparison_table(results, class_names=class_names)
    write_csv(table, out_dir / "comparison.csv", float_format="%.4f")  # model names: formula cells escaped
    sections = []
    for r in results:
        images = []
        for kind, fig in model_figures(r, class_names=class_names).items():
            rel = f"figures/{r['name']}_{kind}.png"
            save_figure(fig, out_dir / rel, dpi=90)
            images.append(f'<img src="{html.escape(rel)}" alt="{html.escape(r["name"])} {kind}" height="300">')
        sections.append(f"<h2>{html.escape(r['name'])}</h2>\n<p>{''.join(images)}</p>")
    body = table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-", border=0)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
            "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Track-level scores on the validation fold; probabilities "
            f"after temperature scaling (ece_uncalibrated: before). {html.escape(evaluate.ECE_NOTE)}; the "
            "reliability diagrams use the same bins.</p>"
            f"{body}\n{''.join(sections)}</body></html>")
    atomic_write_bytes(out_dir / "report.html", page.encode())
    return out_dir / "report.html"


def evaluate_models(models_dir: str | Path, *, out_dir: str | Path, names: Sequence[str] | None = None
                    ) -> tuple[Path, pd.DataFrame]:
    """The comparison report of every trained model folder under ``models_dir`` (``tracklens evaluate``).

    Reads each card and its saved validation predictions (:func:`models.store.load_validation_results`,
    weights verified for Keras models). Returns (path of report.html, the comparison table).
    """
    results = store.load_validation_results(models_dir, names=names)
    genres = results[0]["genres"]
    return write_report(results, out_dir, class_names=genres), evaluate.comparison_table(results, class_names=genres)


# --- the check report (`tracklens check`, the check page's download) -------------------------------

CHECK_VALUE_SOURCES = {
    "bpm": ("BPM", "tracklens engine"), "key_name": ("", "tracklens engine"),
    "loudness": ("LUFS", "tracklens engine (integrated loudness, ITU-R BS.1770 over the channels)"),
    "true_peak_dbtp": ("dBTP", "tracklens engine (true peak, BS.1770 Annex 2)"),
    "loudness_range_lu": ("LU", "tracklens engine (loudness range, EBU Tech 3342)"), "duration_s": ("s", "tracklens engine"),
    "energy_est": ("0-1", "estimated from audio (650 FMA tracks with Echo Nest values)"),
    "acousticness_est": ("0-1", "estimated from audio (650 FMA tracks with Echo Nest values)"),
}
#: a column's name in the report where it differs: ``bpm`` is the card's tempo (the engine's
#: ``tempo`` column is the GTZAN table's, a genre-model input, never shown as the track's tempo)
CHECK_VALUE_NAMES = {"bpm": "tempo"}


#: How the neighbours' similarity is measured (catalogue.SoundIndex's label-free rule), in words.
SIMILARITY_CAPTION = ("Similarity: half the cosine of the EfficientAT sound embeddings centred on the catalogue's "
                      "mean, half the cosine of the genre blends; every value measured by the same engine.")
#: The same for neighbours found by sound alone (the check page's: its blend is another model's).
SOUND_ALONE_CAPTION = ("Similarity: the cosine of the EfficientAT sound embeddings centred on the catalogue's mean "
                       "(by sound alone); every value measured by the same engine.")


def similarity_caption(neighbours: pd.DataFrame, *, by_sound_alone: bool = False) -> str:
    """How the neighbours' similarity was computed: the rule ``catalogue.similar`` used (with the
    catalogue's genre labels when it has them, by sound alone for another model's blend), else by
    ``by_sound_alone`` (a table from elsewhere)."""
    from tracklens.catalogue import RULE_ATTR

    rule = neighbours.attrs.get(RULE_ATTR)
    if rule:
        return f"Similarity: {rule}; every value measured by the same engine."
    return SOUND_ALONE_CAPTION if by_sound_alone else SIMILARITY_CAPTION


def check_values(track, *, neighbours: pd.DataFrame | None = None, catalogue_name: str | None = None) -> dict:
    """Everything a check report shows, as JSON-able data: the values with their units and
    sources, the blend, its timeline, the fit verdict, chart-genre tags and the neighbours."""
    b = track.blend
    row = track.row()
    values = [{"name": CHECK_VALUE_NAMES.get(name, name), "value": row.get(name), "unit": unit, "source": source}
              for name, (unit, source) in CHECK_VALUE_SOURCES.items() if name in row]
    timeline = b.timeline[["start_s", "end_s", "top_genre"]].to_dict("records") if len(b.timeline) else []
    return {
        "file": track.path, "model": b.model, "values": values,
        "blend": {g: round(float(p), 4) for g, p in b.blend.items()}, "label": b.label, "top_genre": b.top_genre,
        "fit": b.fit, "fit_reason": b.fit_reason,
        "chart_genres": [[g, round(float(p), 4)] for g, p in b.chart_genres],
        "timeline": timeline, "notes": list(b.notes),
        "catalogue": catalogue_name,
        "neighbours": [] if neighbours is None else json.loads(neighbours.to_json(orient="records")),
    }


def _bars_svg(items: Sequence[tuple[str, float]], *, width: int = 360, bar: int = 16) -> str:
    """A horizontal bar chart (values 0..1) as inline SVG: no script, no external file."""
    rows = []
    for i, (name, value) in enumerate(items):
        y = i * (bar + 4)
        w = max(0.0, min(1.0, float(value))) * (width - 150)
        rows.append(f'<text x="0" y="{y + bar - 4}" font-size="12">{html.escape(str(name))}</text>'
                    f'<rect x="100" y="{y}" width="{w:.1f}" height="{bar}" fill="#4a78b5"/>'
                    f'<text x="{104 + w:.1f}" y="{y + bar - 4}" font-size="11">{float(value):.2f}</text>')
    height = len(items) * (bar + 4)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'viewBox="0 0 {width} {height}">{"".join(rows)}</svg>')


def _timeline_svg(timeline: pd.DataFrame, genres: Sequence[str], *, width: int = 640, height: int = 120) -> str:
    """The blend per window as stacked columns (one colour per genre) in inline SVG, with a legend."""
    if timeline is None or not len(timeline):
        return ""
    palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
    end = float(timeline["end_s"].max()) or 1.0
    parts = []
    for _, w in timeline.iterrows():
        x0, x1 = float(w["start_s"]) / end * width, float(w["end_s"]) / end * width
        y = 0.0
        for k, g in enumerate(genres):
            h = float(w[g]) * height
            parts.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" height="{h:.1f}" '
                         f'fill="{palette[k % len(palette)]}"><title>{html.escape(g)} {float(w[g]):.2f} '
                         f'({float(w["start_s"]):.0f}-{float(w["end_s"]):.0f} s)</title></rect>')
            y += h
    legend = " ".join(f'<span style="color:{palette[k % len(palette)]}">&#9632;</span> {html.escape(g)}'
                      for k, g in enumerate(genres))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {width} {height}" '
            f'preserveAspectRatio="none" style="max-width:{width}px;height:{height}px" role="img">{"".join(parts)}</svg>'
            f'<p class="small">{legend}; 0 to {end:.0f} s</p>')


def _figure_img(fig, alt: str) -> str:
    """A matplotlib figure as an inline PNG ``<img>`` (base64 data URI)."""
    import base64
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'


def check_report_html(track, *, neighbours: pd.DataFrame | None = None, catalogue_name: str | None = None,
                      figures: bool = True, by_sound_alone: bool = False) -> str:
    """A self-contained HTML page of one check: values (with sources), blend, timeline, fit,
    chart-genre tags, the catalogue neighbours and the engine's overview figure, all inline."""
    data = check_values(track, neighbours=neighbours, catalogue_name=catalogue_name)
    name = Path(track.path).name if track.path else "clip"
    esc = html.escape
    value_rows = "".join(
        f"<tr><td>{esc(v['name'])}</td><td>{esc(_fmt(v['value']))} {esc(v['unit'])}</td><td>{esc(v['source'])}</td></tr>"
        for v in data["values"])
    from tracklens.models import chart_genres

    chart = ", ".join(f"{esc(g)} {p:.2f}" for g, p in data["chart_genres"] if p >= chart_genres.SHOWN_FROM) or "none"
    sections = [
        f"<h1>tracklens check: {esc(name)}</h1>",
        f"<p>Genre blend <b>{esc(data['label'])}</b> (model {esc(data['model'])}); fit: "
        f"<b>{esc(str(data['fit'] or 'not judged'))}</b> {esc(data['fit_reason'] or '')}</p>",
        "<h2>Values</h2><table><tr><th>value</th><th></th><th>measured by</th></tr>" + value_rows + "</table>",
        "<h2>Genre blend</h2>" + _bars_svg(list(data["blend"].items())),
        f"<p class='small'>Chart-genre tags (AudioSet likelihoods, uncalibrated): {chart}</p>",
        "<h2>Timeline</h2>" + _timeline_svg(track.blend.timeline, track.blend.genres),
        "<p class='small'>" + esc("; ".join(data["notes"])) + "</p>",
    ]
    if neighbours is not None:
        empty = [c for c in ("artist", "title") if c in neighbours.columns
                 and not neighbours[c].astype(str).str.strip().any()]
        shown = neighbours.drop(columns=[c for c in ("path", *empty) if c in neighbours.columns])
        sections.append(f"<h2>Nearest by sound in {esc(catalogue_name or 'the catalogue')}</h2>"
                        f"<p class='small'>{esc(similarity_caption(neighbours, by_sound_alone=by_sound_alone))}</p>"
                        + shown.to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="-", border=0))
    if figures and track.analysis is not None:
        sections.append("<h2>Figures</h2>" + _figure_img(librosa_visuals.overview(track.analysis, title=name),
                                                         f"{name}: waveform, spectrograms, chroma, MFCC, beats"))
    return ("<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>tracklens check: {esc(name)}</title><style>body{{font-family:sans-serif;margin:1em;max-width:60em}}"
            "table{border-collapse:collapse;font-size:12px;display:block;overflow-x:auto}"
            "td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}.small{font-size:12px;color:#555}"
            "</style></head><body>" + "\n".join(sections) + "</body></html>")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return "" if value is None else str(value)


def check_values_table(data: dict) -> pd.DataFrame:
    """The values CSV of a check: name, value, unit, source; the values, then each genre's blend
    probability (``data`` as :func:`check_values` gives it)."""
    rows = [*data["values"], *({"name": f"blend_{g}", "value": p, "unit": "probability", "source": data["model"]}
                               for g, p in data["blend"].items())]
    return pd.DataFrame(rows, columns=["name", "value", "unit", "source"])


def check_report_texts(track, *, neighbours: pd.DataFrame | None = None, catalogue_name: str | None = None,
                       figures: bool = True, by_sound_alone: bool = False) -> dict[str, str]:
    """The three files of a check as text: ``html`` (:func:`check_report_html`), ``csv`` (the values,
    spreadsheet-safe: :func:`fileio.to_csv_text`) and ``json`` (everything: :func:`check_values`).
    `tracklens check` writes them; the check page's download buttons send them: the same numbers."""
    data = check_values(track, neighbours=neighbours, catalogue_name=catalogue_name)
    html_text = check_report_html(track, neighbours=neighbours, catalogue_name=catalogue_name, figures=figures,
                                  by_sound_alone=by_sound_alone)
    return {"html": html_text,
            "csv": to_csv_text(check_values_table(data)),
            "json": json.dumps(data, indent=1, default=str) + "\n"}


def _written_by_check(path: Path, kind: str) -> bool:
    """Whether ``path`` starts as the ``kind`` file of a check does (an earlier run's, to replace)."""
    if kind == "csv":
        return has_csv_header(path, ("name", "value", "unit", "source"))
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024).decode("utf-8", "replace")
    except OSError:
        return False
    if kind == "html":
        return "<title>tracklens check: " in head
    return head.startswith('{\n "file": ')


def check_report_paths(out: str | Path) -> dict[str, Path]:
    """The three files a check writes for ``out``: ``html`` (``out``), ``csv`` (``<stem>.values.csv``)
    and ``json`` (``<stem>.json``). Refuses, in one line, an existing one that no earlier check
    wrote (``song.json`` beside ``song.wav`` is the user's): only a rerun's files are replaced."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise TracklensError(f"--out {out}: the report is an .html file")
    paths = {"html": out, "csv": out.with_name(out.stem + ".values.csv"), "json": out.with_name(out.stem + ".json")}
    for kind, path in paths.items():
        if (path.exists() or path.is_symlink()) and not (path.is_file() and _written_by_check(path, kind)):
            raise TracklensError(f"--out {out}: {path} is already there and is not a tracklens check's "
                                 f"{kind.upper()} file; it is never replaced: choose another --out")
    return paths


def write_check_report(track, out: str | Path, *, neighbours: pd.DataFrame | None = None,
                       catalogue_name: str | None = None, figures: bool = True) -> dict[str, Path]:
    """Write ``out`` (the HTML page) and, beside it, ``<stem>.values.csv`` (name, value, unit,
    source) and ``<stem>.json`` (everything: :func:`check_values`), each atomically; an existing
    one is replaced only when an earlier check wrote it (:func:`check_report_paths`)."""
    paths = check_report_paths(out)
    texts = check_report_texts(track, neighbours=neighbours, catalogue_name=catalogue_name, figures=figures)
    for kind in ("csv", "json", "html"):
        atomic_write_bytes(paths[kind], texts[kind].encode())
    return paths
