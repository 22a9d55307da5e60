"""`dfdet landscape` on frame models (lcnn): the training loss measured on one seeded random chunk per utterance,
as the model was trained."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dfdet.cli import cli
from tests.test_frame_models import CHUNK, one_torch_thread, trained_lcnn  # noqa: F401 (autouse)

SMALL = dict(max_rows=None, n_directions=1, alphas=np.linspace(-0.5, 0.5, 5), power_iters=4, show_progress=False)


@pytest.fixture(scope="module")
def lcnn(tmp_path_factory):
    _, store, model = trained_lcnn(tmp_path_factory.mktemp("framelandscape"))
    return store, model


def test_inputs_are_one_seeded_training_chunk_per_utterance(lcnn):
    from dfdet.artifact import load_model
    from dfdet.attacks import frames_of
    from dfdet.chunks import chunk_at, standardize_frames
    from dfdet.landscape import landscape_inputs
    from dfdet.store import load_features

    store, model = lcnn
    det = load_model(model)
    fs = load_features(store)
    idx = np.arange(len(fs))
    X, rec = landscape_inputs(det, fs, idx, seed=5)
    assert tuple(X.shape) == (len(fs), CHUNK, 60) and rec["chunk_frames"] == CHUNK
    again, rec2 = landscape_inputs(det, fs, idx, seed=5)
    assert torch.equal(X, again) and rec == rec2
    assert landscape_inputs(det, fs, idx, seed=6)[1]["chunk_starts_hash"] != rec["chunk_starts_hash"]
    # each input is a real window of its utterance (short utterances tiled), standardised with the model's scaler
    for x, m in zip(X.numpy(), frames_of(fs), strict=True):
        starts = [0] if len(m) <= CHUNK else range(len(m) - CHUNK + 1)
        windows = [standardize_frames(chunk_at(m, s, CHUNK), det.scaler_mean, det.scaler_scale) for s in starts]
        assert any(np.array_equal(x, w) for w in windows)


def test_measure_landscape_of_an_lcnn_is_its_chunk_loss_and_is_seeded(lcnn):
    from dfdet.artifact import load_model
    from dfdet.landscape import landscape_inputs, measure_landscape
    from dfdet.store import load_features

    store, model = lcnn
    det = load_model(model)
    fs = load_features(store)
    res = measure_landscape(det, fs, seed=3, **SMALL)
    X, _ = landscape_inputs(det, fs, np.arange(len(fs)), seed=3)
    with torch.no_grad():
        want = F.binary_cross_entropy_with_logits(det.module(X), torch.as_tensor(fs.y, dtype=torch.float32))
    assert res["loss"] == pytest.approx(want.item(), rel=1e-5)
    assert res["data"]["chunk_frames"] == CHUNK and "chunk" in res["data"]["inputs"]
    assert math.isfinite(res["top_eigenvalue"]) and res["sam_sharpness"]["sharpness"] >= 0
    interp = res["interpolation"]  # initial weights of the frame trainer (stored in the file)
    assert interp["loss_final"] == pytest.approx(res["loss"], rel=1e-5)
    again = measure_landscape(det, fs, seed=3, **SMALL)
    assert again["hessian"] == res["hessian"] and again["directions"] == res["directions"]
    assert measure_landscape(det, fs, seed=4, **SMALL)["data"]["rows_hash"] != res["data"]["rows_hash"]


def test_cli_landscape_frame_model_and_vector_store_refused(tmp_path, runner, lcnn):
    from dfdet.store import load_features, write_features

    store, model = lcnn
    out = tmp_path / "l.json"
    args = ["--directions", "1", "--alphas", "-0.5:0.5:5", "--power-iters", "3", "--interp-points", "3"]
    r = runner.invoke(cli, ["landscape", str(model), str(store), "-o", str(out), *args])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert r.stdout == "" and doc["data"]["rows_used"] == 24 and doc["data"]["chunk_frames"] == CHUNK
    r = runner.invoke(cli, ["report", str(model), str(out), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.stderr
    (row,) = json.loads((tmp_path / "rep" / "summary.json").read_text())["sections"]["optimizers"]["models"]
    assert row["model"] == "lcnn" and row["top_hessian_eigenvalue"] == pytest.approx(doc["top_eigenvalue"])
    vec = load_features(store)
    vec.frames = None
    write_features(tmp_path / "vec.h5", vec)
    r = runner.invoke(cli, ["landscape", str(model), str(tmp_path / "vec.h5"), "-o", str(tmp_path / "x.json"), *args])
    assert r.exit_code != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "vec.h5" in r.stderr and "--recipe lfcc" in r.stderr and not (tmp_path / "x.json").exists()
