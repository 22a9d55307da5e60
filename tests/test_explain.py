"""Attributions: IG completeness, group totals, analytic linear attributions, ensembles (per member and fused)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dfdet.attacks import load_diff_detector
from dfdet.errors import UsageError
from dfdet.explain import (
    PASS_VALUES,
    ExplainOptions,
    aggregate,
    explain,
    explain_detector,
    group_sums,
    parse_methods,
    pass_rows,
)
from dfdet.features import FeatureGroup
from tests.test_attacks import blobs, linear_model_file, trained_module_file

D = 12
GROUPS = [FeatureGroup("A", 0, 4), FeatureGroup("B", 4, 9), FeatureGroup("C", 9, 12)]
NAMES = [f"f{i}" for i in range(D)]


def test_parse_methods() -> None:
    assert parse_methods("ig, saliency,ig") == ["ig", "saliency"]
    with pytest.raises(UsageError, match="unknown method"):
        parse_methods("ig,shap")


def test_linear_attributions_are_analytic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=D)
    mean, scale = rng.normal(size=D), rng.uniform(0.5, 2, size=D)
    det = load_diff_detector(linear_model_file(tmp_path / "lin.pt", w, 0.5, mean, scale))
    X = (rng.normal(size=(20, D)) * scale + mean).astype(np.float32)
    y = np.repeat([0, 1], 10)
    opts = ExplainOptions(
        ("saliency", "ig", "ixg"), feature_names=NAMES, groups=GROUPS, per_sample=True, per_sample_top=D
    )
    summary, records = explain_detector(det, X, y, opts)
    z = ((X.astype(np.float64) - mean) / scale).astype(np.float32).astype(np.float64)
    # f = spoof logit = w . z + b: saliency |w|, IG from z = 0 and input x gradient both w * z
    sal = summary["methods"]["saliency"]["splits"]["all"]["feature_mean_abs"]
    np.testing.assert_allclose(sal, np.abs(w), rtol=1e-5)
    ig_signed = summary["methods"]["ig"]["splits"]["all"]["feature_mean_signed"]
    np.testing.assert_allclose(ig_signed, (w * z).mean(axis=0), rtol=1e-4, atol=1e-5)
    ixg = summary["methods"]["ixg"]["splits"]["bonafide"]["feature_mean_signed"]
    np.testing.assert_allclose(ixg, (w * z)[:10].mean(axis=0), rtol=1e-4, atol=1e-5)
    r0 = records[0]
    top = dict((name, v) for name, v in r0["ig"]["top"])
    for i, name in enumerate(NAMES):
        assert top[name] == pytest.approx(w[i] * z[0, i], rel=1e-4, abs=1e-5)
    assert (
        summary["methods"]["ig"]["splits"]["all"]["top_features"][0]["name"]
        == NAMES[int(np.argmax(np.abs(w * z).mean(0)))]
    )


def test_ig_completeness_within_one_percent_on_a_nonlinear_model(tmp_path: Path) -> None:
    X, y = blobs(30, D, shift=1.5, seed=1)
    det = load_diff_detector(trained_module_file(tmp_path / "cnn.pt", X, y, arch="cnn", steps=5))
    summary, records = explain_detector(det, X, y, ExplainOptions(("ig",), groups=GROUPS, per_sample=True, n_steps=32))
    Z = det.standardize(X)
    with torch.no_grad():
        f_x = -det.score_module(Z).double().numpy()
        f_0 = -det.score_module(torch.zeros(1, D)).double().numpy()[0]
    for i, r in enumerate(records):
        diff = f_x[i] - f_0
        assert r["ig"]["f_x_minus_f_baseline"] == pytest.approx(diff, rel=1e-5, abs=1e-6)
        assert abs(r["ig"]["total"] - diff) <= max(0.01 * abs(diff), 1e-4), (i, r["ig"]["total"], diff)
    assert summary["methods"]["ig"]["completeness"]["fraction_within_tolerance"] == 1.0


def test_group_totals_add_up_to_feature_totals(tmp_path: Path) -> None:
    X, y = blobs(40, D, seed=2)
    det = load_diff_detector(trained_module_file(tmp_path / "m.pt", X, y, hidden=[16], dropout=0.0, steps=30))
    opts = ExplainOptions(("saliency", "ixg"), groups=GROUPS, feature_names=NAMES, per_sample=True, per_sample_top=0)
    summary, records = explain_detector(det, X, y, opts)
    for m in ("saliency", "ixg"):
        for agg in summary["methods"][m]["splits"].values():
            if agg["n"] == 0:
                continue
            assert sum(agg["group_mean_abs"].values()) == pytest.approx(sum(agg["feature_mean_abs"]), rel=1e-9)
            assert sum(agg["group_mean_signed"].values()) == pytest.approx(agg["total_mean_signed"], abs=1e-9)
            assert sum(agg["group_share_abs"].values()) == pytest.approx(1.0)
            for g in GROUPS:
                assert agg["group_mean_abs"][g.name] == pytest.approx(sum(agg["feature_mean_abs"][g.start : g.stop]))
        for r in records:
            assert sum(r[m]["groups"].values()) == pytest.approx(r[m]["total"], abs=1e-9)
            assert sum(r[m]["groups_abs"].values()) == pytest.approx(r[m]["total_abs"], abs=1e-9)
    counts = {k: v["n"] for k, v in summary["methods"]["ixg"]["splits"].items()}
    assert counts["bonafide"] + counts["spoof"] == counts["all"] == counts["correct"] + counts["incorrect"]


def test_group_sums_and_aggregate_on_known_values() -> None:
    v = np.arange(24, dtype=float).reshape(2, 12) - 6
    gs = group_sums(v, GROUPS)
    assert gs.tolist() == [[-18.0, 0.0, 12.0], [30.0, 60.0, 48.0]]
    agg = aggregate(v, NAMES, GROUPS, top=2)
    assert [t["name"] for t in agg["top_features"]] == ["f11", "f10"]


def test_ensemble_attributions_per_member_and_fused(tmp_path: Path) -> None:
    from dfdet.artifact import load_model
    from dfdet.fusion import build_ensemble_document, model_member
    from dfdet.jsonio import write_json

    rng = np.random.default_rng(3)
    X, y = blobs(60, D, shift=1.5, seed=3)
    w1, w2 = rng.normal(size=D) + 1, rng.normal(size=D) + 1
    p1, p2 = linear_model_file(tmp_path / "a.pt", w1), linear_model_file(tmp_path / "b.pt", w2)
    S = np.column_stack([load_model(p).scores(X) for p in (p1, p2)])
    ens = tmp_path / "ens.json"
    doc, _, _ = build_ensemble_document(
        S, y, [model_member("a", p1, ens), model_member("b", p2, ens)], "mean", calibrate="none", cv=None
    )
    write_json(ens, doc)
    det = load_diff_detector(ens)
    assert pass_rows(det) == PASS_VALUES // (2 * D)  # the pass budget is shared among the members
    summary, _ = explain(det, X, y, ExplainOptions(("saliency",), groups=GROUPS))
    assert set(summary["members"]) == {"a", "b"}
    np.testing.assert_allclose(
        summary["members"]["a"]["methods"]["saliency"]["splits"]["all"]["feature_mean_abs"], np.abs(w1), rtol=1e-5
    )
    fz = doc["fuser"]
    # fused spoof output = -fused score = sum_m weight_m / z_std_m * w_m . z + const
    v = fz["weights"][0] / fz["z_std"][0] * w1 + fz["weights"][1] / fz["z_std"][1] * w2
    fused = summary["methods"]["saliency"]["splits"]["all"]["feature_mean_abs"]
    np.testing.assert_allclose(fused, np.abs(v), rtol=1e-4)


def test_passes_stay_within_the_row_budget_and_batching_keeps_the_results(tmp_path: Path, monkeypatch) -> None:
    """Memory is bounded by rows per backward pass (IG: rows x steps); splitting them changes only float32 rounding."""
    import dfdet.explain as ex

    X, y = blobs(12, D, shift=1.5, seed=4)
    det = load_diff_detector(trained_module_file(tmp_path / "cnn.pt", X, y, arch="cnn", steps=5))
    seen: list[int] = []
    det.member_module.register_forward_pre_hook(
        lambda _m, args: seen.append(len(args[0])) if torch.is_grad_enabled() else None
    )
    runs = {}
    for budget in (10**6, 20):
        monkeypatch.setattr(ex, "PASS_VALUES", budget * D)
        seen.clear()
        opts = ExplainOptions(("saliency", "ig", "ixg"), per_sample=True, n_steps=8)
        runs[budget] = explain_detector(det, X, y, opts)
        assert seen
    assert max(seen) <= 20
    (big, rec_big), (small, rec_small) = runs[10**6], runs[20]
    for m in ("saliency", "ig", "ixg"):
        np.testing.assert_allclose(
            small["methods"][m]["splits"]["all"]["feature_mean_signed"],
            big["methods"][m]["splits"]["all"]["feature_mean_signed"],
            rtol=1e-4,
            atol=1e-6,
        )
        for a, b in zip(rec_small, rec_big, strict=True):
            assert a[m]["total"] == pytest.approx(b[m]["total"], rel=1e-4, abs=1e-6)
    assert small["methods"]["ig"]["n_steps_max_used"] == big["methods"]["ig"]["n_steps_max_used"]
