"""`dfdet ensemble`: fit on member score files (or models on features), honest CV report, --apply (CliRunner)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfdet.cli import cli
from dfdet.scores import read_scores
from tests.contract import assert_scores_agree

WORDS = {0: "bonafide", 1: "spoof", -1: ""}


def members(n=300, seed=0):
    """Two weak members + one strong inverted member (see tests/test_fusion.py)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    sig = np.where(y == 0, 1.0, -1.0)
    S = np.c_[
        0.8 * sig + rng.standard_normal(n), 0.8 * sig + rng.standard_normal(n), -(1.2 * sig + rng.standard_normal(n))
    ]
    return S, y


def write_members(d, S, y, names=("adam", "sgd", "rmsprop"), order=None):
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for m, name in enumerate(names):
        idx = np.arange(len(y)) if order is None else order
        lines = ["utt_id\tscore\tlabel\tsystem"]
        lines += [f"u{i:04d}\t{float(S[i, m])!r}\t{WORDS[int(y[i])]}\tA{i % 3}" for i in idx]
        p = d / f"{name}.tsv"
        p.write_text("\n".join(lines) + "\n")
        paths.append(p)
    return paths


def scores_args(paths):
    return [a for p in paths for a in ("--scores", str(p))]


@pytest.fixture
def fitted(runner, tmp_path):
    S, y = members()
    rng = np.random.default_rng(1)
    paths = write_members(tmp_path / "dev", S, y, order=rng.permutation(len(y)))  # unsorted files join by id
    ens = tmp_path / "out" / "ens.json"
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(ens), "--cv", "4", "--in-sample"])
    assert r.exit_code == 0, r.stderr
    return S, y, paths, ens, r


def test_fit_report_and_document(fitted):
    S, y, paths, ens, r = fitted
    assert r.stdout == ""
    err = r.stderr
    assert "out-of-fold (4-fold cross-validation; fitted on training folds only)" in err
    assert "in-sample (optimistic)" in err
    assert "rmsprop" in err and "FLIPPED" in err.split("rmsprop")[1].splitlines()[0]
    doc = json.loads(ens.read_text())
    assert doc["kind"] == "ensemble" and doc["schema_version"] == 1 and doc["method"] == "auc2"
    assert [m["file"] for m in doc["members"]] == ["../dev/adam.tsv", "../dev/sgd.tsv", "../dev/rmsprop.tsv"]
    assert [m["name"] for m in doc["members"]] == ["adam", "sgd", "rmsprop"]
    assert doc["flipped_members"] == ["rmsprop"] and doc["fuser"]["flips"] == [False, False, True]
    assert doc["out_of_fold"]["k"] == 4 and doc["out_of_fold"]["flip_counts"] == {"adam": 0, "sgd": 0, "rmsprop": 4}
    assert doc["in_sample"]["label"] == "in-sample (optimistic)"
    oof = doc["out_of_fold"]["metrics"]
    assert {"eer", "auc", "accuracy", "far", "frr", "cllr"} <= set(oof)
    assert oof["eer"] < min(m["eer"] for m in doc["members_alone"])
    assert doc["fitting_data"]["n"] == len(y) and doc["fitting_data"]["sources"] == [
        "adam.tsv",
        "sgd.tsv",
        "rmsprop.tsv",
    ]
    assert doc["calibration"]["method"] == "logistic" and doc["threshold"]["policy"] == "eer"


