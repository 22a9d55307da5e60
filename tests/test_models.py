"""Model registry: the study's ImprovedCNN layer for layer, baselines, logits of shape [N]."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfdet.errors import UsageError
from dfdet.models import ImprovedCNN, build_model, model_names


def test_registry_lists_the_models_and_cli_choices_match():
    from dfdet.cli.train import MODEL_CHOICES

    assert model_names() == ["cnn", "gmm", "lcnn", "linear", "logreg", "mlp"]
    assert sorted(MODEL_CHOICES) == model_names()


@pytest.mark.parametrize("name", ["cnn", "linear", "mlp"])
@pytest.mark.parametrize("dim", [17, 154])
def test_forward_returns_one_spoof_logit_per_row(name, dim):
    torch.manual_seed(0)
    m = build_model(name, dim).eval()
    out = m(torch.randn(5, dim))
    assert out.shape == (5,)
    assert torch.isfinite(out).all()


def test_cnn_is_the_studys_improvedcnn_layer_for_layer():
    m = build_model("cnn", 154)
    assert isinstance(m, ImprovedCNN)
    kinds = [type(x).__name__ for x in m.conv_layers] + [type(x).__name__ for x in m.classifier]
    assert kinds == [
        "Conv1d", "BatchNorm1d", "ReLU", "MaxPool1d", "Dropout",
        "Conv1d", "BatchNorm1d", "ReLU", "MaxPool1d", "Dropout",
        "Conv1d", "BatchNorm1d", "ReLU", "AdaptiveAvgPool1d",
        "Linear", "ReLU", "Dropout", "Linear",
    ]  # fmt: skip
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items() if k.endswith("weight")}
    assert shapes == {
        "conv_layers.0.weight": (64, 1, 3),
        "conv_layers.1.weight": (64,),
        "conv_layers.5.weight": (128, 64, 3),
        "conv_layers.6.weight": (128,),
        "conv_layers.10.weight": (256, 128, 3),
        "conv_layers.11.weight": (256,),
        "classifier.0.weight": (128, 256),
        "classifier.3.weight": (1, 128),
    }
    # 256 + 128 + 24704 + 256 + 98560 + 512 + 32896 + 129 trainable parameters (hand count of the layers above).
    assert sum(p.numel() for p in m.parameters()) == 157441
    drops = [x.p for x in m.modules() if isinstance(x, nn.Dropout)]
    assert drops == [0.3, 0.3, 0.5]
    conv = m.conv_layers[0]
    assert conv.kernel_size == (3,) and conv.padding == (1,)


def test_input_dimension_comes_from_the_data():
    assert build_model("linear", 7).fc.in_features == 7
    assert build_model("mlp", 9).net[0].in_features == 9
    assert build_model("cnn", 40).input_dim == 40


def test_unknown_model_and_bad_config_are_usage_errors():
    with pytest.raises(UsageError, match="unknown model"):
        build_model("resnet", 10)
    with pytest.raises(UsageError, match="bad configuration"):
        build_model("linear", 10, hidden=[3])
    with pytest.raises(UsageError):
        build_model("cnn", 0)


def test_mlp_config_is_honoured():
    m = build_model("mlp", 6, hidden=[5], dropout=0.1)
    linears = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert [(x.in_features, x.out_features) for x in linears] == [(6, 5), (5, 1)]
