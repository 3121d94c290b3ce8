"""Genre models on EfficientAT windows: the input kinds ``efficientat`` and ``fusion``.

The models (``efficientat_linear``, ``efficientat_mlp``, ``fusion_linear``) are rows of
:mod:`models.registry`; this module gives their inputs from audio, the same way for training
(``recipes/heads.py`` caches them per file) and prediction (:func:`models.blend.predict_blend`).

Inputs per 10 s window of audio decoded at 32 kHz (EfficientAT's windows, see
:func:`models.efficientat.cut_windows`; a clip shorter than one window is one window):

- ``efficientat``: mn04_as's pooled 384-d embedding (``eat_000``...) and its 527 AudioSet
  logits (``as:<class>``);
- ``fusion``: those, plus musicnn's 200-d embedding and 50 tags (``emb_*``, ``tag:*``, musicnn
  on the same audio resampled to 16 kHz) averaged over the 3 s patches whose centre lies in the
  window. A linear musicnn head on that mean gives the mean of its patch logits, i.e. the
  normalised geometric mean of the patch probabilities (the blend's own aggregation), so a
  linear layer on ``fusion`` rows can hold exactly a late fusion (weighted sum of
  log-probabilities) of a musicnn head and an EfficientAT head.

Every window also yields its AudioSet logits, which the fit rule (:mod:`models.fit`) and the
chart-genre tags (:mod:`models.chart_genres`) read.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from tracklens.errors import TracklensError
from tracklens.models import efficientat

KINDS = ("efficientat", "fusion")
WINDOW_S = efficientat.WINDOW_S
SAMPLE_RATE = efficientat.SAMPLE_RATE
EMBEDDING_COLUMNS = tuple(f"eat_{i:03d}" for i in range(efficientat.EMBEDDING_SIZE))
LOGIT_PREFIX = "as:"


def logit_columns() -> list[str]:
    """``as:<AudioSet class>`` for the 527 classes, in the model's output order."""
    return [LOGIT_PREFIX + name for name in efficientat.class_names()]


def musicnn_columns() -> list[str]:
    from tracklens.models import musicnn

    return [*musicnn.EMBEDDING_COLUMNS, *(f"tag:{t}" for t in musicnn.TAGS[musicnn.DEFAULT_MUSICNN])]


def input_columns(kind: str) -> list[str]:
    """Every column an input ``kind`` offers (a card may use a subset, e.g. the embedding only)."""
    if kind not in KINDS:
        raise TracklensError(f"unknown EfficientAT input kind {kind!r}; choose from {', '.join(KINDS)}")
    own = [*EMBEDDING_COLUMNS, *logit_columns()]
    return own + musicnn_columns() if kind == "fusion" else own


class Windows(NamedTuple):
    """One decoded block's windows: ``x`` (n, columns), ``spans`` [(start_s, end_s)] and the
    AudioSet ``logits`` (n, 527) the fit rule and chart-genre tags read."""

    x: np.ndarray
    spans: list[tuple[float, float]]
    logits: np.ndarray


def window_inputs(part, columns: Sequence[str]) -> Windows:
    """Raw model inputs of one decoded block (an :class:`audio.AudioClip`, any rate; 32 kHz
    avoids a resampling): one row per EfficientAT window, in the card's ``columns``."""
    out = efficientat.embed(clip=part)
    spans = [(float(s), float(min(s + WINDOW_S, part.duration_s))) for s in out["starts_s"]]
    values = dict(zip(EMBEDDING_COLUMNS, out["embedding"].T))
    values.update(zip(logit_columns(), out["logits"].T))
    wanted = set(columns)
    if wanted - values.keys():
        values.update(zip(musicnn_columns(), musicnn_window_means(part, spans).T))
    missing = [c for c in columns if c not in values]
    if missing:
        raise TracklensError(f"cannot compute model inputs {missing[:3]} from audio")
    x = np.stack([values[c] for c in columns], axis=1).astype(np.float32)
    return Windows(x, spans, out["logits"])


def musicnn_window_means(part, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """musicnn's embedding + tags (n_windows, 250), averaged over the 3 s patches of ``part``
    whose centre lies in each window (the nearest patch when none does: input shorter than one)."""
    from tracklens.models import musicnn

    out = musicnn.embed(clip=part)
    rows = np.concatenate([out["embedding"], out["taggram"]], axis=1)
    centres = np.asarray(out["starts_s"]) + musicnn.PATCH_S / 2
    means = []
    for start, end in spans:
        inside = (centres >= start) & (centres < max(end, start + 1e-6))
        if not inside.any():
            inside = np.abs(centres - (start + end) / 2) == np.abs(centres - (start + end) / 2).min()
        means.append(rows[inside].mean(axis=0))
    return np.asarray(means, dtype=np.float32)


def card_input(kind: str) -> dict:
    """What a card records about the embedding network(s) its inputs come from."""
    manifest = efficientat.read_manifest()[efficientat.DEFAULT_MODEL]
    record = {"embedding_model": efficientat.DEFAULT_MODEL,
              "embedding_weights_sha256": manifest["weights_sha256"],
              "embedding_weights": f"models/pretrained/{manifest['weights']} (shipped separately; verified by its "
                                   "SHA-256 at load)",
              "embedding_licence": "MIT, EfficientAT (fschmid56/EfficientAT; see LICENSE-EfficientAT.md)"}
    if kind == "fusion":
        from tracklens.models import musicnn_models

        record["musicnn"] = musicnn_models.card_input()
    return record


def check_weights(card: dict, model_dir) -> None:
    """Refuse a head trained on other embedding weights than the shipped ones (its inputs would differ)."""
    from tracklens.models import store

    shipped = efficientat.read_manifest().get(card["input"].get("embedding_model", ""), {}).get("weights_sha256")
    recorded = card["input"].get("embedding_weights_sha256")
    if shipped is None or shipped != recorded:
        raise store.ModelCardError(f"{model_dir}: trained on EfficientAT weights {str(recorded)[:12]}..., but "
                                   f"models/pretrained/ has {str(shipped)[:12]}...; retrain it (`make default-model`)")