def test_apply_matches_the_formula_in_the_file(runner, tmp_path, fitted):
    S, y, paths, ens, _ = fitted
    out = tmp_path / "fused.tsv"
    r = runner.invoke(cli, ["ensemble", "--apply", str(ens), *scores_args(paths), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(ens.read_text())
    f, c = doc["fuser"], doc["calibration"]["params"]
    z = (S - np.array(f["z_mean"])) / np.array(f["z_std"])
    expected = c["a"] * (z @ np.array(f["weights"]) + f["intercept"]) + c["b"]
    t = read_scores(out)
    assert t.utt_id == sorted(t.utt_id)
    order = [int(u[1:]) for u in t.utt_id]
    np.testing.assert_allclose(t.score, expected[order], rtol=5e-9, atol=1e-12)  # files hold 9 significant digits
    assert np.array_equal(t.decision, np.where(t.score >= doc["threshold"]["value"], 0, 1))
    assert np.array_equal(t.label, y[order])
    assert t.extra["system"] == [f"A{i % 3}" for i in order]

    # --names maps files given in another order back to the recorded members
    out2 = tmp_path / "fused2.tsv"
    shuffled = [paths[2], paths[0], paths[1]]
    r = runner.invoke(
        cli,
        ["ensemble", "--apply", str(ens), *scores_args(shuffled), "--names", "rmsprop,adam,sgd", "-o", str(out2)],
    )
    assert r.exit_code == 0, r.stderr
    assert out2.read_text() == out.read_text()

    # --format asvspoof: what the ASVspoof 5 evaluation package reads, the same scores
    r = runner.invoke(cli, ["ensemble", "--apply", str(ens), *scores_args(paths), "--format", "asvspoof"])
    assert r.exit_code == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert rows[0] == ["filename", "cm-score"]
    assert [u for u, _ in rows[1:]] == t.utt_id
    np.testing.assert_allclose([float(v) for _, v in rows[1:]], t.score, rtol=1e-6)
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "--format", "asvspoof", "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 2 and "--format applies to --apply output only" in r.stderr


def test_json_report_on_stdout_and_methods(runner, tmp_path):
    S, y = members(seed=3)
    paths = write_members(tmp_path, S, y)
    for method in ("mean", "logistic"):
        ens = tmp_path / f"{method}.json"
        r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(ens), "--method", method, "--json"])
        assert r.exit_code == 0, r.stderr
        rep = json.loads(r.stdout)
        assert rep["method"] == method and "out_of_fold" in rep and "in_sample" not in rep


def test_no_cv_and_oof_scores(runner, tmp_path):
    S, y = members(seed=4)
    paths = write_members(tmp_path, S, y)
    ens = tmp_path / "e.json"
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(ens), "--no-cv", "--calibrate", "none"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(ens.read_text())
    assert "out_of_fold" not in doc and doc["calibration"] is None and doc["threshold"]["scale"] == "fused score"
    oof = tmp_path / "oof.tsv"
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(ens), "--oof-scores", str(oof), "--cv", "3"])
    assert r.exit_code == 0, r.stderr
    t = read_scores(oof)
    assert len(t) == len(y) and t.decision is not None
    r = runner.invoke(cli, ["evaluate", str(oof), "--json"])
    assert r.exit_code == 0, r.stderr


def test_mean_warns_about_inverted_member(runner, tmp_path):
    S, y = members(seed=5)
    paths = write_members(tmp_path, S, y)
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(tmp_path / "e.json"), "--method", "mean"])
    assert r.exit_code == 0, r.stderr
    assert "warning: member rmsprop ranks spoof above bona fide" in r.stderr and "`mean` keeps it" in r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["inverted_members"] == ["rmsprop"]


# --------------------------------------------------------------------------------------------- bad input
def test_mismatched_ids_name_the_file(runner, tmp_path):
    S, y = members(n=50, seed=6)
    paths = write_members(tmp_path, S, y)
    lines = paths[1].read_text().splitlines()
    paths[1].write_text("\n".join(lines[:-1]) + "\n")  # sgd lacks the last utterance
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 1
    assert "sgd.tsv" in r.stderr and "missing" in r.stderr and "u0049" in r.stderr
    assert not (tmp_path / "e.json").exists()


