"""Attributions: which features (and feature groups) drive a detector's decision, per sample and on average.

Why: one feature alone separates the study's data (AUC 0.9999), so a detector can be right for the wrong reason;
attributions say what it actually uses. The methods are captum's (not re-implemented): vanilla saliency |df/dx|,
integrated gradients (baseline: zeros in standardised space = the training mean; completeness checked) and
input x gradient. f is the detector's SPOOF-positive output: the spoof logit for a model (= -score); for an
ensemble or calibrated detector, minus the fused/calibrated score, computed by one differentiable wrapper module,
so the fused attributions are exact. A positive attribution pushes towards "spoof".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.errors import DfdetError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from dfdet.attacks import DiffDetector
    from dfdet.features import FeatureGroup

METHODS = ("saliency", "ig", "ixg")
FRAME_METHODS = ("saliency", "ixg")  # integrated gradients over whole utterances: every chunk once per step
TIME_BINS = 10  # relative-time bins of an utterance in the time-frequency summaries
METHOD_NAMES = {"saliency": "Saliency (|grad|)", "ig": "IntegratedGradients", "ixg": "InputXGradient"}
IG_TOLERANCE = 0.01  # completeness: |sum(attr) - (f(x) - f(baseline))| <= 1 % of |f(x) - f(baseline)|
IG_ATOL = 1e-4  # ... or this absolute error, for rows where f(x) ~ f(baseline)
IG_MAX_STEPS = 1024
# Rows x features x members in one forward/backward pass. Memory, not speed, sets it: the study's CNN keeps ~0.4 MB
# of activations (and as much again of gradients) per 154-feature row and member, so a pass of 256 such rows stays
# near 200 MB whatever the row count, the integrated-gradients steps or the ensemble size (captum's
# `internal_batch_size` splits rows x steps).
PASS_VALUES = 256 * 154


@dataclass(frozen=True)
class ExplainOptions:
    """What `explain` computes, shared by the CLI, the app and the tests; one set for vector and frame detectors."""

    methods: tuple[str, ...] | None = None  # None: the detector kind's default (METHODS, or FRAME_METHODS for frames)
    n_steps: int = 64  # integrated-gradients steps (vector detectors; refined per row until completeness holds)
    top: int = 20  # features listed per split
    feature_names: Sequence[str] | None = None  # None: the detector's own, or f000...
    groups: Sequence[FeatureGroup] | None = None  # None: the detector's recipe groups
    per_sample: bool = False  # also return one record per row / utterance
    per_sample_top: int = 5  # top features in each per-sample record


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """'saliency,ig' -> ['saliency', 'ig'] (order kept, duplicates dropped); clear error for unknown names."""
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    aliases = {"integrated_gradients": "ig", "inputxgradient": "ixg", "input_x_gradient": "ixg", "grad": "saliency"}
    out: list[str] = []
    for t in items:
        t = aliases.get(t, t)
        if t not in METHODS:
            raise UsageError(f"--methods: unknown method {t!r}", f"choose from {', '.join(METHODS)}")
        if t not in out:
            out.append(t)
    if not out:
        raise UsageError("--methods is empty", f"choose from {', '.join(METHODS)}")
    return out


class SpoofOutput:
    """Builds the nn.Module captum differentiates: standardised features -> spoof-positive output [N]."""

    @staticmethod
    def of(score_module: nn.Module) -> nn.Module:
        from torch import nn

        class Spoof(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = score_module

            def forward(self, z):
                return -self.inner(z)

        return Spoof().eval()


@dataclass
class Attributions:
    """Per-sample attributions of one method: `values` [N, D] and, for IG, the completeness deltas [N]."""

    method: str
    values: np.ndarray
    delta: np.ndarray | None = None
    n_steps: np.ndarray | None = None  # IG steps used per row (refined rows use more)
    f_x: np.ndarray | None = None
    f_baseline: np.ndarray | None = None


def _forward(module: nn.Module, Z: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    import torch

    with torch.no_grad():
        parts = [module(Z[i : i + batch_size]) for i in range(0, len(Z), batch_size)]
    return torch.cat(parts).double().numpy() if parts else np.zeros(0)


def pass_rows(det: DiffDetector) -> int:
    """Rows per forward/backward pass for `det`: PASS_VALUES shared among its member models' inputs."""
    n_members = len(getattr(det.member_module, "models", ())) or 1
    return max(1, PASS_VALUES // (n_members * det.input_dim))


def integrated_gradients(
    module: nn.Module,
    Z: torch.Tensor,
    n_steps: int = 64,
    tolerance: float = IG_TOLERANCE,
    max_steps: int = IG_MAX_STEPS,
    batch_size: int = 256,
) -> Attributions:
    """captum IntegratedGradients from the all-zero baseline; rows whose completeness error exceeds `tolerance`
    (relative to |f(x) - f(0)|, or IG_ATOL absolute) are recomputed with doubled steps up to `max_steps`.

    At most `batch_size` interpolated rows (rows x steps) go through the module at once, so memory does not grow
    with `n_steps` or the refinement."""
    import torch
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(module)
    N, D = Z.shape
    values = np.zeros((N, D))
    delta = np.zeros(N)
    steps_used = np.full(N, int(n_steps))
    base = torch.zeros_like(Z)
    f_x = _forward(module, Z)
    f_b = _forward(module, base[:1]).repeat(N) if N else np.zeros(0)

    rows = max(1, min(64, int(batch_size)))  # rows per captum call; each pass holds batch_size // rows steps of them

    def run(idx: np.ndarray, steps: int) -> None:
        for i in range(0, len(idx), rows):
            sel = idx[i : i + rows]
            zb = Z[torch.from_numpy(sel)]
            attr, d = ig.attribute(
                zb,
                baselines=torch.zeros_like(zb),
                n_steps=int(steps),
                internal_batch_size=max(int(batch_size), len(sel)),
                return_convergence_delta=True,
            )
            values[sel] = attr.detach().double().numpy()
            delta[sel] = d.detach().double().numpy()
            steps_used[sel] = int(steps)

    run(np.arange(N), int(n_steps))
    steps = int(n_steps)
    while steps < max_steps:
        bad = np.flatnonzero(~completeness_ok(delta, f_x - f_b, tolerance))
        if not len(bad):
            break
        steps = min(2 * steps, int(max_steps))
        run(bad, steps)
    return Attributions("ig", values, delta, steps_used, f_x, f_b)


def completeness_ok(delta: np.ndarray, diff: np.ndarray, tolerance: float = IG_TOLERANCE) -> np.ndarray:
    """Rows whose IG completeness error is within `tolerance` of |f(x) - f(baseline)| (or IG_ATOL absolute)."""
    return np.abs(delta) <= np.maximum(tolerance * np.abs(diff), IG_ATOL)


def attribute(
    module: nn.Module, Z: torch.Tensor, method: str, n_steps: int = 64, batch_size: int = 256
) -> Attributions:
    """Attributions of the spoof-positive `module` output w.r.t. standardised features Z [N, D] by `method`,
    `batch_size` rows (for IG: interpolated rows) per forward/backward pass."""
    import torch
    from captum.attr import InputXGradient, Saliency

    if method == "ig":
        return integrated_gradients(module, Z, n_steps=n_steps, batch_size=batch_size)
    if method == "saliency":
        algo = Saliency(module)
        kw: dict[str, Any] = {"abs": True}
    elif method == "ixg":
        algo, kw = InputXGradient(module), {}
    else:
        raise UsageError(f"unknown attribution method {method!r}", f"choose from {', '.join(METHODS)}")
    parts = []
    for i in range(0, len(Z), batch_size):
        zb = Z[i : i + batch_size].clone().requires_grad_(True)
        with torch.enable_grad():
            parts.append(algo.attribute(zb, **kw).detach().double().numpy())
    values = np.concatenate(parts) if parts else np.zeros((0, Z.shape[1]))
    return Attributions(method, values)


# --------------------------------------------------------------------------------------------------- aggregation
def group_sums(values: np.ndarray, groups: Sequence[FeatureGroup]) -> np.ndarray:
    """[N, D] -> [N, G]: the sum of each group's columns (columns outside every group are not counted)."""
    return (
        np.stack([values[:, g.start : g.stop].sum(axis=1) for g in groups], axis=1)
        if groups
        else np.zeros((len(values), 0))
    )


def check_groups(groups: Sequence[FeatureGroup], dim: int) -> list[FeatureGroup]:
    """Groups must tile 0..dim without overlap so group totals add up to feature totals; otherwise one group."""
    from dfdet.features import FeatureGroup as FG

    gs = sorted(groups, key=lambda g: g.start)
    pos = 0
    for g in gs:
        if g.start != pos or g.stop <= g.start:
            break
        pos = g.stop
    else:
        if pos == dim and gs:
            return gs
    return [FG("all", 0, dim)]


def aggregate(
    values: np.ndarray, feature_names: Sequence[str], groups: Sequence[FeatureGroup], top: int = 20
) -> dict[str, Any]:
    """Mean |attribution| and mean signed attribution per feature, their group totals and shares, top features."""
    n = len(values)
    if n == 0:
        return {"n": 0}
    mean_abs = np.abs(values).mean(axis=0)
    mean_signed = values.mean(axis=0)
    total_abs = float(mean_abs.sum())
    group_abs = {g.name: float(mean_abs[g.start : g.stop].sum()) for g in groups}
    group_signed = {g.name: float(mean_signed[g.start : g.stop].sum()) for g in groups}
    order = np.argsort(-mean_abs, kind="stable")[:top]
    return {
        "n": int(n),
        "feature_mean_abs": [float(v) for v in mean_abs],
        "feature_mean_signed": [float(v) for v in mean_signed],
        "total_mean_abs": total_abs,
        "total_mean_signed": float(mean_signed.sum()),
        "group_mean_abs": group_abs,
        "group_mean_signed": group_signed,
        "group_share_abs": {k: (v / total_abs if total_abs > 0 else float("nan")) for k, v in group_abs.items()},
        "top_features": [
            {
                "rank": r + 1,
                "index": int(i),
                "name": str(feature_names[i]),
                "group": _group_of(int(i), groups),
                "mean_abs": float(mean_abs[i]),
                "mean_signed": float(mean_signed[i]),
            }
            for r, i in enumerate(order)
        ],
    }


def _group_of(i: int, groups: Sequence[FeatureGroup]) -> str:
    for g in groups:
        if g.start <= i < g.stop:
            return g.name
    return ""


def splits(y: np.ndarray, correct: np.ndarray) -> dict[str, np.ndarray]:
    """Row masks: all, by class and by correctness (at the detector's threshold)."""
    known = y >= 0
    return {
        "all": np.ones(len(y), dtype=bool),
        "bonafide": y == 0,
        "spoof": y == 1,
        "correct": known & correct,
        "incorrect": known & ~correct,
    }


# --------------------------------------------------------------------------------------------------- driver
def explain_detector(
    det: DiffDetector,
    X: Any,
    y: Any,
    opts: ExplainOptions = ExplainOptions(),
    utt_ids: Sequence[str] | None = None,
    progress: Callable[[Any], Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Attributions of one detector on raw features X [N, D] with labels y (0/1, -1 unknown).

    Returns (summary dict, per-sample records). Aggregates are split by class and by correctness. A frame detector
    (`input_kind == "frames"`, X a list of [T, D] frame matrices) goes to `explain_frames`.
    """
    if getattr(det, "input_kind", "vector") == "frames":
        return explain_frames(det, X, y, opts, utt_ids=utt_ids, progress=progress)
    methods = parse_methods(list(METHODS if opts.methods is None else opts.methods))
    n_steps, top = opts.n_steps, opts.top
    y = np.asarray(y, dtype=np.int64).ravel()
    Z = det.standardize(X)
    N, D = Z.shape
    if N == 0:
        raise DfdetError("no rows to explain", "pass a feature store with at least one row")
    if len(y) != N:
        raise DfdetError(f"{len(y)} labels for {N} rows", "pass one label per row")
    names = list(opts.feature_names or det.feature_names or [f"f{i:03d}" for i in range(D)])
    if len(names) != D:
        names = [f"f{i:03d}" for i in range(D)]
    gs = check_groups(list(opts.groups or det.groups or []), D)
    module = SpoofOutput.of(det.score_module)
    scores = det.scores_std(Z)
    decision = (scores < det.threshold).astype(np.int64)
    correct = decision == y
    masks = splits(y, correct)
    ids = list(utt_ids) if utt_ids is not None else [str(i) for i in range(N)]

    summary: dict[str, Any] = {
        "output": "spoof-positive: f = -(bona-fide-positive score); positive attribution pushes towards spoof",
        "input_space": "standardised features (training scaler)",
        "exact_gradients": bool(det.exact),  # False: an isotonic calibration; its pre-calibration score is explained
        "rows": int(N),
        "threshold": float(det.threshold),
        "accuracy": float(correct[y >= 0].mean()) if (y >= 0).any() else None,
        "groups": [[g.name, g.start, g.stop] for g in gs],
        "feature_names": names,
        "methods": {},
    }
    results: dict[str, Attributions] = {}
    it = progress(methods) if progress is not None else methods
    for m in it:
        a = attribute(module, Z, m, n_steps=n_steps, batch_size=pass_rows(det))
        results[m] = a
        rec: dict[str, Any] = {"captum": METHOD_NAMES[m]}
        if m == "ig":
            rec["baseline"] = "zeros in standardised space (= the training mean)"
            rec["n_steps"] = int(n_steps)
            rec["n_steps_max_used"] = int(a.n_steps.max())
            rec["rows_refined"] = int((a.n_steps > n_steps).sum())
            rec["completeness"] = completeness_record(a)
        rec["splits"] = {k: aggregate(a.values[mask], names, gs, top) for k, mask in masks.items()}
        summary["methods"][m] = rec

    records: list[dict[str, Any]] = []
    if opts.per_sample:
        gsums = {m: group_sums(a.values, gs) for m, a in results.items()}
        gabs = {m: group_sums(np.abs(a.values), gs) for m, a in results.items()}
        for i in range(N):
            r = _sample_head(ids[i], int(y[i]), float(scores[i]), bool(decision[i]), bool(correct[i]))
            for m, a in results.items():
                v = a.values[i]
                entry: dict[str, Any] = {
                    "total": float(v.sum()),
                    "total_abs": float(np.abs(v).sum()),
                    "groups": {g.name: float(gsums[m][i, k]) for k, g in enumerate(gs)},
                    "groups_abs": {g.name: float(gabs[m][i, k]) for k, g in enumerate(gs)},
                }
                if opts.per_sample_top > 0:
                    top_i = np.argsort(-np.abs(v), kind="stable")[: opts.per_sample_top]
                    entry["top"] = [[names[j], float(v[j])] for j in top_i]
                if a.delta is not None:
                    entry["delta"] = float(a.delta[i])
                    entry["f_x_minus_f_baseline"] = float(a.f_x[i] - a.f_baseline[i])
                    entry["n_steps"] = int(a.n_steps[i])
                r[m] = entry
            records.append(r)
    return summary, records


# --------------------------------------------------------------------------------------------------- frame models
def frame_methods(methods: str | Sequence[str]) -> list[str]:
    """The methods offered on frame models; integrated gradients is refused with the fix."""
    methods = parse_methods(methods if isinstance(methods, str) else list(methods))
    if "ig" in methods:
        raise UsageError(
            "integrated gradients is not offered for frame models (its path integral runs every chunk of every "
            "utterance once per step)",
            "use --methods saliency,ixg",
        )
    return methods


def frame_attributions(det: DiffDetector, inputs: Sequence[Any], method: str, module: nn.Module) -> list[np.ndarray]:
    """[T, D] attributions of `module`'s spoof-positive output for each utterance in `inputs` (tensors [T, D]), in
    the detector's equal-length batches (`FrameDiffDetector.batches`: utterances grouped up to its chunk budget; an
    utterance longer than the budget goes alone, all its chunks in one pass)."""
    import torch
    from captum.attr import InputXGradient, Saliency

    algo, kw = (Saliency(module), {"abs": True}) if method == "saliency" else (InputXGradient(module), {})
    out: list[np.ndarray] = [np.zeros(0)] * len(inputs)
    for rows in det.batches(inputs):
        zb = torch.stack([inputs[i] for i in rows]).clone().requires_grad_(True)
        with torch.enable_grad():
            a = algo.attribute(zb, **kw).detach().double().numpy()
        for j, i in enumerate(rows):
            out[i] = a[j]
    return out


def time_bins(n: int, bins: int = TIME_BINS) -> np.ndarray:
    """Relative-time bin (0..bins-1) of each of n frames: bin b holds frames with b <= bins * t / n < b + 1."""
    return np.minimum((np.arange(n) * bins) // max(n, 1), bins - 1)


def time_profile(a: np.ndarray, bins: int = TIME_BINS) -> np.ndarray:
    """[T, K] |attributions| -> [bins, K] shares of the utterance's total (bins with no frame: 0), so each
    utterance weighs the same in an average whatever its length."""
    tot = np.zeros((bins, a.shape[1]))
    np.add.at(tot, time_bins(len(a), bins), np.abs(a))
    s = tot.sum()
    return tot / s if s > 0 else tot


def band_saliency(det: DiffDetector, mats: Sequence[np.ndarray], view: Any) -> list[np.ndarray]:
    """|d f / d E| per frame and band: saliency w.r.t. the log band energies E the frames are computed from
    (`BandView`), through the recipe's own frame map and the detector's scaler."""
    import torch
    from torch import nn

    mean = torch.as_tensor(np.asarray(det.mean, dtype=np.float64), dtype=torch.float32)
    scale = torch.as_tensor(np.asarray(det.scale, dtype=np.float64), dtype=torch.float32)
    inner = SpoofOutput.of(det.score_module)

    class FromBands(nn.Module):
        def forward(self, E):
            return inner((view.frames_of_bands(E) - mean) / scale)

    E = [torch.from_numpy(view.bands_of_frames(m).astype(np.float32)) for m in mats]
    return frame_attributions(det, E, "saliency", FromBands().eval())


def explain_frames(
    det: DiffDetector,
    X: Any,
    y: Any,
    opts: ExplainOptions = ExplainOptions(),
    utt_ids: Sequence[str] | None = None,
    progress: Callable[[Any], Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Attributions of a frame detector on whole utterances X (a list of [T, D] frame matrices).

    Each method (saliency, input x gradient) is taken w.r.t. the standardised frames and summed over time per frame
    dimension (then aggregated as for vector models), and profiled over TIME_BINS relative-time bins. Where the
    recipe has a `BandView` (lfcc), `time_frequency` is saliency w.r.t. the log filterbank energies: each
    utterance's |gradient| as shares over (time bin, band), averaged over utterances (each weighs the same)."""
    methods = frame_methods(FRAME_METHODS if opts.methods is None else opts.methods)
    top = opts.top
    mats = [np.asarray(m) for m in X]
    y = np.asarray(y, dtype=np.int64).ravel()
    N = len(mats)
    if N == 0:
        raise DfdetError("no utterances to explain", "pass a frame store with at least one row")
    if len(y) != N:
        raise DfdetError(f"{len(y)} labels for {N} utterances", "pass one label per utterance")
    Z = det.standardize(mats)
    D = det.input_dim
    names = list(opts.feature_names or det.feature_names or [])
    if len(names) != D:
        names = [f"f{i:03d}" for i in range(D)]
    gs = check_groups(list(opts.groups or det.groups or []), D)
    scores = det.scores_std(Z)
    decision = (scores < det.threshold).astype(np.int64)
    correct = decision == y
    masks = splits(y, correct)
    ids = list(utt_ids) if utt_ids is not None else [str(i) for i in range(N)]
    module = SpoofOutput.of(det.score_module)
    n_frames = np.array([len(m) for m in mats])

    summary: dict[str, Any] = {
        "output": "spoof-positive: f = -(bona-fide-positive score); positive attribution pushes towards spoof",
        "input_space": "standardised frames (per-dimension training scaler); per-dimension values are sums over "
        "each utterance's frames",
        "input_kind": "frames",
        "exact_gradients": bool(det.exact),
        "rows": int(N),
        "frames": {"total": int(n_frames.sum()), "min": int(n_frames.min()), "max": int(n_frames.max())},
        "threshold": float(det.threshold),
        "accuracy": float(correct[y >= 0].mean()) if (y >= 0).any() else None,
        "groups": [[g.name, g.start, g.stop] for g in gs],
        "feature_names": names,
        "time_bins": TIME_BINS,
        "methods": {},
    }
    per_frame: dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray]] = {}  # attributions, sums, time profiles
    it = progress(methods) if progress is not None else methods
    for m in it:
        a = frame_attributions(det, Z, m, module)
        sums = np.stack([v.sum(axis=0) for v in a])
        prof = np.stack([time_profile(v).sum(axis=1) for v in a])
        per_frame[m] = (a, sums, prof)
        rec: dict[str, Any] = {"captum": METHOD_NAMES[m]}
        rec["splits"] = {k: aggregate(sums[mask], names, gs, top) for k, mask in masks.items()}
        rec["time_profile"] = {
            "definition": f"share of each utterance's total |attribution| in each of {TIME_BINS} relative-time bins, "
            "averaged over utterances",
            **{k: [float(v) for v in prof[mask].mean(axis=0)] for k, mask in masks.items() if mask.any()},
        }
        summary["methods"][m] = rec

    view = _band_view(det)
    band_maps: list[np.ndarray] = []
    if view is not None:
        band_maps = [time_profile(b) for b in band_saliency(det, mats, view)]
        maps = np.stack(band_maps)
        tf: dict[str, Any] = {
            "definition": "saliency |d f / d E| w.r.t. the log filterbank energies E the frames are computed from "
            f"(recipe {det.recipe}): each utterance's shares over ({TIME_BINS} relative-time bins x bands), averaged "
            "over utterances",
            "bands": list(view.names),
            "centres_hz": list(view.centres_hz),
            "splits": {},
        }
        for k, mask in masks.items():
            if mask.any() and k in ("all", "bonafide", "spoof"):
                mm = maps[mask].mean(axis=0)
                tf["splits"][k] = {
                    "map": [[float(v) for v in row] for row in mm],
                    "band_share": [float(v) for v in mm.sum(axis=0)],
                    "time_share": [float(v) for v in mm.sum(axis=1)],
                }
        summary["time_frequency"] = tf
    else:
        summary["time_frequency"] = None
        summary["time_frequency_note"] = f"recipe {det.recipe} declares no band view; see the per-dimension values"

    records: list[dict[str, Any]] = []
    if opts.per_sample:
        for i in range(N):
            r = _sample_head(ids[i], int(y[i]), float(scores[i]), bool(decision[i]), bool(correct[i]))
            r["n_frames"] = int(n_frames[i])
            for m, (a, sums, prof) in per_frame.items():
                v = sums[i]
                va = np.abs(a[i]).sum(axis=0)
                entry: dict[str, Any] = {
                    "total": float(v.sum()),
                    "total_abs": float(va.sum()),
                    "groups": {g.name: float(v[g.start : g.stop].sum()) for g in gs},
                    "groups_abs": {g.name: float(va[g.start : g.stop].sum()) for g in gs},
                    "time_profile": [float(t) for t in prof[i]],
                }
                if opts.per_sample_top > 0:
                    top_i = np.argsort(-np.abs(v), kind="stable")[: opts.per_sample_top]
                    entry["top"] = [[names[j], float(v[j])] for j in top_i]
                r[m] = entry
            if band_maps:
                r["band_share"] = {n: float(v) for n, v in zip(view.names, band_maps[i].sum(axis=0), strict=True)}
            records.append(r)
    return summary, records


