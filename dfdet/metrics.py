"""The field's detection metrics, written from their published formulas (ASVspoof 2019/2021/5, BOSARIS, t-DCF papers).

Conventions (as in the ASVspoof evaluation packages):
- `scores` are BONA-FIDE-POSITIVE (higher = more likely genuine); for actDCF and Cllr they are read as natural-log
  likelihood ratios (LLRs) of bona fide vs spoof.
- `labels` are 0 = bona fide, 1 = spoof (dfdet.labels); unknown labels (-1) are refused.
- The DET curve is built the official way: all scores (bona fide first, then spoof) are sorted with a STABLE sort; at
  each cut k = 0..N the k lowest scores are rejected. FRR (bona fide rejected, "miss") and FAR (spoof accepted, "false
  alarm") are read at every cut including the start point (FRR 0, FAR 1). Thresholds are the sorted scores, with
  `min(score) - 0.001` for the start point. Nothing is interpolated, and ties are broken by that stable order.
- Functions that minimise over the DET curve (`eer`, `min_dcf`, `min_tdcf_2019`, `tdcf_2021`) return
  `(value, threshold)`; the others return a float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dfdet.errors import DfdetError

# ASVspoof 5 detection-cost defaults (evaluation plan): spoof prior, cost of missing bona fide, of accepting a spoof.
P_SPOOF, C_MISS, C_FA = 0.05, 1.0, 10.0
# ASVspoof 2019 LA evaluation-set ASV error rates (the organisers' ASV at its EER threshold).
ASV_RATES_2019_LA_EVAL = {"pfa_asv": 0.0246047, "pmiss_asv": 0.0245810, "pmiss_spoof_asv": 0.2393475}
# Cost model of the ASVspoof 2019 (legacy) t-DCF and of the 2021 revised t-DCF (evaluation plans).
TDCF_2019_COSTS = {
    "p_spoof": 0.05,
    "p_tar": 0.9405,
    "p_non": 0.0095,
    "c_miss_asv": 1.0,
    "c_fa_asv": 10.0,
    "c_miss_cm": 1.0,
    "c_fa_cm": 10.0,
}
TDCF_2021_COSTS = {
    "p_spoof": 0.05,
    "p_tar": 0.95 * 0.99,
    "p_non": 0.95 * 0.01,
    "c_miss": 1.0,
    "c_fa": 10.0,
    "c_fa_spoof": 10.0,
}

_LN2 = math.log(2.0)


# --------------------------------------------------------------------------------------------------- input checks
def _as_arrays(scores: Any, labels: Any, allow_one_class: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes, finiteness and labels; return float64 scores and int labels."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise DfdetError(f"{s.size} scores but {y.size} labels", "pass one label per score")
    if s.size == 0:
        raise DfdetError("no trials to evaluate", "pass a non-empty score file")
    if np.isnan(s).any() or np.isinf(s).any():
        n_bad = int((~np.isfinite(s)).sum())
        raise DfdetError(f"{n_bad} score(s) are NaN or infinite", "fix the scorer; metrics need finite scores")
    y = y.astype(np.int64)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise DfdetError(
            f"{int(bad.sum())} trial(s) have no bona fide/spoof label (value {int(y[bad][0])})",
            "attach labels (evaluate --labels KEYFILE) or drop unlabelled rows",
        )
    if not allow_one_class:
        n_b, n_s = int((y == 0).sum()), int((y == 1).sum())
        if n_b == 0 or n_s == 0:
            only = "spoof" if n_b == 0 else "bona fide"
            raise DfdetError(
                f"only {only} trials ({s.size}); this metric needs both bona fide and spoof trials",
                "evaluate on a set with both classes (check the labels / key file)",
            )
    return s, y


def _split(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s, y = _as_arrays(scores, labels)
    return s[y == 0], s[y == 1]


# --------------------------------------------------------------------------------------------------- DET curve
def _det_rows(bona: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official DET for each row of `bona` [B, nb] and `spoof` [B, ns]: FRR, FAR [B, N+1] and sorted scores [B, N].

    Bona fide columns come first in the concatenation, so the stable sort puts a bona fide trial before a spoof
    trial with the same score (the official tie rule).
    """
    nb, ns = bona.shape[1], spoof.shape[1]
    allsc = np.concatenate([bona, spoof], axis=1)
    order = np.argsort(allsc, axis=1, kind="stable")
    is_bona = order < nb
    cum_b = np.cumsum(is_bona, axis=1)
    k = np.arange(1, nb + ns + 1)
    frr = np.concatenate([np.zeros((allsc.shape[0], 1)), cum_b / nb], axis=1)
    far = np.concatenate([np.ones((allsc.shape[0], 1)), (ns - (k - cum_b)) / ns], axis=1)
    sorted_scores = np.take_along_axis(allsc, order, axis=1)
    return frr, far, sorted_scores


