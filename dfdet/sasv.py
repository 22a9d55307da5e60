"""Spoofing-aware speaker verification (ASVspoof 5 track 2) metrics: a-DCF, ASV-constrained min t-DCF and t-EER.

Written from the papers and the ASVspoof 5 evaluation plan, with the evaluation package's conventions so that
values agree with it exactly:
- a-DCF (Shim et al., Odyssey 2024): one detector (the `sasv-score`) faces target, non-target and spoof trials;
  a-DCF(t) = Cmiss Ptrg Pmiss(t) + Cfa_asv Pnontrg Pfa_non(t) + Cfa_cm Pspf Pfa_spf(t), normalised by the cost of
  the better of accept-all and reject-all, minimised over thresholds.
- min t-DCF (ASVspoof 5): the CM `cm-score` in tandem with the organisers' fixed ASV (its error rates given), in
  the revised form (Kinnunen et al., IEEE/ACM TASLP 2020): t-DCF(s) = C0 + C1 Pmiss_cm(s) + C2 Pfa_cm(s) with
  C0 = Ptar Cmiss Pmiss_asv + Pnon Cfa_asv Pfa_asv, C1 = Ptar Cmiss - C0, C2 = Pspoof Cfa_cm Pfa_spoof_asv,
  normalised by C0 + min(C1, C2) (the better default CM).
- t-EER (Kinnunen et al., IEEE TPAMI 2023): the concurrent tandem equal error rate of the (asv-score, cm-score)
  pairs: along the t-EER path (for each ASV threshold, the CM threshold where the tandem miss rate equals the tandem
  non-target false-alarm rate), the point where the spoof false-alarm rate equals them too.

All error curves use the official DET convention (dfdet.metrics): scores sorted by a STABLE sort of the
concatenation (target, non-target, spoof), the k lowest rejected at cut k = 0..N, nothing interpolated.
Scores are higher = accept (target / bona fide).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.errors import DfdetError, InputError
from dfdet.metrics import TDCF_2021_COSTS, det_curve, tdcf_2021

__all__ = [
    "ASV_RATES_ASVSPOOF5",
    "SASV_COSTS",
    "SasvTrials",
    "a_dcf",
    "bootstrap_sasv",
    "min_tdcf_asvspoof5",
    "read_sasv",
    "sasv_summary",
    "t_eer",
]

# ASVspoof 5 evaluation plan: priors and costs of the a-DCF and of the t-DCF.
SASV_COSTS = {"p_tar": 0.9405, "p_non": 0.0095, "p_spoof": 0.05, "c_miss": 1.0, "c_fa_asv": 10.0, "c_fa_cm": 10.0}
# The organisers' ASV error rates that the ASVspoof 5 (ASV-constrained) t-DCF holds fixed.
ASV_RATES_ASVSPOOF5 = {
    "pfa_asv": 0.01881016557566423,
    "pmiss_asv": 0.01880141010575793,
    "pfa_spoof_asv": 0.4607082907604729,
}
TARGET, NONTARGET, SPOOF = 0, 1, 2
_ASV_LABELS = {"target": TARGET, "nontarget": NONTARGET, "non-target": NONTARGET, "spoof": SPOOF}
_CM_LABELS = {"bonafide": 0, "bona-fide": 0, "spoof": 1}
METRICS = ("a_dcf", "min_tdcf", "t_eer")


@dataclass
class SasvTrials:
    """Track-2 trials joined from a score file and a key file, in key-file order."""

    filename: list[str]
    cm: np.ndarray  # CM scores (bona-fide-positive)
    asv: np.ndarray  # ASV scores (target-positive)
    sasv: np.ndarray  # single SASV scores (a-DCF)
    asv_label: np.ndarray  # 0 target, 1 non-target, 2 spoof
    cm_label: np.ndarray  # 0 bona fide, 1 spoof

    def __len__(self) -> int:
        return len(self.filename)

    def subset(self, idx: np.ndarray) -> SasvTrials:
        return SasvTrials(
            [self.filename[i] for i in idx],
            self.cm[idx],
            self.asv[idx],
            self.sasv[idx],
            self.asv_label[idx],
            self.cm_label[idx],
        )


# --------------------------------------------------------------------------------------------------- error curves
def _three_class_det(tar: np.ndarray, non: np.ndarray, spf: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pmiss (targets rejected), Pfa_non, Pfa_spf (accepted) and thresholds at every cut (length N + 1)."""
    allsc = np.concatenate([tar, non, spf])
    cls = np.concatenate([np.full(tar.size, TARGET), np.full(non.size, NONTARGET), np.full(spf.size, SPOOF)])
    order = np.argsort(allsc, kind="stable")
    cls = cls[order]
    pmiss = np.concatenate([[0.0], np.cumsum(cls == TARGET) / tar.size])
    pfa_non = np.concatenate([[1.0], 1.0 - np.cumsum(cls == NONTARGET) / non.size])
    pfa_spf = np.concatenate([[1.0], 1.0 - np.cumsum(cls == SPOOF) / spf.size])
    thr = np.concatenate([[allsc[order[0]] - 0.001], allsc[order]])
    return pmiss, pfa_non, pfa_spf, thr


