"""The study's 154-D `seed154` utterance vector (../shared/SEED154.md), vectorised.

Why a hand-rolled path: the literal librosa + Python-loop definition costs ~1 s per clip (the permutation entropy
loop); this one computes the n_fft=2048 spectrum once for LFCC, spectral contrast and MFCC, builds librosa's
filterbank/window/DCT tables itself (numpy only: importing librosa, numba and scipy costs more start-up than a clip's
features; tests/test_seed154.py checks the tables against librosa's), and counts ordinal patterns with a few
whole-array comparisons. It agrees with the literal definition (tests/reference_seed154.py) within 1e-4 and runs in a
few milliseconds per clip. Only the first 2 s (plus the resampler's margin) of a file are decoded and resampled.
"""

from __future__ import annotations

import functools
import math
from functools import cached_property
from typing import Any

import numpy as np

from dfdet.features.base import FeatureGroup, register_recipe

SR = 16000
N_SAMPLES = 32000
# LPS
LPS_N_FFT, LPS_HOP, LPS_EPS, LPS_POOL, LPS_N_POOLED = 512, 160, 1e-10, 12, 20
# LFCC, spectral contrast and MFCC share one STFT
N_FFT, HOP = 2048, 512
N_CEPS = 20
DB_AMIN_POWER, TOP_DB = 1e-10, 80.0  # amplitude_to_db(amin=1e-5) == power_to_db(amin=1e-10) on the squared magnitude
N_BANDS, FMIN, QUANTILE = 6, 200.0, 0.02
N_MELS = 128
# MPE
MPE_ORDERS = (3, 4, 5, 6)
MPE_SCALES = (1, 2, 4, 8, 16)
MPE_EPS = 1e-10
MPE_TIE_RULE = "order of occurrence (np.argsort kind='stable')"


def _names() -> list[str]:
    names = [f"lps_{st}_{i:02d}" for st in ("mean", "std") for i in range(LPS_N_POOLED)]
    names += [f"lfcc_{st}_{i:02d}" for st in ("mean", "std") for i in range(N_CEPS)]
    names += [f"contrast_{st}_{i}" for st in ("mean", "std") for i in range(N_BANDS + 1)]
    names += [f"mpe_m{m}_s{s}" for m in MPE_ORDERS for s in MPE_SCALES]
    names += [f"mfcc_{st}_{i:02d}" for st in ("mean", "std") for i in range(N_CEPS)]
    return names


GROUPS = [
    FeatureGroup("LPS", 0, 40),
    FeatureGroup("LFCC", 40, 80),
    FeatureGroup("Contrast", 80, 94),
    FeatureGroup("MPE", 94, 114),
    FeatureGroup("MFCC", 114, 154),
]


