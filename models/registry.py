"""Every genre model by name: what builds it and what it reads. The one list of model names.

A model name stands for a :class:`ModelSpec`: its family (a Keras network from
:mod:`models.builders` or a scikit-learn pipeline from :mod:`models.baselines`), the function that
makes it, and its input kind (:mod:`models.kinds`: where its rows come from, the rate its audio
is decoded at, which :mod:`models.train` records in every card).

Importing this module is cheap (no numpy, no Keras), so the CLI builds its help text from it.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from tracklens.errors import TracklensError
from tracklens.models import kinds


class ModelSpec(NamedTuple):
    """What a model name stands for.

    family : "keras" (``models.builders.<factory>(input_shape, n_classes, ...)``) or "baseline"
        (``models.baselines.<factory>(random_state=...)``, scored but not saved as a predictor)
    factory : the function's name in that module
    input_kind : a key of :data:`models.kinds.KINDS`
    """

    family: Literal["keras", "baseline"]
    factory: str
    input_kind: str


MODELS: dict[str, ModelSpec] = {
    "cnn": ModelSpec("keras", "build_cnn", "log_mel"),
    "lstm": ModelSpec("keras", "build_lstm", "sequence"),
    "lstm_cnn": ModelSpec("keras", "build_lstm_cnn", "sequence"),
    "linear": ModelSpec("keras", "build_linear", "summary"),
    "mlp": ModelSpec("keras", "build_mlp", "summary"),
    "logreg": ModelSpec("baseline", "logistic_regression", "summary"),
    "knn": ModelSpec("baseline", "knn", "summary"),
    "random_forest": ModelSpec("baseline", "random_forest", "summary"),
    "svm": ModelSpec("baseline", "svm_rbf", "summary"),
    "gradient_boosting": ModelSpec("baseline", "gradient_boosting", "summary"),
    "musicnn_linear": ModelSpec("keras", "build_linear", "musicnn"),
    "musicnn_mlp": ModelSpec("keras", "build_mlp", "musicnn"),
    "musicnn_fusion": ModelSpec("keras", "build_mlp", "musicnn_fusion"),
    "efficientat_linear": ModelSpec("keras", "build_linear", "efficientat"),
    "efficientat_mlp": ModelSpec("keras", "build_mlp", "efficientat"),
    "fusion_linear": ModelSpec("keras", "build_linear", "fusion"),
}

#: Input kind -> where its rows come from (:attr:`models.kinds.InputKind.source`).
INPUT_SOURCES = {name: kind.source for name, kind in kinds.KINDS.items()}

#: Sources ``tracklens train`` cannot read yet, and what trains their models instead.
TRAINED_ELSEWHERE = {
    "efficientat_windows": "python recipes/heads.py (`make default-model`), on the shared GTZAN audio",
}

#: How the CLI help names each (family, input source) group of models.
_GROUP_HELP = {
    ("keras", "frames"): "Keras on frame matrices (need the frames beside a features.parquet)",
    ("keras", "summary"): "Keras on the 57 summary features",
    ("baseline", "summary"): "scikit-learn baselines on them (scored, not saved as predictors)",
    ("keras", "embeddings"): "Keras on musicnn embeddings (run `tracklens features ... --embeddings musicnn` first)",
    ("keras", "efficientat_windows"): ("Keras on EfficientAT windows (alone or fused with musicnn; trained by "
                                       "`make default-model`, not by this command)"),
}

#: Names that stand for several models. The embedding models are left out of "all": they need a
#: table the feature engine does not write by default (or another trainer).
ALIASES = {
    "all": tuple(n for n, s in MODELS.items() if INPUT_SOURCES[s.input_kind] in ("summary", "frames")),
    "summary": tuple(n for n, s in MODELS.items() if s.input_kind == "summary"),
}


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a model name; TracklensError naming the choices for an unknown one."""
    try:
        return MODELS[name]
    except KeyError:
        raise TracklensError(f"unknown model {name!r}; choose from {', '.join(MODELS)} "
                             f"(or {', '.join(repr(a) for a in ALIASES)})") from None


def parse_names(text: str) -> list[str]:
    """``"linear, summary,cnn"`` -> model names ``tracklens train`` can train, each once, in the
    order given (aliases expanded); TracklensError naming the trainer of a model it cannot."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        for name in ALIASES.get(part, (part,)):
            elsewhere = TRAINED_ELSEWHERE.get(INPUT_SOURCES[spec(name).input_kind])
            if elsewhere:
                raise TracklensError(f"{name} is not trained by `tracklens train`; it is trained by {elsewhere}")
            if name not in names:
                names.append(name)
    if not names:
        raise TracklensError("no model named; give at least one model name")
    return names


def factory(name: str):
    """The function that makes a model: a Keras builder (imports Keras) or a baseline pipeline factory."""
    model = spec(name)
    if model.family == "keras":
        from tracklens.models import builders as module
    else:
        from tracklens.models import baselines as module
    return getattr(module, model.factory)


def architecture(name: str) -> str:
    """What a card records as ``architecture``: the Keras builder (``mlp`` for musicnn_mlp) or the baseline."""
    model = spec(name)
    return model.factory.removeprefix("build_") if model.family == "keras" else name


def sample_rate(input_kind: str) -> int:
    """Rate (Hz) the audio behind an input kind is decoded at: the feature engine's, or the embedding network's."""
    return kinds.get(input_kind).sample_rate


def names_help() -> str:
    """The ``--models`` help text: the model names grouped by family and input source, then the aliases."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name, model in MODELS.items():
        groups.setdefault((model.family, INPUT_SOURCES[model.input_kind]), []).append(name)
    lines = [f"{_GROUP_HELP[group]}: {', '.join(names)}." for group, names in groups.items()]
    aliases = "; ".join(f"'{a}' = {', '.join(names)}" for a, names in ALIASES.items())
    return f"Comma-separated model names. {' '.join(lines)} Aliases: {aliases}."
