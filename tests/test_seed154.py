"""The fast seed154 extractor against the literal reference of ../shared/SEED154.md (tests/reference_seed154.py)."""

from __future__ import annotations

import json
import math

import librosa
import numpy as np
import pytest
import scipy.fft
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.audio import head_frames, resample
from dfdet.errors import UsageError
from dfdet.features import FeatureGroup, get_recipe, load_prepared, recipe_hash, recipe_names
from dfdet.features.seed154 import (
    MPE_ORDERS,
    MPE_SCALES,
    N_SAMPLES,
    Seed154,
    _BandedRows,
    _block_means,
    _extremes,
    dct_basis,
    hann,
    mel_filters,
    ordinal_pattern_codes,
)
from tests.conftest import speechlike
from tests.fixtures import write_audio
from tests.reference_seed154 import (
    contrast_reference,
    lfcc_reference,
    lps_reference,
    mfcc_reference,
    mpe_reference,
    mpe_vectorised,
    prepare_reference,
)

TOL = 1e-4
MPE = slice(94, 114)


def assert_close(fast: np.ndarray, ref: np.ndarray, names: list[str] | None = None) -> None:
    """Elementwise: |fast - ref| <= 1e-4 or <= 1e-4 * |ref|."""
    fast, ref = np.asarray(fast, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert fast.shape == ref.shape
    d = np.abs(fast - ref)
    bad = np.flatnonzero(~((d <= TOL) | (d <= TOL * np.abs(ref))))
    label = (lambda i: names[i]) if names else str
    assert not len(bad), [(label(i), float(fast[i]), float(ref[i])) for i in bad[:10]]


def q16(y: np.ndarray) -> np.ndarray:
    return np.round(np.clip(y, -1, 1) * 32767) / 32767


def _noise(n: int, seed: int, scale: float = 0.3) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(n)


# name -> (audio as decoded: [n] or [n, channels], sample rate)
CASES: dict[str, tuple[np.ndarray, int]] = {
    "speech_16k_2.5s": (speechlike(16000, 2.5, f0=110, seed=1), 16000),
    "speech_16k_0.7s_padded": (speechlike(16000, 0.7, f0=210, seed=2), 16000),
    "silence": (np.zeros(32000), 16000),
    "speech_q16_1.3s": (q16(speechlike(16000, 1.3, f0=140, seed=3)), 16000),
    "quiet_q16": (q16(0.002 * speechlike(16000, 2.0, f0=95, seed=4)), 16000),  # a few LSBs: ties everywhere
    "white_noise": (_noise(32000, 5), 16000),
    "speech_8k": (speechlike(8000, 2.2, f0=120, seed=6), 8000),
    "speech_22050": (speechlike(22050, 1.5, f0=180, seed=7), 22050),
    "speech_44100_3s": (speechlike(44100, 3.0, f0=100, seed=8), 44100),
    "speech_48k_q16": (q16(speechlike(48000, 1.0, f0=230, seed=9)), 48000),
    "stereo_44100": (
        np.stack([speechlike(44100, 2.1, f0=120, seed=10), _noise(int(44100 * 2.1), 11, 0.05)], axis=1),
        44100,
    ),
}


@pytest.fixture(scope="module")
def recipe():
    return get_recipe("seed154")


@pytest.fixture(scope="module")
def prepared(recipe) -> dict[str, np.ndarray]:
    return {name: recipe.prepare(y, sr) for name, (y, sr) in CASES.items()}


@pytest.fixture(scope="module")
def extracted(recipe, prepared) -> dict[str, np.ndarray]:
    return {name: recipe.extract(y) for name, y in prepared.items()}


# ---------- identity: registry, names, groups, config ----------


def test_registry_lookup(recipe) -> None:
    assert "seed154" in recipe_names()
    assert recipe.name == "seed154"
    assert recipe.sample_rate == 16000 and recipe.n_samples == 32000


def test_overrides_are_refused() -> None:
    with pytest.raises(UsageError):
        get_recipe("seed154", n_mfcc=13)


def test_names_and_groups(recipe) -> None:
    names = recipe.feature_names
    assert len(names) == 154 and len(set(names)) == 154
    assert recipe.groups == [
        FeatureGroup("LPS", 0, 40),
        FeatureGroup("LFCC", 40, 80),
        FeatureGroup("Contrast", 80, 94),
        FeatureGroup("MPE", 94, 114),
        FeatureGroup("MFCC", 114, 154),
    ]
    stops = [0] + [g.stop for g in recipe.groups]
    assert [g.start for g in recipe.groups] == stops[:-1] and stops[-1] == 154
    for g in recipe.groups:  # every name in a group says its group
        assert all(n.startswith(g.name.lower() + "_") for n in names[g.start : g.stop]), g
    fixed = {0: "lps_mean_00", 20: "lps_std_00", 59: "lfcc_mean_19", 79: "lfcc_std_19", 80: "contrast_mean_0"}
    fixed |= {93: "contrast_std_6", 94: "mpe_m3_s1", 95: "mpe_m3_s2", 99: "mpe_m4_s1", 108: "mpe_m5_s16"}
    fixed |= {113: "mpe_m6_s16", 114: "mfcc_mean_00", 153: "mfcc_std_19"}
    assert {i: names[i] for i in fixed} == fixed


def test_config_is_json_and_hash_is_stable(recipe) -> None:
    cfg = recipe.config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert recipe_hash(recipe) == recipe_hash(get_recipe("seed154"))
    text = json.dumps(cfg)
    for key in ("sample_rate", "n_samples", "n_fft", "hop_length", "n_mfcc", "n_bands", "fmin", "quantile", "tie_rule"):
        assert key in text
    assert cfg["mpe"]["orders"] == [3, 4, 5, 6] and cfg["mpe"]["scales"] == [1, 2, 4, 8, 16]
    assert "librosa" not in cfg  # the library version is provenance, not configuration


def test_recipe_hash_is_pinned(recipe) -> None:
    """Models record this hash and scoring refuses a mismatch: a config edit must be deliberate.

    If you changed the recipe on purpose, bump config()["version"] and update the hash here.
    """
    assert recipe_hash(recipe) == "64cf43da50ada57e"


# ---------- prepare ----------


@pytest.mark.parametrize("name", list(CASES))
def test_prepare_matches_reference(recipe, prepared, name) -> None:
    y, sr = CASES[name]
    out = prepared[name]
    assert out.dtype == np.float64 and out.shape == (32000,)
    np.testing.assert_allclose(out, prepare_reference(y, sr), rtol=0, atol=1e-12)


def test_prepare_length_policy(recipe) -> None:
    y = np.arange(1, 40001, dtype=np.float32) / 40000
    long = recipe.prepare(y, 16000)
    np.testing.assert_array_equal(long, y[:32000].astype(np.float64))  # keep the first 2 s
    short = recipe.prepare(y[:100], 16000)
    np.testing.assert_array_equal(short[:100], y[:100].astype(np.float64))
    assert not short[100:].any()  # zero padding at the end
    assert not recipe.prepare(np.zeros(0), 44100).any()


def test_extract_refuses_unprepared_audio(recipe) -> None:
    with pytest.raises(ValueError, match="prepare"):
        recipe.extract(np.zeros(16000))


# ---------- the vector against the literal reference ----------


@pytest.mark.parametrize("name", list(CASES))
def test_fast_matches_reference(recipe, prepared, extracted, name) -> None:
    y = prepared[name]
    fast = extracted[name]
    assert fast.dtype == np.float64 and fast.shape == (154,) and np.isfinite(fast).all()
    ref = np.concatenate(
        [lps_reference(y), lfcc_reference(y), contrast_reference(y), mpe_vectorised(y), mfcc_reference(y)]
    )
    assert_close(fast, ref, recipe.feature_names)


def _reference_vector(y: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [lps_reference(y), lfcc_reference(y), contrast_reference(y), mpe_vectorised(y), mfcc_reference(y)]
    )


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 24000, 44100, 48000])
def test_file_head_matches_whole_file_reference(recipe, tmp_path, sr) -> None:
    """A 5-s file: decoding and resampling only its first 2 s (+ margin) gives the spec's vector, which decodes the
    whole file, resamples all of it with librosa and then cuts 2 s."""
    path = write_audio(tmp_path / f"speech{sr}.flac", speechlike(sr, 5.0, f0=90 + sr / 1000, seed=sr), sr)
    prepared, duration = load_prepared(recipe, path)
    assert duration == pytest.approx(5.0)
    whole, file_sr = sf.read(path, dtype="float64")
    assert head_frames(32000, sr, 16000) < len(whole)  # only a head was needed
    ref_prepared = prepare_reference(whole, file_sr)
    np.testing.assert_allclose(prepared, ref_prepared, rtol=0, atol=1e-10)
    assert_close(recipe.extract(prepared), _reference_vector(ref_prepared), recipe.feature_names)


