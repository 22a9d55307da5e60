"""Convex models fitted to convergence by a library solver instead of the study's epoch loop.

`logreg` is the frame-statistics baseline the ASVspoof literature reports beside its CNNs: an L2-regularised,
class-balanced logistic regression. scikit-learn's lbfgs solves it to a tolerance, so there is nothing to early-stop
and no learning rate to pick; the fitted coefficients are copied into the same `linear` module every other tool
(score, calibrate, ensemble, explain, attack) already reads.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from dfdet.errors import DfdetError
from dfdet.models import LOGREG_DEFAULTS, build_model

MAX_ITER = 10000
TOL = 1e-6


def solver_summary(solver: str, seconds: float, cpu: float, **extra: Any) -> dict[str, Any]:
    """The training summary of a library fit (no epochs, steps or gradients), in the keys the epoch loop writes so
    that `train`, `report` and the app read both alike."""
    return {
        "solver": solver,
        **extra,
        "epochs_run": 0,
        "steps": 0,
        "best_epoch": None,
        "val_best_epoch": None,
        "stopped_early": False,
        "bn_recalibrated": False,
        "grad_norm": None,
        "layer_grad_norm_mean": {},
        "train_seconds": seconds,
        "train_cpu_seconds": cpu,
        "wall_seconds": seconds,
        "samples_per_second": None,
    }


def logreg_settings(model_config: dict[str, Any]) -> dict[str, Any]:
    """The fit settings of a logreg run: defaults overridden by the training config's model options."""
    return {**LOGREG_DEFAULTS, **{k: v for k, v in model_config.items() if k in LOGREG_DEFAULTS}}


def fit_convex(
    cfg: Any, Xs: np.ndarray, y: np.ndarray, log: Any = None
) -> tuple[nn.Module, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Fit `cfg.model` on standardised rows `Xs` (float32) with labels `y` (1 = spoof).

    Returns (module, history, summary, solver settings) in the shapes `dfdet.training.train_model` records.
    Deterministic: lbfgs has no random state; same rows and thread count give the same coefficients.
    """
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if cfg.model != "logreg":
        raise DfdetError(f"no convex solver for model {cfg.model!r}", "this is a bug: register its solver here")
    settings = logreg_settings(dict(cfg.model_config))
    module = build_model(cfg.model, Xs.shape[1], **dict(cfg.model_config))
    t0, c0 = time.perf_counter(), time.process_time()
    clf = LogisticRegression(
        C=float(settings["C"]), class_weight=settings["class_weight"], solver="lbfgs", max_iter=MAX_ITER, tol=TOL
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            clf.fit(np.asarray(Xs, dtype=np.float64), np.asarray(y, dtype=np.int64))
        except ConvergenceWarning as e:
            raise DfdetError(
                f"logistic regression did not converge in {MAX_ITER} lbfgs iterations ({e})",
                "check the features for constant or extreme columns, or use a smaller C",
            ) from None
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    fc = module.fc  # LinearModel: spoof logit = w.x + b, the sign sklearn uses for class 1 (spoof)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(np.asarray(clf.coef_, dtype=np.float32)))
        fc.bias.copy_(torch.from_numpy(np.asarray(clf.intercept_, dtype=np.float32)))
    module.eval()
    z = clf.decision_function(np.asarray(Xs, dtype=np.float64))
    w = (len(y) / (2.0 * np.bincount(y, minlength=2)))[y] if settings["class_weight"] else 1.0  # sklearn's balance
    loss = float(np.mean(w * np.logaddexp(0.0, np.where(y == 1, -z, z))))
    n_iter = int(np.max(clf.n_iter_))
    rec = {
        "type": "fit",
        "solver": "sklearn lbfgs",
        "iterations": n_iter,
        "train_loss": loss,
        "train_seconds": seconds,
        "wall_time": seconds,
    }
    if log is not None:
        log(f"logreg: lbfgs converged in {n_iter} iterations, weighted log-loss {loss:.4f}, {seconds:.2f} s")
    summary = solver_summary("convex", seconds, cpu, iterations=n_iter, final_train_loss=loss)
    hparams = {
        **settings,
        "solver": "lbfgs",
        "max_iter": MAX_ITER,
        "tol": TOL,
        "library": f"scikit-learn {sklearn.__version__}",
    }
    return module, [rec], summary, hparams
