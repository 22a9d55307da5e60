"""The recipe contract and registry (`dfdet.features` re-exports them).

Why apart from the package: recipes import these to register themselves, and the package imports the recipes to
load the built-in ones; with the contract here, neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    start: int
    stop: int  # exclusive


@dataclass(frozen=True)
class BandView:
    """A frame recipe whose frames are a linear function of log band energies [T, B] (e.g. LFCC: DCT and deltas of
    log linear-filterbank energies). Gradient tools differentiate through `frames_of_bands` to attribute a decision
    to time x frequency, which a cepstral dimension cannot show."""

    names: list[str]  # one label per band, e.g. "381 Hz" (the filter's centre)
    centres_hz: list[float]
    bands_of_frames: Callable[[np.ndarray], np.ndarray]  # [T, D] frames -> [T, B] log band energies (float64)
    frames_of_bands: Callable[[Any], Any]  # torch [..., T, B] -> [..., T, D], differentiable


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
