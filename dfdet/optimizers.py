"""Optimizers (a registry) with two sets of defaults: `default` (what trains well here) and `seed` (the study's).

The study compared SGD, Adam, AdamW and RMSprop with 50 full-batch steps, which says more about 50 steps than about
the optimizers. The `default` hyperparameters suit the default protocol (mini-batch 128, BCE, cosine schedule over at
most 20 epochs, early stopping on validation EER): common settings, except SGD's lr 0.05 (0.01 is still under-trained
after 20 epochs of 19 steps) and RMSprop's 5e-4. They were set once, not searched on the test split; the epoch and the
decision threshold are always chosen on validation data. `sam` wraps any of the others (Foret et al. 2021).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from dfdet.errors import UsageError


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    help: str
    make: Callable[[Iterable, dict[str, Any]], torch.optim.Optimizer]
    defaults: dict[str, Any] = field(default_factory=dict)  # default protocol
    seed: dict[str, Any] = field(default_factory=dict)  # the study's settings (--protocol seed)


OPTIMIZERS: dict[str, OptimizerSpec] = {}
PROTOCOLS = ("default", "seed")


def register_optimizer(spec: OptimizerSpec) -> OptimizerSpec:
    OPTIMIZERS[spec.name] = spec
    return spec


def _sgd(params: Iterable, h: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=h["lr"],
        momentum=h["momentum"],
        weight_decay=h["weight_decay"],
        nesterov=bool(h["nesterov"]) and h["momentum"] > 0,  # torch refuses Nesterov without momentum
    )


def _adam(params: Iterable, h: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"], weight_decay=h["weight_decay"])


def _adamw(params: Iterable, h: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"], weight_decay=h["weight_decay"])


def _rmsprop(params: Iterable, h: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(
        params, lr=h["lr"], alpha=h["alpha"], eps=h["eps"], weight_decay=h["weight_decay"], momentum=h["momentum"]
    )


register_optimizer(
    OptimizerSpec(
        "sgd",
        "SGD with Nesterov momentum 0.9",
        _sgd,
        defaults={"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        seed={"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
    )
)
register_optimizer(
    OptimizerSpec(
        "adam",
        "Adam (L2 penalty through the gradient)",
        _adam,
        defaults={"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
        seed={"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01},
    )
)
register_optimizer(
    OptimizerSpec(
        "adamw",
        "AdamW (decoupled weight decay)",
        _adamw,
        defaults={"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01},
        seed={"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01},
    )
)
register_optimizer(
    OptimizerSpec(
        "rmsprop",
        "RMSprop (alpha 0.99)",
        _rmsprop,
        defaults={"lr": 5e-4, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0},
        seed={"lr": 1e-3, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.01, "momentum": 0.0},
    )
)


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation (Foret et al., ICLR 2021) around a base optimizer.

    Each step needs two gradients: g at w (computed by the caller before `step`), then g' at the worst-case
    neighbour w + e, e = rho * g / ||g||_2 (adaptive=True: ASAM's |w|-scaled variant, Kwon et al. 2021). The base
    optimizer then updates w (not w + e) with g'. `step(closure)` runs the second forward/backward through `closure`,
    which must zero the gradients, recompute the loss, call backward and return the loss.
    The base optimizer shares this object's param_groups, so learning-rate schedulers act on both.
    """

    def __init__(
        self,
        params: Iterable,
        base: Callable[[Iterable], torch.optim.Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
    ) -> None:
        if rho < 0:
            raise UsageError(f"SAM rho must be >= 0, got {rho}", "pass --rho 0.05 (the paper's default)")
        super().__init__(params, {"rho": float(rho), "adaptive": bool(adaptive)})
        self.base_optimizer = base(self.param_groups)
        self.param_groups = self.base_optimizer.param_groups
        for group in self.param_groups:
            group.setdefault("rho", float(rho))
            group.setdefault("adaptive", bool(adaptive))
        self.defaults.update(self.base_optimizer.defaults)

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        norms = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad * p.abs() if group["adaptive"] else p.grad
                norms.append(torch.linalg.vector_norm(g))
        if not norms:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack(norms))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move to the ascent point w + e (the gradient at w must be in .grad)."""
        norm = self._grad_norm()
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e = (p * p if group["adaptive"] else 1.0) * p.grad * scale.to(p)
                p.add_(e)
                self.state[p]["sam_e"] = e
        if zero_grad:
            self.zero_grad(set_to_none=True)

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Return to w and let the base optimizer step with the gradient taken at w + e."""
        for group in self.param_groups:
            for p in group["params"]:
                e = self.state[p].pop("sam_e", None)
                if e is not None:
                    p.sub_(e)
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad(set_to_none=True)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        if closure is None:
            raise UsageError("SAM needs a closure that recomputes the loss", "call optimizer.step(closure)")
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            loss = closure()
        self.second_step()
        return loss


