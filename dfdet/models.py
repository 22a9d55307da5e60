"""Model architectures (a registry): every model maps standardised feature vectors [N, D] to SPOOF logits [N].

`cnn` is the study's ImprovedCNN layer for layer (same module names, so its published state_dicts load); `linear`
and `mlp` are the baselines that tell whether the convolution earns its keep. The input dimension always comes from
the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dfdet.errors import UsageError

MODELS: dict[str, Callable[..., nn.Module]] = {}
MODEL_HELP: dict[str, str] = {}


def register_model(name: str, help: str = "") -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = factory
        MODEL_HELP[name] = help
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


@register_model("mlp", "fully-connected baseline (hidden 256-128, dropout 0.3)")
def _mlp(input_dim: int, hidden: list[int] | tuple[int, ...] = (256, 128), dropout: float = 0.3) -> nn.Module:
    return MLP(input_dim, hidden=hidden, dropout=dropout)


def model_names() -> list[str]:
    return sorted(MODELS)


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
