"""The model file: one self-contained `.pt` that loads with `torch.load(weights_only=True)` (no pickled objects).

Layout (a dict of tensors and plain JSON-able values):
- `format` "dfdet-model", `schema_version`
- `state_dict` (tensors), `initial_state` (the weights before training, for loss-landscape interpolation; optional)
- `arch` {name, config, input_dim}
- `scaler` {mean, scale} (float64 tensors; x' = (x - mean) / scale, fitted on training rows only)
- `recipe` {name, hash, config, feature_names, groups}: scoring refuses features made otherwise
- `threshold` (on the bona-fide-positive score scale, score = -logit; score >= threshold -> bona fide),
  `threshold_source`
- `training` (the resolved training configuration and optimizer hyperparameters), `summary` (history summary and
  final metrics), `data` (rows and array hashes of the training/validation/test data), `provenance`.
- frame models only: `frames` {chunk_frames, scoring}; `input_dim` is then the frame dimension and the scaler is per
  frame dimension (fitted on every training frame).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.errors import DfdetError, InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from dfdet.store import FeatureSet
    from dfdet.training import TrainResult

FORMAT = "dfdet-model"
SCHEMA_VERSION = 1


def _plain(obj: Any) -> Any:
    """JSON round trip: only dict/list/str/int/float/bool/None survive (what weights_only loading accepts)."""
    from dfdet.jsonio import plain

    return json.loads(json.dumps(plain(obj, nan_to_none=False), allow_nan=True, default=str))


def _tensors(state: dict[str, Any]) -> dict[str, Any]:
    return {str(k): v.detach().to("cpu").clone().contiguous() for k, v in state.items()}


def save_model(path: str | Path, module: nn.Module, **fields: Any) -> dict[str, Any]:
    """Write the model file atomically (`fields` as for `model_dict`); returns the saved dict."""
    import torch

    from dfdet.atomic import atomic_path

    obj = model_dict(module, **fields)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return obj


def model_dict(
    module: nn.Module,
    *,
    arch: str,
    input_dim: int,
    scaler_mean: np.ndarray,
    scaler_scale: np.ndarray,
    arch_config: dict[str, Any] | None = None,
    threshold: float = 0.0,
    threshold_source: str = "",
    recipe: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    initial_state: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
    frames: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model file's dict (what `save_model` writes and `load_model` reads), built in memory."""
    import torch

    from dfdet.provenance import provenance

    mean = np.asarray(scaler_mean, dtype=np.float64).ravel()
    scale = np.asarray(scaler_scale, dtype=np.float64).ravel()
    if mean.shape != (int(input_dim),) or scale.shape != (int(input_dim),):
        raise DfdetError(
            f"scaler has {mean.size}/{scale.size} values for {input_dim} features",
            "fit the scaler on the same features",
        )
    rec = recipe or {}
    obj: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "state_dict": _tensors(module.state_dict()),
        "arch": _plain({"name": arch, "config": arch_config or {}, "input_dim": int(input_dim)}),
        "scaler": {"mean": torch.from_numpy(mean.copy()), "scale": torch.from_numpy(scale.copy())},
        "recipe": _plain(
            {
                "name": rec.get("name"),
                "hash": rec.get("hash"),
                "config": rec.get("config"),
                "feature_names": list(rec.get("feature_names") or []),
                "groups": [list(g) for g in rec.get("groups") or []],
            }
        ),
        "threshold": float(threshold),
        "threshold_source": str(threshold_source),
        "training": _plain(training or {}),
        "summary": _plain(summary or {}),
        "data": _plain(data or {}),
        "provenance": _plain(provenance()),
    }
    if initial_state is not None:
        obj["initial_state"] = _tensors(initial_state)
    if extra:
        obj["extra"] = _plain(extra)
    if frames is not None:
        obj["frames"] = _plain(frames)
    return obj


def _result_kwargs(result: TrainResult, extra: dict[str, Any] | None, initial_state: bool = True) -> dict[str, Any]:
    training = {
        **result.config.to_dict(),
        "optimizer_hparams": result.optimizer_hparams,
    }
    return dict(
        arch=result.arch,
        arch_config=result.arch_config,
        input_dim=result.input_dim,
        scaler_mean=result.scaler_mean,
        scaler_scale=result.scaler_scale,
        threshold=result.threshold,
        threshold_source=result.threshold_source,
        recipe=result.recipe,
        training=training,
        summary=result.summary,
        data=result.data,
        initial_state=result.initial_state if initial_state else None,
        extra=extra,
        frames=result.frames,
    )


def save_result(
    path: str | Path, result: TrainResult, extra: dict[str, Any] | None = None, initial_state: bool = True
) -> dict[str, Any]:
    """Save a `dfdet.training.TrainResult` (what `dfdet train` writes); `initial_state=False` leaves the pre-training
    weights out (shipped models: half the size)."""
    return save_model(path, result.module, **_result_kwargs(result, extra, initial_state))


