"""dfdet.audio: decoding of real files written with soundfile, mono mix, resampling, length policy, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from dfdet.audio import AUDIO_EXTENSIONS, fix_length, is_audio_path, load_audio, probe_duration, resample
from dfdet.errors import DfdetError, InputError
from tests.conftest import speechlike
from tests.fixtures import make_bad_audio, write_audio

# (file name, sample rate, soundfile kwargs, lossless)
FORMATS = [
    ("pcm16.wav", 16000, {"subtype": "PCM_16"}, True),
    ("float.wav", 22050, {"subtype": "FLOAT"}, True),
    ("x.flac", 16000, {"subtype": "PCM_24"}, True),
    ("x.aiff", 16000, {"subtype": "PCM_16"}, True),
    ("x.au", 8000, {"subtype": "PCM_16"}, True),
    ("x.w64", 16000, {"subtype": "PCM_16"}, True),
    ("x.ogg", 16000, {"format": "OGG", "subtype": "VORBIS"}, False),
    ("x.opus", 48000, {"format": "OGG", "subtype": "OPUS"}, False),
    ("x.mp3", 16000, {"format": "MP3", "subtype": "MPEG_LAYER_III"}, False),
]


@pytest.mark.parametrize(("name", "sr", "kw", "lossless"), FORMATS, ids=[f[0] for f in FORMATS])
def test_decodes_format(tmp_path, name, sr, kw, lossless):
    y = speechlike(sr=sr, seconds=0.5, seed=3)
    try:
        path = write_audio(tmp_path / name, y, sr, **kw)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        pytest.skip(f"this libsndfile cannot write {name}: {exc}")
    assert is_audio_path(path)
    out, out_sr = load_audio(path)
    assert out_sr == sr
    assert out.dtype == np.float64 and out.ndim == 1
    if lossless:
        assert len(out) == len(y)
        assert np.max(np.abs(out - y)) < 2.0 / 2**15  # 16-bit quantisation at worst
    else:
        # Lossy codecs add encoder delay/padding; the clip must still be about half a second of the same level.
        assert abs(len(out) - len(y)) < 0.1 * sr
        assert 0.3 < np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(y**2)) < 3.0
    assert probe_duration(path) == pytest.approx(len(y) / sr, abs=0.1 if not lossless else 1e-9)


def test_stereo_is_mean_of_channels(tmp_path):
    left = speechlike(seconds=0.25, seed=1)
    right = speechlike(seconds=0.25, f0=200.0, seed=2)
    path = write_audio(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="DOUBLE")
    out, sr = load_audio(path)
    assert sr == 16000
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-12)


def test_multichannel_and_upper_case_extension(tmp_path):
    chans = np.stack([np.full(100, 0.1), np.full(100, 0.2), np.full(100, 0.6)], axis=1)
    path = write_audio(tmp_path / "THREE.WAV", chans, 8000, subtype="DOUBLE")
    assert is_audio_path(path)
    out, _ = load_audio(path)
    np.testing.assert_allclose(out, np.full(100, 0.3), atol=1e-12)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resample_length_and_pitch(sr):
    t = np.arange(sr) / sr
    y = 0.5 * np.sin(2 * np.pi * 440.0 * t)  # one second of A4
    out = resample(y, sr, 16000)
    assert out.dtype == np.float64
    assert len(out) == 16000
    peak_hz = np.argmax(np.abs(np.fft.rfft(out))) * 16000 / len(out)
    assert peak_hz == pytest.approx(440.0, abs=1.0)


def test_resample_same_rate_is_identity():
    y = speechlike(seconds=0.1)
    out = resample(y, 16000, 16000)
    np.testing.assert_array_equal(out, y)
    with pytest.raises(ValueError):
        resample(y, 0, 16000)


def test_fix_length_pads_and_truncates():
    y = np.arange(1, 6, dtype=np.float64)
    np.testing.assert_array_equal(fix_length(y, 3), [1, 2, 3])
    np.testing.assert_array_equal(fix_length(y, 7), [1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fix_length(y, 5), y)
    assert len(fix_length(y, 0)) == 0
    with pytest.raises(ValueError):
        fix_length(y, -1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), max_size=50), st.integers(0, 60))
def test_fix_length_invariants(values, n):
    y = np.asarray(values, dtype=np.float64)
    out = fix_length(y, n)
    assert len(out) == n
    k = min(n, len(y))
    np.testing.assert_array_equal(out[:k], y[:k])
    assert not np.any(out[k:])


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("not_audio", "not decodable audio (soundfile:"),
        ("zero_length", "zero-length audio"),
        ("nan", "NaN or infinite"),
        ("inf", "NaN or infinite"),
    ],
)
def test_bad_audio_raises_input_error(tmp_path, kind, reason):
    path = make_bad_audio(tmp_path)[kind]
    with pytest.raises(InputError) as info:
        load_audio(path)
    err = info.value
    assert isinstance(err, DfdetError)
    assert err.path == str(path)
    assert reason in err.reason
    assert str(path) in str(err)
    assert "--skip-bad" in err.fix
    assert str(path) not in err.reason  # the path is said once, in front


def test_short_and_silent_audio_decode(tmp_path):
    bad = make_bad_audio(tmp_path)
    short, sr = load_audio(bad["short"])
    assert (len(short), sr) == (10, 16000)
    silent, _ = load_audio(bad["silent"])
    assert len(silent) == 4000 and not np.any(silent)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(InputError, match="is a directory"):
        load_audio(tmp_path)
    with pytest.raises(InputError, match="not decodable audio"):
        probe_duration(make_bad_audio(tmp_path / "b")["not_audio"])
    with pytest.raises(InputError, match="no such file"):
        probe_duration(tmp_path / "nope.flac")


def test_audio_extensions_are_lower_case_suffixes():
    assert all(e.startswith(".") and e == e.lower() for e in AUDIO_EXTENSIONS)
    assert {".wav", ".flac", ".ogg", ".mp3"} <= set(AUDIO_EXTENSIONS)
    assert not is_audio_path("x.txt") and not is_audio_path("wav")
