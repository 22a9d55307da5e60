"""Feature-space adversarial attacks (FGSM, PGD) on any detector file, and their sweeps (`dfdet attack`).

Why feature space: the study measured how far a detector's decisions move under small perturbations of its
standardised input (accuracy 66 % -> 38 % at FGSM eps = 0.2). The perturbation core lives in `dfdet.perturb`; this
module builds the differentiable score function of a single model, a calibrated model or a fused ensemble
(`DiffDetector`, loaded through dfdet.scoring so its scores are exactly `dfdet score`'s) and sweeps eps over it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.perturb import (
    DEFAULT_EPS,
    STEP_FACTOR,
    TARGETS,
    _check_eps,
    _check_method,
    attack_decisions,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from dfdet.store import FeatureSet


# --------------------------------------------------------------------------------------------------- detectors
@dataclass
class DiffDetector:
    """A detector (model, calibrated detector or ensemble) as a differentiable function of standardised features.

    Z = (X - mean) / scale is the detector's input space (for an ensemble: its first member's). `member_module(Z)`
    gives every member model's raw bona-fide-positive score [N, M] (each member standardises the same features with
    its own scaler); `combine` maps that matrix to the final score exactly as `dfdet score` does (numpy, from
    `dfdet.scoring`); `head` is the same map in torch. `exact` says whether `head` equals `combine` (fusion and
    affine calibrations); otherwise (isotonic calibration) `head` is the monotone pre-calibration score, whose
    gradient points the same way. `score_module` = head(member_module(Z)) is what attacks and attributions use.
    """

    member_module: nn.Module
    head: nn.Module
    combine: Callable[[np.ndarray], np.ndarray]
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    exact: bool = True
    kind: str = "model"
    path: str = ""
    recipe: str | None = None
    recipe_hash: str | None = None
    feature_names: list[str] = field(default_factory=list)
    groups: list[Any] = field(default_factory=list)
    members: list[tuple[str, DiffDetector]] = field(default_factory=list)
    scorer: Any = None  # the dfdet.scoring.ScoringDetector this was built from
    description: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from torch import nn

        self.score_module = nn.Sequential(self.member_module, self.head).eval()

    @property
    def input_dim(self) -> int:
        return int(len(self.mean))

    @property
    def head_threshold(self) -> float:
        """The threshold on the `score_module` scale when exact; otherwise 0 (only gradients of the head are used)."""
        return float(self.threshold) if self.exact else 0.0

    def standardize(self, X: Any) -> torch.Tensor:
        import torch

        from dfdet.artifact import feature_matrix

        X = feature_matrix(X, self.input_dim, str(self.path or "the detector"))
        return torch.from_numpy(((X.astype(np.float64) - self.mean) / self.scale).astype(np.float32))

    def member_scores_std(self, Z: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
        """Raw member scores [N, M] of standardised features."""
        import torch

        with torch.no_grad():
            parts = [self.member_module(Z[i : i + batch_size]) for i in range(0, len(Z), batch_size)]
        return torch.cat(parts).double().cpu().numpy() if parts else np.zeros((0, 1))

    def head_scores_std(self, Z: torch.Tensor) -> np.ndarray:
        """`score_module` outputs (the differentiable score) of standardised features."""
        import torch

        S = torch.from_numpy(self.member_scores_std(Z)).float()
        with torch.no_grad():
            return self.head(S).double().numpy() if len(S) else np.zeros(0)

    def scores_std(self, Z: torch.Tensor) -> np.ndarray:
        """Final bona-fide-positive scores of standardised features (what `dfdet score` writes)."""
        S = self.member_scores_std(Z)
        return np.asarray(self.combine(S), dtype=np.float64).reshape(-1) if len(S) else np.zeros(0)

    def scores(self, X: Any) -> np.ndarray:
        return self.scores_std(self.standardize(X))

    def check_features(self, fs: FeatureSet) -> None:
        """Refuse features made with another recipe (hash) or of another dimension (dfdet.scoring's messages)."""
        if self.scorer is not None:
            self.scorer.check_features(fs)
            return
        src = fs.source or "features"
        if self.recipe_hash and fs.recipe_hash and fs.recipe_hash != self.recipe_hash:
            raise DfdetError(
                f"{src} was featurized with recipe {fs.recipe} (hash {fs.recipe_hash}) but {self.path} expects recipe "
                f"{self.recipe} (hash {self.recipe_hash})",
                f"re-featurize the audio with recipe {self.recipe}, or use a detector trained on these features",
            )
        if fs.dim != self.input_dim:
            raise DfdetError(
                f"{src} has {fs.dim} features per row but {self.path} expects {self.input_dim}",
                f"featurize with the detector's recipe ({self.recipe or 'unknown'}) or use a matching detector",
            )


def _members_module(dets: Sequence[Any], ref_mean: np.ndarray, ref_scale: np.ndarray) -> nn.Module:
    """Z (reference standardisation) -> [N, M] raw member scores (-logit), each member on its own standardisation."""
    import torch
    from torch import nn

    class Members(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.models = nn.ModuleList([d.module for d in dets])
            same = [
                bool(np.array_equal(d.scaler_mean, ref_mean) and np.array_equal(d.scaler_scale, ref_scale))
                for d in dets
            ]
            self.same = same
            f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)  # noqa: E731
            # Z_m = Z * (ref_scale / scale_m) + (ref_mean - mean_m) / scale_m
            self.register_buffer("a", torch.stack([f32(ref_scale / d.scaler_scale) for d in dets]))
            self.register_buffer("b", torch.stack([f32((ref_mean - d.scaler_mean) / d.scaler_scale) for d in dets]))

        def forward(self, z):
            cols = [-mod(z if self.same[k] else z * self.a[k] + self.b[k]) for k, mod in enumerate(self.models)]
            return torch.stack(cols, dim=1)

    return Members().eval()


class _Head:
    """Builds the torch version of a detector file's score combination (recursion mirrors dfdet.scoring)."""

    def __init__(self) -> None:
        self.exact = True
        self.layers: list[str] = []

    def build(self, path: Path, depth: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
        import json

        if depth > 8:
            raise InputError(path, "calibration files nest too deep (a loop?)", "point the calibration at a model")
        if path.suffix.lower() != ".json":
            self.layers.append("model")
            return lambda S: S[:, 0]
        kind = json.loads(path.read_text(encoding="utf-8")).get("kind")
        if kind == "ensemble":
            from dfdet.fusion import load_ensemble

            doc = load_ensemble(path)
            fused = self._fusion(doc["fuser"])
            self.layers.append(f"fusion ({doc.get('method')})")
            return self._calibration(doc["calibration"], fused) if doc.get("calibration") else fused
        from dfdet.calibration import detector_path, load_calibration

        doc = load_calibration(path)
        inner = detector_path(doc, path)
        if inner is None:
            raise InputError(path, "calibration names no detector", "refit with `dfdet calibrate --detector MODEL`")
        return self._calibration(doc, self.build(inner, depth + 1))

    def _fusion(self, fuser: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        import torch

        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)  # noqa: E731
        mu, sd, w, c = f32(fuser["z_mean"]), f32(fuser["z_std"]), f32(fuser["weights"]), float(fuser["intercept"])
        return lambda S: ((S - mu) / sd) @ w + c

    def _calibration(self, cal: dict[str, Any], inner: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
        method = cal.get("method")
        p = cal.get("params") or {}
        if method in ("logistic", "temperature"):
            a, b = float(p["a"]), float(p.get("b", 0.0))
            self.layers.append(f"calibration ({method}, affine)")
            return lambda S: a * inner(S) + b
        self.exact = False  # isotonic & co: monotone, piecewise flat -> keep the pre-calibration score for gradients
        self.layers.append(f"calibration ({method}: gradients of the pre-calibration score)")
        return inner


def _head_module(fn: Callable[[torch.Tensor], torch.Tensor]) -> nn.Module:
    from torch import nn

    class Head(nn.Module):
        def forward(self, S):
            return fn(S)

    return Head().eval()


def _model_diff(det: Any, name: str = "") -> DiffDetector:
    """A single loaded `dfdet.artifact.Detector` as a DiffDetector."""
    from dfdet.features import FeatureGroup

    rec = det.meta.get("recipe") or {}
    groups = [FeatureGroup(str(g[0]), int(g[1]), int(g[2])) for g in rec.get("groups") or []]
    mean = np.asarray(det.scaler_mean, dtype=np.float64)
    scale = np.asarray(det.scaler_scale, dtype=np.float64)
    return DiffDetector(
        member_module=_members_module([det], mean, scale),
        head=_head_module(lambda S: S[:, 0]),
        combine=lambda S: np.asarray(S)[:, 0],
        mean=mean,
        scale=scale,
        threshold=float(det.threshold),
        kind="model",
        path=str(det.path),
        recipe=det.recipe,
        recipe_hash=det.recipe_hash,
        feature_names=list(det.feature_names),
        groups=groups,
        description={"name": name, "arch": det.arch, "threshold_source": det.meta.get("threshold_source", "")},
    )


def load_diff_detector(path: str | Path, calibration: str | Path | None = None) -> DiffDetector:
    """Load any detector file (`dfdet.scoring.load_detector`: model .pt, calibration JSON naming a detector, ensemble
    JSON of model members; plus an optional separate calibration) as a differentiable DiffDetector whose final
    scores are exactly those of `dfdet score`."""
    import torch

    from dfdet.scoring import load_detector

    sd = load_detector(path, calibration, portable=False)  # gradients need the torch modules
    dets = [m.detector for m in sd.members]
    singles = [(m.name, _model_diff(m.detector, m.name)) for m in sd.members]
    ref = singles[0][1]
    hb = _Head()
    fn = hb.build(Path(path))
    if calibration is not None:
        from dfdet.calibration import load_calibration

        fn = hb._calibration(load_calibration(calibration), fn)
    # The torch head must reproduce dfdet.scoring's combination: checked on random member scores.
    if hb.exact:
        S = np.random.default_rng(0).normal(0.0, 3.0, size=(32, len(dets)))
        want = sd.combine(S)
        with torch.no_grad():
            got = fn(torch.from_numpy(S).float()).double().numpy()
        if not np.allclose(got, want, rtol=1e-4, atol=1e-4):
            hb.exact = False
            hb.layers.append("head differs from dfdet.scoring: its gradients are used as a surrogate")
    return DiffDetector(
        member_module=_members_module(dets, ref.mean, ref.scale),
        head=_head_module(fn),
        combine=sd.combine,
        mean=ref.mean,
        scale=ref.scale,
        threshold=float(sd.threshold),
        exact=hb.exact,
        kind=sd.kind,
        path=str(path),
        recipe=ref.recipe,
        recipe_hash=ref.recipe_hash,
        feature_names=ref.feature_names,
        groups=ref.groups,
        members=singles if len(singles) > 1 or sd.kind != "model" else [],
        scorer=sd,
        description={
            "kind": sd.kind,
            "layers": hb.layers,
            "exact_gradients": hb.exact,
            "members": [n for n, _ in singles],
            "threshold_source": sd.threshold_source,
            "score_scale": sd.scale,
        },
    )


# --------------------------------------------------------------------------------------------------- sweeps
def metrics_at(scores: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    from dfdet.metrics import eer, roc_auc, threshold_metrics

    out: dict[str, Any] = {}
    known = y >= 0
    s, yk = scores[known], y[known]
    if len(yk):
        tm = threshold_metrics(s, yk, threshold)
        out["accuracy"] = float(tm["accuracy"])
        out["balanced_accuracy"] = float(tm["balanced_accuracy"])
    if len(np.unique(yk)) == 2 and np.isfinite(s).all():
        e, _ = eer(s, yk)
        out["eer"] = float(e)
        out["auc"] = float(roc_auc(s, yk))
    return out


def attack_sweep(
    det: DiffDetector,
    X: Any,
    y: Any,
    eps_list: Sequence[float] = DEFAULT_EPS,
    method: str = "fgsm",
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = False,
    clamp: Any = None,
    seed: int = 0,
    batch_size: int = 1024,
    progress: Callable[[Any], Any] | None = None,
    target: str = "decision",
) -> dict[str, Any]:
    """Attack `det` at every eps; per eps: accuracy at the detector's threshold, EER, AUC, decision flip rate.

    X: raw features [N, D] (or a FeatureSet); y: labels 0/1 (-1 unknown rows count only for flip rates).
    `target`: "decision" pushes every row away from the detector's current decision (also "repairing" wrong
    decisions); "label" pushes every labelled row away from its TRUE class (the study's FGSM: maximise the loss of
    the label), unlabelled rows away from their decision.
    Returns a JSON-able dict with `rows` (one per eps) and `curve` (column lists for plotting).
    """
    import torch

    _check_method(method, norm)
    eps_values = [_check_eps(e) for e in eps_list]
    if not eps_values:
        raise UsageError("no eps values", "e.g. --eps 0,0.05,0.1,0.15,0.2")
    y = np.asarray(y.y if hasattr(y, "y") else y, dtype=np.int64).ravel()
    Z = det.standardize(X)
    if len(Z) == 0:
        raise DfdetError("no rows to attack", "pass a feature store with at least one row")
    if len(y) != len(Z):
        raise DfdetError(f"{len(y)} labels for {len(Z)} rows", "pass one label per row")
    thr_raw = det.head_threshold
    clean = det.scores_std(Z)
    clean_dec = (clean < det.threshold).astype(np.int8)  # 1 = spoof
    if target not in TARGETS:
        raise UsageError(f"unknown attack target {target!r}", f"choose one of: {', '.join(TARGETS)}")
    away_from_bona = clean_dec == 0  # the decision of the real detector, not of its surrogate head
    if target == "label":
        away_from_bona = np.where(y >= 0, y == 0, away_from_bona)
    current_bona = torch.from_numpy(away_from_bona)
    known = y >= 0
    correct = (clean_dec == y) & known
    rows = []
    it = progress(eps_values) if progress is not None else eps_values
    for eps in it:
        Za = attack_decisions(
            det.score_module,
            Z,
            thr_raw,
            method,
            eps,
            norm,
            steps,
            step_size,
            random_start,
            clamp,
            seed,
            batch_size,
            current_bonafide=current_bona,
        )
        s = det.scores_std(Za)
        dec = (s < det.threshold).astype(np.int8)
        flipped = dec != clean_dec
        d = (Za - Z).double()
        row: dict[str, Any] = {
            "eps": float(eps),
            **metrics_at(s, y, det.threshold),
            "flip_rate": float(flipped.mean()),
            "success_on_correct": float(flipped[correct].mean()) if correct.any() else float("nan"),
            "mean_score_change": float(np.mean(s - clean)),
            "mean_abs_score_change": float(np.mean(np.abs(s - clean))),
            "max_linf": float(d.abs().max().item()) if d.numel() else 0.0,
            "max_l2": float(d.norm(dim=1).max().item()) if d.numel() else 0.0,
        }
        rows.append(row)
    keys = ["eps", "accuracy", "eer", "auc", "flip_rate", "balanced_accuracy", "success_on_correct"]
    curve = {k: [r.get(k) for r in rows] for k in keys}
    return {
        "method": method,
        "norm": norm,
        "steps": int(steps) if method == "pgd" else 1,
        "step_size": (float(step_size) if step_size is not None else f"{STEP_FACTOR} * eps / steps")
        if method == "pgd"
        else "eps",
        "random_start": bool(random_start) if method == "pgd" else False,
        "clamp": _clamp_record(clamp),
        "seed": int(seed),
        "space": "standardised features (training scaler): eps in training standard deviations",
        "target": target,
        "targeting": "each row is pushed across the detector's threshold, away from its current decision"
        if target == "decision"
        else "each labelled row is pushed towards the wrong class (away from its true label)",
        "threshold": float(det.threshold),
        "exact_gradients": bool(det.exact),
        "rows_attacked": int(len(Z)),
        "clean": {**metrics_at(clean, y, det.threshold), "n": int(len(y)), "n_labelled": int(known.sum())},
        "rows": rows,
        "curve": curve,
    }


def _clamp_record(clamp: Any) -> Any:
    if clamp is None:
        return None
    lo, hi = clamp
    if np.ndim(lo) == 0 and np.ndim(hi) == 0:
        return [float(lo), float(hi)]
    return {"per_feature": True, "min_lo": float(np.min(lo)), "max_hi": float(np.max(hi))}


def format_table(result: dict[str, Any]) -> str:
    """A small text table of a sweep (for stderr)."""
    head = f"{'eps':>6} {'acc':>7} {'EER %':>7} {'AUC':>7} {'flip':>7}"
    lines = [f"{result['method']} ({result['norm']})", head]
    for r in result["rows"]:
        acc = r.get("accuracy", float("nan"))
        e = 100 * r.get("eer", float("nan"))
        lines.append(
            f"{r['eps']:>6.3g} {acc:>7.3f} {e:>7.2f} {r.get('auc', float('nan')):>7.4f} {r['flip_rate']:>7.3f}"
        )
    return "\n".join(lines)
