"""Expectation-maximisation fit of the `gmm` frame model: the ASVspoof LFCC-GMM baseline.

Why: the challenge's classic baseline (Todisco et al., ASVspoof 2019 evaluation plan; B1/B2 of ASVspoof 2019 and 2021)
models bona fide and spoof frames with one Gaussian mixture each and scores an utterance by the mean frame
log-likelihood ratio. scikit-learn's GaussianMixture runs EM (k-means initialisation, seeded); the fitted weights,
means and precisions are copied into `dfdet.models.GMMPair`, which every other tool reads.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from dfdet.chunks import standardize_frames
from dfdet.convex import solver_summary
from dfdet.errors import DfdetError
from dfdet.models import GMM_DEFAULTS, build_model


def gmm_settings(model_config: dict[str, Any]) -> dict[str, Any]:
    """The fit settings of a gmm run: defaults overridden by the training config's model options."""
    return {**GMM_DEFAULTS, **{k: v for k, v in model_config.items() if k in GMM_DEFAULTS}}


def sample_frames(rows: Any, pick: np.ndarray, max_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Frames of rows `pick` (raw [T, D] each, from `rows.get`), at most `max_frames` of them drawn uniformly
    without replacement over all their frames (float64 [n, D]); one utterance is read at a time."""
    n = np.asarray(rows.n_frames)[pick].astype(np.int64)
    total = int(n.sum())
    take = np.sort(rng.choice(total, size=min(int(max_frames), total), replace=False))
    offsets = np.concatenate([[0], np.cumsum(n)])
    out = []
    for j, i in enumerate(pick):
        lo, hi = np.searchsorted(take, [offsets[j], offsets[j + 1]])
        if hi > lo:
            out.append(np.asarray(rows.get(int(i)), dtype=np.float64)[take[lo:hi] - offsets[j]])
    return np.concatenate(out) if out else np.zeros((0, rows.dim))


def fit_gmm_pair(
    cfg: Any, rows: Any, mean: np.ndarray, scale: np.ndarray, log: Any = None
) -> tuple[nn.Module, list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Fit one mixture per class on (a seeded draw of) the standardised frames of `rows` (dfdet.frametraining
    FrameRows, labels 0/1). Returns (module, history, summary, settings) as `dfdet.training` records them."""
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    settings = gmm_settings(dict(cfg.model_config))
    k = int(settings["components"])
    module = build_model(cfg.model, rows.dim, **dict(cfg.model_config))
    rng = np.random.default_rng([int(cfg.seed), 2])
    t0, c0 = time.perf_counter(), time.process_time()
    history: list[dict[str, Any]] = []
    for c, name in ((0, "bonafide"), (1, "spoof")):
        pick = np.flatnonzero(np.asarray(rows.y) == c)
        frames = standardize_frames(sample_frames(rows, pick, int(settings["max_frames"]), rng), mean, scale)
        if len(frames) < k:
            raise DfdetError(
                f"{len(frames)} {name} frames for {k} mixture components",
                "train on more audio, or lower the components (model option components)",
            )
        gm = GaussianMixture(
            n_components=k,
            covariance_type="diag",
            max_iter=int(settings["max_iter"]),
            reg_covar=float(settings["reg_covar"]),
            random_state=int(rng.integers(2**31 - 1)),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # recorded below instead
            gm.fit(frames.astype(np.float64))
        with torch.no_grad():
            module.log_weight[c].copy_(torch.from_numpy(np.log(gm.weights_)))
            module.mean[c].copy_(torch.from_numpy(gm.means_))
            module.log_precision[c].copy_(torch.from_numpy(-np.log(gm.covariances_)))
        rec = {
            "type": "fit",
            "solver": "sklearn GaussianMixture (EM, diagonal, k-means init)",
            "class": name,
            "frames": int(len(frames)),
            "utterances": int(len(pick)),
            "iterations": int(gm.n_iter_),
            "converged": bool(gm.converged_),
            "mean_log_likelihood": float(gm.score(frames)),
            "wall_time": time.perf_counter() - t0,
        }
        history.append(rec)
        if log is not None:
            log(
                f"gmm {name}: {k} components on {len(frames)} frames of {len(pick)} utterances, {gm.n_iter_} EM "
                f"iterations{'' if gm.converged_ else ' (not converged)'}, mean log-likelihood "
                f"{rec['mean_log_likelihood']:.3f}"
            )
    module.eval()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = solver_summary(
        "em",
        seconds,
        cpu,
        iterations=[r["iterations"] for r in history],
        converged=all(r["converged"] for r in history),
    )
    hparams = {**settings, "solver": "em", "library": f"scikit-learn {sklearn.__version__}"}
    return module, history, summary, hparams
