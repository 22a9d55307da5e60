"""Splits: disjoint, complete, stratified, speaker-disjoint, seeded, and scikit-learn's exact 80/20."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.cli import cli
from dfdet.errors import DfdetError, UsageError
from dfdet.splitting import (
    grouped_split,
    parse_parts,
    sklearn_split,
    split_featureset,
    stratified_split,
    train_val_indices,
)
from dfdet.store import FeatureSet, load_features


def _fs(n=60, d=4, seed=0, speakers=None):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(np.int8)  # one third spoof
    X = rng.standard_normal((n, d)).astype(np.float32)
    return FeatureSet(
        X=X,
        y=y,
        utt_id=[f"u{i:03d}" for i in range(n)],
        feature_names=[f"f{i}" for i in range(d)],
        groups=[],
        speaker=speakers or [],
        source="mem",
    )


def test_parse_parts():
    assert parse_parts("train=0.8,test=0.2") == {"train": 0.8, "test": 0.2}
    assert parse_parts("a=0.6, b=0.2 ,c=0.2") == {"a": 0.6, "b": 0.2, "c": 0.2}
    for bad in ["train=0.8", "train=0.8,test=0.3", "train", "=0.5,b=0.5", "a=x,b=1", "a=0.5,a=0.5", "a/b=0.5,c=0.5"]:
        with pytest.raises(UsageError):
            parse_parts(bad)


@settings(max_examples=40, deadline=None)
@given(
    n0=st.integers(1, 60),
    n1=st.integers(1, 60),
    fr=st.lists(st.integers(1, 9), min_size=2, max_size=4),
    seed=st.integers(0, 10),
)
def test_stratified_split_is_a_partition_with_class_quotas(n0, n1, fr, seed):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.zeros(n0, int), np.ones(n1, int)])
    fractions = np.asarray(fr, float) / sum(fr)
    parts = stratified_split(y, fractions, seed)
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(len(y)))  # disjoint and complete
    for p, f in zip(parts, fractions, strict=True):
        assert np.all(np.diff(p) > 0)  # input order kept
        for cls, n in ((0, n0), (1, n1)):
            assert abs((y[p] == cls).sum() - f * n) < 1.0 + 1e-9  # within one row of the exact share


def test_stratified_split_is_seeded():
    y = np.r_[np.zeros(50, int), np.ones(30, int)]
    a = stratified_split(y, [0.7, 0.3], 1)
    b = stratified_split(y, [0.7, 0.3], 1)
    c = stratified_split(y, [0.7, 0.3], 2)
    assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_grouped_split_is_speaker_disjoint_and_roughly_stratified():
    rng = np.random.default_rng(3)
    spk = [f"s{int(i)}" for i in rng.integers(0, 40, 800)]
    y = rng.integers(0, 2, 800)
    parts = grouped_split(y, spk, [0.6, 0.2, 0.2], seed=5)
    assert sorted(np.concatenate(parts).tolist()) == list(range(800))
    sets = [{spk[i] for i in p} for p in parts]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    for p, f in zip(parts, [0.6, 0.2, 0.2], strict=True):
        assert abs(len(p) / 800 - f) < 0.08
        assert abs(y[p].mean() - y.mean()) < 0.1


def test_grouped_split_needs_enough_groups():
    with pytest.raises(DfdetError, match="distinct group"):
        grouped_split(np.array([0, 1, 0]), ["a", "a", "a"], [0.5, 0.5])


@pytest.mark.parametrize("seed", [0, 42])
def test_sklearn_compatible_equals_train_test_split(seed):
    from sklearn.model_selection import train_test_split

    y = np.random.default_rng(seed).integers(0, 2, 97)
    tr, te = train_test_split(np.arange(97), test_size=0.2, stratify=y, random_state=seed)
    a, b = sklearn_split(y, [0.8, 0.2], seed)
    assert np.array_equal(a, tr) and np.array_equal(b, te)
    with pytest.raises(UsageError):
        sklearn_split(y, [0.5, 0.3, 0.2], seed)


def test_train_val_indices_uses_speakers_when_known():
    fs = _fs(60, speakers=[f"s{i % 10}" for i in range(60)])
    tr, va, mode = train_val_indices(fs.y, 0.2, 42, fs.speaker)
    assert mode == "speaker-disjoint"
    assert not ({fs.speaker[i] for i in tr} & {fs.speaker[i] for i in va})
    tr, va, mode = train_val_indices(fs.y, 0.2, 42, [""] * 60)
    assert mode == "stratified" and len(va) == 12


def test_split_featureset_group_by_without_speakers_is_an_error():
    with pytest.raises(DfdetError, match="no speaker"):
        split_featureset(_fs(), {"a": 0.5, "b": 0.5}, group_by="speaker")


def test_cli_split_writes_stratified_hdf5_parts(tmp_path, runner):
    src = tmp_path / "x.npz"
    fs = _fs(90)
    np.savez(src, X=fs.X, y=fs.y.astype(np.int64))
    r = runner.invoke(cli, ["split", str(src), "--parts", "train=0.6,val=0.2,test=0.2", "-o", str(tmp_path / "s")])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    parts = {n: load_features(tmp_path / "s" / f"{n}.h5") for n in ("train", "val", "test")}
    assert [len(p) for p in parts.values()] == [54, 18, 18]
    assert [int(p.y.sum()) for p in parts.values()] == [18, 6, 6]
    ids = [u for p in parts.values() for u in p.utt_id]
    assert len(set(ids)) == 90
    np.testing.assert_array_equal(np.sort(np.concatenate([p.X for p in parts.values()]), axis=0), np.sort(fs.X, axis=0))


def test_cli_split_group_by_speaker_and_pattern(tmp_path, runner):
    from dfdet.store import write_features

    fs = _fs(80, speakers=[f"spk{i % 16}" for i in range(80)])
    write_features(tmp_path / "in.h5", fs)
    pat = str(tmp_path / "o_{part}.h5")
    r = runner.invoke(cli, ["split", str(tmp_path / "in.h5"), "--group-by", "speaker", "--out-pattern", pat, "--json"])
    assert r.exit_code == 0, r.stderr
    import json

    info = json.loads(r.stdout)
    assert info["mode"] == "speaker"
    a, b = load_features(tmp_path / "o_train.h5"), load_features(tmp_path / "o_test.h5")
    assert not (set(a.speaker) & set(b.speaker))
    assert len(a) + len(b) == 80


def test_cli_split_usage_errors(tmp_path, runner):
    src = tmp_path / "x.npz"
    fs = _fs(30)
    np.savez(src, X=fs.X, y=fs.y.astype(np.int64))
    r = runner.invoke(cli, ["split", str(src)])
    assert r.exit_code == 2 and "exactly one of" in r.stderr
    r = runner.invoke(cli, ["split", str(src), "--out-pattern", "x.h5"])
    assert r.exit_code == 2 and "{part}" in r.stderr
    r = runner.invoke(cli, ["split", str(src), "--parts", "a=0.5,b=0.3,c=0.2", "--sklearn-compatible", "-o", "d"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["split", str(src), "--group-by", "speaker", "-o", str(tmp_path / "d")])
    assert r.exit_code == 1 and "no speaker" in r.stderr


def test_cli_split_reproduces_the_study_split(seed154_npz, tmp_path, runner):
    from sklearn.model_selection import train_test_split

    r = runner.invoke(cli, ["split", str(seed154_npz), "--sklearn-compatible", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.stderr
    with np.load(seed154_npz) as z:
        X, y = z["X"], z["y"]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=42)
    tr, te = load_features(tmp_path / "train.h5"), load_features(tmp_path / "test.h5")
    np.testing.assert_array_equal(tr.X, Xtr)
    np.testing.assert_array_equal(te.X, Xte)
    np.testing.assert_array_equal(te.y, yte)
    assert tr.recipe == "seed154" and tr.recipe_hash