def _band_view(det: DiffDetector) -> Any:
    """The detector's recipe's BandView, or None (unknown recipe, or one without a band view)."""
    from dfdet.features import get_recipe

    try:
        recipe = get_recipe(str(det.recipe))
    except DfdetError:
        return None
    fn = getattr(recipe, "band_view", None)
    return fn() if fn is not None else None


def completeness_record(a: Attributions) -> dict[str, Any]:
    """How well IG satisfied completeness: sum(attr) = f(x) - f(baseline)."""
    diff = a.f_x - a.f_baseline
    ok = completeness_ok(a.delta, diff)
    rel = np.abs(a.delta) / np.maximum(np.abs(diff), 1e-12)
    return {
        "tolerance": IG_TOLERANCE,
        "atol": IG_ATOL,
        "fraction_within_tolerance": float(ok.mean()) if len(ok) else float("nan"),
        "max_abs_delta": float(np.abs(a.delta).max()) if len(ok) else float("nan"),
        "median_rel_delta": float(np.median(rel)) if len(ok) else float("nan"),
        "max_rel_delta_where_diff_gt_atol": float(rel[np.abs(diff) > IG_ATOL].max())
        if (np.abs(diff) > IG_ATOL).any()
        else 0.0,
        "f_baseline": float(a.f_baseline[0]) if len(ok) else float("nan"),
    }


