"""A slow, literal reference of ../shared/SEED154.md, written straight from the table with plain librosa calls.

Test helper only (not package code): the fast extractor in dfdet/features/seed154.py is checked against it. Kept
deliberately naive (Python loops, one librosa call per row of the table) so that it reads like the definition.
"""

from __future__ import annotations

import librosa
import numpy as np

SR = 16000
N = 32000


def prepare_reference(y: np.ndarray, sr: int) -> np.ndarray:
    """Preprocessing 1-3: mono by averaging channels, resample to 16 kHz (soxr_hq), fix length to 32 000."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2:
        y = np.mean(y, axis=1)
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    return librosa.util.fix_length(y, size=N)


def lps_reference(y: np.ndarray) -> np.ndarray:
    S = np.abs(librosa.stft(y, n_fft=512, hop_length=160))
    P = S**2
    L = np.log(P + 1e-10)
    mean = np.mean(L, axis=1)
    std = np.std(L, axis=1)
    pooled_mean = [np.mean(mean[12 * i : 12 * i + 12]) for i in range(20)]
    pooled_std = [np.mean(std[12 * i : 12 * i + 12]) for i in range(20)]
    return np.array(pooled_mean + pooled_std)


def lfcc_reference(y: np.ndarray) -> np.ndarray:
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    S_db = librosa.amplitude_to_db(S, ref=np.max)
    C = librosa.feature.mfcc(S=S_db, n_mfcc=20)
    return np.concatenate([np.mean(C, axis=1), np.std(C, axis=1)])


def contrast_reference(y: np.ndarray) -> np.ndarray:
    C = librosa.feature.spectral_contrast(y=y, sr=SR, n_bands=6)
    return np.concatenate([np.mean(C, axis=1), np.std(C, axis=1)])


def mfcc_reference(y: np.ndarray) -> np.ndarray:
    C = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)
    return np.concatenate([np.mean(C, axis=1), np.std(C, axis=1)])


def coarse_grain_reference(y: np.ndarray, s: int) -> np.ndarray:
    return np.array([np.mean(y[i * s : (i + 1) * s]) for i in range(len(y) // s)])


def permutation_entropy_reference(x: np.ndarray, m: int) -> float:
    """Bandt-Pompe PE in bits, ties broken by order of occurrence (stable argsort), 0 if len(x) < m."""
    if len(x) < m:
        return 0.0
    counts: dict[tuple[int, ...], int] = {}
    for t in range(len(x) - m + 1):
        pattern = tuple(int(v) for v in np.argsort(x[t : t + m], kind="stable"))
        counts[pattern] = counts.get(pattern, 0) + 1
    total = sum(counts.values())
    pe = 0.0
    for c in counts.values():
        p = c / total
        pe -= p * np.log2(p + 1e-10)
    return pe


def mpe_reference(y: np.ndarray) -> np.ndarray:
    out = []
    for m in (3, 4, 5, 6):
        for s in (1, 2, 4, 8, 16):
            out.append(permutation_entropy_reference(coarse_grain_reference(y, s), m))
    return np.array(out)


def seed154_reference(y: np.ndarray, mpe: bool = True) -> np.ndarray:
    """The 154-vector of prepared audio; with mpe=False the MPE block (the slow part, ~1 s) is NaN."""
    mpe_part = mpe_reference(y) if mpe else np.full(20, np.nan)
    return np.concatenate([lps_reference(y), lfcc_reference(y), contrast_reference(y), mpe_part, mfcc_reference(y)])


def permutation_entropy_vectorised(x: np.ndarray, m: int) -> float:
    """Same definition as permutation_entropy_reference, with the stable argsort applied to all windows at once.

    Independent of the fast extractor's pattern coding (it sorts each window and counts unique rows), and fast enough
    to check every test clip; the loop version above is checked against it on a couple of clips.
    """
    if len(x) < m:
        return 0.0
    patterns = np.argsort(np.lib.stride_tricks.sliding_window_view(x, m), axis=1, kind="stable")
    _, counts = np.unique(patterns @ (m ** np.arange(m)), return_counts=True)  # one integer per pattern
    p = counts / counts.sum()
    return float(-np.sum(p * np.log2(p + 1e-10)))


def mpe_vectorised(y: np.ndarray) -> np.ndarray:
    coarse = {s: y[: len(y) // s * s].reshape(-1, s).mean(axis=1) for s in (1, 2, 4, 8, 16)}
    return np.array([permutation_entropy_vectorised(coarse[s], m) for m in (3, 4, 5, 6) for s in (1, 2, 4, 8, 16)])
