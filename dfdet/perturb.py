"""Feature-space perturbations: FGSM and PGD (L-inf, L2) against a differentiable score, and the label-aware
adversarial examples `dfdet train --adversarial` mixes into batches.

Why its own module: training (adversarial batches) and the attack tools (`dfdet.attacks`, which loads whole detectors
through dfdet.scoring) both need these, and only these; kept apart, neither imports the other. Everything lives in
the detector's standardised space (x' = (x - mean) / scale with the training scaler), so eps is in training standard
deviations. An attack takes a *score function* (standardised features -> bona-fide-positive score) and a threshold,
and pushes every sample across it, away from the decision the model currently makes; `adversarial_examples`
maximises the training loss (BCE on spoof logits against the true labels) instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dfdet.errors import DfdetError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn


ScoreFn = Callable[["torch.Tensor"], "torch.Tensor"]  # X_std [N, D] -> bona-fide-positive score [N]

METHODS = ("fgsm", "pgd")
NORMS = ("linf", "l2")
DEFAULT_EPS = (0.0, 0.05, 0.1, 0.15, 0.2)
TARGETS = ("decision", "label")
STEP_FACTOR = 2.5  # default PGD step size = 2.5 * eps / steps (Madry et al.)


# --------------------------------------------------------------------------------------------------- parsing
def parse_eps_list(text: str) -> list[float]:
    """'0,0.05,0.1' -> [0.0, 0.05, 0.1]; clear errors for non-numbers, negative or non-finite values."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or all(p == "" for p in parts):
        raise UsageError("--eps is empty", "use a comma-separated list like 0,0.05,0.1")
    out: list[float] = []
    for p in parts:
        if p == "":
            raise UsageError(f"--eps: empty item in {text!r}", "use a comma-separated list like 0,0.05,0.1")
        try:
            v = float(p)
        except ValueError:
            raise UsageError(f"--eps: {p!r} is not a number", "use a comma-separated list like 0,0.05,0.1") from None
        if not math.isfinite(v):
            raise UsageError(f"--eps: {p!r} is not finite", "use a comma-separated list like 0,0.05,0.1")
        if v < 0:
            raise UsageError(f"--eps: {p} is negative", "perturbation budgets are >= 0, e.g. 0,0.05,0.1")
        out.append(v)
    return out


