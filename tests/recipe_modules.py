"""The recipes of the shipped models (``recipes/``, not installed), importable by the tests.

The folder goes on ``sys.path`` as it is for ``python recipes/heads.py`` (a recipe imports its
siblings by name). The descriptor recipe is ``descriptors_recipe`` here, beside the library's
``tracklens.models.descriptors``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
if str(RECIPES_DIR) not in sys.path:
    sys.path.insert(0, str(RECIPES_DIR))

heads = importlib.import_module("heads")
table_model = importlib.import_module("table_model")
descriptors_recipe = importlib.import_module("descriptors")
key_model = importlib.import_module("key_model")
