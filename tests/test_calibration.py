"""Calibration library: LLR mapping, rank preservation, exact JSON round-trips, threshold policies, quality report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.calibration import (
    CALIBRATORS,
    apply_calibration,
    bayes_threshold,
    calibration_quality,
    calibrator_from_dict,
    decide,
    detector_path,
    expected_calibration_error,
    fit_calibration,
    fit_threshold,
    load_calibration,
    make_calibrator,
    parse_threshold_policy,
    save_calibration,
)
from dfdet.errors import DfdetError, InputError

METHODS = sorted(CALIBRATORS)


def gaussian_scores(n_bona=400, n_spoof=1600, mu_b=2.0, mu_s=-1.0, sigma=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_bona, int), np.ones(n_spoof, int)]
    s = np.where(y == 0, mu_b, mu_s) + sigma * rng.standard_normal(len(y))
    return s, y


def _data(draw_seed: int, n: int, separation: float):
    rng = np.random.default_rng(draw_seed)
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    rng.shuffle(y)
    s = np.where(y == 0, separation, 0.0) + rng.standard_normal(n) * rng.uniform(0.2, 5.0)
    # coarse rounding makes ties, which must stay ties
    return np.round(s, 1), y


def test_registry_has_the_three_methods():
    assert set(METHODS) == {"logistic", "isotonic", "temperature"}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(6, 120), sep=st.floats(0.5, 4.0), method=st.sampled_from(METHODS))
def test_calibration_keeps_ranks(seed, n, sep, method):
    s, y = _data(seed, n, sep)
    cal = make_calibrator(method).fit(s, y)
    probe = np.sort(np.r_[s, np.linspace(s.min() - 3, s.max() + 3, 50)])
    llr = cal.transform(probe)
    d = np.diff(llr)
    if method == "isotonic":
        assert np.all(d >= 0)  # monotone non-decreasing (PAV pools into ties)
    else:
        a = cal.a
        assert a != 0
        # strictly order-preserving (or uniformly order-reversing when the slope came out negative)
        strict = np.diff(probe) > 1e-9  # not just one ulp apart (a * x rounds)
        assert np.all(np.sign(a) * d[strict] > 0)
        assert np.all(np.sign(a) * d >= 0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(4, 200))
def test_isotonic_is_monotone_on_arbitrary_data(seed, n):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3)
    cal = make_calibrator("isotonic").fit(s, y)
    grid = np.linspace(s.min() - 1, s.max() + 1, 500)
    assert np.all(np.diff(cal.transform(grid)) >= 0)
    assert np.all(np.isfinite(cal.transform(grid)))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(METHODS), prior=st.sampled_from([0.5, 0.2, 0.9]))
def test_json_round_trip_gives_identical_outputs(seed, method, prior):
    s, y = _data(seed, 80, 1.5)
    cal = make_calibrator(method, fit_prior=prior).fit(s, y)
    back = calibrator_from_dict(json.loads(json.dumps(cal.to_dict())))
    probe = np.random.default_rng(seed + 1).standard_normal(300) * 7
    assert np.array_equal(cal.transform(probe), back.transform(probe))
    assert np.array_equal(cal.transform(s), back.transform(s))


@pytest.mark.parametrize("method", METHODS)
def test_file_round_trip_and_apply(tmp_path, method):
    s, y = gaussian_scores(seed=3)
    doc = fit_calibration(s, y, method, "eer", source="dev.tsv")
    path = tmp_path / "sub" / "cal.json"
    save_calibration(path, doc, detector=tmp_path / "models" / "m.pt")
    loaded = load_calibration(path)
    assert loaded["kind"] == "calibration" and loaded["schema_version"] == 1 and loaded["method"] == method
    assert loaded["detector"] == "../models/m.pt"
    assert detector_path(loaded, path).resolve() == (tmp_path / "models" / "m.pt").resolve()
    probe = np.linspace(-8, 8, 101)
    llr_mem, dec_mem = apply_calibration(doc, probe)
    llr_file, dec_file = apply_calibration(loaded, probe)
    assert np.array_equal(llr_mem, llr_file) and np.array_equal(dec_mem, dec_file)
    thr = loaded["threshold"]["value"]
    assert np.array_equal(dec_file, np.where(llr_file >= thr, 0, 1))
    fd = loaded["fitting_data"]
    assert (fd["n_bonafide"], fd["n_spoof"], fd["source"]) == (400, 1600, "dev.tsv")
    assert len(fd["hash"]) == 16
    assert "provenance" in loaded


def test_logistic_on_gaussians_matches_theory_and_min_cllr():
    mu_b, mu_s, sigma = 2.0, -1.0, 1.5
    s, y = gaussian_scores(n_bona=3000, n_spoof=3000, mu_b=mu_b, mu_s=mu_s, sigma=sigma, seed=7)
    cal = make_calibrator("logistic").fit(s, y)
    # equal-variance Gaussians: LLR(s) = (mu_b - mu_s)/sigma^2 * s - (mu_b^2 - mu_s^2) / (2 sigma^2)
    a_true = (mu_b - mu_s) / sigma**2
    b_true = -(mu_b**2 - mu_s**2) / (2 * sigma**2)
    assert cal.a == pytest.approx(a_true, rel=0.08)
    assert cal.b == pytest.approx(b_true, abs=0.1)
    q = calibration_quality(cal.transform(s), y)
    assert q["cllr"] - q["min_cllr"] < 0.02
    assert q["ece"] < 0.03
    # badly scaled raw scores are far from their min Cllr; calibration closes that gap
    raw = calibration_quality(5 * s + 3, y)
    assert raw["cllr"] - raw["min_cllr"] > 0.5


def test_prior_weighting_makes_fit_independent_of_class_balance():
    s1, y1 = gaussian_scores(n_bona=3000, n_spoof=3000, seed=1)
    s2, y2 = gaussian_scores(n_bona=600, n_spoof=6000, seed=2)
    a1 = make_calibrator("logistic").fit(s1, y1)
    a2 = make_calibrator("logistic").fit(s2, y2)
    # both estimate the same LLR even though the second set is 10:1 spoof
    grid = np.linspace(-2, 3, 11)
    assert np.max(np.abs(a1.transform(grid) - a2.transform(grid))) < 0.35


def test_temperature_has_no_shift_and_isotonic_is_bounded():
    s, y = gaussian_scores(seed=4)
    t = make_calibrator("temperature").fit(s, y)
    assert t.transform(np.array([0.0]))[0] == 0.0
    iso = make_calibrator("isotonic", eps=1e-3).fit(s, y)
    bound = math.log((1 - 1e-3) / 1e-3)
    assert np.all(np.abs(iso.transform(np.linspace(-50, 50, 201))) <= bound + 1e-9)


def test_negative_slope_is_reported():
    s, y = gaussian_scores(seed=5)
    doc = fit_calibration(-s, y, "logistic", "bayes")
    assert doc["params"]["a"] < 0
    assert "inverted" in doc["warnings"][0]


# --------------------------------------------------------------------------------------------- thresholds
def test_bayes_threshold_formula():
    p_spoof, c_miss, c_fa = 0.05, 1.0, 10.0
    beta = c_miss * (1 - p_spoof) / (c_fa * p_spoof)  # = 1.9
    assert bayes_threshold() == pytest.approx(-math.log(beta))
    assert fit_threshold("bayes", [0.0]) == pytest.approx(-math.log(1.9))
    assert bayes_threshold(0.5, 1, 1) == 0.0
    assert fit_threshold("bayes", [0.0], p_spoof=0.2, c_miss=2, c_fa=3) == pytest.approx(-math.log(2 * 0.8 / (3 * 0.2)))


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.2])
def test_fpr_policy_bounds_false_accepts(rate):
    s, y = gaussian_scores(seed=11)
    thr = fit_threshold(f"fpr={rate}", s, y)
    spoof = s[y == 1]
    assert np.mean(spoof >= thr) <= rate
    # and it is the loosest such threshold: admitting the next spoof score would break the bound or it is already
    # at the allowed count
    allowed = math.floor(rate * len(spoof) + 1e-9)
    assert np.count_nonzero(spoof >= thr) == allowed


def test_eer_threshold_balances_errors():
    s, y = gaussian_scores(n_bona=1000, n_spoof=1000, seed=12)
    thr = fit_threshold("eer", s, y)
    frr = np.mean(s[y == 0] < thr)
    far = np.mean(s[y == 1] >= thr)
    assert abs(frr - far) <= 0.003
    # and it realises the official EER operating point exactly under `bona fide iff score >= threshold`
    from dfdet.metrics import eer

    assert (frr + far) / 2 == pytest.approx(eer(s, y)[0], abs=1e-12)


def test_youden_and_max_accuracy_are_optimal_over_all_cuts():
    s, y = gaussian_scores(n_bona=150, n_spoof=450, seed=13)
    cuts = np.r_[s, s.max() + 1]  # every distinct decision rule `score >= cut`

    def j(t):
        return np.mean(s[y == 0] >= t) - np.mean(s[y == 1] >= t)

    def acc(t):
        return np.mean(np.where(s >= t, 0, 1) == y)

    assert j(fit_threshold("youden", s, y)) == pytest.approx(max(j(c) for c in cuts))
    assert acc(fit_threshold("max-accuracy", s, y)) == pytest.approx(max(acc(c) for c in cuts))


def test_policy_parsing():
    assert parse_threshold_policy("fpr=0.01") == ("fpr", 0.01)
    assert parse_threshold_policy("EER") == ("eer", None)
    for bad in ("median", "fpr", "fpr=2", "eer=1"):
        with pytest.raises(DfdetError):
            parse_threshold_policy(bad)


def test_decide_convention():
    assert decide([1.0, 0.0, -1.0], 0.0).tolist() == [0, 0, 1]


# --------------------------------------------------------------------------------------------- quality
def test_ece_definition_on_hand_made_bins():
    p = np.array([0.05, 0.05, 0.95, 0.95])
    y = np.array([0, 1, 1, 1])  # bin [0, 1/15): mean p 0.05, observed 0.5; top bin: 0.95 vs 1.0
    assert expected_calibration_error(p, y, bins=15) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)


def test_quality_report_fields():
    s, y = gaussian_scores(seed=14)
    doc = fit_calibration(s, y, "isotonic", "youden")
    q = doc["quality"]
    assert sum(b["count"] for b in q["reliability"]) == len(y) and len(q["reliability"]) == q["ece_bins"] == 15
    assert q["cllr"] >= q["min_cllr"] - 1e-9
    assert set(q["at_threshold"]) == {"accuracy", "balanced_accuracy", "f1", "far", "frr"}


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("scores", "labels", "match"),
    [
        ([0.1, 0.2, 0.3], [1, 1, 1], "only one class"),
        ([0.1, float("nan"), 0.3], [0, 1, 1], "NaN"),
        ([0.1, 0.2, 0.3], [0, 1, -1], "unknown label"),
        ([0.1, 0.2], [0, 1, 1], "labels"),
    ],
)
def test_bad_fitting_data(scores, labels, match):
    with pytest.raises(DfdetError, match=match):
        make_calibrator("logistic").fit(scores, labels)


def test_unknown_method_and_bad_files(tmp_path):
    with pytest.raises(DfdetError, match="unknown calibration method"):
        make_calibrator("platt2")
    with pytest.raises(InputError, match="no such file"):
        load_calibration(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text('{"kind": "ensemble", "schema_version": 1}')
    with pytest.raises(InputError, match="not a calibration file"):
        load_calibration(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("not json")
    with pytest.raises(InputError, match="cannot read as JSON"):
        load_calibration(tmp_path / "y.json")
    with pytest.raises(DfdetError, match="not fitted"):
        make_calibrator("temperature").transform([1.0])
