"""`dfdet train` through CliRunner: outputs, stdout/stderr discipline, protocols, clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from dfdet.cli import cli
from dfdet.provenance import cpu_signature
from tests.test_training import make_fs


def _npz(path, n=80, d=6, sep=2.0, seed=0, y=None, X=None):
    fs = make_fs(n, d, seed=seed, sep=sep)
    np.savez(path, X=fs.X if X is None else X, y=(fs.y if y is None else y).astype(np.int64))
    return path


def test_train_writes_model_and_history_and_nothing_on_stdout(tmp_path, runner):
    src = _npz(tmp_path / "f.npz")
    out = tmp_path / "m.pt"
    r = runner.invoke(cli, ["train", str(src), "-o", str(out), "--model", "mlp", "--epochs", "2", "--batch-size", "16"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    assert "trained mlp/adamw" in r.stderr and "threshold" in r.stderr
    raw = torch.load(out, weights_only=True)
    assert raw["training"]["epochs"] == 2 and raw["training"]["batch_size"] == 16
    assert raw["provenance"]["torch_threads"] == torch.get_num_threads()  # bit-for-bit reruns need the same count
    assert raw["provenance"]["cpu"] == cpu_signature()  # ... and the same CPU (its float kernels)
    if os.path.exists("/proc/cpuinfo"):
        assert len(raw["provenance"]["cpu"]["flags_sha"]) == 16 and raw["provenance"]["cpu"]["vendor"]
    hist = [json.loads(line) for line in (tmp_path / "m.history.jsonl").read_text().splitlines()]
    assert {h["type"] for h in hist} == {"step", "epoch"}
    assert sum(h["type"] == "epoch" for h in hist) == 2


def test_train_json_summary_val_file_test_file_and_hdf5(tmp_path, runner):
    from dfdet.store import load_features, write_features

    write_features(tmp_path / "tr.h5", load_features(_npz(tmp_path / "a.npz", seed=1)))
    write_features(tmp_path / "va.h5", load_features(_npz(tmp_path / "b.npz", n=40, seed=2)))
    write_features(tmp_path / "te.h5", load_features(_npz(tmp_path / "c.npz", n=40, seed=3)))
    r = runner.invoke(
        cli,
        ["train", str(tmp_path / "tr.h5"), "-o", str(tmp_path / "m.pt"), "--val", str(tmp_path / "va.h5"),
         "--test", str(tmp_path / "te.h5"), "--model", "linear", "--optimizer", "sgd", "--lr", "0.05",
         "--epochs", "3", "--history", str(tmp_path / "h.jsonl"), "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["summary"]["test"]["auc"] > 0.9
    assert info["config"]["optimizer_overrides"] == {"lr": 0.05}
    assert (tmp_path / "h.jsonl").exists() and not (tmp_path / "m.history.jsonl").exists()
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["data"]["split"] == "file" and raw["data"]["val"]["rows"] == 40
    assert raw["training"]["optimizer_hparams"]["lr"] == 0.05


def test_seed_protocol_and_sam_options(tmp_path, runner):
    src = _npz(tmp_path / "f.npz", n=48)
    r = runner.invoke(
        cli,
        ["train", str(src), "-o", str(tmp_path / "s.pt"), "--protocol", "seed", "--epochs", "2", "--optimizer", "sam",
         "--sam-base", "adam", "--rho", "0.1", "--no-history"],
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    raw = torch.load(tmp_path / "s.pt", weights_only=True)
    t = raw["training"]
    assert (t["protocol"], t["batch_size"], t["loss"], t["bn_recalibrate"]) == ("seed", None, "focal", False)
    assert t["optimizer_hparams"]["base"] == "adam" and t["optimizer_hparams"]["rho"] == 0.1
    assert not (tmp_path / "s.history.jsonl").exists()


def test_bad_inputs_give_one_line_errors(tmp_path, runner):
    def run(*args):
        return runner.invoke(cli, ["train", *map(str, args), "-o", str(tmp_path / "m.pt"), "--epochs", "1"])

    one = _npz(tmp_path / "one.npz", y=np.ones(80, int))
    r = run(one)
    assert r.exit_code == 1 and "all spoof" in r.stderr and "Traceback" not in r.stderr
    X = make_fs(80, 6).X
    X[5, 2] = np.nan
    r = run(_npz(tmp_path / "nan.npz", X=X))
    assert r.exit_code == 1 and "NaN" in r.stderr
    empty = tmp_path / "empty.npz"
    np.savez(empty, X=np.zeros((0, 6), np.float32), y=np.zeros(0, np.int64))
    r = run(empty)
    assert r.exit_code == 1 and "no rows" in r.stderr
    r = run(_npz(tmp_path / "a.npz"), "--val", _npz(tmp_path / "b.npz", d=7))
    assert r.exit_code == 1 and "7 dimensions" in r.stderr
    r = run(_npz(tmp_path / "c.npz"), "--val", tmp_path / "b.npz", "--val-split", "0.3")
    assert r.exit_code == 2 and "--val and --val-split" in r.stderr
    r = run(tmp_path / "c.npz", "--batch-size", "zero")
    assert r.exit_code == 2
    r = run(tmp_path / "c.npz", "--rho", "0.1")
    assert r.exit_code == 2 and "--optimizer sam" in r.stderr
    r = run(tmp_path / "missing.npz")
    assert r.exit_code == 1 and "no such file" in r.stderr
    assert not (tmp_path / "m.pt").exists()
