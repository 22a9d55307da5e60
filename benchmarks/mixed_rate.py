"""seed154 on a mixed-rate set (8/16/22.05/24/44.1/48 kHz): the fast path against the literal reference, per core.

Usage: .venv/bin/python benchmarks/mixed_rate.py [--per-rate 8] [--n-ref 2] [--seconds 5] [--real DIR]

Both sides start from the file: the fast path is `dfdet.featurize.extract_one` (decodes and resamples only the first
2 s plus soxr's margin, then the vectorised extractor); the reference is the spec's literal path in
tests/reference_seed154.py (decode the whole file, librosa.resample all of it, cut to 2 s, one librosa call per row
of the table, Python MPE loop). One thread, same process, so the printed ratios compare like with like; the CPU-time
ratio is the per-core figure (the machine may be shared). Generated speech-like FLAC clips by default; with --real,
clips of each rate are drawn from that corpus's labels.csv (seeded), and rates it lacks are generated.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

RATES = (8000, 16000, 22050, 24000, 44100, 48000)
TOL = 1e-4


def generated_set(root: Path, per_rate: int, seconds: float, rates: tuple[int, ...] = RATES) -> dict[int, list[Path]]:
    """per_rate seeded speech-like 16-bit FLAC clips at each rate."""
    from featurize import make_corpus  # benchmarks/featurize.py

    return {sr: make_corpus(root / str(sr), per_rate, seconds, sr=sr, seed=sr) for sr in rates}


def real_set(corpus: Path, per_rate: int, seed: int = 0) -> dict[int, list[Path]]:
    """per_rate clips of each of RATES found in corpus/labels.csv (columns path, sample_rate), drawn with a seed."""
    by_rate: dict[int, list[Path]] = {}
    with open(corpus / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_rate.setdefault(int(row["sample_rate"]), []).append(corpus / row["path"])
    rng = np.random.default_rng(seed)
    out = {}
    for sr in RATES:
        paths = sorted(by_rate.get(sr, []))
        if paths:
            out[sr] = [paths[i] for i in sorted(rng.choice(len(paths), min(per_rate, len(paths)), replace=False))]
    return out


def time_fast(paths: list[Path], passes: int = 3) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Per-file wall and CPU seconds of extract_one (each file's fastest pass) and the vectors, one thread."""
    from threadpoolctl import threadpool_limits

    from dfdet.features import get_recipe
    from dfdet.featurize import extract_one, warm_up

    rec = get_recipe("seed154")
    warm_up(rec)  # tables and lazy imports: once per process, not per file
    wall = np.full((passes, len(paths)), np.inf)
    cpu = np.full((passes, len(paths)), np.inf)
    vecs: list[np.ndarray] = []
    with threadpool_limits(1):
        for p in range(passes):
            for i, path in enumerate(paths):
                t0, c0 = time.perf_counter(), time.thread_time()
                status, vec, _ = extract_one(rec, str(path))
                wall[p, i], cpu[p, i] = time.perf_counter() - t0, time.thread_time() - c0
                if status != "ok":
                    raise SystemExit(f"{path}: {vec}")
                if p == 0:
                    vecs.append(vec)
    return wall.min(axis=0), cpu.min(axis=0), vecs


def time_reference(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Per-file wall and CPU seconds of the literal spec path from the file (whole decode + librosa), one thread."""
    import soundfile as sf
    from threadpoolctl import threadpool_limits

    from tests.reference_seed154 import prepare_reference, seed154_reference

    wall, cpu, vecs = np.empty(len(paths)), np.empty(len(paths)), []
    with threadpool_limits(1):
        seed154_reference(prepare_reference(np.zeros(4410), 44100), mpe=False)  # librosa's imports and caches
        for i, path in enumerate(paths):
            t0, c0 = time.perf_counter(), time.thread_time()
            y, sr = sf.read(str(path), dtype="float64")
            vecs.append(seed154_reference(prepare_reference(y, sr)))
            wall[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
    return wall, cpu, vecs


def deviation(fast: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, int]:
    """Max |fast - ref| over all files and features, and how many values miss the spec (|d| <= 1e-4 or 1e-4 |ref|)."""
    f, r = np.stack(fast), np.stack(ref)
    d = np.abs(f - r)
    return float(d.max()), int((~((d <= TOL) | (d <= TOL * np.abs(r)))).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-rate", type=int, default=8, help="clips per sample rate timed on the fast path")
    ap.add_argument("--n-ref", type=int, default=2, help="clips per sample rate run through the reference (~1 s each)")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of generated clips")
    ap.add_argument("--real", type=Path, help="a corpus with labels.csv (path, sample_rate), e.g. ../shared/...")
    args = ap.parse_args()

    from featurize import machine_line

    from dfdet.heap import keep_large_buffers

    print(machine_line())
    print(f"malloc thresholds raised as in `dfdet featurize`/`score` (dfdet.heap): {keep_large_buffers()}")
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-") as tmp:
        sets = real_set(args.real, args.per_rate) if args.real else {}
        missing = tuple(sr for sr in RATES if sr not in sets)
        sets.update(generated_set(Path(tmp), args.per_rate, args.seconds, missing))
        import soundfile as sf

        for sr in RATES:
            kind = "generated" if sr in missing else f"from {args.real}"
            secs = [sf.info(str(p)).duration for p in sets[sr]]
            print(f"  {sr / 1000:g} kHz: {len(sets[sr])} clips {kind}, {np.mean(secs):.1f} s mean")
        paths = [p for sr in RATES for p in sets[sr]]
        rate_of = [sr for sr in RATES for _ in sets[sr]]
        wall, cpu, fast_vecs = time_fast(paths)
        print("fast path (extract_one: head decode + soxr + extractor), ms/file, best of 3 passes, one thread:")
        for sr in RATES:
            sel = [i for i, r in enumerate(rate_of) if r == sr]
            print(f"  {sr / 1000:>5g} kHz: {wall[sel].mean() * 1e3:6.2f} wall, {cpu[sel].mean() * 1e3:6.2f} CPU")
        print(f"  mixed: {wall.mean() * 1e3:.2f} wall, {cpu.mean() * 1e3:.2f} CPU ({len(paths)} files)")

        ref_idx = [i for sr in RATES for i in [j for j, r in enumerate(rate_of) if r == sr][: args.n_ref]]
        rwall, rcpu, ref_vecs = time_reference([paths[i] for i in ref_idx])
        dmax, n_bad = deviation([fast_vecs[i] for i in ref_idx], ref_vecs)
        fw, fc = wall[ref_idx].mean(), cpu[ref_idx].mean()
        print(
            f"literal reference on {len(ref_idx)} of them ({args.n_ref} per rate): {rwall.mean() * 1e3:.0f} ms/file "
            f"wall, {rcpu.mean() * 1e3:.0f} CPU; fast on the same files {fw * 1e3:.2f} wall, {fc * 1e3:.2f} CPU"
        )
        print(f"ratio reference/fast per core: {rcpu.mean() / fc:.0f}x CPU time, {rwall.mean() / fw:.0f}x wall")
        print(f"max |fast - reference| {dmax:.2e}; values outside the spec's 1e-4: {n_bad} of {154 * len(ref_idx)}")


if __name__ == "__main__":
    main()
