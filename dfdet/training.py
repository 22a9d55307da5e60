"""Training a detector on a feature store: protocols, losses, early stopping, BatchNorm repair, gradient history.

Two protocols (presets; any explicit option overrides them):
- `default`: mini-batches of 128, BCE, 20 % of the training rows held out (stratified; speaker-disjoint when
  speakers are known) for early stopping on validation EER and for the decision threshold, cosine schedule,
  BatchNorm statistics re-estimated after training.
- `seed`: the study's recipe, reproduced exactly: full batch (one step per epoch), focal loss (alpha 0.25 on both
  classes, gamma 2), 50 epochs, cosine schedule, its optimizer settings, no early stopping, no BatchNorm repair.

Why the BatchNorm repair: in ImprovedCNN dropout sits before conv+BN, so the running statistics BN collects in
train mode describe dropout-perturbed activations, not what the network sees in eval mode; decisions at a fixed
threshold then swing wildly between runs. One pass over the training inputs with dropout off and BN cumulating
its statistics (momentum=None) makes eval mode see the statistics of its own inputs. It runs after training (all
training rows) and before every validation pass (a fixed 512-row training subset), so early stopping judges the
model as it will be deployed.

Gradient tracking is cheap on purpose: per step the per-tensor gradient norms come from one `torch._foreach_norm`
call and stay as tensors; they are moved to Python in bulk at the end of each epoch.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.jsonio import plain
from dfdet.models import build_model, model_input, model_solver, predict_logits
from dfdet.optimizers import build_from_hparams, needs_closure, resolve_hparams
from dfdet.store import FeatureSet

CONVERGENCE_DEFINITION = (
    "epochs_to_convergence: the first epoch (1-based) whose validation EER is within 0.5 percentage points of the "
    "best validation EER of the run; without validation data, the first epoch whose training loss has made 95 % of "
    "the run's total decrease (loss <= min + 0.05 * (first - min))."
)

BN_CALIBRATION_ROWS = 512  # training rows used to re-estimate BN statistics before each validation pass

PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "epochs": 20,
        "batch_size": 128,
        "loss": "bce",
        "val_split": 0.2,
        "patience": 6,
        "scheduler": "cosine",
        "bn_recalibrate": True,
    },
    "seed": {
        "epochs": 50,
        "batch_size": None,
        "loss": "focal",
        "val_split": 0.0,
        "patience": None,
        "scheduler": "cosine",
        "bn_recalibrate": False,
    },
}


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded in the model artifact)."""

    model: str = "cnn"
    model_config: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adamw"
    optimizer_overrides: dict[str, Any] = field(default_factory=dict)  # lr, weight_decay, momentum, rho, sam_base
    protocol: str = "default"
    epochs: int = 20
    batch_size: int | None = 128  # None = full batch (one step per epoch)
    loss: str = "bce"  # bce | focal
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    val_split: float = 0.2  # used only when no validation store is given; 0 = no validation
    patience: int | None = 6  # early stopping on validation EER; None/0 = off
    scheduler: str = "cosine"  # cosine (CosineAnnealingLR, T_max=epochs, stepped per epoch) | none
    bn_recalibrate: bool = True
    device: str = "cpu"  # cpu | cuda | auto
    seed: int = 42
    track_steps: bool = True  # per-step loss and gradient norms in the history
    adversarial: str | None = None  # fgsm:EPS | pgd:EPS[:STEPS] | pgd-l2:EPS — adversarial rows mixed into each batch
    chunk_frames: int = 400  # frame models: frames per training chunk (4 s at a 10 ms shift); also the scoring chunk

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def make_config(protocol: str = "default", **overrides: Any) -> TrainConfig:
    """A TrainConfig from a protocol preset; overrides that are None keep the preset's value."""
    if protocol not in PRESETS:
        raise UsageError(f"unknown protocol {protocol!r}", f"choose one of: {', '.join(PRESETS)}")
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise UsageError(
            f"unknown training option(s): {', '.join(sorted(unknown))}", f"known: {', '.join(sorted(names))}"
        )
    values: dict[str, Any] = {"protocol": protocol, **PRESETS[protocol]}
    for k, v in overrides.items():
        if v is not None:
            values[k] = v
    if "batch_size" in overrides and overrides["batch_size"] == "full":
        values["batch_size"] = None
    return TrainConfig(**values)


