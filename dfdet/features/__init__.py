"""Feature recipes: a registry so other recipes can sit beside `seed154`.

A recipe turns decoded mono audio into one fixed-length float vector per utterance (a frame recipe, `frames = True`,
into a [T, D] matrix whose T varies). It owns its sample rate and
length policy, names every feature, and records group boundaries so explanations can aggregate per group.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    start: int
    stop: int  # exclusive


class Recipe(Protocol):
    """A feature recipe. It may also set `head_samples` (an int): it reads only that many samples at `sample_rate`
    from the start of a clip, so files are decoded only that far (`load_prepared`)."""

    name: str
    sample_rate: int
    frames: bool  # True: extract() returns a [T, D] matrix per utterance (T varies), not a [D] vector

    def config(self) -> dict[str, Any]:
        """Full JSON-able configuration; its hash identifies the features a model expects."""

    @property
    def feature_names(self) -> list[str]: ...

    @property
    def groups(self) -> list[FeatureGroup]: ...

    def prepare(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Mono float audio at any rate -> the recipe's rate and length policy (float64)."""

    def extract(self, y: np.ndarray) -> np.ndarray:
        """Prepared audio -> float64 vector of len(feature_names)."""


RECIPES: dict[str, Callable[..., Recipe]] = {}


def register_recipe(name: str) -> Callable[[Callable[..., Recipe]], Callable[..., Recipe]]:
    def deco(factory: Callable[..., Recipe]) -> Callable[..., Recipe]:
        RECIPES[name] = factory
        return factory

    return deco


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
