"""Ragged frame rows in the HDF5 store: /frames + /n_frames beside the per-row datasets, read back lazily per row."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfdet.errors import DfdetError, InputError
from dfdet.features import FeatureGroup, get_recipe, recipe_hash
from dfdet.store import FrameReader, FrameStoreWriter, StoreWriter, frame_stat_layout, load_features
from tests.conftest import speechlike


def write_rows(path, mats, names=None, groups=(), **kw):
    d = mats[0].shape[1]
    names = names or [f"c{j}" for j in range(d)]
    with FrameStoreWriter(path, names, groups, recipe="toy", recipe_hash="h", **kw) as w:
        for i, m in enumerate(mats):
            w.append_frames(m, f"u{i:03d}", label=i % 2, path=f"/a/u{i}.wav", system="A01" if i % 2 else "")
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    d=st.integers(1, 7),
    chunk_rows=st.integers(1, 5),
    chunk_frames=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_round_trip_random_lengths(tmp_path_factory, lengths, d, chunk_rows, chunk_frames, seed):
    rng = np.random.default_rng(seed)
    mats = [rng.standard_normal((n, d)) * 10 for n in lengths]
    path = tmp_path_factory.mktemp("rt") / "f.h5"
    write_rows(path, mats, chunk_rows=chunk_rows, chunk_frames=chunk_frames)
    with FrameReader(path) as r:
        assert len(r) == len(mats) and r.dim == d
        np.testing.assert_array_equal(r.n_frames, lengths)
        for i, m in enumerate(mats):
            got = r[i]
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, m.astype(np.float32))
        lo = lengths[-1] // 3
        np.testing.assert_array_equal(r.read(len(mats) - 1, lo, lo + 2), mats[-1][lo : lo + 2].astype(np.float32))
    fs = load_features(path)  # the vector reader sees the per-row frame statistics
    assert len(fs) == len(mats) and fs.dim == 2 * d and fs.utt_id == [f"u{i:03d}" for i in range(len(mats))]
    order, _, _ = frame_stat_layout([f"c{j}" for j in range(d)], [])
    for i, m in enumerate(mats):
        stats = np.concatenate([m.mean(axis=0), m.std(axis=0)])[order]
        np.testing.assert_allclose(fs.X[i], stats.astype(np.float32), rtol=1e-6, atol=1e-5)


def test_layout(tmp_path):
    path = write_rows(tmp_path / "f.h5", [np.ones((3, 4)), np.zeros((1, 4))], chunk_frames=8)
    with h5py.File(path, "r") as f:
        fr = f["frames"]
        assert fr.dtype == np.float32 and fr.shape == (4, 4) and fr.maxshape == (None, 4)
        assert fr.chunks == (8, 4) and fr.compression == "gzip"
        assert f["n_frames"].dtype == np.int64 and f["n_frames"][...].tolist() == [3, 1]
        assert f["features"].shape == (2, 8) and f["label"][...].tolist() == [0, 1]
        assert f["frame_names"].asstr()[...].tolist() == ["c0", "c1", "c2", "c3"]


def test_stat_layout_keeps_groups_contiguous():
    order, names, groups = frame_stat_layout(["a", "b", "c"], [FeatureGroup("G1", 0, 2), FeatureGroup("G2", 2, 3)])
    assert names == ["a_mean", "b_mean", "a_std", "b_std", "c_mean", "c_std"]
    assert order.tolist() == [0, 1, 3, 4, 2, 5]
    assert [(g.name, g.start, g.stop) for g in groups] == [("G1", 0, 4), ("G2", 4, 6)]


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros((2, 4)), np.zeros(3)])
def test_rows_must_be_nonempty_matrices_of_the_store_width(tmp_path, bad):
    target = tmp_path / "f.h5"
    with (
        pytest.raises(DfdetError, match=r"u1: frame matrix has shape .* needs \[T >= 1, 3\]"),
        FrameStoreWriter(target, ["a", "b", "c"]) as w,
    ):
        w.append_frames(np.ones((2, 3)), "u0")
        w.append_frames(bad, "u1")
    assert not target.exists()  # atomic: nothing left behind


def test_reader_refuses_vector_and_inconsistent_stores(tmp_path):
    vec = tmp_path / "v.h5"
    with StoreWriter(vec, ["a"]) as w:
        w.append(np.ones(1), "u0")
    with pytest.raises(InputError, match="not a frame store"):
        FrameReader(vec)
    path = write_rows(tmp_path / "f.h5", [np.ones((3, 2)), np.ones((2, 2))])
    with h5py.File(path, "r+") as f:
        f["n_frames"][1] = 5
    with pytest.raises(InputError, match="does not match /frames"):
        FrameReader(path)
    with pytest.raises(InputError, match="no such file"):
        FrameReader(tmp_path / "missing.h5")


def test_lfcc_rows_round_trip(tmp_path):
    r = get_recipe("lfcc")
    clips = [speechlike(16000, 0.02, seed=1), speechlike(22050, 0.7, seed=2)]
    mats = [r.extract(r.prepare(clips[0], 16000)), r.extract(r.prepare(clips[1], 22050))]
    path = tmp_path / "lfcc.h5"
    with FrameStoreWriter(
        path, r.feature_names, r.groups, recipe=r.name, recipe_config=r.config(), recipe_hash=recipe_hash(r)
    ) as w:
        for i, m in enumerate(mats):
            w.append_frames(m, f"c{i}", duration=0.5)
    with FrameReader(path) as rd:
        assert rd.frame_names == r.feature_names and rd.frame_groups == r.groups
        for i, m in enumerate(mats):
            np.testing.assert_array_equal(rd[i], m.astype(np.float32))
    fs = load_features(path)
    assert fs.recipe == "lfcc" and fs.recipe_hash == recipe_hash(r)
    assert fs.feature_names[:2] == ["lfcc_00_mean", "lfcc_01_mean"] and fs.dim == 120
