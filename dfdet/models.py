"""Model architectures (a registry): every model maps standardised inputs to SPOOF logits [N].

Two input kinds (`model_input(name)`): `vector` models read feature vectors [N, D] (`cnn` is the study's ImprovedCNN
layer for layer, same module names, so its published state_dicts load; `linear` and `mlp` are the baselines that tell
whether the convolution earns its keep); `frames` models read fixed-length chunks of frames [N, T, D] from a frame
store (`lcnn`, the ASVspoof LFCC-LCNN baseline's max-feature-map CNN). The input dimension always comes from the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dfdet.errors import UsageError

MODELS: dict[str, Callable[..., nn.Module]] = {}
MODEL_HELP: dict[str, str] = {}
MODEL_INPUT: dict[str, str] = {}  # "vector" ([N, D] rows) or "frames" ([N, T, D] chunks of a frame store)
INPUT_KINDS = ("vector", "frames")
# How a model is fitted: "epochs" (the study's loop: an optimizer, batches, early stopping), "convex" (a library
# solver to convergence, dfdet.convex) or "em" (expectation-maximisation, dfdet.gmm); --optimizer applies to epochs.
MODEL_SOLVER: dict[str, str] = {}
SOLVERS = ("epochs", "convex", "em")
# logreg's fit settings: C=0.1 is scikit-learn's default 1.0 made ten times stronger for 120 correlated statistics
# from ~1,000 clips; chosen before any cross-validation and not tuned on it (MODEL_CARD of models/default: 0.03-0.3).
LOGREG_DEFAULTS: dict[str, Any] = {"C": 0.1, "class_weight": "balanced"}
# gmm's fit settings: the ASVspoof 2019 baseline uses 512 components on every training frame; 64 components on at
# most 100,000 frames per class (seeded draw) keep a fit near a minute on one CPU core.
GMM_DEFAULTS: dict[str, Any] = {"components": 64, "max_frames": 100_000, "max_iter": 100, "reg_covar": 1e-3}


def register_model(
    name: str, help: str = "", input: str = "vector", solver: str = "epochs"
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    if input not in INPUT_KINDS:
        raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {input!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = factory
        MODEL_HELP[name] = help
        MODEL_INPUT[name] = input
        MODEL_SOLVER[name] = solver
        return factory

    return deco


class ImprovedCNN(nn.Module):
    """The study's 1-D CNN over the feature vector seen as a one-channel signal (its exact layers and order)."""

    def __init__(self, input_dim: int = 154) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        self.conv_layers = nn.Sequential(
            nn.Conv1d(1, 64, kernel_size=3, padding=1),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Dropout(0.3),
            nn.Conv1d(64, 128, kernel_size=3, padding=1),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Dropout(0.3),
            nn.Conv1d(128, 256, kernel_size=3, padding=1),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
        )
        self.classifier = nn.Sequential(
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)  # [N, D] -> [N, 1, D]
        x = self.conv_layers(x)
        x = x.view(x.size(0), -1)
        return self.classifier(x).squeeze(-1)


