"""Shared fixtures: generated audio (seeded), CliRunner with separate stdout/stderr, the shared data path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DFDET_SHARED", ROOT.parent / "shared"))
SEED154_NPZ = SHARED / "data" / "seed154-asvspoof2019la" / "features_robust.npz"
DATA = Path(__file__).parent / "data"


@pytest.fixture
def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps stderr separate


@pytest.fixture
def seed154_npz() -> Path:
    if not SEED154_NPZ.exists():
        pytest.skip(f"shared data not present at {SEED154_NPZ}")
    return SEED154_NPZ


def speechlike(sr: int = 16000, seconds: float = 1.0, f0: float = 120.0, seed: int = 0) -> np.ndarray:
    """A deterministic voiced-speech-like signal: harmonic source, formant-like emphasis, amplitude envelope."""
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    vib = f0 * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))
    phase = 2 * np.pi * np.cumsum(vib) / sr
    sig = sum((1.0 / k) * np.sin(k * phase) * np.exp(-(((k * f0) - 700) ** 2) / 2e6) for k in range(1, 30))
    env = 0.5 * (1 - np.cos(2 * np.pi * np.minimum(t * 3, 1)))
    sig = sig * env + 0.01 * rng.standard_normal(n)
    return (0.5 * sig / (np.max(np.abs(sig)) + 1e-9)).astype(np.float64)
