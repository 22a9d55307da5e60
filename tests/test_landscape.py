"""Loss-landscape measurement: checked against quadratics, linear losses and closed-form Hessians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dfdet.landscape import (
    bce_loss,
    epsilon_sharpness,
    filter_normalized_direction,
    flat_region_width,
    focal_loss,
    keskar_sharpness,
    linear_interpolation,
    loss_along_directions,
    measure_landscape,
    parse_grid,
    top_hessian_eigenvalues,
)
from dfdet.store import FeatureSet

torch.set_num_threads(1)


def _orthogonal(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


class Quadratic(nn.Module):
    """loss = 0.5 x^T A x with x the concatenation of a [2, 3] and a [2] parameter; forward returns the loss."""

    def __init__(self, A: np.ndarray, x0: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("A", torch.as_tensor(A, dtype=torch.float64))
        self.w = nn.Parameter(torch.as_tensor(x0[:6], dtype=torch.float64).reshape(2, 3))
        self.b = nn.Parameter(torch.as_tensor(x0[6:], dtype=torch.float64))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.w.reshape(-1), self.b])
        return 0.5 * x @ self.A @ x


def _passthrough(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return out


DUMMY_X = torch.zeros(4, 1, dtype=torch.float64)
DUMMY_Y = torch.zeros(4, dtype=torch.float64)
EIGS = np.array([5.0, 3.0, 1.5, 0.7, 0.4, 0.2, -0.1, 0.05])


def _quadratic(seed: int = 0, x0: np.ndarray | None = None) -> Quadratic:
    Q = _orthogonal(8, seed)
    A = Q @ np.diag(EIGS) @ Q.T
    return Quadratic(A, np.ones(8) if x0 is None else x0)


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_quadratic():
    model = _quadratic()
    res = top_hessian_eigenvalues(model, _passthrough, DUMMY_X, DUMMY_Y, k=1, iters=200, tol=1e-8, seed=1)
    assert abs(res["eigenvalues"][0] - 5.0) < 1e-3
    assert res["converged"] == [True]
    assert res["n_params"] == 8


def test_deflation_finds_the_second_eigenvalue():
    model = _quadratic(seed=3)
    res = top_hessian_eigenvalues(model, _passthrough, DUMMY_X, DUMMY_Y, k=2, iters=300, tol=1e-8, seed=2)
    assert abs(res["eigenvalues"][0] - 5.0) < 1e-3
    assert abs(res["eigenvalues"][1] - 3.0) < 1e-3
    assert len(res["iterations"]) == 2


def test_hessian_of_logistic_regression_matches_the_closed_form_with_batches():
    # H = mean_i p_i (1 - p_i) [x_i; 1][x_i; 1]^T for BCE on a linear model: computed here in numpy, not by the code.
    rng = np.random.default_rng(5)
    X = rng.standard_normal((53, 4))
    y = (rng.random(53) < 0.5).astype(float)
    model = nn.Linear(4, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -1.0, 0.3, 0.8]]))
        model.bias.fill_(0.2)
    w = np.array([0.5, -1.0, 0.3, 0.8])
    p = 1 / (1 + np.exp(-(X @ w + 0.2)))
    Xa = np.hstack([X, np.ones((53, 1))])
    H = (Xa * (p * (1 - p))[:, None]).T @ Xa / 53
    expected = np.sort(np.linalg.eigvalsh(H))[::-1]
    Xt, yt = torch.tensor(X), torch.tensor(y)
    full = top_hessian_eigenvalues(model, bce_loss(), Xt, yt, k=2, iters=500, tol=1e-10, seed=0)
    batched = top_hessian_eigenvalues(model, bce_loss(), Xt, yt, k=2, iters=500, tol=1e-10, seed=0, batch_size=7)
    np.testing.assert_allclose(full["eigenvalues"], expected[:2], rtol=1e-4)
    np.testing.assert_allclose(batched["eigenvalues"], full["eigenvalues"], rtol=1e-8)


def test_hessian_is_deterministic_and_leaves_the_model_untouched():
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    X = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    y = (torch.arange(40) % 2).float()
    loss = lambda out, t: bce_loss()(out.squeeze(-1), t)  # noqa: E731
    a = top_hessian_eigenvalues(model, loss, X, y, iters=20, seed=7)
    b = top_hessian_eigenvalues(model, loss, X, y, iters=20, seed=7)
    assert a["eigenvalues"] == b["eigenvalues"] and a["iterations"] == b["iterations"]
    assert model.training  # mode restored
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm1d(6)
        self.fc = nn.Linear(6 * 10, 4)
        self.out = nn.Linear(4, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x.unsqueeze(1))))
        return self.out(torch.relu(self.fc(h.flatten(1)))).squeeze(-1)


def test_filter_normalised_direction_matches_filter_norms_and_zeroes_bias_and_bn():
    torch.manual_seed(0)
    model = Small()
    with torch.no_grad():
        model.bn.weight.uniform_(0.5, 1.5)
    d = filter_normalized_direction(model, seed=3)
    params = dict(model.named_parameters())
    assert set(d) == set(params)
    for name in ("conv.bias", "bn.weight", "bn.bias", "fc.bias"):
        assert torch.count_nonzero(d[name]) == 0
    for name in ("conv.weight", "fc.weight", "out.weight"):
        w, v = params[name].detach(), d[name]
        assert v.shape == w.shape
        for i in range(w.shape[0]):
            assert torch.linalg.vector_norm(v[i]).item() == pytest.approx(torch.linalg.vector_norm(w[i]).item(), 1e-5)
        assert not torch.allclose(v, w)  # a random direction, not the weights
    again = filter_normalized_direction(model, seed=3)
    other = filter_normalized_direction(model, seed=4)
    assert all(torch.equal(d[k], again[k]) for k in d)
    assert not torch.equal(d["fc.weight"], other["fc.weight"])


@settings(max_examples=30, deadline=None)
@given(a=st.floats(0.5, 50.0), delta=st.floats(0.01, 0.2))
def test_flat_width_of_a_parabola_is_analytic(a, delta):
    alphas = np.linspace(-1, 1, 2001)
    res = flat_region_width(alphas, a * alphas**2, delta=delta)
    expected = 2 * math.sqrt(delta / a)
    assert res["width"] == pytest.approx(expected, abs=1e-3)
    assert not res["censored"]
    assert res["left"] == pytest.approx(-res["right"], abs=1e-9)


def test_flat_width_relative_censored_and_asymmetric():
    alphas = np.linspace(-1, 1, 401)
    rel = flat_region_width(alphas, 2.0 + 4 * alphas**2, delta=0.1, relative=True)
    assert rel["threshold"] == pytest.approx(2.2)
    assert rel["width"] == pytest.approx(2 * math.sqrt(0.2 / 4), abs=1e-3)
    flat = flat_region_width(alphas, 0.01 * alphas**2)
    assert flat["censored"] and flat["width"] == pytest.approx(2.0)
    # loss rises only to the right: the left edge is the grid end, the right edge sqrt(0.1)
    one_sided = flat_region_width(alphas, np.where(alphas > 0, alphas**2, 0.0))
    assert one_sided["left"] == -1.0 and one_sided["right"] == pytest.approx(math.sqrt(0.1), abs=1e-3)
    # a region beyond a barrier does not count: contiguous around 0 only
    bumpy = flat_region_width(alphas, np.where(np.abs(alphas - 0.5) < 0.05, 1.0, 0.0))
    assert bumpy["right"] == pytest.approx(0.45, abs=0.006)
    with pytest.raises(Exception, match="does not contain 0"):
        flat_region_width([0.1, 0.2], [1.0, 2.0])


class Anchored(nn.Module):
    """loss = 0.5 ||W - C||^2 with W initialised at C: along any filter-normalised d, loss = 0.5 alpha^2 ||C||^2."""

    def __init__(self) -> None:
        super().__init__()
        C = torch.randn(3, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        self.register_buffer("C", C)
        self.W = nn.Parameter(C.clone())
        self.bias = nn.Parameter(torch.ones(3, dtype=torch.float64))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((self.W - self.C) ** 2).sum() + 0.0 * self.bias.sum()


def test_loss_along_directions_follows_the_analytic_curve_and_is_deterministic():
    model = Anchored()
    c2 = float((model.C**2).sum())
    alphas = np.linspace(-1, 1, 201)
    res = loss_along_directions(model, _passthrough, DUMMY_X, DUMMY_Y, alphas, n_directions=2, seed=5,
                                surface_alphas=[-0.5, 0, 0.5])  # fmt: skip
    assert res["alphas"][100] == 0.0
    for c in res["curves"]:
        np.testing.assert_allclose(c["loss"], 0.5 * alphas**2 * c2, rtol=1e-9, atol=1e-12)
        assert c["flat"]["width"] == pytest.approx(2 * math.sqrt(0.1 / (0.5 * c2)), rel=0.02)
        assert c["accuracy"] is None
    assert len(res["surface"]["loss"]) == 3 and res["surface"]["loss"][1][1] == pytest.approx(0.0)
    again = loss_along_directions(model, _passthrough, DUMMY_X, DUMMY_Y, alphas, n_directions=2, seed=5)
    assert [c["loss"] for c in again["curves"]] == [c["loss"] for c in res["curves"]]
    assert torch.equal(model.W, model.C)  # weights restored


def _trained_pair():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1), nn.Flatten(0))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    X = torch.randn(64, 6, generator=g)
    y = (X[:, 0] + 0.3 * torch.randn(64, generator=g) > 0).float()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    model.train()
    for _ in range(30):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(model(X), y).backward()
        opt.step()
    return model, init, {k: v.clone() for k, v in model.state_dict().items()}, X, y


def _eval_loss_at(state, X, y):
    m = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1), nn.Flatten(0))
    m.load_state_dict(state)
    m.eval()
    with torch.no_grad():
        return F.binary_cross_entropy_with_logits(m(X), y).item()


def test_linear_interpolation_endpoints_are_the_losses_at_theta0_and_theta1():
    model, init, final, X, y = _trained_pair()
    # the live state_dict (shares storage with the module) must work as the final state
    res = linear_interpolation(init, model.state_dict(), model, bce_loss(), X, y, n=13)
    t = np.array(res["t"])
    assert t[0] == -0.25 and t[-1] == 1.25 and 0.0 in res["t"] and 1.0 in res["t"]
    assert res["loss_initial"] == pytest.approx(_eval_loss_at(init, X, y), rel=1e-6)
    assert res["loss_final"] == pytest.approx(_eval_loss_at(final, X, y), rel=1e-6)
    assert res["loss"][res["t"].index(1.0)] == res["loss_final"]
    assert res["loss_final"] < res["loss_initial"]
    assert all(np.isfinite(res["loss"])) and len(res["accuracy"]) == len(t)
    for k, v in model.state_dict().items():
        assert torch.equal(v, final[k])


def test_sam_sharpness_of_a_linear_loss_is_rho_times_grad_norm():
    c = torch.tensor([3.0, -4.0, 12.0], dtype=torch.float64)  # ||c|| = 13

    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))

        def forward(self, X):
            return (c * self.w).sum()

    res = epsilon_sharpness(Lin(), _passthrough, DUMMY_X, DUMMY_Y, rho=0.05)
    assert res["sharpness"] == pytest.approx(0.05 * 13.0, rel=1e-9)
    assert res["grad_norm"] == pytest.approx(13.0)
    # Keskar: the ascent reaches the box corner, max c.z = sum |c_i| eps (|w_i| + 1)
    kes = keskar_sharpness(Lin(), _passthrough, DUMMY_X, DUMMY_Y, epsilon=1e-2, steps=5)
    L0 = float((c * torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)).sum())
    gain = float((c.abs() * 1e-2 * (torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64) + 1)).sum())
    assert kes["sharpness"] == pytest.approx(100 * gain / (1 + L0), rel=1e-9)


def test_sam_sharpness_near_a_minimum_is_nonnegative_and_matches_the_quadratic():
    x0 = np.full(8, 1e-3)
    model = _quadratic(seed=2, x0=x0)
    A = model.A.numpy()
    g = A @ x0
    u = g / np.linalg.norm(g)
    rho = 0.05
    expected = rho * np.linalg.norm(g) + 0.5 * rho**2 * u @ A @ u
    res = epsilon_sharpness(model, _passthrough, DUMMY_X, DUMMY_Y, rho=rho)
    assert res["sharpness"] >= 0
    assert res["sharpness"] == pytest.approx(expected, rel=1e-9)


def test_focal_loss_matches_its_formula():
    z = torch.tensor([2.0, -1.0, 0.5])
    t = torch.tensor([1.0, 0.0, 0.0])
    p = torch.sigmoid(z)
    pt = torch.where(t == 1, p, 1 - p)
    expected = (-0.25 * (1 - pt) ** 2 * torch.log(pt)).mean()
    assert focal_loss()(z, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_parse_grid():
    np.testing.assert_allclose(parse_grid("-1:1:5"), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(parse_grid("0.1,0,-0.1"), [0.1, 0, -0.1])
    with pytest.raises(Exception, match="cannot read"):
        parse_grid("1:2")


class FakeDetector:
    """The few attributes measure_landscape uses, on a plain torch module (no artifact file needed)."""

    def __init__(self, module, mean, scale, meta):
        self.module, self.meta = module.eval(), meta
        self.mean, self.scale = mean, scale
        self.feature_names = [f"f{i}" for i in range(len(mean))]

    def standardize(self, X):
        return torch.as_tensor((np.asarray(X) - self.mean) / self.scale, dtype=torch.float32)


def test_measure_landscape_on_a_feature_set_with_a_linear_model():
    from dfdet.models import build_model
    from dfdet.seeding import seed_everything

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6)).astype(np.float32) * 3 + 1
    y = (X[:, 0] + X[:, 1] > 2).astype(np.int8)
    y[:5] = -1  # unknown labels are left out
    fs = FeatureSet(X=X, y=y, utt_id=[f"u{i}" for i in range(300)], feature_names=[f"f{i}" for i in range(6)],
                    groups=[], source="mem")  # fmt: skip
    seed_everything(11, with_torch=True)
    module = build_model("linear", 6)
    init = {k: v.clone() for k, v in module.state_dict().items()}
    mean, scale = X.mean(0), X.std(0)
    Xs = torch.as_tensor((X[5:] - mean) / scale)
    opt = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(module(Xs), torch.as_tensor(y[5:], dtype=torch.float32)).backward()
        opt.step()
    det = FakeDetector(module, mean, scale, {"arch": "linear", "seed": 11, "training": {"loss": "bce"}})
    res = measure_landscape(det, fs, max_rows=200, n_directions=2, alphas=np.linspace(-1, 1, 11), power_iters=30,
                            seed=3, show_progress=False)  # fmt: skip
    assert res["data"]["rows_used"] == 200 and res["data"]["rows_labelled"] == 295
    assert res["loss_function"]["name"] == "bce"
    assert res["top_eigenvalue"] > 0 and math.isfinite(res["flat_width"])
    assert res["sam_sharpness"]["sharpness"] >= 0
    interp = res["interpolation"]
    assert "reconstructed" in interp["theta0"]
    # theta0 rebuilt from the seed is the same initialisation as above: its loss at t=0 is the init model's loss
    m0 = build_model("linear", 6)
    m0.load_state_dict(init)
    idx = np.flatnonzero(np.isin(y, (0, 1)))
    idx = np.sort(np.random.default_rng(3).choice(idx, 200, replace=False))
    with torch.no_grad():
        l0 = F.binary_cross_entropy_with_logits(
            m0(det.standardize(X[idx])), torch.as_tensor(y[idx], dtype=torch.float32)
        )
    assert interp["loss_initial"] == pytest.approx(l0.item(), rel=1e-5)
    again = measure_landscape(det, fs, max_rows=200, n_directions=2, alphas=np.linspace(-1, 1, 11), power_iters=30,
                              seed=3, show_progress=False)  # fmt: skip
    assert again["hessian"] == res["hessian"] and again["directions"] == res["directions"]


# ------------------------------------------------------------------------------------------ CLI (real model file)


def _npz(path, n=160, d=12, seed=0, one_class=False):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64) if one_class else (np.arange(n) % 2).astype(np.int64)
    X = rng.standard_normal((n, d)).astype(np.float32) + 1.5 * y[:, None] * (np.arange(d) < 3)
    np.savez(path, X=X, y=y, feature_names=np.array(["A"] * (d // 2) + ["B"] * (d - d // 2)))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from dfdet.artifact import save_result
    from dfdet.store import load_features
    from dfdet.training import make_config, train_model

    tmp = tmp_path_factory.mktemp("landscape")
    feats = _npz(tmp / "train.npz")
    cfg = make_config("default", model="cnn", optimizer="adam", epochs=2, loss="focal", seed=7)
    result = train_model(load_features(feats), config=cfg)
    model = tmp / "m.pt"
    save_result(model, result)
    return model, feats


def test_initial_state_rebuilt_from_the_seed_equals_the_trainers(tiny_model):
    from dfdet.artifact import load_model
    from dfdet.landscape import initial_state

    det = load_model(tiny_model[0])
    stored = {k: v.clone() for k, v in det.initial_state.items()}
    assert initial_state(det).keys() == stored.keys()
    det.initial_state = None
    det.meta.pop("initial_state", None)
    rebuilt = initial_state(det)
    for k, v in stored.items():
        assert torch.equal(rebuilt[k], v), k
    assert not torch.equal(stored["classifier.3.weight"], det.module.state_dict()["classifier.3.weight"])


def test_cli_landscape_writes_json_with_finite_values(tiny_model, runner, tmp_path):
    import json

    from dfdet.cli import cli
    from dfdet.provenance import file_hash

    model, feats = tiny_model
    out = tmp_path / "land.json"
    args = ["landscape", str(model), str(feats), "-o", str(out), "--max-rows", "100", "--power-iters", "5",
            "--alphas", "-1:1:9", "--surface", "-0.5:0.5:3", "--interp-points", "7", "--keskar", "0.001"]  # fmt: skip
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    res = json.loads(out.read_text())
    for key in ("hessian", "directions", "sam_sharpness", "keskar_sharpness", "interpolation", "provenance", "data"):
        assert key in res
    assert res["loss_function"]["name"] == "focal"
    assert res["data"]["rows_used"] == 100
    assert res["provenance"]["model_hash"] == file_hash(model)
    assert res["provenance"]["features_hash"] == file_hash(feats)
    assert res["interpolation"]["theta0"] == "stored in the model file"
    assert len(res["directions"]["curves"]) == 2 and len(res["directions"]["alphas"]) == 9
    assert len(res["directions"]["surface"]["loss"]) == 3
    values = [res["top_eigenvalue"], res["flat_width"], res["sam_sharpness"]["sharpness"], res["loss"]]
    values += res["interpolation"]["loss"] + [v for c in res["directions"]["curves"] for v in c["loss"]]
    assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    assert "definition" in res["hessian"] and "definition" in res["sam_sharpness"]
    assert "top Hessian eigenvalue" in r.stderr
    again = tmp_path / "again.json"
    r2 = runner.invoke(cli, [*args[:4], str(again), *args[5:]])
    assert r2.exit_code == 0, r2.stderr
    a, b = json.loads(again.read_text()), res
    assert a["hessian"] == b["hessian"] and a["directions"] == b["directions"]


def test_cli_landscape_bad_inputs(tiny_model, runner, tmp_path):
    from dfdet.cli import cli

    model, _ = tiny_model
    wrong_dim = _npz(tmp_path / "wide.npz", d=20)
    r = runner.invoke(cli, ["landscape", str(model), str(wrong_dim), "-o", str(tmp_path / "o.json")])
    assert r.exit_code == 1 and "expects 12" in r.stderr and not (tmp_path / "o.json").exists()
    one = _npz(tmp_path / "one.npz", one_class=True)
    r = runner.invoke(cli, ["landscape", str(model), str(one), "-o", str(tmp_path / "o.json")])
    assert r.exit_code == 1 and "one class" in r.stderr
    r = runner.invoke(cli, ["landscape", str(tmp_path / "nope.pt"), str(one), "-o", str(tmp_path / "o.json")])
    assert r.exit_code == 1 and "no such model file" in r.stderr
    r = runner.invoke(cli, ["landscape", str(model), str(one), "-o", "x.json", "--alphas", "1:2"])
    assert r.exit_code == 1 and "cannot read the grid" in r.stderr
