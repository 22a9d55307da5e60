"""Shortcut scan: features that alone (nearly) separate bona fide from spoof.

Why: on the study's matrix one feature (column 86, the mean spectral contrast of the top band) separates the
classes with AUC 0.9999 and every feature group alone reaches >= 94 % accuracy: a detector can be right for the
wrong reason (a recording-chain or band-limit artefact instead of a synthesis artefact). No model is needed.

Per feature: the univariate ROC-AUC of the raw value as a bona-fide score (sklearn; 1 - AUC when higher values mean
spoof), the best single-threshold accuracy over both directions, and a flag when AUC >= threshold or
<= 1 - threshold. Optionally per attack system (its spoofs vs all bona fide) and a per-group classifier
(cross-validated logistic regression on one group alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.errors import DfdetError, UsageError

if TYPE_CHECKING:
    from dfdet.features import FeatureGroup
    from dfdet.store import FeatureSet

DEFAULT_THRESHOLD = 0.95


def _labelled(X: Any, y: Any, what: str = "features") -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64).ravel()
    if X.ndim != 2 or len(X) != len(y):
        raise DfdetError(f"{what}: X has shape {X.shape} for {len(y)} labels", "pass one label per row")
    keep = y >= 0
    X, y = X[keep], y[keep]
    if len(y) == 0:
        raise DfdetError(f"{what}: no labelled rows", "the shortcut scan needs bona fide and spoof labels")
    if len(np.unique(y)) < 2:
        raise DfdetError(f"{what}: only one class among the labelled rows", "the scan needs both bona fide and spoof")
    return X, y


def feature_aucs(X: Any, y: Any) -> np.ndarray:
    """ROC-AUC of each column as a bona-fide score (bona fide = positive class), via sklearn's roc_auc_score."""
    from sklearn.metrics import roc_auc_score

    X, y = _labelled(X, y)
    t = (y == 0).astype(int)
    out = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        col = X[:, j]
        out[j] = roc_auc_score(t, col) if np.isfinite(col).all() else np.nan
    return out


def best_threshold_accuracy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: the best accuracy of one threshold in either direction, that threshold (midpoint between the two
    values it separates) and the direction (+1: value >= threshold -> bona fide; -1: value >= threshold -> spoof).

    Ties are never split: a cut lies only between distinct values (or outside the range: everything one class).
    """
    X, y = _labelled(X, y)
    n, d = X.shape
    order = np.argsort(X, axis=0, kind="stable")
    xs = np.take_along_axis(X, order, axis=0)
    is_spoof = (y[order] == 1).astype(np.int64)
    n_spoof = int((y == 1).sum())
    n_bona = n - n_spoof
    # cut k (0..n): rows [0, k) are below the threshold
    cum_spoof = np.vstack([np.zeros((1, d), np.int64), np.cumsum(is_spoof, axis=0)])
    cum_bona = np.arange(n + 1)[:, None] - cum_spoof
    low_spoof = cum_spoof + (n_bona - cum_bona)  # below -> spoof, above -> bona fide (direction +1)
    low_bona = cum_bona + (n_spoof - cum_spoof)  # below -> bona fide (direction -1)
    valid = np.ones((n + 1, d), dtype=bool)
    valid[1:n] = xs[1:] > xs[:-1]
    a = np.where(valid, low_spoof, -1)
    b = np.where(valid, low_bona, -1)
    best_a, best_b = a.max(axis=0), b.max(axis=0)
    ka, kb = a.argmax(axis=0), b.argmax(axis=0)
    direction = np.where(best_a >= best_b, 1, -1)
    k = np.where(direction == 1, ka, kb)
    acc = np.maximum(best_a, best_b) / n

    def cut_value(kk: int, j: int) -> float:
        if kk == 0:
            return float(xs[0, j] - 1.0)
        if kk == n:
            return float(xs[-1, j] + 1.0)
        return float(0.5 * (xs[kk - 1, j] + xs[kk, j]))

    thr = np.array([cut_value(int(k[j]), j) for j in range(d)])
    return acc, thr, direction


def scan_features(
    X: Any,
    y: Any,
    feature_names: Sequence[str] | None = None,
    groups: Sequence[FeatureGroup] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """AUC, best single-threshold accuracy and a flag for every feature; flagged features sorted by separation."""
    if not 0.5 < float(threshold) <= 1.0:
        raise UsageError(f"--threshold must be in (0.5, 1], got {threshold}", "e.g. --threshold 0.95")
    X, y = _labelled(X, y)
    d = X.shape[1]
    names = list(feature_names) if feature_names is not None and len(feature_names) == d else None
    names = names or [f"f{i:03d}" for i in range(d)]
    aucs = feature_aucs(X, y)
    acc, thr, direction = best_threshold_accuracy(X, y)
    sep = np.maximum(aucs, 1.0 - aucs)
    flagged = (aucs >= threshold) | (aucs <= 1.0 - threshold)
    group_of = {}
    for g in groups or []:
        for i in range(g.start, g.stop):
            group_of[i] = g.name
    feats = [
        {
            "index": j,
            "name": names[j],
            "group": group_of.get(j, ""),
            "auc": float(aucs[j]),
            "separation_auc": float(sep[j]),
            "higher_means": "bonafide" if aucs[j] >= 0.5 else "spoof",
            "best_accuracy": float(acc[j]),
            "best_threshold": float(thr[j]),
            "flagged": bool(flagged[j]),
        }
        for j in range(d)
    ]
    order = sorted(range(d), key=lambda j: (-sep[j], j))
    return {
        "rows": int(len(y)),
        "n_bonafide": int((y == 0).sum()),
        "n_spoof": int((y == 1).sum()),
        "threshold": float(threshold),
        "rule": f"flag when AUC >= {threshold} or AUC <= {1 - threshold:.4g} (AUC of the raw value as a bona-fide "
        "score; best_accuracy over one threshold in either direction)",
        "n_flagged": int(flagged.sum()),
        "flagged": [feats[j] for j in order if flagged[j]],
        "ranking": [feats[j]["index"] for j in order],
        "features": feats,
    }


def scan_by_system(
    X: Any,
    y: Any,
    systems: Sequence[str],
    feature_names: Sequence[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    top: int = 10,
) -> dict[str, Any]:
    """The scan within each attack system: that system's spoofs vs all bona fide rows."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64).ravel()
    sys_arr = np.asarray([str(s) for s in systems], dtype=object)
    spoof_systems = sorted({s for s, lab in zip(sys_arr, y, strict=True) if lab == 1 and s not in ("", "-")})
    out: dict[str, Any] = {}
    for s in spoof_systems:
        mask = (y == 0) | ((y == 1) & (sys_arr == s))
        res = scan_features(X[mask], y[mask], feature_names, None, threshold)
        out[s] = {
            "rows": res["rows"],
            "n_spoof": res["n_spoof"],
            "n_flagged": res["n_flagged"],
            "flagged": [{k: f[k] for k in ("index", "name", "auc", "best_accuracy")} for f in res["flagged"]],
            "top": [
                {k: res["features"][j][k] for k in ("index", "name", "auc", "separation_auc", "best_accuracy")}
                for j in res["ranking"][:top]
            ],
        }
    return out


