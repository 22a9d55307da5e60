"""`make bench`: seed154 extractor speed vs the literal reference, featurize throughput with -j 1 / -j 2, peak memory.

Usage: .venv/bin/python benchmarks/featurize.py [--n-files 2000] [--seconds 2.0] [--jobs 2]

Everything is measured in one run on this machine, so the printed `ratio` lines compare like with like. The corpus
(seeded 16 kHz FLAC clips) is generated once into a temporary directory and deleted afterwards. The featurize lines
time the library call after warm-up (no interpreter start-up or imports); benchmarks/files_per_second.py times the
`dfdet featurize` command itself, start-up included.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def make_corpus(root: Path, n: int, seconds: float, sr: int = 16000, seed: int = 0) -> list[Path]:
    """n speech-like FLAC clips (harmonics with a moving pitch, an envelope and noise), seeded."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    paths = []
    for i in range(n):
        f0 = rng.uniform(90, 220)
        vib = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
        phase = 2 * np.pi * np.cumsum(vib) / sr
        y = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12))
        y = y * (0.5 - 0.5 * np.cos(2 * np.pi * np.minimum(t * rng.uniform(1, 4), 1)))
        y = y + 0.01 * rng.standard_normal(len(t))
        y = 0.5 * y / np.max(np.abs(y))
        p = root / f"d{i // 500:02d}" / f"clip{i:06d}.flac"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, y, sr, subtype="PCM_16")
        paths.append(p)
    return paths


def add_corpus_args(ap, n_files: int) -> None:
    """The corpus options every audio benchmark shares."""
    ap.add_argument("--n-files", type=int, default=n_files, help="corpus size")
    ap.add_argument("--seconds", type=float, default=2.0, help="clip length")
    ap.add_argument("--jobs", type=int, default=2, help="the parallel run's -j")


def machine_line() -> str:
    """Cores and load at start: absolute numbers from a loaded machine are read with this in mind."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"machine: {cores} cores available, load average {load:.1f} at start, python {sys.version.split()[0]}"


def extractor_numbers(clips: list[Path], n_ref: int) -> dict:
    """ms/clip of the fast extractor (one core) and of the literal reference on the same decoded corpus clips."""
    from bench_extractor import bench_extractor  # benchmarks/bench_extractor.py

    audio = [sf.read(p, dtype="float64")[0] for p in clips]
    return bench_extractor(audio, sr=16000, n_ref=n_ref)


def _cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_args(ap, 2000)  # >= 2000 files for the quoted numbers
    ap.add_argument("--n-fast", type=int, default=50, help="clips timed for the fast extractor")
    ap.add_argument("--n-ref", type=int, default=3, help="clips timed for the literal reference (~1 s each)")
    args = ap.parse_args()

    from dfdet.features import get_recipe
    from dfdet.featurize import featurize, warm_up
    from dfdet.inputs import utterances_from_paths
    from dfdet.store import load_features

    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = make_corpus(tmp / "corpus", args.n_files, args.seconds)
        made = time.perf_counter() - t0
        print(f"corpus: {len(paths)} FLAC clips, 16 kHz, {args.seconds:g} s each (generated in {made:.1f} s)")

        ex = extractor_numbers(paths[: args.n_fast], args.n_ref)
        print(
            f"extractor: fast {ex['fast_ms']:.2f} ms/clip (one core, best of {ex['passes']} passes over "
            f"{ex['n_clips']} clips, median {ex['fast_median_ms']:.2f}); literal reference {ex['ref_ms']:.0f} ms/clip "
            f"({ex['n_ref']} clips)"
        )
        print(f"ratio reference/fast {ex['ratio']:.0f}x")

        recipe = get_recipe("seed154")
        warm_up(recipe)  # library imports and tables: not part of the per-file cost
        utts = utterances_from_paths(paths)
        rates = {}
        for jobs in (1, args.jobs):
            cpu0 = _cpu_seconds()
            res = featurize(utts, tmp / f"j{jobs}.h5", recipe=recipe, jobs=jobs, show_progress=False)
            cpu_ms = (_cpu_seconds() - cpu0) / max(res.done, 1) * 1e3
            rates[jobs] = res.done / res.seconds
            print(
                f"featurize -j {jobs}: {res.done} files in {res.seconds:.2f} s = {rates[jobs]:.0f} files/s "
                f"(CPU {cpu_ms:.2f} ms/file, all processes)"
            )
        print(f"ratio j{args.jobs}/j1 {rates[args.jobs] / rates[1]:.2f}x")
        a, b = load_features(tmp / "j1.h5"), load_features(tmp / f"j{args.jobs}.h5")
        print(f"-j 1 and -j {args.jobs} stores identical: {a.X.tobytes() == b.X.tobytes() and a.utt_id == b.utt_id}")

    kb = 1 if sys.platform != "darwin" else 1 / 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kb / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kb / 1024
    print(f"peak memory: main process {self_mb:.0f} MiB, largest worker {child_mb:.0f} MiB")


if __name__ == "__main__":
    main()
