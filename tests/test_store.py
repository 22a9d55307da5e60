"""The HDF5 feature store: layout, round-trips, atomic streaming writes, clear read errors, merging."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdet.errors import DfdetError, InputError
from dfdet.features import FeatureGroup
from dfdet.store import SCHEMA_VERSION, FeatureSet, StoreWriter, describe, load_features, merge_stores, write_features


def make_set(n: int = 5, d: int = 4, seed: int = 0, prefix: str = "u", recipe_hash: str = "h1") -> FeatureSet:
    rng = np.random.default_rng(seed)
    return FeatureSet(
        X=rng.standard_normal((n, d)).astype(np.float32),
        y=rng.integers(-1, 2, n).astype(np.int8),
        utt_id=[f"{prefix}{i:03d}" for i in range(n)],
        feature_names=[f"f{j}" for j in range(d)],
        groups=[FeatureGroup("A", 0, d // 2), FeatureGroup("B", d // 2, d)],
        path=[f"/audio/{prefix}{i}.wav" for i in range(n)],
        speaker=[f"spk{i % 2}" for i in range(n)],
        system=["A01" if i % 2 else "" for i in range(n)],
        duration=rng.uniform(0.5, 3.0, n),
        recipe="toy",
        recipe_config={"a": 1, "nested": {"b": [1, 2]}},
        recipe_hash=recipe_hash,
        domain=["lab" if i % 3 else "wild" for i in range(n)],
    )


def assert_same_rows(a: FeatureSet, b: FeatureSet) -> None:
    assert a.X.dtype == b.X.dtype == np.float32
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.y.dtype == b.y.dtype == np.int8
    for name in ("utt_id", "path", "speaker", "system", "domain", "feature_names", "groups"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.duration, b.duration)


def test_layout_matches_design(tmp_path):
    fs = make_set(n=7, d=6)
    fs.failures = [{"utt_id": "bad1", "path": "/audio/bad1.wav", "reason": "zero-length audio (0 samples)"}]
    out = tmp_path / "s.h5"
    write_features(out, fs, note="hello")
    with h5py.File(out, "r") as f:
        feats = f["features"]
        assert feats.dtype == np.float32 and feats.shape == (7, 6)
        assert feats.chunks is not None and feats.chunks[1] == 6 and feats.compression == "gzip"
        assert feats.maxshape == (None, 6)
        for name in ("utt_id", "path", "speaker", "system", "domain"):
            assert h5py.check_string_dtype(f[name].dtype).encoding == "utf-8", name
        assert f["label"].dtype == np.int8 and f["duration"].dtype == np.float64
        assert [s.decode() for s in f["feature_names"][...]] == [f"f{j}" for j in range(6)]
        assert f["groups/name"].asstr()[...].tolist() == ["A", "B"]
        assert f["groups/start"][...].tolist() == [0, 3] and f["groups/stop"][...].tolist() == [3, 6]
        assert f["failed/reason"].asstr()[...].tolist() == ["zero-length audio (0 samples)"]
        a = f.attrs
        assert a["schema_version"] == SCHEMA_VERSION and a["recipe"] == "toy" and a["recipe_hash"] == "h1"
        assert json.loads(a["recipe_config"]) == {"a": 1, "nested": {"b": [1, 2]}}
        assert json.loads(a["provenance"])["dfdet_version"] == a["dfdet_version"]
        assert isinstance(json.loads(a["argv"]), list) and a["created"]
    back = load_features(out)
    assert_same_rows(fs, back)
    assert back.failures == fs.failures
    assert back.attrs["note"] == "hello" and back.recipe_config == fs.recipe_config
    assert os.listdir(tmp_path) == ["s.h5"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600: others on a cluster can read it


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    n=st.integers(0, 12),
    d=st.integers(1, 5),
    chunk_rows=st.integers(1, 5),
)
def test_roundtrip_property(tmp_path_factory, data, n, d, chunk_rows):
    ids = data.draw(st.lists(_text, min_size=n, max_size=n, unique=True))
    fs = FeatureSet(
        X=np.asarray(
            data.draw(st.lists(st.floats(width=32), min_size=n * d, max_size=n * d)), dtype=np.float32
        ).reshape(n, d),
        y=np.asarray(data.draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=n, max_size=n)), dtype=np.int8),
        utt_id=ids,
        feature_names=data.draw(st.lists(_text, min_size=d, max_size=d)),
        groups=[FeatureGroup("g", 0, d)],
        path=data.draw(st.lists(_text, min_size=n, max_size=n)),
        speaker=data.draw(st.lists(_text, min_size=n, max_size=n)),
        system=data.draw(st.lists(_text, min_size=n, max_size=n)),
        duration=np.asarray(data.draw(st.lists(st.floats(0, 1e4), min_size=n, max_size=n)), dtype=np.float64),
        domain=data.draw(st.lists(_text, min_size=n, max_size=n)),
        recipe="r",
        recipe_hash="x",
    )
    fs.failures = [
        {"utt_id": u, "path": p, "reason": r}
        for u, p, r in data.draw(st.lists(st.tuples(_text, _text, _text), max_size=3))
    ]
    out = tmp_path_factory.mktemp("rt") / "s.h5"
    write_features(out, fs, chunk_rows=chunk_rows)
    back = load_features(out)
    assert_same_rows(fs, back)
    assert back.failures == fs.failures
    assert len(back) == n and back.dim == d


def test_streaming_writer_in_small_chunks_equals_bulk_write(tmp_path):
    fs = make_set(n=23, d=3)
    with StoreWriter(tmp_path / "stream.h5", fs.feature_names, fs.groups, recipe="toy", chunk_rows=4) as w:
        for i in range(len(fs)):
            w.append(
                fs.X[i], fs.utt_id[i], fs.path[i], fs.y[i], fs.speaker[i], fs.system[i], fs.domain[i], fs.duration[i]
            )
            if i == 10:
                w.add_failure("/audio/x.wav", "not decodable audio", "x")
        assert w.rows == 20  # 23 queued, flushed every 4: three are still in memory
    write_features(tmp_path / "bulk.h5", fs)
    a, b = load_features(tmp_path / "stream.h5"), load_features(tmp_path / "bulk.h5")
    assert_same_rows(a, b)
    assert a.failures == [{"utt_id": "x", "path": "/audio/x.wav", "reason": "not decodable audio"}]
    with h5py.File(tmp_path / "stream.h5", "r") as f:
        assert f["features"].chunks == (4, 3)


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path, exc):
    out = tmp_path / "s.h5"
    old = make_set(n=3, seed=1)
    write_features(out, old)
    before = out.read_bytes()
    new = make_set(n=50, seed=2)
    with pytest.raises(exc), StoreWriter(out, new.feature_names, chunk_rows=8) as w:
        for i in range(30):
            w.append(new.X[i], new.utt_id[i])
        assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # rows really went to a temp file
        raise exc()
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.h5"]
    assert_same_rows(load_features(out), old)


def test_failed_write_without_old_file_leaves_nothing(tmp_path):
    with pytest.raises(DfdetError, match="3 values"), StoreWriter(tmp_path / "s.h5", ["a", "b"]) as w:
        w.append(np.zeros(3), "u1")  # wrong width
    assert os.listdir(tmp_path) == []


def test_read_errors_are_clear(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 feature store"):
        load_features(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputError, match="not a dfdet feature store"):
        load_features(other)
    newer = tmp_path / "newer.h5"
    write_features(newer, make_set())
    with h5py.File(newer, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(InputError, match="newer than this dfdet") as e:
        load_features(newer)
    assert e.value.fix == "upgrade dfdet"
    with pytest.raises(InputError, match="no such file"):
        load_features(tmp_path / "missing.h5")


def test_merge_sorts_rows_and_concatenates_failures(tmp_path):
    full = make_set(n=9, d=4)
    a, b = full.subset([8, 0, 2, 4, 6]), full.subset([1, 3, 5, 7])  # shards, unsorted inside one
    a.failures = [{"utt_id": "z", "path": "/z.wav", "reason": "r1"}]
    b.failures = [{"utt_id": "k", "path": "/k.wav", "reason": "r2"}]
    write_features(tmp_path / "a.h5", a, shard="1/2")
    write_features(tmp_path / "b.h5", b, shard="2/2")
    merged = merge_stores([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.h5")
    back = load_features(tmp_path / "m.h5")
    assert_same_rows(back, full)
    assert back.recipe_hash == "h1" and back.recipe_config == full.recipe_config
    assert [f["reason"] for f in back.failures] == ["r2", "r1"]  # sorted by utt_id like a single run
    assert [m["shard"] for m in back.attrs["merged_from"]] == ["1/2", "2/2"]
    assert len(merged) == 9


def test_merge_errors(tmp_path):
    write_features(tmp_path / "a.h5", make_set(n=3, prefix="a"))
    write_features(tmp_path / "dup.h5", make_set(n=2, prefix="a", seed=5))
    write_features(tmp_path / "other_recipe.h5", make_set(n=2, prefix="c", recipe_hash="h2"))
    names = make_set(n=2, prefix="d")
    names.feature_names = ["g0", "g1", "g2", "g3"]
    write_features(tmp_path / "names.h5", names)
    with pytest.raises(DfdetError, match=r"'a000' is in both .*a\.h5 and .*dup\.h5"):
        merge_stores([tmp_path / "a.h5", tmp_path / "dup.h5"], tmp_path / "m.h5")
    with pytest.raises(DfdetError, match="recipe hash h2 differs"):
        merge_stores([tmp_path / "a.h5", tmp_path / "other_recipe.h5"], tmp_path / "m.h5")
    with pytest.raises(DfdetError, match="feature names differ"):
        merge_stores([tmp_path / "a.h5", tmp_path / "names.h5"], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_describe_counts_and_lists_failures():
    fs = make_set(n=6)
    fs.y = np.array([0, 1, 1, -1, 1, 0], dtype=np.int8)
    fs.failures = [{"utt_id": "b", "path": "/b.wav", "reason": "zero-length audio"}]
    s = describe(fs)
    assert s["labels"] == {"unknown": 1, "bonafide": 2, "spoof": 3}
    assert s["systems"] == {"A01": 3} and s["speakers"] == 2 and s["domains"] == {"lab": 4, "wild": 2}
    assert s["failures"] == 1 and s["failed"] == [{"path": "/b.wav", "reason": "zero-length audio"}]
    assert "failed" not in describe(fs, list_failures=False)


def test_subset_keeps_domain_aligned():
    fs = make_set(n=6)
    sub = fs.subset(np.array([False, True, False, False, False, True]))
    assert sub.domain == [fs.domain[1], fs.domain[5]] and sub.utt_id == ["u001", "u005"]


# ----------------------------------------------------------------------------------------------- corpus conditions
def _with_conditions(fs: FeatureSet) -> FeatureSet:
    n = len(fs)
    fs.codec = ["C01" if i % 2 else "" for i in range(n)]
    fs.codec_q = ["3" if i % 2 else "0" for i in range(n)]
    fs.attack = ["AC2" if fs.y[i] == 1 else "" for i in range(n)]
    fs.gender = ["MF"[i % 2] for i in range(n)]
    return fs


def test_condition_columns_round_trip_subset_and_merge(tmp_path):
    from dfdet.store import utterances_of

    fs = _with_conditions(make_set(n=6))
    write_features(tmp_path / "s.h5", fs)
    back = load_features(tmp_path / "s.h5")
    for name in ("codec", "codec_q", "attack", "gender"):
        assert getattr(back, name) == getattr(fs, name), name
    part = back.subset(np.array([5, 1]))
    assert part.codec == ["C01", "C01"] and part.gender == ["F", "F"]
    assert [u.codec_q for u in utterances_of(back)] == fs.codec_q
    other = _with_conditions(make_set(n=3, prefix="v", seed=1))
    write_features(tmp_path / "o.h5", other)
    merged = merge_stores([tmp_path / "s.h5", tmp_path / "o.h5"], tmp_path / "m.h5")
    again = load_features(tmp_path / "m.h5")
    assert again.codec == merged.codec and sorted(again.codec) == sorted(fs.codec + other.codec)
    assert describe(again)["codecs"] == {"C01": 4}


def test_streamed_conditions_and_stores_without_them(tmp_path):
    out = tmp_path / "w.h5"
    with StoreWriter(out, ["a", "b"]) as w:
        w.append(np.zeros(2), "x1", label=1, codec="C08", codec_q="2", attack="AC1", gender="M")
        w.append(np.ones(2), "x2", label=0, speaker="s1")
        with pytest.raises(TypeError, match="unknown column"):
            w.append(np.ones(2), "x3", colour="red")
    fs = load_features(out)
    assert (fs.codec, fs.codec_q, fs.attack, fs.gender, fs.speaker) == (
        ["C08", ""], ["2", ""], ["AC1", ""], ["M", ""], ["", "s1"]
    )  # fmt: skip
    with h5py.File(out, "a") as f:  # a store written before these columns existed
        for name in ("codec", "codec_q", "attack", "gender"):
            del f[name]
    old = load_features(out)
    assert old.codec == old.attack == old.gender == old.codec_q == ["", ""] and old.speaker == ["", "s1"]
