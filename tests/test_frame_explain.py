"""`dfdet explain` on frame models (lcnn): attributions over whole utterances, and saliency over time x frequency
through the lfcc recipe's own map from log filterbank energies to frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dfdet.cli import cli
from tests.test_frame_models import one_torch_thread, trained_lcnn  # noqa: F401 (autouse)


@pytest.fixture(scope="module")
def lcnn(tmp_path_factory):
    root = tmp_path_factory.mktemp("frameexplain")
    _, store, model = trained_lcnn(root)
    return root, store, model


def test_band_view_inverts_the_recipe_and_rebuilds_its_deltas():
    from dfdet.features import get_recipe
    from dfdet.features.lfcc import dct_matrix, with_deltas

    view = get_recipe("lfcc").band_view()
    assert len(view.names) == 20 and view.centres_hz[0] == pytest.approx(8000 / 21)
    rng = np.random.default_rng(0)
    for T in (1, 2, 5, 40):
        E = rng.normal(size=(T, 20))
        frames = with_deltas(E @ dct_matrix(), 0, 0, T, T - 1)  # the recipe's own (numpy) frames
        np.testing.assert_allclose(view.frames_of_bands(torch.from_numpy(E)).numpy(), frames, atol=1e-12)
        np.testing.assert_allclose(view.bands_of_frames(frames), E, atol=1e-12)


def test_band_saliency_is_the_score_gradient_pulled_back_through_the_numpy_recipe(lcnn):
    """Band saliency = |J^T g|: g the gradient of the spoof output w.r.t. the raw frames, J the Jacobian of the
    recipe's own numpy map (DCT, then `with_deltas`) from log filterbank energies to frames, built column by column.
    (Finite differences of the score itself are no check here: max-feature-map and pooling make it kinked at the
    1e-3 scale.)"""
    from dfdet.attacks import load_diff_detector
    from dfdet.explain import band_saliency
    from dfdet.features import get_recipe
    from dfdet.features.lfcc import dct_matrix, with_deltas
    from dfdet.store import load_features

    _, store, model = lcnn
    det = load_diff_detector(model)
    view = get_recipe("lfcc").band_view()
    mats = det.inputs_of(load_features(store))
    i = int(np.argmax([len(m) for m in mats]))  # longer than a chunk: several chunks are averaged
    frames = mats[i].astype(np.float64)
    T = len(frames)
    sal = band_saliency(det, [frames], view)[0]
    assert sal.shape == (T, 20) and np.isfinite(sal).all() and sal.max() > 0

    x = torch.from_numpy(frames).requires_grad_(True)
    z = ((x - torch.from_numpy(det.mean)) / torch.from_numpy(det.scale)).float()
    (-det.score_module(z[None])).sum().backward()
    g = x.grad.numpy()
    pulled = np.empty((T, 20))
    for t in range(T):
        for b in range(20):
            e = np.zeros((T, 20))
            e[t, b] = 1.0
            pulled[t, b] = (with_deltas(e @ dct_matrix(), 0, 0, T, T - 1) * g).sum()
    np.testing.assert_allclose(sal, np.abs(pulled), rtol=1e-3, atol=1e-5 * sal.max())


def test_explain_frames_summaries_are_shares_and_cover_every_frame(lcnn):
    from dfdet.attacks import load_diff_detector
    from dfdet.explain import TIME_BINS, ExplainOptions, explain, time_bins
    from dfdet.store import load_features

    _, store, model = lcnn
    det = load_diff_detector(model)
    fs = load_features(store)
    summary, records = explain(det, det.inputs_of(fs), fs.y, ExplainOptions(("saliency", "ixg"), per_sample=True))
    assert summary["input_kind"] == "frames" and summary["rows"] == len(fs) == len(records)
    assert [g[0] for g in summary["groups"]] == ["LFCC", "Delta", "Delta2"]
    tf = summary["time_frequency"]
    assert len(tf["bands"]) == 20 and set(tf["splits"]) == {"all", "bonafide", "spoof"}
    grid = np.asarray(tf["splits"]["all"]["map"])
    assert grid.shape == (TIME_BINS, 20) and grid.sum() == pytest.approx(1.0) and (grid >= 0).all()
    np.testing.assert_allclose(tf["splits"]["all"]["band_share"], grid.sum(axis=0))
    # every relative-time bin of every utterance holds frames, so every bin gets attribution
    assert (np.asarray(summary["methods"]["saliency"]["time_profile"]["all"]) > 0).all()
    assert sorted(set(time_bins(23).tolist())) == list(range(TIME_BINS))
    for r in records:
        assert sum(r["saliency"]["time_profile"]) == pytest.approx(1.0)
        assert sum(r["band_share"].values()) == pytest.approx(1.0)
        # per-group sums add up to the utterance's total (groups tile the 60 dimensions)
        assert sum(r["ixg"]["groups"].values()) == pytest.approx(r["ixg"]["total"], abs=1e-9)
    # the scores reported are dfdet score's
    np.testing.assert_allclose([r["score"] for r in records], det.scores(det.inputs_of(fs)), atol=1e-9)


def test_cli_explain_frame_model_defaults_to_saliency_and_ixg_and_refuses_ig(tmp_path, runner, lcnn):
    _, store, model = lcnn
    out, per = tmp_path / "e.json", tmp_path / "e.jsonl"
    r = runner.invoke(cli, ["explain", str(model), str(store), "-o", str(out), "--per-sample", str(per)])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "saliency by band" in r.stderr
    doc = json.loads(out.read_text())
    assert sorted(doc["methods"]) == ["ixg", "saliency"] and doc["provenance"]["command"] == "explain"
    assert len(per.read_text().splitlines()) == doc["rows"] == 24
    # `report` renders the time-frequency map and the band table beside the per-group bars
    r = runner.invoke(cli, ["report", str(model), str(out), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.stderr
    html = next((tmp_path / "rep").glob("*.html")).read_text()
    assert "w.r.t. the log filterbank energies" in html and "<td>381&nbsp;Hz</td>" in html
    r = runner.invoke(cli, ["explain", str(model), str(store), "-o", str(tmp_path / "x.json"), "--methods", "ig"])
    assert r.exit_code != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "--methods saliency,ixg" in r.stderr and not (tmp_path / "x.json").exists()


def test_cli_explain_calibrated_frame_model(tmp_path, runner, lcnn):
    """A calibration on top of an LCNN is explained through its differentiable head (members listed)."""
    _, store, model = lcnn
    s = tmp_path / "s.tsv"
    assert runner.invoke(cli, ["score", str(model), str(store), "-o", str(s)]).exit_code == 0
    cal = tmp_path / "cal.json"
    r = runner.invoke(cli, ["calibrate", str(s), "--detector", str(model), "-o", str(cal)])
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "e.json"
    r = runner.invoke(cli, ["explain", str(cal), str(store), "-o", str(out), "--max-rows", "8"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["rows"] == 8 and doc["detector_kind"] != "model" and doc["time_frequency"] is not None


def test_app_inspect_gives_a_frame_model_the_clips_saliency(lcnn):
    """The Inspect tab's per-clip saliency for an LCNN equals `explain` on the same clip's stored frames."""
    from dfdet.app.backend import inspect_upload, load_explainer, load_for_app
    from dfdet.attacks import load_diff_detector
    from dfdet.explain import ExplainOptions, explain_frames
    from dfdet.store import load_features

    root, store, model = lcnn
    clip = sorted((root / "audio").glob("*.wav"))[2]  # the longest length (several chunks)
    d = inspect_upload(load_for_app(model), clip.name, clip.read_bytes(), explainer=load_explainer(model))
    assert d.saliency is not None and "filterbank band peaks at" in d.saliency_note
    share = d.saliency["saliency share (|grad|)"]
    assert set(share) == {"LFCC", "Delta", "Delta2"} and sum(share.values()) == pytest.approx(1.0)
    det = load_diff_detector(model)
    fs = load_features(store)
    i = list(fs.utt_id).index(clip.stem)
    _, recs = explain_frames(det, [det.inputs_of(fs)[i]], [-1], ExplainOptions(per_sample=True))
    want = recs[0]["ixg"]["groups"]
    for g, v in d.saliency["input x gradient (toward spoof)"].items():
        assert v == pytest.approx(want[g], rel=1e-3, abs=1e-6)