def det_curve(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FRR (bona fide rejected), FAR (spoof accepted) and thresholds at every cut of the official DET (length N+1)."""
    bona, spoof = _split(scores, labels)
    frr, far, ss = _det_rows(bona[None, :], spoof[None, :])
    thr = np.concatenate([[ss[0, 0] - 0.001], ss[0]])
    return frr[0], far[0], thr


def _eer_from_det(frr: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argmin(np.abs(frr - far), axis=-1)
    rows = np.arange(frr.shape[0])
    return (frr[rows, idx] + far[rows, idx]) / 2.0, idx


def eer(scores: Any, labels: Any) -> tuple[float, float]:
    """Equal error rate by the official ASVspoof rule and its threshold.

    EER = (FRR[i] + FAR[i]) / 2 at i = argmin |FRR - FAR| over the DET points (first such index), no interpolation.
    The threshold is the DET threshold at i (a score; `min(score) - 0.001` if i is the start point).
    """
    frr, far, thr = det_curve(scores, labels)
    e, idx = _eer_from_det(frr[None, :], far[None, :])
    return float(e[0]), float(thr[idx[0]])


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC of detecting BONA FIDE with bona-fide-positive scores (sklearn; ties count one half)."""
    from sklearn.metrics import roc_auc_score

    s, y = _as_arrays(scores, labels)
    return float(roc_auc_score((y == 0).astype(int), s))


# --------------------------------------------------------------------------------------------------- DCF
def bayes_threshold(p_spoof: float = P_SPOOF, c_miss: float = C_MISS, c_fa: float = C_FA) -> float:
    """The Bayes decision threshold on natural-log LLRs: -ln(beta), beta = Cmiss (1 - pi) / (Cfa pi)."""
    _check_costs(p_spoof, c_miss, c_fa)
    beta = c_miss * (1.0 - p_spoof) / (c_fa * p_spoof)
    return -math.log(beta)


def _check_costs(p_spoof: float, c_miss: float, c_fa: float) -> None:
    if not 0.0 < p_spoof < 1.0:
        raise DfdetError(f"spoof prior {p_spoof} is not in (0, 1)", "pass e.g. --p-spoof 0.05")
    if c_miss <= 0 or c_fa <= 0:
        raise DfdetError(f"costs must be positive (c_miss {c_miss}, c_fa {c_fa})", "pass e.g. --c-miss 1 --c-fa 10")


def _dcf_norm(p_spoof: float, c_miss: float, c_fa: float) -> float:
    # Cost of the best system that decides without looking at the trial (accept all or reject all).
    return min(c_miss * (1.0 - p_spoof), c_fa * p_spoof)


def min_dcf(
    scores: Any, labels: Any, p_spoof: float = P_SPOOF, c_miss: float = C_MISS, c_fa: float = C_FA
) -> tuple[float, float]:
    """Normalised minimum detection cost (ASVspoof 5) and the threshold that attains it.

    DCF(t) = Cmiss (1 - pi) FRR(t) + Cfa pi FAR(t), minimised over the DET points, divided by
    min(Cmiss (1 - pi), Cfa pi). With pi = 0.05, Cmiss = 1, Cfa = 10 the divisor is 0.5.
    """
    _check_costs(p_spoof, c_miss, c_fa)
    frr, far, thr = det_curve(scores, labels)
    dcf = (c_miss * (1.0 - p_spoof) * frr + c_fa * p_spoof * far) / _dcf_norm(p_spoof, c_miss, c_fa)
    i = int(np.argmin(dcf))
    return float(dcf[i]), float(thr[i])


def act_dcf(llrs: Any, labels: Any, p_spoof: float = P_SPOOF, c_miss: float = C_MISS, c_fa: float = C_FA) -> float:
    """Normalised actual DCF: decisions at the Bayes threshold -ln(beta) on natural-log LLRs.

    A bona fide trial is missed when llr < threshold; a spoof is falsely accepted when llr >= threshold.
    """
    thr = bayes_threshold(p_spoof, c_miss, c_fa)
    bona, spoof = _split(llrs, labels)
    p_miss = float(np.mean(bona < thr))
    p_fa = float(np.mean(spoof >= thr))
    return (c_miss * (1.0 - p_spoof) * p_miss + c_fa * p_spoof * p_fa) / _dcf_norm(p_spoof, c_miss, c_fa)


# --------------------------------------------------------------------------------------------------- Cllr
def _neg_log_sigmoid(x: np.ndarray) -> np.ndarray:
    """-ln(sigmoid(x)) = ln(1 + e^-x), exact for +-inf (0 and inf)."""
    return np.logaddexp(0.0, -x)


def _cllr_parts(bona_llr: np.ndarray, spoof_llr: np.ndarray) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        c = 0.5 * (np.mean(_neg_log_sigmoid(bona_llr)) + np.mean(_neg_log_sigmoid(-spoof_llr))) / _LN2
    return float(c)


def cllr(llrs: Any, labels: Any) -> float:
    """Log-likelihood-ratio cost in bits (Brümmer & du Preez 2006).

    Cllr = 1/(2 ln 2) [ mean_bona ln(1 + e^-llr) + mean_spoof ln(1 + e^llr) ]; 1 bit = an uninformative system.
    """
    bona, spoof = _split(llrs, labels)
    return _cllr_parts(bona, spoof)


def pav_llrs(scores: Any, labels: Any) -> np.ndarray:
    """Optimal (oracle-calibrated) LLRs by PAV, as BOSARIS `opt_loglr` defines them, in the input order.

    PAV (sklearn IsotonicRegression, increasing, ties pooled) fits the posterior P(bona fide | score); the LLR is its
    log odds minus the empirical prior log odds ln(n_bona / n_spoof). Posteriors of exactly 0 or 1 give -inf / +inf
    LLRs, which Cllr handles exactly (such blocks are pure, so they cost nothing).
    """
    from sklearn.isotonic import IsotonicRegression

    s, y = _as_arrays(scores, labels)
    target = (y == 0).astype(np.float64)
    post = IsotonicRegression(increasing=True, out_of_bounds="clip").fit_transform(s, target)
    post = np.clip(post, 0.0, 1.0)
    n_b, n_s = float(target.sum()), float(target.size - target.sum())
    with np.errstate(divide="ignore"):
        log_odds = np.log(post) - np.log1p(-post)
    return log_odds - math.log(n_b / n_s)


def min_cllr(scores: Any, labels: Any) -> float:
    """Minimum Cllr (bits): the Cllr of the PAV-optimal LLRs; Cllr - min Cllr is the calibration loss."""
    s, y = _as_arrays(scores, labels)
    opt = pav_llrs(s, y)
    return _cllr_parts(opt[y == 0], opt[y == 1])


# --------------------------------------------------------------------------------------------------- t-DCF
def _asv_rates(pfa_asv: float, pmiss_asv: float, pmiss_spoof_asv: float) -> None:
    for name, v in (("pfa_asv", pfa_asv), ("pmiss_asv", pmiss_asv), ("pmiss_spoof_asv", pmiss_spoof_asv)):
        if not 0.0 <= v <= 1.0:
            raise DfdetError(f"ASV error rate {name}={v} is not in [0, 1]", "pass rates as fractions, e.g. 0.0246")


def tdcf_2019_constants(
    pfa_asv: float = ASV_RATES_2019_LA_EVAL["pfa_asv"],
    pmiss_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_asv"],
    pmiss_spoof_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_spoof_asv"],
    **costs: float,
) -> tuple[float, float]:
    """C1, C2 of the ASVspoof 2019 (legacy) t-DCF (Kinnunen et al., Odyssey 2018; ASVspoof 2019 evaluation plan).

    C1 = Ptar (Cmiss_cm - Cmiss_asv Pmiss_asv) - Pnon Cfa_asv Pfa_asv
    C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv)
    """
    c = {**TDCF_2019_COSTS, **costs}
    _asv_rates(pfa_asv, pmiss_asv, pmiss_spoof_asv)
    c1 = c["p_tar"] * (c["c_miss_cm"] - c["c_miss_asv"] * pmiss_asv) - c["p_non"] * c["c_fa_asv"] * pfa_asv
    c2 = c["c_fa_cm"] * c["p_spoof"] * (1.0 - pmiss_spoof_asv)
    if c1 <= 0 or c2 <= 0:
        raise DfdetError(f"t-DCF weights are not positive (C1 {c1:.4g}, C2 {c2:.4g})", "check the ASV error rates")
    return c1, c2


def min_tdcf_2019(
    scores: Any,
    labels: Any,
    pfa_asv: float = ASV_RATES_2019_LA_EVAL["pfa_asv"],
    pmiss_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_asv"],
    pmiss_spoof_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_spoof_asv"],
    **costs: float,
) -> tuple[float, float]:
    """ASVspoof 2019 (legacy) normalised minimum t-DCF of a CM in tandem with a fixed ASV, and its threshold.

    t-DCF(s) = C1 Pmiss_cm(s) + C2 Pfa_cm(s) with C1, C2 from `tdcf_2019_constants`; normalised by min(C1, C2) (the
    better of a CM that accepts everything or rejects everything) and minimised over the DET points.
    Default costs: Pspoof 0.05, Ptar 0.9405, Pnon 0.0095, Cmiss_asv 1, Cfa_asv 10, Cmiss_cm 1, Cfa_cm 10;
    default ASV rates: the ASVspoof 2019 LA eval ones. Override costs with keywords named as in TDCF_2019_COSTS.
    """
    c1, c2 = tdcf_2019_constants(pfa_asv, pmiss_asv, pmiss_spoof_asv, **costs)
    frr, far, thr = det_curve(scores, labels)
    curve = (c1 * frr + c2 * far) / min(c1, c2)
    i = int(np.argmin(curve))
    return float(curve[i]), float(thr[i])


def tdcf_2021_constants(
    pfa_asv: float = ASV_RATES_2019_LA_EVAL["pfa_asv"],
    pmiss_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_asv"],
    pmiss_spoof_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_spoof_asv"],
    **costs: float,
) -> tuple[float, float, float]:
    """C0, C1, C2 of the revised t-DCF (Kinnunen et al., IEEE/ACM TASLP 2020; ASVspoof 2021 evaluation plan).

    C0 = Ptar Cmiss Pmiss_asv + Pnon Cfa Pfa_asv            (cost the ASV incurs whatever the CM does)
    C1 = Ptar Cmiss - C0                                    (weight of the CM rejecting bona fide targets)
    C2 = Pspoof Cfa_spoof Pfa_spoof_asv, Pfa_spoof_asv = 1 - Pmiss_spoof_asv   (weight of the CM passing spoofs)
    """
    c = {**TDCF_2021_COSTS, **costs}
    _asv_rates(pfa_asv, pmiss_asv, pmiss_spoof_asv)
    c0 = c["p_tar"] * c["c_miss"] * pmiss_asv + c["p_non"] * c["c_fa"] * pfa_asv
    c1 = c["p_tar"] * c["c_miss"] - c0
    c2 = c["p_spoof"] * c["c_fa_spoof"] * (1.0 - pmiss_spoof_asv)
    if c0 < 0 or c1 <= 0 or c2 <= 0:
        raise DfdetError(
            f"t-DCF weights are not positive (C0 {c0:.4g}, C1 {c1:.4g}, C2 {c2:.4g})", "check the ASV error rates"
        )
    return c0, c1, c2


def tdcf_2021(
    scores: Any,
    labels: Any,
    pfa_asv: float = ASV_RATES_2019_LA_EVAL["pfa_asv"],
    pmiss_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_asv"],
    pmiss_spoof_asv: float = ASV_RATES_2019_LA_EVAL["pmiss_spoof_asv"],
    **costs: float,
) -> tuple[float, float]:
    """ASVspoof 2021 revised normalised minimum t-DCF and its threshold.

    t-DCF(s) = C0 + C1 Pmiss_cm(s) + C2 Pfa_cm(s), divided by the default-system cost C0 + min(C1, C2) and minimised
    over the DET points. Default costs: Pspoof 0.05, Ptar 0.95 x 0.99, Pnon 0.95 x 0.01, Cmiss 1, Cfa 10,
    Cfa_spoof 10 (override with keywords named as in TDCF_2021_COSTS).
    """
    c0, c1, c2 = tdcf_2021_constants(pfa_asv, pmiss_asv, pmiss_spoof_asv, **costs)
    frr, far, thr = det_curve(scores, labels)
    curve = (c0 + c1 * frr + c2 * far) / (c0 + min(c1, c2))
    i = int(np.argmin(curve))
    return float(curve[i]), float(thr[i])


# --------------------------------------------------------------------------------------------------- decisions
def decision_metrics(pred_spoof: Any, labels: Any) -> dict[str, float]:
    """Metrics of hard decisions (1 = called spoof). SPOOF is the POSITIVE class for precision/recall/F1/FPR/FNR.

    fpr = bona fide called spoof (= ASVspoof FRR, a "miss" of bona fide); fnr = spoof called bona fide (= FAR).
    """
    p = np.asarray(pred_spoof).astype(bool).ravel()
    _, y = _as_arrays(np.zeros(p.size), labels, allow_one_class=True)
    pos = y == 1
    tp, fn = int((p & pos).sum()), int((~p & pos).sum())
    fp, tn = int((p & ~pos).sum()), int((~p & ~pos).sum())
    nan = float("nan")
    tpr = tp / (tp + fn) if tp + fn else nan
    tnr = tn / (tn + fp) if tn + fp else nan
    precision = tp / (tp + fp) if tp + fp else nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan
    bal = float(np.nanmean([tpr, tnr])) if not (math.isnan(tpr) and math.isnan(tnr)) else nan
    return {
        "accuracy": (tp + tn) / p.size,
        "balanced_accuracy": bal,
        "precision": precision,
        "recall": tpr,
        "f1": f1,
        "fpr": fp / (fp + tn) if fp + tn else nan,
        "fnr": fn / (fn + tp) if fn + tp else nan,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def threshold_metrics(scores: Any, labels: Any, threshold: float) -> dict[str, float]:
    """Decision metrics at `threshold`: score >= threshold -> bona fide, else spoof (spoof = positive class)."""
    s, y = _as_arrays(scores, labels, allow_one_class=True)
    out = decision_metrics(s < threshold, y)
    out["threshold"] = float(threshold)
    return out


# --------------------------------------------------------------------------------------------------- sanity checks
def sanity_check(scores: Any, labels: Any) -> list[str]:
    """The official package's checks: errors (raised) for NaN/inf scores and a single class; warnings (returned)
    for hard decisions and for scores that rank the classes the wrong way round."""
    s, y = _as_arrays(scores, labels)
    warnings: list[str] = []
    n_unique = np.unique(s).size
    if n_unique <= 2 < s.size:
        warnings.append(
            f"scores take only {n_unique} distinct value(s): these look like hard decisions, not soft scores; "
            "EER/minDCF are then coarse (write logits/LLRs as scores)"
        )
    auc = roc_auc(s, y)
    n_b, n_s = int((y == 0).sum()), int((y == 1).sum())
    sd0 = math.sqrt((n_b + n_s + 1) / (12.0 * n_b * n_s))  # s.d. of the AUC of a random ranking (Mann-Whitney)
    if auc < 0.5 - 0.02 and (auc - 0.5) / sd0 < -3.0:
        warnings.append(
            f"scores look inverted: AUC {auc:.2f} (flipped {1 - auc:.2f}) — swapped labels or inverted learning? "
            "(scores must be bona-fide-positive)"
        )
    return warnings


# --------------------------------------------------------------------------------------------------- bootstrap
_VECTORISED = (
    "eer",
    "roc_auc",
    "min_dcf",
    "act_dcf",
    "cllr",
    "min_tdcf_2019",
    "min_tdcf_2021",
    "accuracy",
    "balanced_accuracy",
)


def _rows_metrics(
    bona: np.ndarray, spoof: np.ndarray, names: Sequence[str], params: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Metrics for each resample row at once ([B, nb] and [B, ns] score matrices)."""
    from scipy.stats import rankdata

    out: dict[str, np.ndarray] = {}
    p, cm, cf = params["p_spoof"], params["c_miss"], params["c_fa"]
    need_det = {"eer", "min_dcf", "min_tdcf_2019", "min_tdcf_2021"} & set(names)
    if need_det:
        frr, far, _ = _det_rows(bona, spoof)
        if "eer" in names:
            out["eer"] = _eer_from_det(frr, far)[0]
        if "min_dcf" in names:
            out["min_dcf"] = np.min(cm * (1 - p) * frr + cf * p * far, axis=1) / _dcf_norm(p, cm, cf)
        rates = params["asv_rates"]
        if "min_tdcf_2019" in names:
            c1, c2 = tdcf_2019_constants(**rates)
            out["min_tdcf_2019"] = np.min(c1 * frr + c2 * far, axis=1) / min(c1, c2)
        if "min_tdcf_2021" in names:
            c0, c1, c2 = tdcf_2021_constants(**rates)
            out["min_tdcf_2021"] = np.min(c0 + c1 * frr + c2 * far, axis=1) / (c0 + min(c1, c2))
    if "roc_auc" in names:
        nb, ns = bona.shape[1], spoof.shape[1]
        ranks = rankdata(np.concatenate([bona, spoof], axis=1), axis=1)
        out["roc_auc"] = (ranks[:, :nb].sum(axis=1) - nb * (nb + 1) / 2.0) / (nb * ns)
    if "act_dcf" in names:
        thr = bayes_threshold(p, cm, cf)
        out["act_dcf"] = (cm * (1 - p) * np.mean(bona < thr, axis=1) + cf * p * np.mean(spoof >= thr, axis=1)) / (
            _dcf_norm(p, cm, cf)
        )
    if "cllr" in names:
        out["cllr"] = 0.5 * (_neg_log_sigmoid(bona).mean(axis=1) + _neg_log_sigmoid(-spoof).mean(axis=1)) / _LN2
    if {"accuracy", "balanced_accuracy"} & set(names):
        thr = params["threshold"]
        correct_b, correct_s = (bona >= thr), (spoof < thr)
        if "accuracy" in names:
            out["accuracy"] = (correct_b.sum(axis=1) + correct_s.sum(axis=1)) / (bona.shape[1] + spoof.shape[1])
        if "balanced_accuracy" in names:
            out["balanced_accuracy"] = (correct_b.mean(axis=1) + correct_s.mean(axis=1)) / 2.0
    return out


def bootstrap_ci(
    scores: Any,
    labels: Any,
    metrics: Sequence[str] | dict[str, Callable[[np.ndarray, np.ndarray], float]] = ("eer", "roc_auc", "min_dcf"),
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 42,
    threshold: float = 0.0,
    p_spoof: float = P_SPOOF,
    c_miss: float = C_MISS,
    c_fa: float = C_FA,
    asv_rates: dict[str, float] | None = None,
    chunk: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals, resampling bona fide and spoof trials separately (stratified).

    `metrics` names built-in metrics (vectorised over resamples: eer, roc_auc, min_dcf, act_dcf, cllr, min_tdcf_2019,
    min_tdcf_2021, accuracy, balanced_accuracy) or maps names to callables f(scores, labels) -> float (looped).
    The same seed and inputs give the same intervals whatever `chunk` (resamples per vectorised batch; 0 = automatic,
    bounded memory). Returns {name: (low, high)}.
    """
    if not 0.0 < level < 1.0:
        raise DfdetError(f"confidence level {level} is not in (0, 1)", "pass e.g. --ci 0.95")
    if n_boot < 1:
        raise DfdetError(f"bootstrap resamples {n_boot} < 1", "pass e.g. --bootstrap 1000")
    bona, spoof = _split(scores, labels)
    # One stream per class, drawn resample by resample: the intervals do not depend on the chunk size.
    rng_b, rng_s = np.random.default_rng(seed).spawn(2)
    if chunk <= 0:
        chunk = max(1, min(200, 4_000_000 // (bona.size + spoof.size)))  # bounds memory on large score files
    params = {
        "p_spoof": p_spoof,
        "c_miss": c_miss,
        "c_fa": c_fa,
        "threshold": threshold,
        "asv_rates": asv_rates or dict(ASV_RATES_2019_LA_EVAL),
    }
    if isinstance(metrics, dict):
        builtin, custom = [], dict(metrics)
    else:
        builtin = [m for m in metrics if m in _VECTORISED]
        unknown = [m for m in metrics if m not in _VECTORISED]
        if unknown:
            raise DfdetError(f"no bootstrap for metric(s) {unknown}", f"use one of {', '.join(_VECTORISED)}")
        custom = {}
    values: dict[str, list[np.ndarray]] = {m: [] for m in [*builtin, *custom]}
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        b = bona[rng_b.integers(0, bona.size, size=(rows, bona.size))]
        s = spoof[rng_s.integers(0, spoof.size, size=(rows, spoof.size))]
        if builtin:
            for name, v in _rows_metrics(b, s, builtin, params).items():
                values[name].append(v)
        for name, fn in custom.items():
            lab = np.r_[np.zeros(b.shape[1], int), np.ones(s.shape[1], int)]
            values[name].append(np.array([fn(np.r_[bi, si], lab) for bi, si in zip(b, s, strict=True)]))
    alpha = (1.0 - level) / 2.0
    out = {}
    for name, parts in values.items():
        v = np.concatenate(parts)
        lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
        out[name] = (float(lo), float(hi))
    return out


# --------------------------------------------------------------------------------------------------- summary
def summary(
    scores: Any,
    labels: Any,
    threshold: float | None = 0.0,
    decisions: Any = None,
    p_spoof: float = P_SPOOF,
    c_miss: float = C_MISS,
    c_fa: float = C_FA,
    asv_rates: dict[str, float] | None = None,
    ci: float | None = None,
    n_boot: int = 1000,
    seed: int = 42,
) -> dict[str, Any]:
    """Every metric in one JSON-able dict (fractions, not percent), plus `warnings` from `sanity_check`.

    Decision metrics use `decisions` (1/True = spoof) when given, else `threshold` on the scores (score >= threshold
    -> bona fide; default 0 = even odds on the natural-log-odds scale). With `ci`, adds `ci` {metric: [low, high]}.
    """
    s, y = _as_arrays(scores, labels)
    rates = {**ASV_RATES_2019_LA_EVAL, **(asv_rates or {})}
    out: dict[str, Any] = {"n_bonafide": int((y == 0).sum()), "n_spoof": int((y == 1).sum())}
    out["warnings"] = sanity_check(s, y)
    out["eer"], out["eer_threshold"] = eer(s, y)
    out["roc_auc"] = roc_auc(s, y)
    out["min_dcf"], out["min_dcf_threshold"] = min_dcf(s, y, p_spoof, c_miss, c_fa)
    out["act_dcf"] = act_dcf(s, y, p_spoof, c_miss, c_fa)
    out["act_dcf_threshold"] = bayes_threshold(p_spoof, c_miss, c_fa)
    out["cllr"] = cllr(s, y)
    out["min_cllr"] = min_cllr(s, y)
    out["min_tdcf_2019"], out["min_tdcf_2019_threshold"] = min_tdcf_2019(s, y, **rates)
    out["min_tdcf_2021"], out["min_tdcf_2021_threshold"] = tdcf_2021(s, y, **rates)
    if decisions is not None:
        dm = decision_metrics(decisions, y)
        dm["threshold"] = None
    else:
        dm = threshold_metrics(s, y, 0.0 if threshold is None else threshold)
    out["decision"] = dm
    out["costs"] = {"p_spoof": p_spoof, "c_miss": c_miss, "c_fa": c_fa}
    out["asv_rates"] = rates
    if ci is not None:
        names = list(_VECTORISED) if decisions is None else [m for m in _VECTORISED if "accuracy" not in m]
        cis = bootstrap_ci(
            s,
            y,
            names,
            n_boot=n_boot,
            level=ci,
            seed=seed,
            threshold=0.0 if threshold is None else threshold,
            p_spoof=p_spoof,
            c_miss=c_miss,
            c_fa=c_fa,
            asv_rates=rates,
        )
        out["ci"] = {"level": ci, "n_boot": n_boot, "seed": seed, **{k: list(v) for k, v in cis.items()}}
    return out


# --------------------------------------------------------------------------------------------------- score tables
_NO_SYSTEM = ("", "-", "bonafide", "bona fide", "bona-fide")
_SPOOF_ONLY = ("system", "attack")  # columns that describe spoofs only: the attack id and ASVspoof 5's attack tag


def _group_rows(table: Any, by: str) -> list[tuple[str, np.ndarray]]:
    """(group name, row indices) for `--by`. For `system` and `attack` each attack's spoofs are scored against ALL
    bona fide trials (pooled bona fide, as in ASVspoof per-attack EERs); other columns (codec, gender, ...) split
    both classes."""
    values = np.asarray(table.column(by), dtype=object)
    y = np.asarray(table.label)
    if by in _SPOOF_ONLY:
        bona = np.flatnonzero(y == 0)
        systems = sorted({str(v) for v, lab in zip(values, y, strict=True) if lab == 1})
        out = []
        for sysname in systems:
            spoof = np.flatnonzero((y == 1) & (values == sysname))
            out.append((sysname if sysname not in _NO_SYSTEM else "(none)", np.concatenate([bona, spoof])))
        return out
    return [(str(v) if v != "" else "(none)", np.flatnonzero(values == v)) for v in sorted(set(values.tolist()))]


def _partial_row(scores: np.ndarray, labels: np.ndarray, threshold: float, decisions: Any) -> dict[str, Any]:
    """What can be measured on a one-class group: counts and decision error rates."""
    n_b, n_s = int((labels == 0).sum()), int((labels == 1).sum())
    dm = decision_metrics(decisions, labels) if decisions is not None else threshold_metrics(scores, labels, threshold)
    return {
        "n_bonafide": n_b,
        "n_spoof": n_s,
        "warnings": [f"only {'spoof' if n_b == 0 else 'bona fide'} trials: EER, AUC, DCF and Cllr are undefined"],
        "decision": dm,
    }


def evaluate_table(
    table: Any,
    name: str = "",
    by: str | None = None,
    threshold: float | None = None,
    use_decisions: bool = True,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """`summary` of a score table (dfdet.scores.ScoreTable), pooled and, with `by`, per group; one dict per row.

    Decision metrics use `threshold` when given, else the table's `decision` column (if any and `use_decisions`),
    else 0. Rows without a label are left out and reported in `warnings`. kwargs go to `summary`.
    """
    labels = np.asarray(table.label)
    known = labels != -1
    notes: list[str] = []
    if not known.any():
        raise DfdetError(
            f"{table.source or name}: no utterance has a label",
            "pass --labels KEYFILE (protocol / key file) or score labelled inputs",
        )
    if not known.all():
        notes.append(f"{int((~known).sum())} of {labels.size} utterance(s) have no label and are left out")
        table = table.subset(known)
        labels = np.asarray(table.label)
    decisions = None
    if threshold is None and use_decisions and table.decision is not None and (np.asarray(table.decision) != -1).all():
        decisions = np.asarray(table.decision) == 1
        source = "decision column"
    else:
        source = "given" if threshold is not None else "default (0 = even odds)"
        threshold = 0.0 if threshold is None else float(threshold)
    groups: list[tuple[str | None, np.ndarray]] = [(None, np.arange(labels.size))]
    if by:
        groups += _group_rows(table, by)
    rows = []
    for group, idx in groups:
        s, y = np.asarray(table.score)[idx], labels[idx]
        d = None if decisions is None else decisions[idx]
        if (y == 0).any() and (y == 1).any():
            row = summary(s, y, threshold=threshold, decisions=d, **kwargs)
        elif group is None:
            only = "spoof" if (y == 1).all() else "bona fide"
            raise DfdetError(
                f"{table.source or name}: only {only} trials ({y.size}); EER and the other metrics need both classes",
                "evaluate a set with bona fide and spoof trials (check the labels / --labels key file)",
            )
        else:
            row = _partial_row(s, y, 0.0 if threshold is None else threshold, d)
        row = {"name": name, "by": by if group is not None else None, "group": group, **row}
        row["threshold_source"] = source
        if group is None and notes:
            row["warnings"] = notes + row["warnings"]
        rows.append(row)
    return rows
