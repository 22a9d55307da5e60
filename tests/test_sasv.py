"""dfdet.sasv (ASVspoof 5 track 2): official reference values, hand-computed cases, a literal t-EER, file errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfdet import sasv
from dfdet.errors import DfdetError
from tests.conftest import DATA

VECTORS = DATA / "metric-vectors"


def _reference() -> tuple[sasv.SasvTrials, dict]:
    trials = sasv.read_sasv(VECTORS / "sasv_b.scores.tsv", VECTORS / "sasv_b.keys.tsv")
    return trials, json.loads((VECTORS / "sasv_b.expected.json").read_text())


def test_reference_values_match_official_package():
    t, exp = _reference()
    assert (len(t), int((t.asv_label == 0).sum()), int((t.asv_label == 1).sum())) == (9000, 2000, 3000)
    assert sasv.a_dcf(t.sasv, t.asv_label)[0] == pytest.approx(exp["a_dcf"], abs=1e-6)
    assert sasv.min_tdcf_asvspoof5(t.cm, t.cm_label)[0] == pytest.approx(exp["min_tdcf_asvspoof5"], abs=1e-6)
    assert 100 * sasv.t_eer(t.asv, t.cm, t.asv_label)[0] == pytest.approx(exp["t_eer_percent"], rel=1e-6)
    out = sasv.sasv_summary(t)
    assert out["a_dcf"] == pytest.approx(exp["a_dcf"], abs=1e-6)
    assert out["min_tdcf"] == pytest.approx(exp["min_tdcf_asvspoof5"], abs=1e-6)
    assert 100 * out["t_eer"] == pytest.approx(exp["t_eer_percent"], rel=1e-6)


def test_a_dcf_by_hand():
    # sorted: 0.1 spf, 0.2 non, 0.3 tar, 0.6 spf, 0.8 tar  -> cuts k = 0..5
    scores = np.array([0.3, 0.8, 0.2, 0.1, 0.6])
    lab = np.array([0, 0, 1, 2, 2])
    pmiss = np.array([0, 0, 0, 0.5, 0.5, 1])
    pfa_non = np.array([1, 1, 0, 0, 0, 0])
    pfa_spf = np.array([1, 0.5, 0.5, 0.5, 0, 0])
    costs = {"p_tar": 0.9, "p_non": 0.05, "p_spoof": 0.05, "c_miss": 1.0, "c_fa_asv": 10.0, "c_fa_cm": 20.0}
    curve = 0.9 * pmiss + 0.5 * pfa_non + 1.0 * pfa_spf
    value, thr = sasv.a_dcf(scores, lab, **costs)
    assert value == pytest.approx(curve.min() / min(0.5 + 1.0, 0.9))
    assert thr == pytest.approx(0.6)  # minimum at cut 4 (0.45): 0.1, 0.2, 0.3, 0.6 rejected; official threshold
    assert sasv.a_dcf(scores, lab)[0] == pytest.approx(
        min(0.9405 * pmiss + 0.095 * pfa_non + 0.5 * pfa_spf) / min(0.595, 0.9405)
    )


def test_min_tdcf_asvspoof5_by_hand():
    bona, spoof = [0.9, 0.4, 0.7], [0.1, 0.5, 0.3]
    s, y = np.array(bona + spoof), np.array([0, 0, 0, 1, 1, 1])
    frr = np.array([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    far = np.array([1, 2 / 3, 1 / 3, 1 / 3, 0, 0, 0])
    pfa, pmiss, pfa_spf = 0.02, 0.03, 0.4
    c0 = 0.9405 * pmiss + 0.0095 * 10 * pfa
    c1, c2 = 0.9405 - c0, 0.05 * 10 * pfa_spf
    want = np.min((c0 + c1 * frr + c2 * far) / (c0 + min(c1, c2)))
    got = sasv.min_tdcf_asvspoof5(s, y, pfa_asv=pfa, pmiss_asv=pmiss, pfa_spoof_asv=pfa_spf)[0]
    assert got == pytest.approx(want)


def _t_eer_literal(asv: np.ndarray, cm: np.ndarray, lab: np.ndarray) -> float:
    """The concurrent t-EER exactly as the paper's procedure reads: every ASV threshold, every CM threshold."""
    tar, non, spf = (asv[lab == c] for c in (0, 1, 2))
    allsc = np.concatenate([tar, non, spf])
    cls = np.concatenate([np.zeros(tar.size), np.ones(non.size), np.full(spf.size, 2)])[
        np.argsort(allsc, kind="stable")
    ]
    pm = np.r_[0, np.cumsum(cls == 0) / tar.size]
    pn = np.r_[1, 1 - np.cumsum(cls == 1) / non.size]
    ps = np.r_[1, 1 - np.cumsum(cls == 2) / spf.size]
    bona, sp = cm[lab != 2], cm[lab == 2]
    cl = np.concatenate([np.zeros(bona.size), np.ones(sp.size)])[np.argsort(np.r_[bona, sp], kind="stable")]
    pmc = np.r_[0, np.cumsum(cl == 0) / bona.size]
    pfc = np.r_[1, 1 - np.cumsum(cl == 1) / sp.size]
    best, value = np.inf, None
    for j in range(pm.size):
        if not pm[j] < pn[j]:
            continue
        h = (pmc + (1 - pmc) * pm[j]) - (1 - pmc) * pn[j]
        k = int(np.argmin(np.abs(h)))
        with np.errstate(divide="ignore", invalid="ignore"):
            crit = abs(pn[j] / ps[j] - pfc[k] / (1 - pmc[k]))
        if crit < best:
            best, value = crit, ps[j] * pfc[k]
    return float(value)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_t_eer_matches_literal_procedure(seed):
    rng = np.random.default_rng(seed)
    n_t, n_n, n_s = 60, 80, 100
    lab = np.r_[np.zeros(n_t, int), np.ones(n_n, int), np.full(n_s, 2)]
    asv = np.round(np.r_[rng.normal(2, 1, n_t), rng.normal(-2, 1, n_n), rng.normal(1, 1.5, n_s)], 1)  # ties
    cm = np.round(np.r_[rng.normal(1, 1, n_t + n_n), rng.normal(-1, 1, n_s)], 1)
    assert sasv.t_eer(asv, cm, lab)[0] == pytest.approx(_t_eer_literal(asv, cm, lab), abs=1e-12)