def group_classifiers(X: Any, y: Any, groups: Sequence[FeatureGroup], folds: int = 5, seed: int = 42) -> dict:
    """Cross-validated accuracy of a logistic regression (standardised, C = 1) on each feature group alone."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _labelled(X, y)
    n_min = int(min((y == 0).sum(), (y == 1).sum()))
    k = max(2, min(int(folds), n_min))
    if n_min < 2:
        raise DfdetError("too few rows per class for cross-validation", "pass at least 2 rows of each class")
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    out = {}
    for g in groups:
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        acc = cross_val_score(pipe, X[:, g.start : g.stop], y, cv=cv, scoring="accuracy")
        out[g.name] = {
            "columns": [g.start, g.stop],
            "cv_accuracy": float(acc.mean()),
            "cv_accuracy_std": float(acc.std()),
        }
    return {"model": "StandardScaler + LogisticRegression(C=1)", "folds": k, "seed": int(seed), "groups": out}


def shortcut_scan(
    fs: FeatureSet,
    threshold: float = DEFAULT_THRESHOLD,
    by_system: bool = False,
    group_cv: bool = False,
    seed: int = 42,
) -> dict[str, Any]:
    """The whole scan of a FeatureSet (what `dfdet explain --shortcuts` writes)."""
    if len(fs) == 0:
        raise DfdetError(f"{fs.source or 'features'}: no rows", "pass a feature store with labelled rows")
    res = {"schema": "dfdet.shortcuts/1", **scan_features(fs.X, fs.y, fs.feature_names, fs.groups, threshold)}
    res["source"] = fs.source
    if by_system:
        if not any(s and s != "-" for s in fs.system):
            res["by_system"] = {}
            res["by_system_note"] = "no attack-system column in these features"
        else:
            res["by_system"] = scan_by_system(fs.X, fs.y, fs.system, fs.feature_names, threshold)
    if group_cv:
        from dfdet.explain import check_groups

        res["group_classifiers"] = group_classifiers(fs.X, fs.y, check_groups(fs.groups, fs.dim), seed=seed)
    return res


def format_scan(res: dict[str, Any], top: int = 10) -> str:
    """Text for stderr: the flagged features, and per-group classifier accuracies when computed."""
    lines = [f"{res['n_flagged']} of {len(res['features'])} feature(s) flagged ({res['rule'].split(' (')[0]})"]
    for f in res["flagged"][:top]:
        lines.append(
            f"  [{f['index']}] {f['name']} ({f['group'] or '-'}): AUC {f['auc']:.4f}, best accuracy "
            f"{100 * f['best_accuracy']:.1f} % (higher = {f['higher_means']})"
        )
    if len(res["flagged"]) > top:
        lines.append(f"  ... and {len(res['flagged']) - top} more")
    gc = res.get("group_classifiers")
    if gc:
        parts = ", ".join(f"{k} {100 * v['cv_accuracy']:.1f} %" for k, v in gc["groups"].items())
        lines.append(f"single-group classifiers ({gc['folds']}-fold CV accuracy): {parts}")
    return "\n".join(lines)
