"""A torch-free copy of a linear model, for scoring without importing torch.

Importing torch takes 1-2 s, longer than featurizing and scoring a file; a logistic regression's forward pass is one
dot product. `dfdet export MODEL.pt` writes `MODEL.portable.npz` beside the model (numpy arrays, no pickle) with
the SHA-256 of the `.pt` it was made from. Scoring (`dfdet score`, calibrations and ensembles naming the `.pt`, the
app) uses the copy when it matches the model byte for byte and falls back to torch otherwise; the `.pt` stays the
artifact every other tool reads. Scores agree with the torch path within the score contract (dfdet.scores).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.artifact import Detector
from dfdet.errors import InputError

PORTABLE_ARCHS = frozenset({"linear", "logreg"})
SUFFIX = ".portable.npz"
FORMAT = "dfdet-portable-model"
_WEIGHT, _BIAS = "fc.weight", "fc.bias"


def portable_path(model: str | Path) -> Path:
    """`MODEL.pt` -> `MODEL.portable.npz` beside it."""
    p = Path(model)
    return p.with_name(p.stem + SUFFIX)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_portable(model: str | Path, output: str | Path | None = None) -> Path:
    """Write the torch-free copy of a linear model file; returns its path. Other architectures are refused."""
    from dfdet.artifact import read_artifact
    from dfdet.atomic import atomic_open
    from dfdet.jsonio import plain

    src = Path(model)
    obj = read_artifact(src)
    arch = str(obj["arch"]["name"])
    if arch not in PORTABLE_ARCHS:
        raise InputError(
            src,
            f"architecture {arch!r} has no torch-free form",
            f"export a model of {', '.join(sorted(PORTABLE_ARCHS))}; other models score through torch",
        )
    meta = plain({k: v for k, v in obj.items() if k not in ("state_dict", "initial_state", "scaler")})
    arrays = {
        "weight": obj["state_dict"][_WEIGHT].detach().cpu().numpy().astype(np.float32),
        "bias": obj["state_dict"][_BIAS].detach().cpu().numpy().astype(np.float32),
        "scaler_mean": obj["scaler"]["mean"].detach().cpu().numpy().astype(np.float64),
        "scaler_scale": obj["scaler"]["scale"].detach().cpu().numpy().astype(np.float64),
        "meta_json": np.asarray(json.dumps(meta, sort_keys=True, allow_nan=True)),
        "format": np.asarray(FORMAT),
        "source_sha256": np.asarray(file_sha256(src)),
    }
    out = Path(output) if output is not None else portable_path(src)
    with atomic_open(out, "wb", encoding=None) as fh:
        np.savez(fh, **arrays)
    return out


class PortableDetector(Detector):
    """A linear model scored with numpy: the same scaler, float32 standardised rows and float32 weights as torch."""

    needs_torch = False

    def __init__(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: str) -> None:
        self.path = str(path)
        self.module = None
        self.scaler_mean = arrays["scaler_mean"]
        self.scaler_scale = arrays["scaler_scale"]
        self.weight = arrays["weight"].reshape(-1)
        self.bias = np.float32(arrays["bias"].reshape(-1)[0])
        self.meta = meta
        self.threshold = float(meta.get("threshold", 0.0))
        recipe = meta.get("recipe") or {}
        self.recipe = recipe.get("name")
        self.recipe_hash = recipe.get("hash")
        self.input_dim = int(meta["arch"]["input_dim"])
        self.feature_names = list(recipe.get("feature_names") or [])
        self.arch = meta["arch"]["name"]
        self.initial_state = None

    def logits(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        Xm = self._matrix(X)
        Z = ((Xm.astype(np.float64) - self.scaler_mean) / self.scaler_scale).astype(np.float32)
        return (Z @ self.weight + self.bias).astype(np.float64)


def load_portable(model: str | Path) -> PortableDetector | None:
    """The torch-free copy of `model` when one sits beside it and was made from these exact bytes, else None."""
    src = Path(model)
    side = portable_path(src)
    if not side.is_file() or not src.is_file():
        return None
    try:
        with np.load(side, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT or str(z["source_sha256"]) != file_sha256(src):
                return None  # stale or foreign: the .pt is the truth
            arrays = {k: z[k] for k in ("weight", "bias", "scaler_mean", "scaler_scale")}
            meta = json.loads(str(z["meta_json"]))
    except (OSError, KeyError, ValueError) as e:
        raise InputError(
            side, f"unreadable torch-free model copy ({e})", f"delete it or re-run `dfdet export {src}`"
        ) from None
    return PortableDetector(meta, arrays, str(src))
