"""Score fusion: combine several detectors' bona-fide-positive scores into one, honestly evaluated.

Every fuser here is linear in per-member z-normalised scores: fused = sum_m w_m * (s_m - mean_m) / std_m + c, where
mean/std are fitted on the fitting data. The methods differ in how the signed weights w are chosen:

- `mean`: w_m = 1/M, no flips, c = 0.
- `auc2` (the study's rule): each member's ROC-AUC on the fitting data; a member with AUC < 0.5 ("inverted
  learning") is flipped (its scores negated, AUC -> 1 - AUC); weights AUC^2 normalised to sum 1; c = 0.
- `logistic`: L2-regularised logistic regression (C = 1.0 by default, stated in the file) of bona fide vs spoof on the
  z-scores with balanced class weights, so the fused score is the decision function, an LLR-like log-odds at equal
  priors. A negative coefficient is reported as a flip.

`cross_validate_fusion` gives out-of-fold scores where every data-dependent choice (z-parameters, flips, weights,
calibration, threshold) is fitted on the training folds only; `in_sample_fusion` fits and evaluates on the same data
(the study's optimistic protocol) and labels its result as such.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dfdet.calibration import (
    DEFAULT_C_FA,
    DEFAULT_C_MISS,
    DEFAULT_P_SPOOF,
    SCHEMA_VERSION,
    Calibrator,
    _floats,
    _weighted_logistic,
    calibrator_from_dict,
    check_labelled,
    class_weights,
    decide,
    decision_metrics,
    fit_threshold,
    make_calibrator,
    parse_threshold_policy,
    threshold_record,
)
from dfdet.errors import DfdetError

IN_SAMPLE_LABEL = "in-sample (optimistic)"


# --------------------------------------------------------------------------------------------------- checks
def check_matrix(S: Any, what: str = "score matrix") -> np.ndarray:
    """A finite float64 [N, M] matrix of member scores (a vector is one member)."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim == 1:
        S = S[:, None]
    if S.ndim != 2 or S.shape[1] == 0:
        raise DfdetError(f"{what} must be [utterances, members], got shape {S.shape}", "pass one column per member")
    if not np.all(np.isfinite(S)):
        bad = np.flatnonzero(~np.all(np.isfinite(S), axis=0))
        raise DfdetError(f"{what}: NaN or infinite scores in member(s) {bad.tolist()}", "rescore or drop those rows")
    return S


