"""The package's import graph, read from the source with ``ast`` (nothing is imported).

Every module of the installed package counts: the root modules, ``acquire/``, ``models/``,
``dashboard/`` and ``dashboard/pages/`` (``tests/`` and ``bench/`` are not part of it). Imports inside functions count
too: a lazy import is still a dependency. The rules:

(a) No import cycle among project modules.
(b) Data flows one way, acquire -> prepare/features -> models -> views -> writers -> apps: a module
    imports only modules of its own or a lower rank in :data:`RANKS`; a module with no rank fails
    until it is given one. Inside ``acquire/``, ``models/`` and ``dashboard/`` the same rule holds
    between their own modules, by :data:`INNER_RANKS`.
(c) Views (explore, figure_style, model_figures, track_figures, librosa_visuals) take data and return
    figures: they import only :data:`VIEW_MAY_IMPORT` (no audio decoding, no file reading or writing,
    no model store).
(d) No module uses another project module's private name: neither ``from x import _y`` nor
    ``x._y``.

Violations are named one per string; the test asserts the set found equals
:data:`KNOWN_VIOLATIONS` exactly, so fixing one forces the list to shrink and a new one fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tracklens

PACKAGE_DIR = Path(tracklens.__file__).resolve().parent
PACKAGE_FOLDERS = ("", "acquire", "models", "dashboard", "dashboard/pages")

#: Lower ranks are further up the flow; a module may import its own rank or lower.
RANKS = {
    "config": 0, "errors": 0, "fileio": 0,
    "process": 0,  # process set-up (allocator tuning) that a batch worker and the dashboard server call
    "audio": 1,
    "acquire": 2, "demo_data": 2,  # acquire: every acquire.* module (one per source, see INNER_RANKS)
    "prepare": 3, "batch": 3,  # batch: the runner the engine and the embedding models plug into (knows neither)
    "loudness": 4,  # the BS.1770 meter the engine and the card use
    "preprocessing": 4, "features": 4, "numba_cache": 4,  # numba_cache: the compile lock; the caller hands it the kernels to warm
    "feature_kernels": 4,  # the engine's numba kernels behind their numpy/librosa fallbacks (features imports them)
    "key_estimation": 4,  # the learned key estimator the engine calls (recipes/key_model.py fits it)
    "pitch_posteriors": 4,  # the shipped basic-pitch network (note and onset probabilities) the key and tempo read
    "models": 5,  # every models.* module (models.kinds, the input kinds, is imported by registry, blend, train)
    "explore": 6, "librosa_visuals": 6,
    "figure_style": 6,  # labels, units, genre colours and the two-backend plumbing every figure module shares
    "model_figures": 6, "track_figures": 6,  # a genre model's report figures; one track's or playlist's figures
    "catalogue": 6,  # measured tracks and neighbours by sound: uses features + models; reports, dashboard, cli use it
    "reports": 7,
    "playlist": 7,  # Spotify playlist -> previews -> catalogue analysis -> one table (acquire + catalogue)
    "dashboard": 8,  # every dashboard.* module
    "cli": 9,
}
#: Ranks inside a package, for imports between two of its modules (the rule of :data:`RANKS`).
#: A module of the package with no rank here fails until it is given one.
INNER_RANKS = {
    "acquire": {
        "web": 0, "rows": 0,  # errors, retries, one HTTP GET; CSV rows and how a row names its song
        "spotify": 1, "deezer": 1, "charts": 1, "folder": 1,  # one module per source
        "previews": 2,  # Spotify's preview links, else Deezer's (by ISRC or artist + title)
    },
    "models": {
        # pure pieces: training tables, metrics, architectures, baselines, the AudioSet-tag verdicts
        "datasets": 0, "evaluate": 0, "builders": 0, "baselines": 0, "fit": 0, "chart_genres": 0, "oov": 0,
        "popularity": 0,
        "quiet_tensorflow": 0,  # the import hook that keeps TensorFlow's start-up lines off stderr
        "musicnn": 1, "efficientat": 1,  # the pretrained embedding front ends
        "store": 1,  # model directories and cards
        "registry": 2,  # every model by name (builders, baselines, the front ends' sample rates)
        "kinds": 2,  # one object per kind of model input (rate, window, card record, weight check, windows -> input)
        "musicnn_models": 2, "efficientat_models": 2,  # windows of audio -> an embedding model's input
        "train": 3, "blend": 3, "descriptors": 3,  # what users call: train, predict, descriptor estimates
        "output": 4,  # what predict writes (CSV/JSON/table, --sort-into), from blend's results
    },
    "dashboard": {
        "data": 0, "components": 0, "security": 0,  # read-only data layer, layout pieces, HTTP hardening
        "progress": 0, "catalogue_audio": 0,  # a check's stage; a catalogue track's audio by catalogue + track id
        "compare": 1, "track": 1,  # one upload's analysis and its comparison with the chart hits
        "uploads": 2,  # the upload route hands a stored file to track
        "pages": 3,  # every dashboard.pages.* module
        "server": 3,  # waitress with the request-body guards (the upload route's limits)
        "app": 4,
    },
}
VIEWS = ("explore", "figure_style", "model_figures", "track_figures", "librosa_visuals")
#: What a view may import: constants, errors, pure table helpers, the in-memory popularity model and
#: the pure metric functions (models.evaluate: no file I/O), so a reliability diagram shows the ECE
#: the cards and comparison table show.
VIEW_MAY_IMPORT = {"config", "errors", "preprocessing", "models.popularity", "models.evaluate",
                   "figure_style"}  # the labels and backend plumbing the figure modules share

# Violations accepted for now (none): a new one fails the test, and so does a listed one that is gone.
KNOWN_VIOLATIONS: set[str] = set()


def package_modules() -> dict[str, Path]:
    """Dotted module name (relative to tracklens; a package by its folder name) -> source file."""
    modules = {}
    for folder in PACKAGE_FOLDERS:
        for path in sorted((PACKAGE_DIR / folder).glob("*.py")):
            parts = [*Path(folder).parts, path.stem]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts:  # the root __init__ only holds __version__
                modules[".".join(parts)] = path
    return modules


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute dotted name a (possibly relative) ``from`` import refers to."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(["tracklens", *base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """(project modules ``module`` imports, the private names of them it uses as ``x._y``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets, private, aliases = set(), set(), {}

    def project(dotted: str) -> str | None:
        name = dotted.removeprefix("tracklens").lstrip(".")
        return name if dotted.split(".")[0] == "tracklens" and name in modules else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if target := project(alias.name):
                    targets.add(target)
                    if alias.asname:
                        aliases[alias.asname] = target
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            for alias in node.names:
                if submodule := project(f"{source}.{alias.name}"):
                    targets.add(submodule)
                    aliases[alias.asname or alias.name] = submodule
                elif target := project(source):
                    targets.add(target)
                    if alias.name.startswith("_"):
                        private.add(f"{target}.{alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            private.add(f"{aliases[node.value.id]}.{node.attr}")
    targets.discard(module)
    return targets, private


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> project modules it imports, module -> other modules' private names it uses)."""
    modules = package_modules()
    graph, private = {}, {}
    for name, path in modules.items():
        graph[name], private[name] = imports_of(name, path, set(modules))
    return graph, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def rank(module: str) -> int | None:
    return RANKS.get(module, RANKS.get(module.split(".")[0]))


def inner_rank(module: str) -> tuple[str, int | None] | None:
    """(package, rank inside it) of a module of a package in :data:`INNER_RANKS`; None for others
    and for the package's own ``__init__``."""
    package, _, rest = module.partition(".")
    if package not in INNER_RANKS or not rest:
        return None
    ranks = INNER_RANKS[package]
    return package, ranks.get(rest, ranks.get(rest.split(".")[0]))


def violations(graph: dict[str, set[str]], private: dict[str, set[str]]) -> set[str]:
    """Every broken rule, one readable string each (see the module docstring)."""
    found = {"cycle: " + " <-> ".join(component) for component in cycles(graph)}
    for module, targets in graph.items():
        if rank(module) is None:
            found.add(f"unranked: {module}")
            continue
        for target in targets:
            if rank(target) is None:
                continue  # reported once as unranked
            if rank(target) > rank(module):
                found.add(f"flow: {module} ({rank(module)}) -> {target} ({rank(target)})")
            if module in VIEWS and target not in VIEW_MAY_IMPORT:
                found.add(f"view: {module} -> {target}")
            inner, inner_target = inner_rank(module), inner_rank(target)
            if inner and inner_target and inner[0] == inner_target[0] and None not in (inner[1], inner_target[1]) \
                    and inner_target[1] > inner[1]:
                found.add(f"flow in {inner[0]}: {module} ({inner[1]}) -> {target} ({inner_target[1]})")
        if (inner := inner_rank(module)) and inner[1] is None:
            found.add(f"unranked in {inner[0]}: {module}")
        found.update(f"private: {module} -> {name}" for name in private[module])
    return found


def test_import_graph_follows_the_rules():
    graph, private = import_graph()
    assert {"explore", "models.train", "dashboard.pages.check", "cli"} <= set(graph)  # the scan sees the package
    found = violations(graph, private)
    new, fixed = sorted(found - KNOWN_VIOLATIONS), sorted(KNOWN_VIOLATIONS - found)
    assert not new and not fixed, f"new violations: {new}; fixed (remove from KNOWN_VIOLATIONS): {fixed}"


def test_checker_sees_lazy_imports_cycles_and_private_names(tmp_path):
    """The scanner itself: a function-level import, a relative import, a cycle and ``x._y``."""
    (tmp_path / "models").mkdir()
    (tmp_path / "explore.py").write_text("def f():\n    from tracklens.models import store\n    return store._x\n")
    (tmp_path / "models" / "store.py").write_text("from ..explore import f\nfrom .train import _fit\n")
    (tmp_path / "models" / "train.py").write_text("")
    modules = {"explore": tmp_path / "explore.py", "models.store": tmp_path / "models" / "store.py",
               "models.train": tmp_path / "models" / "train.py"}
    graph, private = {}, {}
    for name, path in modules.items():
        graph[name], private[name] = imports_of(name, path, set(modules))
    assert graph == {"explore": {"models.store"}, "models.store": {"explore", "models.train"}, "models.train": set()}
    assert violations(graph, private) == {
        "cycle: explore <-> models.store",
        "flow: models.store (5) -> explore (6)",
        "flow in models: models.store (1) -> models.train (3)",
        "view: explore -> models.store",
        "private: explore -> models.store._x",
        "private: models.store -> models.train._fit",
    }


def test_checker_sees_upward_imports_inside_models_and_dashboard(tmp_path):
    """A planted upward import inside models/ (store -> blend) and dashboard/ (data -> pages), and a
    models module with no inner rank; an import down (blend -> store) is fine."""
    sources = {"models.store": "from tracklens.models import blend\n", "models.blend": "from . import store\n",
               "models.newcomer": "", "dashboard.data": "from tracklens.dashboard.pages import charts\n",
               "dashboard.pages.charts": "from tracklens.dashboard import data\n"}
    graph, private = {}, {}
    for name, text in sources.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        graph[name], private[name] = imports_of(name, path, set(sources))
    assert graph["models.blend"] == {"models.store"}
    assert violations(graph, private) == {
        "cycle: models.blend <-> models.store",
        "cycle: dashboard.data <-> dashboard.pages.charts",
        "flow in models: models.store (1) -> models.blend (3)",
        "flow in dashboard: dashboard.data (0) -> dashboard.pages.charts (3)",
        "unranked in models: models.newcomer",
    }


@pytest.mark.parametrize("module", sorted(RANKS) + sorted(f"{p}.{m}" for p, ranks in INNER_RANKS.items() for m in ranks))
def test_every_ranked_module_exists(module):
    """A rank for a module that is gone is a stale rule."""
    modules = package_modules()
    assert module in modules or any(m.startswith(module + ".") for m in modules)