def _frames(y: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Windowed frames [B, F, n_fft] exactly as librosa.stft(center=True, pad_mode='constant') frames them.

    The padded copy and the strided view are built directly (np.pad and sliding_window_view cost ~50 us a call).
    """
    B, n = y.shape
    half = n_fft // 2
    ypad = np.zeros((B, n + 2 * half))
    ypad[:, half : half + n] = y
    s0, s1 = ypad.strides
    view = np.ndarray((B, 1 + n // hop, n_fft), ypad.dtype, ypad, 0, (s0, hop * s1, s1))
    return np.multiply(view, window)


def _power(frames: np.ndarray, n_bins: int | None = None) -> np.ndarray:
    """|rfft|^2 along the last axis (its first `n_bins` bins), float64 (float32 FFTs would move spectral contrast
    beyond 1e-4).

    numpy's pocketfft gives the same values as scipy.fft's without scipy.fft's ~0.2 s import. re^2 + im^2 is taken
    on the spectrum's float view (squared, then pairs added): the same numbers as from .real and .imag, in fewer
    strided passes.
    """
    X = np.fft.rfft(frames, axis=-1)
    v = X.view(np.float64)  # re, im interleaved
    if n_bins is not None:
        v = v[..., : 2 * n_bins]
    sq = np.square(v)
    return np.add(sq[..., 0::2], sq[..., 1::2])


def _mean_std(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std (ddof 0) over `axis` (np.mean's sum-then-divide, without its Python wrapper).

    `a` is used as work space (every caller passes a temporary): the deviations are squared in its memory.
    """
    n = a.shape[axis]
    mean = np.add.reduce(a, axis=axis, keepdims=True)
    mean /= n
    d = np.subtract(a, mean, out=a)
    d *= d
    std = np.add.reduce(d, axis=axis)
    std /= n
    return mean.squeeze(axis), np.sqrt(std, out=std)


def _db(power: np.ndarray, ref: np.ndarray | None) -> np.ndarray:
    """librosa.power_to_db(power, ref, amin=1e-10, top_db=80) per clip; power [B, ...], ref [B] or None (= 1.0)."""
    shape = (-1,) + (1,) * (power.ndim - 1)
    log = np.maximum(power, DB_AMIN_POWER)
    np.log10(log, out=log)
    log *= 10.0
    if ref is not None:
        log -= np.reshape(10.0 * np.log10(np.maximum(DB_AMIN_POWER, ref)), shape)
    floor = log.reshape(len(log), -1).max(axis=1) - TOP_DB
    return np.maximum(log, floor.reshape(shape), out=log)


def _db_cepstrum_stats(power: np.ndarray, dct: np.ndarray, relative: bool, overwrite: bool = False) -> np.ndarray:
    """[B, 2 * n_ceps]: frame means then stds of `_db(power, ref) @ dct`, power [B, F, bins]; ref is each clip's
    peak power (`relative`, librosa's ref=np.max) or 1.0. `overwrite`: power may be used as the work buffer.

    The same numbers (within ~1e-13) in fewer passes over the spectrum: power_to_db's top_db floor (the peak's dB
    minus 80) is applied as a clip in the power domain (max(amin, peak * 1e-8), the same value whatever the ref),
    and the ref's dB, a constant per clip, is subtracted after the DCT (from the means only: stds do not move).
    """
    B = len(power)
    peak = power.reshape(B, -1).max(axis=1)
    floor = np.maximum(peak * 10.0 ** (-TOP_DB / 10.0), DB_AMIN_POWER).reshape((B,) + (1,) * (power.ndim - 1))
    log = np.maximum(power, floor, out=power if overwrite else None)
    mean, std = _mean_std(np.log10(log, out=log) @ dct, axis=1)
    mean *= 10.0
    std *= 10.0
    if relative:
        mean -= (10.0 * np.log10(np.maximum(DB_AMIN_POWER, peak)))[:, None] * dct.sum(axis=0)
    return np.concatenate([mean, std], axis=1)


@functools.lru_cache(maxsize=64)
def _chunks(n: int) -> tuple[tuple[int, int], ...]:
    """(start, stop) of the near-equal chunks of at most 256 that `_extremes` sorts a row of n in."""
    edges = [int(v) for v in np.linspace(0, n, -(-n // 256) + 1).astype(int)]
    return tuple(zip(edges[:-1], edges[1:], strict=True))


def _extremes(sub: np.ndarray, alpha: int) -> tuple[np.ndarray, np.ndarray]:
    """The `alpha` smallest and largest values along the last axis, each ascending (as np.sort would place them).

    Rows longer than 2 KiB (256 float64, 512 float32) are sorted in chunks and the chunk extremes merged: numpy's
    SIMD sort is several times faster on short rows, and the selected values (hence their sorted order and means)
    are the same.
    """
    n = sub.shape[-1]
    if n * sub.itemsize <= 2048 or n <= 4 * alpha:
        srt = np.sort(sub, axis=-1)
        return srt[..., :alpha], srt[..., n - alpha :]
    parts = [np.sort(sub[..., a:b], axis=-1) for a, b in _chunks(n)]
    lo = np.sort(np.concatenate([p[..., :alpha] for p in parts], axis=-1), axis=-1)[..., :alpha]
    hi = np.sort(np.concatenate([p[..., -alpha:] for p in parts], axis=-1), axis=-1)[..., -alpha:]
    return lo, hi


def _block_means(Y: np.ndarray, s: int, out: np.ndarray) -> None:
    """out[b, i] = np.mean(Y[b, i*s:(i+1)*s]) bit for bit, without numpy's slow short-axis reduction.

    numpy sums short blocks sequentially (s < 8) or pairwise over 8 accumulators (8 <= s <= 128, s % 8 == 0); other
    sizes use the reduction itself. Seed154._block_means_exact checks the equality once per process.
    """
    nb = out.shape[-1]
    v = Y[:, : nb * s].reshape(len(Y), nb, s)
    if s == 1:
        out[:] = v[..., 0]
        return
    if s < 8:
        np.add(v[..., 0], v[..., 1], out=out)
        for k in range(2, s):
            out += v[..., k]
    elif s <= 128 and s % 8 == 0:  # the 8 accumulators side by side: r[j] += v[i + j], then the tree on them
        r = v[..., :8]
        for i in range(8, s, 8):
            r = r + v[..., i : i + 8]
        r = r[..., 0::2] + r[..., 1::2]  # (r0 + r1), (r2 + r3), (r4 + r5), (r6 + r7)
        r = r[..., 0::2] + r[..., 1::2]
        np.add(r[..., 0], r[..., 1], out=out)
    else:
        out[:] = v.mean(axis=2)
        return
    out /= s


def ordinal_pattern_codes(x: np.ndarray, max_order: int) -> list[np.ndarray]:
    """Integer codes of the ordinal patterns of all windows x[..., t:t+m], one array per order m = 2..max_order.

    Ties are broken by order of occurrence (the pattern `np.argsort(window, kind="stable")` gives). The code is the
    Lehmer code of the window's rank vector: digit i = #(j > i with x_j < x_i), weighted by (m-1-i)!, so order-m
    codes lie in [0, m!) and distinct patterns get distinct codes. With W_k[u] = k! * #(d in 1..k: x[u+d] < x[u]),
    code_{m+1}[t] = W_m[t] + code_{m}[t+1]: each order costs one addition. code_m has len(x) - m + 1 entries.
    """
    n = x.shape[-1]
    dtype = np.int16 if math.factorial(max_order) <= 32767 else np.int64
    codes: list[np.ndarray] = []
    # counts (< max_order) in int8 and the comparisons' bools viewed as int8: same-type additions, no casting loop
    count = np.zeros(x.shape[:-1] + (max(n - 1, 0),), dtype=np.int8 if max_order <= 127 else dtype)
    less = np.empty(count.shape, dtype=bool)
    code = None
    for k in range(1, max_order):
        if n - k <= 0:
            codes.append(np.zeros(x.shape[:-1] + (0,), dtype=dtype))
            continue
        count = count[..., : n - k]
        np.greater(x[..., : n - k], x[..., k:], out=less[..., : n - k])  # x[u+k] < x[u]
        count += less[..., : n - k].view(np.int8) if count.dtype == np.int8 else less[..., : n - k]
        w = count.astype(dtype)  # a new array: count goes on to the next order
        if k > 1:
            w *= dtype(math.factorial(k))
        if code is not None:
            w += code[..., 1:]
        code = w
        codes.append(code)
    return codes


def hann(n: int) -> np.ndarray:
    """Periodic Hann window, computed as scipy.signal.get_window('hann', n) (librosa's window) does, bit for bit."""
    fac = np.linspace(-np.pi, np.pi, n + 1)
    w = np.zeros(n + 1)
    for k, a in enumerate((0.5, 0.5)):  # scipy's general_cosine
        w += a * np.cos(k * fac)
    return w[:-1]


def dct_basis(n: int, n_out: int) -> np.ndarray:
    """[n, n_out] matrix: x @ it = scipy.fft.dct(x, type=2, norm='ortho')[:n_out] (within ~1e-16)."""
    k = np.arange(n_out)[None, :]
    m = (k * (2 * np.arange(n)[:, None] + 1)) % (4 * n)  # exact argument reduction of pi*k*(2i+1)/(2n)
    basis = np.cos(np.pi * m / (2 * n))
    basis *= np.where(k == 0, np.sqrt(1.0 / n), np.sqrt(2.0 / n))
    return basis


def hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    """librosa.hz_to_mel(htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    mels = f / f_sp
    log_t = f >= min_log_hz
    mels[log_t] = min_log_hz / f_sp + np.log(f[log_t] / min_log_hz) / logstep
    return mels


def mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    """librosa.mel_to_hz(htk=False), the inverse of hz_to_mel_slaney."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * mels
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels) with its defaults (slaney, norm='slaney', float32)."""
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    min_mel, max_mel = hz_to_mel_slaney(np.array([0.0, sr / 2.0]))
    mel_f = mel_to_hz_slaney(np.linspace(min_mel, max_mel, n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


class Seed154:
    """The `seed154` recipe: prepare() fixes rate and length, extract() returns the 154-vector (float64)."""

    name = "seed154"
    frames = False  # one vector per utterance (dfdet.features.Recipe)
    sample_rate = SR
    n_samples = N_SAMPLES
    head_samples = N_SAMPLES  # reads only the first 2 s: files are decoded that far (dfdet.features.load_prepared)

    def __init__(self, **overrides: Any) -> None:
        if overrides:
            from dfdet.errors import UsageError

            raise UsageError(
                f"recipe seed154 has no tunable parameters (got {', '.join(sorted(overrides))})",
                "drop the recipe options, or register a new recipe",
            )

    def config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "sample_rate": SR,
            "n_samples": N_SAMPLES,
            "mono": "mean of channels",
            "resample": "librosa.resample defaults (soxr_hq)",
            "length_policy": "zero-pad at end / keep first n_samples",
            "dtype": "float64",
            "lps": {
                "n_fft": LPS_N_FFT,
                "hop_length": LPS_HOP,
                "window": "hann",
                "center": True,
                "pad_mode": "constant",
                "log": "ln(|S|^2 + eps)",
                "eps": LPS_EPS,
                "pool_bins": LPS_POOL,
                "n_pooled": LPS_N_POOLED,
                "stats": ["mean", "std_ddof0"],
            },
            "lfcc": {
                "n_fft": N_FFT,
                "hop_length": HOP,
                "window": "hann",
                "center": True,
                "pad_mode": "constant",
                "db": "amplitude_to_db(ref=max, amin=1e-5, top_db=80)",
                "dct": "II ortho over all 1025 bins",
                "n_ceps": N_CEPS,
                "stats": ["mean", "std_ddof0"],
            },
            "contrast": {
                "n_fft": N_FFT,
                "hop_length": HOP,
                "n_bands": N_BANDS,
                "fmin": FMIN,
                "quantile": QUANTILE,
                "db": "power_to_db(peak) - power_to_db(valley), amin=1e-10, top_db=80",
                "stats": ["mean", "std_ddof0"],
            },
            "mpe": {
                "orders": list(MPE_ORDERS),
                "scales": list(MPE_SCALES),
                "delay": 1,
                "coarse_grain": "mean of non-overlapping blocks, remainder dropped",
                "entropy": "-sum p log2(p + eps), bits, not normalised",
                "eps": MPE_EPS,
                "tie_rule": MPE_TIE_RULE,
                "too_short": 0.0,
            },
            "mfcc": {
                "n_fft": N_FFT,
                "hop_length": HOP,
                "n_mels": N_MELS,
                "mel": "slaney, norm=slaney, float32 filterbank",
                "power": 2.0,
                "db": "power_to_db(ref=1.0, amin=1e-10, top_db=80)",
                "dct": "II ortho",
                "n_mfcc": N_CEPS,
                "stats": ["mean", "std_ddof0"],
            },
        }

    @cached_property
    def feature_names(self) -> list[str]:
        return _names()

    @property
    def groups(self) -> list[FeatureGroup]:
        return list(GROUPS)

    def prepare(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Mono float audio at any rate -> float64 at 16 kHz, exactly 32 000 samples (zero-pad end / keep first).

        Only the start of `y` that the first 2 s depend on is resampled (dfdet.audio.resample_head): the same
        samples as resampling the whole clip and cutting, as the spec says.
        """
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 2:  # (samples, channels) as soundfile returns it
            y = y.mean(axis=1)
        if y.ndim != 1:
            raise ValueError(f"expected mono audio (1-D), got shape {y.shape}")
        from dfdet.audio import fix_length, resample_head  # the shared length/rate policy (soxr_hq)

        if len(y):
            y = resample_head(y, sr, SR, N_SAMPLES)
        return np.ascontiguousarray(fix_length(y, N_SAMPLES), dtype=np.float64)

    # ---- tables, built once on first use (numpy only) ----
    @cached_property
    def _tables(self) -> dict[str, Any]:
        freq = np.fft.rfftfreq(n=N_FFT, d=1.0 / SR)  # librosa.fft_frequencies
        bands = []  # (start, stop, alpha) per band, librosa.feature.spectral_contrast's selection rule
        octa = np.zeros(N_BANDS + 2)
        octa[1:] = FMIN * (2.0 ** np.arange(0, N_BANDS + 1))
        for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:], strict=True)):
            current = np.logical_and(freq >= f_low, freq <= f_high)
            idx = np.flatnonzero(current)
            if k > 0:
                current[idx[0] - 1] = True
            if k == N_BANDS:
                current[idx[-1] + 1 :] = True
            sel = np.flatnonzero(current)
            alpha = int(np.maximum(np.rint(QUANTILE * np.sum(current)), 1))
            start, stop = int(sel[0]), int(sel[-1]) + 1
            assert stop - start == len(sel)  # contiguous
            if k < N_BANDS:
                stop -= 1
            bands.append((start, stop, alpha))
        mel = mel_filters(SR, N_FFT, N_MELS).astype(np.float64)  # float32 values like librosa's
        return {
            "win_lps": hann(LPS_N_FFT),
            "win": hann(N_FFT),
            "dct_lin": dct_basis(N_FFT // 2 + 1, N_CEPS),
            "dct_mel": dct_basis(N_MELS, N_CEPS),
            "mel": _BandedRows(mel),  # P[..., 1025] -> [..., 128]
            "bands": bands,
        }

    # ---- extraction ----
    def extract(self, y: np.ndarray) -> np.ndarray:
        """Prepared audio (32 000 samples at 16 kHz) -> float64[154]."""
        return self.extract_batch(np.asarray(y, dtype=np.float64)[None, :])[0]

    def extract_batch(self, Y: np.ndarray) -> np.ndarray:
        """Prepared clips [B, 32000] -> float64 [B, 154]."""
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2 or Y.shape[1] != N_SAMPLES:
            raise ValueError(f"expected prepared audio of shape [B, {N_SAMPLES}], got {Y.shape}; call prepare() first")
        return np.concatenate([self._lps(Y), *self._spec2048(Y), self._mpe(Y)], axis=1)[:, self._order]

    @cached_property
    def _order(self) -> np.ndarray:
        # blocks come out as LPS, LFCC, Contrast, MFCC, MPE; the vector order is LPS, LFCC, Contrast, MPE, MFCC
        return np.r_[0:94, 134:154, 94:134]

    def _lps(self, Y: np.ndarray) -> np.ndarray:
        t = self._tables
        nb = LPS_POOL * LPS_N_POOLED  # bins 240-256 are not used
        L = _power(_frames(Y, LPS_N_FFT, LPS_HOP, t["win_lps"]), nb)  # [B, F, 240]
        L += LPS_EPS
        mean, std = _mean_std(np.log(L, out=L), axis=1)
        B = len(Y)
        pool = lambda a: np.add.reduce(a.reshape(B, LPS_N_POOLED, LPS_POOL), axis=2) / LPS_POOL  # noqa: E731
        return np.concatenate([pool(mean), pool(std)], axis=1)

    def _spec2048(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = self._tables
        B = len(Y)
        P = _power(_frames(Y, N_FFT, HOP, t["win"]))  # [B, F, 1025] power
        # spectral contrast on the magnitude spectrum: select on the power (same order), sqrt only what is kept.
        # Bands of several values are sorted in float32 (SIMD sorts twice the values per instruction): the kept
        # values move by <= 6e-8 relative, the contrast by < 1e-6 dB.
        peak = np.empty((B, len(t["bands"]), P.shape[1]))
        valley = np.empty_like(peak)
        P32 = P.astype(np.float32)
        for k, (a, b, alpha) in enumerate(t["bands"]):
            if alpha == 1:  # the extremes themselves: reductions, no sort
                np.sqrt(np.minimum.reduce(P[:, :, a:b], axis=2), out=valley[:, k])
                np.sqrt(np.maximum.reduce(P[:, :, a:b], axis=2), out=peak[:, k])
                continue
            lo, hi = _extremes(P32[:, :, a:b], alpha)  # np.mean: the sum in sorted order, then / alpha
            lo, hi = lo.astype(np.float64), hi.astype(np.float64)
            np.divide(np.add.reduce(np.sqrt(lo), axis=2), alpha, out=valley[:, k])
            np.divide(np.add.reduce(np.sqrt(hi), axis=2), alpha, out=peak[:, k])
        contrast = _db(peak, None) - _db(valley, None)  # [B, 7, F]
        mean, std = _mean_std(contrast, axis=2)
        # MFCC: slaney mel of the power spectrum, power_to_db(ref=1), DCT over mel bands
        mfcc = _db_cepstrum_stats(t["mel"].apply(P), t["dct_mel"], relative=False, overwrite=True)
        # LFCC (last: it takes P as its work buffer): amplitude_to_db(|S|, ref=max) == power_to_db(|S|^2,
        # ref=max |S|^2), DCT over frequency
        lfcc = _db_cepstrum_stats(P, t["dct_lin"], relative=True, overwrite=True)
        return lfcc, np.concatenate([mean, std], axis=1), mfcc

    @cached_property
    def _mpe_layout(self) -> dict[str, Any]:
        """All coarse-grained signals side by side in one row, so each step below runs once per clip."""
        lengths = [N_SAMPLES // s for s in MPE_SCALES]
        starts = [int(v) for v in np.cumsum([0, *lengths[:-1]])]
        top = max(MPE_ORDERS)
        assert min(lengths) >= top and sorted(MPE_ORDERS) == list(range(min(MPE_ORDERS), top + 1))
        assert (len(MPE_SCALES) + 1) * math.factorial(top) <= np.iinfo(np.int16).max  # bin keys fit the codes' int16
        total = sum(lengths)
        # bin base of each top-order window: its scale's block of top! bins, or a junk block if it spans two scales
        base = np.full(total - top + 1, len(MPE_SCALES) * math.factorial(top), dtype=np.int16)  # codes are int16
        for j, (a, n) in enumerate(zip(starts, lengths, strict=True)):
            base[a : a + n - top + 1] = j * math.factorial(top)
        # windows per (scale, order) spread over that order's pattern bins, orders top..min as _mpe lays them out
        orders = range(top, min(MPE_ORDERS) - 1, -1)
        windows = np.concatenate(
            [np.repeat([[n - m + 1] for n in lengths], math.factorial(m), axis=1) for m in orders], 1
        )
        segments = np.cumsum([0] + [math.factorial(m) for m in orders][:-1])
        return {
            "lengths": lengths,
            "starts": starts,
            "total": total,
            "base": base,
            "top": top,
            "windows": windows,
            "segments": segments,
        }

    def _mpe(self, Y: np.ndarray) -> np.ndarray:
        """Multiscale permutation entropy, [B, 20] (order outer, scale inner).

        One bincount of the top-order codes; lower orders follow by marginalising: the order-m pattern of window
        t+1 is the suffix of the order-(m+1) pattern of window t (code_{m+1} = m! * digit + code_m[t+1]), so order-m
        counts are order-(m+1) counts summed over the leading digit, plus the first order-m window of each scale.
        """
        lay = self._mpe_layout
        B, S, top = len(Y), len(MPE_SCALES), lay["top"]
        x = np.empty((B, lay["total"]))
        coarse = _block_means if self._block_means_exact else _mean_blocks
        for s, a, n in zip(MPE_SCALES, lay["starts"], lay["lengths"], strict=True):
            coarse(Y, s, x[:, a : a + n])
        codes = ordinal_pattern_codes(x, top)  # codes[m - 2]: order m
        nbins = (S + 1) * math.factorial(top)
        key = codes[top - 2] + lay["base"]
        if B > 1:
            key = key + (np.arange(B) * nbins)[:, None]
        counts = np.bincount(key.ravel(), minlength=B * nbins).reshape(B, S + 1, -1)[:, :S]
        every = [counts]  # orders top, top-1, ..., side by side: one entropy pass for all of them
        rows, cols = np.arange(B)[:, None], np.arange(S)[None, :]
        for m in range(top - 1, min(MPE_ORDERS) - 1, -1):
            counts = counts.reshape(B, S, m + 1, math.factorial(m)).sum(axis=2)
            counts[rows, cols, codes[m - 2][:, lay["starts"]]] += 1
            every.append(counts)
        p = np.concatenate(every, axis=2) / lay["windows"]  # [B, S, top! + ... + min!]
        p *= np.log2(p + MPE_EPS)
        pe = -np.add.reduceat(p, lay["segments"], axis=2)  # [B, S, order top..min]
        return pe[:, :, ::-1].transpose(0, 2, 1).reshape(B, -1)  # order outer (ascending), scale inner

    @cached_property
    def _block_means_exact(self) -> bool:
        """Does _block_means reproduce np.mean bit for bit on this numpy? (ties in MPE depend on the last bit)"""
        rng = np.random.default_rng(0)
        Y = np.round(rng.standard_normal((2, N_SAMPLES)) * 3000) / 32767
        for s in MPE_SCALES:
            a, b = np.empty((2, N_SAMPLES // s)), np.empty((2, N_SAMPLES // s))
            _block_means(Y, s, a)
            _mean_blocks(Y, s, b)
            if not np.array_equal(a, b):
                return False
        return True


class _BandedRows:
    """y = x @ W.T for a filterbank W whose nonzero weights of consecutive rows lie in nearby bins (mel triangles).

    Blocks of 8 rows, each one matrix product over the bins that block covers: ~2x the nonzero work instead of a
    dense product's ~60x. ~0.05 ms for a clip, where a dense product costs ~0.35 ms, a segmented sum per
    non-overlapping group ~0.18 ms, and scipy.sparse ~0.2 s of import.
    """

    ROWS = 8

    def __init__(self, W: np.ndarray) -> None:
        self.n_out = len(W)
        self.blocks = []  # (first row, stop row, first bin, stop bin, weights [bins, rows])
        for i in range(0, len(W), self.ROWS):
            rows = W[i : i + self.ROWS]
            nz = np.flatnonzero(rows.any(axis=0))
            a, b = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
            self.blocks.append((i, i + len(rows), a, b, np.ascontiguousarray(rows[:, a:b].T)))

    def apply(self, x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape[:-1] + (self.n_out,))
        for i, j, a, b, w in self.blocks:
            np.matmul(x[..., a:b], w, out=out[..., i:j])
        return out


def _mean_blocks(Y: np.ndarray, s: int, out: np.ndarray) -> None:
    nb = out.shape[-1]
    out[:] = Y[:, : nb * s].reshape(len(Y), nb, s).mean(axis=2)


register_recipe("seed154")(Seed154)
