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
    input_kind = "vector"  # class attribute: what `standardize` takes (frame detectors: "frames")

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

    def flat(self, Z: Any) -> torch.Tensor:
        """Standardised inputs as one [rows, D] matrix (frame detectors: all frames of all utterances)."""
        return Z

    def inputs_of(self, fs: FeatureSet) -> Any:
        """What this detector reads from a feature set: its rows (frame detectors: the rows' frame matrices)."""
        return fs.X

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
    if getattr(det, "input_kind", "vector") == "frames":
        cls, extra = FrameDiffDetector, {"chunk_frames": int(det.chunk_frames)}
        members = _frame_members_module([det], mean, scale)
    else:
        cls, extra, members = DiffDetector, {}, _members_module([det], mean, scale)
    return cls(
        member_module=members,
        **extra,
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
    if isinstance(ref, FrameDiffDetector):
        cls, extra = FrameDiffDetector, {"chunk_frames": max(int(d.chunk_frames) for d in dets)}
        members = _frame_members_module(dets, ref.mean, ref.scale)
    else:
        cls, extra, members = DiffDetector, {}, _members_module(dets, ref.mean, ref.scale)
    return cls(
        member_module=members,
        **extra,
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


# --------------------------------------------------------------------------------------------------- frame models
def frames_of(fs: FeatureSet) -> list[np.ndarray]:
    """The [T, D] frame matrices (float32) of a frame store's FeatureSet rows (a subset too), in row order."""
    from dfdet.store import FrameReader

    fr = fs.frames
    if fr is None:
        raise DfdetError(
            f"{fs.source or 'the features'} is a vector store (no /frames) but a frame model reads frames",
            "featurize the audio with a frame recipe (dfdet featurize --recipe lfcc), or use a vector model",
        )
    out: list[np.ndarray] = [np.zeros(0)] * len(fr.rows)
    for s, src in enumerate(fr.sources):
        pick = np.flatnonzero(fr.src == s)
        if len(pick):
            with FrameReader(src) as r:
                for i in pick:
                    out[i] = np.asarray(r.read(int(fr.rows[i])), dtype=np.float32)
    return out


def chunk_index(n: int, length: int) -> np.ndarray:
    """[K, length] frame indices of the consecutive scoring chunks of a T-frame utterance, exactly as
    `dfdet.chunks.utterance_chunks` cuts them (a short utterance tiled from its start)."""
    from dfdet.chunks import utterance_chunk_starts

    n, length = int(n), int(length)
    if n <= length:
        return (np.arange(length) % n)[None, :]
    return utterance_chunk_starts(n, length)[:, None] + np.arange(length)[None, :]


def _frame_members_module(dets: Sequence[Any], ref_mean: np.ndarray, ref_scale: np.ndarray) -> nn.Module:
    """Standardised utterances Z [B, T, D] (one length T per batch) -> [B, M] raw member scores: each member's
    -mean chunk logit, with its own scaler and chunk length (FrameDetector's scoring, differentiable)."""
    import torch
    from torch import nn

    class FrameMembers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.models = nn.ModuleList([d.module for d in dets])
            self.lengths = [int(d.chunk_frames) for d in dets]
            self.same = [
                bool(np.array_equal(d.scaler_mean, ref_mean) and np.array_equal(d.scaler_scale, ref_scale))
                for d in dets
            ]
            f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)  # noqa: E731
            self.register_buffer("a", torch.stack([f32(ref_scale / d.scaler_scale) for d in dets]))
            self.register_buffer("b", torch.stack([f32((ref_mean - d.scaler_mean) / d.scaler_scale) for d in dets]))

        def forward(self, z, exact: bool = False):
            B, T = int(z.shape[0]), int(z.shape[1])
            cols = []
            for k, mod in enumerate(self.models):
                zk = z if self.same[k] else z * self.a[k] + self.b[k]
                idx = torch.from_numpy(chunk_index(T, self.lengths[k])).to(z.device)
                chunks = zk[:, idx]  # [B, K, L, D]
                logits = mod(chunks.reshape(-1, *chunks.shape[2:])).reshape(B, idx.shape[0])
                mean = logits.double().mean(dim=1)
                cols.append(-(mean if exact else mean.to(z.dtype)))
            return torch.stack(cols, dim=1)

    return FrameMembers().eval()


@dataclass
class FrameDiffDetector(DiffDetector):
    """A frame-model detector (e.g. `lcnn`, or an ensemble/calibration of them) as a differentiable function of
    standardised utterances: inputs are lists of [T, D] frame matrices, `score_module` takes one equal-length batch
    [B, T, D]. Scores equal `dfdet score` (same chunks, same per-dimension scaler, mean chunk logit)."""

    chunk_frames: int = 0
    input_kind = "frames"
    max_chunks: int = 64  # chunks per forward pass (bounds memory when attacking long utterances)

    def standardize(self, X: Any) -> list[torch.Tensor]:  # type: ignore[override]
        import torch

        from dfdet.chunks import standardize_frames

        mats = frames_of(X) if hasattr(X, "y") and hasattr(X, "frames") else list(X)
        out = []
        for m in mats:
            m = np.asarray(m)
            if m.ndim != 2 or m.shape[1] != self.input_dim or len(m) < 1:
                raise DfdetError(
                    f"frame matrix of shape {m.shape} but {self.path or 'the detector'} expects [T >= 1, "
                    f"{self.input_dim}]",
                    f"featurize with the detector's frame recipe ({self.recipe or 'unknown'})",
                )
            out.append(torch.from_numpy(standardize_frames(m, self.mean, self.scale)))
        return out

    def member_scores_std(self, Z: Any, batch_size: int = 0) -> np.ndarray:  # type: ignore[override]
        import torch

        if not len(Z):
            return np.zeros((0, 1))
        with torch.no_grad():
            return np.concatenate([self.member_module(z[None], exact=True).double().cpu().numpy() for z in Z], axis=0)

    def batches(self, Z: Sequence[Any]) -> list[np.ndarray]:
        """Row groups of equal frame count, each small enough for one forward pass (`max_chunks` chunks)."""
        lengths = np.array([len(z) for z in Z], dtype=np.int64)
        out = []
        for t in np.unique(lengths):
            rows = np.flatnonzero(lengths == t)
            per = max(1, self.max_chunks // len(chunk_index(int(t), max(self.chunk_frames, 1))))
            out += [rows[i : i + per] for i in range(0, len(rows), per)]
        return out

    def inputs_of(self, fs: FeatureSet) -> list[np.ndarray]:
        return frames_of(fs)

    def flat(self, Z: Sequence[Any]) -> torch.Tensor:
        """All frames of standardised utterances as one [sum T, D] matrix (e.g. for a per-dimension clamp range)."""
        import torch

        return torch.cat(list(Z)) if len(Z) else torch.zeros((0, self.input_dim))


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

    X: raw features [N, D] (or a FeatureSet); for a frame detector a list of N frame matrices [T, D] (`inputs_of`);
    y: labels 0/1 (-1 unknown rows count only for flip rates).
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
        Za = _attack_rows(
            det, Z, thr_raw, method, eps, norm, steps, step_size, random_start, clamp, seed, batch_size, current_bona
        )
        s = det.scores_std(Za)
        dec = (s < det.threshold).astype(np.int8)
        flipped = dec != clean_dec
        max_linf, max_l2 = _delta_norms(Z, Za)
        row: dict[str, Any] = {
            "eps": float(eps),
            **metrics_at(s, y, det.threshold),
            "flip_rate": float(flipped.mean()),
            "success_on_correct": float(flipped[correct].mean()) if correct.any() else float("nan"),
            "mean_score_change": float(np.mean(s - clean)),
            "mean_abs_score_change": float(np.mean(np.abs(s - clean))),
            "max_linf": max_linf,
            "max_l2": max_l2,
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
        "space": "standardised frames of each utterance (per-dimension training scaler; the ball bounds the whole "
        "[T, D] matrix): eps in training standard deviations"
        if isinstance(det, FrameDiffDetector)
        else "standardised features (training scaler): eps in training standard deviations",
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


def _attack_rows(
    det: DiffDetector,
    Z: Any,
    thr_raw: float,
    method: str,
    eps: float,
    norm: str,
    steps: int,
    step_size: float | None,
    random_start: bool,
    clamp: Any,
    seed: int,
    batch_size: int,
    current_bona: torch.Tensor,
) -> Any:
    """Adversarial versions of every row; a frame detector's utterances are attacked in equal-length batches
    (each utterance its own eps-ball), and come back as a list in row order."""
    import torch

    args = (method, eps, norm, steps, step_size, random_start, clamp)
    if not isinstance(det, FrameDiffDetector):
        return attack_decisions(det.score_module, Z, thr_raw, *args, seed, batch_size, current_bonafide=current_bona)
    out = list(Z)
    for k, rows in enumerate(det.batches(Z)):
        Zb = torch.stack([Z[i] for i in rows])
        Za = attack_decisions(
            det.score_module,
            Zb,
            thr_raw,
            *args,
            seed + k,
            len(rows),
            current_bonafide=current_bona[torch.from_numpy(rows)],
        )
        for j, i in enumerate(rows):
            out[i] = Za[j]
    return out


def _delta_norms(Z: Any, Za: Any) -> tuple[float, float]:
    """Largest L-inf and L2 norm of a row's perturbation (an utterance's: over its whole frame matrix)."""
    pairs = zip(Z, Za, strict=True) if isinstance(Z, list) else [(Z, Za)]
    linf, l2 = 0.0, 0.0
    for z, za in pairs:
        d = (za - z).double().reshape(len(z), -1) if not isinstance(Z, list) else (za - z).double().reshape(1, -1)
        if d.numel():
            linf = max(linf, float(d.abs().max().item()))
            l2 = max(l2, float(d.norm(dim=1).max().item()))
    return linf, l2


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
