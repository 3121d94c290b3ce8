"""Every kind of model input, one object each: the one place that knows what a kind means.

A genre model's card names its input kind (``card["input"]["kind"]``); an :class:`InputKind`
says everything the rest of the package asks about it: where its training rows come from, the
rate its audio is decoded at, its window length, what the card records about the network behind
it, how a decoded block becomes model input, how short input is handled, and which pretrained
weights must match at load. Callers look a kind up (:func:`get`) instead of testing its name, so
a new embedding model is one entry in :data:`KINDS` (plus its own network module).

Importing this module is cheap (no numpy, no Keras): the networks' modules load when a kind's
functions are called, so :mod:`models.registry` (and the CLI help) can use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tracklens import config
from tracklens.errors import TracklensError

#: A block's model inputs: ``(x (n, ...), spans [(start_s, end_s)])`` or with the AudioSet logits
#: ``(x, spans, logits (n, 527))`` when the kind's own pass computed them.
WindowFunction = Callable[..., tuple]


def _feature_rate() -> int:
    return config.SAMPLE_RATE


def _feature_window_s() -> float:
    return config.SEGMENT_SECONDS


def _musicnn_rate() -> int:
    from tracklens.models.musicnn import MUSICNN_SR  # numpy-heavy module: only when asked

    return MUSICNN_SR


def _efficientat_rate() -> int:
    from tracklens.models.efficientat import SAMPLE_RATE

    return SAMPLE_RATE


def _efficientat_window_s() -> float:
    from tracklens.models.efficientat import WINDOW_S

    return WINDOW_S


def loop_to(y, n: int):
    """``y`` repeated (and cut) to ``n`` samples when shorter: a short clip looped to one analysis window."""
    import numpy as np

    return np.tile(y, math.ceil(n / len(y)))[:n] if len(y) < n else y


def _feature_windows(part, card_input: dict, *, short_input: str, summary: bool) -> tuple:
    """The feature engine's rows of one block: one per ``window_s`` segment (a short block is
    looped to one window, or for ``summary`` with ``short_input="as_is"`` analysed as it is)."""
    from dataclasses import replace

    import numpy as np

    from tracklens.features import featurize_clip

    seg = float(card_input["window_s"])
    if len(part.y) < int(round(seg * part.sr)):
        if short_input == "as_is" and summary:
            cf = featurize_clip(part, segment_seconds=None)
            return (np.array([[cf.track[c] for c in card_input["columns"]]], np.float32), [(0.0, part.duration_s)])
        part = replace(part, y=loop_to(part.y, int(round(seg * part.sr))))
    cf = featurize_clip(part, segment_seconds=seg)
    spans = [(s["start_s"], s["end_s"]) for s in cf.segments]
    if summary:
        columns = card_input["columns"]
        return np.array([[s[c] for c in columns] for s in cf.segments], np.float32), spans
    return cf.frames[card_input["kind"]], spans


def _summary_windows(part, card_input: dict, *, short_input: str) -> tuple:
    return _feature_windows(part, card_input, short_input=short_input, summary=True)


def _frame_windows(part, card_input: dict, *, short_input: str) -> tuple:
    return _feature_windows(part, card_input, short_input=short_input, summary=False)


def _musicnn_windows(part, card_input: dict, *, short_input: str) -> tuple:
    """musicnn's 3 s patches (it repeat-pads short input itself)."""
    from tracklens.models import musicnn_models

    return tuple(musicnn_models.window_inputs(part, card_input["columns"]))


def _efficientat_windows(part, card_input: dict, *, short_input: str) -> tuple:
    """EfficientAT's 10 s windows (any length is one or more windows), with the AudioSet logits."""
    from tracklens.models import efficientat_models

    return tuple(efficientat_models.window_inputs(part, card_input["columns"]))


def _no_record() -> dict:
    return {}


def _musicnn_record() -> dict:
    from tracklens.models import musicnn_models

    return musicnn_models.card_input()


def _efficientat_record(kind: str) -> Callable[[], dict]:
    def record() -> dict:
        from tracklens.models import efficientat_models

        return efficientat_models.card_input(kind)

    return record


def check_musicnn_weights(card: dict, model_dir: Path) -> None:
    """Refuse a head trained on other musicnn weights than the shipped ones (its inputs would differ).

    The musicnn fields are the card's ``input`` (musicnn kinds) or ``input.musicnn`` (fusion)."""
    from tracklens.models import musicnn, store

    record = card["input"].get("musicnn", card["input"])
    name = record.get("embedding_model", musicnn.DEFAULT_MUSICNN)
    shipped = musicnn.read_manifest().get(name, {}).get("weights_sha256")
    if shipped is None or shipped != record.get("embedding_weights_sha256"):
        raise store.ModelCardError(f"{model_dir}: trained on {name} weights {str(record.get('embedding_weights_sha256'))[:12]}..., "
                                   f"but models/pretrained/ has {str(shipped)[:12]}...; retrain it (e.g. `make default-model`)")