def parse_clamp(text: str) -> tuple[float, float]:
    """'lo,hi' (standardised units) -> (lo, hi) with lo < hi."""
    try:
        lo_text, hi_text = str(text).split(",")
        lo, hi = float(lo_text), float(hi_text)
    except ValueError:
        raise UsageError(
            f"--clamp: bad range {text!r}", "write --clamp LO,HI in standardised units, e.g. -5,5"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise UsageError(f"--clamp: need finite LO < HI, got {text!r}", "e.g. --clamp -5,5")
    return lo, hi


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise UsageError(f"eps must be a finite number >= 0, got {eps}", "e.g. eps=0.1 (standardised units)")
    return eps


def _check_method(method: str, norm: str) -> None:
    if method not in METHODS:
        raise UsageError(f"unknown attack method {method!r}", f"choose one of: {', '.join(METHODS)}")
    if norm not in NORMS:
        raise UsageError(f"unknown norm {norm!r}", f"choose one of: {', '.join(NORMS)}")
    if method == "fgsm" and norm != "linf":
        raise UsageError("FGSM is an L-infinity attack", "use --norm linf, or --method pgd for --norm l2")


# --------------------------------------------------------------------------------------------------- clamping
def clamp_from_data(X_std: Any, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (min, max) of standardised data, widened by `margin`: a clamp range that keeps adversarial
    features inside what was observed (e.g. the training data)."""
    Z = np.asarray(X_std.detach().cpu().numpy() if hasattr(X_std, "detach") else X_std, dtype=np.float64)
    if Z.ndim != 2 or len(Z) == 0:
        raise DfdetError(f"clamp data has shape {Z.shape}", "derive the clamp range from a non-empty [N, D] matrix")
    return Z.min(axis=0) - margin, Z.max(axis=0) + margin


def _clamp_tensors(clamp: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    import torch

    if clamp is None:
        return None
    lo, hi = clamp
    lo_t = torch.as_tensor(np.asarray(lo, dtype=np.float64), dtype=like.dtype, device=like.device)
    hi_t = torch.as_tensor(np.asarray(hi, dtype=np.float64), dtype=like.dtype, device=like.device)
    if bool((lo_t > hi_t).any()):
        raise UsageError("clamp range has LO > HI", "give LO <= HI")
    return lo_t, hi_t


def _apply_clamp(z: torch.Tensor, bounds: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    import torch

    if bounds is None:
        return z
    return torch.maximum(torch.minimum(z, bounds[1]), bounds[0])


# --------------------------------------------------------------------------------------------------- core
def _grad(objective: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample objective [N], d sum(objective) / dz [N, D]); samples are independent in eval mode."""
    import torch

    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        val = objective(z)
        (g,) = torch.autograd.grad(val.sum(), z)
    return val.detach(), g.detach()


def _l2_normalise(g: torch.Tensor) -> torch.Tensor:
    n = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / n.view(-1, *([1] * (g.dim() - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    factor = (eps / n).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def _random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    import torch

    if norm == "linf":
        u = torch.rand(x.shape, generator=gen, dtype=torch.float64).to(x.device, x.dtype)
        return (2 * u - 1) * eps
    d = x[0].numel()
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.device, x.dtype)
    r = torch.rand(x.shape[0], generator=gen, dtype=torch.float64).to(x.device, x.dtype) ** (1.0 / d)
    return _l2_normalise(g) * (eps * r).view(-1, *([1] * (x.dim() - 1)))


def maximise(
    objective: Callable[[torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    method: str = "fgsm",
    eps: float = 0.1,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = False,
    clamp: Any = None,
    seed: int = 0,
) -> torch.Tensor:
    """Perturb X within the eps-ball (L-inf or L2) to maximise the per-sample `objective`; returns X' (detached).

    FGSM: one signed-gradient step of size eps. PGD: `steps` steps of `step_size` (default 2.5 * eps / steps;
    signed for L-inf, normalised for L2) with projection onto the ball (and the clamp range) after each step, from X
    or from a seeded uniform random start; the iterate with the highest objective per sample is returned.
    `clamp` = (lo, hi), scalars or per-feature arrays in the same (standardised) units, widened per value to include
    the clean X.
    """
    import torch

    _check_method(method, norm)
    eps = _check_eps(eps)
    X = X.detach()
    bounds = _clamp_tensors(clamp, X)
    if bounds is not None:
        # A clean value outside the range may move inwards but never further out (and eps = 0 leaves X unchanged).
        bounds = (torch.minimum(bounds[0].expand_as(X), X), torch.maximum(bounds[1].expand_as(X), X))
    if eps == 0:
        return X.clone()
    if method == "fgsm":
        _, g = _grad(objective, X)
        return _apply_clamp(X + eps * g.sign(), bounds).detach()
    steps = int(steps)
    if steps < 1:
        raise UsageError(f"PGD needs steps >= 1, got {steps}", "e.g. --steps 10")
    alpha = float(step_size) if step_size is not None else STEP_FACTOR * eps / steps
    if not math.isfinite(alpha) or alpha <= 0:
        raise UsageError(f"PGD step size must be > 0, got {alpha}", "e.g. --step-size 0.025")
    gen = torch.Generator().manual_seed(int(seed))
    delta = _random_start(X, eps, norm, gen) if random_start else torch.zeros_like(X)
    z = _apply_clamp(X + delta, bounds)
    best = z.clone()
    best_val = torch.full((len(X),), -math.inf, dtype=X.dtype, device=X.device)
    for _ in range(steps):
        val, g = _grad(objective, z)
        better = val > best_val
        best[better], best_val[better] = z[better], val[better]
        step = g.sign() if norm == "linf" else _l2_normalise(g)
        z = _apply_clamp(X + _project(z + alpha * step - X, eps, norm), bounds).detach()
    with torch.no_grad():
        val = objective(z)
    better = val > best_val
    best[better] = z[better]
    return best.detach()


def decision_objective(score_fn: ScoreFn, threshold: float, current_bonafide: torch.Tensor) -> Callable:
    """Per-sample loss of the CURRENT decision: (threshold - score) for rows decided bona fide, (score - threshold)
    for rows decided spoof; positive once the decision has flipped."""
    sign = 1.0 - 2.0 * current_bonafide.float()  # decided bona fide -> -1 (push the score down), spoof -> +1

    def objective(z: torch.Tensor) -> torch.Tensor:
        return sign.to(z.device, z.dtype) * (score_fn(z) - threshold)

    return objective


def attack_decisions(
    score_fn: ScoreFn,
    X_std: torch.Tensor,
    threshold: float,
    method: str = "fgsm",
    eps: float = 0.1,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = False,
    clamp: Any = None,
    seed: int = 0,
    batch_size: int = 1024,
    current_bonafide: torch.Tensor | None = None,
) -> torch.Tensor:
    """Adversarial X' pushing every row across `threshold`, away from its current decision (score >= threshold ->
    bona fide). `score_fn` maps standardised features to a differentiable bona-fide-positive score."""
    import torch

    X_std = X_std.detach()
    if current_bonafide is None:
        with torch.no_grad():
            current_bonafide = (
                torch.cat([score_fn(X_std[i : i + batch_size]) >= threshold for i in range(0, len(X_std), batch_size)])
                if len(X_std)
                else torch.zeros(0, dtype=torch.bool)
            )
    outs = []
    for k, i in enumerate(range(0, len(X_std), batch_size)):
        obj = decision_objective(score_fn, threshold, current_bonafide[i : i + batch_size])
        outs.append(
            maximise(obj, X_std[i : i + batch_size], method, eps, norm, steps, step_size, random_start, clamp, seed + k)
        )
    return torch.cat(outs) if outs else X_std.clone()


def fgsm(score_fn: ScoreFn, X_std: torch.Tensor, threshold: float, eps: float, **kw: Any) -> torch.Tensor:
    """FGSM (L-inf) against the current decisions; see `attack_decisions`."""
    return attack_decisions(score_fn, X_std, threshold, "fgsm", eps, "linf", **kw)


def pgd(
    score_fn: ScoreFn, X_std: torch.Tensor, threshold: float, eps: float, norm: str = "linf", steps: int = 10, **kw: Any
) -> torch.Tensor:
    """PGD (L-inf or L2) against the current decisions; see `attack_decisions`."""
    return attack_decisions(score_fn, X_std, threshold, "pgd", eps, norm, steps, **kw)


# --------------------------------------------------------------------------------------------------- training
def adversarial_examples(
    module: nn.Module,
    X_std: torch.Tensor,
    y: torch.Tensor,
    method: str = "fgsm",
    eps: float = 0.1,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool | None = None,
    clamp: Any = None,
    seed: int = 0,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Adversarial versions of a training batch: maximise the training loss of the TRUE labels.

    `module` maps standardised features [N, D] to SPOOF logits [N]; `y` holds 0 bona fide / 1 spoof. `loss(logits,
    targets)` defaults to per-sample BCE-with-logits (any per-sample or mean-reduced loss works; the gradient sign
    is what FGSM/PGD use). The module runs in eval mode while the examples are made (dropout off, BatchNorm running
    statistics untouched) and its mode is restored afterwards; parameter gradients are not touched.
    PGD starts from a seeded random point by default (Madry et al.); FGSM from X.
    """
    import torch
    import torch.nn.functional as F

    targets = torch.as_tensor(y, device=X_std.device).to(X_std.dtype).view(-1)
    if targets.shape[0] != X_std.shape[0]:
        raise DfdetError(f"{targets.shape[0]} labels for {X_std.shape[0]} rows", "pass one label per row")
    lf = loss or (lambda logits, t: F.binary_cross_entropy_with_logits(logits, t, reduction="none"))

    def objective(z: torch.Tensor) -> torch.Tensor:
        v = lf(module(z), targets)
        return v if v.dim() == 1 else v.expand(z.shape[0])

    if random_start is None:
        random_start = method == "pgd"
    was = module.training
    module.eval()
    try:
        return maximise(objective, X_std, method, eps, norm, steps, step_size, bool(random_start), clamp, seed)
    finally:
        module.train(was)


@dataclass(frozen=True)
class AdversarialSpec:
    """`fgsm:EPS` / `pgd:EPS[:STEPS]` for `dfdet train --adversarial`; `ratio` is the adversarial share of a batch."""

    method: str
    eps: float
    steps: int = 10
    norm: str = "linf"
    ratio: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "eps": self.eps, "steps": self.steps, "norm": self.norm, "ratio": self.ratio}


def parse_adversarial(text: str) -> AdversarialSpec:
    """'fgsm:0.1' | 'pgd:0.1' | 'pgd:0.1:7' | 'pgd-l2:0.5' -> AdversarialSpec (clear errors)."""
    fix = "write METHOD:EPS[:STEPS], e.g. fgsm:0.1 or pgd:0.1:10"
    parts = str(text).strip().split(":")
    if len(parts) not in (2, 3):
        raise UsageError(f"--adversarial: bad value {text!r}", fix)
    method = parts[0].strip().lower()
    norm = "linf"
    if method.endswith("-l2"):
        method, norm = method[:-3], "l2"
    if method not in METHODS:
        raise UsageError(f"--adversarial: unknown method {parts[0]!r}", fix)
    try:
        eps = float(parts[1])
        steps = int(parts[2]) if len(parts) == 3 else 10
    except ValueError:
        raise UsageError(f"--adversarial: bad number in {text!r}", fix) from None
    if not math.isfinite(eps) or eps <= 0:
        raise UsageError(f"--adversarial: eps must be > 0, got {parts[1]!r}", fix)
    if steps < 1:
        raise UsageError(f"--adversarial: steps must be >= 1, got {steps}", fix)
    _check_method(method, norm)
    return AdversarialSpec(method, eps, steps, norm)


def adversarial_batch(
    module: nn.Module, xb: torch.Tensor, yb: torch.Tensor, spec: AdversarialSpec, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch with adversarial rows mixed in: the first `spec.ratio` share of the (already shuffled) batch
    is replaced by adversarial versions of itself, so the batch size, the labels and per-batch bookkeeping are
    unchanged (Goodfellow et al.'s mixed objective with weight `ratio`). Returns (x, y).

    Wiring into a training loop: `xb, yb = adversarial_batch(module, xb, yb, spec, seed=step)` right before the
    forward pass of each step.
    """
    import torch

    k = len(xb) if spec.ratio >= 1 else int(round(spec.ratio * len(xb)))
    if k <= 0:
        return xb, yb
    adv = adversarial_examples(module, xb[:k], yb[:k], spec.method, spec.eps, spec.norm, spec.steps, seed=seed)
    return torch.cat([adv, xb[k:]]), yb
