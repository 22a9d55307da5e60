"""Fusion library: the study's AUC^2 rule with flips, mean and logistic fusion, honest cross-validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from dfdet import fusion, metrics
from dfdet.errors import DfdetError
from dfdet.fusion import (
    FUSERS,
    IN_SAMPLE_LABEL,
    apply_ensemble,
    build_ensemble_document,
    cross_validate_fusion,
    fuser_from_dict,
    in_sample_fusion,
    inverted_members,
    make_fuser,
    stratified_splits,
)


def three_members(n=1200, seed=0):
    """Two weakly informative members with independent noise + one strong member whose scores are negated."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    sig = np.where(y == 0, 1.0, -1.0)  # bona fide up
    S = np.c_[
        0.8 * sig + rng.standard_normal(n),
        0.8 * sig + rng.standard_normal(n),
        -(1.2 * sig + rng.standard_normal(n)),  # inverted learning: ranks spoof above bona fide
    ]
    return S, y


def test_auc2_flips_the_inverted_member_and_beats_every_member():
    S, y = three_members()
    member_eers = [metrics.eer(S[:, m], y)[0] for m in range(3)]
    flipped_strong_eer = metrics.eer(-S[:, 2], y)[0]
    f = make_fuser("auc2").fit(S, y)
    assert f.flips == [False, False, True]
    fused_eer = metrics.eer(f.transform(S), y)[0]
    assert fused_eer < min(member_eers)
    assert fused_eer < flipped_strong_eer  # better than even the repaired strong member alone
    # without flipping, averaging is ruined by the inverted member
    mean_eer = metrics.eer(make_fuser("mean").fit(S, y).transform(S), y)[0]
    assert mean_eer > fused_eer + 0.2
    # and the honest (out-of-fold) estimate agrees: flipping is learned on training folds too
    cv = cross_validate_fusion(S, y, "auc2", k=5, seed=1)
    assert cv["flip_counts"] == [0, 0, 5]
    assert cv["metrics"]["eer"] < min(member_eers)


def test_auc2_weights_are_normalised_squared_aucs():
    S, y = three_members(n=400, seed=3)
    f = make_fuser("auc2").fit(S, y)
    auc = np.array([roc_auc_score(y == 0, S[:, m]) for m in range(3)])
    eff = np.where(auc < 0.5, 1 - auc, auc)
    expected = np.where(auc < 0.5, -1, 1) * eff**2 / np.sum(eff**2)
    np.testing.assert_allclose(f.weights, expected, rtol=1e-12)
    # fused = sum_m w_m z_m with z-params from the fitting data
    z = (S - S.mean(0)) / S.std(0)
    np.testing.assert_allclose(f.transform(S), z @ expected, rtol=1e-10, atol=1e-12)


def test_mean_fuser_is_mean_of_z_scores():
    S, y = three_members(n=300, seed=4)
    f = make_fuser("mean").fit(S, y)
    z = (S - S.mean(0)) / S.std(0)
    np.testing.assert_allclose(f.transform(S), z.mean(1), rtol=1e-10, atol=1e-12)
    assert f.flips == [False, False, False]


def test_logistic_fuser_learns_signs_and_states_c():
    S, y = three_members(n=800, seed=5)
    f = make_fuser("logistic").fit(S, y)
    assert f.flips == [False, False, True]
    d = f.to_dict()
    assert d["C"] == 1.0 and "balanced" in d["class_weight"]
    assert metrics.roc_auc(f.transform(S), y) > 0.95


def test_inverted_members_helper():
    S, y = three_members(n=300, seed=6)
    inv = inverted_members(S, y, ["a", "b", "c"])
    assert [m["name"] for m in inv] == ["c"] and inv[0]["auc"] < 0.5


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(sorted(FUSERS)), m=st.integers(1, 4))
def test_json_round_trip_gives_identical_outputs(seed, method, m):
    rng = np.random.default_rng(seed)
    n = 60
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    S = rng.standard_normal((n, m)) * rng.uniform(0.1, 10, m) + np.where(y == 0, 1.0, 0.0)[:, None]
    f = make_fuser(method).fit(S, y)
    back = fuser_from_dict(json.loads(json.dumps(f.to_dict())))
    probe = rng.standard_normal((200, m)) * 20
    assert np.array_equal(f.transform(probe), back.transform(probe))


