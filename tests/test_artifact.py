"""Model file: self-contained, loads without pickle, round-trips predictions, refuses mismatched features."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

from dfdet.artifact import load_model, read_artifact, save_result
from dfdet.errors import DfdetError, InputError
from dfdet.training import make_config, train_model
from tests.test_training import make_fs


class Evil:
    """Any class instance: loading it would need real (unsafe) unpickling."""


@pytest.fixture(scope="module")
def trained():
    fs = make_fs(120, 10, sep=2.0, source="")
    fs.recipe, fs.recipe_hash = "toy", "abc123"
    fs.recipe_config = {"n": 10}
    r = train_model(fs, config=make_config(model="cnn", epochs=2, batch_size=32, optimizer="adam"))
    return fs, r


def test_round_trip_and_weights_only_load(tmp_path, trained):
    fs, r = trained
    path = tmp_path / "m.pt"
    save_result(path, r)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # no pickle needed
    assert raw["format"] == "dfdet-model" and raw["schema_version"] == 1
    for key in ("state_dict", "arch", "scaler", "recipe", "threshold", "training", "summary", "data", "provenance"):
        assert key in raw
    assert raw["arch"] == {"name": "cnn", "config": {}, "input_dim": 10}
    assert raw["recipe"]["hash"] == "abc123" and raw["recipe"]["feature_names"] == fs.feature_names
    assert raw["training"]["optimizer"] == "adam" and raw["training"]["seed"] == 42
    assert raw["data"]["train"]["hash"] and raw["data"]["train"]["rows"] == 96
    assert set(raw["initial_state"]) == set(raw["state_dict"])
    det = load_model(path)
    assert not det.module.training
    assert det.threshold == r.threshold and det.recipe_hash == "abc123" and det.feature_names == fs.feature_names
    np.testing.assert_array_equal(det.scaler_mean, r.scaler_mean)
    np.testing.assert_array_equal(det.scaler_scale, r.scaler_scale)
    Z = torch.from_numpy(((fs.X - r.scaler_mean) / r.scaler_scale).astype(np.float32))
    with torch.no_grad():
        expected = r.module.eval()(Z).numpy()
    np.testing.assert_allclose(det.logits(fs.X), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(det.scores(fs), -det.logits(fs.X))
    np.testing.assert_array_equal(det.decide(fs.X), (det.scores(fs.X) < det.threshold).astype(np.int8))
    assert torch.equal(det.standardize(fs.X), Z)
    assert det.meta["summary"]["best_epoch"] >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # atomic write leaves no temp file


def test_check_features_refuses_recipe_and_dimension_mismatch(tmp_path, trained):
    fs, r = trained
    save_result(tmp_path / "m.pt", r)
    det = load_model(tmp_path / "m.pt")
    det.check_features(fs)  # same recipe and dimension
    other = make_fs(5, 10)
    other.recipe, other.recipe_hash, other.source = "seed154", "ffff0000", "other.h5"
    with pytest.raises(DfdetError) as e:
        det.check_features(other)
    msg = str(e.value)
    assert "ffff0000" in msg and "abc123" in msg and "re-featurize" in msg
    wide = make_fs(5, 11)
    with pytest.raises(DfdetError, match="11 features per row but .* expects 10"):
        det.check_features(wide)
    with pytest.raises(DfdetError, match="expects"):
        det.logits(wide.X)


def test_not_a_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    with pytest.raises(InputError, match="not a dfdet model file"):
        load_model(junk)

    bad = tmp_path / "pickled.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"format": "dfdet-model", "obj": Evil()}, fh)  # an arbitrary object: needs real unpickling
    with warnings.catch_warnings(), pytest.raises(InputError, match="not a dfdet model file"):
        warnings.simplefilter("ignore")  # torch may warn about the pickle protocol before refusing
        read_artifact(bad)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(InputError, match="format"):
        load_model(plain)


def test_newer_schema_is_refused(tmp_path, trained):
    _, r = trained
    save_result(tmp_path / "m.pt", r)
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    raw["schema_version"] = 99
    torch.save(raw, tmp_path / "new.pt")
    with pytest.raises(InputError, match="newer"):
        load_model(tmp_path / "new.pt")
