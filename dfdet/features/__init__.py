"""Feature recipes: a registry so other recipes can sit beside `seed154`.

A recipe turns decoded mono audio into one fixed-length float vector per utterance (a frame recipe, `frames = True`,
into a [T, D] matrix whose T varies). It owns its sample rate and
length policy, names every feature, and records group boundaries so explanations can aggregate per group.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dfdet.features.base import RECIPES, FeatureGroup, Recipe, register_recipe  # noqa: F401  (the public API)


def _load_builtin() -> None:
    from dfdet.features import lfcc, seed154  # noqa: F401  (register themselves)


def get_recipe(name: str, **overrides: Any) -> Recipe:
    from dfdet.errors import UsageError

    _load_builtin()
    if name not in RECIPES:
        raise UsageError(f"unknown feature recipe {name!r}", f"choose one of: {', '.join(sorted(RECIPES))}")
    return RECIPES[name](**overrides)


def recipe_names() -> list[str]:
    _load_builtin()
    return sorted(RECIPES)


def load_prepared(recipe: Recipe, path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Decode `path` and `recipe.prepare` it -> (prepared audio, duration of the whole file in seconds).

    A recipe with `head_samples` gets only the start of the file decoded (plus the resampler's margin): the same
    prepared audio as decoding everything, for a fraction of the decoding and resampling.
    """
    from dfdet.audio import decode

    head = getattr(recipe, "head_samples", None)
    y, sr, duration = decode(path, head, recipe.sample_rate) if head is not None else decode(path)
    return recipe.prepare(y, sr), duration


def recipe_hash(recipe: Recipe) -> str:
    from dfdet.provenance import config_hash

    return config_hash({"name": recipe.name, **recipe.config()})
