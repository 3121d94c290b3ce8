"""The check page's "your track" card (dashboard/compare.py your_track, pages/check.py your_track_card):
tempo with its alternative, key with confidence and runner-up, loudness with true peak, range and
the streaming services' normalisation, each saying how it was measured and how well (issue 19)."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dashboard_helpers import _by_id, _ids, _text

DOCS = Path(__file__).resolve().parents[1] / "docs" / "your-track-numbers.md"


def _comparable(**changes) -> dict:
    from tracklens import loudness

    values = {"tempo": 120.0, "tempo_alt": 60.0, "loudness": -9.9, "true_peak_dbtp": -0.3,
              "loudness_range_lu": 6.24, "key": 9, "mode": 0, "key_confidence": 0.62,
              "key_runner_up": "C major", "duration_ms": 200_000}
    values.update(changes)
    values["normalisation"] = loudness.normalisation(values["loudness"], values["true_peak_dbtp"])
    return values


def _rows(charts, **changes) -> dict:
    from tracklens.dashboard import compare

    upload = compare.Upload(comparable=_comparable(**changes), duration_s=200.0)
    return {row.feature: row for row in compare.your_track(upload, charts)}


@pytest.fixture()
def charts(app):
    from tracklens.dashboard import data

    return data.charts()


def test_tempo_shows_its_alternative_only_when_the_evidence_is_close(charts):
    assert _rows(charts)["tempo"].value == "120 BPM (or 60)"
    assert _rows(charts, tempo_alt=float("nan"))["tempo"].value == "120 BPM"
    tempo = _rows(charts)["tempo"]
    assert tempo.percentile is not None  # Spotify's tempo is the same quantity: ranked
    assert "spectral flux" in tempo.note and "basic-pitch" in tempo.note and "beat tracking" not in tempo.note
    assert "Acc1 0.75" in tempo.note and "Acc2 0.94" in tempo.note and "validation fold" in tempo.note


def test_key_shows_its_confidence_and_runner_up(charts):
    key = _rows(charts)["key"]
    assert key.value == "A minor, confidence 0.62; other candidate C major"
    assert key.percentile is None and "not ranked" in key.note
    assert "Albrecht–Shanahan/Krumhansl profile" in key.note and "MIREX score 0.69" in key.note
    # the key named is the one of highest expected MIREX score: the other key shown can be the more
    # probable one (C major 0.60, G major 0.31 names G), so the card never calls it the runner-up
    assert "runner-up" not in key.value and "can be more probable than the key named" in key.note
    none = _rows(charts, key=-1, mode=-1, key_confidence=float("nan"), key_runner_up=None)["key"]
    assert none.value == "no key detected"


def test_loudness_true_peak_range_and_streaming_are_shown_never_ranked(charts):
    """Like with like: none of the loudness values is ranked, even against chart columns that carry
    the same names (Spotify's dB loudness is not LUFS; the hits have no true peak or range)."""
    with_columns = charts.assign(true_peak_dbtp=-1.0, loudness_range_lu=5.0, normalisation=0.0)
    rows = _rows(with_columns)
    assert rows["loudness"].value == "-9.9 LUFS" and "ITU-R BS.1770-4 over the channels" in rows["loudness"].note
    assert rows["true_peak_dbtp"].value == "-0.3 dBTP" and "oversampled" in rows["true_peak_dbtp"].note
    assert rows["loudness_range_lu"].value == "6.2 LU" and "EBU Tech 3342" in rows["loudness_range_lu"].note
    streaming = rows["normalisation"]
    assert streaming.items[0] == "Spotify plays it at \u221214 LUFS: turned down 4.1 dB"
    assert [s.split(" plays")[0] for s in streaming.items] == ["Spotify", "YouTube", "Apple Music"]
    assert streaming.value == "; ".join(streaming.items)
    for feature in ("loudness", "true_peak_dbtp", "loudness_range_lu", "normalisation"):
        assert rows[feature].percentile is None, feature
    order = list(rows)
    assert order.index("loudness") + 1 == order.index("true_peak_dbtp")  # the loudness values together


def test_an_older_analysis_without_the_new_values_still_gets_a_card(charts):
    """A report cached before FEATURE_VERSION 3 (tempo, loudness, key, mode only)."""
    from tracklens.dashboard import compare

    upload = compare.Upload(comparable={"tempo": 97.0, "loudness": -12.0, "key": 0, "mode": 1, "duration_ms": 30_000},
                            duration_s=30.0)
    rows = {row.feature: row for row in compare.your_track(upload, charts)}
    assert rows["tempo"].value == "97 BPM" and rows["key"].value == "C major"
    assert {"true_peak_dbtp", "loudness_range_lu", "normalisation"} & set(rows) == set()


def test_the_card_quotes_the_documented_accuracy():
    """The numbers the card quotes are the valid-fold ones in docs/your-track-numbers.md."""
    from tracklens.dashboard import compare

    def two(number: str) -> str:  # the docs' 3 decimals to 2, half up as written (0.475 -> 0.48)
        return str(Decimal(number).quantize(Decimal("0.01"), ROUND_HALF_UP))

    text = DOCS.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| **tracklens**"))
    acc1, acc2, exact, mirex = re.findall(r"\*\*(0\.\d+)\*\*", row)
    assert f"Acc1 {two(acc1)}" in compare.TEMPO_ACCURACY and f"Acc2 {two(acc2)}" in compare.TEMPO_ACCURACY
    assert f"{float(acc1):.0%}" in compare.TEMPO_ACCURACY and f"{float(acc2):.0%}" in compare.TEMPO_ACCURACY
    assert f"MIREX score {two(mirex)}" in compare.KEY_ACCURACY and f"exact {two(exact)}" in compare.KEY_ACCURACY
    worst = float(re.search(r"Worst \|ΔI\| ([0-9.]+) LU", text).group(1))
    assert worst <= 0.01 and "within 0.01 LU" in compare.LOUDNESS_ACCURACY
    assert compare.ACCURACY_DOC in compare.TEMPO_ACCURACY and compare.ACCURACY_DOC in compare.KEY_ACCURACY
    assert (DOCS.parents[1] / compare.ACCURACY_DOC).is_file()


def _card(pages, charts, *, not_music=False):
    from tracklens.dashboard import compare

    report = SimpleNamespace(upload=compare.Upload(comparable=_comparable(), duration_s=200.0),
                             not_music=not_music, filename="master.wav")
    peers = compare.Peers(charts, (), f"all {len(charts)} chart hits")
    return pages["check"].your_track_card(report, peers)


def test_the_page_renders_each_streaming_sentence_on_its_own_line(pages, charts):
    card = _card(pages, charts)
    assert _text(_by_id(card, "check-card-tempo").children[1]) == "120 BPM (or 60)"
    assert _text(_by_id(card, "check-card-key").children[1]) == "A minor, confidence 0.62; other candidate C major"
    value = _by_id(card, "check-card-normalisation").children[1].children
    spans = [c for c in value if type(c).__name__ == "Span"]
    assert [s.children for s in spans] == [n["text"] for n in _comparable()["normalisation"]]
    assert sum(type(c).__name__ == "Br" for c in value) == len(spans) - 1
    assert "ITU-R BS.1770-4 over the channels" in _text(_by_id(card, "check-card-loudness"))


def test_a_sound_that_is_not_music_keeps_its_loudness_values_only(pages, charts):
    ids = _ids(_card(pages, charts, not_music=True))
    assert {"check-card-loudness", "check-card-true_peak_dbtp", "check-card-loudness_range_lu",
            "check-card-normalisation", "check-card-duration_ms"} <= ids
    assert {"check-card-tempo", "check-card-key"} & ids == set()


def test_the_analysis_gives_every_value_the_card_shows(app, tmp_path):
    """A generated stereo clip through the page's analysis: every new value reaches the card."""
    import soundfile as sf

    from tracklens import audio, config, features
    from tracklens.dashboard import compare, data, track

    sr, seconds = 44_100, 8.0
    t = np.arange(int(sr * seconds)) / sr
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95).astype(float)  # a click at 120 BPM
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.5 * beat * np.sin(2 * np.pi * 1000 * t)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.5 * beat * np.sin(2 * np.pi * 1000 * t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1).astype(np.float32), sr, subtype="PCM_16")
    clip = audio.load_audio(path, sr=config.SAMPLE_RATE)
    analysis = track.analyse(clip, meter=features.channel_meter(path, name=path.name, max_duration=60))
    upload = compare.Upload(comparable=analysis.comparable, duration_s=clip.source_duration_s)
    rows = {row.feature: row for row in compare.your_track(upload, data.charts())}
    assert {"tempo", "key", "loudness", "true_peak_dbtp", "loudness_range_lu", "normalisation"} <= set(rows)
    assert rows["true_peak_dbtp"].value.endswith(" dBTP") and rows["loudness_range_lu"].value.endswith(" LU")
    assert ", confidence " in rows["key"].value and "; other candidate " in rows["key"].value
    assert len(rows["normalisation"].items) == 3