def detector_of(result: TrainResult) -> Detector:
    """A Detector straight from a TrainResult, without writing a file (e.g. one cross-validation fold)."""
    obj = model_dict(result.module, **_result_kwargs(result, None))
    cls = FrameDetector if result.frames is not None else Detector
    return cls(result.module, obj, "")


def read_artifact(path: str | Path) -> dict[str, Any]:
    """The raw dict of a model file, loaded without pickle; clear errors for anything that is not one."""
    import pickle

    import torch

    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such model file", "check the path (models are written by dfdet train -o MODEL.pt)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        AttributeError,
        KeyError,
        TypeError,
    ) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            p, f"not a dfdet model file ({first[:160]})", "pass a .pt written by dfdet train (loaded without pickle)"
        ) from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(p, "not a dfdet model file (no 'format: dfdet-model')", "pass a .pt written by dfdet train")
    version = obj.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(
            p, f"model schema version {version!r} is newer than this dfdet reads ({SCHEMA_VERSION})", "upgrade dfdet"
        )
    for key in ("state_dict", "arch", "scaler"):
        if key not in obj:
            raise InputError(p, f"model file lacks '{key}'", "re-train the model with dfdet train")
    return obj


def feature_matrix(X: Any, input_dim: int, who: str = "the model") -> np.ndarray:
    """The [N, input_dim] array of a FeatureSet or array-like, or a clear error naming `who` expects what."""
    X = X.X if hasattr(X, "X") and hasattr(X, "y") else X
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != input_dim:
        raise DfdetError(
            f"features have shape {X.shape} but {who} expects [N, {input_dim}]",
            "featurize with the recipe the model was trained on",
        )
    return X