def test_document_round_trip_through_file(tmp_path):
    from dfdet.jsonio import write_json

    S, y = three_members(n=300, seed=7)
    members = [fusion.score_member(f"m{i}", tmp_path / f"m{i}.tsv", tmp_path / "ens.json") for i in range(3)]
    doc, cv, ins = build_ensemble_document(S, y, members, "auc2", cv=3, in_sample=True, seed=0)
    write_json(tmp_path / "ens.json", doc)
    loaded = fusion.load_ensemble(tmp_path / "ens.json")
    a, da = apply_ensemble(doc, S)
    b, db = apply_ensemble(loaded, S)
    assert np.array_equal(a, b) and np.array_equal(da, db)
    assert loaded["members"][0] == {"name": "m0", "kind": "scores", "file": "m0.tsv", "column": "score"}
    assert loaded["flipped_members"] == ["m2"]
    assert loaded["in_sample"]["label"] == IN_SAMPLE_LABEL == "in-sample (optimistic)"
    assert "out-of-fold" in loaded["out_of_fold"]["label"]
    assert loaded["fitting_data"]["n"] == 300 and len(loaded["fitting_data"]["hash"]) == 16
    assert np.array_equal(cv["scores"], cross_validate_fusion(S, y, "auc2", k=3, seed=0)["scores"])  # reproducible
    assert np.array_equal(ins["scores"], a)  # in-sample scores are the final model's scores


# --------------------------------------------------------------------------------------------- honesty of CV
@pytest.mark.parametrize("method", sorted(FUSERS))
def test_cv_parameters_do_not_depend_on_held_out_labels(method):
    """Scrambling the labels of one held-out fold leaves that fold's fitted fuser, calibration, threshold and
    out-of-fold scores unchanged: nothing fitted for the fold looked at its test rows."""
    S, y = three_members(n=300, seed=8)
    splits = stratified_splits(y, 5, seed=0)
    ref = cross_validate_fusion(S, y, method, splits=splits, threshold_policy="youden")
    te = splits[2][1]
    y2 = y.copy()
    y2[te] = 1 - y2[te]  # every held-out label wrong
    rng = np.random.default_rng(0)
    y2[te] = rng.permutation(y2[te])
    alt = cross_validate_fusion(S, y2, method, splits=splits, threshold_policy="youden")
    f_ref, f_alt = ref["folds"][2], alt["folds"][2]
    assert f_ref["fuser"] == f_alt["fuser"]
    assert f_ref["calibration"] == f_alt["calibration"]
    assert f_ref["threshold"] == f_alt["threshold"]
    assert np.array_equal(ref["scores"][te], alt["scores"][te])
    # sanity: the other folds DO see the changed labels in their training rows
    assert any(ref["folds"][i]["fuser"] != alt["folds"][i]["fuser"] for i in (0, 1, 3, 4))


def test_cv_fit_never_sees_test_rows(monkeypatch):
    """An instrumented fuser records the rows it is fitted on; no fold fits on its own test rows."""
    seen: list[set[float]] = []

    class Spy(fusion.Auc2Fuser):
        name = "spy"

        def fit(self, S, y):
            seen.append(set(np.asarray(S)[:, 0].tolist()))
            return super().fit(S, y)

    monkeypatch.setitem(fusion.FUSERS, "spy", Spy)
    S, y = three_members(n=250, seed=9)
    S[:, 0] += np.arange(len(y)) * 1e-9  # unique row identifiers
    cv = cross_validate_fusion(S, y, "spy", k=5, seed=3)
    assert len(seen) == 5
    for rows, fold in zip(seen, cv["folds"], strict=True):
        test_values = set(S[fold["test_index"], 0].tolist())
        assert rows.isdisjoint(test_values)
        assert len(rows) + len(test_values) == len(y)


@pytest.mark.parametrize("method", ["auc2", "logistic"])
def test_in_sample_is_optimistic_on_pure_noise(method):
    rng = np.random.default_rng(0)
    n, m = 200, 20
    y = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
    S = rng.standard_normal((n, m))  # no member carries information
    ins = in_sample_fusion(S, y, method)
    cv = cross_validate_fusion(S, y, method, k=5, seed=0)
    assert ins["label"] == "in-sample (optimistic)"
    assert ins["metrics"]["auc"] > 0.62  # fitting and scoring the same rows finds "signal" in noise
    assert cv["metrics"]["auc"] < ins["metrics"]["auc"] - 0.08
    assert abs(cv["metrics"]["auc"] - 0.5) < 0.1
    assert cv["metrics"]["accuracy"] < ins["metrics"]["accuracy"]


# --------------------------------------------------------------------------------------------- bad input
def test_bad_inputs():
    S, y = three_members(n=50, seed=11)
    with pytest.raises(DfdetError, match="only one class"):
        make_fuser("auc2").fit(S, np.ones(50, int))
    bad = S.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DfdetError, match="NaN"):
        make_fuser("mean").fit(bad, y)
    with pytest.raises(DfdetError, match="unknown fusion method"):
        make_fuser("median")
    f = make_fuser("mean").fit(S, y)
    with pytest.raises(DfdetError, match="members"):
        f.transform(S[:, :2])
    y_small = np.r_[np.zeros(47, int), np.ones(3, int)]
    with pytest.raises(DfdetError, match="smaller class has only 3"):
        cross_validate_fusion(S, y_small, "auc2", k=5)