def test_disagreeing_labels(runner, tmp_path):
    S, y = members(n=50, seed=7)
    paths = write_members(tmp_path, S, y)
    y2 = y.copy()
    y2[5] = 1 - y2[5]
    write_members(tmp_path / "other", S, y2)
    bad = [paths[0], tmp_path / "other" / "sgd.tsv"]
    r = runner.invoke(cli, ["ensemble", *scores_args(bad), "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 1 and "label of 'u0005' disagrees" in r.stderr and "sgd.tsv" in r.stderr


def test_one_class_nan_and_usage(runner, tmp_path):
    S, y = members(n=40, seed=8)
    paths = write_members(tmp_path / "one", S, np.ones_like(y))
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 1 and "only one class" in r.stderr
    paths = write_members(tmp_path / "nan", S, y)
    paths[0].write_text(paths[0].read_text().replace(repr(float(S[3, 0])), "nan"))
    r = runner.invoke(cli, ["ensemble", *scores_args(paths), "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 1 and "NaN" in r.stderr and "adam.tsv" in r.stderr
    r = runner.invoke(cli, ["ensemble", "--scores", str(paths[1]), "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 2 and "at least two members" in r.stderr
    r = runner.invoke(cli, ["ensemble", *scores_args(paths[1:]), "-o", str(tmp_path / "e.json"), "--cv", "30"])
    assert r.exit_code == 1 and "smaller class has only" in r.stderr


def test_apply_with_wrong_member_count(runner, tmp_path, fitted):
    _, _, paths, ens, _ = fitted
    r = runner.invoke(cli, ["ensemble", "--apply", str(ens), *scores_args(paths[:2])])
    assert r.exit_code == 1 and "3 score-file member(s) but 2" in r.stderr and "adam, sgd, rmsprop" in r.stderr


# --------------------------------------------------------------------------------------------- model members
def make_models_and_store(d, n=240, seed=0):
    """A labelled HDF5 feature store and two linear models: one informative, one inverted."""
    import torch

    from dfdet.artifact import save_model
    from dfdet.features import FeatureGroup
    from dfdet.models import build_model
    from dfdet.store import FeatureSet, write_features

    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(np.int8)
    sig = np.where(y == 0, 1.0, -1.0)
    X = np.c_[sig + rng.standard_normal(n), 0.7 * sig + rng.standard_normal(n), rng.standard_normal((n, 2))]
    names = [f"f{i}" for i in range(4)]
    fs = FeatureSet(X.astype(np.float32), y, [f"u{i:04d}" for i in range(n)], names, [FeatureGroup("all", 0, 4)])
    d.mkdir(parents=True, exist_ok=True)
    store = d / "feats.h5"
    write_features(store, fs)
    paths = []
    for name, w in (("good", [-1.0, 0, 0, 0]), ("inverted", [0, 1.0, 0, 0])):  # spoof logit = w . x
        module = build_model("linear", 4)
        with torch.no_grad():
            module.fc.weight.copy_(torch.tensor([w]))
            module.fc.bias.zero_()
        p = d / f"{name}.pt"
        save_model(p, module, arch="linear", input_dim=4, scaler_mean=np.zeros(4), scaler_scale=np.ones(4))
        paths.append(p)
    return store, paths, y


def test_model_members_on_features(runner, tmp_path):
    from dfdet.fusion import load_ensemble
    from dfdet.scoring import load_detector
    from dfdet.store import load_features

    store, (good, inverted), y = make_models_and_store(tmp_path / "models")
    ens = tmp_path / "ens" / "e.json"
    r = runner.invoke(
        cli, ["ensemble", "--model", str(good), "--model", str(inverted), "--on", str(store), "-o", str(ens)]
    )
    assert r.exit_code == 0, r.stderr
    doc = load_ensemble(ens)
    assert doc["members"] == [
        {"name": "good", "kind": "model", "path": "../models/good.pt"},
        {"name": "inverted", "kind": "model", "path": "../models/inverted.pt"},
    ]
    assert doc["flipped_members"] == ["inverted"]
    out = tmp_path / "fused.tsv"
    r = runner.invoke(cli, ["ensemble", "--apply", str(ens), "--on", str(store), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    t = read_scores(out)
    fs = load_features(store)
    assert t.utt_id == fs.utt_id
    # by hand from the JSON: good scores +f0 and inverted -f1 (bona-fide-positive), z-normalised, weighted, calibrated
    f, c = doc["fuser"], doc["calibration"]
    assert c["method"] == "logistic"
    S = np.c_[fs.X[:, 0], -fs.X[:, 1]].astype(np.float64)
    fused = ((S - np.asarray(f["z_mean"])) / np.asarray(f["z_std"])) @ np.asarray(f["weights"]) + f["intercept"]
    want = c["params"]["a"] * fused + c["params"]["b"]
    np.testing.assert_allclose(t.score, want, rtol=5e-9, atol=1e-9)  # files hold 9 significant digits
    np.testing.assert_array_equal(t.decision, np.where(t.score >= doc["threshold"]["value"], 0, 1))
    # the same detector file scores features directly (what `dfdet score` uses for an ensemble)
    det = load_detector(ens)
    assert det.kind == "ensemble" and det.member_names == ["good", "inverted"]
    out_ = det.score_features(fs)  # another code path: the score contract, not bit equality
    assert_scores_agree(t.score, out_["score"], (t.decision, out_["decision"]), doc["threshold"]["value"])
    r = runner.invoke(cli, ["ensemble", "--apply", str(ens), "-o", str(out)])
    assert r.exit_code == 1 and "--on" in r.stderr


def test_domain_shift_workflow_fit_on_slice_evaluate_on_disjoint_slice(runner, tmp_path):
    """The documented workflow: split target-domain features, fit fusion on one slice, apply + evaluate on the other."""
    store, (good, inverted), _ = make_models_and_store(tmp_path, n=300, seed=2)
    r = runner.invoke(cli, ["split", str(store), "--parts", "fit=0.3,eval=0.7", "-o", str(tmp_path / "wild")])
    assert r.exit_code == 0, r.stderr
    fit, ev = tmp_path / "wild" / "fit.h5", tmp_path / "wild" / "eval.h5"
    ens = tmp_path / "ens.json"
    r = runner.invoke(
        cli, ["ensemble", "--model", str(good), "--model", str(inverted), "--on", str(fit), "-o", str(ens)]
    )
    assert r.exit_code == 0, r.stderr
    r = runner.invoke(cli, ["ensemble", "--apply", str(ens), "--on", str(ev)])
    assert r.exit_code == 0, r.stderr
    fused = r.stdout
    from dfdet.store import load_features

    eval_ids = [ln.split("\t")[0] for ln in fused.strip().splitlines()[1:]]
    assert sorted(eval_ids) == sorted(load_features(ev).utt_id)  # only the evaluation slice was scored
    assert set(eval_ids).isdisjoint(load_features(fit).utt_id)
    r = runner.invoke(cli, ["evaluate", "-", "--json"], input=fused)
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)["results"][0]
    assert res["n_bonafide"] + res["n_spoof"] == len(eval_ids)
    assert res["eer"] < 0.25  # the flip learned on the fit slice carries over to the disjoint slice


def test_score_command_accepts_the_ensemble_json(runner, tmp_path):
    """`dfdet score ENS.json FEATS` (the scoring module) and `ensemble --apply --on FEATS` give the same file."""
    import importlib.util

    if importlib.util.find_spec("dfdet.cli.score") is None:
        pytest.skip("score command not present")
    store, (good, inverted), _ = make_models_and_store(tmp_path, n=120, seed=3)
    ens = tmp_path / "e.json"
    r = runner.invoke(
        cli, ["ensemble", "--model", str(good), "--model", str(inverted), "--on", str(store), "-o", str(ens)]
    )
    assert r.exit_code == 0, r.stderr
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    assert runner.invoke(cli, ["ensemble", "--apply", str(ens), "--on", str(store), "-o", str(a)]).exit_code == 0
    r = runner.invoke(cli, ["score", str(ens), str(store), "-o", str(b)])
    assert r.exit_code == 0, r.stderr
    ta, tb = read_scores(a), read_scores(b)
    assert ta.utt_id == tb.utt_id
    thr = json.loads(ens.read_text())["threshold"]["value"]
    assert_scores_agree(ta.score, tb.score, (ta.decision, tb.decision), thr)


def test_apply_writes_a_provenance_sidecar(runner, tmp_path, fitted):
    """`--apply -o FILE` records the ensemble JSON (hash), every member and the inputs beside FILE; stdout: none."""
    from dfdet.provenance import file_hash
    from dfdet.scores import read_sidecar, sidecar_path

    _, y, paths, ens, _ = fitted
    out = tmp_path / "fused.tsv"
    shuffled = [paths[2], paths[0], paths[1]]
    r = runner.invoke(
        cli, ["ensemble", "--apply", str(ens), *scores_args(shuffled), "--names", "rmsprop,adam,sgd", "-o", str(out)]
    )
    assert r.exit_code == 0, r.stderr
    side = read_sidecar(out)
    assert side is not None and side["scores"]["rows"] == len(read_scores(out)) == len(y)
    det = side["detector"]
    assert (det["kind"], det["path"], det["hash"]) == ("ensemble", str(ens), file_hash(ens))
    assert [(m["name"], m["kind"], m["path"], m["hash"]) for m in det["members"]] == [
        (p.stem, "scores", str(p), file_hash(p))
        for p in paths  # in the ensemble's member order
    ]
    assert side["input"] == {
        "kind": "scores",
        "files": [{"path": str(p), "hash": file_hash(p)} for p in paths],
        "features": None,
    }
    assert side["provenance"]["command"] == "ensemble --apply"
    r = runner.invoke(cli, ["ensemble", "--apply", str(ens), *scores_args(paths)])
    assert r.exit_code == 0 and r.stdout.startswith("utt_id\t")
    assert [p.name for p in tmp_path.rglob("*.prov.json")] == [sidecar_path(out).name]


def test_apply_with_model_members_records_the_models(runner, tmp_path):
    from dfdet.provenance import file_hash
    from dfdet.scores import read_sidecar

    store, (good, inverted), y = make_models_and_store(tmp_path / "models")
    ens = tmp_path / "e.json"
    r = runner.invoke(
        cli, ["ensemble", "--model", str(good), "--model", str(inverted), "--on", str(store), "-o", str(ens)]
    )
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "fused.tsv"
    assert runner.invoke(cli, ["ensemble", "--apply", str(ens), "--on", str(store), "-o", str(out)]).exit_code == 0
    side = read_sidecar(out)
    assert side["detector"]["hash"] == file_hash(ens) and side["scores"]["rows"] == len(y)
    assert [(m["name"], m["kind"], m["hash"]) for m in side["detector"]["members"]] == [
        ("good", "model", file_hash(good)),
        ("inverted", "model", file_hash(inverted)),
    ]
    assert side["input"] == {"kind": "features", "path": str(store), "hash": file_hash(store)}


def test_model_member_must_be_a_model_file(runner, tmp_path):
    """--model scores through dfdet.scoring.load_detector, which also reads detector JSONs: only model files are
    members (an ensemble's members are loaded as models when it is scored)."""
    store, (good, inverted), _ = make_models_and_store(tmp_path)
    cal = tmp_path / "cal.json"
    assert runner.invoke(cli, ["calibrate", "--detector", str(good), "--on", str(store), "-o", str(cal)]).exit_code == 0
    r = runner.invoke(
        cli, ["ensemble", "--model", str(cal), "--model", str(inverted), "--on", str(store), "-o", str(tmp_path / "e")]
    )
    assert r.exit_code == 1 and "is a calibrated detector, not a model file" in r.stderr
