"""Gradient tools on frame models (lcnn): `dfdet attack` FGSM/PGD on the standardised frames of each utterance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dfdet.cli import cli
from tests.contract import assert_scores_agree
from tests.test_frame_models import CHUNK, one_torch_thread, trained_lcnn  # noqa: F401 (autouse)


@pytest.fixture(scope="module")
def lcnn(tmp_path_factory):
    root = tmp_path_factory.mktemp("framegrad")
    audio, store, model = trained_lcnn(root)
    return root, audio, store, model


def _score_tsv(runner, model, store, out):
    r = runner.invoke(cli, ["score", str(model), str(store), "-o", str(out)])
    assert r.exit_code == 0, r.output
    from dfdet.scores import read_scores

    return read_scores(out)


def test_differentiable_scores_equal_dfdet_score(tmp_path, runner, lcnn):
    from dfdet.attacks import FrameDiffDetector, load_diff_detector
    from dfdet.store import load_features

    _, _, store, model = lcnn
    det = load_diff_detector(model)
    assert isinstance(det, FrameDiffDetector) and det.chunk_frames == CHUNK
    fs = load_features(store)
    Z = det.standardize(det.inputs_of(fs))
    assert sorted({len(z) for z in Z}) == sorted(set(fs.frames.n_frames.tolist()))
    table = _score_tsv(runner, model, store, tmp_path / "s.tsv")
    assert_scores_agree(det.scores_std(Z), table.score)
    # the differentiable batch path (equal-length batches through score_module) agrees too
    for rows in det.batches(Z):
        with torch.no_grad():
            got = det.score_module(torch.stack([Z[i] for i in rows])).double().numpy()
        np.testing.assert_allclose(got, np.asarray(table.score)[rows], atol=1e-4)


def test_attack_sweep_eps0_is_clean_and_flips_grow_with_eps(tmp_path, runner, lcnn):
    from dfdet.attacks import attack_sweep, load_diff_detector, metrics_at
    from dfdet.store import load_features

    _, _, store, model = lcnn
    det = load_diff_detector(model)
    fs = load_features(store)
    table = _score_tsv(runner, model, store, tmp_path / "s.tsv")
    res = attack_sweep(det, det.inputs_of(fs), fs.y, [0.0, 0.5, 3.0], method="fgsm")
    r0, _, r3 = res["rows"]
    assert r0["flip_rate"] == 0 and r0["max_linf"] == 0 and r0["mean_abs_score_change"] == 0
    want = metrics_at(np.asarray(table.score), np.asarray(fs.y), det.threshold)
    assert r0["accuracy"] == want["accuracy"] and r0["eer"] == pytest.approx(want["eer"])
    assert res["clean"]["accuracy"] == want["accuracy"]
    assert r3["flip_rate"] > 0 and r3["flip_rate"] >= r0["flip_rate"]
    assert r3["max_linf"] == pytest.approx(3.0, rel=1e-5)  # the ball bounds every frame value of an utterance
    assert res["curve"]["eps"] == [0.0, 0.5, 3.0] and res["rows_attacked"] == len(fs)


def test_pgd_on_frames_moves_scores_away_from_the_decision(lcnn):
    from dfdet.attacks import _attack_rows, load_diff_detector
    from dfdet.store import load_features

    _, _, store, model = lcnn
    det = load_diff_detector(model)
    Z = det.standardize(det.inputs_of(load_features(store)))
    clean = det.scores_std(Z)
    bona = torch.from_numpy(clean >= det.threshold)
    Za = _attack_rows(det, Z, det.threshold, "pgd", 0.3, "l2", 3, None, False, None, 0, 64, bona)
    assert [z.shape for z in Za] == [z.shape for z in Z]  # each utterance keeps its frame count
    assert max(float((a - z).norm()) for a, z in zip(Za, Z, strict=True)) <= 0.3 + 1e-4
    moved = det.scores_std(Za) - clean
    sign = np.where(bona.numpy(), -1.0, 1.0)  # bona fide decisions are pushed down, spoof ones up
    assert (sign * moved >= -1e-5).all() and (sign * moved).mean() > 0


def test_cli_attack_frame_model_max_rows_and_vector_store_refused(tmp_path, runner, lcnn):
    from dfdet.store import load_features, write_features

    _, _, store, model = lcnn
    out = tmp_path / "a.json"
    args = ["attack", str(model), str(store), "--method", "pgd", "--steps", "2", "--eps", "0,1", "--max-rows", "10"]
    r = runner.invoke(cli, [*args, "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["rows_attacked"] == 10 and doc["rows_total"] == 24 and "stratified sample of 10" in doc["row_selection"]
    assert doc["rows"][0]["flip_rate"] == 0 and "frames" in doc["space"] and r.stdout == ""
    vec = load_features(store)
    vec.frames = None
    write_features(tmp_path / "vec.h5", vec)
    r = runner.invoke(cli, ["attack", str(model), str(tmp_path / "vec.h5"), "-o", str(tmp_path / "x.json")])
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "vector store" in r.stderr and "vec.h5" in r.stderr and "lcnn.pt" in r.stderr and "--recipe lfcc" in r.stderr


def test_degrade_on_audio_scores_frame_and_vector_models_like_dfdet_score(tmp_path, runner, lcnn):
    """`--method degrade` featurizes each degraded clip with the detector's frame recipe: its clean condition is
    `dfdet score` on the audio, for the frame model and for a vector model reading the frame statistics."""
    from dfdet.attacks import metrics_at
    from dfdet.scores import read_scores

    _, audio, store, model = lcnn
    lin = tmp_path / "lin.pt"
    r = runner.invoke(cli, ["train", str(store), "-o", str(lin), "--model", "linear", "--epochs", "3"])
    assert r.exit_code == 0, r.stderr
    y = np.arange(len(audio)) % 2
    for m in (model, lin):
        out = tmp_path / f"{m.stem}.json"
        r = runner.invoke(
            cli,
            ["attack", str(m), str(store), "--method", "degrade", "--conditions", "clean,white_snr10", "-o", str(out)],
        )
        assert r.exit_code == 0, r.stderr
        rep = json.loads(out.read_text())
        s = runner.invoke(cli, ["score", str(m), *map(str, audio), "-o", str(tmp_path / "a.tsv")])
        assert s.exit_code == 0, s.stderr
        want = metrics_at(np.asarray(read_scores(tmp_path / "a.tsv").score), y, rep["threshold"])
        clean, noisy = rep["conditions"]
        assert clean["n_scored"] == noisy["n_scored"] == len(audio) and clean["flip_rate_vs_clean"] == 0
        assert clean["accuracy"] == want["accuracy"] and clean["auc"] == pytest.approx(want["auc"])
        assert noisy["mean_score_shift"] != 0