@dataclass
class TrainResult:
    """A trained detector and what is known about how it was made."""

    module: nn.Module
    arch: str
    arch_config: dict[str, Any]
    input_dim: int
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    threshold: float
    threshold_source: str
    config: TrainConfig
    optimizer_hparams: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    data: dict[str, Any]
    recipe: dict[str, Any]
    initial_state: dict[str, torch.Tensor]
    frames: dict[str, Any] | None = None  # frame models: {"chunk_frames", "scoring"} (None for vector models)


# --------------------------------------------------------------------------------------------------- losses
def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """The study's focal loss: alpha * (1 - p_t)^gamma * BCE, with the same alpha for BOTH classes, mean-reduced."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    probs = torch.sigmoid(logits)
    pt = torch.where(targets == 1, probs, 1 - probs)
    return (alpha * (1 - pt) ** gamma * bce).mean()


def make_loss(name: str, alpha: float = 0.25, gamma: float = 2.0):
    """`loss_fn(logits [N], targets [N] float 0/1 spoof) -> mean loss` for `bce` or `focal`."""
    if name == "bce":
        return lambda z, t: F.binary_cross_entropy_with_logits(z, t)
    if name == "focal":
        return lambda z, t: focal_loss(z, t, alpha, gamma)
    raise UsageError(f"unknown loss {name!r}", "choose bce or focal")


# --------------------------------------------------------------------------------------------------- checks
def check_trainable(fs: FeatureSet, role: str = "training", need_both: bool = True) -> None:
    """Refuse data a detector cannot be trained or validated on, with a message that says how to fix it."""
    where = fs.source or f"{role} features"
    if len(fs) == 0:
        raise InputError(where, f"the {role} store has no rows", "featurize some audio first (dfdet featurize)")
    if fs.X.ndim != 2 or fs.X.shape[1] == 0:
        raise InputError(where, f"the {role} features have shape {fs.X.shape}", "expected a non-empty [N, D] matrix")
    bad = ~np.isfinite(fs.X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        ids = ", ".join(fs.utt_id[i] for i in rows[:3])
        raise InputError(
            where,
            f"{len(rows)} {role} row(s) have NaN or infinite features (e.g. {ids})",
            "re-featurize those files or drop them (dfdet featurize --skip-bad lists failures)",
        )
    unl = fs.y == -1
    if unl.any():
        ids = ", ".join(fs.utt_id[i] for i in np.flatnonzero(unl)[:3])
        raise InputError(
            where,
            f"{int(unl.sum())} of {len(fs)} {role} row(s) are unlabelled (e.g. {ids})",
            "featurize with --labels PROTOCOL so every row is bona fide or spoof",
        )
    other = ~np.isin(fs.y, (0, 1))
    if other.any():
        raise InputError(where, f"labels outside 0/1 in the {role} store", "labels must be 0 bona fide / 1 spoof")
    if need_both and len(np.unique(fs.y)) < 2:
        only = "spoof" if fs.y[0] == 1 else "bona fide"
        raise InputError(
            where, f"the {role} rows are all {only} ({len(fs)} rows)", "a detector needs both bona fide and spoof rows"
        )


def check_compatible(train: FeatureSet, other: FeatureSet, role: str) -> None:
    """`other` (validation/test) must have the training features: same dimension and, when known, same recipe."""
    where = other.source or f"{role} features"
    if other.dim != train.dim:
        raise InputError(
            where,
            f"{role} features have {other.dim} dimensions but the training features have {train.dim}",
            "featurize both with the same recipe",
        )
    if train.recipe_hash and other.recipe_hash and train.recipe_hash != other.recipe_hash:
        raise InputError(
            where,
            f"{role} features were made with recipe {other.recipe} (hash {other.recipe_hash}) but the training "
            f"features with {train.recipe} (hash {train.recipe_hash})",
            "featurize both with the same recipe and settings",
        )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda but no CUDA device is available", "use --device cpu or --device auto")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {name!r}", "use cpu, cuda or auto")
    return torch.device(name)


# --------------------------------------------------------------------------------------------------- metrics
def _eval_metrics(logits: np.ndarray, y: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """AUC and EER on bona-fide-positive scores (= -logit), accuracy at logit 0 and (if given) at `threshold`."""
    from dfdet.metrics import eer, roc_auc

    scores = -np.asarray(logits, dtype=np.float64)
    out: dict[str, float] = {}
    if len(np.unique(y)) == 2 and np.isfinite(scores).all():
        out["auc"] = roc_auc(scores, y)
        out["eer"], out["eer_threshold"] = eer(scores, y)
    out["acc_at_0.5"] = float(((scores < 0).astype(int) == y).mean())
    if threshold is not None:
        out["acc"] = float(((scores < threshold).astype(int) == y).mean())
        out["threshold"] = float(threshold)
    return out


def validation_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The EER operating point of validation scores (dfdet.metrics.eer, the official ASVspoof rule).

    The official DET rejects every score <= its EER threshold; the returned value is nudged up by one float32 step
    (scores come from float32 logits) so that dfdet's rule (score >= threshold -> bona fide) reproduces that cut.
    """
    from dfdet.metrics import eer

    _, thr = eer(scores, y)
    up = np.nextafter(np.float32(thr), np.float32(np.inf))
    return float(up if up > thr else np.nextafter(up, np.float32(np.inf)))


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, X: torch.Tensor, batch_size: int | None = 128) -> bool:
    """Re-estimate BatchNorm running statistics on X: BN layers in train mode cumulating (momentum=None), dropout
    off, one pass. Returns False (and does nothing) when the module has no BatchNorm."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    was = module.training
    module.eval()
    saved = []
    for m in bns:
        saved.append(m.momentum)
        m.reset_running_stats()
        m.momentum = None
        m.train()
    bs = len(X) if not batch_size else int(batch_size)
    for i in range(0, len(X), bs):
        module(X[i : i + bs])
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    module.train(was)
    return True


# --------------------------------------------------------------------------------------------------- tracking
class GradTracker:
    """Per-step loss and gradient norms kept as tensors; flushed to plain numbers once per epoch."""

    def __init__(self, module: nn.Module) -> None:
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        layers: list[str] = []
        col = []
        for n, _ in named:
            layer = n.rsplit(".", 1)[0] if "." in n else n
            if layer not in layers:
                layers.append(layer)
            col.append(layers.index(layer))
        self.layers = layers
        onehot = torch.zeros(len(named), len(layers), dtype=torch.float64)
        onehot[torch.arange(len(named)), torch.tensor(col)] = 1.0
        self.onehot = onehot
        self.norms: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []

    def record(self, loss: torch.Tensor) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros((), device=p.device) for p in self.params]
        self.norms.append(torch.stack(torch._foreach_norm(grads)))
        self.losses.append(loss.detach())

    def flush(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(loss [S], global grad norm [S], per-layer grad norm [S, L]) for the steps since the last flush."""
        if not self.losses:
            return np.zeros(0), np.zeros(0), np.zeros((0, len(self.layers)))
        losses = torch.stack(self.losses).detach().to("cpu", torch.float64).numpy()
        if not self.norms:  # losses only (track_steps off): no norms to report
            self.losses = []
            return losses, np.full(len(losses), np.nan), np.full((len(losses), len(self.layers)), np.nan)
        per_param = torch.stack(self.norms).detach().to("cpu", torch.float64)
        sq = per_param**2
        layer = torch.sqrt(sq @ self.onehot).numpy()
        total = torch.sqrt(sq.sum(dim=1)).numpy()
        self.norms, self.losses = [], []
        return losses, total, layer


