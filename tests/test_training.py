"""Training: determinism, every optimizer/model/loss path, history, early stopping, BN repair, bad inputs."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.optimizers import SAM, build_optimizer, optimizer_names, resolve_hparams
from dfdet.store import FeatureSet
from dfdet.training import (
    focal_loss,
    make_config,
    read_history,
    train_model,
    write_history,
)


def make_fs(n=160, d=12, seed=0, sep=1.5, speakers=None, source="mem") -> FeatureSet:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.int8)
    X = rng.standard_normal((n, d)) * 3.0 + 10.0
    X[:, :3] += sep * y[:, None] * 3.0  # separable on three columns, scale and offset for the scaler to undo
    return FeatureSet(
        X=X.astype(np.float32),
        y=y,
        utt_id=[f"u{i:04d}" for i in range(n)],
        feature_names=[f"f{i}" for i in range(d)],
        groups=[],
        speaker=speakers or [],
        source=source,
    )


def cfg(**kw):
    base = {"model": "mlp", "epochs": 2, "batch_size": 32}
    base.update(kw)
    return make_config(kw.pop("protocol", "default") if "protocol" in kw else "default", **base)


def _bytes(module) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v for k, v in module.state_dict().items()}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("model,optimizer", [("cnn", "adamw"), ("mlp", "sam")])
def test_same_seed_same_data_gives_identical_weights(model, optimizer):
    fs = make_fs(64, 8)
    a = train_model(fs, config=cfg(model=model, optimizer=optimizer))
    b = train_model(fs, config=cfg(model=model, optimizer=optimizer))
    assert _bytes(a.module) == _bytes(b.module)
    assert a.threshold == b.threshold
    c = train_model(fs, config=cfg(model=model, optimizer=optimizer, seed=7))
    assert _bytes(a.module) != _bytes(c.module)


def test_optimizer_registry_matches_cli_choices():
    from dfdet.cli.train import OPTIMIZER_CHOICES

    assert sorted(OPTIMIZER_CHOICES) == optimizer_names()


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop", "sam"])
def test_each_optimizer_learns_a_separable_problem(optimizer):
    fs = make_fs(200, 8, sep=2.0)
    r = train_model(fs, config=cfg(optimizer=optimizer, epochs=4))
    assert r.summary["val"]["auc"] > 0.95
    assert math.isfinite(r.summary["grad_norm"]["mean"])
    assert r.optimizer_hparams["lr"] > 0


@pytest.mark.parametrize("model", ["cnn", "linear", "mlp"])
@pytest.mark.parametrize("loss", ["bce", "focal"])
def test_each_model_and_loss_trains(model, loss):
    fs = make_fs(120, 9, sep=4.0)
    r = train_model(
        fs, config=cfg(model=model, loss=loss, epochs=3, optimizer="adam", optimizer_overrides={"lr": 0.02})
    )
    epochs = [h for h in r.history if h["type"] == "epoch"]
    assert len(epochs) == 3 and all(math.isfinite(h["train_loss"]) for h in epochs)
    assert r.summary["val"]["auc"] > 0.8
    assert r.config.loss == loss


def test_focal_loss_is_the_studys_formula():
    z = torch.tensor([0.0, 2.0, -1.0])
    t = torch.tensor([1.0, 0.0, 0.0])
    p = [0.5, 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))]
    pt = [p[0], 1 - p[1], 1 - p[2]]
    ce = [-math.log(pt[i]) for i in range(3)]
    expected = sum(0.25 * (1 - pt[i]) ** 2 * ce[i] for i in range(3)) / 3  # alpha on both classes
    assert focal_loss(z, t).item() == pytest.approx(expected, rel=1e-6)


def test_sam_step_matches_the_paper_on_a_quadratic():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = build_optimizer("sam", [w], lr=0.1, momentum=0.0, weight_decay=0.0, rho=0.05)
    assert isinstance(opt, SAM)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (w**2).sum()
        loss.backward()
        return loss

    closure()
    g = torch.tensor([1.0, 2.0])
    e = 0.05 * g / g.norm()
    opt.step(closure)
    expected = torch.tensor([1.0, 2.0]) - 0.1 * (torch.tensor([1.0, 2.0]) + e)  # gradient of 0.5|w|^2 at w + e
    assert torch.allclose(w.detach(), expected, atol=1e-7)
    with pytest.raises(UsageError):
        opt.step()


def test_protocol_presets_and_study_hyperparameters():
    s = make_config("seed")
    assert (s.batch_size, s.loss, s.epochs, s.patience, s.bn_recalibrate, s.val_split) == (
        None,
        "focal",
        50,
        None,
        False,
        0.0,
    )
    assert resolve_hparams("sgd", "seed") == {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}
    for name in ("adam", "adamw"):
        h = resolve_hparams(name, "seed")
        assert (h["lr"], h["weight_decay"], h["betas"]) == (1e-3, 0.01, [0.9, 0.999])
    h = resolve_hparams("rmsprop", "seed")
    assert (h["lr"], h["weight_decay"], h["alpha"]) == (1e-3, 0.01, 0.99)
    d = make_config("default")
    assert d.batch_size == 128 and d.loss == "bce" and d.val_split == 0.2 and d.bn_recalibrate
    assert make_config("seed", epochs=3, batch_size="full").epochs == 3
    h = resolve_hparams("sam", "default", sam_base="adam", lr=0.01, rho=0.1)
    assert (h["base"], h["lr"], h["rho"]) == ("adam", 0.01, 0.1)
    with pytest.raises(UsageError):
        resolve_hparams("sam", sam_base="sam")
    with pytest.raises(UsageError):
        resolve_hparams("adam", lr=0)


def test_history_contents_and_jsonl_round_trip(tmp_path):
    fs = make_fs(100, 6)
    r = train_model(fs, config=cfg(model="cnn", epochs=3, batch_size=16, optimizer="sgd"))
    steps = [h for h in r.history if h["type"] == "step"]
    epochs = [h for h in r.history if h["type"] == "epoch"]
    assert len(epochs) == 3
    assert len(steps) == 3 * math.ceil(80 / 16)  # 80 training rows after the 20 % hold-out
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))
    layers = {"conv_layers.0", "conv_layers.1", "conv_layers.5", "conv_layers.6", "conv_layers.10", "conv_layers.11",
              "classifier.0", "classifier.3"}  # fmt: skip
    for s in steps:
        assert set(s["layer_grad_norms"]) == layers
        total = math.sqrt(sum(v**2 for v in s["layer_grad_norms"].values()))
        assert s["grad_norm"] == pytest.approx(total, rel=1e-6)
        assert s["loss"] > 0 and s["lr"] > 0
    for e in epochs:
        for key in ("train_loss", "train_acc", "val_auc", "val_eer", "val_acc", "val_loss", "lr", "wall_time"):
            assert key in e
    assert epochs[0]["lr"] > epochs[-1]["lr"]  # cosine schedule
    gn = np.array([s["grad_norm"] for s in steps])
    summ = r.summary
    assert summ["grad_norm"]["mean"] == pytest.approx(gn.mean())
    assert summ["grad_norm"]["cv"] == pytest.approx(gn.std() / gn.mean())
    eers = [e["val_eer"] for e in epochs]
    assert summ["epochs_to_convergence"] == next(i + 1 for i, v in enumerate(eers) if v <= min(eers) + 0.005)
    assert "within 0.5 percentage points" in summ["convergence_definition"]
    p = tmp_path / "h.jsonl"
    write_history(p, r.history)
    lines = p.read_text().splitlines()
    assert all(json.loads(line)["type"] in ("step", "epoch") for line in lines)
    assert read_history(p) == json.loads(json.dumps(r.history))


def test_early_stopping_restores_the_best_epoch():
    fs = make_fs(80, 5)
    # A learning rate this small leaves validation EER unchanged: epoch 1 stays best and training stops after patience.
    r = train_model(fs, config=cfg(epochs=20, patience=2, optimizer="sgd", optimizer_overrides={"lr": 1e-12}))
    assert r.summary["stopped_early"] and r.summary["best_epoch"] == 1 and r.summary["epochs_run"] == 3


def test_batchnorm_is_recalibrated_on_training_inputs():
    fs = make_fs(64, 10)
    r = train_model(fs, config=cfg(model="cnn", batch_size="full", val_split=0.0, epochs=2))
    assert r.summary["bn_recalibrated"]
    conv, bn = r.module.conv_layers[0], r.module.conv_layers[1]
    Xs = torch.from_numpy(((fs.X - r.scaler_mean) / r.scaler_scale).astype(np.float32))
    with torch.no_grad():
        z = conv(Xs.unsqueeze(1))
    torch.testing.assert_close(bn.running_mean, z.mean(dim=(0, 2)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, z.var(dim=(0, 2)), rtol=1e-3, atol=1e-5)  # unbiased, as BN keeps it
    off = train_model(fs, config=cfg(model="cnn", batch_size="full", val_split=0.0, epochs=2, bn_recalibrate=False))
    assert not off.summary["bn_recalibrated"]
    assert not torch.allclose(off.module.conv_layers[1].running_mean, z.mean(dim=(0, 2)))


def test_scaler_is_fitted_on_training_rows_only():
    fs = make_fs(100, 4)
    val = make_fs(40, 4, seed=1)
    val.X = val.X + 100.0
    r = train_model(fs, val, cfg(epochs=1))
    np.testing.assert_allclose(r.scaler_mean, fs.X.astype(np.float64).mean(axis=0), rtol=1e-5)
    assert r.data["split"] == "file" and r.data["val"]["rows"] == 40


def test_threshold_comes_from_validation_and_test_is_never_used():
    fs = make_fs(120, 6, sep=3.0)
    val = make_fs(60, 6, seed=5, sep=3.0)
    test_a = make_fs(50, 6, seed=8)
    test_b = make_fs(50, 6, seed=9, sep=0.0)
    a = train_model(fs, val, cfg(epochs=3), test_fs=test_a)
    b = train_model(fs, val, cfg(epochs=3), test_fs=test_b)
    assert _bytes(a.module) == _bytes(b.module) and a.threshold == b.threshold
    assert a.summary["test"] != b.summary["test"]
    # Perfectly separated validation scores: the threshold lies strictly between the two classes' scores.
    from dfdet.training import predict_logits

    Z = torch.from_numpy(((val.X - a.scaler_mean) / a.scaler_scale).astype(np.float32))
    s = -predict_logits(a.module, Z).numpy()
    if s[val.y == 0].min() > s[val.y == 1].max():
        assert s[val.y == 1].max() < a.threshold < s[val.y == 0].min()
    assert a.summary["val"]["eer"] <= 0.05
    assert a.threshold_source.startswith("validation")


def test_speaker_disjoint_validation_split_when_speakers_known():
    fs = make_fs(120, 5, speakers=[f"s{i % 12}" for i in range(120)])
    r = train_model(fs, config=cfg(epochs=1))
    assert r.data["split"] == "speaker-disjoint"


def test_seed_protocol_runs_full_batch_focal_without_validation():
    fs = make_fs(64, 8)
    r = train_model(
        fs, config=make_config("seed", model="cnn", epochs=2, optimizer="rmsprop"), test_fs=make_fs(30, 8, 4)
    )
    steps = [h for h in r.history if h["type"] == "step"]
    assert len(steps) == 2  # one step per epoch
    assert r.threshold == 0.0 and "val" not in r.summary and "test" in r.summary
    assert not r.summary["bn_recalibrated"]


# ------------------------------------------------------------------------------------------------ bad inputs
def _bad(fs, **kw):
    return train_model(fs, config=cfg(epochs=1), **kw)


def test_empty_store_is_refused():
    fs = make_fs(10, 4).subset(np.array([], dtype=int))
    with pytest.raises(InputError, match="no rows"):
        _bad(fs)


def test_one_class_only_is_refused():
    fs = make_fs(20, 4)
    fs = fs.subset(np.flatnonzero(fs.y == 1))
    with pytest.raises(InputError, match="all spoof"):
        _bad(fs)


def test_nan_features_are_refused():
    fs = make_fs(20, 4)
    fs.X[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        _bad(fs)


def test_unlabelled_rows_are_refused():
    fs = make_fs(20, 4)
    fs.y[2] = -1
    with pytest.raises(InputError, match="unlabelled"):
        _bad(fs)


def test_dimension_mismatch_between_train_and_val_is_refused():
    with pytest.raises(InputError, match="5 dimensions but the training features have 4"):
        train_model(make_fs(20, 4), make_fs(20, 5), cfg(epochs=1))


def test_recipe_mismatch_between_train_and_val_is_refused():
    a, b = make_fs(20, 4), make_fs(20, 4)
    a.recipe_hash, b.recipe_hash = "aaaa", "bbbb"
    with pytest.raises(InputError, match="hash bbbb"):
        train_model(a, b, cfg(epochs=1))


def test_too_small_for_a_validation_split():
    fs = make_fs(3, 3)
    with pytest.raises(DfdetError):
        train_model(fs, config=cfg(epochs=1, val_split=0.5))


def test_shared_matrix_trains_a_linear_model_quickly(seed154_npz):
    from dfdet.splitting import sklearn_split
    from dfdet.store import load_features

    fs = load_features(seed154_npz)
    tr, te = sklearn_split(fs.y, [0.8, 0.2], 42)
    r = train_model(
        fs.subset(tr), config=cfg(model="linear", epochs=5, batch_size=128, optimizer="adam"), test_fs=fs.subset(te)
    )
    assert r.summary["test"]["auc"] > 0.99
    assert r.recipe["name"] == "seed154" and len(r.recipe["feature_names"]) == 154


def test_adversarial_training_raises_accuracy_under_fgsm(tmp_path):
    from dfdet.artifact import save_result
    from dfdet.attacks import attack_sweep, load_diff_detector

    train, test = make_fs(400, 40, seed=1, sep=1.5), make_fs(200, 40, seed=2, sep=1.5)
    acc = {}
    for adv in (None, "fgsm:0.3"):
        result = train_model(train, None, cfg(epochs=15, adversarial=adv))
        path = tmp_path / f"{adv is not None}.pt"
        save_result(path, result)
        assert torch.load(path, weights_only=True)["training"]["adversarial"] == adv
        rows = attack_sweep(load_diff_detector(path), test.X, test.y, [0.0, 0.3], method="fgsm")["rows"]
        acc[adv] = [r["accuracy"] for r in rows]
    plain, robust = acc[None], acc["fgsm:0.3"]
    assert robust[1] >= plain[1] + 0.05  # measured: 0.625 -> 0.765
    assert robust[0] >= plain[0] - 0.03  # clean accuracy kept


def test_malformed_adversarial_spec_is_a_usage_error():
    with pytest.raises(UsageError, match="--adversarial"):
        train_model(make_fs(40, 4), None, cfg(adversarial="fgsm:abc"))