def check_labelled_matrix(S: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    S = check_matrix(S)
    _, y = check_labelled(S[:, 0], y, what="fusion data")
    return S, y


def member_aucs(S: Any, y: Any) -> np.ndarray:
    """ROC-AUC of each member (bona-fide-positive scores, detecting bona fide)."""
    from dfdet.metrics import roc_auc

    S, y = check_labelled_matrix(S, y)
    return np.array([float(roc_auc(S[:, m], y)) for m in range(S.shape[1])])


def inverted_members(S: Any, y: Any, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Members whose AUC < 0.5 on these data (they rank spoof above bona fide: inverted learning / domain shift)."""
    aucs = member_aucs(S, y)
    names = list(names) if names is not None else [f"member{m}" for m in range(len(aucs))]
    return [{"index": m, "name": names[m], "auc": float(a)} for m, a in enumerate(aucs) if a < 0.5]


# --------------------------------------------------------------------------------------------------- fusers
class Fuser:
    """Base: fit(S, y) -> self; transform(S) -> fused; to_dict()/from_dict() with exact JSON round-trips."""

    name = ""

    def __init__(self) -> None:
        self.fitted = False
        self.aucs: np.ndarray | None = None

    def fit(self, S: Any, y: Any) -> Fuser:
        S, y = check_labelled_matrix(S, y)
        self.mean = S.mean(axis=0)
        sd = S.std(axis=0)
        self.std = np.where(sd > 0, sd, 1.0)
        self._fit((S - self.mean) / self.std, y, S)
        self.fitted = True
        return self

    def transform(self, S: Any) -> np.ndarray:
        if not self.fitted:
            raise DfdetError(f"{self.name} fuser is not fitted", "call fit() or load an ensemble file")
        S = check_matrix(S)
        if S.shape[1] != len(self.weights):
            raise DfdetError(
                f"{S.shape[1]} member scores given, the ensemble has {len(self.weights)}", "pass all members"
            )
        # A fixed-order float64 sum over members (elementwise ufuncs, no BLAS): the fused score of a row does not
        # depend on the matrix's layout, alignment, batch or CPU (BLAS dot products do, in the last bits).
        fused = np.full(len(S), float(self.intercept))
        for m, w in enumerate(self.weights):
            fused += (S[:, m] - self.mean[m]) / self.std[m] * w
        return fused

    @property
    def flips(self) -> list[bool]:
        return [bool(w < 0) for w in self.weights]

    def to_dict(self) -> dict[str, Any]:
        d = {
            "method": self.name,
            "z_mean": _floats(self.mean),
            "z_std": _floats(self.std),
            "weights": _floats(self.weights),
            "intercept": float(self.intercept),
            "flips": self.flips,
            "formula": "fused = sum_m weights[m] * (s_m - z_mean[m]) / z_std[m] + intercept",
        }
        if self.aucs is not None:
            d["fitting_aucs"] = _floats(self.aucs)
        d.update(self._extra())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fuser:
        obj = cls(**cls._init_kwargs(d))
        obj.mean = np.asarray(d["z_mean"], dtype=np.float64)
        obj.std = np.asarray(d["z_std"], dtype=np.float64)
        obj.weights = np.asarray(d["weights"], dtype=np.float64)
        obj.intercept = float(d["intercept"])
        if d.get("fitting_aucs") is not None:
            obj.aucs = np.asarray(d["fitting_aucs"], dtype=np.float64)
        obj.fitted = True
        return obj

    @classmethod
    def _init_kwargs(cls, d: dict[str, Any]) -> dict[str, Any]:
        return {}

    def _extra(self) -> dict[str, Any]:
        return {}

    def _fit(self, Z: np.ndarray, y: np.ndarray, S: np.ndarray) -> None:
        raise NotImplementedError


FUSERS: dict[str, type[Fuser]] = {}


def register_fuser(cls: type[Fuser]) -> type[Fuser]:
    FUSERS[cls.name] = cls
    return cls


@register_fuser
class MeanFuser(Fuser):
    """Mean of z-normalised member scores (no flips)."""

    name = "mean"

    def _fit(self, Z, y, S):
        self.aucs = member_aucs(S, y)
        self.weights = np.full(Z.shape[1], 1.0 / Z.shape[1])
        self.intercept = 0.0


@register_fuser
class Auc2Fuser(Fuser):
    """The study's rule: flip members with AUC < 0.5, weight by AUC^2 (after flipping) normalised to sum 1."""

    name = "auc2"

    def _fit(self, Z, y, S):
        self.aucs = member_aucs(S, y)
        sign = np.where(self.aucs < 0.5, -1.0, 1.0)
        eff = np.where(sign < 0, 1.0 - self.aucs, self.aucs)
        w = eff**2
        self.weights = sign * w / w.sum()
        self.intercept = 0.0

    def _extra(self):
        eff = np.where(self.weights < 0, 1.0 - self.aucs, self.aucs)
        return {"auc_after_flip": _floats(eff)}


@register_fuser
class LogisticFuser(Fuser):
    """Logistic regression on z-scores (balanced class weights, L2 with C); output = decision function (log-odds)."""

    name = "logistic"

    def __init__(self, C: float = 1.0) -> None:
        super().__init__()
        self.C = float(C)

    def _fit(self, Z, y, S):
        self.aucs = member_aucs(S, y)
        # Z is already standardised, so the helper's own standardisation is the identity up to rounding; we map its
        # coefficients back onto Z.
        coef, intercept = _weighted_logistic(Z, (y == 0).astype(int), class_weights(y, 0.5), self.C)
        self.weights = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)

    @classmethod
    def _init_kwargs(cls, d):
        return {"C": float(d.get("C", 1.0))}

    def _extra(self):
        return {"C": self.C, "class_weight": "balanced (effective prior 0.5)"}


def _fuser_class(method: Any) -> type[Fuser]:
    if method not in FUSERS:
        raise DfdetError(f"unknown fusion method {method!r}", f"use one of {', '.join(sorted(FUSERS))}")
    return FUSERS[method]


def make_fuser(method: str, **kwargs: Any) -> Fuser:
    return _fuser_class(method)(**kwargs)


def fuser_from_dict(d: dict[str, Any]) -> Fuser:
    return _fuser_class(d.get("method")).from_dict(d)


# --------------------------------------------------------------------------------------------------- fit + evaluate
def fit_fusion(
    S: Any,
    y: Any,
    method: str = "auc2",
    *,
    calibrate: str | bool | None = "logistic",
    threshold_policy: str = "eer",
    p_spoof: float = DEFAULT_P_SPOOF,
    c_miss: float = DEFAULT_C_MISS,
    c_fa: float = DEFAULT_C_FA,
    fuser_kwargs: dict[str, Any] | None = None,
) -> tuple[Fuser, Calibrator | None, float]:
    """Fit fuser, optional calibrator (on the fused fitting scores) and threshold (final scale), all on (S, y)."""
    S, y = check_labelled_matrix(S, y)
    parse_threshold_policy(threshold_policy)
    calibrate = _cal_name(calibrate)
    fuser = make_fuser(method, **(fuser_kwargs or {})).fit(S, y)
    fused = fuser.transform(S)
    cal = None
    if calibrate:
        cal = make_calibrator(calibrate).fit(fused, y)
        fused = cal.transform(fused)
    thr = fit_threshold(threshold_policy, fused, y, p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa)
    return fuser, cal, thr


def _cal_name(calibrate: str | bool | None) -> str | None:
    """True -> "logistic" (the default calibrator); False/None/"none" -> None."""
    if calibrate is True:
        return "logistic"
    if not calibrate or calibrate == "none":
        return None
    return str(calibrate)


def _final_scores(fuser: Fuser, cal: Calibrator | None, S: np.ndarray) -> np.ndarray:
    fused = fuser.transform(S)
    return cal.transform(fused) if cal is not None else fused


def evaluate_scores(scores: np.ndarray, y: np.ndarray, decision: np.ndarray, calibrated: bool) -> dict[str, Any]:
    """EER, AUC, decision metrics (at the given decisions) and, for LLRs, Cllr / min Cllr."""
    from dfdet import metrics

    e, _ = metrics.eer(scores, y)
    out: dict[str, Any] = {"n": int(len(y)), "eer": float(e), "auc": float(metrics.roc_auc(scores, y))}
    out.update(decision_metrics(decision, y))
    if calibrated:
        out["cllr"] = float(metrics.cllr(scores, y))
        out["min_cllr"] = float(metrics.min_cllr(scores, y))
    return out


def stratified_splits(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded StratifiedKFold (train_idx, test_idx) pairs; refuses k larger than the smaller class."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    smaller = int(min(np.count_nonzero(y == 0), np.count_nonzero(y == 1)))
    if k < 2:
        raise DfdetError(f"--cv {k}: need at least 2 folds", "use --cv 5 or --no-cv")
    if smaller < k:
        raise DfdetError(f"--cv {k}: the smaller class has only {smaller} rows", f"use --cv {max(2, smaller)} or fewer")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in skf.split(np.zeros(len(y)), y)]


def cross_validate_fusion(
    S: Any,
    y: Any,
    method: str = "auc2",
    k: int = 5,
    seed: int = 42,
    *,
    calibrate: str | bool | None = "logistic",
    threshold_policy: str = "eer",
    p_spoof: float = DEFAULT_P_SPOOF,
    c_miss: float = DEFAULT_C_MISS,
    c_fa: float = DEFAULT_C_FA,
    fuser_kwargs: dict[str, Any] | None = None,
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Out-of-fold fused scores and metrics; each fold's fuser, calibrator and threshold see its training rows only.

    Returns {"label", "k", "seed", "scores" (out-of-fold final scores, float64 [N]), "decision" (int8 [N], each fold's
    own threshold), "metrics" (pooled over all out-of-fold rows), "fold_metrics" (mean/std over folds), "flip_counts",
    "folds" (per fold: test_index, fuser, calibration, threshold, metrics)}. Pooled EER/AUC are meaningful when the
    folds' scores share a scale, which calibration (default on) provides.
    """
    S, y = check_labelled_matrix(S, y)
    calibrate = _cal_name(calibrate)
    if splits is None:
        splits = stratified_splits(y, k, seed)
    oof = np.full(len(y), np.nan)
    dec = np.full(len(y), -1, dtype=np.int8)
    folds = []
    for tr, te in splits:
        tr, te = np.asarray(tr), np.asarray(te)
        fuser, cal, thr = fit_fusion(
            S[tr],
            y[tr],
            method,
            calibrate=calibrate,
            threshold_policy=threshold_policy,
            p_spoof=p_spoof,
            c_miss=c_miss,
            c_fa=c_fa,
            fuser_kwargs=fuser_kwargs,
        )
        oof[te] = _final_scores(fuser, cal, S[te])
        dec[te] = decide(oof[te], thr)
        fm = decision_metrics(dec[te], y[te])
        folds.append(
            {
                "test_index": te.tolist(),
                "fuser": fuser.to_dict(),
                "calibration": cal.to_dict() if cal is not None else None,
                "threshold": float(thr),
                "metrics": fm,
            }
        )
    if np.isnan(oof).any():
        raise DfdetError("the folds do not cover every row", "pass splits that partition the data")
    pooled = evaluate_scores(oof, y, dec, calibrated=bool(calibrate))
    names = ("accuracy", "balanced_accuracy", "far", "frr")
    per_fold = {n: [f["metrics"][n] for f in folds] for n in names}
    fold_metrics = {n: {"mean": float(np.mean(v)), "std": float(np.std(v))} for n, v in per_fold.items()}
    flip_counts = np.sum([f["fuser"]["flips"] for f in folds], axis=0).astype(int).tolist()
    return {
        "label": f"out-of-fold ({len(folds)}-fold cross-validation; fitted on training folds only)",
        "k": len(folds),
        "seed": int(seed),
        "threshold_policy": threshold_policy,
        "calibration": calibrate,
        "scores": oof,
        "decision": dec,
        "metrics": pooled,
        "fold_metrics": fold_metrics,
        "flip_counts": flip_counts,
        "folds": folds,
    }


def in_sample_fusion(
    S: Any,
    y: Any,
    method: str = "auc2",
    *,
    calibrate: str | bool | None = "logistic",
    threshold_policy: str = "eer",
    p_spoof: float = DEFAULT_P_SPOOF,
    c_miss: float = DEFAULT_C_MISS,
    c_fa: float = DEFAULT_C_FA,
    fuser_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit and evaluate on the same rows: the study's protocol. Optimistic by construction and labelled so."""
    S, y = check_labelled_matrix(S, y)
    fuser, cal, thr = fit_fusion(
        S,
        y,
        method,
        calibrate=calibrate,
        threshold_policy=threshold_policy,
        p_spoof=p_spoof,
        c_miss=c_miss,
        c_fa=c_fa,
        fuser_kwargs=fuser_kwargs,
    )
    scores = _final_scores(fuser, cal, S)
    dec = decide(scores, thr)
    return {
        "label": IN_SAMPLE_LABEL,
        "threshold_policy": threshold_policy,
        "threshold": float(thr),
        "scores": scores,
        "decision": dec,
        "metrics": evaluate_scores(scores, y, dec, calibrated=bool(calibrate)),
    }


def member_metrics(S: Any, y: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """Each member alone on the fitting data: EER and AUC (for comparison with the fusion)."""
    from dfdet import metrics

    S, y = check_labelled_matrix(S, y)
    out = []
    for m, name in enumerate(names):
        e, _ = metrics.eer(S[:, m], y)
        out.append({"name": name, "eer": float(e), "auc": float(metrics.roc_auc(S[:, m], y))})
    return out


# --------------------------------------------------------------------------------------------------- documents
def score_member(name: str, score_file: str | os.PathLike, json_path: str | os.PathLike, column: str = "score") -> dict:
    """A member given by a score-file column (file recorded relative to the ensemble JSON)."""
    from dfdet.calibration import relative_to_json

    return {"name": name, "kind": "scores", "file": relative_to_json(score_file, json_path), "column": column}


def model_member(name: str, model_path: str | os.PathLike, json_path: str | os.PathLike) -> dict:
    """A member given by a trained model (path relative to the ensemble JSON); scored on features at apply time."""
    from dfdet.calibration import relative_to_json

    return {"name": name, "kind": "model", "path": relative_to_json(model_path, json_path)}


def build_ensemble_document(
    S: np.ndarray,
    y: np.ndarray,
    members: list[dict[str, Any]],
    method: str = "auc2",
    *,
    calibrate: str | bool | None = "logistic",
    threshold_policy: str = "eer",
    p_spoof: float = DEFAULT_P_SPOOF,
    c_miss: float = DEFAULT_C_MISS,
    c_fa: float = DEFAULT_C_FA,
    cv: int | None = 5,
    seed: int = 42,
    in_sample: bool = False,
    fuser_kwargs: dict[str, Any] | None = None,
    sources: list[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """Fit the final ensemble on all rows and (optionally) evaluate it out-of-fold and in-sample.

    Returns (document, cv_result or None, in_sample_result or None); the document holds only JSON-able values.
    """
    from dfdet.provenance import array_hash, provenance

    S, y = check_labelled_matrix(S, y)
    calibrate = _cal_name(calibrate)
    if len(members) != S.shape[1]:
        raise DfdetError(f"{len(members)} member descriptions for {S.shape[1]} score columns", "describe every member")
    kw = dict(calibrate=calibrate, threshold_policy=threshold_policy, p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa)
    fuser, cal, thr = fit_fusion(S, y, method, fuser_kwargs=fuser_kwargs, **kw)
    names = [m["name"] for m in members]
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "ensemble",
        "method": method,
        "members": members,
        "input": "member scores, bona-fide-positive",
        "output": "calibrated natural-log LLR, bona fide vs spoof" if cal else "fused bona-fide-positive score",
        "fuser": fuser.to_dict(),
        "flipped_members": [n for n, f in zip(names, fuser.flips, strict=True) if f],
        "inverted_members": [n for n, a in zip(names, fuser.aucs, strict=True) if a < 0.5],  # AUC < 0.5 here
        "calibration": cal.to_dict() if cal is not None else None,
        "threshold": threshold_record(
            threshold_policy, thr, p_spoof, c_miss, c_fa, scale="calibrated LLR" if cal else "fused score"
        ),
        "fitting_data": {
            "n": int(len(y)),
            "n_bonafide": int(np.count_nonzero(y == 0)),
            "n_spoof": int(np.count_nonzero(y == 1)),
            "hash": array_hash(S, y.astype(np.int8)),
            "sources": sources or [],
        },
        "members_alone": member_metrics(S, y, names),
    }
    cv_res = ins = None
    if cv:
        cv_res = cross_validate_fusion(S, y, method, cv, seed, fuser_kwargs=fuser_kwargs, **kw)
        doc["out_of_fold"] = {
            "label": cv_res["label"],
            "k": cv_res["k"],
            "seed": cv_res["seed"],
            "threshold_policy": threshold_policy,
            "calibration": calibrate,
            "note": "accuracy/far/frr use each fold's own threshold, fitted on its training folds",
            "metrics": cv_res["metrics"],
            "fold_metrics": cv_res["fold_metrics"],
            "flip_counts": dict(zip(names, cv_res["flip_counts"], strict=True)),
        }
    if in_sample:
        ins = in_sample_fusion(S, y, method, fuser_kwargs=fuser_kwargs, **kw)
        doc["in_sample"] = {"label": ins["label"], "threshold": ins["threshold"], "metrics": ins["metrics"]}
    doc["provenance"] = provenance()
    return doc, cv_res, ins


def load_ensemble(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate an ensemble JSON."""
    from dfdet.calibration import read_json
    from dfdet.errors import InputError

    doc = read_json(path, "ensemble")
    try:
        f = fuser_from_dict(doc["fuser"])
        if doc.get("calibration"):
            calibrator_from_dict(doc["calibration"])
        if len(doc["members"]) != len(f.weights):
            raise ValueError("member list and weights differ in length")
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(path, f"ensemble file is incomplete ({e})", "refit it with `dfdet ensemble`") from None
    return doc


def ensemble_scorer(doc: dict[str, Any]) -> Callable[[Any], np.ndarray]:
    """The final-score function of an ensemble document: member score matrix [N, M] ordered as doc["members"] ->
    fused score, calibrated to an LLR when the document records a calibration. The one implementation of the fusion
    arithmetic for fitted ensembles (`apply_ensemble` and `dfdet.scoring.load_detector` both use it)."""
    fuser = fuser_from_dict(doc["fuser"])
    cal = calibrator_from_dict(doc["calibration"]) if doc.get("calibration") else None
    return lambda S: _final_scores(fuser, cal, S)


def apply_ensemble(doc: dict[str, Any], S: Any, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(final score, decision) for a member score matrix ordered as doc["members"]; decision int8 or None."""
    scores = ensemble_scorer(doc)(S)
    thr = threshold if threshold is not None else (doc.get("threshold") or {}).get("value")
    return scores, (decide(scores, float(thr)) if thr is not None else None)


# --------------------------------------------------------------------------------------------------- score files
def member_names(paths: Sequence[str | os.PathLike], names: Sequence[str] | None = None) -> list[str]:
    """Member names: given ones (one per member, distinct) or the score files' stems (made distinct)."""
    from pathlib import Path

    if names is not None:
        names = [n.strip() for n in names]
        if len(names) != len(paths):
            raise DfdetError(f"{len(names)} names for {len(paths)} members", "give one name per --scores file")
        if len(set(names)) != len(names) or not all(names):
            raise DfdetError(f"member names must be distinct and non-empty (got {names})", "rename them")
        return list(names)
    out: list[str] = []
    for p in paths:
        stem = Path(str(p)).stem or "member"
        name, i = stem, 2
        while name in out:
            name, i = f"{stem}_{i}", i + 1
        out.append(name)
    return out


def join_members(tables: Sequence[Any], sources: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Join member score tables by utt_id -> (utt_ids sorted, S [N, M], labels int8 [N], -1 where unknown).

    The id sets must be identical (an error names the file and example ids) and known labels must agree.
    """
    ref_ids = sorted(tables[0].utt_id)
    ref_set = set(ref_ids)
    cols, label = [], np.full(len(ref_ids), -1, dtype=np.int8)
    label_from = [""] * len(ref_ids)
    for table, src in zip(tables, sources, strict=True):
        ids = set(table.utt_id)
        if ids != ref_set:
            extra, missing = sorted(ids - ref_set), sorted(ref_set - ids)
            parts = []
            if extra:
                parts.append(f"{len(extra)} utt_id(s) not in {sources[0]} (e.g. {extra[0]!r})")
            if missing:
                parts.append(f"{len(missing)} utt_id(s) of {sources[0]} missing (e.g. {missing[0]!r})")
            raise DfdetError(f"{src}: {'; '.join(parts)}", "score the same utterances with every member")
        index = {u: i for i, u in enumerate(table.utt_id)}
        order = np.array([index[u] for u in ref_ids], dtype=np.int64)
        cols.append(np.asarray(table.score, dtype=np.float64)[order])
        lab = np.asarray(table.label, dtype=np.int8)[order]
        clash = (label >= 0) & (lab >= 0) & (label != lab)
        if clash.any():
            i = int(np.flatnonzero(clash)[0])
            raise DfdetError(
                f"{src}: label of {ref_ids[i]!r} disagrees with {label_from[i]} ({int(clash.sum())} row(s))",
                "the member score files must come from the same labelled set",
            )
        fill = (label < 0) & (lab >= 0)
        label[fill] = lab[fill]
        for i in np.flatnonzero(fill):
            label_from[i] = src
    return ref_ids, np.column_stack(cols), label


# --------------------------------------------------------------------------------------------------- detectors
def member_paths(doc: dict[str, Any], json_path: str | os.PathLike) -> list[Any]:
    """Each member's recorded file (model or score file) resolved against the ensemble JSON's directory."""
    from dfdet.calibration import resolve_from_json

    return [resolve_from_json(m.get("path") or m.get("file"), json_path) for m in doc["members"]]


def applied_provenance(
    ens_path: str | os.PathLike,
    doc: dict[str, Any],
    score_files: Sequence[str | os.PathLike],
    features: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The sidecar fields of a score file made by applying the ensemble `ens_path` (document `doc`): the JSON as the
    detector (kind "ensemble"), one member per ensemble member in its order (a model: its file and hash; a score
    file: the file given for it, its hash and what made it, from its own sidecar) and the inputs: `score_files`, one
    per score-file member in the document's member order, and the feature store the model members scored."""
    from dfdet.scores import file_record, sidecar_fields, upstream_detector

    hashes: dict[str, str | None] = {}
    given = iter(score_files)
    members = []
    for m, path in zip(doc["members"], member_paths(doc, ens_path), strict=True):
        if m.get("kind") == "model":
            members.append({"name": m.get("name"), "kind": "model", **file_record(path, hashes)})
        else:
            f = next(given)
            rec = {"name": m.get("name"), "kind": "scores", **file_record(f, hashes)}
            members.append({**rec, "detector": upstream_detector(f, hashes)})
    store = file_record(features, hashes) if features is not None else None
    files = [file_record(f, hashes) for f in score_files]
    source = {"kind": "scores", "files": files, "features": store} if files else {"kind": "features", **(store or {})}
    return sidecar_fields(ens_path, "ensemble", members, source, command="ensemble --apply", hashes=hashes)
