"""Audio decoding (soundfile), mono mix, resampling and the fixed-length policy.

Every decoding failure becomes an InputError naming the file, so `--skip-bad` can report it per input and the strict
default can stop with one clear line. librosa is imported lazily: `dfdet --help` must not pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path

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
    """The InputError for a failed decode; stat()s only on this failure path to say 'missing' or 'directory'."""
    _check_file(p)
    if isinstance(exc, PermissionError):
        return InputError(p, f"unreadable ({_reason(exc)})", "check the file permissions or pass --skip-bad")
    if isinstance(exc, OSError) and not isinstance(exc, _DECODE_ERRORS):
        return InputError(p, f"unreadable ({_reason(exc)})", SKIP_FIX)
    return InputError(p, f"not decodable audio (soundfile: {_reason(exc)})", SKIP_FIX)


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode a file to mono float64 (channels averaged) and its sample rate.

    Raises InputError for a missing file, a directory, unreadable or non-audio content, zero-length audio and
    NaN/infinite samples (float WAVs can carry them), each with a fix hint.
    """
    p = Path(path)
    try:
        data, sr = sf.read(str(p), dtype="float64", always_2d=True)
    except (OSError, *_DECODE_ERRORS) as exc:
        raise _decode_error(p, exc) from exc
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise InputError(p, "zero-length audio (0 samples)", "remove the file or pass --skip-bad")
    if not np.isfinite(data).all():
        raise InputError(p, "audio contains NaN or infinite samples", "re-export the file or pass --skip-bad")
    y = data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1)
    return y, int(sr)


def probe_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the header only (cheap metadata; MP3 durations are estimates)."""
    p = Path(path)
    try:
        info = sf.info(str(p))
    except (OSError, *_DECODE_ERRORS) as exc:
        raise _decode_error(p, exc) from exc
    return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0


def resample(y: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Resample with librosa's default (soxr_hq); a no-op (float64 copy-free) when the rates already match."""
    y = np.asarray(y, dtype=np.float64)
    if int(sr) == int(target_sr):
        return y
    if sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {sr} -> {target_sr}")
    import librosa

    return np.asarray(librosa.resample(y, orig_sr=int(sr), target_sr=int(target_sr)), dtype=np.float64)


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
