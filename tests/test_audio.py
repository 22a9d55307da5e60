"""dfdet.audio: decoding of real files written with soundfile, mono mix, resampling, length policy, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

import dfdet.audio
from dfdet.audio import (
    AUDIO_EXTENSIONS,
    decode,
    fix_length,
    head_frames,
    is_audio_path,
    load_audio,
    probe_duration,
    resample,
    resample_head,
)
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


def test_empty_file_says_so(tmp_path):
    """A 0-byte file: libsndfile only says 'Format not recognised'; the decoder names the cause (CLI and app)."""
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    for call in (load_audio, decode, lambda p: decode(p, 32000, 16000), probe_duration):
        with pytest.raises(InputError) as info:
            call(path)
        assert info.value.reason == "empty file (0 bytes)" and "--skip-bad" in info.value.fix


RATES = [8000, 16000, 22050, 24000, 44100, 48000]


@pytest.mark.parametrize("sr", [*RATES, 11025, 32000, 96000])
def test_resample_head_equals_whole_resampling(sr):
    """The first 2 s at 16 kHz from the start only: the same samples as resampling the whole 5 s and cutting."""
    y = speechlike(sr=sr, seconds=5.0, seed=sr + 1)
    head = resample_head(y, sr, 16000, 32000)
    assert head.shape == (32000,)
    np.testing.assert_array_equal(head, resample(y, sr, 16000)[:32000])  # bit for bit: the margin is enough
    assert head_frames(32000, sr, 16000) < len(y)  # it really used less than the whole clip
    short = y[: sr // 2]  # shorter than the head: the whole clip is resampled, as before
    np.testing.assert_array_equal(resample_head(short, sr, 16000, 32000), resample(short, sr, 16000))


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_cached_resampler_gives_oneshot_samples(sr):
    """The per-thread soxr stream that resample() reuses must not carry state from one signal to the next: every
    call equals soxr's one-shot resampling (what librosa.resample calls), whatever came before, in any thread."""
    import threading

    import soxr

    rng = np.random.default_rng(sr)
    signals = [rng.standard_normal(n) * 0.3 for n in (sr * 3, 1, 0, 4097, sr // 3)]
    signals.append(signals[0])
    for y in signals + signals[::-1]:
        expected = fix_length(soxr.resample(y, sr, 16000, quality="HQ"), int(np.ceil(len(y) * 16000 / sr)))
        np.testing.assert_array_equal(resample(y, sr, 16000), expected)
    assert np.array_equal(resample(signals[0], sr, 16000), resample(signals[-1], sr, 16000))  # same input twice
    got: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: got.append(resample(signals[3], sr, 16000)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(got[0], resample(signals[3], sr, 16000))


@pytest.mark.parametrize(
    ("name", "sr", "kw"),
    [
        ("h.wav", 48000, {"subtype": "PCM_16"}),
        ("h.flac", 24000, {"subtype": "PCM_16"}),
        ("h.ogg", 16000, {"format": "OGG", "subtype": "VORBIS"}),
        ("h.mp3", 22050, {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
    ],
)
def test_decode_head_is_the_start_of_the_whole_decode(tmp_path, name, sr, kw):
    y = np.stack([speechlike(sr=sr, seconds=4.0, seed=5), speechlike(sr=sr, seconds=4.0, f0=190.0, seed=6)], axis=1)
    try:
        path = write_audio(tmp_path / name, y, sr, **kw)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        pytest.skip(f"this libsndfile cannot write {name}: {exc}")
    whole, whole_sr = load_audio(path)
    head = decode(path, 32000, 16000)
    assert head.sr == whole_sr == sr
    assert head.duration == pytest.approx(len(whole) / sr)  # the whole file's duration, not the head's
    np.testing.assert_array_equal(head.y, whole[: len(head.y)])  # mono mix of the same decoded samples
    assert len(head.y) == head_frames(32000, sr, 16000) < len(whole)
    full = decode(path)
    assert (full.sr, full.duration) == (sr, len(whole) / sr) and np.array_equal(full.y, whole)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("r.flac", {"subtype": "PCM_16"}),
        ("r.wav", {"subtype": "FLOAT"}),
        ("r.ogg", {"format": "OGG", "subtype": "VORBIS"}),
        ("r.mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("binding", [True, False], ids=["binding", "fallback"])
def test_decode_reads_what_soundfile_reads(tmp_path, monkeypatch, name, kw, channels, binding):
    """decode() reads through soundfile's libsndfile binding (no seek after the read), or through SoundFile.read
    should soundfile's internals change: the samples of sf.read either way, for a head, the whole file and a
    request past the end."""
    if not binding:  # dfdet.audio sees a soundfile without the private binding; soundfile itself keeps it

        class _PublicSoundfile:
            _snd = None

            def __getattr__(self, name):
                return getattr(sf, name)

        monkeypatch.setattr(dfdet.audio, "sf", _PublicSoundfile())
    sr = 22050
    y = np.stack([speechlike(sr=sr, seconds=3.0, f0=120.0 + 50 * c, seed=c) for c in range(channels)], axis=1)
    try:
        path = write_audio(tmp_path / name, y, sr, **kw)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        pytest.skip(f"this libsndfile cannot write {name}: {exc}")
    ref, _ = sf.read(path, dtype="float64", always_2d=True)
    mono = ref.mean(axis=1) if channels > 1 else ref[:, 0]
    head = decode(path, 16000, 16000)  # 16 000 frames at 22.05 kHz: the rates differ, so a margin is read too
    np.testing.assert_array_equal(head.y, mono[: head_frames(16000, sr, 16000)])
    np.testing.assert_array_equal(decode(path).y, mono)
    np.testing.assert_array_equal(decode(path, 10 * sr, sr).y, mono)  # more than the file has: all of it


def test_decode_head_of_a_short_file_is_the_whole_file(tmp_path):
    y = speechlike(sr=44100, seconds=1.2, seed=8)
    path = write_audio(tmp_path / "short.flac", y, 44100, subtype="PCM_24")
    head = decode(path, 32000, 16000)
    whole, _ = load_audio(path)
    np.testing.assert_array_equal(head.y, whole)
    assert head.duration == pytest.approx(1.2)


def test_decode_head_checks_the_decoded_samples(tmp_path):
    """NaN inside the decoded head is refused as for a whole decode."""
    y = speechlike(sr=16000, seconds=3.0, seed=9)
    y[1000] = np.nan
    path = write_audio(tmp_path / "nan.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN or infinite"):
        decode(path, 32000, 16000)