def train_step(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Any,
    xb: torch.Tensor,
    yb: torch.Tensor,
    tracker: GradTracker,
    track_steps: bool,
    bns: list[nn.Module],
    closure_needed: bool,
) -> torch.Tensor:
    """One optimisation step on a batch (SAM's second pass through a closure); returns the detached logits."""
    optimizer.zero_grad(set_to_none=True)
    out = module(xb)
    loss = loss_fn(out, yb)
    loss.backward()
    if track_steps:
        tracker.record(loss)
    else:
        tracker.losses.append(loss.detach())
    if closure_needed:

        def closure(xb=xb, yb=yb):
            optimizer.zero_grad(set_to_none=True)
            moms = [m.momentum for m in bns]
            for m in bns:  # the ascent pass must not move BN running statistics
                m.momentum = 0.0
            second = loss_fn(module(xb), yb)
            second.backward()
            for m, mom in zip(bns, moms, strict=True):
                m.momentum = mom
            return second

        optimizer.step(closure)
    else:
        optimizer.step()
    return out.detach()


def flush_steps(
    tracker: GradTracker, history: list[dict[str, Any]], epoch: int, step: int, lr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append the epoch's per-step records (loss, gradient norms, lr) to `history`; returns tracker.flush()."""
    losses, gnorm, lnorm = tracker.flush()
    first_step = step - len(losses)
    for i in range(len(losses)):
        history.append(
            {
                "type": "step",
                "epoch": epoch,
                "step": first_step + i + 1,
                "loss": float(losses[i]),
                "grad_norm": float(gnorm[i]),
                "layer_grad_norms": {name: float(lnorm[i, j]) for j, name in enumerate(tracker.layers)},
                "lr": lr,
            }
        )
    return losses, gnorm, lnorm


# --------------------------------------------------------------------------------------------------- training
def _scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a StandardScaler on training rows (what the study did); returns (X_scaled float32, mean, scale)."""
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler()
    Xs = sc.fit_transform(np.asarray(X, dtype=np.float32))
    return np.asarray(Xs, dtype=np.float32), np.asarray(sc.mean_, dtype=np.float64), np.asarray(sc.scale_, np.float64)


def _standardize(X: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return ((np.asarray(X, dtype=np.float64) - mean) / scale).astype(np.float32)


def _data_record(fs: FeatureSet, rows: int | None = None) -> dict[str, Any]:
    from dfdet.provenance import array_hash, file_hash

    rec: dict[str, Any] = {
        "source": fs.source,
        "rows": int(len(fs) if rows is None else rows),
        "bonafide": int((fs.y == 0).sum()),
        "spoof": int((fs.y == 1).sum()),
        "hash": array_hash(fs.X, fs.y),
    }
    if fs.source and Path(fs.source).is_file():
        rec["file_hash"] = file_hash(fs.source)
    return rec


def _cv(a: np.ndarray) -> float:
    m = float(np.mean(a)) if len(a) else float("nan")
    return float(np.std(a) / m) if len(a) and m else float("nan")


def _summarise(history: list[dict[str, Any]], layers: list[str], has_val: bool) -> dict[str, Any]:
    steps = [r for r in history if r["type"] == "step"]
    epochs = [r for r in history if r["type"] == "epoch"]
    gn = np.asarray([r["grad_norm"] for r in steps], dtype=float)
    out: dict[str, Any] = {
        "steps": len(steps),
        "epochs_run": len(epochs),
        "grad_norm": {
            "mean": float(gn.mean()) if len(gn) else None,
            "std": float(gn.std()) if len(gn) else None,
            "cv": _cv(gn) if len(gn) else None,
            "first": float(gn[0]) if len(gn) else None,
            "last": float(gn[-1]) if len(gn) else None,
        },
        "layer_grad_norm_mean": {
            name: float(np.mean([r["layer_grad_norms"][name] for r in steps])) for name in layers if steps
        },
        "convergence_definition": CONVERGENCE_DEFINITION,
    }
    if has_val and epochs and all("val_eer" in r for r in epochs):
        eers = np.asarray([r["val_eer"] for r in epochs])
        best = float(eers.min())
        out["epochs_to_convergence"] = int(np.flatnonzero(eers <= best + 0.005)[0]) + 1
    elif epochs:
        losses = np.asarray([r["train_loss"] for r in epochs])
        lo, first = float(losses.min()), float(losses[0])
        out["epochs_to_convergence"] = int(np.flatnonzero(losses <= lo + 0.05 * (first - lo))[0]) + 1
    return out


class EarlyStopping:
    """Epoch choice on validation: best = lowest validation EER, ties broken by validation loss; patience counts
    epochs without a strictly lower EER, so a long plateau of equal EERs ends the run."""

    def __init__(self, patience: int | None) -> None:
        self.patience = int(patience or 0)
        self.best: tuple[float, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def validate(
        self, rec: dict[str, Any], module: nn.Module, epoch: int, logits: np.ndarray, y: np.ndarray, loss: float
    ) -> None:
        """Add validation loss, AUC, EER and accuracy to the epoch record `rec`; keep the best weights so far."""
        m = _eval_metrics(logits, y)
        rec["val_loss"] = float(loss)
        rec["val_auc"], rec["val_eer"], rec["val_acc"] = m["auc"], m["eer"], m["acc_at_0.5"]
        key = (m["eer"], rec["val_loss"])
        self.bad_epochs = 0 if self.best is None or key[0] < self.best[0] else self.bad_epochs + 1
        if self.best is None or key < self.best:
            self.best, self.best_epoch = key, epoch
            if self.patience:
                self.best_state = copy.deepcopy(module.state_dict())

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.best is not None and self.bad_epochs >= self.patience

    def restore(self, module: nn.Module, last_epoch: int) -> int:
        """Load the best weights (when kept); returns the epoch whose weights the model keeps."""
        if self.best_state is None:
            return last_epoch
        module.load_state_dict(self.best_state)
        return self.best_epoch


def epoch_line(rec: dict[str, Any], epochs: int) -> str:
    """The `-v` line of one epoch record."""
    val = f" val EER {100 * rec['val_eer']:.2f} % AUC {rec['val_auc']:.4f}" if "val_eer" in rec else ""
    return f"epoch {rec['epoch']}/{epochs} loss {rec['train_loss']:.4f} acc {rec['train_acc']:.3f}{val}"


def run_summary(
    history: list[dict[str, Any]],
    tracker: GradTracker,
    cfg: TrainConfig,
    stopper: EarlyStopping,
    best_epoch: int,
    *,
    stopped_early: bool,
    recalibrated: bool,
    train_seconds: float,
    train_cpu_seconds: float,
    started: float,
    rows: int,
) -> dict[str, Any]:
    """The history summary every trainer records: gradient norms, convergence, epochs, timings."""
    summary = _summarise(history, tracker.layers, stopper.best is not None)
    if not cfg.track_steps:
        summary["grad_norm"] = None
        summary["layer_grad_norm_mean"] = {}
    summary.update(
        {
            "best_epoch": best_epoch,  # the epoch whose weights the model keeps
            "val_best_epoch": stopper.best_epoch or None,  # lowest validation EER (ties: loss), if validated
            "stopped_early": stopped_early,
            "bn_recalibrated": recalibrated,
            "train_seconds": train_seconds,  # wall time of the training passes (tracking included, validation not)
            "train_cpu_seconds": train_cpu_seconds,  # process CPU time of the same (robust on a shared machine)
            "wall_seconds": time.perf_counter() - started,
        }
    )
    samples_seen = rows * sum(1 for r in history if r["type"] == "epoch")
    summary["samples_per_second"] = samples_seen / train_seconds if train_seconds > 0 else None
    return summary


def _fit_epochs(
    cfg: TrainConfig,
    fit_fs: FeatureSet,
    X_t: torch.Tensor,
    y_t: torch.Tensor,
    Xv_t: torch.Tensor | None,
    yv: np.ndarray | None,
    yv_t: torch.Tensor | None,
    loss_fn: Any,
    hparams: dict[str, Any],
    device: Any,
    log: Any,
) -> tuple[nn.Module, list[dict[str, Any]], dict[str, Any], dict[str, torch.Tensor]]:
    """The study's training loop: epochs of (mini-)batches, gradient tracking, early stopping on validation EER."""
    from dfdet.seeding import seed_everything

    # The study seeded right before building the model: same init and the same dropout stream for the same seed.
    seed_everything(cfg.seed, with_torch=True)
    module = build_model(cfg.model, fit_fs.dim, **cfg.model_config).to(device)
    initial_state = {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}
    optimizer = build_from_hparams(cfg.optimizer, module.parameters(), hparams)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs) if cfg.scheduler == "cosine" else None
    )
    if cfg.scheduler not in ("cosine", "none"):
        raise UsageError(f"unknown scheduler {cfg.scheduler!r}", "use cosine or none")
    gen = torch.Generator().manual_seed(cfg.seed)  # shuffling has its own stream: it never shifts dropout masks
    n = len(X_t)
    bs = n if cfg.batch_size is None else min(int(cfg.batch_size), n)
    closure_needed = needs_closure(cfg.optimizer)
    adv = None
    if cfg.adversarial:
        from dfdet.perturb import adversarial_batch, parse_adversarial

        adv = parse_adversarial(cfg.adversarial)
    tracker = GradTracker(module)
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    calib = np.sort(np.random.default_rng(cfg.seed).permutation(n)[:BN_CALIBRATION_ROWS])
    calib_rows = torch.from_numpy(calib).to(device)

    history: list[dict[str, Any]] = []
    stopper = EarlyStopping(cfg.patience)
    stopped_early = False
    t_start = time.perf_counter()
    train_seconds = 0.0
    step = 0
    train_cpu_seconds = 0.0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        c0 = time.process_time()
        module.train()
        lr = float(optimizer.param_groups[0]["lr"])
        order = torch.randperm(n, generator=gen).to(device) if bs < n else None
        correct = torch.zeros((), dtype=torch.long, device=device)
        for start in range(0, n, bs):
            if order is None:
                xb, yb = X_t, y_t
            else:
                idx = order[start : start + bs]
                xb, yb = X_t[idx], y_t[idx]
            if adv is not None:
                xb, yb = adversarial_batch(module, xb, yb, adv, seed=cfg.seed + step)
            out = train_step(module, optimizer, loss_fn, xb, yb, tracker, cfg.track_steps, bns, closure_needed)
            correct += ((out > 0) == (yb > 0.5)).sum()
            step += 1
        if scheduler is not None:
            scheduler.step()
        losses, gnorm, lnorm = flush_steps(tracker, history, epoch, step, lr)
        t_train = time.perf_counter() - t0
        train_seconds += t_train
        train_cpu_seconds += time.process_time() - c0
        rec: dict[str, Any] = {
            "type": "epoch",
            "epoch": epoch,
            "train_loss": float(np.mean(losses)) if cfg.batch_size else float(losses[-1]),
            "train_acc": float(correct.item()) / n,
            "grad_norm_mean": float(np.mean(gnorm)) if cfg.track_steps else None,
            "lr": lr,
            "steps": len(losses),
        }
        if Xv_t is not None:
            if cfg.bn_recalibrate and bns:
                # Validate the model as it will be deployed (BN statistics re-estimated), on a fixed training subset.
                recalibrate_batchnorm(module, X_t[calib_rows], cfg.batch_size or None)
            vlog = predict_logits(module, Xv_t)
            stopper.validate(rec, module, epoch, vlog.cpu().numpy(), yv, loss_fn(vlog, yv_t).item())
        rec["train_seconds"] = t_train
        rec["wall_time"] = time.perf_counter() - t_start
        history.append(rec)
        if log is not None:
            log(epoch_line(rec, cfg.epochs))
        if stopper.should_stop:
            stopped_early = True
            break

    best_epoch = stopper.restore(module, history[-1]["epoch"])
    recalibrated = False
    if cfg.bn_recalibrate:
        recalibrated = recalibrate_batchnorm(module, X_t, cfg.batch_size or None)
    module.eval()

    summary = run_summary(
        history,
        tracker,
        cfg,
        stopper,
        best_epoch,
        stopped_early=stopped_early,
        recalibrated=recalibrated,
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu_seconds,
        started=t_start,
        rows=n,
    )
    return module, history, summary, initial_state


