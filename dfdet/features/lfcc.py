"""The `lfcc` frame recipe: the ASVspoof 2019 LA baseline LFCC front end over the whole utterance (docs/LFCC.md).

Why a frame recipe: every 154-D model sees only the first 2 s; the field's reference detectors (LFCC-GMM, LFCC-LCNN)
read whole utterances frame by frame. The definition follows `extract_lfcc.m` of the ASVspoof 2019 baseline (20 ms
Hamming frames every 10 ms, 512-point power spectrum, 20 linear triangular filters 0-8 kHz, log10, orthonormal DCT-II
keeping all 20 coefficients, deltas over +-1 frame) on audio resampled once to 16 kHz with soxr HQ. One utterance
becomes a float64 [T, 60] matrix. Long files stream through `iter_lfcc_file` in blocks with bounded memory and give
the same frames as the whole-file path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dfdet.errors import DfdetError, InputError
from dfdet.features.base import BandView, FeatureGroup, register_recipe

SR = 16000
WIN, HOP, N_FFT = 320, 160, 512  # 20 ms / 10 ms at 16 kHz
N_FILTERS = N_CEPS = 20
FMIN, FMAX = 0.0, SR / 2
PREEMPH = 0.97
LOG_FLOOR = float(np.finfo(np.float64).eps)  # MATLAB's `eps` in log10(filbanksum + eps)
DIM = 3 * N_CEPS
BLOCK_SECONDS = 10.0
_CHUNK_FRAMES = 128  # frames per FFT batch: temporaries stay in cache (measured fastest of 32-1024)
RESAMPLE_QUALITY = "HQ"  # librosa.resample's default res_type 'soxr_hq'

GROUPS = [
    FeatureGroup("LFCC", 0, N_CEPS),
    FeatureGroup("Delta", N_CEPS, 2 * N_CEPS),
    FeatureGroup("Delta2", 2 * N_CEPS, DIM),
]


def frame_names() -> list[str]:
    """`lfcc_00`..`lfcc_19`, then `dlfcc_*` (delta) and `ddlfcc_*` (delta-delta)."""
    return [f"{p}lfcc_{i:02d}" for p in ("", "d", "dd") for i in range(N_CEPS)]


def hamming(n: int) -> np.ndarray:
    """MATLAB's `hamming(n)` (symmetric): 0.54 - 0.46 cos(2 pi k / (n - 1))."""
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(n) / (n - 1))