def check_efficientat_weights(card: dict, model_dir: Path) -> None:
    from tracklens.models import efficientat_models

    efficientat_models.check_weights(card, model_dir)


_CHECKS = {"musicnn": check_musicnn_weights, "efficientat": check_efficientat_weights}


@dataclass(frozen=True)
class InputKind:
    """One kind of model input.

    name : what cards and :data:`models.registry.MODELS` call it
    source : where ``tracklens train`` reads its rows: "summary" (the 57 columns of a feature
        table), "frames" (``features.load_frames``), "embeddings" (the musicnn table beside a
        features.parquet) or "efficientat_windows" (cached and trained by ``recipes/heads.py``)
    window_inputs : ``f(part, card_input, *, short_input) -> (x, spans[, logits])``: one decoded
        block (an AudioClip at :attr:`sample_rate`) as the model's raw inputs, one row per window
    networks : the pretrained networks a block passes through ("musicnn", "efficientat"); each
        one's weights must be the ones the head was trained on (:meth:`check_weights`)
    short_input_note : how input shorter than a window is handled, for the blend's status line
        (None: as ``predict_blend``'s ``short_input`` says)
    reads_table : its inputs are columns of a feature table (``predict_table``; shapes checked strictly)
    """

    name: str
    source: str
    window_inputs: WindowFunction
    rate: Callable[[], int] = _feature_rate
    window: Callable[[], float] = _feature_window_s
    embedding_record: Callable[[], dict] = _no_record
    networks: tuple[str, ...] = ()
    short_input_note: str | None = None
    reads_table: bool = False
    weight_checks: tuple[Callable[[dict, Path], None], ...] | None = None  # None: the networks' checks

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) its audio is decoded at: the feature engine's, or the embedding network's."""
        return int(self.rate())

    @property
    def window_s(self) -> float:
        """Length (s) of the windows a model of this kind classifies (a card may record its own)."""
        return float(self.window())

    @property
    def needs_musicnn(self) -> bool:
        return "musicnn" in self.networks

    @property
    def needs_efficientat(self) -> bool:
        return "efficientat" in self.networks

    def check_weights(self, card: dict, model_dir: Path) -> None:
        """ModelCardError when a network's shipped weights differ from those the card was trained on."""
        checks = self.weight_checks if self.weight_checks is not None else tuple(_CHECKS[n] for n in self.networks)
        for check in checks:
            check(card, Path(model_dir))

    def card_input(self, columns, shape, window_s: float, **extra) -> dict:
        """A card's ``input``: kind, columns, shape, window, rate, then ``extra`` (the network's record)."""
        return {"kind": self.name, "columns": columns, "shape": shape, "window_s": window_s,
                "sample_rate": self.sample_rate, **extra}


_musicnn = dict(source="embeddings", window_inputs=_musicnn_windows, rate=_musicnn_rate,
                embedding_record=_musicnn_record, networks=("musicnn",), short_input_note="repeat-padded")


def _efficientat_kind(name: str, networks: tuple[str, ...]) -> InputKind:
    return InputKind(name, "efficientat_windows", _efficientat_windows, rate=_efficientat_rate,
                     window=_efficientat_window_s, embedding_record=_efficientat_record(name), networks=networks,
                     short_input_note="one shorter window")


#: Every input kind by name. A new kind is registered here (tests plant one to show the blend needs no edit).
KINDS: dict[str, InputKind] = {kind.name: kind for kind in (
    InputKind("summary", "summary", _summary_windows, reads_table=True),
    InputKind("log_mel", "frames", _frame_windows),
    InputKind("sequence", "frames", _frame_windows),
    InputKind("musicnn", **_musicnn),
    InputKind("musicnn_fusion", **_musicnn),  # musicnn patches + the 57 summary features of the same 3 s
    _efficientat_kind("efficientat", ("efficientat",)),
    _efficientat_kind("fusion", ("musicnn", "efficientat")),  # EfficientAT windows + musicnn's patch means
)}


def get(name: str) -> InputKind:
    """The :class:`InputKind` called ``name``; a one-line TracklensError naming the choices for an unknown one."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise TracklensError(f"unknown model input kind {name!r}; choose from {', '.join(KINDS)}") from None