class LinearModel(nn.Module):
    """Logistic regression on the standardised features (the issue measured EER 0 % with it on the study split)."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        self.fc = nn.Linear(self.input_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).squeeze(-1)


class MLP(nn.Module):
    """A plain fully-connected baseline: Linear-ReLU-Dropout blocks, then one spoof logit."""

    def __init__(self, input_dim: int, hidden: tuple[int, ...] | list[int] = (256, 128), dropout: float = 0.3) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        layers: list[nn.Module] = []
        width = self.input_dim
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(h)
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@register_model("cnn", "the study's ImprovedCNN (3 conv blocks with BatchNorm, dropout, 2-layer head)")
def _cnn(input_dim: int) -> nn.Module:
    return ImprovedCNN(input_dim)


@register_model("linear", "logistic regression on the standardised features")
def _linear(input_dim: int) -> nn.Module:
    return LinearModel(input_dim)


@register_model(
    "logreg",
    "L2-regularised logistic regression (inverse strength C, class-balanced), fitted to convergence by "
    "scikit-learn's lbfgs: the frame-statistics baseline",
    solver="convex",
)
def _logreg(
    input_dim: int, C: float = LOGREG_DEFAULTS["C"], class_weight: str | None = LOGREG_DEFAULTS["class_weight"]
) -> nn.Module:
    if not float(C) > 0:
        raise TypeError(f"C must be > 0, got {C}")
    if class_weight not in ("balanced", None):
        raise TypeError(f"class_weight must be 'balanced' or null, got {class_weight!r}")
    return LinearModel(input_dim)


@register_model("mlp", "fully-connected baseline (hidden 256-128, dropout 0.3)")
def _mlp(input_dim: int, hidden: list[int] | tuple[int, ...] = (256, 128), dropout: float = 0.3) -> nn.Module:
    return MLP(input_dim, hidden=hidden, dropout=dropout)


class MaxFeatureMap(nn.Module):
    """Max-feature-map (Wu et al. 2018, LightCNN): split the channels in two halves, keep the elementwise max."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.maximum(a, b)


# The LFCC-LCNN baseline's conv stack (Wang & Yamagishi, project-NN-Pytorch-scripts, ASVspoof 2019/2021 LA):
# (kernel, output channels after MFM, then max-pool 2x2 and/or BatchNorm). Widths are scaled by `width`.
_LCNN_LAYERS: tuple[tuple[int, int, bool, bool], ...] = (
    # kernel, MFM channels, pool after, BN after
    (5, 32, True, False),
    (1, 32, False, True),
    (3, 48, True, True),
    (1, 48, False, True),
    (3, 64, True, False),
    (1, 64, False, True),
    (3, 32, False, True),
    (1, 32, False, True),
    (3, 32, True, False),
)


