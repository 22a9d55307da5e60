"""The `lfcc` frame recipe (docs/LFCC.md) against the literal reference (tests/reference_lfcc.py); edges; streaming."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from dfdet.audio import load_audio
from dfdet.errors import DfdetError, InputError, UsageError
from dfdet.features import get_recipe, recipe_hash, recipe_names
from dfdet.features import lfcc as L
from tests.conftest import speechlike
from tests.reference_lfcc import EPS, filterbank_reference, lfcc_reference

TOL = 1e-6  # |fast - reference| <= 1e-6, or <= 1e-6 * |reference|


def assert_close(fast: np.ndarray, ref: np.ndarray, tol: float = TOL) -> None:
    assert fast.shape == ref.shape
    d = np.abs(fast - ref)
    bad = np.argwhere(~((d <= tol) | (d <= tol * np.abs(ref))))
    assert not len(bad), [(tuple(i), float(fast[tuple(i)]), float(ref[tuple(i)])) for i in bad[:10]]


def test_registered_as_a_frame_recipe():
    assert "lfcc" in recipe_names()
    r = get_recipe("lfcc")
    assert r.frames is True and get_recipe("seed154").frames is False
    assert r.sample_rate == 16000
    names = r.feature_names
    assert len(names) == len(set(names)) == 60
    assert names[0] == "lfcc_00" and names[20] == "dlfcc_00" and names[59] == "ddlfcc_19"
    assert [(g.name, g.start, g.stop) for g in r.groups] == [("LFCC", 0, 20), ("Delta", 20, 40), ("Delta2", 40, 60)]
    cfg = r.config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["n_fft"] == 512 and cfg["frame_length"] == 320 and cfg["frame_shift"] == 160
    assert recipe_hash(r) == recipe_hash(get_recipe("lfcc")) != recipe_hash(get_recipe("seed154"))
    with pytest.raises(UsageError):
        get_recipe("lfcc", n_fft=1024)


def test_tables_match_the_definition():
    fb = L.linear_filterbank()
    np.testing.assert_allclose(fb, np.array(filterbank_reference()).T, rtol=0, atol=1e-12)
    assert fb.shape == (257, 20) and fb[0].sum() == 0 and fb[-1].sum() == 0  # DC and 8 kHz weigh 0 (trimf ends)
    assert np.all(fb.max(axis=0) > 0.9)  # every triangle reaches near its peak between bins
    C = L.dct_matrix()
    np.testing.assert_allclose(C.T @ C, np.eye(20), atol=1e-12)  # orthonormal, all 20 coefficients (c0 kept)
    w = L.hamming(320)
    assert w[0] == pytest.approx(0.08) and w[-1] == pytest.approx(0.08) and np.allclose(w, w[::-1])


@pytest.mark.parametrize(
    ("sr", "seconds"),
    [(8000, 0.4131), (16000, 0.5), (16000, 0.3517), (22050, 0.4), (44100, 0.3333), (48000, 0.45)],
)
def test_matches_literal_reference(sr, seconds):
    n = int(round(sr * seconds)) | 1  # odd lengths
    y = speechlike(sr=sr, seconds=n / sr, f0=110.0 + sr % 97, seed=sr)
    r = get_recipe("lfcc")
    fast = r.extract(r.prepare(y, sr))
    ref = lfcc_reference(y, sr)
    assert fast.dtype == np.float64 and fast.shape[1] == 60
    assert fast.shape[0] == L.n_frames(len(L.resample_16k(y, sr))) > 10
    assert_close(fast, ref)


def test_stereo_is_mixed_to_mono_before_resampling():
    y = speechlike(22050, 0.3, seed=1)
    st = np.stack([y, 0.5 * y], axis=1)
    r = get_recipe("lfcc")
    np.testing.assert_array_equal(r.extract(r.prepare(st, 22050)), r.extract(r.prepare(0.75 * y, 22050)))


def test_frame_count_and_boundaries():
    assert [L.n_frames(n) for n in (0, 319, 320, 479, 480, 16000)] == [0, 0, 1, 1, 2, 99]
    y = speechlike(16000, 0.2, seed=3)
    # the trailing partial frame is dropped: samples after the last full frame do not change any frame
    a, b = L.lfcc_16k(y[:480]), L.lfcc_16k(y[: 480 + 159])
    np.testing.assert_array_equal(a, b)
    assert len(a) == 2 and len(L.lfcc_16k(y[:640])) == 3


def test_one_frame_clip_has_zero_deltas():
    out = L.lfcc_16k(speechlike(16000, 0.02, seed=4))  # exactly 320 samples
    assert out.shape == (1, 60)
    assert np.all(out[:, 20:] == 0) and np.all(np.isfinite(out))


@pytest.mark.parametrize("n", [0, 1, 319])
def test_shorter_than_one_frame_is_a_clear_error(n):
    r = get_recipe("lfcc")
    with pytest.raises(DfdetError, match=r"too short for one 20 ms frame \(\d+ samples at 16 kHz, need >= 320\)"):
        r.extract(r.prepare(np.full(n, 0.1), 16000))


def test_short_clip_at_44k_is_judged_after_resampling():
    r = get_recipe("lfcc")
    with pytest.raises(DfdetError, match="too short"):
        r.extract(r.prepare(speechlike(44100, 0.007), 44100))  # 309 input samples -> ~112 at 16 kHz
    assert r.extract(r.prepare(speechlike(44100, 0.025), 44100)).shape == (1, 60)  # 1102 -> 400 samples


def test_silence_is_finite_at_the_log_floor():
    out = L.lfcc_16k(np.zeros(16000))
    assert np.all(np.isfinite(out))
    # every band at log10(eps): only c0 is non-zero, = sqrt(20) * log10(eps); deltas are zero
    np.testing.assert_allclose(out[:, 0], math.sqrt(20) * math.log10(EPS), rtol=1e-12)
    np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-12)


def test_stream_push_in_any_blocks_equals_whole(tmp_path):
    sr = 22050
    y = speechlike(sr, 1.7, seed=5)
    whole = L.lfcc(y, sr)
    for cuts in ([], [1, 2, 3, 500, 501, 9000], list(range(0, len(y), 97)), [len(y) - 1]):
        stream = L.LfccStream(sr)
        bounds = [0, *cuts, len(y)]
        pairs = list(zip(bounds[:-1], bounds[1:], strict=True))
        parts = [stream.push(y[a:b], last=i == len(pairs) - 1) for i, (a, b) in enumerate(pairs)]
        got = np.concatenate(parts)
        assert got.shape == whole.shape
        assert_close(got, whole, 1e-9)


def test_streamed_file_equals_whole_file_path(tmp_path):
    """A 60-s file read in 10-s blocks gives the whole-file frames (soxr streams bit-identically)."""
    sr = 44100
    y = np.tile(speechlike(sr, 2.0, seed=6), 30) + 1e-3 * np.random.default_rng(6).standard_normal(60 * sr)
    path = tmp_path / "long.flac"
    sf.write(path, y, sr, subtype="PCM_16")
    whole = L.lfcc(*load_audio(path))
    blocks = list(L.iter_lfcc_file(path, block_seconds=10.0))
    assert len(blocks) >= 6
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape == (L.n_frames(len(L.resample_16k(load_audio(path)[0], sr))), 60)
    assert_close(streamed, whole)
    assert_close(get_recipe("lfcc").extract_file(path, block_seconds=0.37), whole)


def test_streamed_stereo_16k_file_with_blocks_shorter_than_a_frame(tmp_path):
    y = speechlike(16000, 0.8, seed=7)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([y, -0.3 * y], axis=1), 16000, subtype="FLOAT")
    assert_close(L.lfcc_file(path, block_seconds=0.013), L.lfcc(*load_audio(path)), 1e-9)


def test_streamed_file_errors_name_the_file(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.full(200, 0.1), 16000)
    with pytest.raises(InputError, match="short.wav: audio too short"):
        L.lfcc_file(short)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(InputError, match="empty.wav"):
        L.lfcc_file(empty)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.r_[np.zeros(4000), np.nan, np.zeros(4000)], 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        L.lfcc_file(nan, block_seconds=0.1)
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    with pytest.raises(InputError, match="junk.wav: not decodable"):
        L.lfcc_file(junk)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_streamed_mp3_equals_whole_file_path(tmp_path):
    """libsndfile decodes MP3 differently in several reads: the stream reads it once, then cuts blocks."""
    sr = 44100
    y = np.concatenate([speechlike(sr, 2.0, seed=8), np.zeros(sr // 2), speechlike(sr, 1.0, seed=9)])
    path = tmp_path / "a.mp3"
    sf.write(path, y, sr, format="MP3")
    assert_close(L.lfcc_file(path, block_seconds=0.5), L.lfcc(*load_audio(path)))
