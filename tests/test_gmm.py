"""The `gmm` frame model (the ASVspoof LFCC-GMM baseline): EM-fitted mixtures copied into a torch module that every
tool reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dfdet.cli import cli
from tests.test_frame_models import CHUNK, _cfg, _corpus, _frame_store, one_torch_thread  # noqa: F401 (autouse)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("gmm")
    audio = _corpus(root / "audio")
    return audio, _frame_store(root / "f.h5", audio)


def _gmm_cfg(**kw):
    return _cfg(model="gmm", model_config={"components": 4, "max_frames": 600}, **kw)


def test_module_log_likelihood_is_sklearns():
    from sklearn.mixture import GaussianMixture

    from dfdet.models import build_model

    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (300, 5)), rng.normal(3, 0.5, (300, 5))]
    m = build_model("gmm", 5, components=3).double()
    for c in (0, 1):
        gm = GaussianMixture(3, covariance_type="diag", random_state=c).fit(X + c)
        with torch.no_grad():
            m.log_weight[c].copy_(torch.from_numpy(np.log(gm.weights_)))
            m.mean[c].copy_(torch.from_numpy(gm.means_))
            m.log_precision[c].copy_(torch.from_numpy(-np.log(gm.covariances_)))
        got = m.log_likelihood(torch.from_numpy(X), c).detach().numpy()
        np.testing.assert_allclose(got, gm.score_samples(X), rtol=1e-9, atol=1e-9)
    chunk = torch.from_numpy(X[None, :50])
    want = (m.log_likelihood(chunk, 1) - m.log_likelihood(chunk, 0)).mean()
    assert float(m(chunk)[0].detach()) == pytest.approx(float(want.detach()))


def test_sample_frames_draws_distinct_frames_within_the_budget():
    from dfdet.gmm import sample_frames

    class Rows:
        n_frames = np.array([5, 0, 7, 3])
        dim = 2

        def get(self, i):
            return np.stack([np.full(self.n_frames[i], i), np.arange(self.n_frames[i])], axis=1).astype(np.float32)

    rows = Rows()
    F = sample_frames(rows, np.array([0, 2, 3]), 9, np.random.default_rng(1))
    assert F.shape == (9, 2) and len({tuple(r) for r in F}) == 9 and set(F[:, 0]) <= {0, 2, 3}
    np.testing.assert_array_equal(F, sample_frames(rows, np.array([0, 2, 3]), 9, np.random.default_rng(1)))
    assert len(sample_frames(rows, np.array([0, 2, 3]), 100, np.random.default_rng(1))) == 15  # all frames


def test_fit_is_seeded_records_em_and_scores_like_dfdet_score(tmp_path, runner, corpus):
    from dfdet.artifact import save_result
    from dfdet.frametraining import fit_frames
    from dfdet.scores import read_scores

    audio, store = corpus
    rows = np.arange(len(audio))
    a = fit_frames(store, rows, _gmm_cfg(), seed=0)
    b = fit_frames(store, rows, _gmm_cfg(), seed=0)
    for k, v in a.module.state_dict().items():
        assert torch.equal(v, b.module.state_dict()[k]), k
    assert a.summary["solver"] == "em" and [h["class"] for h in a.history] == ["bonafide", "spoof"]
    assert all(h["frames"] == 600 for h in a.history) and a.optimizer_hparams["components"] == 4
    model = tmp_path / "g.pt"
    save_result(model, a)
    r = runner.invoke(cli, ["score", str(model), str(store), "-o", str(tmp_path / "s.tsv")])
    assert r.exit_code == 0, r.stderr
    got = np.asarray(read_scores(tmp_path / "s.tsv").score)
    # the generated classes differ in spectrum: the mixtures separate the training clips
    y = np.arange(len(audio)) % 2
    assert got[y == 0].mean() > got[y == 1].mean()
    from dfdet.attacks import frames_of
    from dfdet.store import load_features

    mats = frames_of(load_features(store))
    short = [i for i, m in enumerate(mats) if len(m) <= CHUNK]  # one chunk, tiled: the mean over its frames
    with torch.no_grad():
        for i in short:
            z = torch.from_numpy(((mats[i] - a.scaler_mean) / a.scaler_scale).astype(np.float32))
            tiled = z[torch.arange(CHUNK) % len(z)]
            assert got[i] == pytest.approx(-float(a.module(tiled[None])[0]), abs=1e-4)


def test_cli_train_and_explain_a_gmm(tmp_path, runner, corpus):
    _, store = corpus
    model = tmp_path / "g.pt"
    r = runner.invoke(cli, ["train", str(store), "--model", "gmm", "--chunk-frames", str(CHUNK), "-o", str(model)])
    assert r.exit_code == 0, r.stderr
    assert "sklearn EM" in r.stderr and r.stdout == ""
    # (crossval --model gmm: tests/test_cli_crossval.py::test_frame_model_folds_on_a_featurized_realspeech_tree)
    r = runner.invoke(cli, ["explain", str(model), str(store), "-o", str(tmp_path / "e.json"), "--max-rows", "6"])
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["time_frequency"] is not None
