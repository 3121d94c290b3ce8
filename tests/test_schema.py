"""One schema per table: the Spotify feature columns are listed once (config), genres are parsed
once (prepare.split_genres), and every other module derives its columns from those.

The scans read the package's source with ``ast`` (nothing is imported), so a second literal list
of the columns, or a second genre parser, fails here wherever it comes back.
"""

from __future__ import annotations

import ast

import pandas as pd

from test_architecture import package_modules
from tracklens import config, features, figure_style, prepare, preprocessing
from tracklens.models import popularity

#: The one place the feature names may be spelled out as a list.
SCHEMA_HOME = "config"
#: Lists that are a choice, not the schema (module -> the exact names it may spell out, and why).
CHOSEN_SUBSETS = {
    # the feature engine's computed Spotify columns in its CSV's column order (asserted against config)
    ("features", frozenset({"tempo", "loudness", "key", "mode", "duration_ms"})),
    # the few chart values a neighbour search shows beside each result
    ("catalogue", frozenset({"tempo", "energy", "acousticness", "danceability", "valence", "loudness"})),
    # the check page's neighbours-by-sound table: its column headings, not a schema
    ("dashboard.pages.check", frozenset({"track", "genre", "similarity", "tempo", "key", "loudness", "play"})),
}


def _string_sequences(tree: ast.AST):
    """Every tuple/list/set literal of the tree, as the strings it holds (line, set of strings)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            strings = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            yield node.lineno, strings


def literal_feature_lists(modules: dict) -> list[str]:
    """``module:line`` of each literal sequence naming 3 or more of Spotify's feature columns."""
    names = set(config.SPOTIFY_AUDIO_FEATURES)
    found = []
    for module, path in modules.items():
        if module == SCHEMA_HOME:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{module}:{line}" for line, strings in _string_sequences(tree)
                  if len(strings & names) >= 3 and (module, frozenset(strings)) not in CHOSEN_SUBSETS]
    return found


def test_spotify_feature_columns_are_listed_once():
    assert literal_feature_lists(package_modules()) == []


def test_the_scan_finds_a_second_list(tmp_path):
    planted = tmp_path / "charts.py"
    planted.write_text('COLUMNS = ("danceability", "energy", "tempo")\nOK = ("tempo", "key")\n')
    assert literal_feature_lists({"charts": planted}) == ["charts:1"]


def test_every_feature_list_is_the_configs():
    """Each module's list is config's, in the order its tables, CSVs and figures have always used."""
    from tracklens.acquire.spotify import AUDIO_FEATURE_COLUMNS
    spotify = config.SPOTIFY_AUDIO_FEATURES
    assert config.CHART_COLUMNS[6:-1] == spotify
    assert AUDIO_FEATURE_COLUMNS == spotify
    assert popularity.AUDIO_FEATURES == ("duration_ms", "explicit", *spotify)
    assert figure_style.CONTINUOUS_FEATURES == (*config.SPOTIFY_CONTINUOUS_FEATURES, "duration_ms")
    assert features.SPOTIFY_NOT_COMPUTED == ("danceability", "energy", "speechiness", "acousticness",
                                             "instrumentalness", "liveness", "valence")
    assert preprocessing.SCALED_COLUMNS == ("duration_min", "year", *config.SPOTIFY_CONTINUOUS_FEATURES)
    assert set(prepare.VALID_RANGES) <= set(config.CHART_COLUMNS)


def test_the_charts_page_uses_the_configs_columns(pages):
    charts = pages["charts"]
    assert charts.FEATURE_COLUMNS == (*config.CHART_CONTINUOUS_FEATURES, *config.SPOTIFY_CODED_FEATURES)


def test_the_charts_page_parses_genres_with_the_one_parser(pages):
    """Its genre options and filter are prepare.split_genres' genres, "set()" and blanks included."""
    charts = pages["charts"]
    df = pd.DataFrame({"genre": ["pop, rock", "set()", "", "  pop ", None, "Dance/Electronic"]})
    expected = df["genre"].map(prepare.split_genres).explode().dropna().value_counts().index.tolist()
    assert charts.genre_options(df) == expected == ["pop", "rock", "Dance/Electronic"]
    assert list(charts.filter_charts(df, genres=["pop"]).index) == [0, 3]


def test_only_prepare_knows_the_no_genre_marker():
    """A second genre parser gives itself away by spelling Top Hits' "no genre" marker ``set()``."""
    spelled = [module for module, path in package_modules().items()
               if module not in ("prepare", "demo_data")  # the parser; the demo table writes the marker
               and any(isinstance(n, ast.Constant) and n.value == "set()"
                       for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))]
    assert spelled == []


def test_only_musicnn_turns_its_frames_into_seconds():
    """musicnn's patch length is ``musicnn.PATCH_S``: nobody else recomputes it from its hop."""
    uses_hop = [module for module, path in package_modules().items() if module != "models.musicnn"
                and any(isinstance(n, ast.Attribute) and n.attr == "MUSICNN_HOP"
                        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))]
    assert uses_hop == []
