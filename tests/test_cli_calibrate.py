"""`dfdet calibrate`: fit -> JSON -> --apply round trips, quality summary, bad inputs (CliRunner)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dfdet.cli import cli
from dfdet.scores import read_scores


def write_score_file(path, scores, labels, extra=None, header=("utt_id", "score", "label")):
    words = {0: "bonafide", 1: "spoof", -1: ""}
    lines = ["\t".join(header)]
    for i, (s, y) in enumerate(zip(scores, labels, strict=True)):
        row = [f"utt{i:05d}", repr(float(s)), words[int(y)]]
        if extra:
            row += [extra[i]]
        lines.append("\t".join(row[: len(header)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gaussian(n_bona=300, n_spoof=900, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_bona, int), np.ones(n_spoof, int)]
    s = np.where(y == 0, 1.5, -1.5) * 3 + 4 * rng.standard_normal(len(y)) + 2  # badly scaled and shifted
    return s, y


@pytest.fixture
def dev(tmp_path):
    s, y = gaussian()
    sysname = [f"A{i % 4:02d}" for i in range(len(y))]
    return write_score_file(tmp_path / "dev.tsv", s, y, sysname, ("utt_id", "score", "label", "system"))


def test_fit_then_apply_round_trip(runner, tmp_path, dev):
    cal = tmp_path / "out" / "cal.json"
    r = runner.invoke(cli, ["calibrate", str(dev), "-o", str(cal), "--threshold", "eer"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""  # messages go to stderr
    assert "Cllr" in r.stderr and "min Cllr" in r.stderr and "ECE" in r.stderr and "threshold: eer" in r.stderr
    doc = json.loads(cal.read_text())
    assert doc["kind"] == "calibration" and doc["method"] == "logistic"
    assert doc["fitting_data"]["source"] == "dev.tsv" and doc["fitting_data"]["n_bonafide"] == 300
    q = doc["quality"]
    assert q["cllr"] < q["raw_cllr"]  # calibration improved the LLRs of these badly scaled scores

    out = tmp_path / "dev.cal.tsv"
    r = runner.invoke(cli, ["calibrate", "--apply", str(cal), str(dev), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    assert "P(spoof) = 0.5" in r.stderr
    t = read_scores(out)
    raw = read_scores(dev)
    a, b = doc["params"]["a"], doc["params"]["b"]
    # score files hold 9 significant digits (score) and 6 (p_spoof): dfdet.scores.format_score / format_p
    np.testing.assert_allclose(t.score, a * raw.score + b, rtol=5e-9, atol=1e-12)
    np.testing.assert_allclose(t.p_spoof, 1 / (1 + np.exp(t.score)), rtol=5e-6)
    thr = doc["threshold"]["value"]
    assert np.array_equal(t.decision, np.where(t.score >= thr, 0, 1))
    assert np.array_equal(t.label, raw.label)
    assert t.extra["system"] == raw.extra["system"]  # other columns kept
    assert [float(v) for v in t.extra["raw_score"]] == raw.score.tolist()


@pytest.mark.parametrize("method", ["logistic", "isotonic", "temperature"])
@pytest.mark.parametrize("policy", ["bayes", "youden", "max-accuracy", "fpr=0.01"])
def test_methods_and_policies(runner, tmp_path, dev, method, policy):
    cal = tmp_path / "cal.json"
    r = runner.invoke(cli, ["calibrate", str(dev), "-o", str(cal), "--method", method, "--threshold", policy])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(cal.read_text())
    assert doc["method"] == method and doc["threshold"]["policy"] == policy
    if policy == "bayes":
        assert doc["threshold"]["value"] == pytest.approx(-math.log(0.95 / (10 * 0.05)))
    if policy == "fpr=0.01":
        assert doc["quality"]["at_threshold"]["far"] <= 0.01


def test_bayes_costs_and_stdout_json(runner, tmp_path, dev):
    cal = tmp_path / "cal.json"
    r = runner.invoke(
        cli, ["calibrate", str(dev), "-o", str(cal), "--p-spoof", "0.5", "--c-miss", "1", "--c-fa", "1", "--json"]
    )
    assert r.exit_code == 0, r.stderr
    printed = json.loads(r.stdout)
    assert printed["threshold"]["value"] == 0.0
    assert printed == json.loads(cal.read_text())


def test_detector_path_recorded_relative(runner, tmp_path, dev):
    model = tmp_path / "models" / "m.pt"
    model.parent.mkdir()
    model.write_bytes(b"placeholder")
    cal = tmp_path / "cals" / "cal.json"
    r = runner.invoke(cli, ["calibrate", str(dev), "-o", str(cal), "--detector", str(model)])
    assert r.exit_code == 0, r.stderr
    assert json.loads(cal.read_text())["detector"] == "../models/m.pt"


def test_labels_from_key_file(runner, tmp_path):
    s, y = gaussian(60, 60, seed=2)
    scores = write_score_file(tmp_path / "s.tsv", s, -np.ones_like(y), header=("utt_id", "score"))
    keys = tmp_path / "keys.tsv"
    keys.write_text("utt_id\tlabel\n" + "".join(f"utt{i:05d}\t{['bonafide', 'spoof'][v]}\n" for i, v in enumerate(y)))
    r = runner.invoke(cli, ["calibrate", str(scores), "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 1 and "no bonafide/spoof label" in r.stderr and "--labels" in r.stderr
    r = runner.invoke(cli, ["calibrate", str(scores), "--labels", str(keys), "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.stderr


# --------------------------------------------------------------------------------------------- bad input
def test_one_class_only(runner, tmp_path):
    f = write_score_file(tmp_path / "one.tsv", [0.1, 0.5, 0.9], [1, 1, 1])
    r = runner.invoke(cli, ["calibrate", str(f), "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 1
    assert r.stderr.startswith("dfdet calibrate: error:") and "only one class" in r.stderr
    assert not (tmp_path / "c.json").exists()


def test_nan_scores_rejected_by_the_reader(runner, tmp_path):
    f = tmp_path / "nan.tsv"
    f.write_text("utt_id\tscore\tlabel\na\t0.5\tbonafide\nb\tnan\tspoof\n")
    r = runner.invoke(cli, ["calibrate", str(f), "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 1 and "NaN" in r.stderr and "nan.tsv" in r.stderr


def test_duplicate_ids_rejected(runner, tmp_path):
    f = tmp_path / "dup.tsv"
    f.write_text("utt_id\tscore\tlabel\na\t0.5\tbonafide\na\t0.1\tspoof\n")
    r = runner.invoke(cli, ["calibrate", str(f), "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 1 and "duplicate utt_id" in r.stderr


def test_usage_errors(runner, tmp_path, dev):
    r = runner.invoke(cli, ["calibrate", str(dev)])
    assert r.exit_code == 2 and "-o" in r.stderr
    r = runner.invoke(cli, ["calibrate", str(dev), "-o", str(tmp_path / "c.json"), "--threshold", "median"])
    assert r.exit_code == 1 and "unknown threshold policy" in r.stderr
    bad = tmp_path / "ens.json"
    bad.write_text('{"kind": "ensemble", "schema_version": 1}')
    r = runner.invoke(cli, ["calibrate", "--apply", str(bad), str(dev)])
    assert r.exit_code == 1 and "not a calibration file" in r.stderr


def test_calibrated_detector_from_model_and_features(runner, tmp_path):
    from dfdet.scoring import load_detector
    from dfdet.store import load_features
    from tests.test_cli_ensemble import make_models_and_store

    store, (good, _), y = make_models_and_store(tmp_path)
    cal = tmp_path / "cal.json"
    r = runner.invoke(cli, ["calibrate", "--detector", str(good), "--on", str(store), "-o", str(cal)])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(cal.read_text())
    assert doc["detector"] == "good.pt" and doc["fitting_data"]["n"] == len(y)
    fs = load_features(store)
    det = load_detector(cal)  # the JSON is a calibrated detector wrapping good.pt
    assert det.kind == "calibrated detector" and det.member_names == ["good"]
    assert det.threshold == doc["threshold"]["value"]
    out = det.score_features(fs)
    llr, dec = out["score"], out["decision"]
    raw = fs.X[:, 0].astype(np.float64)  # the good model's bona-fide score is +f0
    np.testing.assert_allclose(out["members"]["good"], raw, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(llr, doc["params"]["a"] * raw + doc["params"]["b"], rtol=1e-6, atol=1e-6)
    assert np.array_equal(dec, np.where(llr >= doc["threshold"]["value"], 0, 1))


def test_unknown_label_word_rejected(runner, tmp_path):
    f = tmp_path / "odd.tsv"
    f.write_text("utt_id\tscore\tlabel\na\t0.5\tbonafide\nb\t0.1\tmaybe\n")
    r = runner.invoke(cli, ["calibrate", str(f), "-o", str(tmp_path / "c.json")])
    assert r.exit_code == 1 and "unknown label 'maybe'" in r.stderr and "odd.tsv" in r.stderr


def test_apply_writes_a_provenance_sidecar(runner, tmp_path, dev):
    """`--apply -o FILE` records how FILE was made: the calibration JSON (hash), the input score file (hash) and the
    models underneath (from the input's own sidecar, else the calibration's --detector); stdout gets none."""
    from dfdet.provenance import file_hash
    from dfdet.scores import read_sidecar, sidecar_path
    from tests.test_cli_ensemble import make_models_and_store

    cal = tmp_path / "cal.json"
    assert runner.invoke(cli, ["calibrate", str(dev), "-o", str(cal)]).exit_code == 0
    out = tmp_path / "dev.cal.tsv"
    r = runner.invoke(cli, ["calibrate", "--apply", str(cal), str(dev), "-o", str(out)])
    assert r.exit_code == 0, r.stderr
    side = read_sidecar(out)  # None unless it describes this very file
    assert side is not None and side["scores"]["rows"] == len(read_scores(out)) == 1200
    det = side["detector"]
    assert (det["kind"], det["path"], det["hash"], det["members"]) == ("calibration", str(cal), file_hash(cal), [])
    assert side["input"] == {"kind": "scores", "path": str(dev), "hash": file_hash(dev), "detector": None}
    assert side["provenance"]["command"] == "calibrate --apply"
    r = runner.invoke(cli, ["calibrate", "--apply", str(cal), str(dev)])
    assert r.exit_code == 0 and r.stdout.startswith("utt_id\t")
    assert sorted(p.name for p in tmp_path.glob("*.prov.json")) == [sidecar_path(out).name]

    # a calibration over one model: that model is the sole member, from the input's sidecar or the --detector
    store, (good, _), _ = make_models_and_store(tmp_path / "m")
    raw = tmp_path / "raw.tsv"
    assert runner.invoke(cli, ["score", str(good), str(store), "-o", str(raw)]).exit_code == 0
    cal2 = tmp_path / "cal2.json"
    assert runner.invoke(cli, ["calibrate", str(raw), "-o", str(cal2), "--detector", str(good)]).exit_code == 0
    model = {"name": "good", "path": str(good), "hash": file_hash(good)}
    copy = tmp_path / "copy.tsv"  # no sidecar: the member comes from the calibration's --detector
    copy.write_bytes(raw.read_bytes())
    for src in (raw, copy):
        out2 = tmp_path / f"{src.stem}.cal.tsv"
        r = runner.invoke(cli, ["calibrate", "--apply", str(cal2), str(src), "-o", str(out2)])
        assert r.exit_code == 0, r.stderr
        side = read_sidecar(out2)
        assert side["detector"]["hash"] == file_hash(cal2) and side["scores"]["rows"] == 240
        assert [{k: m[k] for k in model} for m in side["detector"]["members"]] == [model]
        assert (side["input"]["detector"] or {}).get("kind") == ("model" if src == raw else None)
