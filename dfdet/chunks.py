"""Fixed-length chunks of frame matrices: random chunks for training, consecutive chunks for scoring.

Why fixed length: a batch of utterances of different lengths needs padding or chunks; chunks also keep one long file
from dominating an epoch. A clip shorter than the chunk is tiled (repeated from its start) to the chunk length, in
training and in scoring alike, so the model never sees padding.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

DEFAULT_CHUNK_FRAMES = 400  # 4 s at the lfcc recipe's 10 ms frame shift


def tile(frames: np.ndarray, length: int) -> np.ndarray:
    """[T, D] -> [length, D]: the first `length` frames of the clip repeated end to end (T >= length: a copy)."""
    m = np.asarray(frames)
    t = len(m)
    if t < 1:
        raise ValueError("cannot tile an empty frame matrix")
    if t >= length:
        return m[:length].copy()
    reps = -(-int(length) // t)
    return np.tile(m, (reps, 1))[:length]


def random_starts(n_frames: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random chunk start per row (0 where the row is not longer than the chunk)."""
    n = np.asarray(n_frames, dtype=np.int64)
    span = np.maximum(n - int(length), 0) + 1
    return (rng.random(len(n)) * span).astype(np.int64)


def chunk_at(frames: np.ndarray, start: int, length: int) -> np.ndarray:
    """The `length` frames from `start` ([length, D]); a row shorter than `length` is tiled from its start."""
    if len(frames) <= length:
        return tile(frames, length)
    return np.asarray(frames[int(start) : int(start) + int(length)])


def standardized_chunks(
    mats: Iterable[np.ndarray], starts: Iterable[int], length: int, mean: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Standardised chunks [B, length, D] (float32): one per frame matrix, at its start (short ones tiled)."""
    pairs = zip(mats, starts, strict=True)
    return np.stack([standardize_frames(chunk_at(m, s, length), mean, scale) for m, s in pairs])


def utterance_chunk_starts(n: int, length: int) -> np.ndarray:
    """Starts of the consecutive chunks that cover a T-frame utterance for scoring.

    Chunks start at 0, L, 2L, ...; when T is not a multiple of L the last chunk ends at the last frame (overlapping
    its predecessor) so every chunk is real audio. T <= L: one chunk at 0 (tiled by `chunk_at`).
    """
    n, length = int(n), int(length)
    if n <= length:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n - length + 1, length, dtype=np.int64)
    if starts[-1] + length < n:
        starts = np.append(starts, n - length)
    return starts


def utterance_chunks(frames: np.ndarray, length: int) -> np.ndarray:
    """[K, length, D] chunks covering a whole utterance (see `utterance_chunk_starts`); the model's logit for the
    utterance is the mean of its chunk logits."""
    m = np.asarray(frames)
    return np.stack([chunk_at(m, s, length) for s in utterance_chunk_starts(len(m), length)])


def standardize_frames(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-frame-dimension standardisation with the training statistics, in float64, returned as float32."""
    return ((np.asarray(x, dtype=np.float64) - mean) / scale).astype(np.float32)


def utterance_logits(
    module: object,
    mats: list[np.ndarray],
    mean: np.ndarray,
    scale: np.ndarray,
    length: int,
    batch_chunks: int = 64,
) -> np.ndarray:
    """Spoof logit of every whole utterance (float64 [N]): the mean of its chunk logits, module in eval mode.

    Each utterance is forwarded on its own (its chunks in batches of `batch_chunks`), so its logit never depends on
    which other utterances are scored with it (store and audio scoring agree).
    """
    import torch

    was = module.training  # type: ignore[attr-defined]
    module.eval()  # type: ignore[attr-defined]
    device = next(module.parameters()).device  # type: ignore[attr-defined]
    out = np.empty(len(mats), dtype=np.float64)
    with torch.inference_mode():
        for i, m in enumerate(mats):
            chunks = standardize_frames(utterance_chunks(m, length), mean, scale)
            parts = [
                module(torch.from_numpy(chunks[s : s + batch_chunks]).to(device))  # type: ignore[operator]
                for s in range(0, len(chunks), batch_chunks)
            ]
            out[i] = float(torch.cat(parts).to(torch.float64).mean().item())
    module.train(was)  # type: ignore[attr-defined]
    return out
