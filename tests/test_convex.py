"""`logreg`: the frame-statistics logistic regression fitted by scikit-learn's lbfgs (dfdet.convex) and stored as
an ordinary `linear`-shaped artifact that every other tool reads."""

from __future__ import annotations

import numpy as np
import pytest

from dfdet import crossval as cv
from dfdet.artifact import detector_of, load_model, save_result
from dfdet.cli import cli
from dfdet.errors import DfdetError
from dfdet.models import model_solver
from dfdet.store import write_features
from dfdet.training import make_config, train_model
from tests.test_crossval import corpus, make_fs


@pytest.fixture
def fs():
    return make_fs(corpus(n_systems=9, n_bona_speakers=9, aug=False), dim=8, seed=3)


def test_registry_says_how_each_model_is_fitted():
    assert model_solver("logreg") == "convex"
    assert {model_solver(m) for m in ("cnn", "linear", "mlp", "lcnn")} == {"epochs"}


def test_logreg_equals_an_independent_sklearn_fit_on_the_same_standardised_rows(fs):
    """The artifact's scores are -(sklearn's decision function) of a pipeline fitted independently here."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    res = train_model(fs, None, make_config(model="logreg", val_split=0.0, seed=1))
    sc = StandardScaler().fit(fs.X.astype(np.float32))
    ref = LogisticRegression(C=0.1, class_weight="balanced", max_iter=10000, tol=1e-6)
    ref.fit(sc.transform(fs.X.astype(np.float32)).astype(np.float64), fs.y)
    want = -ref.decision_function(sc.transform(fs.X.astype(np.float32)))
    got = detector_of(res).scores(fs.X)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert res.summary["solver"] == "convex" and res.summary["iterations"] >= 1
    assert res.history[0]["type"] == "fit" and res.optimizer_hparams["C"] == 0.1


def test_logreg_is_deterministic_and_round_trips_through_the_artifact(fs, tmp_path):
    cfg = make_config(model="logreg", seed=1)
    a, b = train_model(fs, None, cfg), train_model(fs, None, cfg)
    assert np.array_equal(a.module.fc.weight.detach().numpy(), b.module.fc.weight.detach().numpy())
    save_result(tmp_path / "m.pt", a)
    det = load_model(tmp_path / "m.pt")
    assert det.arch == "logreg"
    np.testing.assert_array_equal(det.scores(fs.X), detector_of(a).scores(fs.X))


def test_stronger_regularisation_shrinks_the_weights(fs):
    small = train_model(fs, None, make_config(model="logreg", model_config={"C": 0.001}, val_split=0.0))
    large = train_model(fs, None, make_config(model="logreg", model_config={"C": 10.0}, val_split=0.0))
    assert np.linalg.norm(small.module.fc.weight.detach()) < np.linalg.norm(large.module.fc.weight.detach())


def test_non_convergence_is_a_clear_error(fs, monkeypatch):
    from dfdet import convex

    monkeypatch.setattr(convex, "MAX_ITER", 1)
    with pytest.raises(DfdetError, match="did not converge"):
        train_model(fs, None, make_config(model="logreg", model_config={"C": 100.0}, val_split=0.0))


def test_crossval_gives_logreg_every_training_row(fs, monkeypatch):
    """No epochs to stop early: the fold's validation hold-out would only take training rows away."""
    seen = []
    real = cv.validation_rows

    def spy(fs_, rows, fraction, seed):
        seen.append(fraction)
        return real(fs_, rows, fraction, seed)

    monkeypatch.setattr(cv, "validation_rows", spy)
    plan = cv.plan_folds(fs, "system", 3, seed=0)
    cv.crossval_model(fs, plan, "logreg", make_config(seed=5), n_boot=20)
    cv.crossval_model(fs, plan, "linear", make_config(seed=5, epochs=1), n_boot=20)
    assert seen == [0.0] * 3 + [0.2] * 3


def test_cli_train_and_score_a_logreg(runner, fs, tmp_path):
    store = tmp_path / "s.h5"
    write_features(store, fs)
    r = runner.invoke(cli, ["train", str(store), "--model", "logreg", "-o", str(tmp_path / "m.pt")])
    assert r.exit_code == 0, r.output
    assert "fitted logreg (sklearn lbfgs" in r.stderr and "--optimizer does not apply" in r.stderr
    r = runner.invoke(cli, ["score", str(tmp_path / "m.pt"), str(store)])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == len(fs) + 1
