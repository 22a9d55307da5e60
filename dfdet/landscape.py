"""Loss-landscape measurement: how sharp or flat is the minimum a training run found?

Turns claims such as "AdamW finds sharper minima" into numbers (issue 3, item 8):

- `top_hessian_eigenvalues`: power iteration with Hessian-vector products (double backward), with deflation for k > 1.
- `filter_normalized_direction` / `loss_along_directions` / `flat_region_width`: loss along random directions
  normalised per filter (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"), and how wide the flat
  region around the minimum is.
- `linear_interpolation`: loss along the straight line from the initial to the final weights (Goodfellow et al. 2015).
- `epsilon_sharpness` (SAM-style, Foret et al. 2021) and `keskar_sharpness` (Keskar et al. 2017, projected ascent
  in an L-infinity box).
- `measure_landscape`: all of the above for a trained detector on a FeatureSet, with its own scaler and loss.

The core functions take a plain `torch.nn.Module`, a mean-reduced `loss_fn(logits, targets)` and tensors X
(already standardised) / y (float 0/1 spoof targets). They evaluate in eval mode (BatchNorm running statistics, no
dropout), leave the module's weights and mode as they found them, and are deterministic for a given seed on CPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.console import progress as _progress
from dfdet.errors import DfdetError, InputError

if TYPE_CHECKING:  # torch is imported lazily so `import dfdet.landscape` stays cheap
    import torch
    from torch import nn

    from dfdet.store import FeatureSet

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]

SCHEMA_VERSION = 1

DEFINITIONS = {
    "hessian": (
        "Eigenvalues of the Hessian of the mean training loss with respect to all trainable parameters (weights, "
        "biases, BatchNorm affine), model in eval mode, on the rows listed under data. Power iteration with "
        "Hessian-vector products (double backward) from a seeded Gaussian start; it finds the eigenvalue of largest "
        "magnitude. For k > 1 each further eigenvalue is found with the earlier eigenvectors projected out "
        "(deflation). Converged when the relative change of the Rayleigh quotient between iterations is below tol."
    ),
    "directions": (
        "Filter-normalised random directions (Li et al. 2018): a Gaussian direction per weight tensor, each output "
        "filter/row rescaled to the Frobenius norm of the same filter of the trained weights. One-dimensional "
        "parameters (biases, BatchNorm weight and bias) get a zero direction (the paper's 'ignore biasbn' choice); "
        "BatchNorm running statistics stay fixed. loss(alpha) = L(theta* + alpha d), model in eval mode."
    ),
    "flat_width": (
        "Width of the contiguous interval of alpha around 0 where loss(alpha) <= loss(0) + delta (absolute delta, "
        "default 0.1) or loss(alpha) <= loss(0) * (1 + delta) (relative); edges found by linear interpolation "
        "between grid points. If the loss stays below the threshold up to the end of the grid, that edge is the "
        "grid end and the width is a lower bound (censored)."
    ),
    "interpolation": (
        "theta(t) = (1 - t) theta0 + t theta1 for t in the stated range (Goodfellow et al. 2015), theta0 the "
        "initial and theta1 the final weights; floating-point buffers (BatchNorm running statistics) are "
        "interpolated with t clipped to [0, 1] so extrapolated variances stay positive; integer buffers are taken "
        "from theta1. barrier = max over t in [0, 1] of loss(t) - ((1 - t) loss(0) + t loss(1))."
    ),
    "sam_sharpness": (
        "SAM-style epsilon-sharpness (Foret et al. 2021): L(theta + rho g / ||g||) - L(theta), g the full-data "
        "gradient over all trainable parameters, ||.|| the global L2 norm; model in eval mode."
    ),
    "keskar_sharpness": (
        "Keskar et al. (2017) epsilon-sharpness: 100 * (max_{z in C} L(theta + z) - L(theta)) / (1 + L(theta)), "
        "C the L-infinity box |z_i| <= epsilon (|theta_i| + 1) over all trainable parameters; the max is "
        "approximated by projected sign-gradient ascent (a lower bound of the true max)."
    ),
}


# --------------------------------------------------------------------------------------------------- helpers


def _torch():
    import torch

    return torch


def _params(model: nn.Module) -> list[torch.Tensor]:
    return list(model.parameters())


@contextlib.contextmanager
def _measuring(model: nn.Module) -> Iterator[None]:
    """Eval mode, gradients on for every parameter; weights, mode and requires_grad restored afterwards."""
    torch = _torch()
    params = _params(model)
    saved = [p.detach().clone() for p in params]
    flags = [p.requires_grad for p in params]
    was_training = model.training
    model.eval()
    for p in params:
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            yield
    finally:
        with torch.no_grad():
            for p, s, f in zip(params, saved, flags, strict=True):
                p.copy_(s)
                p.requires_grad_(f)
        model.train(was_training)


def _batches(X: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> Iterator[tuple[Any, Any, float]]:
    """(X_b, y_b, weight) with weights n_b / N, so a weighted sum of mean-reduced batch losses is the full-data mean."""
    n = len(X)
    if n == 0:
        raise DfdetError("no rows to measure the loss on", "pass a feature set with labelled rows")
    if not batch_size or batch_size >= n:
        yield X, y, 1.0
        return
    for i in range(0, n, batch_size):
        xb, yb = X[i : i + batch_size], y[i : i + batch_size]
        yield xb, yb, len(xb) / n


def _set_params(params: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
    torch = _torch()
    with torch.no_grad():
        for p, v in zip(params, values, strict=True):
            p.copy_(v)


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * z).sum() for x, z in zip(a, b, strict=True))


def _norm(a: Sequence[torch.Tensor]) -> float:
    return float(math.sqrt(sum(float((x.double() ** 2).sum()) for x in a)))


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float(((logits.reshape(-1) > 0) == (y.reshape(-1) > 0.5)).double().mean())


def evaluate(
    model: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
) -> tuple[float, float | None]:
    """Full-data mean loss and accuracy (spoof when logit > 0) at the current weights, in the current mode.

    Accuracy is None when the model's output does not have one logit per row.
    """
    torch = _torch()
    total, correct, acc_ok = 0.0, 0.0, True
    with torch.no_grad():
        for xb, yb, w in _batches(X, y, batch_size):
            out = model(xb)
            total += float(loss_fn(out, yb)) * w
            if acc_ok and out.numel() == yb.numel():
                correct += _accuracy(out, yb) * w
            else:
                acc_ok = False
    return total, (correct if acc_ok else None)


def full_loss_and_grad(
    model: nn.Module, loss_fn: LossFn, X: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
) -> tuple[float, list[torch.Tensor]]:
    """Full-data mean loss and its gradient with respect to every parameter (accumulated over batches)."""
    torch = _torch()
    params = _params(model)
    grads = [torch.zeros_like(p) for p in params]
    total = 0.0
    for xb, yb, w in _batches(X, y, batch_size):
        loss = loss_fn(model(xb), yb) * w
        gs = torch.autograd.grad(loss, params, allow_unused=True)
        for acc, g in zip(grads, gs, strict=True):
            if g is not None:
                acc.add_(g)
        total += float(loss.detach())
    return total, grads


def hessian_vector_product(
    model: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
    vec: Sequence[torch.Tensor],
    batch_size: int | None = None,
) -> list[torch.Tensor]:
    """H v for the full-data mean loss, by double backward (Pearlmutter's trick), accumulated over batches."""
    torch = _torch()
    params = _params(model)
    out = [torch.zeros_like(p) for p in params]
    for xb, yb, w in _batches(X, y, batch_size):
        loss = loss_fn(model(xb), yb) * w
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        pairs = [(g, v) for g, v in zip(grads, vec, strict=True) if g is not None and g.requires_grad]
        if not pairs:  # gradient constant in the parameters (a linear loss): Hessian is zero
            continue
        dot = sum((g * v).sum() for g, v in pairs)
        hv = torch.autograd.grad(dot, params, allow_unused=True)
        for acc, h in zip(out, hv, strict=True):
            if h is not None:
                acc.add_(h.detach())
    return out


# ------------------------------------------------------------------------------------------------- 1. Hessian


def top_hessian_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
    k: int = 1,
    iters: int = 100,
    tol: float = 1e-4,
    seed: int = 42,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Top-k Hessian eigenvalues (largest magnitude first) of the full-data loss by power iteration.

    Returns {"eigenvalues", "iterations", "converged", "k", "max_iters", "tol", "seed", "n_params", "definition"}.
    """
    torch = _torch()
    if k < 1 or iters < 1:
        raise DfdetError(f"k={k}, iters={iters}: both must be at least 1", "pass --power-iters >= 1")
    gen = torch.Generator().manual_seed(int(seed))
    eigenvalues: list[float] = []
    iterations: list[int] = []
    converged: list[bool] = []
    found: list[list[torch.Tensor]] = []
    with _measuring(model):
        params = _params(model)
        n_params = sum(p.numel() for p in params)

        def project(v: list[torch.Tensor]) -> list[torch.Tensor]:
            for u in found:
                c = _dot(u, v)
                v = [vi - c * ui for vi, ui in zip(v, u, strict=True)]
            return v

        def normalise(v: list[torch.Tensor]) -> list[torch.Tensor]:
            n = _norm(v)
            return [vi / n for vi in v] if n > 0 else v

        for j in range(k):
            v = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in params]
            v = normalise(project(v))
            eig, prev, done, it = 0.0, None, False, 0
            steps = range(1, iters + 1)
            if show_progress:
                steps = _progress(steps, total=iters, desc=f"hessian eig {j + 1}/{k}", unit="hvp")
            for it in steps:  # noqa: B007 - `it` is reported
                hv = project(hessian_vector_product(model, loss_fn, X, y, v, batch_size))
                eig = float(_dot(hv, v))
                n = _norm(hv)
                if n == 0:  # v lies in the null space: the remaining spectrum is zero
                    done = True
                    break
                v = [h / n for h in hv]
                if prev is not None and abs(eig - prev) <= tol * (abs(prev) + 1e-12):
                    done = True
                    break
                prev = eig
            close = getattr(steps, "close", None)
            if close is not None:
                close()  # end the progress bar now, not at garbage collection
            eigenvalues.append(eig)
            iterations.append(it)
            converged.append(done)
            found.append(normalise(project(v)))
    return {
        "eigenvalues": eigenvalues,
        "iterations": iterations,
        "converged": converged,
        "k": k,
        "max_iters": iters,
        "tol": tol,
        "seed": int(seed),
        "n_params": int(n_params),
        "definition": DEFINITIONS["hessian"],
    }


# ---------------------------------------------------------------------------------- 2. random directions


def filter_normalized_direction(model: nn.Module, seed: int | torch.Generator = 42) -> dict[str, torch.Tensor]:
    """A Gaussian direction, per output filter/row scaled to that filter's weight norm; 1-D parameters get zero.

    Keys are `model.named_parameters()` names. For Conv1d weights [out, in, k] a filter is one output channel;
    for Linear weights [out, in] one output row. Biases and BatchNorm weight/bias (1-D) are set to zero, as in
    Li et al. 2018 ("ignore biasbn").
    """
    torch = _torch()
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        w = p.detach()
        if w.dim() <= 1:
            out[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device)
        flat_d = d.reshape(len(d), -1)
        flat_w = w.reshape(len(w), -1)
        dn = flat_d.norm(dim=1, keepdim=True)
        wn = flat_w.norm(dim=1, keepdim=True)
        out[name] = (flat_d * (wn / dn.clamp_min(1e-12))).reshape(w.shape)
    return out


def _alpha_grid(alphas: Sequence[float] | np.ndarray, must_have: Sequence[float] = (0.0,)) -> np.ndarray:
    a = np.asarray(alphas, dtype=float).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise DfdetError("the alpha grid is empty or not finite", "pass e.g. --alphas -1:1:41")
    for m in must_have:
        if not np.any(np.isclose(a, m, atol=1e-12, rtol=0)):
            a = np.append(a, m)
        else:
            a[np.isclose(a, m, atol=1e-12, rtol=0)] = m
    return np.unique(a)


def flat_region_width(
    alphas: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    delta: float = 0.1,
    relative: bool = False,
) -> dict[str, Any]:
    """Width of the contiguous alpha interval around 0 where loss <= loss(0) + delta (or loss(0)·(1 + delta)).

    The grid must contain alpha = 0. Edges are linearly interpolated between grid points; an edge that reaches the
    end of the grid is flagged as censored (the width is then a lower bound).
    """
    a = np.asarray(alphas, dtype=float).ravel()
    loss = np.asarray(losses, dtype=float).ravel()
    if a.shape != loss.shape or a.size == 0:
        raise DfdetError(f"alphas ({a.size}) and losses ({loss.size}) differ in length", "pass one loss per alpha")
    order = np.argsort(a, kind="stable")
    a, loss = a[order], loss[order]
    zero = np.flatnonzero(np.isclose(a, 0.0, atol=1e-12, rtol=0))
    if zero.size == 0:
        raise DfdetError("the alpha grid does not contain 0", "include alpha = 0 in the grid")
    i0 = int(zero[0])
    base = float(loss[i0])
    threshold = base * (1.0 + delta) if relative else base + delta

    def edge(step: int) -> tuple[float, bool]:
        i = i0
        while 0 <= i + step < a.size:
            j = i + step
            if not (loss[j] <= threshold):  # NaN counts as above the threshold
                if not np.isfinite(loss[j]) or loss[j] == loss[i]:
                    return float(a[i]), False
                frac = (threshold - loss[i]) / (loss[j] - loss[i])
                return float(a[i] + frac * (a[j] - a[i])), False
            i = j
        return float(a[i]), True

    left, left_c = edge(-1)
    right, right_c = edge(+1)
    return {
        "width": right - left,
        "left": left,
        "right": right,
        "censored": bool(left_c or right_c),
        "loss_at_0": base,
        "threshold": threshold,
        "delta": delta,
        "relative": relative,
        "definition": DEFINITIONS["flat_width"],
    }


def loss_along_directions(
    model: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
    alphas: Sequence[float] | np.ndarray = tuple(np.linspace(-1, 1, 41)),
    n_directions: int = 2,
    seed: int = 42,
    surface_alphas: Sequence[float] | np.ndarray | None = None,
    delta: float = 0.1,
    relative: bool = False,
    batch_size: int | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Loss and accuracy along `n_directions` filter-normalised random directions (1-D curves, with flat widths).

    With `surface_alphas` (and n_directions >= 2) also the 2-D surface L(theta* + a d1 + b d2) on that grid.
    Directions come from one generator seeded with `seed`, drawn in order, so direction i is the same for any
    n_directions > i.
    """
    torch = _torch()
    if n_directions < 1:
        raise DfdetError(f"n_directions={n_directions}", "pass --directions >= 1")
    grid = _alpha_grid(alphas)
    gen = torch.Generator().manual_seed(int(seed))
    curves: list[dict[str, Any]] = []
    surface = None
    with _measuring(model):
        names = [n for n, _ in model.named_parameters()]
        params = _params(model)
        theta = [p.detach().clone() for p in params]
        dirs = []
        for _ in range(n_directions):
            d = filter_normalized_direction(model, gen)
            dirs.append([d[n] for n in names])
        jobs = [(i, float(a)) for i in range(n_directions) for a in grid]
        results: dict[tuple[int, float], tuple[float, float | None]] = {}
        it = _progress(jobs, total=len(jobs), desc="directions", unit="pt") if show_progress else jobs
        for i, a in it:
            _set_params(params, [t + a * d for t, d in zip(theta, dirs[i], strict=True)])
            results[(i, a)] = evaluate(model, loss_fn, X, y, batch_size)
        for i in range(n_directions):
            losses = [results[(i, float(a))][0] for a in grid]
            accs = [results[(i, float(a))][1] for a in grid]
            curves.append(
                {
                    "index": i,
                    "norm": _norm(dirs[i]),
                    "loss": losses,
                    "accuracy": None if any(v is None for v in accs) else accs,
                    "flat": flat_region_width(grid, losses, delta=delta, relative=relative),
                }
            )
        if surface_alphas is not None and n_directions >= 2:
            sg = _alpha_grid(surface_alphas)
            cells = [(float(a), float(b)) for a in sg for b in sg]
            it2 = _progress(cells, total=len(cells), desc="surface", unit="pt") if show_progress else cells
            loss2 = {}
            for a, b in it2:
                _set_params(params, [t + a * d1 + b * d2 for t, d1, d2 in zip(theta, dirs[0], dirs[1], strict=True)])
                loss2[(a, b)] = evaluate(model, loss_fn, X, y, batch_size)[0]
            surface = {
                "alphas": sg.tolist(),
                "betas": sg.tolist(),
                "loss": [[loss2[(float(a), float(b))] for b in sg] for a in sg],
                "note": "loss[i][j] = L(theta* + alphas[i] d0 + betas[j] d1)",
            }
    widths = np.array([c["flat"]["width"] for c in curves])
    return {
        "alphas": grid.tolist(),
        "seed": int(seed),
        "n_directions": n_directions,
        "curves": curves,
        "flat_width_mean": float(widths.mean()),
        "flat_width_min": float(widths.min()),
        "flat_width_max": float(widths.max()),
        "surface": surface,
        "definition": DEFINITIONS["directions"],
    }


# ---------------------------------------------------------------------------------- 3. linear interpolation


def linear_interpolation(
    model_init_state: dict[str, torch.Tensor],
    model_final_state: dict[str, torch.Tensor],
    model: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
    n: int = 25,
    t_range: tuple[float, float] = (-0.25, 1.25),
    batch_size: int | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Loss and accuracy along theta(t) = (1 - t) theta0 + t theta1 on n points of t_range (plus t = 0 and 1).

    States are `state_dict()`s of the same architecture. The module is restored to its own state afterwards.
    """
    torch = _torch()
    lo, hi = map(float, t_range)
    if n < 2 or not lo < hi:
        raise DfdetError(f"n={n}, t_range={t_range}", "pass n >= 2 and an increasing range")
    ts = _alpha_grid(np.linspace(lo, hi, n), must_have=(0.0, 1.0))
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # Copies: a state_dict() shares storage with the live module, which is overwritten below.
    model_init_state = {k: v.detach().clone() for k, v in model_init_state.items()}
    model_final_state = {k: v.detach().clone() for k, v in model_final_state.items()}
    keys = set(own)
    for label, st in (("initial", model_init_state), ("final", model_final_state)):
        if set(st) != keys:
            raise DfdetError(
                f"the {label} state does not match the model's parameters ({sorted(keys ^ set(st))[:3]} ...)",
                "pass states of the same architecture",
            )
    param_names = {n for n, _ in model.named_parameters()}
    losses: list[float] = []
    accs: list[float | None] = []
    try:
        with _measuring(model):
            it = _progress(ts, total=len(ts), desc="interpolation", unit="pt") if show_progress else ts
            for t in it:
                t = float(t)
                tb = min(max(t, 0.0), 1.0)
                new = {}
                for k in own:
                    a, b = model_init_state[k].to(own[k].device), model_final_state[k].to(own[k].device)
                    if not torch.is_floating_point(b):
                        new[k] = b
                    else:
                        s = t if k in param_names else tb
                        new[k] = (1 - s) * a.to(b.dtype) + s * b
                model.load_state_dict(new)
                loss, acc = evaluate(model, loss_fn, X, y, batch_size)
                losses.append(loss)
                accs.append(acc)
    finally:
        model.load_state_dict(own)
    arr = np.asarray(losses)
    i0, i1 = int(np.flatnonzero(ts == 0.0)[0]), int(np.flatnonzero(ts == 1.0)[0])
    inside = (ts >= 0) & (ts <= 1)
    chord = (1 - ts) * arr[i0] + ts * arr[i1]
    seg = arr[inside]
    return {
        "t": ts.tolist(),
        "t_range": [lo, hi],
        "loss": losses,
        "accuracy": None if any(a is None for a in accs) else accs,
        "loss_initial": float(arr[i0]),
        "loss_final": float(arr[i1]),
        "barrier": float(np.max(arr[inside] - chord[inside])),
        "monotonic_decrease": bool(np.all(np.diff(seg) <= 1e-12)),
        "definition": DEFINITIONS["interpolation"],
    }


# ----------------------------------------------------------------------------------------- 4. sharpness


def epsilon_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
    rho: float = 0.05,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """SAM-style sharpness L(theta + rho g/||g||) - L(theta) with g the full-data gradient (all parameters)."""
    with _measuring(model):
        params = _params(model)
        theta = [p.detach().clone() for p in params]
        loss0, grads = full_loss_and_grad(model, loss_fn, X, y, batch_size)
        gn = _norm(grads)
        if gn > 0:
            _set_params(params, [t + (rho / gn) * g for t, g in zip(theta, grads, strict=True)])
        loss1, _ = evaluate(model, loss_fn, X, y, batch_size)
    return {
        "sharpness": loss1 - loss0,
        "loss": loss0,
        "loss_perturbed": loss1,
        "grad_norm": gn,
        "rho": rho,
        "definition": DEFINITIONS["sam_sharpness"],
    }


def keskar_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    X: torch.Tensor,
    y: torch.Tensor,
    epsilon: float = 1e-3,
    steps: int = 10,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Keskar et al. epsilon-sharpness by projected sign-gradient ascent in the box |z| <= epsilon(|theta|+1)."""
    torch = _torch()
    with _measuring(model):
        params = _params(model)
        theta = [p.detach().clone() for p in params]
        box = [epsilon * (t.abs() + 1) for t in theta]
        step = [2.5 * b / max(steps, 1) for b in box]
        z = [torch.zeros_like(t) for t in theta]
        loss0, _ = evaluate(model, loss_fn, X, y, batch_size)
        best = loss0
        for _ in range(steps):
            _set_params(params, [t + zi for t, zi in zip(theta, z, strict=True)])
            loss, grads = full_loss_and_grad(model, loss_fn, X, y, batch_size)
            best = max(best, loss)
            z = [
                torch.maximum(torch.minimum(zi + s * g.sign(), b), -b)
                for zi, s, g, b in zip(z, step, grads, box, strict=True)
            ]
        _set_params(params, [t + zi for t, zi in zip(theta, z, strict=True)])
        best = max(best, evaluate(model, loss_fn, X, y, batch_size)[0])
    return {
        "sharpness": 100.0 * (best - loss0) / (1.0 + loss0),
        "loss": loss0,
        "loss_max": best,
        "epsilon": epsilon,
        "steps": steps,
        "definition": DEFINITIONS["keskar_sharpness"],
    }


# ------------------------------------------------------------------------------------ 5. for a detector


def bce_loss() -> LossFn:
    """Mean binary cross-entropy on spoof logits."""
    import torch.nn.functional as F

    return lambda logits, y: F.binary_cross_entropy_with_logits(logits.reshape(-1), y.reshape(-1).to(logits.dtype))


def focal_loss(alpha: float = 0.25, gamma: float = 2.0) -> LossFn:
    """Mean focal loss with alpha applied to both classes (the study's definition), on spoof logits."""
    import torch.nn.functional as F

    def fn(logits, y):
        z = logits.reshape(-1)
        t = y.reshape(-1).to(z.dtype)
        ce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        return (alpha * (1 - (-ce).exp()) ** gamma * ce).mean()

    return fn


def _find(meta: dict[str, Any], *keys: str) -> Any:
    """First value of any of `keys` in meta or its nested training/config dicts."""
    for d in (meta, meta.get("training") or {}, meta.get("training_config") or {}, meta.get("config") or {}):
        if isinstance(d, dict):
            for k in keys:
                if d.get(k) is not None:
                    return d[k]
    return None


def detector_loss(detector: Any) -> tuple[LossFn, dict[str, Any]]:
    """The loss the detector was trained with (from its training config), and a description of it."""
    meta = getattr(detector, "meta", {}) or {}
    name = str(_find(meta, "loss", "loss_name") or "bce").lower()
    if name == "focal":
        alpha = float(_find(meta, "focal_alpha") or 0.25)
        gamma = float(_find(meta, "focal_gamma") or 2.0)
        return focal_loss(alpha, gamma), {"name": "focal", "alpha": alpha, "gamma": gamma}
    if name != "bce":
        raise DfdetError(f"unknown training loss {name!r} in the model file", "expected 'bce' or 'focal'")
    return bce_loss(), {"name": "bce"}


def _stored_initial_state(detector: Any) -> dict[str, Any] | None:
    meta = getattr(detector, "meta", {}) or {}
    for st in (meta.get("initial_state"), getattr(detector, "initial_state", None)):
        if isinstance(st, dict) and st:
            return st
    return None


def initial_state(detector: Any) -> dict[str, torch.Tensor]:
    """theta0 of a detector: stored initial weights if the file has them, else rebuilt from the training seed.

    The trainer seeds with `seed_everything(seed, with_torch=True)` right before `build_model(...)`, so the same
    call sequence here gives the same initial weights. The torch RNG state is restored afterwards.
    """
    import random

    torch = _torch()
    meta = getattr(detector, "meta", {}) or {}
    stored = _stored_initial_state(detector)
    if stored is not None:
        return {k: v.detach().clone() for k, v in stored.items()}
    from dfdet.models import build_model
    from dfdet.seeding import seed_everything

    arch = _find(meta, "arch", "architecture", "model")
    name = arch.get("name") if isinstance(arch, dict) else arch
    arch_cfg = _find(meta, "arch_config", "model_config") or (arch.get("config") if isinstance(arch, dict) else None)
    seed = _find(meta, "seed")
    input_dim = (
        getattr(detector, "input_dim", None)
        or (arch.get("input_dim") if isinstance(arch, dict) else None)
        or _find(meta, "input_dim")
        or len(getattr(detector, "feature_names", []) or [])
    )
    if name is None or seed is None or not input_dim:
        raise DfdetError(
            "the model file records no architecture, input dimension or training seed",
            "use --skip-interpolation for this model",
        )
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            seed_everything(int(seed), with_torch=True)
            module = build_model(str(name), int(input_dim), **dict(arch_cfg or {}))
    finally:  # leave the caller's random streams as they were
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def landscape_rows(fs: FeatureSet, max_rows: int | None = 2000, seed: int = 42) -> np.ndarray:
    """Indices of the labelled rows used for the measurement: all, or a seeded subsample of max_rows (sorted)."""
    idx = np.flatnonzero(np.isin(fs.y, (0, 1)))
    if idx.size == 0:
        raise InputError(fs.source or "features", "no labelled rows", "the landscape needs bona fide/spoof labels")
    if len(np.unique(fs.y[idx])) < 2:
        raise InputError(fs.source or "features", "only one class is labelled", "pass rows of both classes")
    if max_rows and idx.size > max_rows:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(idx, size=max_rows, replace=False))
    return idx


def landscape_inputs(detector: Any, fs: FeatureSet, idx: np.ndarray, seed: int = 42) -> tuple[Any, dict[str, Any]]:
    """The standardised model inputs of rows `idx` (float32 tensor) and how they were made.

    A vector model reads its rows. A frame model (lcnn) is trained on random fixed-length chunks, so its training
    loss is measured on one seeded random chunk per utterance (short ones tiled), standardised with its scaler:
    [N, chunk_frames, D]; whole utterances of different lengths would not batch, and are not what the loss saw."""
    from dfdet.provenance import array_hash

    torch = _torch()
    if getattr(detector, "input_kind", "vector") != "frames":
        X = detector.standardize(fs.X[idx])
        if not isinstance(X, torch.Tensor):
            X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        rows = {"inputs": "rows (standardised with the model's scaler)", "rows_hash": array_hash(fs.X[idx], fs.y[idx])}
        return X, rows
    from dfdet.attacks import frames_of
    from dfdet.chunks import random_starts, standardized_chunks

    mats = frames_of(fs.subset(idx))
    length = int(detector.chunk_frames)
    starts = random_starts(np.array([len(m) for m in mats]), length, np.random.default_rng([seed, 1]))
    chunks = standardized_chunks(mats, starts, length, detector.scaler_mean, detector.scaler_scale)
    return torch.from_numpy(chunks), {
        "inputs": "one random chunk per utterance (short ones tiled), standardised with the model's scaler",
        "chunk_frames": length,
        "chunk_seed": [int(seed), 1],
        "chunk_starts_hash": array_hash(starts),
        "rows_hash": array_hash(chunks, fs.y[idx]),
    }


def parse_grid(spec: str) -> np.ndarray:
    """`START:STOP:N` -> np.linspace(START, STOP, N); or a comma-separated list of values."""
    try:
        if ":" in spec:
            lo, hi, n = spec.split(":")
            if int(n) < 2:
                raise ValueError
            return np.linspace(float(lo), float(hi), int(n))
        return np.array([float(v) for v in spec.split(",") if v.strip()])
    except ValueError as e:
        raise DfdetError(f"cannot read the grid {spec!r}", "write START:STOP:N (e.g. -1:1:41) or a,b,c") from e


def measure_landscape(
    detector: Any,
    fs: FeatureSet,
    max_rows: int | None = 2000,
    n_directions: int = 2,
    alphas: Sequence[float] | np.ndarray = tuple(np.linspace(-1, 1, 41)),
    surface_alphas: Sequence[float] | np.ndarray | None = None,
    power_iters: int = 100,
    k: int = 1,
    tol: float = 1e-4,
    delta: float = 0.1,
    relative_delta: bool = False,
    rho: float = 0.05,
    keskar_epsilon: float | None = None,
    interpolation: bool = True,
    interpolation_points: int = 25,
    batch_size: int | None = 128,
    seed: int = 42,
    show_progress: bool = True,
) -> dict[str, Any]:
    """All landscape measurements of a trained detector on (a seeded subsample of) a FeatureSet.

    Uses the detector's own scaler and training loss, model in eval mode. Returns a JSON-able dict with values,
    curves for plots, definitions and the data actually used (rows, hash). `batch_size` only bounds memory and
    speed (the loss is always the full-data mean, and eval-mode BatchNorm does not depend on the batch).
    """
    torch = _torch()
    check = getattr(detector, "check_features", None)
    if check is not None:
        check(fs)
    idx = landscape_rows(fs, max_rows, seed)
    X, inputs = landscape_inputs(detector, fs, idx, seed)
    model = detector.module
    device = next(model.parameters()).device
    X = X.to(device=device, dtype=next(model.parameters()).dtype)
    y = torch.as_tensor(fs.y[idx].astype(np.float32), device=device)
    loss_fn, loss_desc = detector_loss(detector)

    loss, acc = _eval_loss(model, loss_fn, X, y, batch_size)
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "dfdet-landscape",
        "loss_function": loss_desc,
        "mode": "eval (BatchNorm running statistics, no dropout)",
        "data": {
            "source": fs.source,
            "rows_used": int(idx.size),
            "rows_labelled": int(np.isin(fs.y, (0, 1)).sum()),
            "max_rows": max_rows,
            "subsample_seed": seed,
            "n_spoof": int((fs.y[idx] == 1).sum()),
            "n_bonafide": int((fs.y[idx] == 0).sum()),
            **inputs,
        },
        "loss": loss,
        "accuracy": acc,
    }
    out["hessian"] = top_hessian_eigenvalues(
        model, loss_fn, X, y, k=k, iters=power_iters, tol=tol, seed=seed, batch_size=batch_size,
        show_progress=show_progress,
    )  # fmt: skip
    out["top_eigenvalue"] = out["hessian"]["eigenvalues"][0]
    out["directions"] = loss_along_directions(
        model, loss_fn, X, y, alphas, n_directions=n_directions, seed=seed, surface_alphas=surface_alphas,
        delta=delta, relative=relative_delta, batch_size=batch_size, show_progress=show_progress,
    )  # fmt: skip
    out["flat_width"] = out["directions"]["flat_width_mean"]
    out["sam_sharpness"] = epsilon_sharpness(model, loss_fn, X, y, rho=rho, batch_size=batch_size)
    if keskar_epsilon:
        out["keskar_sharpness"] = keskar_sharpness(model, loss_fn, X, y, epsilon=keskar_epsilon, batch_size=batch_size)
    if interpolation:
        theta0 = initial_state(detector)
        stored = _stored_initial_state(detector) is not None
        res = linear_interpolation(
            theta0, model.state_dict(), model, loss_fn, X, y, n=interpolation_points, batch_size=batch_size,
            show_progress=show_progress,
        )  # fmt: skip
        res["theta0"] = (
            "stored in the model file"
            if stored
            else "reconstructed: seed_everything(training seed, with_torch=True) then build_model(arch, input_dim, "
            "**arch_config), as the trainer does before training"
        )
        out["interpolation"] = res
    return out


def _eval_loss(model, loss_fn, X, y, batch_size):
    torch = _torch()
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return evaluate(model, loss_fn, X, y, batch_size)
    finally:
        model.train(was)
