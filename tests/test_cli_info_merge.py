"""`dfdet info` and `dfdet merge`."""

from __future__ import annotations

import json
import re

import numpy as np

from dfdet.cli import cli
from dfdet.features import FeatureGroup
from dfdet.store import FeatureSet, load_features, write_features
from tests.test_cli_featurize import assert_same_store, wav_dir
from tests.test_featurize import Toy3  # noqa: F401  (registers the "toy3" recipe)


def known_store(path, prefix="u", n=6, recipe_hash="abc123", failures=()):
    fs = FeatureSet(
        X=np.arange(n * 3, dtype=np.float32).reshape(n, 3),
        y=np.array([0, 1, 1, 1, -1, 0][:n], dtype=np.int8),
        utt_id=[f"{prefix}{i}" for i in range(n)],
        feature_names=["a", "b", "c"],
        groups=[FeatureGroup("AB", 0, 2), FeatureGroup("C", 2, 3)],
        speaker=["s1", "s2", "s1", "s3", "", "s2"][:n],
        system=["", "A01", "A02", "A01", "", ""][:n],
        duration=np.full(n, 2.0),
        recipe="toy3",
        recipe_hash=recipe_hash,
        domain=["lab"] * n,
    )
    fs.failures = list(failures)
    write_features(path, fs)
    return path


def test_info_text(runner, tmp_path):
    f = known_store(tmp_path / "k.h5", failures=[{"utt_id": "x", "path": "/d/x.wav", "reason": "zero-length audio"}])
    r = runner.invoke(cli, ["info", str(f)])
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    for pattern in (
        r"^rows +6$",
        r"^dims +3$",
        r"^recipe +toy3 \(hash abc123\)$",
        r"^labels +unknown 1, bonafide 2, spoof 3$",
        r"^systems +A01 2, A02 1$",
        r"^speakers +3$",
        r"^domains +lab 6$",
        r"^groups +AB 0-2, C 2-3$",
        r"^failures +1$",
        r"^  /d/x\.wav: zero-length audio$",
    ):
        assert re.search(pattern, out, re.M), pattern
    assert r.stderr == ""


def test_info_json(runner, tmp_path):
    f = known_store(tmp_path / "k.h5")
    r = runner.invoke(cli, ["info", "--json", str(f)])
    assert r.exit_code == 0
    s = json.loads(r.stdout)
    assert (s["rows"], s["dims"], s["recipe"], s["recipe_hash"]) == (6, 3, "toy3", "abc123")
    assert s["labels"] == {"bonafide": 2, "spoof": 3, "unknown": 1} and s["systems"] == {"A01": 2, "A02": 1}
    assert s["duration_s"] == {"total": 12.0, "min": 2.0, "max": 2.0} and s["failed"] == []


def test_info_reads_study_npz_and_rejects_other_files(runner, tmp_path):
    np.savez(tmp_path / "m.npz", X=np.ones((3, 2)), y=np.array([0, 1, 1]), feature_names=np.array(["G", "H"]))
    r = runner.invoke(cli, ["info", "--json", str(tmp_path / "m.npz")])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["labels"] == {"bonafide": 1, "spoof": 2}
    (tmp_path / "t.h5").write_text("not hdf5")
    r = runner.invoke(cli, ["info", str(tmp_path / "t.h5")])
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.startswith("dfdet info: error: ") and "not an HDF5 feature store" in r.stderr
    r = runner.invoke(cli, ["info", str(tmp_path / "missing.h5")])
    assert r.exit_code == 1 and "no such file" in r.stderr


def test_shards_merged_equal_single_run(runner, tmp_path):
    d = wav_dir(tmp_path / "c", n=5, seconds=0.15)
    base = ["featurize", str(d), "--recipe", "seed154", "-j", "1"]
    assert runner.invoke(cli, [*base, "-o", str(tmp_path / "all.h5")]).exit_code == 0
    for k in (1, 2):
        r = runner.invoke(cli, [*base, "--shard", f"{k}/2", "-o", str(tmp_path / f"s{k}.h5")])
        assert r.exit_code == 0, r.stderr
    r = runner.invoke(cli, ["merge", str(tmp_path / "s2.h5"), str(tmp_path / "s1.h5"), "-o", str(tmp_path / "m.h5")])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "" and "merged 2 store(s)" in r.stderr and "5 rows" in r.stderr
    full, merged = load_features(tmp_path / "all.h5"), load_features(tmp_path / "m.h5")
    assert_same_store(full, merged)
    assert merged.speaker == full.speaker and merged.groups == full.groups


def test_merge_keeps_failures_and_warns(runner, tmp_path):
    a = known_store(tmp_path / "a.h5", "a", failures=[{"utt_id": "a9", "path": "/a9.wav", "reason": "r"}])
    b = known_store(tmp_path / "b.h5", "b")
    r = runner.invoke(cli, ["merge", str(a), str(b), "-o", str(tmp_path / "m.h5")])
    assert r.exit_code == 0
    assert "warning: 1 input(s) failed" in r.stderr
    m = load_features(tmp_path / "m.h5")
    assert len(m) == 12 and m.failures == [{"utt_id": "a9", "path": "/a9.wav", "reason": "r"}]


def test_merge_errors(runner, tmp_path):
    a = known_store(tmp_path / "a.h5", "a")
    dup = known_store(tmp_path / "dup.h5", "a")
    other = known_store(tmp_path / "other.h5", "o", recipe_hash="zzz")
    out = tmp_path / "m.h5"
    r = runner.invoke(cli, ["merge", str(a), str(dup), "-o", str(out)])
    assert r.exit_code == 1 and str(a) in r.stderr and str(dup) in r.stderr and "'a0'" in r.stderr
    r = runner.invoke(cli, ["merge", str(a), str(other), "-o", str(out)])
    assert r.exit_code == 1 and "recipe hash zzz differs" in r.stderr
    r = runner.invoke(cli, ["merge", str(a), str(tmp_path / "nope.h5"), "-o", str(out)])
    assert r.exit_code == 1 and "no such file" in r.stderr
    assert not out.exists()
    assert runner.invoke(cli, ["merge", "-o", str(out)]).exit_code == 2


def test_info_on_the_study_npz_and_conversion_to_a_store(runner, tmp_path, seed154_npz):
    with np.load(seed154_npz) as z:
        n, d = z["X"].shape
        n_spoof = int((z["y"] == 1).sum())
    r = runner.invoke(cli, ["info", "--json", str(seed154_npz)])
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["rows"], s["dims"], s["recipe"]) == (n, d, "seed154") and s["labels"]["spoof"] == n_spoof
    fs = load_features(seed154_npz)
    write_features(tmp_path / "study.h5", fs)
    back = load_features(tmp_path / "study.h5")
    assert back.X.tobytes() == fs.X.tobytes() and back.y.tolist() == fs.y.tolist()
    assert back.recipe_hash == fs.recipe_hash and back.groups == fs.groups