def _sam(params: Iterable, h: dict[str, Any]) -> torch.optim.Optimizer:
    base = OPTIMIZERS[h["base"]]
    base_h = {k: v for k, v in h.items() if k not in ("base", "rho", "adaptive")}
    return SAM(params, lambda groups: base.make(groups, base_h), rho=h["rho"], adaptive=h["adaptive"])


register_optimizer(
    OptimizerSpec(
        "sam",
        "sharpness-aware minimisation around --sam-base (two forward/backward passes per step)",
        _sam,
        defaults={"base": "sgd", "rho": 0.05, "adaptive": False},
        seed={"base": "sgd", "rho": 0.05, "adaptive": False},
    )
)


def optimizer_names() -> list[str]:
    return sorted(OPTIMIZERS)


def needs_closure(name: str) -> bool:
    """Whether `step` must be given a closure (a second forward/backward pass)."""
    return name == "sam"


def resolve_hparams(name: str, protocol: str = "default", **overrides: Any) -> dict[str, Any]:
    """The full hyperparameters of optimizer `name` under `protocol`, with non-None `overrides` applied.

    Overrides: lr, weight_decay, momentum (SGD/RMSprop momentum; beta1 for Adam/AdamW), rho, sam_base, plus any
    raw key of the optimizer. For `sam` the base optimizer's own protocol defaults are merged in.
    """
    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}", f"choose one of: {', '.join(optimizer_names())}")
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}", f"choose one of: {', '.join(PROTOCOLS)}")
    spec = OPTIMIZERS[name]
    h = dict(spec.seed if protocol == "seed" else spec.defaults)
    ov = {k: v for k, v in overrides.items() if v is not None}
    if name == "sam":
        base = ov.pop("sam_base", None) or h["base"]
        if base == "sam" or base not in OPTIMIZERS:
            choices = ", ".join(n for n in optimizer_names() if n != "sam")
            raise UsageError(f"unknown SAM base optimizer {base!r}", f"choose one of: {choices}")
        base_spec = OPTIMIZERS[base]
        h = {**(base_spec.seed if protocol == "seed" else base_spec.defaults), **h, "base": base}
        target = base
    else:
        ov.pop("sam_base", None)
        ov.pop("rho", None)
        target = name
    if "momentum" in ov and target in ("adam", "adamw"):
        h["betas"] = [float(ov.pop("momentum")), h["betas"][1]]
    for k, v in ov.items():
        if k not in h:
            raise UsageError(f"optimizer {name!r} has no setting {k!r}", f"its settings: {', '.join(sorted(h))}")
        h[k] = v
    if float(h["lr"]) <= 0:
        raise UsageError(f"learning rate must be positive, got {h['lr']}", "pass --lr with a value > 0")
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in h.items()}


def build_optimizer(name: str, params: Iterable, protocol: str = "default", **overrides: Any) -> torch.optim.Optimizer:
    """Optimizer `name` over `params` with the protocol's defaults and the given overrides (see resolve_hparams)."""
    h = resolve_hparams(name, protocol, **overrides)
    return OPTIMIZERS[name].make(params, h)


def build_from_hparams(name: str, params: Iterable, hparams: dict[str, Any]) -> torch.optim.Optimizer:
    """Optimizer from already-resolved hyperparameters (as stored in a model artifact)."""
    return OPTIMIZERS[name].make(params, dict(hparams))
