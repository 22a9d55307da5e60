"""seed154 extractor speed on one core: the fast path vs the literal reference (tests/reference_seed154.py).

Usage: .venv/bin/python benchmarks/bench_extractor.py [--n-clips 50] [--n-ref 3]

Both sides time `extract` on already prepared clips (16 kHz, 32 000 samples): decoding, resampling and `prepare`
are excluded. One BLAS/OpenMP thread (env + threadpoolctl). The fast path is timed over all clips three times and
the best pass is kept (the machine may be shared); the reference (~1 s per clip, mostly its Python MPE loop) runs
once on the first `n_ref` clips. `benchmarks/featurize.py` calls `bench_extractor` and prints the same numbers.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_clips(n: int, seed: int = 0, sr: int = 16000, seconds: float = 2.0) -> list[np.ndarray]:
    """n seeded speech-like clips (harmonics with a moving pitch, an envelope, a little noise), 16-bit quantised."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    clips = []
    for _ in range(n):
        f0 = rng.uniform(90, 220)
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))) / sr
        y = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12))
        y = y * (0.5 - 0.5 * np.cos(2 * np.pi * np.minimum(t * rng.uniform(1, 4), 1)))
        y = y + 0.01 * rng.standard_normal(len(t))
        clips.append(np.round(0.5 * y / np.max(np.abs(y)) * 32767) / 32767)
    return clips


def bench_extractor(
    clips: Sequence[np.ndarray] | int | None = None,
    sr: int = 16000,
    n_clips: int = 50,
    n_ref: int = 3,
    passes: int = 3,
) -> dict[str, Any]:
    """ms/clip of the fast seed154 extractor and of the literal reference on the same clips, one thread.

    `clips`: decoded mono audio at `sr` (prepared first, untimed), or None / an int to generate that many seeded
    2-s clips. Returns fast_ms (best pass, wall), fast_median_ms, fast_min_ms (each clip's fastest pass: the least
    disturbed by other load), fast_cpu_ms (thread CPU time per clip, best pass), ref_ms, ref_cpu_ms, ratio
    (ref/fast, wall), ratio_cpu, prepare_ms (the untimed part, for information) and the counts.
    """
    from threadpoolctl import threadpool_limits

    from dfdet.features import get_recipe
    from tests.reference_seed154 import seed154_reference

    if isinstance(clips, int):
        n_clips, clips = clips, None
    if clips is None:
        clips, sr = make_clips(n_clips), 16000
    rec = get_recipe("seed154")
    with threadpool_limits(1):
        t0 = time.perf_counter()
        prepared = [rec.prepare(y, sr) for y in clips]
        prepare_ms = (time.perf_counter() - t0) / len(prepared) * 1e3
        rec.extract(prepared[0])  # build the tables outside the timing
        times = np.empty((passes, len(prepared)))
        cpu = np.empty(passes)  # CPU time of this thread: not inflated while other processes hold the core
        for p in range(passes):
            c0 = time.thread_time()
            for i, y in enumerate(prepared):
                t0 = time.perf_counter()
                rec.extract(y)
                times[p, i] = time.perf_counter() - t0
            cpu[p] = time.thread_time() - c0
        best = times[np.argmin(times.sum(axis=1))]
        fast_ms = float(best.mean() * 1e3)
        n_ref = max(1, min(n_ref, len(prepared)))
        seed154_reference(prepared[0], mpe=False)  # librosa's lazy imports and caches
        t0, c0 = time.perf_counter(), time.thread_time()
        for y in prepared[:n_ref]:
            seed154_reference(y)
        ref_ms = (time.perf_counter() - t0) / n_ref * 1e3
        ref_cpu_ms = (time.thread_time() - c0) / n_ref * 1e3
    return {
        "fast_ms": fast_ms,
        "fast_median_ms": float(np.median(best) * 1e3),
        "fast_min_ms": float(times.min(axis=0).mean() * 1e3),  # per clip best of the passes: least contention
        "fast_cpu_ms": float(cpu.min() / len(prepared) * 1e3),
        "ref_ms": ref_ms,
        "ref_cpu_ms": ref_cpu_ms,
        "ratio": ref_ms / fast_ms,
        "ratio_cpu": ref_cpu_ms / float(cpu.min() / len(prepared) * 1e3),
        "prepare_ms": prepare_ms,
        "n_clips": len(prepared),
        "n_ref": n_ref,
        "passes": passes,
        "prepare_included": False,
        "threads": 1,
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-clips", type=int, default=50)
    ap.add_argument("--n-ref", type=int, default=3)
    args = ap.parse_args(argv)
    r = bench_extractor(n_clips=args.n_clips, n_ref=args.n_ref)
    print(
        f"seed154 fast extractor: {r['fast_ms']:.2f} ms/clip (best of {r['passes']} passes over {r['n_clips']} clips,"
    )
    print(
        f"  median clip {r['fast_median_ms']:.2f} ms, per-clip best {r['fast_min_ms']:.2f} ms;"
        " prepare excluded, 1 thread)"
    )
    print(f"  CPU time of the extracting thread: {r['fast_cpu_ms']:.2f} ms/clip")
    print(
        f"seed154 literal reference: {r['ref_ms']:.0f} ms/clip, CPU {r['ref_cpu_ms']:.0f} ms/clip ({r['n_ref']} clips)"
    )
    print(f"ratio reference/fast: {r['ratio']:.0f}x wall, {r['ratio_cpu']:.0f}x CPU time")


if __name__ == "__main__":
    main()