def train_model(
    train_fs: FeatureSet,
    val_fs: FeatureSet | None = None,
    config: TrainConfig | None = None,
    test_fs: FeatureSet | None = None,
    log: Any = None,
) -> TrainResult:
    """Train `config.model` on `train_fs`; validate on `val_fs` or a `config.val_split` hold-out of it.

    Validation (never test) chooses the epoch (early stopping on EER) and the decision threshold. `test_fs`, if
    given, is only scored at the end and reported in the summary. `log(text)` receives one line per epoch.
    """
    cfg = config or TrainConfig()
    if cfg.batch_size == "full":
        cfg.batch_size = None
    if cfg.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {cfg.epochs}", "e.g. --epochs 30")
    if cfg.batch_size is not None and int(cfg.batch_size) < 1:
        raise UsageError(f"--batch-size must be >= 1 or 'full', got {cfg.batch_size}", "e.g. --batch-size 128")
    loss_fn = make_loss(cfg.loss, cfg.focal_alpha, cfg.focal_gamma)
    hparams = resolve_hparams(cfg.optimizer, cfg.protocol, **cfg.optimizer_overrides)
    device = resolve_device(cfg.device)
    from dfdet.caveats import training_domain
    from dfdet.splitting import train_val_indices

    if model_input(cfg.model) != "vector":
        raise UsageError(
            f"model {cfg.model!r} reads frame chunks, not feature vectors",
            "train it on a frame store (dfdet featurize --recipe lfcc; dfdet.frametraining.train_frames)",
        )
    check_trainable(train_fs, "training")
    if val_fs is not None:
        check_trainable(val_fs, "validation")
        check_compatible(train_fs, val_fs, "validation")
    if test_fs is not None:
        check_trainable(test_fs, "test")
        check_compatible(train_fs, test_fs, "test")

    split_mode = "file" if val_fs is not None else "none"
    fit_fs = train_fs
    if val_fs is None and cfg.val_split and cfg.val_split > 0:
        tr_idx, va_idx, split_mode = train_val_indices(train_fs.y, float(cfg.val_split), cfg.seed, train_fs.speaker)
        fit_fs, val_fs = train_fs.subset(tr_idx), train_fs.subset(va_idx)
        for part, role in ((fit_fs, "training"), (val_fs, "validation")):
            if len(np.unique(part.y)) < 2:
                raise DfdetError(
                    f"the {role} part of --val-split {cfg.val_split} has only one class",
                    "use more data, a different --val-split, or pass --val FILE",
                )

    Xs, mean, scale = _scaler(fit_fs.X)
    y_np = fit_fs.y.astype(np.int64)
    X_t = torch.from_numpy(Xs).to(device)
    y_t = torch.from_numpy(y_np.astype(np.float32)).to(device)
    Xv_t = yv = yv_t = None
    if val_fs is not None:
        Xv_t = torch.from_numpy(_standardize(val_fs.X, mean, scale)).to(device)
        yv = val_fs.y.astype(np.int64)
        yv_t = torch.from_numpy(yv.astype(np.float32)).to(device)

    if model_solver(cfg.model) == "epochs":
        module, history, summary, initial_state = _fit_epochs(
            cfg, fit_fs, X_t, y_t, Xv_t, yv, yv_t, loss_fn, hparams, device, log
        )
    else:  # a convex model fitted to convergence by a library solver (dfdet.convex): no epochs, no gradients
        from dfdet.convex import fit_convex

        module, history, summary, hparams = fit_convex(cfg, Xs, y_np, log)
        initial_state = {}
        module.to(device)
    final_train = _eval_metrics(predict_logits(module, X_t).cpu().numpy(), y_np)
    summary["train"] = final_train
    if Xv_t is not None:
        vscores = -predict_logits(module, Xv_t).cpu().numpy().astype(np.float64)
        threshold = validation_threshold(vscores, yv)
        threshold_source = "validation EER operating point"
        summary["val"] = _eval_metrics(-vscores, yv, threshold)
    else:
        threshold = 0.0
        threshold_source = "fixed: score 0 (p_spoof 0.5), no validation data"
    if test_fs is not None:
        Xte = torch.from_numpy(_standardize(test_fs.X, mean, scale)).to(device)
        summary["test"] = _eval_metrics(
            predict_logits(module, Xte).cpu().numpy(), test_fs.y.astype(np.int64), threshold
        )
    summary["threshold"] = threshold
    summary["threshold_source"] = threshold_source

    data: dict[str, Any] = {"train": _data_record(fit_fs), "split": split_mode}  # hash: of the rows trained on
    data["training_domain"] = training_domain(train_fs)  # `score` and the app name it (e.g. a synthetic corpus)
    if val_fs is not None:
        data["val"] = _data_record(val_fs)
        if split_mode != "file":
            data["val"]["source"] = f"{train_fs.source} ({split_mode} {cfg.val_split} hold-out)"
            data["val"].pop("file_hash", None)
            data["train"]["source"] = f"{train_fs.source} (rest after the hold-out)"
    if test_fs is not None:
        data["test"] = _data_record(test_fs)
    recipe = {
        "name": train_fs.recipe,
        "hash": train_fs.recipe_hash,
        "config": train_fs.recipe_config,
        "feature_names": list(train_fs.feature_names),
        "groups": [[g.name, int(g.start), int(g.stop)] for g in train_fs.groups],
    }
    module.to("cpu")
    return TrainResult(
        module=module,
        arch=cfg.model,
        arch_config=dict(cfg.model_config),
        input_dim=fit_fs.dim,
        scaler_mean=mean,
        scaler_scale=scale,
        threshold=float(threshold),
        threshold_source=threshold_source,
        config=cfg,
        optimizer_hparams=hparams,
        history=history,
        summary=plain(summary, nan_to_none=False),
        data=data,
        recipe=recipe,
        initial_state=initial_state,
    )


def history_path_for(model_path: str | Path) -> Path:
    """`MODEL.pt` -> `MODEL.history.jsonl` beside it."""
    p = Path(model_path)
    return p.with_name(p.stem + ".history.jsonl") if p.suffix else p.with_name(p.name + ".history.jsonl")


def write_history(path: str | Path, history: list[dict[str, Any]]) -> None:
    """One JSON object per line, each with "type": "step" or "epoch" (atomic)."""
    from dfdet.atomic import atomic_open

    with atomic_open(path, "w") as fh:
        for rec in history:
            fh.write(json.dumps(plain(rec, nan_to_none=False), allow_nan=True, separators=(",", ":")) + "\n")


def read_history(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