class LCNN(nn.Module):
    """Light CNN over frames with statistics pooling: [N, T, D] standardised frames -> spoof logits [N].

    The conv stack is the LFCC-LCNN baseline's (9 conv layers with max-feature-map, four 2x2 max-pools, BatchNorm
    without affine parameters); its channel widths are scaled by `width` (0.5 by default, about 60k parameters, so it
    trains on a laptop CPU). The reference's BLSTM + average over time is replaced by statistics pooling (mean and
    standard deviation over time of every channel x frequency cell), then dropout, a max-feature-map hidden layer and
    one logit. Any T >= 16 works; training and scoring use fixed-length chunks.
    """

    def __init__(self, input_dim: int, width: float = 0.5, hidden: int = 64, dropout: float = 0.5) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        if self.input_dim < 16:
            raise ValueError(f"LCNN needs at least 16 values per frame (four 2x2 poolings), got {self.input_dim}")
        layers: list[nn.Module] = []
        cin, freq = 1, self.input_dim
        for k, c, pool, bn in _LCNN_LAYERS:
            cout = max(2, int(round(c * float(width))))
            layers += [nn.Conv2d(cin, 2 * cout, k, padding=k // 2), MaxFeatureMap()]
            if pool:
                layers.append(nn.MaxPool2d(2, 2))
                freq //= 2
            if bn:
                layers.append(nn.BatchNorm2d(cout, affine=False))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pooled_dim = 2 * cin * freq
        self.dropout = nn.Dropout(float(dropout))
        self.fc1 = nn.Linear(self.pooled_dim, 2 * int(hidden))
        self.mfm = MaxFeatureMap()
        self.fc2 = nn.Linear(int(hidden), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.unsqueeze(1))  # [N, 1, T, D] -> [N, C, T', F']
        h = h.permute(0, 2, 1, 3).flatten(2)  # [N, T', C * F']
        stats = torch.cat([h.mean(dim=1), h.std(dim=1, unbiased=False)], dim=1)
        return self.fc2(self.mfm(self.fc1(self.dropout(stats)))).squeeze(-1)


@register_model(
    "lcnn", "LFCC-LCNN: max-feature-map CNN over frame chunks, statistics pooling (needs a frame store)", "frames"
)
def _lcnn(input_dim: int, width: float = 0.5, hidden: int = 64, dropout: float = 0.5) -> nn.Module:
    return LCNN(input_dim, width=width, hidden=hidden, dropout=dropout)


class GMMPair(nn.Module):
    """Two diagonal-covariance Gaussian mixtures over standardised frames, bona fide and spoof: the ASVspoof LFCC-GMM
    baseline. A chunk's spoof logit is the mean over its frames of log p(x | spoof) - log p(x | bona fide).

    Why a module: the fitted mixtures (dfdet.gmm, EM) are copied into parameters (log weights, means, log
    precisions), so score, calibrate, ensemble, explain and attack read a GMM like any other frame model."""

    def __init__(self, input_dim: int, components: int = 64) -> None:
        super().__init__()
        k, d = int(components), int(input_dim)
        if k < 1:
            raise ValueError(f"components must be >= 1, got {k}")
        self.components = k
        self.log_weight = nn.Parameter(torch.full((2, k), -math.log(k)))
        self.mean = nn.Parameter(torch.zeros(2, k, d))
        self.log_precision = nn.Parameter(torch.zeros(2, k, d))

    def log_likelihood(self, x: torch.Tensor, c: int) -> torch.Tensor:
        """log p(x | class c) of frames x [..., D] -> [...] (expanded squares: memory [..., K], not [..., K, D])."""
        prec = self.log_precision[c].exp()  # [K, D]
        mp = self.mean[c] * prec
        quad = (x * x) @ prec.T - 2.0 * (x @ mp.T) + (self.mean[c] * mp).sum(-1)
        const = 0.5 * self.log_precision[c].sum(-1) - 0.5 * x.shape[-1] * math.log(2.0 * math.pi)
        return torch.logsumexp(torch.log_softmax(self.log_weight[c], -1) + const - 0.5 * quad, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.log_likelihood(x, 1) - self.log_likelihood(x, 0)).mean(dim=-1)


@register_model(
    "gmm",
    "LFCC-GMM: bona fide and spoof diagonal Gaussian mixtures over frames, fitted by EM (the ASVspoof baseline; "
    "needs a frame store)",
    "frames",
    solver="em",
)
def _gmm(input_dim: int, components: int = GMM_DEFAULTS["components"], **_fit: Any) -> nn.Module:
    return GMMPair(input_dim, components=components)


@torch.no_grad()
def predict_logits(module: nn.Module, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Eval-mode spoof logits of standardised inputs, in chunks."""
    was = module.training
    module.eval()
    outs = [module(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    module.train(was)
    return torch.cat(outs) if outs else torch.zeros(0, device=X.device)


def model_names() -> list[str]:
    return sorted(MODELS)


def model_input(name: str) -> str:
    """ "vector" or "frames": what the architecture reads (frame models need a frame store)."""
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}", f"choose one of: {', '.join(model_names())}")
    return MODEL_INPUT[name]


def model_solver(name: str) -> str:
    """ "epochs" or "convex": how `dfdet train` fits the architecture."""
    model_input(name)
    return MODEL_SOLVER[name]


def build_model(name: str, input_dim: int, **cfg: Any) -> nn.Module:
    """Instantiate architecture `name` for `input_dim` features; its forward returns spoof logits of shape [N]."""
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}", f"choose one of: {', '.join(model_names())}")
    if int(input_dim) < 1:
        raise UsageError(f"input dimension must be positive, got {input_dim}", "pass features with at least 1 column")
    try:
        return MODELS[name](int(input_dim), **cfg)
    except TypeError as e:
        raise UsageError(f"bad configuration for model {name!r}: {e}", "check the model options") from e
