"""Audio decoding (soundfile), mono mix, resampling (soxr) and the fixed-length policy.

Every decoding failure becomes an InputError naming the file, so `--skip-bad` can report it per input and the strict
default can stop with one clear line. A recipe that reads only the start of an utterance decodes and resamples only
that start (`decode(path, n_out, target_sr)`, `resample_head`), with the same numbers as decoding the whole file.
Resampling calls soxr directly, exactly as librosa.resample's default does, without importing librosa (seconds of
start-up through numba and scipy.signal).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import soundfile as sf

from dfdet.errors import InputError

# Extensions soundfile (libsndfile >= 1.1) decodes; matched case-insensitively when directories are walked.
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aif",
    ".aiff",
    ".aifc",
    ".au",
    ".snd",
    ".w64",
    ".rf64",
    ".caf",
)

SKIP_FIX = "check the file or pass --skip-bad"

# Decoding errors soundfile raises for files it cannot parse (LibsndfileError subclasses RuntimeError).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, ValueError, TypeError, EOFError)
if hasattr(sf, "SoundFileError"):
    _DECODE_ERRORS = (sf.SoundFileError, *_DECODE_ERRORS)


# Containers of PCM or FLAC, whose samples do not depend on a seek to the start before reading (one costs ~25 us on
# a FLAC file); lossy decoders (MP3, Vorbis, Opus) are read as sf.read reads them, after one.
_EXACT_FROM_OPEN = frozenset({"WAV", "WAVEX", "FLAC", "AIFF", "AU", "W64", "RF64", "CAF"})


# Integer sample codes: their decoded floats cannot be NaN or infinite, so they skip that check.
_INTEGER_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ULAW", "ALAW"})


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the name ends in one of AUDIO_EXTENSIONS (any case)."""
    return os.path.splitext(str(path))[1].lower() in AUDIO_EXTENSIONS


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(
            path,
            "is a directory, not an audio file",
            "pass audio files (directories are walked only as input arguments)",
        )
    if not path.exists():
        raise InputError(path, "no such file", "check the path (list/label file entries are relative to that file)")


def _reason(exc: BaseException) -> str:
    # LibsndfileError's str() repeats the path ("Error opening '...': Format not recognised."); keep the cause.
    text = getattr(exc, "error_string", None) or getattr(exc, "strerror", None) or str(exc)
    text = " ".join(str(text).split()).rstrip(".") or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _decode_error(p: Path, exc: BaseException) -> InputError:
    """The InputError for a failed decode; stat()s only on this failure path to say 'missing', 'directory', 'empty'."""
    _check_file(p)
    try:
        empty = p.stat().st_size == 0
    except OSError:
        empty = False
    if empty:  # libsndfile only says "Format not recognised"
        return InputError(p, "empty file (0 bytes)", "remove the file or pass --skip-bad")
    if isinstance(exc, PermissionError):
        return InputError(p, f"unreadable ({_reason(exc)})", "check the file permissions or pass --skip-bad")
    if isinstance(exc, OSError) and not isinstance(exc, _DECODE_ERRORS):
        return InputError(p, f"unreadable ({_reason(exc)})", SKIP_FIX)
    return InputError(p, f"not decodable audio (soundfile: {_reason(exc)})", SKIP_FIX)


class Decoded(NamedTuple):
    """Mono float64 samples, their rate, and the duration of the whole file in seconds."""

    y: np.ndarray
    sr: int
    duration: float


def decode(path: str | os.PathLike, n_out: int | None = None, target_sr: int | None = None) -> Decoded:
    """Decode a file to mono float64 (channels averaged); with `n_out` and `target_sr`, only its start.

    The start is the input frames that the first `n_out` samples of `resample(y, sr, target_sr)` depend on
    (`head_frames`), so `resample_head` of it equals `resample_head` of the whole file. The duration is still the
    whole file's: the header's frame count, which is also where a whole decode stops (sf.read reads that many; for an
    MP3 without a Xing/Info tag it is libsndfile's estimate, and a shorter stream then gives a shorter whole decode,
    which the head read does not see). Raises InputError for a missing file, a directory, an empty file, unreadable or
    non-audio content, zero-length audio and NaN/infinite samples among those decoded, each with a fix hint.
    """
    p = Path(path)
    try:
        with sf.SoundFile(str(p)) as f:
            sr, total, frames = int(f.samplerate), int(f.frames), -1
            if n_out is not None and target_sr is not None:
                frames = head_frames(n_out, sr, target_sr)
            if f.format not in _EXACT_FROM_OPEN and f.seekable():
                f.seek(0)  # as sf.read does: libmpg123's samples differ (last float32 bit) without this seek
            data = _read_start(f, frames if frames >= 0 else total)
            integer = f.subtype in _INTEGER_SUBTYPES
    except (OSError, *_DECODE_ERRORS) as exc:
        raise _decode_error(p, exc) from exc
    if data.size == 0:
        raise InputError(p, "zero-length audio (0 samples)", "remove the file or pass --skip-bad")
    if not integer and not np.isfinite(data).all():  # integer samples are finite by construction
        raise InputError(p, "audio contains NaN or infinite samples", "re-export the file or pass --skip-bad")
    y = data if data.ndim == 1 else data.mean(axis=1)
    n = total if 0 <= frames == len(y) else len(y)  # a head read: the header's length; else what was decoded
    return Decoded(y, sr, n / float(sr))