def linear_filterbank() -> np.ndarray:
    """[N_FFT/2+1, N_FILTERS] triangles (MATLAB trimf) on bin frequencies, edges linspace(FMIN, FMAX, N_FILTERS+2)."""
    f = np.arange(N_FFT // 2 + 1) * (SR / N_FFT)
    edges = np.linspace(FMIN, FMAX, N_FILTERS + 2)
    a, b, c = edges[:-2], edges[1:-1], edges[2:]
    rise = (f[:, None] - a) / (b - a)
    fall = (c - f[:, None]) / (c - b)
    return np.clip(np.minimum(rise, fall), 0.0, None)


def dct_matrix() -> np.ndarray:
    """[N_FILTERS, N_CEPS] orthonormal DCT-II (MATLAB `dct`, scipy norm='ortho'): log-energies @ it -> cepstra."""
    n, k = np.arange(N_FILTERS)[:, None], np.arange(N_CEPS)[None, :]
    scale = np.where(k == 0, np.sqrt(1.0 / N_FILTERS), np.sqrt(2.0 / N_FILTERS))
    return scale * np.cos(np.pi * k * (2 * n + 1) / (2 * N_FILTERS))


def n_frames(n_samples: int) -> int:
    """Full 320-sample frames every 160 samples from sample 0 (a trailing partial frame is dropped)."""
    return 0 if n_samples < WIN else 1 + (n_samples - WIN) // HOP


def too_short(n_samples: int) -> DfdetError:
    return DfdetError(
        f"audio too short for one {1000 * WIN // SR} ms frame ({n_samples} samples at 16 kHz, need >= {WIN})",
        "drop clips under 20 ms or pass --skip-bad",
    )


def resample_16k(y: np.ndarray, sr: int) -> np.ndarray:
    """Mono float64 at 16 kHz: soxr HQ (librosa's default), soxr's own output length; a no-op at 16 kHz."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    if int(sr) == SR or len(y) == 0:
        return y
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    import soxr

    return np.asarray(soxr.resample(y, int(sr), SR, quality=RESAMPLE_QUALITY), dtype=np.float64)


def preemphasis(y: np.ndarray, prev: float = 0.0) -> np.ndarray:
    """z[n] = y[n] - 0.97 y[n-1] (MATLAB filter([1 -0.97], 1, y)); `prev` is y[-1] when y continues a stream."""
    z = np.empty_like(y)
    if len(y):
        z[0] = y[0] - PREEMPH * prev
        np.subtract(y[1:], PREEMPH * y[:-1], out=z[1:])
    return z


class _Tables:
    """Window, filterbank and DCT, built once per process."""

    def __init__(self) -> None:
        self.window = hamming(WIN)
        self.fb = linear_filterbank()
        self.fb2 = np.repeat(self.fb, 2, axis=0)  # applied to interleaved re^2, im^2
        self.dct = dct_matrix()


_TABLES: _Tables | None = None


def _tables() -> _Tables:
    global _TABLES
    if _TABLES is None:
        _TABLES = _Tables()
    return _TABLES


def static_lfcc(z: np.ndarray) -> np.ndarray:
    """Pre-emphasised 16 kHz audio -> static LFCC [n_frames(len(z)), 20] (float64), in FFT batches.

    The power spectrum is never formed as re^2 + im^2: the rfft output viewed as interleaved floats is squared in
    place and summed by a filterbank with each row doubled (one contiguous pass instead of three).
    """
    t = _tables()
    T = n_frames(len(z))
    out = np.empty((T, N_CEPS))
    if T == 0:
        return out
    view = np.lib.stride_tricks.sliding_window_view(z, WIN)[::HOP]
    buf = np.zeros((min(T, _CHUNK_FRAMES), N_FFT))  # frames zero-padded to 512 (MATLAB fft(frame, NFFT))
    for s in range(0, T, _CHUNK_FRAMES):
        b = buf[: min(_CHUNK_FRAMES, T - s)]
        np.multiply(view[s : s + len(b)], t.window, out=b[:, :WIN])
        X = np.fft.rfft(b, axis=-1).view(np.float64)  # [n, 2 * 257]: re, im, re, im, ...
        np.multiply(X, X, out=X)
        out[s : s + len(b)] = np.log10(X @ t.fb2 + LOG_FLOOR) @ t.dct
    return out


def with_deltas(S: np.ndarray, first: int, start: int, stop: int, last: int) -> np.ndarray:
    """Frames start..stop-1 of [S, delta S, delta-delta S] -> [stop - start, 60].

    S holds static frames with global indices first..first+len(S)-1; `last` is the utterance's last frame index (edges
    are replicated there, as deltas.m pads). delta[t] = S[t+1] - S[t-1] (deltas.m with w=3: no 1/2 factor).
    """
    u = np.clip(np.arange(start - 1, stop + 1), 0, last)  # frames whose delta is needed
    D = S[np.clip(u + 1, 0, last) - first] - S[np.clip(u - 1, 0, last) - first]
    t = np.arange(start, stop)
    DD = D[np.clip(t + 1, 0, last) - (start - 1)] - D[np.clip(t - 1, 0, last) - (start - 1)]
    return np.concatenate([S[start - first : stop - first], D[t - (start - 1)], DD], axis=1)


def log_energies_of_frames(frames: np.ndarray) -> np.ndarray:
    """[T, 60] frames -> [T, 20] log10 filterbank energies: the DCT is orthonormal and square, so its transpose
    inverts it (the deltas are functions of the static columns)."""
    return np.asarray(frames, dtype=np.float64)[:, :N_CEPS] @ dct_matrix().T


def frames_of_log_energies(E: Any) -> Any:
    """torch [..., T, 20] log10 filterbank energies -> [..., T, 60] frames, as `with_deltas` computes them (edges
    replicated): the differentiable map gradient tools attribute through."""
    import torch

    dct = torch.as_tensor(dct_matrix(), dtype=E.dtype, device=E.device)
    S = E @ dct
    t = torch.arange(S.shape[-2], device=E.device)
    nxt, prv = t.add(1).clamp(max=len(t) - 1), t.sub(1).clamp(min=0)

    def delta(x: Any) -> Any:
        return x[..., nxt, :] - x[..., prv, :]

    D = delta(S)
    return torch.cat([S, D, delta(D)], dim=-1)


def band_view() -> BandView:
    centres = np.linspace(FMIN, FMAX, N_FILTERS + 2)[1:-1]
    return BandView(
        names=[f"{c:.0f} Hz" for c in centres],
        centres_hz=[float(c) for c in centres],
        bands_of_frames=log_energies_of_frames,
        frames_of_bands=frames_of_log_energies,
    )


def lfcc(y: np.ndarray, sr: int) -> np.ndarray:
    """Whole utterance (mono, any rate) -> float64 [T, 60]; raises DfdetError when it is shorter than one frame."""
    return lfcc_16k(resample_16k(y, sr))


def lfcc_16k(y16: np.ndarray) -> np.ndarray:
    """Mono float64 audio at 16 kHz -> [T, 60]."""
    y16 = np.asarray(y16, dtype=np.float64)
    S = static_lfcc(preemphasis(y16))
    if len(S) == 0:
        raise too_short(len(y16))
    return with_deltas(S, 0, 0, len(S), len(S) - 1)


class LfccStream:
    """Push mono audio blocks at `sr`, get [t, 60] frame blocks: equal to `lfcc` of the whole signal.

    Carries state between blocks: soxr's streaming resampler (bit-identical to one-shot soxr.resample), the last
    sample for pre-emphasis, the samples of the next partial frame, and two frames of look-back/ahead for the deltas.
    """

    def __init__(self, sr: int) -> None:
        import soxr

        self.sr = int(sr)
        self._rs = None if self.sr == SR else soxr.ResampleStream(self.sr, SR, 1, dtype="float64", quality="HQ")
        self._prev = 0.0
        self._tail = np.zeros(0)
        self._S = np.zeros((0, N_CEPS))
        self._first = 0  # global index of self._S[0]
        self._emitted = 0
        self.n_samples_16k = 0

    def push(self, y: np.ndarray, last: bool = False) -> np.ndarray:
        y = np.ascontiguousarray(y, dtype=np.float64)
        if self._rs is not None:
            y = np.asarray(self._rs.resample_chunk(y, last=last), dtype=np.float64)
        self.n_samples_16k += len(y)
        z = np.concatenate([self._tail, preemphasis(y, self._prev)])
        if len(y):
            self._prev = float(y[-1])
        T = n_frames(len(z))
        self._tail = z[T * HOP :]
        S = np.concatenate([self._S, static_lfcc(z)]) if T else self._S
        available = self._first + len(S)
        stop = available if last else available - 2  # a delta-delta needs two frames ahead
        if last and available == 0:
            raise too_short(self.n_samples_16k)
        out = np.zeros((0, DIM))
        if stop > self._emitted:
            out = with_deltas(S, self._first, self._emitted, stop, available - 1)
            self._emitted = stop
        keep = max(self._first, self._emitted - 2)
        self._S, self._first = S[keep - self._first :], keep
        return out


# libsndfile decodes MP3 differently when it is read in several calls (measured: up to 2e-2 on a generated file, one
# float32 step on the realspeech MP3s), so an MP3 is decoded in one float32 read (the same samples as a float64 read)
# and only then cut into blocks: bounded memory holds for every other format.
_ONE_READ_FORMATS = frozenset({"MP3"})


def _read_blocks(f: Any, block: int) -> Iterator[np.ndarray]:
    """[n, channels] float64 blocks of an open SoundFile, from its start."""
    if f.seekable():
        f.seek(0)
    if f.format in _ONE_READ_FORMATS:
        data = f.read(dtype="float32", always_2d=True)
        for s in range(0, len(data), block):
            yield data[s : s + block].astype(np.float64)
        return
    while True:
        data = f.read(block, dtype="float64", always_2d=True)
        if not len(data):
            return
        yield data


def decoded_blocks(
    path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS
) -> Iterator[tuple[np.ndarray, int, bool]]:
    """(mono float64 block (channel mean), sample rate, is it the last) of a file read through soundfile
    `block_seconds` at a time. Decoding problems, zero-length and NaN audio raise InputError naming the file, as
    `dfdet.audio.load_audio` does."""
    import soundfile as sf

    from dfdet.audio import _DECODE_ERRORS, _decode_error

    p = Path(path)
    try:
        f = sf.SoundFile(str(p))
    except (OSError, *_DECODE_ERRORS) as exc:
        raise _decode_error(p, exc) from exc
    with f:
        sr = int(f.samplerate)
        blocks = _read_blocks(f, max(1, int(round(block_seconds * sr))))
        try:
            data = next(blocks, None)
            if data is None:
                raise InputError(p, "zero-length audio (0 samples)", "remove the file or pass --skip-bad")
            while data is not None:
                nxt = next(blocks, None)
                if not np.isfinite(data).all():
                    raise InputError(
                        p, "audio contains NaN or infinite samples", "re-export the file or pass --skip-bad"
                    )
                yield (data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)), sr, nxt is None
                data = nxt
        except (OSError, *_DECODE_ERRORS) as exc:
            raise _decode_error(p, exc) from exc


def _file_blocks(path: str | os.PathLike, block_seconds: float) -> Iterator[tuple[np.ndarray, int, int]]:
    """(frames [t, 60], input samples decoded for them, sample rate) per block read; see `iter_lfcc_file`."""
    stream: LfccStream | None = None
    for y, sr, last in decoded_blocks(path, block_seconds):
        stream = stream or LfccStream(sr)
        try:
            out = stream.push(y, last=last)
        except DfdetError as e:
            raise InputError(Path(path), e.what, e.fix) from e
        yield out, len(y), sr


def iter_lfcc_file(path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """[t, 60] blocks of one file's LFCC, read through soundfile `block_seconds` at a time (memory bounded by the
    block, not the file; MP3 excepted, see _ONE_READ_FORMATS). Decoding problems raise InputError naming the file, as
    `dfdet.audio.load_audio` does."""
    for out, _, _ in _file_blocks(path, block_seconds):
        if len(out):
            yield out


def read_lfcc_file(path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS) -> tuple[np.ndarray, float]:
    """One file's frames as float32 [T, 60] (what a store keeps) and its decoded duration in seconds, streamed.

    Each block is narrowed to float32 as it arrives, so memory is the float32 frames (twice, while they are joined)
    plus one block of audio, never the decoded file.
    """
    parts: list[np.ndarray] = []
    n_in, rate = 0, SR
    for out, n, sr in _file_blocks(path, block_seconds):
        n_in, rate = n_in + n, sr
        if len(out):
            parts.append(out.astype(np.float32))
    return np.concatenate(parts), n_in / float(rate)


def lfcc_file(path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS) -> np.ndarray:
    """One file's [T, 60] LFCC, streamed in blocks (see `iter_lfcc_file`)."""
    blocks = list(iter_lfcc_file(path, block_seconds))
    return np.concatenate(blocks) if blocks else np.zeros((0, DIM))


