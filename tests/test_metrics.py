"""dfdet.metrics: official reference values, hand-computed tiny cases, invariants (hypothesis), sanity checks."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdet import metrics as m
from dfdet.errors import DfdetError
from tests.conftest import DATA

VECTORS = DATA / "metric-vectors"

# A tiny case worked out by hand. Sorted (stable, bona fide first on ties):
#   0.1 s, 0.3 s, 0.4 b, 0.5 s, 0.7 b, 0.9 b
# cut k (k lowest rejected):   0    1    2    3    4    5    6
FRR = [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1]  # bona fide rejected
FAR = [1, 2 / 3, 1 / 3, 1 / 3, 0, 0, 0]  # spoof accepted
THR = [0.1 - 0.001, 0.1, 0.3, 0.4, 0.5, 0.7, 0.9]
BONA = [0.9, 0.4, 0.7]
SPOOF = [0.1, 0.5, 0.3]
S = np.array(BONA + SPOOF)
Y = np.array([0, 0, 0, 1, 1, 1])


def _load_reference() -> tuple[np.ndarray, np.ndarray, dict]:
    with open(VECTORS / "scores_a.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    scores = np.array([float(r["score"]) for r in rows])
    labels = np.array([0 if r["label"] == "bonafide" else 1 for r in rows])
    expected = json.loads((VECTORS / "scores_a.expected.json").read_text())
    return scores, labels, expected


# ----------------------------------------------------------------------------------------------- official values
def test_reference_values_match_official_package():
    s, y, exp = _load_reference()
    assert (int((y == 0).sum()), int((y == 1).sum())) == (exp["n_bonafide"], exp["n_spoof"])
    e, thr = m.eer(s, y)
    assert e == pytest.approx(exp["eer"], abs=1e-6)
    assert thr == pytest.approx(exp["eer_threshold"], abs=1e-6)
    assert m.min_dcf(s, y, p_spoof=0.05, c_miss=1, c_fa=10)[0] == pytest.approx(exp["min_dcf"], abs=1e-6)
    assert m.act_dcf(s, y) == pytest.approx(exp["act_dcf"], abs=1e-6)
    assert m.cllr(s, y) == pytest.approx(exp["cllr"], abs=1e-6)
    rates = exp["asv_rates_2019_eval"]
    assert m.min_tdcf_2019(s, y, **rates)[0] == pytest.approx(exp["min_tdcf_2019"], abs=1e-6)
    # the defaults are the 2019 LA eval rates
    assert m.min_tdcf_2019(s, y)[0] == pytest.approx(exp["min_tdcf_2019"], abs=1e-6)


def test_summary_carries_reference_values():
    s, y, exp = _load_reference()
    out = m.summary(s, y)
    for key in ("eer", "eer_threshold", "min_dcf", "act_dcf", "cllr", "min_tdcf_2019"):
        assert out[key] == pytest.approx(exp[key], abs=1e-6), key
    assert out["min_cllr"] <= out["cllr"]
    assert 0.5 < out["roc_auc"] <= 1
    assert out["warnings"] == []
    json.dumps(out)  # JSON-able


# ----------------------------------------------------------------------------------------------- hand-computed cases
def test_det_curve_by_hand():
    frr, far, thr = m.det_curve(S, Y)
    np.testing.assert_allclose(frr, FRR)
    np.testing.assert_allclose(far, FAR)
    np.testing.assert_allclose(thr, THR)


def test_eer_by_hand():
    # |FRR - FAR| is smallest (0) at k = 3: EER = (1/3 + 1/3) / 2, threshold = the 3rd sorted score, 0.4
    e, thr = m.eer(S, Y)
    assert e == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.4)


def test_eer_tie_rule_stable_sort_first_index():
    # bona 1.0; spoof 1.0, 0.0 -> sorted 0.0 s, 1.0 b, 1.0 s; FRR 0,0,1,1; FAR 1,.5,.5,0; first min at k=1
    e, thr = m.eer([1.0, 1.0, 0.0], [0, 1, 1])
    assert e == pytest.approx(0.25)
    assert thr == pytest.approx(0.0)


def test_min_dcf_by_hand():
    # DCF_norm(k) = (0.95 FRR + 10 * 0.05 FAR) / min(0.95, 0.5): k=2 gives (0 + 0.5/3) / 0.5 = 1/3 at threshold 0.3
    dcf = [(0.95 * a + 0.5 * b) / 0.5 for a, b in zip(FRR, FAR, strict=True)]
    assert min(dcf) == pytest.approx(1 / 3)
    value, thr = m.min_dcf(S, Y)
    assert value == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.3)


def test_act_dcf_by_hand():
    # threshold -ln(0.95 / 0.5) = -0.642; bona fide -1 is missed (1/2), spoof 0 is accepted (1/2)
    llr, lab = [2.0, -1.0, -3.0, 0.0], [0, 0, 1, 1]
    assert m.bayes_threshold() == pytest.approx(-math.log(1.9))
    assert m.act_dcf(llr, lab) == pytest.approx((0.95 * 0.5 + 0.5 * 0.5) / 0.5)


def test_cllr_by_hand():
    assert m.cllr([0.0, 0.0, 0.0], [0, 1, 1]) == pytest.approx(1.0)  # uninformative = 1 bit
    k = math.log(3.0)
    assert m.cllr([k, -k], [0, 1]) == pytest.approx(math.log(4 / 3) / math.log(2))


def test_min_cllr_perfect_and_bounds():
    # perfect separation: PAV posteriors 1 and 0 -> +-inf LLRs, which cost nothing (BOSARIS convention)
    assert m.min_cllr([3.0, 2.0, -1.0, -2.0], [0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-12)
    llr = m.pav_llrs([3.0, 2.0, -1.0, -2.0], [0, 0, 1, 1])
    assert np.isposinf(llr[:2]).all() and np.isneginf(llr[2:]).all()
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(1, 1, 300), rng.normal(-1, 1, 500)]
    y = np.r_[np.zeros(300, int), np.ones(500, int)]
    assert 0 < m.min_cllr(s, y) <= m.cllr(s, y)
    assert m.min_cllr(s, y) <= m.cllr(0.3 * s - 2, y)  # a badly calibrated copy costs more than its optimum


def test_pav_llrs_are_monotone_and_offset_by_prior():
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(1, 1, 50), rng.normal(-1, 1, 200)]
    y = np.r_[np.zeros(50, int), np.ones(200, int)]
    llr = m.pav_llrs(s, y)[np.argsort(s)]
    assert np.all(llr[1:] >= llr[:-1])
    # by hand: sorted bona-fide indicator 0,1,0,1,0 -> PAV posteriors 0, .5, .5, .5, .5;
    # LLR = logit(posterior) - ln(n_bona / n_spoof) = 0 - ln(2/3) for the pooled block, -inf for the first
    llr = m.pav_llrs([1.0, 2.0, 3.0, 4.0, 5.0], [1, 0, 1, 0, 1])
    assert np.isneginf(llr[0])
    np.testing.assert_allclose(llr[1:], math.log(3 / 2))


def test_tdcf_2019_by_hand():
    # ASV rates Pfa 0.1, Pmiss 0.2, Pmiss_spoof 0.5; costs Ptar .9405 Pnon .0095 Pspoof .05, Cmiss 1, Cfa 10
    c1 = 0.9405 * (1 - 1 * 0.2) - 0.0095 * 10 * 0.1  # = 0.7429
    c2 = 10 * 0.05 * (1 - 0.5)  # = 0.25
    curve = [(c1 * a + c2 * b) / min(c1, c2) for a, b in zip(FRR, FAR, strict=True)]
    assert min(curve) == pytest.approx(1 / 3)  # k = 2: 0.25 * (1/3) / 0.25
    assert m.tdcf_2019_constants(0.1, 0.2, 0.5) == pytest.approx((0.7429, 0.25))
    value, thr = m.min_tdcf_2019(S, Y, pfa_asv=0.1, pmiss_asv=0.2, pmiss_spoof_asv=0.5)
    assert value == pytest.approx(min(curve))
    assert thr == pytest.approx(0.3)


def test_tdcf_2021_by_hand():
    # C0 = Ptar Cmiss Pmiss_asv + Pnon Cfa Pfa_asv = 0.9405*0.2 + 0.0095*10*0.1 = 0.1976
    # C1 = Ptar Cmiss - C0 = 0.7429; C2 = Pspoof Cfa_spoof (1 - Pmiss_spoof_asv) = 0.25; default = C0 + min(C1, C2)
    c0, c1, c2 = 0.1976, 0.7429, 0.25
    curve = [(c0 + c1 * a + c2 * b) / (c0 + min(c1, c2)) for a, b in zip(FRR, FAR, strict=True)]
    assert m.tdcf_2021_constants(0.1, 0.2, 0.5) == pytest.approx((c0, c1, c2))
    value, thr = m.tdcf_2021(S, Y, pfa_asv=0.1, pmiss_asv=0.2, pmiss_spoof_asv=0.5)
    assert value == pytest.approx(min(curve))
    assert value == pytest.approx((0.1976 + 0.25 / 3) / 0.4476)
    assert thr == pytest.approx(0.3)


def test_tdcf_rejects_impossible_asv_rates():
    with pytest.raises(DfdetError, match="not in"):
        m.min_tdcf_2019(S, Y, pfa_asv=1.5)
    with pytest.raises(DfdetError, match="not positive"):
        m.tdcf_2021(S, Y, pmiss_spoof_asv=1.0)


def test_roc_auc_by_hand():
    # pairs bona > spoof: 0.9 beats 3, 0.4 beats 2, 0.7 beats 3 -> 8 of 9
    assert m.roc_auc(S, Y) == pytest.approx(8 / 9)
    assert m.roc_auc([1.0, 1.0], [0, 1]) == pytest.approx(0.5)  # a tie counts one half


def test_threshold_metrics_by_hand():
    # threshold 0.45: bona 0.4 called spoof (FP), spoof 0.5 called bona (FN); spoof is the positive class
    out = m.threshold_metrics(S, Y, 0.45)
    assert (out["tp"], out["fp"], out["tn"], out["fn"]) == (2, 1, 2, 1)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["balanced_accuracy"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["fpr"] == pytest.approx(1 / 3) and out["fnr"] == pytest.approx(1 / 3)
    # the decision rule is score >= threshold -> bona fide
    assert m.threshold_metrics([0.5, 0.5], [0, 1], 0.5)["fn"] == 1


# ----------------------------------------------------------------------------------------------- invariants
@st.composite
def trials(draw, min_size: int = 4, max_size: int = 40):
    """Scores on a 0.01 grid in [-8, 8] (so transforms keep ties as ties) with both classes present."""
    n = draw(st.integers(min_size, max_size))
    ints = draw(st.lists(st.integers(-800, 800), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    labels[0], labels[1] = 0, 1
    return np.array(ints) / 100.0, np.array(labels)


TRANSFORMS = {
    "affine": lambda x: 3.5 * x - 2.0,
    "exp": np.exp,
    "cube": lambda x: x**3,
    "shift": lambda x: x + 100.0,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trials(), st.sampled_from(sorted(TRANSFORMS)))
def test_rank_metrics_invariant_under_monotone_transforms(case, tname):
    s, y = case
    t = TRANSFORMS[tname](s)
    assert m.eer(t, y)[0] == m.eer(s, y)[0]
    assert m.roc_auc(t, y) == pytest.approx(m.roc_auc(s, y), abs=1e-12)
    assert m.min_dcf(t, y)[0] == pytest.approx(m.min_dcf(s, y)[0], abs=1e-12)
    assert m.min_cllr(t, y) == pytest.approx(m.min_cllr(s, y), abs=1e-9)
    assert m.min_tdcf_2019(t, y)[0] == pytest.approx(m.min_tdcf_2019(s, y)[0], abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(trials())
def test_metric_ranges(case):
    s, y = case
    e, _ = m.eer(s, y)
    assert 0.0 <= e <= 1.0
    assert 0.0 <= m.roc_auc(s, y) <= 1.0
    assert 0.0 <= m.min_dcf(s, y)[0] <= 1.0 + 1e-12  # never worse than the best trial-blind system
    assert 0.0 <= m.min_cllr(s, y) <= 1.0 + 1e-9  # PAV can always fall back to the prior
    assert 0.0 <= m.min_tdcf_2019(s, y)[0] <= 1.0 + 1e-12
    assert 0.0 <= m.tdcf_2021(s, y)[0] <= 1.0 + 1e-12
    # EER is the mean of two rates at one DET point, so it lies between the two rates of the best point
    frr, far, _ = m.det_curve(s, y)
    i = int(np.argmin(np.abs(frr - far)))
    assert min(frr[i], far[i]) <= e <= max(frr[i], far[i])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0.1, 5))
def test_perfect_and_reversed_separation(nb, ns, gap):
    bona = np.linspace(gap, gap + 1, nb)
    spoof = np.linspace(-1, 0, ns)
    s, y = np.r_[bona, spoof], np.r_[np.zeros(nb, int), np.ones(ns, int)]
    assert m.eer(s, y)[0] == 0.0
    assert m.roc_auc(s, y) == 1.0
    assert m.min_dcf(s, y)[0] == 0.0
    assert m.eer(-s, y)[0] == 1.0
    assert m.roc_auc(-s, y) == 0.0


# ----------------------------------------------------------------------------------------------- sanity checks
def test_nan_and_inf_scores_are_errors():
    with pytest.raises(DfdetError, match="NaN or infinite"):
        m.eer([0.1, float("nan")], [0, 1])
    with pytest.raises(DfdetError, match="NaN or infinite"):
        m.sanity_check([0.1, float("inf"), 0.2], [0, 1, 1])


def test_one_class_only_is_a_clear_error():
    with pytest.raises(DfdetError, match="only spoof trials") as info:
        m.eer([0.1, 0.2, 0.3], [1, 1, 1])
    assert "both bona fide and spoof" in str(info.value)
    with pytest.raises(DfdetError, match="only bona fide"):
        m.summary([0.1, 0.2], [0, 0])


def test_unlabelled_and_mismatched_inputs_are_errors():
    with pytest.raises(DfdetError, match="no bona fide/spoof label"):
        m.eer([0.1, 0.2, 0.3], [0, 1, -1])
    with pytest.raises(DfdetError, match="3 scores but 2 labels"):
        m.eer([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(DfdetError, match="no trials"):
        m.eer([], [])


def test_hard_decisions_warn():
    w = m.sanity_check([1.0, 1.0, 0.0, 0.0, 1.0], [0, 0, 1, 1, 1])
    assert any("hard decisions" in x for x in w)


def test_inverted_scores_warn_with_auc():
    rng = np.random.default_rng(3)
    s = np.r_[rng.normal(-2, 1, 200), rng.normal(2, 1, 200)]  # bona fide LOW: inverted
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    w = m.sanity_check(s, y)
    assert any(x.startswith("scores look inverted: AUC 0.0") and "inverted learning" in x for x in w)
    assert m.sanity_check(-s, y) == []
    # a near-chance system is not flagged
    s2 = rng.normal(0, 1, 400)
    assert not any("inverted" in x for x in m.sanity_check(s2, y))


# ----------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_vectorised_equals_loop_and_is_seeded():
    rng = np.random.default_rng(5)
    s = np.round(np.r_[rng.normal(1, 1, 60), rng.normal(-1, 1.5, 90)], 1)  # rounding makes ties
    y = np.r_[np.zeros(60, int), np.ones(90, int)]
    names = ["eer", "roc_auc", "min_dcf", "act_dcf", "cllr", "min_tdcf_2019", "min_tdcf_2021", "accuracy"]
    fast = m.bootstrap_ci(s, y, names, n_boot=40, seed=7)
    slow = m.bootstrap_ci(
        s,
        y,
        {
            "eer": lambda a, b: m.eer(a, b)[0],
            "roc_auc": m.roc_auc,
            "min_dcf": lambda a, b: m.min_dcf(a, b)[0],
            "act_dcf": m.act_dcf,
            "cllr": m.cllr,
            "min_tdcf_2019": lambda a, b: m.min_tdcf_2019(a, b)[0],
            "min_tdcf_2021": lambda a, b: m.tdcf_2021(a, b)[0],
            "accuracy": lambda a, b: m.threshold_metrics(a, b, 0.0)["accuracy"],
        },
        n_boot=40,
        seed=7,
    )
    for name in names:
        assert fast[name] == pytest.approx(slow[name], abs=1e-12), name
    assert m.bootstrap_ci(s, y, ["eer"], n_boot=40, seed=7) == {"eer": fast["eer"]}
    assert m.bootstrap_ci(s, y, names, n_boot=40, seed=7, chunk=7) == fast  # chunking does not change the draw
    assert m.bootstrap_ci(s, y, ["eer"], n_boot=40, seed=8) != {"eer": fast["eer"]}


def test_bootstrap_interval_brackets_estimate():
    s, y, exp = _load_reference()
    ci = m.bootstrap_ci(s, y, ["eer", "min_dcf"], n_boot=200, level=0.95, seed=1)
    assert ci["eer"][0] < exp["eer"] < ci["eer"][1]
    assert ci["eer"][1] - ci["eer"][0] < 0.05
    assert ci["min_dcf"][0] < exp["min_dcf"] < ci["min_dcf"][1]
    with pytest.raises(DfdetError, match="no bootstrap"):
        m.bootstrap_ci(s, y, ["nope"], n_boot=2)


def test_summary_with_ci_and_decisions():
    out = m.summary(S, Y, decisions=[0, 1, 0, 1, 0, 1], ci=0.9, n_boot=20, seed=0)
    assert out["decision"]["accuracy"] == pytest.approx(4 / 6)
    assert set(out["ci"]) >= {"eer", "roc_auc", "level", "n_boot", "seed"}
    assert "accuracy" not in out["ci"]  # decisions are fixed: no threshold to resample with


# ----------------------------------------------------------------------------------------------- score tables
def test_evaluate_table_per_attack_pools_bona_fide():
    from dfdet.scores import ScoreTable

    table = ScoreTable(
        [f"u{i}" for i in range(8)],
        np.array([2.0, 1.5, 1.0, 0.5, -1.0, -2.0, 1.2, 0.2]),
        label=[0, 0, 0, 0, 1, 1, 1, 1],
        extra={"system": ["-", "-", "-", "-", "A01", "A01", "A02", "A02"]},
    )
    rows = m.evaluate_table(table, name="t", by="system")
    assert [r["group"] for r in rows] == [None, "A01", "A02"]
    assert [r["n_bonafide"] for r in rows] == [4, 4, 4]
    assert [r["n_spoof"] for r in rows] == [4, 2, 2]
    assert rows[1]["eer"] == 0.0  # A01 spoofs are all below every bona fide score
    assert rows[2]["eer"] > 0.0
