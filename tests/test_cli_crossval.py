"""`dfdet crossval`: table on stdout, messages on stderr, atomic JSON, seeded numbers, errors, and `report`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dfdet.cli import cli
from dfdet.store import write_features
from tests.test_crossval import corpus, make_fs


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "tiny.h5"
    write_features(path, make_fs(corpus(n_systems=9, n_bona_speakers=9)))
    return path


def _run(runner, *args):
    return runner.invoke(cli, ["crossval", *[str(a) for a in args]], catch_exceptions=False)


def test_crossval_writes_table_and_json(runner, store, tmp_path) -> None:
    out = tmp_path / "cv.json"
    args = [store, "--group", "system", "--model", "linear", "--folds", "3", "--epochs", "2", "--bootstrap", "100"]
    r = _run(runner, *args, "-o", out)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].split("\t")[:3] == ["model", "fold", "held_out"]
    rows = [ln.split("\t") for ln in lines[1:]]
    assert [x[1] for x in rows[:4]] == ["1", "2", "3", "pooled"]
    assert {x[1] for x in rows[4:]} == {"family=tts", "family=vc", "family=vocoder"}
    assert "pooled EER" in r.stderr and "group bootstrap" in r.stderr and "units" in r.stderr
    doc = json.loads(out.read_text())
    m = doc["models"][0]
    assert doc["kind"] == "crossval" and doc["command"] == "crossval"
    assert float(rows[3][6]) == pytest.approx(100 * m["pooled"]["eer"], abs=0.006)
    assert doc["settings"]["seed"] == 42 and doc["store"]["recipe_hash"] is None
    assert not list(tmp_path.glob("*.tmp*")), "no temp file left behind"

    # Same seed, same numbers (timings and provenance aside); the JSON renders in `dfdet report`.
    out2 = tmp_path / "cv2.json"
    assert _run(runner, *args, "-o", out2).exit_code == 0
    doc2 = json.loads(out2.read_text())
    assert r.stdout == _run(runner, *args).stdout
    for d in (doc, doc2):
        for mm in d["models"]:
            mm.pop("seconds")
            for f in mm["folds"]:
                f.pop("seconds")
    assert doc["models"] == doc2["models"] and doc["plan"] == doc2["plan"]

    rep = runner.invoke(cli, ["report", str(out), "-o", str(tmp_path / "rep")], catch_exceptions=False)
    assert rep.exit_code == 0, rep.stderr
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    sec = summary["sections"]["crossval"]
    assert sec["status"] == "ok" and sec["results"][0]["pooled_eer"] == m["pooled"]["eer"]
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "## Cross-validation" in md and "spoof family vocoder" in md


def test_source_logo_and_seed_option(runner, store) -> None:
    base = [store, "--group", "source", "--folds", "logo", "--model", "linear", "--epochs", "1", "--bootstrap", "0"]
    r = _run(runner, *base, "--seed", "3")
    assert r.exit_code == 0, r.stderr
    rows = [ln.split("\t") for ln in r.stdout.strip().splitlines()[1:]]
    held = [x[2] for x in rows if x[1].isdigit()]
    assert held == ["collection=col0", "collection=col1", "collection=col2"]
    assert "speakers: purge" in r.stderr
    pooled = next(x for x in rows if x[1] == "pooled")
    assert pooled[7] == "-"  # --bootstrap 0: no interval
    other = runner.invoke(cli, ["--seed", "3", "crossval", *[str(a) for a in base]], catch_exceptions=False)
    assert other.stdout == r.stdout  # the root --seed is the default of the command's own


def test_errors(runner, store, tmp_path) -> None:
    r = _run(runner, store, "--model", "linear", "--folds", "50")
    assert r.exit_code == 1 and "error:" in r.stderr and "for 50 folds" in r.stderr and "--folds" in r.stderr
    assert r.stdout == ""
    r = _run(runner, store, "--model", "linear", "--folds", "x")
    assert r.exit_code == 2 and "logo" in r.stderr
    r = _run(runner, store, "--model", "linear", "--rho", "0.1")
    assert r.exit_code == 2 and "--optimizer sam" in r.stderr
    r = runner.invoke(cli, ["crossval", str(store)])
    assert r.exit_code == 2 and "--model" in r.stderr
    unl = tmp_path / "unlabelled.h5"
    fs = make_fs(corpus())
    fs.y = np.full(len(fs), -1, dtype=np.int8)
    write_features(unl, fs)
    r = _run(runner, unl, "--model", "linear")
    assert r.exit_code == 1 and "no bona fide/spoof label" in r.stderr


def test_train_options_resolve_like_dfdet_train() -> None:
    from dfdet.cli.crossval import TrainOptions

    cfg = TrainOptions(optimizer="sgd", lr=0.01, epochs=3).config("linear", seed=5)
    assert (cfg.model, cfg.optimizer, cfg.epochs, cfg.seed) == ("linear", "sgd", 3, 5)
    assert cfg.optimizer_overrides == {"lr": 0.01}
    assert cfg.val_split == 0.2 and cfg.patience == 6  # the default protocol's preset
    seed_cfg = TrainOptions(protocol="seed").config("cnn", seed=1)
    assert seed_cfg.batch_size is None and seed_cfg.loss == "focal" and seed_cfg.epochs == 50


def test_frame_model_folds_on_a_featurized_realspeech_tree(runner, tmp_path) -> None:
    """The LCNN goes through the `frames` fitter: a realspeech-layout tree featurized with the lfcc recipe, two
    grouped folds, every clip tested once; the LCNN on a vector store is refused, naming the fix."""
    import csv

    from tests.fixtures import speechlike, write_audio
    from tests.test_featurize_frames import RS_HEADER

    root, rows = tmp_path / "rs", []
    for s in range(6):
        label, system = ("bonafide", "bonafide") if s < 2 else ("spoof", f"sys{s}")
        for k in range(4):
            rel = f"audio/src{s % 3}/{system}/c{s}{k}.flac"
            y = speechlike(16000, 0.6, seed=10 * s + k)
            write_audio(root / rel, y * (0.5 if label == "spoof" else 1.0), 16000)
            speaker = f"spk{s}{k}" if label == "bonafide" else ""
            rows.append([rel, label, system, "vc" if label == "spoof" else "bonafide", f"repo{s % 3}", "0", speaker,
                         16000, "0.600"])  # fmt: skip
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(RS_HEADER)
        w.writerows(rows)
    store, out = tmp_path / "rs.h5", tmp_path / "cv.json"
    r = runner.invoke(
        cli, ["-q", "featurize", "--recipe", "lfcc", "--labels", str(root / "labels.csv"), "-o", str(store)]
    )
    assert r.exit_code == 0, r.stderr
    args = ["--group", "system", "--folds", "2", "--model", "lcnn", "--epochs", "2", "--batch-size", "8"]
    r = _run(runner, store, *args, "--model", "gmm", "--chunk-frames", "16", "--bootstrap", "50", "-o", out)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [m["model"] for m in doc["models"]] == ["lcnn", "gmm"]  # the LFCC-GMM baseline through the same fitter
    for m in doc["models"]:
        assert len(m["folds"]) == 2
        assert sum(f["n_test_bonafide"] + f["n_test_spoof"] for f in m["folds"]) == 24
        assert 0.0 <= m["pooled"]["eer"] <= 1.0
    vec = tmp_path / "vec.h5"
    r = runner.invoke(cli, ["-q", "featurize", "--labels", str(root / "labels.csv"), "-o", str(vec)])
    assert r.exit_code == 0, r.stderr
    r = _run(runner, vec, *args, "--chunk-frames", "16")
    assert r.exit_code == 1 and "--recipe lfcc" in r.stderr, r.stderr
