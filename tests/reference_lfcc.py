"""A literal, loop-based reference of the `lfcc` recipe (docs/LFCC.md), written from the definition, not from the fast
code: one frame at a time, the filters built bin by bin from the trimf formula, the DCT as an explicit cosine sum and
the deltas as the deltas.m filter with replicated edges. Slow (seconds per second of audio); tests compare the fast
path against it. Only the resampler (soxr HQ) is shared: it is the definition's choice, not an implementation detail.
"""

from __future__ import annotations

import math

import numpy as np

SR, WIN, HOP, N_FFT, N_FILTERS, N_CEPS, PREEMPH = 16000, 320, 160, 512, 20, 20, 0.97
EPS = 2.220446049250313e-16  # MATLAB eps


def resample_reference(y: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    y = np.asarray(y, dtype=np.float64)
    return y if sr == SR else np.asarray(soxr.resample(y, sr, SR, quality="HQ"), dtype=np.float64)


def trimf(x: float, a: float, b: float, c: float) -> float:
    """MATLAB's trimf for one point."""
    if x <= a or x >= c:
        return 0.0
    if x == b:
        return 1.0
    if x < b:
        return (x - a) / (b - a)
    return (c - x) / (c - b)


def filterbank_reference() -> list[list[float]]:
    """filters[j][k]: weight of FFT bin k (frequency k * 16000 / 512) in filter j."""
    n_bins = N_FFT // 2 + 1
    freqs = [(SR / 2) * k / (n_bins - 1) for k in range(n_bins)]
    edges = [(SR / 2) * i / (N_FILTERS + 1) for i in range(N_FILTERS + 2)]
    return [[trimf(f, edges[j], edges[j + 1], edges[j + 2]) for f in freqs] for j in range(N_FILTERS)]


def static_reference(y16: np.ndarray) -> np.ndarray:
    """Static LFCC [T, 20], frame by frame."""
    y16 = [float(v) for v in y16]
    z = [y16[0]] + [y16[n] - PREEMPH * y16[n - 1] for n in range(1, len(y16))] if y16 else []
    window = [0.54 - 0.46 * math.cos(2 * math.pi * n / (WIN - 1)) for n in range(WIN)]
    filters = filterbank_reference()
    rows = []
    start = 0
    while start + WIN <= len(z):
        frame = np.zeros(N_FFT)
        for n in range(WIN):
            frame[n] = z[start + n] * window[n]
        spectrum = np.fft.fft(frame)  # full complex FFT, not rfft
        power = [abs(spectrum[k]) ** 2 for k in range(N_FFT // 2 + 1)]
        logs = [math.log10(float(np.dot(filters[j], power)) + EPS) for j in range(N_FILTERS)]
        ceps = []
        for k in range(N_CEPS):
            scale = math.sqrt(1.0 / N_FILTERS) if k == 0 else math.sqrt(2.0 / N_FILTERS)
            ceps.append(
                scale * sum(logs[n] * math.cos(math.pi * (2 * n + 1) * k / (2 * N_FILTERS)) for n in range(N_FILTERS))
            )
        rows.append(ceps)
        start += HOP
    return np.array(rows, dtype=np.float64).reshape(-1, N_CEPS)


def deltas_reference(x: np.ndarray) -> np.ndarray:
    """deltas.m with w=3: filter [1, 0, -1] over the frames padded by one repeated frame at each end."""
    T = len(x)
    padded = [x[0]] + [x[t] for t in range(T)] + [x[T - 1]]
    return np.array([padded[t + 2] - padded[t] for t in range(T)])


def lfcc_reference(y: np.ndarray, sr: int) -> np.ndarray:
    """[T, 60]: static, delta, delta-delta of the whole utterance."""
    S = static_reference(resample_reference(y, sr))
    D = deltas_reference(S)
    return np.concatenate([S, D, deltas_reference(D)], axis=1)