@register_recipe("lfcc")
class Lfcc:
    """The `lfcc` recipe: prepare() resamples to 16 kHz (no length policy), extract() returns [T, 60] (float64)."""

    name = "lfcc"
    sample_rate = SR
    frames = True  # extract() gives a [T, D] matrix per utterance, not a vector

    def __init__(self, **overrides: Any) -> None:
        if overrides:
            from dfdet.errors import UsageError

            raise UsageError(
                f"recipe lfcc has no tunable parameters (got {', '.join(sorted(overrides))})",
                "drop the recipe options, or register a new recipe",
            )

    def config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "reference": "ASVspoof 2019 LA baseline extract_lfcc.m (Sahidullah et al., Interspeech 2015)",
            "sample_rate": SR,
            "mono": "mean of channels",
            "resample": "soxr.resample quality='HQ' (librosa's soxr_hq), soxr's output length, once per utterance",
            "length_policy": "whole utterance",
            "pre_emphasis": PREEMPH,
            "frame_length": WIN,
            "frame_shift": HOP,
            "framing": "full frames from sample 0, no centering; trailing partial frame dropped; < 1 frame: error",
            "window": "hamming, symmetric (MATLAB hamming)",
            "n_fft": N_FFT,
            "spectrum": "|rfft(frame, 512)|^2",
            "filterbank": {
                "n_filters": N_FILTERS,
                "fmin": FMIN,
                "fmax": FMAX,
                "shape": "triangles (trimf) on bin frequencies, edges linspace(fmin, fmax, n_filters + 2)",
            },
            "log": "log10(E + eps)",
            "log_floor": LOG_FLOOR,
            "dct": "II ortho",
            "n_ceps": N_CEPS,
            "c0": "kept (no energy replacement)",
            "deltas": "d[t] = x[t+1] - x[t-1], edges replicated (deltas.m, w=3); delta-delta = delta of delta",
            "order": "static, delta, delta-delta",
            "dtype": "float64",
        }

    feature_names: list[str] = frame_names()
    groups: list[FeatureGroup] = list(GROUPS)

    def band_view(self) -> BandView:
        """Frames as a function of the 20 log filterbank energies (time-frequency attributions)."""
        return band_view()

    def prepare(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Float audio [n] or [n, channels] at any rate -> mono (channel mean) float64 at 16 kHz, whole utterance."""
        y = np.asarray(y, dtype=np.float64)
        mono = y.mean(axis=1) if y.ndim == 2 else y
        if mono.ndim != 1:
            raise ValueError(f"expected audio [n] or [n, channels], got shape {y.shape}")
        return resample_16k(mono, sr)

    def extract(self, y: np.ndarray) -> np.ndarray:
        """Prepared audio (16 kHz) -> float64 [T, 60]; DfdetError when shorter than one 20 ms frame."""
        return lfcc_16k(y)

    def extract_file(self, path: str | os.PathLike, block_seconds: float = BLOCK_SECONDS) -> np.ndarray:
        """A file's [T, 60] matrix, decoded in blocks (bounded memory for long files)."""
        return lfcc_file(path, block_seconds)

    def read_file(self, path: str | os.PathLike) -> tuple[np.ndarray, float]:
        """What featurize stores for a file: float32 [T, 60] frames (streamed, bounded memory) and its duration."""
        return read_lfcc_file(path)