@pytest.mark.parametrize(
    ("sr", "seconds", "channels"), [(44100, 3.0, 2), (24000, 1.2, 1), (8000, 0.4, 2)], ids=["stereo", "short", "tiny"]
)
def test_file_stereo_and_short(recipe, tmp_path, sr, seconds, channels) -> None:
    """Stereo is the mean of channels before resampling; files under 2 s are resampled whole and zero-padded."""
    y = np.stack([speechlike(sr, seconds, f0=110 + 40 * c, seed=c) for c in range(channels)], axis=1)
    path = write_audio(tmp_path / "x.wav", y, sr, subtype="PCM_16")
    prepared, duration = load_prepared(recipe, path)
    assert duration == pytest.approx(seconds)
    whole, _ = sf.read(path, dtype="float64")
    ref_prepared = prepare_reference(whole, sr)
    np.testing.assert_allclose(prepared, ref_prepared, rtol=0, atol=1e-10)
    if seconds < 2:
        assert not prepared[int(np.ceil(seconds * 16000)) :].any()
    assert_close(recipe.extract(prepared), _reference_vector(ref_prepared), recipe.feature_names)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 24000, 44100, 48000, 96000])
def test_resample_is_librosa_default_bit_for_bit(sr) -> None:
    """dfdet.audio.resample calls soxr directly; the spec names librosa.resample's default (soxr_hq)."""
    y = speechlike(sr=sr, seconds=0.7, seed=sr)
    for target in (16000, 8000):
        np.testing.assert_array_equal(resample(y, sr, target), librosa.resample(y, orig_sr=sr, target_sr=target))