class Detector:
    """A trained model ready to score: standardise with the training scaler, run the module in eval mode.

    `logits(X)` are raw spoof logits; `scores(X)` = -logits are bona-fide-positive natural-log odds (the score-file
    convention); `threshold` is on that score scale (score >= threshold -> bona fide).
    """

    input_kind = "vector"  # what logits() reads: feature vectors [N, D] ("frames": FrameDetector)
    needs_torch = True  # False for dfdet.portable's numpy copy of a linear model

    def __init__(self, module: nn.Module, obj: dict[str, Any], path: str = "") -> None:
        import torch

        self.path = str(path)
        self.module = module.eval()
        self.scaler_mean = obj["scaler"]["mean"].to(torch.float64).numpy()
        self.scaler_scale = obj["scaler"]["scale"].to(torch.float64).numpy()
        self.meta = {k: v for k, v in obj.items() if k != "state_dict"}
        self.threshold = float(obj.get("threshold", 0.0))
        recipe = obj.get("recipe") or {}
        self.recipe = recipe.get("name")
        self.recipe_hash = recipe.get("hash")
        self.input_dim = int(obj["arch"]["input_dim"])
        self.feature_names = list(recipe.get("feature_names") or [])
        self.arch = obj["arch"]["name"]
        self.initial_state = obj.get("initial_state")

    @property
    def device(self) -> torch.device:
        import torch

        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _matrix(self, X: Any) -> np.ndarray:
        return feature_matrix(X, self.input_dim)

    def standardize(self, X: Any) -> torch.Tensor:
        """Features [N, D] (array or FeatureSet) -> standardised float32 tensor on the model's device."""
        import torch

        Xm = self._matrix(X)
        Z = ((Xm.astype(np.float64) - self.scaler_mean) / self.scaler_scale).astype(np.float32)
        return torch.from_numpy(Z).to(self.device)

    def logits(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Raw spoof logits (float64 array [N])."""
        from dfdet.models import predict_logits

        Z = self.standardize(X)
        if len(Z) == 0:
            return np.zeros(0)
        return predict_logits(self.module, Z, batch_size).detach().cpu().numpy().astype(np.float64)

    def scores(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Bona-fide-positive scores (= -logits, natural-log odds of bona fide vs spoof)."""
        return -self.logits(X, batch_size)

    def decide(self, X: Any) -> np.ndarray:
        """0 bona fide / 1 spoof at the model's validation-chosen threshold."""
        return (self.scores(X) < self.threshold).astype(np.int8)

    def check_recipe(self, recipe: str | None, recipe_hash: str | None, src: str) -> None:
        """Refuse features made with another recipe than this model's, naming both."""
        if self.recipe_hash and recipe_hash and recipe_hash != self.recipe_hash:
            raise DfdetError(
                f"{src} was featurized with recipe {recipe} (hash {recipe_hash}) but {self.path or 'the model'} "
                f"expects recipe {self.recipe} (hash {self.recipe_hash})",
                f"re-featurize the audio with recipe {self.recipe} and its settings (hash {self.recipe_hash}), or "
                "use a model trained on these features",
            )

    def check_features(self, fs: FeatureSet) -> None:
        """Refuse features this model was not trained on: other recipe (hash) or other dimension."""
        src = fs.source or "features"
        model = self.path or "the model"
        self.check_recipe(fs.recipe, fs.recipe_hash, src)
        if fs.dim != self.input_dim:
            raise DfdetError(
                f"{src} has {fs.dim} features per row but {model} expects {self.input_dim}",
                f"featurize with the model's recipe ({self.recipe or 'unknown'}) or use a matching model",
            )


class FrameDetector(Detector):
    """A trained frame model (e.g. `lcnn`): scores whole utterances given as [T, D] frame matrices.

    Each utterance is cut into consecutive chunks of the training length (`dfdet.chunks.utterance_chunks`; shorter
    ones tiled as in training), every chunk standardised with the per-frame-dimension training scaler, and the
    utterance's logit is the mean of its chunk logits. `scores(mats)` = -logits as for vector models.
    """

    input_kind = "frames"

    def __init__(self, module: nn.Module, obj: dict[str, Any], path: str = "") -> None:
        super().__init__(module, obj, path)
        frames = obj.get("frames")
        if not isinstance(frames, dict) or int(frames.get("chunk_frames") or 0) < 1:
            raise InputError(path or "model", "frame model without its chunk length ('frames')", "re-train it")
        self.chunk_frames = int(frames["chunk_frames"])

    def _mats(self, mats: Any) -> list[np.ndarray]:
        out = [np.asarray(m) for m in mats]
        for m in out:
            if m.ndim != 2 or m.shape[1] != self.input_dim or len(m) < 1:
                raise DfdetError(
                    f"frame matrix of shape {m.shape} but {self.path or 'the model'} expects "
                    f"[T >= 1, {self.input_dim}]",
                    f"featurize with the model's frame recipe ({self.recipe or 'unknown'})",
                )
        return out

    def logits(self, mats: Any, batch_size: int = 64) -> np.ndarray:  # type: ignore[override]
        """Spoof logit (float64 [N]) of each utterance in `mats` (a sequence of [T, D] frame matrices)."""
        from dfdet.chunks import utterance_logits

        return utterance_logits(
            self.module, self._mats(mats), self.scaler_mean, self.scaler_scale, self.chunk_frames, batch_size
        )

    def scores(self, mats: Any, batch_size: int = 64) -> np.ndarray:  # type: ignore[override]
        return -self.logits(mats, batch_size)

    def standardize(self, X: Any) -> torch.Tensor:
        """One frame matrix [T, D] -> standardised float32 tensor on the model's device."""
        import torch

        from dfdet.chunks import standardize_frames

        (m,) = self._mats([X])
        return torch.from_numpy(standardize_frames(m, self.scaler_mean, self.scaler_scale)).to(self.device)

    def check_features(self, fs: FeatureSet) -> None:
        """Refuse a store of another recipe, or one without frames (a vector store)."""
        src = fs.source or "features"
        self.check_recipe(fs.recipe, fs.recipe_hash, src)
        from dfdet.store import FrameReader

        if not fs.source or not Path(fs.source).is_file():
            raise DfdetError(f"{src}: frame model {self.arch} needs a frame store file", "pass the .h5 frame store")
        try:
            with FrameReader(fs.source) as r:
                dim = r.dim
        except InputError as e:
            raise DfdetError(
                f"{src} is a vector store (no /frames) but {self.path or 'the model'} ({self.arch}) reads frames",
                f"featurize the audio with --recipe {self.recipe or 'lfcc'} (a frame recipe), or score the audio",
            ) from e
        if dim != self.input_dim:
            raise DfdetError(
                f"{src} has {dim} values per frame but {self.path or 'the model'} expects {self.input_dim}",
                f"featurize with the model's recipe ({self.recipe or 'unknown'})",
            )


def load_model(path: str | Path, device: str = "cpu") -> Detector:
    """Load a model file (no pickle) into a Detector in eval mode on `device`."""
    import torch

    from dfdet.models import build_model, model_input

    obj = read_artifact(path)
    arch = obj["arch"]
    module = build_model(str(arch["name"]), int(arch["input_dim"]), **dict(arch.get("config") or {}))
    try:
        module.load_state_dict(obj["state_dict"])
    except RuntimeError as e:
        raise InputError(path, f"weights do not fit architecture {arch['name']!r}: {str(e)[:200]}", "re-train") from e
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module.to(device).eval()
    cls = FrameDetector if model_input(str(arch["name"])) == "frames" else Detector
    return cls(module, obj, str(path))