def _classes(scores: np.ndarray, asv_label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = tuple(np.asarray(scores, dtype=np.float64)[asv_label == c] for c in (TARGET, NONTARGET, SPOOF))
    for name, part in zip(("target", "non-target", "spoof"), parts, strict=True):
        if part.size == 0:
            raise DfdetError(f"no {name} trials", "SASV metrics need target, non-target and spoof trials")
    return parts


def a_dcf(sasv_scores: Any, asv_label: Any, **costs: float) -> tuple[float, float]:
    """Normalised minimum a-DCF of one SASV score per trial, and its threshold (Shim et al., 2024).

    Defaults: Ptrg 0.9405, Pnontrg 0.0095, Pspf 0.05, Cmiss 1, Cfa_asv 10, Cfa_cm 10 (keywords as in SASV_COSTS).
    """
    c = {**SASV_COSTS, **costs}
    tar, non, spf = _classes(np.asarray(sasv_scores), np.asarray(asv_label))
    pmiss, pfa_non, pfa_spf, thr = _three_class_det(tar, non, spf)
    curve = (
        c["c_miss"] * c["p_tar"] * pmiss + c["c_fa_asv"] * c["p_non"] * pfa_non + c["c_fa_cm"] * c["p_spoof"] * pfa_spf
    )
    norm = min(c["c_fa_asv"] * c["p_non"] + c["c_fa_cm"] * c["p_spoof"], c["c_miss"] * c["p_tar"])
    i = int(np.argmin(curve))
    return float(curve[i] / norm), float(thr[i])


def min_tdcf_asvspoof5(
    cm_scores: Any,
    cm_label: Any,
    pfa_asv: float = ASV_RATES_ASVSPOOF5["pfa_asv"],
    pmiss_asv: float = ASV_RATES_ASVSPOOF5["pmiss_asv"],
    pfa_spoof_asv: float = ASV_RATES_ASVSPOOF5["pfa_spoof_asv"],
    **costs: float,
) -> tuple[float, float]:
    """ASVspoof 5 min t-DCF of a CM with the organisers' ASV held fixed (its error rates), and the CM threshold.

    The revised t-DCF (dfdet.metrics.tdcf_2021) with the ASVspoof 5 priors and costs and that ASV's spoof
    false-accept rate. `cm_label`: 0 bona fide, 1 spoof.
    """
    c = {**SASV_COSTS, **costs}
    model = {
        "p_spoof": c["p_spoof"],
        "p_tar": c["p_tar"],
        "p_non": c["p_non"],
        "c_miss": c["c_miss"],
        "c_fa": c["c_fa_asv"],
        "c_fa_spoof": c["c_fa_cm"],
    }
    assert set(model) == set(TDCF_2021_COSTS)
    return tdcf_2021(cm_scores, cm_label, pfa_asv, pmiss_asv, 1.0 - pfa_spoof_asv, **model)


def t_eer(asv_scores: Any, cm_scores: Any, asv_label: Any) -> tuple[float, float, float]:
    """Concurrent t-EER (a fraction) of ASV and CM scores of the same trials, with its (ASV, CM) thresholds.

    For each ASV threshold in the region where the ASV misses fewer targets than it accepts non-targets, the CM
    threshold index k minimising |Pmiss_tdm - Pfa_tdm| (Pmiss_tdm = Pmiss_cm + (1 - Pmiss_cm) Pmiss_asv,
    Pfa_tdm = (1 - Pmiss_cm) Pfa_non_asv) is taken; the concurrent point is where Pfa_non_asv / Pfa_spf_asv comes
    closest to Pfa_cm / (1 - Pmiss_cm), and there t-EER = Pfa_spf_asv Pfa_cm. The CM's bona fide trials are the
    target and non-target ones.
    """
    y = np.asarray(asv_label)
    a_tar, a_non, a_spf = _classes(np.asarray(asv_scores), y)
    pmiss_a, pfa_non_a, pfa_spf_a, tau_a = _three_class_det(a_tar, a_non, a_spf)
    cm = np.asarray(cm_scores, dtype=np.float64)
    pmiss_c, pfa_c, tau_c = det_curve(cm, (y == SPOOF).astype(np.int64))
    allowed = np.flatnonzero(pmiss_a < pfa_non_a)
    if allowed.size == 0:
        raise DfdetError("the ASV scores never miss fewer targets than they accept non-targets", "check the ASV scores")
    pm, pn, ps = pmiss_a[allowed], pfa_non_a[allowed], pfa_spf_a[allowed]
    # |h(k)| = |Pmiss_tdm - Pfa_tdm| is monotone in Pmiss_cm, which is non-decreasing in k: look near the root only,
    # at the first index of each distinct Pmiss_cm value (argmin's first-index rule), and compare |h| as written.
    values, first = np.unique(pmiss_c, return_index=True)
    root = (pn - pm) / (1.0 - pm + pn)
    pos = np.searchsorted(values, root)
    cand = np.clip(pos[:, None] + np.arange(-2, 2)[None, :], 0, values.size - 1)
    k = first[cand]  # [J, 4] candidate CM indices, increasing
    h = np.abs(pmiss_c[k] + (1.0 - pmiss_c[k]) * pm[:, None] - (1.0 - pmiss_c[k]) * pn[:, None])
    best = h.min(axis=1, keepdims=True)
    k = np.where(h == best, k, np.iinfo(np.int64).max).min(axis=1)  # the first index reaching the minimum
    with np.errstate(divide="ignore", invalid="ignore"):
        crit = np.abs(pn / ps - pfa_c[k] / (1.0 - pmiss_c[k]))
    crit = np.where(np.isnan(crit), np.inf, crit)
    if not np.isfinite(crit).any():
        raise DfdetError("no concurrent t-EER point (degenerate scores)", "check that the scores are not constant")
    j = int(np.argmin(crit))
    return float(ps[j] * pfa_c[k[j]]), float(tau_a[allowed[j]]), float(tau_c[k[j]])


# --------------------------------------------------------------------------------------------------- summary
def _point(trials: SasvTrials, rates: dict[str, float], costs: dict[str, float]) -> dict[str, float]:
    return {
        "a_dcf": a_dcf(trials.sasv, trials.asv_label, **costs)[0],
        "min_tdcf": min_tdcf_asvspoof5(trials.cm, trials.cm_label, **rates, **costs)[0],
        "t_eer": t_eer(trials.asv, trials.cm, trials.asv_label)[0],
    }


def bootstrap_sasv(
    trials: SasvTrials,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 42,
    rates: dict[str, float] | None = None,
    **costs: float,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of a-DCF, min t-DCF and t-EER, resampling trials with replacement within each
    class (target, non-target, spoof) so that every resample has all three. Seeded: same seed, same intervals."""
    if not 0.0 < level < 1.0:
        raise DfdetError(f"confidence level {level} is not in (0, 1)", "pass e.g. --ci 0.95")
    if n_boot < 1:
        raise DfdetError(f"bootstrap resamples {n_boot} < 1", "pass e.g. --bootstrap 1000")
    rates = {**ASV_RATES_ASVSPOOF5, **(rates or {})}
    groups = [np.flatnonzero(trials.asv_label == c) for c in (TARGET, NONTARGET, SPOOF)]
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(n_boot):
        idx = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        for name, v in _point(trials.subset(idx), rates, costs).items():
            values[name].append(v)
    alpha = (1.0 - level) / 2.0
    return {m: tuple(float(q) for q in np.quantile(v, [alpha, 1.0 - alpha])) for m, v in values.items()}


def sasv_summary(
    trials: SasvTrials,
    ci: float | None = None,
    n_boot: int = 1000,
    seed: int = 42,
    rates: dict[str, float] | None = None,
    **costs: float,
) -> dict[str, Any]:
    """All track-2 metrics of `trials` (t-EER as a fraction), the counts, settings and, with `ci`, intervals."""
    rates = {**ASV_RATES_ASVSPOOF5, **(rates or {})}
    c = {**SASV_COSTS, **costs}
    out: dict[str, Any] = {
        "n_target": int((trials.asv_label == TARGET).sum()),
        "n_nontarget": int((trials.asv_label == NONTARGET).sum()),
        "n_spoof": int((trials.asv_label == SPOOF).sum()),
    }
    out["a_dcf"], out["a_dcf_threshold"] = a_dcf(trials.sasv, trials.asv_label, **c)
    out["min_tdcf"], out["min_tdcf_threshold"] = min_tdcf_asvspoof5(trials.cm, trials.cm_label, **rates, **c)
    out["t_eer"], out["t_eer_asv_threshold"], out["t_eer_cm_threshold"] = t_eer(trials.asv, trials.cm, trials.asv_label)
    out["costs"], out["asv_rates"] = c, rates
    if ci is not None:
        cis = bootstrap_sasv(trials, n_boot=n_boot, level=ci, seed=seed, rates=rates, **c)
        out["ci"] = {"level": ci, "n_boot": n_boot, "seed": seed, **{k: list(v) for k, v in cis.items()}}
    return out


# --------------------------------------------------------------------------------------------------- reading
def _table(path: str | os.PathLike, need: tuple[str, ...], what: str) -> tuple[str, dict[str, int], list]:
    """Header positions of `need` and the (line number, fields) rows of a tab- or space-separated file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, f"{what} not found", "check the path")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(p, f"cannot read {what} ({exc})", "pass a UTF-8 text file") from exc
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(p, f"{what} is empty", f"expected a header {' '.join(need)} and one line per trial")
    delim = "\t" if "\t" in lines[0][1] else None
    split = (lambda s: next(csv.reader(io.StringIO(s), delimiter="\t"))) if delim else str.split  # noqa: E731
    header = [h.strip().lower() for h in split(lines[0][1])]
    missing = [n for n in need if n not in header]
    if missing:
        raise DfdetError(
            f"{p}:{lines[0][0]}: {what} header lacks {', '.join(missing)} (header: {' '.join(header)})",
            f"write the official header: {' '.join(need)}",
        )
    rows = []
    for lineno, line in lines[1:]:
        fields = [f.strip() for f in split(line)]
        if len(fields) != len(header):
            raise DfdetError(
                f"{p}:{lineno}: {len(fields)} fields but the header has {len(header)}", "one value per header column"
            )
        rows.append((lineno, fields))
    if not rows:
        raise InputError(p, f"{what} has a header but no trials", "pass the full file")
    return str(p), {n: header.index(n) for n in need}, rows


def _number(text: str, where: str, name: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise DfdetError(f"{where}: {name} {text!r} is not a number", "write numeric scores") from None
    if not np.isfinite(v):
        raise DfdetError(f"{where}: {name} is {text}", "metrics need finite scores")
    return v


def read_sasv(scores_path: str | os.PathLike, keys_path: str | os.PathLike) -> SasvTrials:
    """Join the official track-2 score file (`spk filename cm-score asv-score sasv-score`) and key file
    (`spk filename cm-label asv-label`) by filename. Every key trial needs a score and every score a key; the
    labels must agree (spoof in cm-label exactly where asv-label is spoof). Errors name the file and line."""
    sname, si, srows = _table(scores_path, ("filename", "cm-score", "asv-score", "sasv-score"), "SASV score file")
    kname, ki, krows = _table(keys_path, ("filename", "cm-label", "asv-label"), "SASV key file")
    scores: dict[str, tuple[int, list[str]]] = {}
    for lineno, f in srows:
        name = f[si["filename"]]
        if name in scores:
            raise DfdetError(f"{sname}:{lineno}: duplicate filename {name!r} (first on line {scores[name][0]})",
                             "each trial must appear once")  # fmt: skip
        scores[name] = (lineno, f)
    names, cm, asv, sasv, alab, clab = [], [], [], [], [], []
    seen: dict[str, int] = {}
    for lineno, f in krows:
        where = f"{kname}:{lineno}"
        name = f[ki["filename"]]
        if name in seen:
            raise DfdetError(f"{where}: duplicate filename {name!r} (first on line {seen[name]})", "one line per trial")
        seen[name] = lineno
        a = _ASV_LABELS.get(f[ki["asv-label"]].lower())
        c = _CM_LABELS.get(f[ki["cm-label"]].lower())
        if a is None:
            raise DfdetError(f"{where}: unknown asv-label {f[ki['asv-label']]!r}", "use target, nontarget or spoof")
        if c is None:
            raise DfdetError(f"{where}: unknown cm-label {f[ki['cm-label']]!r}", "use bonafide or spoof")
        if (a == SPOOF) != (c == 1):
            raise DfdetError(
                f"{where}: cm-label {f[ki['cm-label']]} contradicts asv-label {f[ki['asv-label']]}",
                "spoof trials are spoof in both columns; target and non-target trials are bonafide",
            )
        hit = scores.get(name)
        if hit is None:
            raise DfdetError(f"{where}: trial {name!r} has no score in {sname}", "score every trial of the key file")
        sl, sf = hit
        swhere = f"{sname}:{sl}"
        names.append(name)
        cm.append(_number(sf[si["cm-score"]], swhere, "cm-score"))
        asv.append(_number(sf[si["asv-score"]], swhere, "asv-score"))
        sasv.append(_number(sf[si["sasv-score"]], swhere, "sasv-score"))
        alab.append(a)
        clab.append(c)
    extra = sorted(set(scores) - seen.keys(), key=lambda n: scores[n][0])
    if extra:
        raise DfdetError(
            f"{sname}:{scores[extra[0]][0]}: {len(extra)} scored trial(s) are not in {kname} (e.g. {extra[0]!r})",
            "pass the key file of this trial list",
        )
    return SasvTrials(names, np.array(cm), np.array(asv), np.array(sasv), np.array(alab), np.array(clab))