def test_perfect_systems_score_zero():
    lab = np.r_[np.zeros(5, int), np.ones(5, int), np.full(5, 2)]
    asv = np.r_[np.full(5, 3.0), np.linspace(-3, -2, 5), np.linspace(2, 2.5, 5)]
    cm = np.r_[np.linspace(1, 2, 10), np.linspace(-2, -1, 5)]
    sasv_scores = np.r_[np.full(5, 3.0), np.linspace(-3, -2, 10)]
    assert sasv.a_dcf(sasv_scores, lab)[0] == 0.0
    assert sasv.t_eer(asv, cm, lab)[0] == 0.0


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    t, exp = _reference()
    sub = t.subset(np.r_[0:9000:6])  # 1,500 trials keep the test fast
    point = sasv.sasv_summary(sub)
    ci = sasv.bootstrap_sasv(sub, n_boot=60, seed=3)
    assert ci == sasv.bootstrap_sasv(sub, n_boot=60, seed=3)
    assert ci != sasv.bootstrap_sasv(sub, n_boot=60, seed=4)
    for name in ("a_dcf", "min_tdcf", "t_eer"):
        lo, hi = ci[name]
        assert lo <= point[name] <= hi, name
        assert hi - lo < 0.2, name


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_read_sasv_errors_name_file_and_line(tmp_path):
    head_s = "spk\tfilename\tcm-score\tasv-score\tsasv-score\n"
    head_k = "spk\tfilename\tcm-label\tasv-label\n"
    scores = _write(tmp_path / "s.tsv", head_s + "S1\tE1\t1.0\t2.0\t1.5\nS1\tE2\t-1.0\t0.5\tx\n")
    keys = _write(tmp_path / "k.tsv", head_k + "S1\tE1\tbonafide\ttarget\nS1\tE2\tspoof\tspoof\n")
    with pytest.raises(DfdetError, match=r"s\.tsv:3: sasv-score 'x' is not a number"):
        sasv.read_sasv(scores, keys)
    _write(scores, head_s + "S1\tE1\t1.0\t2.0\t1.5\nS1\tE2\t-1.0\t0.5\n")
    with pytest.raises(DfdetError, match=r"s\.tsv:3: 4 fields but the header has 5"):
        sasv.read_sasv(scores, keys)
    _write(scores, head_s + "S1\tE1\t1.0\t2.0\t1.5\nS1\tE2\t-1.0\t0.5\t0.1\n")
    _write(keys, head_k + "S1\tE1\tbonafide\ttarget\nS1\tE2\tbonafide\tspoof\n")
    with pytest.raises(DfdetError, match=r"k\.tsv:3: cm-label bonafide contradicts asv-label spoof"):
        sasv.read_sasv(scores, keys)
    _write(keys, head_k + "S1\tE1\tbonafide\ttarget\nS1\tE3\tspoof\tspoof\n")
    with pytest.raises(DfdetError, match=r"k\.tsv:3: trial 'E3' has no score"):
        sasv.read_sasv(scores, keys)
    _write(keys, head_k + "S1\tE1\tbonafide\ttarget\n")
    with pytest.raises(DfdetError, match=r"s\.tsv:3: 1 scored trial\(s\) are not in"):
        sasv.read_sasv(scores, keys)
    _write(keys, "spk\tfilename\tlabel\n")
    with pytest.raises(DfdetError, match="header lacks cm-label, asv-label"):
        sasv.read_sasv(scores, keys)
    _write(keys, head_k + "S1\tE1\tbonafide\tmaybe\n")
    with pytest.raises(DfdetError, match=r"k\.tsv:2: unknown asv-label 'maybe'"):
        sasv.read_sasv(scores, keys)


def test_missing_class_is_a_clear_error():
    lab = np.r_[np.zeros(3, int), np.ones(3, int)]
    with pytest.raises(DfdetError, match="no spoof trials"):
        sasv.a_dcf(np.arange(6.0), lab)