def test_tables_equal_librosa() -> None:
    """The recipe builds librosa's tables with numpy alone (no librosa/scipy import at run time)."""
    for n in (512, 2048):
        np.testing.assert_array_equal(hann(n), librosa.filters.get_window("hann", n, fftbins=True))
    for sr, n_fft, n_mels in ((16000, 2048, 128), (22050, 1024, 40), (8000, 512, 64)):
        mine, theirs = mel_filters(sr, n_fft, n_mels), librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        assert mine.dtype == theirs.dtype == np.float32
        np.testing.assert_array_equal(mine, theirs)
    for n in (1025, 128):
        ref = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)[:20].T
        np.testing.assert_allclose(dct_basis(n, 20), ref, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(np.fft.rfftfreq(2048, 1 / 16000), librosa.fft_frequencies(sr=16000, n_fft=2048))


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(16000, 2048, 128), (22050, 1024, 40), (8000, 512, 64)])
def test_banded_filterbank_is_the_dense_product(sr: int, n_fft: int, n_mels: int) -> None:
    """The mel filterbank applied in blocks of rows over the bins each block covers equals x @ W.T."""
    W = mel_filters(sr, n_fft, n_mels).astype(np.float64)
    x = np.random.default_rng(n_mels).random((2, 5, W.shape[1])) * 100
    np.testing.assert_allclose(_BandedRows(W).apply(x), x @ W.T, rtol=1e-13, atol=1e-13)
    W[:8] = 0.0  # a block of silent filters gets zeros, not an error
    np.testing.assert_allclose(_BandedRows(W).apply(x), x @ W.T, rtol=1e-13, atol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["speech_q16_1.3s", "stereo_44100"])
def test_mpe_matches_loop_reference(prepared, extracted, name) -> None:
    """The literal per-window stable-argsort loop (~1 s per clip): ties, zero padding and resampled audio."""
    assert_close(extracted[name][MPE], mpe_reference(prepared[name]))