def _sample_head(utt_id: str, y: int, score: float, spoof: bool, correct: bool) -> dict[str, Any]:
    """The fields every per-sample record starts with."""
    return {
        "utt_id": utt_id,
        "label": _label_name(y),
        "score": score,
        "decision": "spoof" if spoof else "bonafide",
        "correct": correct if y >= 0 else None,
    }


def _label_name(v: int) -> str | None:
    return {0: "bonafide", 1: "spoof"}.get(v)


def explain(
    det: DiffDetector,
    X: Any,
    y: Any,
    opts: ExplainOptions = ExplainOptions(),
    members: bool = True,
    utt_ids: Sequence[str] | None = None,
    progress: Callable[[Any], Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`explain_detector` on the detector and, for an ensemble, on each member (in its own standardised space).

    Per-sample records are those of the detector itself (the fused output for an ensemble).
    """
    summary, records = explain_detector(det, X, y, opts, utt_ids=utt_ids, progress=progress)
    summary["schema"] = "dfdet.explain/1"
    summary["detector_kind"] = det.kind
    summary["detector"] = det.path
    if members and det.members:
        summary["members"] = {}
        member_opts = replace(opts, per_sample=False)
        for name, m in det.members:
            ms, _ = explain_detector(m, X, y, member_opts, utt_ids=utt_ids, progress=progress)
            ms["detector"] = m.path
            summary["members"][name] = ms
    return summary, records


def format_summary(summary: dict[str, Any], top: int = 10) -> str:
    """Text lines for stderr: group shares and top features per method (all rows)."""
    lines = []
    tf = summary.get("time_frequency")
    if tf:
        share = np.asarray(tf["splits"]["all"]["band_share"])
        order = np.argsort(-share, kind="stable")[:5]
        lines.append("saliency by band (log filterbank energy): " + ", ".join(
            f"{tf['bands'][i]} {100 * share[i]:.1f} %" for i in order))  # fmt: skip
    for m, rec in summary["methods"].items():
        agg = rec["splits"]["all"]
        shares = ", ".join(f"{k} {100 * v:.1f} %" for k, v in agg["group_share_abs"].items())
        lines.append(f"{m}: group share of mean |attribution|: {shares}")
        tops = ", ".join(f"{t['name']} ({t['mean_abs']:.3g})" for t in agg["top_features"][:top])
        lines.append(f"{m}: top features: {tops}")
        if "completeness" in rec:
            c = rec["completeness"]
            lines.append(
                f"ig completeness: {100 * c['fraction_within_tolerance']:.1f} % of rows within "
                f"{100 * c['tolerance']:.0f} % (max |delta| {c['max_abs_delta']:.2e})"
            )
    return "\n".join(lines)
