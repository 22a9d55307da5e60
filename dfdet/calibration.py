"""Score calibration: map a raw bona-fide-positive score to a natural-log likelihood ratio, and pick a threshold.

Conventions (DESIGN.md): scores are bona-fide-positive; labels are 0 bona fide, 1 spoof. A calibrated score is an
LLR = ln p(score | bona fide) / p(score | spoof), so `llr > 0` favours bona fide whatever the class balance.
The decision rule everywhere in this module is: **bona fide iff score >= threshold** (decision 0), else spoof (1).

Fitting prior: calibrators are fitted with BOSARIS-style prior weighting. `fit_prior` is the *effective prior of
bona fide* used to weight the two classes while fitting (bona fide rows weigh fit_prior / n_bonafide, spoof rows
(1 - fit_prior) / n_spoof); the default 0.5 weighs both classes equally, so the fit does not depend on the class
balance of the fitting data. The posterior log-odds a calibrator learns under that prior are turned into an LLR by
subtracting logit(fit_prior). This is unrelated to the *decision* prior of the Bayes threshold (`p_spoof`, ASVspoof 5
default 0.05 with C_miss 1, C_fa 10).

Registries: CALIBRATORS (logistic, isotonic, temperature) and THRESHOLD_POLICIES (bayes, eer, youden, max-accuracy,
fpr=X). Calibration files are small JSON documents (see `fit_calibration`), applied with `apply_calibration`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.errors import DfdetError, InputError
from dfdet.jsonio import write_json

SCHEMA_VERSION = 1
DEFAULT_P_SPOOF = 0.05  # ASVspoof 5 target prior of spoof for the Bayes threshold and DCF
DEFAULT_C_MISS = 1.0  # cost of rejecting a bona fide utterance
DEFAULT_C_FA = 10.0  # cost of accepting a spoof
DEFAULT_FIT_PRIOR = 0.5  # effective prior of bona fide while fitting (BOSARIS default)
DEFAULT_BINS = 15  # reliability / ECE bins
LLR_RULE = "decision = bonafide (0) if score >= threshold else spoof (1)"


# --------------------------------------------------------------------------------------------------- validation
def check_scores(scores: Any, what: str = "scores") -> np.ndarray:
    """Return scores as a finite float64 vector, or raise a clear error."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        s = s.reshape(-1)
    if s.size and not np.all(np.isfinite(s)):
        bad = int(np.count_nonzero(~np.isfinite(s)))
        raise DfdetError(f"{bad} {what} are NaN or infinite", "remove or rescore those rows")
    return s


def check_labelled(scores: Any, labels: Any, what: str = "fitting data") -> tuple[np.ndarray, np.ndarray]:
    """Scores and 0/1 labels for fitting: finite, same length, both classes present, no unknown labels."""
    s = check_scores(scores)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(s) != len(y):
        raise DfdetError(f"{what}: {len(s)} scores but {len(y)} labels", "pass one label per score")
    if np.any((y != 0) & (y != 1)):
        n = int(np.count_nonzero((y != 0) & (y != 1)))
        raise DfdetError(f"{what}: {n} rows have an unknown label", "fitting needs bonafide/spoof labels on every row")
    n_bona, n_spoof = int(np.count_nonzero(y == 0)), int(np.count_nonzero(y == 1))
    if n_bona == 0 or n_spoof == 0:
        only = "spoof" if n_bona == 0 else "bonafide"
        raise DfdetError(f"{what}: only one class ({only}) present", "fitting needs both bonafide and spoof rows")
    return s, y


def class_weights(y: np.ndarray, prior_bonafide: float) -> np.ndarray:
    """BOSARIS weights: bona fide rows share `prior_bonafide`, spoof rows `1 - prior_bonafide`; scaled to sum N."""
    if not 0.0 < prior_bonafide < 1.0:
        raise DfdetError(f"fit prior {prior_bonafide} is outside (0, 1)", "use e.g. 0.5")
    n_bona, n_spoof = np.count_nonzero(y == 0), np.count_nonzero(y == 1)
    w = np.where(y == 0, prior_bonafide / n_bona, (1.0 - prior_bonafide) / n_spoof)
    return w * len(y)


def logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def p_spoof_from_llr(llr: Any, prior_spoof: float = 0.5) -> np.ndarray:
    """Posterior P(spoof | score) from a bona-fide LLR under a spoof prior (0.5: sigmoid(-llr))."""
    llr = np.asarray(llr, dtype=np.float64)
    if prior_spoof == 0.5:
        return sigmoid(-llr)
    return sigmoid(-(llr + logit(1.0 - prior_spoof)))


def _floats(a: Any) -> list[float]:
    """Python floats keep repr precision in JSON, so a file round-trip reproduces outputs bit for bit."""
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


# --------------------------------------------------------------------------------------------------- calibrators
class Calibrator:
    """Base class: fit(scores, labels) -> self; transform(scores) -> LLR; to_dict()/from_dict() for JSON files."""

    name = ""

    def __init__(self, fit_prior: float = DEFAULT_FIT_PRIOR) -> None:
        self.fit_prior = float(fit_prior)
        self.fitted = False

    def fit(self, scores: Any, labels: Any) -> Calibrator:
        s, y = check_labelled(scores, labels)
        self._fit(s, y, class_weights(y, self.fit_prior))
        self.fitted = True
        return self

    def transform(self, scores: Any) -> np.ndarray:
        if not self.fitted:
            raise DfdetError(f"{self.name} calibrator is not fitted", "call fit() or load a calibration file")
        return self._transform(check_scores(scores))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.name, "fit_prior": self.fit_prior, "params": self._params()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        obj = cls(fit_prior=float(d.get("fit_prior", DEFAULT_FIT_PRIOR)))
        obj._load(d["params"])
        obj.fitted = True
        return obj

    # subclasses
    def _fit(self, s: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        raise NotImplementedError

    def _transform(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, p: dict[str, Any]) -> None:
        raise NotImplementedError


CALIBRATORS: dict[str, type[Calibrator]] = {}


def register_calibrator(cls: type[Calibrator]) -> type[Calibrator]:
    CALIBRATORS[cls.name] = cls
    return cls


def _weighted_logistic(x: np.ndarray, t: np.ndarray, w: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """Weighted logistic regression of t (1 = bona fide) on the columns of x; returns (coef, intercept).

    Columns are standardised for a well-conditioned lbfgs and the coefficients mapped back to the input scale.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mu) / sd
    model = LogisticRegression(C=C, solver="lbfgs", max_iter=2000, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # separable data: the weights just grow large
        model.fit(z, t, sample_weight=w)
    coef = model.coef_.ravel() / sd
    intercept = float(model.intercept_[0] - np.sum(coef * mu))
    return coef, intercept


@register_calibrator
class LogisticCalibrator(Calibrator):
    """llr = a * score + b - logit(fit_prior): prior-weighted logistic regression (BOSARIS `train_binary_classifier`).

    Effectively unregularised (C = 1e6 on standardised scores; finite so that separable data still gives a finite
    slope). If the fitted slope is negative the scores were inverted and calibration flips them.
    """

    name = "logistic"
    C = 1e6

    def _fit(self, s: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        coef, intercept = _weighted_logistic(s[:, None], (y == 0).astype(int), w, self.C)
        self.a = float(coef[0])
        self.b = float(intercept - logit(self.fit_prior))

    def _transform(self, s: np.ndarray) -> np.ndarray:
        return self.a * s + self.b

    def _params(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b}

    def _load(self, p: dict[str, Any]) -> None:
        self.a, self.b = float(p["a"]), float(p["b"])


@register_calibrator
class TemperatureCalibrator(Calibrator):
    """llr = a * score (one scale, no shift), a minimising the prior-weighted cross-entropy (scipy L-BFGS-B).

    The model's posterior log-odds under the fitting prior are a * score + logit(fit_prior), so the LLR has no shift.
    a is bounded to |a| <= 100 / std(score) so perfectly separated data still gives a finite scale.
    """

    name = "temperature"

    def _fit(self, s: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        from scipy.optimize import minimize

        sd = float(np.std(s)) or 1.0
        u = s / sd
        sign = np.where(y == 0, 1.0, -1.0)  # +1 for bona fide targets
        off = logit(self.fit_prior)
        wn = w / w.sum()

        def loss(alpha: np.ndarray) -> tuple[float, np.ndarray]:
            m = sign * (alpha[0] * u + off)
            # softplus(-m) = log(1 + exp(-m)), stable
            val = float(np.sum(wn * np.logaddexp(0.0, -m)))
            grad = float(np.sum(wn * -sign * u * sigmoid(-m)))
            return val, np.array([grad])

        res = minimize(loss, x0=np.array([1.0]), jac=True, method="L-BFGS-B", bounds=[(-100.0, 100.0)])
        self.a = float(res.x[0] / sd)

    def _transform(self, s: np.ndarray) -> np.ndarray:
        return self.a * s

    def _params(self) -> dict[str, Any]:
        return {"a": self.a}

    def _load(self, p: dict[str, Any]) -> None:
        self.a = float(p["a"])


@register_calibrator
class IsotonicCalibrator(Calibrator):
    """Isotonic (PAV) regression of P(bona fide) on the score, then llr = logit(clip(p, eps)) - logit(fit_prior).

    Monotone non-decreasing by construction (ties where PAV pools); scores outside the fitting range take the end
    values. `eps` (default 1e-3, stored) keeps the LLR finite: |llr| <= logit(1 - eps) + |logit(fit_prior)|.
    Between the stored thresholds the posterior is linearly interpolated (np.interp, as sklearn does).
    """

    name = "isotonic"

    def __init__(self, fit_prior: float = DEFAULT_FIT_PRIOR, eps: float = 1e-3) -> None:
        super().__init__(fit_prior)
        self.eps = float(eps)

    def _fit(self, s: np.ndarray, y: np.ndarray, w: np.ndarray) -> None:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(s, (y == 0).astype(np.float64), sample_weight=w)
        self.x = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.p = np.asarray(iso.y_thresholds_, dtype=np.float64)

    def _transform(self, s: np.ndarray) -> np.ndarray:
        p = np.clip(np.interp(s, self.x, self.p), self.eps, 1.0 - self.eps)
        return np.log(p) - np.log1p(-p) - logit(self.fit_prior)

    def _params(self) -> dict[str, Any]:
        return {"eps": self.eps, "x_thresholds": _floats(self.x), "p_bonafide": _floats(self.p)}

    def _load(self, p: dict[str, Any]) -> None:
        self.eps = float(p.get("eps", 1e-3))
        self.x = np.asarray(p["x_thresholds"], dtype=np.float64)
        self.p = np.asarray(p["p_bonafide"], dtype=np.float64)


def _calibrator_class(method: Any) -> type[Calibrator]:
    if method not in CALIBRATORS:
        raise DfdetError(f"unknown calibration method {method!r}", f"use one of {', '.join(sorted(CALIBRATORS))}")
    return CALIBRATORS[method]


def make_calibrator(method: str, **kwargs: Any) -> Calibrator:
    return _calibrator_class(method)(**kwargs)


def calibrator_from_dict(d: dict[str, Any]) -> Calibrator:
    """Rebuild a fitted calibrator from `to_dict()` output (or a calibration JSON document)."""
    return _calibrator_class(d.get("method")).from_dict(d)


# --------------------------------------------------------------------------------------------------- thresholds
def bayes_threshold(
    p_spoof: float = DEFAULT_P_SPOOF, c_miss: float = DEFAULT_C_MISS, c_fa: float = DEFAULT_C_FA
) -> float:
    """-ln(beta), beta = C_miss (1 - p_spoof) / (C_fa p_spoof): the Bayes threshold on a bona-fide LLR."""
    from dfdet.metrics import bayes_threshold as _bayes

    return _bayes(p_spoof, c_miss, c_fa)


def _rates(s: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(TPR, FPR) at each threshold under `bona fide iff score >= t` (TPR: bona fide accepted; FPR: spoof accepted)."""
    bona = np.sort(s[y == 0])
    spoof = np.sort(s[y == 1])
    tpr = 1.0 - np.searchsorted(bona, thresholds, side="left") / len(bona)
    fpr = 1.0 - np.searchsorted(spoof, thresholds, side="left") / len(spoof)
    return tpr, fpr


def _candidates(s: np.ndarray) -> np.ndarray:
    """Thresholds between consecutive distinct scores, plus one below all and one above all."""
    u = np.unique(s)
    mids = (u[:-1] + u[1:]) / 2.0
    lo = u[0] - max(1.0, abs(u[0])) * 1e-6
    hi = np.nextafter(u[-1], np.inf)
    return np.concatenate([[lo], mids, [hi]])


def _thr_bayes(s, y, param, p_spoof, c_miss, c_fa):
    return bayes_threshold(p_spoof, c_miss, c_fa)


def _thr_eer(s, y, param, p_spoof, c_miss, c_fa):
    """The official EER cut (dfdet.metrics.eer: scores <= t rejected), moved halfway to the next higher score so the
    rule `bona fide iff score >= threshold` rejects exactly the same rows."""
    from dfdet.metrics import eer

    t = float(eer(s, y)[1])
    above = s[s > t]
    return float((t + above.min()) / 2.0) if above.size else float(np.nextafter(t, np.inf))


def _thr_youden(s, y, param, p_spoof, c_miss, c_fa):
    c = _candidates(s)
    tpr, fpr = _rates(s, y, c)
    return float(c[int(np.argmax(tpr - fpr))])


def _thr_max_accuracy(s, y, param, p_spoof, c_miss, c_fa):
    c = _candidates(s)
    tpr, fpr = _rates(s, y, c)
    n_bona, n_spoof = np.count_nonzero(y == 0), np.count_nonzero(y == 1)
    correct = tpr * n_bona + (1.0 - fpr) * n_spoof
    return float(c[int(np.argmax(correct))])


def _thr_fpr(s, y, param, p_spoof, c_miss, c_fa):
    """Lowest threshold whose false-accept rate (spoof scored >= t, ASVspoof FAR) on the fitting data is <= param."""
    c = _candidates(s)
    tpr, fpr = _rates(s, y, c)
    ok = np.flatnonzero(fpr <= param + 1e-12)
    return float(c[ok[0]])  # fpr is non-increasing in t; the last candidate always has fpr 0


THRESHOLD_POLICIES: dict[str, Callable[..., float]] = {
    "bayes": _thr_bayes,
    "eer": _thr_eer,
    "youden": _thr_youden,
    "max-accuracy": _thr_max_accuracy,
    "fpr": _thr_fpr,
}
POLICY_HELP = (
    "bayes (-ln beta from --p-spoof/--c-miss/--c-fa; needs calibrated LLRs), eer (equal error rate threshold on the "
    "fitting data), youden (max TPR - FPR), max-accuracy, fpr=X (false-accept rate <= X on the fitting data: the "
    "fraction of spoof accepted as bona fide, ASVspoof FAR; far=X is a synonym)"
)


def parse_threshold_policy(text: str) -> tuple[str, float | None]:
    """'fpr=0.01' -> ('fpr', 0.01); 'eer' -> ('eer', None). Raises DfdetError for unknown policies."""
    text = str(text).strip().lower()
    name, _, arg = text.partition("=")
    name = {"far": "fpr", "max_accuracy": "max-accuracy", "accuracy": "max-accuracy"}.get(name, name)
    if name not in THRESHOLD_POLICIES:
        raise DfdetError(f"unknown threshold policy {text!r}", f"use {POLICY_HELP}")
    if name == "fpr":
        try:
            val = float(arg)
        except ValueError:
            raise DfdetError(f"threshold policy {text!r} needs a rate", "write e.g. fpr=0.01") from None
        if not 0.0 <= val <= 1.0:
            raise DfdetError(f"threshold policy {text!r}: rate outside [0, 1]", "write e.g. fpr=0.01")
        return name, val
    if arg:
        raise DfdetError(f"threshold policy {name!r} takes no value", f"write just {name}")
    return name, None


def fit_threshold(
    policy: str,
    scores: Any,
    labels: Any = None,
    *,
    p_spoof: float = DEFAULT_P_SPOOF,
    c_miss: float = DEFAULT_C_MISS,
    c_fa: float = DEFAULT_C_FA,
) -> float:
    """Threshold on the scale of `scores` chosen by `policy` (see POLICY_HELP); `bayes` needs no data."""
    name, param = parse_threshold_policy(policy)
    if name == "bayes":
        return bayes_threshold(p_spoof, c_miss, c_fa)
    s, y = check_labelled(scores, labels, what=f"threshold policy {policy}")
    return float(THRESHOLD_POLICIES[name](s, y, param, p_spoof, c_miss, c_fa))


def decide(scores: Any, threshold: float) -> np.ndarray:
    """int8 decisions: 0 (bona fide) where score >= threshold, else 1 (spoof)."""
    s = np.asarray(scores, dtype=np.float64)
    return np.where(s >= threshold, 0, 1).astype(np.int8)


def decision_metrics(decision: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1 (spoof positive, as dfdet.metrics) and the ASVspoof error rates of hard
    decisions: far = spoof accepted as bona fide, frr = bona fide rejected."""
    from dfdet.metrics import decision_metrics as _dm

    m = _dm(np.asarray(decision) == 1, labels)
    return {
        "accuracy": float(m["accuracy"]),
        "balanced_accuracy": float(m["balanced_accuracy"]),
        "f1": float(m["f1"]),
        "far": float(m["fnr"]),  # spoof called bona fide
        "frr": float(m["fpr"]),  # bona fide called spoof
    }


# --------------------------------------------------------------------------------------------------- quality
def reliability_curve(p_spoof: Any, labels: Any, bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Equal-width bins on predicted P(spoof) in [0, 1]: count, mean prediction, observed fraction of spoof."""
    p = np.asarray(p_spoof, dtype=np.float64)
    y = np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        n = int(np.count_nonzero(m))
        out.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": n,
                "mean_p_spoof": float(p[m].mean()) if n else None,
                "fraction_spoof": float(np.mean(y[m] == 1)) if n else None,
            }
        )
    return out


def expected_calibration_error(p_spoof: Any, labels: Any, bins: int = DEFAULT_BINS) -> float:
    """ECE = sum over bins of (n_bin / N) * |mean predicted P(spoof) - observed fraction of spoof| (equal-width)."""
    curve = reliability_curve(p_spoof, labels, bins)
    n = sum(c["count"] for c in curve)
    return float(sum(c["count"] / n * abs(c["mean_p_spoof"] - c["fraction_spoof"]) for c in curve if c["count"]))


def calibration_quality(llr: Any, labels: Any, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Cllr vs min Cllr, ECE and reliability-curve data of LLRs on labelled data.

    For ECE and the reliability curve the LLRs are turned into P(spoof) with the data's own class proportions as
    prior (p = sigmoid(-(llr + ln(n_bonafide / n_spoof)))), so a well-calibrated LLR gives ECE near 0 on any balance.
    """
    from dfdet.metrics import cllr, min_cllr

    s, y = check_labelled(llr, labels, what="quality data")
    prior_spoof = int(np.count_nonzero(y == 1)) / len(y)
    p = p_spoof_from_llr(s, prior_spoof)
    c, mc = float(cllr(s, y)), float(min_cllr(s, y))
    return {
        "cllr": c,
        "min_cllr": mc,
        "cllr_excess": c - mc,
        "ece": expected_calibration_error(p, y, bins),
        "ece_bins": bins,
        "ece_prior_spoof": prior_spoof,
        "ece_definition": "sum_b n_b/N |mean P(spoof) - fraction spoof|, equal-width bins, prior = data proportions",
        "reliability": reliability_curve(p, y, bins),
    }


# --------------------------------------------------------------------------------------------------- documents
def fitting_description(scores: np.ndarray, labels: np.ndarray, source: str | None = None) -> dict[str, Any]:
    from dfdet.provenance import array_hash

    y = np.asarray(labels)
    return {
        "n": int(len(y)),
        "n_bonafide": int(np.count_nonzero(y == 0)),
        "n_spoof": int(np.count_nonzero(y == 1)),
        "hash": array_hash(np.asarray(scores, dtype=np.float64), y.astype(np.int8)),
        "source": source,
    }


def threshold_record(
    policy: str, value: float, p_spoof: float, c_miss: float, c_fa: float, scale: str = "calibrated LLR"
) -> dict[str, Any]:
    return {
        "policy": policy,
        "value": float(value),
        "scale": scale,
        "rule": LLR_RULE,
        "p_spoof": float(p_spoof),
        "c_miss": float(c_miss),
        "c_fa": float(c_fa),
    }


def fit_calibration(
    scores: Any,
    labels: Any,
    method: str = "logistic",
    threshold: str = "bayes",
    *,
    p_spoof: float = DEFAULT_P_SPOOF,
    c_miss: float = DEFAULT_C_MISS,
    c_fa: float = DEFAULT_C_FA,
    fit_prior: float = DEFAULT_FIT_PRIOR,
    source: str | None = None,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Fit a calibrator and a threshold policy; return the calibration document (JSON-able dict).

    The threshold is chosen on the *calibrated* scores of the fitting data (or from the costs for `bayes`).
    """
    from dfdet.provenance import provenance

    s, y = check_labelled(scores, labels)
    parse_threshold_policy(threshold)
    cal = make_calibrator(method, fit_prior=fit_prior).fit(s, y)
    llr = cal.transform(s)
    thr = fit_threshold(threshold, llr, y, p_spoof=p_spoof, c_miss=c_miss, c_fa=c_fa)
    quality = calibration_quality(llr, y, bins)
    quality["at_threshold"] = decision_metrics(decide(llr, thr), y)
    from dfdet.metrics import cllr

    quality["raw_cllr"] = float(cllr(s, y))  # the raw scores read as LLRs: what calibration fixed
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "calibration",
        **cal.to_dict(),
        "input": "raw bona-fide-positive score",
        "output": "natural-log LLR, bona fide vs spoof",
        "threshold": threshold_record(threshold, thr, p_spoof, c_miss, c_fa),
        "fitting_data": fitting_description(s, y, source),
        "quality": quality,
        "provenance": provenance(),
    }
    if method in ("logistic", "temperature") and cal.a < 0:
        doc["warnings"] = [
            "negative slope: the raw scores rank spoof above bona fide (inverted); calibration flips them"
        ]
    return doc


def check_document(doc: Any, kind: str, where: str) -> dict[str, Any]:
    """Validate the schema version and kind of a calibration/ensemble document."""
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        got = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        raise InputError(where, f"not a {kind} file (kind={got!r})", f"pass a JSON written by `dfdet {_cmd(kind)}`")
    ver = doc.get("schema_version")
    if not isinstance(ver, int) or ver > SCHEMA_VERSION:
        raise InputError(where, f"unsupported {kind} schema version {ver!r}", "upgrade dfdet or refit the file")
    return doc


def _cmd(kind: str) -> str:
    return {"calibration": "calibrate", "ensemble": "ensemble"}.get(kind, kind)


def read_json(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "no such file", "check the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read as JSON ({e})", f"pass a file written by `dfdet {_cmd(kind)}`") from None
    return check_document(doc, kind, str(path))


def relative_to_json(target: str | os.PathLike, json_path: str | os.PathLike) -> str:
    """Path of `target` relative to the directory of `json_path` (what calibration/ensemble files record)."""
    base = Path(os.path.abspath(json_path)).parent
    return Path(os.path.relpath(os.path.abspath(target), base)).as_posix()


def resolve_from_json(recorded: str, json_path: str | os.PathLike) -> Path:
    """Inverse of `relative_to_json`: a recorded path resolved against the JSON file's directory."""
    p = Path(recorded)
    return p if p.is_absolute() else Path(os.path.abspath(json_path)).parent / p


def save_calibration(path: str | os.PathLike, doc: dict[str, Any], detector: str | os.PathLike | None = None) -> None:
    """Write a calibration document; `detector` is recorded relative to the JSON file (a "calibrated detector")."""
    if detector is not None:
        doc = {**doc, "detector": relative_to_json(detector, path)}
    write_json(path, doc)


def load_calibration(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a calibration JSON (the calibrator is rebuilt lazily by `apply_calibration`)."""
    doc = read_json(path, "calibration")
    try:
        calibrator_from_dict(doc)
        float(doc["threshold"]["value"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(path, f"calibration file is incomplete ({e})", "refit it with `dfdet calibrate`") from None
    return doc


def detector_path(doc: dict[str, Any], json_path: str | os.PathLike) -> Path | None:
    """The detector a calibration file wraps, resolved against the file's directory, or None."""
    rec = doc.get("detector")
    return resolve_from_json(rec, json_path) if rec else None


def applied_provenance(cal_path: str | os.PathLike, doc: dict[str, Any], scores: str | os.PathLike) -> dict[str, Any]:
    """The sidecar fields of a score file made by applying the calibration `cal_path` (document `doc`) to the score
    file `scores` (`-` = stdin): the calibration JSON as the detector (kind "calibration"), the input file and what
    made it (from its own sidecar), and as members the models underneath: those of the input's sidecar, else the
    model the calibration names (`--detector`). Over one model, a report matches the calibrated scores to it."""
    from dfdet.scores import file_record, sidecar_fields, upstream_detector

    hashes: dict[str, str | None] = {}
    upstream = upstream_detector(scores, hashes)
    if str(scores) == "-":
        source: dict[str, Any] = {"kind": "stdin"}
    else:
        source = {"kind": "scores", **file_record(scores, hashes), "detector": upstream}
    members = [m for m in (upstream or {}).get("members") or [] if isinstance(m, dict)]
    named = detector_path(doc, cal_path)
    if upstream is None and named is not None and named.suffix.lower() != ".json":  # a model (see scoring._load)
        members = [{"name": named.stem, **file_record(named, hashes)}]
    return sidecar_fields(cal_path, "calibration", members, source, command="calibrate --apply", hashes=hashes)


def apply_calibration(cal: dict[str, Any] | Calibrator, scores: Any, threshold: float | None = None):
    """(llr, decision) for raw bona-fide-positive scores; decision int8 (0 bona fide, 1 spoof) at the file's
    threshold (or `threshold`), None when neither gives one."""
    if isinstance(cal, Calibrator):
        c, thr = cal, threshold
    else:
        c = calibrator_from_dict(cal)
        thr = threshold if threshold is not None else (cal.get("threshold") or {}).get("value")
    llr = c.transform(scores)
    return llr, (decide(llr, float(thr)) if thr is not None else None)
