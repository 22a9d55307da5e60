"""Feature-space attacks: analytic FGSM/PGD on linear models (single and fused), sweeps, adversarial training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dfdet.artifact import load_model, save_model
from dfdet.attacks import attack_sweep, load_diff_detector
from dfdet.errors import UsageError
from dfdet.models import LinearModel, build_model
from dfdet.perturb import (
    adversarial_batch,
    adversarial_examples,
    attack_decisions,
    clamp_from_data,
    parse_adversarial,
    parse_clamp,
    parse_eps_list,
)

D = 12


# ------------------------------------------------------------------ helpers (also used by the other test files)
def linear_model_file(
    path: Path,
    w: np.ndarray,
    b: float = 0.0,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    threshold: float = 0.0,
    recipe: dict | None = None,
) -> Path:
    """A LinearModel with known weights saved as a model file: spoof logit = w . z + b, z = (x - mean) / scale."""
    d = len(w)
    m = LinearModel(d)
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor(np.asarray(w, dtype=np.float32))[None, :])
        m.fc.bias.fill_(float(b))
    save_model(
        path,
        m,
        arch="linear",
        input_dim=d,
        scaler_mean=np.zeros(d) if mean is None else mean,
        scaler_scale=np.ones(d) if scale is None else scale,
        threshold=threshold,
        recipe=recipe,
    )
    return path


def trained_module_file(path: Path, X: np.ndarray, y: np.ndarray, arch: str = "mlp", steps: int = 150, **cfg) -> Path:
    """A small nonlinear model fitted for a few Adam steps on standardised X (scaler fitted on X)."""
    torch.manual_seed(0)
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-8
    Z = torch.tensor((X - mean) / scale, dtype=torch.float32)
    t = torch.tensor(y, dtype=torch.float32)
    m = build_model(arch, X.shape[1], **cfg)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(m(Z), t).backward()
        opt.step()
    m.eval()
    save_model(path, m, arch=arch, arch_config=cfg, input_dim=X.shape[1], scaler_mean=mean, scaler_scale=scale)
    return path


def blobs(n: int = 120, d: int = D, shift: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes (0 bona fide, 1 spoof) separated along every axis by `shift` / sqrt(d) ... times d."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.standard_normal((n, d)) + shift * (y[:, None] - 0.5)
    return X.astype(np.float32), y


# ------------------------------------------------------------------ parsing
def test_parse_eps_list_ok_and_errors() -> None:
    assert parse_eps_list("0, 0.05,0.1") == [0.0, 0.05, 0.1]
    with pytest.raises(UsageError, match="'abc' is not a number"):
        parse_eps_list("0,abc")
    with pytest.raises(UsageError, match="negative"):
        parse_eps_list("0.1,-0.2")
    with pytest.raises(UsageError):
        parse_eps_list("0,,0.1")
    with pytest.raises(UsageError):
        parse_eps_list("nan")


def test_parse_clamp_and_adversarial_spec() -> None:
    assert parse_clamp("-3,3") == (-3.0, 3.0)
    with pytest.raises(UsageError):
        parse_clamp("3,-3")
    spec = parse_adversarial("pgd:0.1:7")
    assert (spec.method, spec.eps, spec.steps, spec.norm) == ("pgd", 0.1, 7, "linf")
    assert parse_adversarial("fgsm:0.2").method == "fgsm"
    assert parse_adversarial("pgd-l2:0.5").norm == "l2"
    for bad in ("fgsm", "fgsm:x", "bim:0.1", "fgsm:-1", "pgd:0.1:0", "fgsm-l2:0.1"):
        with pytest.raises(UsageError):
            parse_adversarial(bad)


# ------------------------------------------------------------------ analytic checks on linear models
def test_fgsm_linear_score_change_is_eps_times_l1_norm(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=D)
    mean, scale = rng.normal(size=D), rng.uniform(0.5, 2.0, size=D)
    det = load_diff_detector(linear_model_file(tmp_path / "lin.pt", w, 0.3, mean, scale, threshold=0.1))
    X = (rng.normal(size=(40, D)) * scale + mean).astype(np.float32)
    Z = det.standardize(X)
    s0 = det.scores_std(Z)
    eps = 0.07
    Za = attack_decisions(det.score_module, Z, det.threshold, "fgsm", eps)
    s1 = det.scores_std(Za)
    l1 = np.abs(w).sum()
    # rows decided bona fide (score >= threshold) lose eps*||w||_1, rows decided spoof gain it
    expected = np.where(s0 >= 0.1, -1.0, 1.0) * eps * l1
    np.testing.assert_allclose(s1 - s0, expected, rtol=1e-4, atol=1e-4)
    assert float((Za - Z).abs().max()) == pytest.approx(eps, rel=1e-5)


def test_pgd_linear_reaches_the_analytic_optimum_linf_and_l2(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(size=D)
    det = load_diff_detector(linear_model_file(tmp_path / "lin.pt", w))
    Z = torch.tensor(rng.normal(size=(30, D)), dtype=torch.float32)
    s0 = det.scores_std(Z)
    sign = np.where(s0 >= 0, -1.0, 1.0)
    eps = 0.2
    za = attack_decisions(det.score_module, Z, 0.0, "pgd", eps, "linf", steps=10)
    np.testing.assert_allclose(det.scores_std(za) - s0, sign * eps * np.abs(w).sum(), rtol=1e-4, atol=1e-4)
    za2 = attack_decisions(det.score_module, Z, 0.0, "pgd", eps, "l2", steps=10)
    np.testing.assert_allclose(det.scores_std(za2) - s0, sign * eps * np.linalg.norm(w), rtol=1e-3, atol=1e-3)
    # from a random start the orthogonal component shrinks over the steps: close to, never beyond, the optimum
    za3 = attack_decisions(det.score_module, Z, 0.0, "pgd", eps, "l2", steps=10, random_start=True, seed=3)
    gain = (det.scores_std(za3) - s0) * sign
    assert np.all(gain >= 0.9 * eps * np.linalg.norm(w)) and np.all(gain <= eps * np.linalg.norm(w) * (1 + 1e-4))
    assert float((za3 - Z).norm(dim=1).max()) <= eps * (1 + 1e-5)


def test_ensemble_fused_score_attack_is_exact(tmp_path: Path) -> None:
    """Two linear members, auc2 fusion + logistic calibration: the fused score is linear in z with coefficient
    v = -a * sum_m (weight_m / z_std_m) w_m, so FGSM moves it by eps * ||v||_1."""
    from dfdet.fusion import build_ensemble_document, model_member
    from dfdet.jsonio import write_json
    from dfdet.scoring import load_detector

    rng = np.random.default_rng(4)
    X, y = blobs(100, D, shift=1.5, seed=4)
    w1, w2 = rng.normal(size=D) + 1.0, rng.normal(size=D) + 1.0
    p1 = linear_model_file(tmp_path / "a.pt", w1)
    p2 = linear_model_file(tmp_path / "b.pt", w2)
    S = np.column_stack([load_model(p).scores(X) for p in (p1, p2)])
    ens = tmp_path / "ens.json"
    members = [model_member("a", p1, ens), model_member("b", p2, ens)]
    doc, _, _ = build_ensemble_document(S, y, members, "auc2", calibrate="logistic", cv=None)
    write_json(ens, doc)
    det = load_diff_detector(ens)
    assert det.kind == "ensemble" and det.exact and len(det.members) == 2
    np.testing.assert_allclose(det.scores(X), load_detector(ens).score_features(X)["score"], rtol=1e-5, atol=1e-5)
    fz = doc["fuser"]
    a = doc["calibration"]["params"]["a"]
    v = -a * (fz["weights"][0] / fz["z_std"][0] * w1 + fz["weights"][1] / fz["z_std"][1] * w2)
    Z = det.standardize(X)
    s0 = det.scores_std(Z)
    Za = attack_decisions(det.score_module, Z, det.threshold, "fgsm", 0.05)
    expected = np.where(s0 >= det.threshold, -1.0, 1.0) * 0.05 * np.abs(v).sum()
    np.testing.assert_allclose(det.scores_std(Za) - s0, expected, rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------------ sweeps
def test_sweep_eps0_unchanged_flip_monotone_and_pgd_beats_fgsm(tmp_path: Path) -> None:
    X, y = blobs(160, D, shift=1.2, seed=5)
    det = load_diff_detector(trained_module_file(tmp_path / "mlp.pt", X, y, hidden=[32], dropout=0.0))
    eps = [0.0, 0.05, 0.1, 0.2, 0.4]
    f = attack_sweep(det, X, y, eps, method="fgsm")
    p = attack_sweep(det, X, y, eps, method="pgd", steps=10)
    clean = f["clean"]
    for res in (f, p):
        r0 = res["rows"][0]
        assert r0["flip_rate"] == 0.0
        assert (r0["accuracy"], r0["eer"], r0["auc"]) == (clean["accuracy"], clean["eer"], clean["auc"])
    flips = [r["flip_rate"] for r in f["rows"]]
    assert all(b >= a - 0.01 for a, b in zip(flips, flips[1:], strict=False)), flips
    assert flips[-1] > 0.1
    for rf, rp in zip(f["rows"], p["rows"], strict=True):
        assert rp["flip_rate"] >= rf["flip_rate"] - 1e-9
        assert rp["accuracy"] <= rf["accuracy"] + 1e-9
    assert f["curve"]["eps"] == eps and len(f["curve"]["flip_rate"]) == len(eps)


def test_flip_rate_monotone_on_linear_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    X, y = blobs(80, D, seed=6)
    det = load_diff_detector(linear_model_file(tmp_path / "lin.pt", rng.normal(size=D)))
    res = attack_sweep(det, X, y, [0, 0.02, 0.05, 0.1, 0.2, 0.5], method="fgsm")
    flips = [r["flip_rate"] for r in res["rows"]]
    assert flips == sorted(flips) and flips[0] == 0.0 and flips[-1] > flips[1]


def test_clamp_is_respected(tmp_path: Path) -> None:
    X, y = blobs(40, D, seed=7)
    det = load_diff_detector(linear_model_file(tmp_path / "lin.pt", np.ones(D)))
    Z = det.standardize(X)
    lo, hi = clamp_from_data(Z)
    Za = attack_decisions(det.score_module, Z, 0.0, "pgd", 0.5, steps=5, clamp=(lo, hi))
    assert np.all(Za.numpy() >= lo - 1e-6) and np.all(Za.numpy() <= hi + 1e-6)
    Zb = attack_decisions(det.score_module, Z, 0.0, "fgsm", 5.0, clamp=(-1.0, 1.0))
    # inside [-1, 1], except that a clean value already outside is never pushed further out
    outside = Z.abs() > 1
    assert bool(outside.any())
    assert float(Zb[~outside].abs().max()) <= 1.0 + 1e-6
    assert bool((Zb.abs() <= torch.maximum(Z.abs(), torch.ones_like(Z)) + 1e-6).all())


def test_pgd_is_seeded(tmp_path: Path) -> None:
    X, y = blobs(30, D, seed=8)
    det = load_diff_detector(trained_module_file(tmp_path / "m.pt", X, y, hidden=[16], dropout=0.0, steps=30))
    Z = det.standardize(X)
    a = attack_decisions(det.score_module, Z, 0.0, "pgd", 0.3, random_start=True, seed=1)
    b = attack_decisions(det.score_module, Z, 0.0, "pgd", 0.3, random_start=True, seed=1)
    c = attack_decisions(det.score_module, Z, 0.0, "pgd", 0.3, random_start=True, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)


# ------------------------------------------------------------------ adversarial training
def test_adversarial_examples_linear_analytic_and_mode_restored() -> None:
    torch.manual_seed(0)
    m = LinearModel(D)
    w = m.fc.weight.detach().numpy().ravel()
    X = torch.randn(20, D)
    y = torch.tensor([0, 1] * 10)
    m.train()
    adv = adversarial_examples(m, X, y, "fgsm", 0.1)
    assert m.training  # mode restored
    # BCE on the spoof logit rises fastest along -sign(w) for spoof rows and +sign(w) for bona fide rows
    direction = np.where(y.numpy()[:, None] == 1, -1.0, 1.0) * np.sign(w)[None, :]
    np.testing.assert_allclose((adv - X).numpy(), 0.1 * direction, atol=1e-6)
    assert m.fc.weight.grad is None  # parameter gradients untouched


def test_adversarial_examples_raise_loss_and_leave_batchnorm_alone() -> None:
    torch.manual_seed(0)
    m = build_model("cnn", 16)
    X = torch.randn(32, 16)
    y = torch.randint(0, 2, (32,))
    m.train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    adv = adversarial_examples(m, X, y, "pgd", 0.2, steps=5, seed=0)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert float((adv - X).abs().max()) <= 0.2 + 1e-6
    m.eval()
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    with torch.no_grad():
        assert bce(m(adv), y.float()) > bce(m(X), y.float())
    xb, yb = adversarial_batch(m, X, y, parse_adversarial("fgsm:0.1"))
    assert xb.shape == (32, 16) and torch.equal(yb, y) and torch.equal(xb[16:], X[16:])
    moved = (xb[:16] - X[:16]).abs()
    assert float(moved.max()) == pytest.approx(0.1, abs=1e-6) and float(moved.min()) >= 0.0


@pytest.mark.parametrize("method", ["logistic", "isotonic"])
def test_calibrated_detector_scores_match_dfdet_score_and_attack_works(tmp_path: Path, method: str) -> None:
    from dfdet.calibration import fit_calibration, save_calibration
    from dfdet.scoring import load_detector

    X, y = blobs(80, D, shift=0.8, seed=9)
    model = linear_model_file(tmp_path / "lin.pt", np.random.default_rng(9).normal(size=D) + 0.5)
    cal = tmp_path / "cal.json"
    save_calibration(cal, fit_calibration(load_model(model).scores(X), y, method, "eer"), detector=model)
    det = load_diff_detector(cal)
    assert det.exact == (method == "logistic")
    np.testing.assert_allclose(det.scores(X), load_detector(cal).score_features(X)["score"], rtol=1e-5, atol=1e-5)
    res = attack_sweep(det, X, y, [0.0, 0.5], method="fgsm")
    assert res["rows"][0]["flip_rate"] == 0.0 and res["rows"][1]["flip_rate"] > 0.3


def test_label_target_only_lowers_accuracy(tmp_path: Path) -> None:
    """A badly placed threshold: attacking decisions 'repairs' wrong ones, attacking labels never does."""
    X, y = blobs(100, D, shift=1.0, seed=10)
    w = np.ones(D)  # spoof logit rises with every feature; spoof rows have larger values
    det = load_diff_detector(linear_model_file(tmp_path / "lin.pt", w, threshold=8.0))  # most rows called spoof
    eps = [0.0, 0.1, 0.3]
    by_label = attack_sweep(det, X, y, eps, method="fgsm", target="label")
    by_decision = attack_sweep(det, X, y, eps, method="fgsm", target="decision")
    acc_l = [r["accuracy"] for r in by_label["rows"]]
    acc_d = [r["accuracy"] for r in by_decision["rows"]]
    assert acc_l == sorted(acc_l, reverse=True) and acc_l[-1] < acc_l[0]
    assert acc_d[-1] > acc_d[0]  # wrong decisions were flipped to right ones
    with pytest.raises(UsageError):
        attack_sweep(det, X, y, eps, target="truth")