def test_silence_values(extracted) -> None:
    v = extracted["silence"]
    np.testing.assert_allclose(v[0:20], np.log(1e-10))  # ln(0 + 1e-10) in every bin
    np.testing.assert_allclose(v[20:40], 0.0, atol=1e-12)
    np.testing.assert_allclose(v[MPE], 0.0, atol=1e-8)  # one pattern: PE = -log2(1 + 1e-10) ~ 0


def test_deterministic_and_batch_agrees(recipe, prepared) -> None:
    Y = np.stack([prepared[n] for n in ("speech_16k_2.5s", "silence", "speech_q16_1.3s", "white_noise")])
    single = np.stack([recipe.extract(y) for y in Y])
    np.testing.assert_array_equal(single, np.stack([recipe.extract(y.copy()) for y in Y]))
    np.testing.assert_allclose(recipe.extract_batch(Y), single, rtol=1e-12, atol=1e-12)
    fresh = get_recipe("seed154")  # tables rebuilt from scratch give the same numbers
    np.testing.assert_array_equal(fresh.extract(Y[0]), single[0])


# ---------- building blocks ----------


def _stable_lehmer(window: np.ndarray) -> int:
    """Lehmer code of the stable-argsort ordinal pattern, written out literally."""
    order = np.argsort(window, kind="stable")
    rank = np.empty(len(window), dtype=int)
    rank[order] = np.arange(len(window))
    m = len(window)
    return sum(sum(rank[j] < rank[i] for j in range(i + 1, m)) * math.factorial(m - 1 - i) for i in range(m))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-2, max_value=2), min_size=0, max_size=24))
def test_ordinal_codes_match_stable_argsort(values: list[int]) -> None:
    x = np.asarray(values, dtype=np.float64)
    codes = ordinal_pattern_codes(x[None, :], 6)
    for m in range(2, 7):
        c = codes[m - 2][0]
        n_win = max(len(x) - m + 1, 0)
        assert len(c) == n_win
        assert [int(v) for v in c] == [_stable_lehmer(x[t : t + m]) for t in range(n_win)]
        assert ((c >= 0) & (c < math.factorial(m))).all()


def test_entropy_bits() -> None:
    """Known entropies through the extractor's one-pass MPE: a ramp has one pattern per order and scale (0 bits); an
    alternating signal two equally frequent ones at scale 1 (1 bit) and constant block means above it (0 bits)."""
    ramp = np.arange(N_SAMPLES, dtype=np.float64)
    alternating = (np.arange(N_SAMPLES) % 2).astype(np.float64)
    pe = Seed154()._mpe(np.stack([ramp, alternating])).reshape(2, len(MPE_ORDERS), len(MPE_SCALES))
    assert MPE_SCALES[0] == 1
    np.testing.assert_allclose(pe[0], 0.0, atol=1e-8)
    np.testing.assert_allclose(pe[1, :, 0], 1.0, atol=1e-8)
    np.testing.assert_allclose(pe[1, :, 1:], 0.0, atol=1e-8)


@pytest.mark.parametrize("s", [1, 2, 3, 4, 8, 16, 24])
def test_block_means_bitwise_equal_np_mean(s: int) -> None:
    y = q16(_noise(2 * 3200, 12, 0.01)).reshape(2, 3200)
    out = np.empty((2, 3200 // s))
    _block_means(y, s, out)
    expect = np.array([[np.mean(row[i * s : (i + 1) * s]) for i in range(3200 // s)] for row in y])
    np.testing.assert_array_equal(out, expect)


@pytest.mark.parametrize("n,alpha", [(25, 1), (205, 4), (300, 3), (410, 8), (700, 8)])
def test_extremes_match_full_sort(n: int, alpha: int) -> None:
    x = np.abs(_noise(3 * n, n)).reshape(1, 3, n)
    x[0, 1, ::7] = 0.5  # ties
    lo, hi = _extremes(x, alpha)
    srt = np.sort(x, axis=-1)
    np.testing.assert_array_equal(lo, srt[..., :alpha])
    np.testing.assert_array_equal(hi, srt[..., n - alpha :])
