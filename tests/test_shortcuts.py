"""Shortcut scan: a planted separating feature is flagged; AUC and best-threshold accuracy match brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.errors import DfdetError, UsageError
from dfdet.features import FeatureGroup
from dfdet.shortcuts import (
    best_threshold_accuracy,
    feature_aucs,
    group_classifiers,
    scan_by_system,
    scan_features,
    shortcut_scan,
)
from dfdet.store import FeatureSet, load_features


def brute_auc(x: np.ndarray, y: np.ndarray) -> float:
    """P(bona fide value > spoof value) + 0.5 P(tie), over all pairs."""
    b, s = x[y == 0], x[y == 1]
    gt = (b[:, None] > s[None, :]).sum()
    eq = (b[:, None] == s[None, :]).sum()
    return (gt + 0.5 * eq) / (len(b) * len(s))


def brute_best_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    cuts = np.concatenate([[-np.inf], np.unique(x) + 0.0, [np.inf]])
    best = 0.0
    for c in cuts:
        above = x > c
        for bona_above in (True, False):
            pred_spoof = ~above if bona_above else above
            best = max(best, float((pred_spoof == (y == 1)).mean()))
    return best


def planted(n: int = 200, d: int = 8, col: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, d))
    X[:, col] = -3.0 * y + 0.3 * rng.normal(size=n)  # spoof has lower values: AUC (bona fide positive) ~ 1
    return X, y


def test_planted_feature_is_the_only_flag() -> None:
    X, y = planted()
    res = scan_features(X, y, [f"x{i}" for i in range(8)])
    assert res["n_flagged"] == 1
    f = res["flagged"][0]
    assert (f["index"], f["name"], f["higher_means"]) == (3, "x3", "bonafide")
    assert f["auc"] == pytest.approx(brute_auc(X[:, 3], y))
    assert f["best_accuracy"] == pytest.approx(brute_best_accuracy(X[:, 3], y))
    assert res["ranking"][0] == 3
    # flipped orientation is flagged too (AUC <= 1 - threshold)
    res2 = scan_features(-X, y)
    assert [g["index"] for g in res2["flagged"]] == [3] and res2["flagged"][0]["higher_means"] == "spoof"


def test_threshold_is_configurable_and_checked() -> None:
    X, y = planted()
    X[:, 5] = -1.0 * y + 0.5 * np.random.default_rng(1).normal(size=len(y))  # a weaker separator (AUC ~ 0.92)
    assert scan_features(X, y, threshold=0.95)["n_flagged"] == 1
    assert scan_features(X, y, threshold=0.8)["n_flagged"] == 2
    with pytest.raises(UsageError):
        scan_features(X, y, threshold=0.4)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=-3, max_value=3), min_size=6, max_size=30),
    st.randoms(use_true_random=False),
)
def test_auc_and_best_accuracy_match_brute_force(values: list[int], rnd) -> None:
    x = np.asarray(values, dtype=float)
    y = np.array([i % 2 for i in range(len(x))])
    rnd.shuffle(y)
    if len(np.unique(y)) < 2:
        return
    X = np.column_stack([x, -x])
    aucs = feature_aucs(X, y)
    assert aucs[0] == pytest.approx(brute_auc(x, y))
    assert aucs[1] == pytest.approx(1 - brute_auc(x, y))
    acc, thr, direction = best_threshold_accuracy(X, y)
    assert acc[0] == pytest.approx(brute_best_accuracy(x, y))
    # the reported threshold and direction reproduce the reported accuracy
    pred_spoof = np.where(direction[0] == 1, x < thr[0], x >= thr[0])
    assert float((pred_spoof == (y == 1)).mean()) == pytest.approx(acc[0])


def test_by_system_and_group_classifier() -> None:
    rng = np.random.default_rng(2)
    n = 300
    y = np.array([0] * 100 + [1] * 200)
    systems = ["-"] * 100 + ["A01"] * 100 + ["A02"] * 100
    X = rng.normal(size=(n, 6))
    X[100:200, 0] += 6.0  # only A01 spoofs are separable by feature 0
    res = scan_by_system(X, y, systems)
    assert set(res) == {"A01", "A02"}
    assert [f["index"] for f in res["A01"]["flagged"]] == [0]
    assert res["A02"]["n_flagged"] == 0
    X[200:, 0] += 6.0  # now every spoof is separable by feature 0
    gc = group_classifiers(X, y, [FeatureGroup("G0", 0, 1), FeatureGroup("rest", 1, 6)], folds=3)
    assert gc["groups"]["G0"]["cv_accuracy"] > 0.8 > gc["groups"]["rest"]["cv_accuracy"]


def test_scan_needs_both_classes() -> None:
    X = np.zeros((5, 2))
    with pytest.raises(DfdetError, match="one class"):
        scan_features(X, np.zeros(5))
    fs = FeatureSet(
        X=np.zeros((0, 2), np.float32), y=np.zeros(0, np.int8), utt_id=[], feature_names=["a", "b"], groups=[]
    )
    with pytest.raises(DfdetError, match="no rows"):
        shortcut_scan(fs)


def test_shared_matrix_flags_column_86(seed154_npz) -> None:
    fs = load_features(seed154_npz)
    res = shortcut_scan(fs)
    flagged = {f["index"]: f for f in res["flagged"]}
    assert 86 in flagged
    assert flagged[86]["separation_auc"] >= 0.999
    assert flagged[86]["group"].lower() == "contrast"
    assert res["ranking"][0] == 86