def _read_start(f: sf.SoundFile, frames: int) -> np.ndarray:
    """`f.read(frames, dtype="float64")` at the start of `f`: mono 1-D (no column to copy out), else [n, channels].

    Through soundfile's own libsndfile binding when it has one: SoundFile.read ends by seeking to where it stopped
    (for files also open for writing), and on FLAC that seek decodes a block again: 0.05 ms a 16 kHz file with the
    malloc settings of `dfdet featurize` (dfdet.heap), 0.2 ms without. Falls back to SoundFile.read should
    soundfile's internals change.
    """
    snd, ffi, handle = getattr(sf, "_snd", None), getattr(sf, "_ffi", None), getattr(f, "_file", None)
    if snd is None or ffi is None or handle is None or not f.seekable():
        return f.read(frames, dtype="float64", always_2d=f.channels != 1)
    out = np.empty((max(0, min(frames, f.frames)), f.channels))  # as read() caps it: what the header says is left
    got = snd.sf_readf_double(handle, ffi.cast("double *", out.__array_interface__["data"][0]), len(out))
    err = snd.sf_error(handle)
    if err:
        raise sf.LibsndfileError(err) if hasattr(sf, "LibsndfileError") else RuntimeError(f"libsndfile error {err}")
    return out[:got, 0] if f.channels == 1 else out[:got]


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The whole file as mono float64 (channels averaged) and its sample rate; errors as for `decode`."""
    y, sr, _ = decode(path)
    return y, sr


def probe_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the header only (cheap metadata; MP3 durations are estimates)."""
    p = Path(path)
    try:
        info = sf.info(str(p))
    except (OSError, *_DECODE_ERRORS) as exc:
        raise _decode_error(p, exc) from exc
    return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0


def resample(y: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """librosa.resample's default, bit for bit: soxr HQ ('soxr_hq'), then fixed to ceil(len * ratio) samples.

    A no-op (float64, copy-free) when the rates already match.
    """
    y = np.asarray(y, dtype=np.float64)
    if int(sr) == int(target_sr):
        return y
    if sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {sr} -> {target_sr}")
    out = _soxr_hq(int(sr), int(target_sr)).resample_chunk(np.ascontiguousarray(y), last=True)
    n = int(np.ceil(len(y) * (float(target_sr) / int(sr))))  # librosa's length rule, in its float arithmetic
    return np.asarray(fix_length(out, n), dtype=np.float64)


_RESAMPLERS = threading.local()  # per thread: a soxr stream is not safe to share


def _soxr_hq(sr: int, target_sr: int) -> Any:
    """This thread's soxr HQ mono float64 stream for sr -> target_sr, cleared for a new signal.

    One chunk with last=True through a cleared stream gives soxr.resample's (librosa's) samples bit for bit
    (tests/test_audio.py checks it), without designing the filter again for every file (~0.04 ms at 22.05 and
    44.1 kHz, where the ratio is not simple).
    """
    cache = _RESAMPLERS.__dict__
    stream = cache.get((sr, target_sr))
    if stream is None:
        import soxr

        stream = cache[(sr, target_sr)] = soxr.ResampleStream(sr, target_sr, 1, dtype="float64", quality="HQ")
    else:
        stream.clear()
    return stream


def resample_margin(sr: int, target_sr: int) -> int:
    """Input frames read past the last one that the kept output samples lie over, so that they come out exactly.

    soxr's HQ filter reaches a few hundred frames ahead, and its block processing makes the final ~0.1 s of output
    depend (by ~1e-9) on where the input ends; measured with soxr 1.1 at 8-96 kHz (random and tonal signals of
    random lengths), outputs are identical to the whole-file resampling once 697 frames (8 kHz), 1,360 (44.1 kHz),
    1,178 (48 kHz) or 3,950 (96 kHz) follow, whatever the signal. This margin (1/16 s + 1,024 frames: 2.2x, 2.8x,
    3.4x and 1.8x those) has room to spare; tests/test_audio.py checks it bit for bit at 8 to 96 kHz.
    """
    return 0 if int(sr) == int(target_sr) else int(sr) // 16 + 1024


def head_frames(n_out: int, sr: int, target_sr: int) -> int:
    """Input frames at `sr` that the first `n_out` output samples at `target_sr` need (margin included)."""
    if int(sr) == int(target_sr):
        return int(n_out)
    return math.ceil(int(n_out) * int(sr) / int(target_sr)) + resample_margin(sr, target_sr)


def resample_head(y: np.ndarray, sr: int, target_sr: int, n_out: int) -> np.ndarray:
    """`resample(y, sr, target_sr)[:n_out]`, computed from the start of `y` only (`head_frames` of it)."""
    y = np.asarray(y, dtype=np.float64)
    return resample(y[: head_frames(n_out, sr, target_sr)], sr, target_sr)[:n_out]


def fix_length(y: np.ndarray, n: int) -> np.ndarray:
    """Exactly n samples: keep the first n, or zero-pad at the end."""
    if n < 0:
        raise ValueError(f"length must be >= 0, got {n}")
    y = np.asarray(y)
    if len(y) >= n:
        return y[:n]
    out = np.zeros(n, dtype=y.dtype)
    out[: len(y)] = y
    return out
