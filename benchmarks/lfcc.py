"""`lfcc` front end speed (x real time per core) vs the literal reference, and the streaming path's peak memory.

Usage: .venv/bin/python benchmarks/lfcc.py [--seconds 60] [--long-minutes 10] [--repeats 5]

One BLAS/OpenMP thread. Fast path: `lfcc(y, sr)` on decoded audio (resampling included, decoding excluded), and
`lfcc_file` on a FLAC file (decoding included), best of `--repeats` passes at 16 kHz and 44.1 kHz. The literal
reference (tests/reference_lfcc.py) runs once on a short clip; `ratio` = fast speed / reference speed, same process.
Memory: peak RSS of a fresh process that streams a `--long-minutes` 44.1 kHz file through `iter_lfcc_file` (10-s
blocks), next to one that decodes the whole file and runs `lfcc` on it, and one that only imports (the floor).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from featurize import machine_line  # noqa: E402  (benchmarks/featurize.py)

_MEASURE = """
import resource, sys
import numpy as np
from dfdet.audio import load_audio
from dfdet.features.lfcc import iter_lfcc_file, lfcc
mode, path = sys.argv[1], sys.argv[2]
frames = 0
if mode == "stream":
    for block in iter_lfcc_file(path, block_seconds=10.0):
        frames += len(block)
elif mode == "whole":
    frames = len(lfcc(*load_audio(path)))
try:  # VmHWM: this process image's peak; ru_maxrss keeps the forking parent's peak across exec on Linux
    kib = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
except OSError:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
print(frames, kib)
"""


def speechlike(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A 2-s seeded harmonic clip with a moving pitch and an envelope, tiled to `seconds`, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * sr) / sr
    phase = 2 * np.pi * np.cumsum(130 * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))) / sr
    y = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12)) * (0.5 - 0.5 * np.cos(2 * np.pi * t / 2))
    n = int(round(seconds * sr))
    y = np.resize(y, n) + 0.005 * rng.standard_normal(n)
    return 0.5 * y / np.max(np.abs(y))


def best_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def write_long(path: Path, sr: int, minutes: float) -> None:
    """A long PCM-16 WAV written a minute at a time (the parent never holds it whole)."""
    minute = speechlike(sr, 60.0, seed=1)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(int(minutes)):
            f.write(minute)


def peak_rss_mb(mode: str, path: Path) -> tuple[int, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, mode, str(path)], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return int(out[0]), int(out[1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="audio timed for the fast path")
    ap.add_argument("--ref-seconds", type=float, default=2.0, help="audio timed for the literal reference")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="the streamed file's length")
    ap.add_argument("--repeats", type=int, default=5, help="passes of the fast path (best kept)")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from dfdet.features.lfcc import lfcc, lfcc_file
    from tests.reference_lfcc import lfcc_reference

    print(machine_line(), file=sys.stderr)
    threadpool_limits(1)
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-lfcc-") as tmp:
        tmp = Path(tmp)
        for sr in (16000, 44100):
            y = speechlike(sr, args.seconds)
            lfcc(y[: sr // 2], sr)  # warm-up: imports and tables
            fast = best_seconds(lambda y=y, sr=sr: lfcc(y, sr), args.repeats)
            flac = tmp / f"a{sr}.flac"
            sf.write(flac, y, sr, subtype="PCM_16")
            from_file = best_seconds(lambda flac=flac: lfcc_file(flac), args.repeats)
            r = y[: int(args.ref_seconds * sr)]
            t0 = time.perf_counter()
            lfcc_reference(r, sr)
            ref = time.perf_counter() - t0
            fast_x, ref_x = args.seconds / fast, args.ref_seconds / ref
            print(f"lfcc {sr} Hz, decoded audio (resampling included): {fast_x:.0f}x real time per core")
            print(
                f"lfcc {sr} Hz, FLAC file streamed in 10-s blocks (decoding included): {args.seconds / from_file:.0f}x"
            )
            print(f"literal reference {sr} Hz: {ref_x:.1f}x real time; ratio fast / reference: {fast_x / ref_x:.0f}")
        long = tmp / "long.wav"
        write_long(long, 44100, args.long_minutes)
        mb = long.stat().st_size / 2**20
        _, floor = peak_rss_mb("import", long)
        n_stream, stream = peak_rss_mb("stream", long)
        n_whole, whole = peak_rss_mb("whole", long)
        assert n_stream == n_whole, (n_stream, n_whole)
        print(f"{args.long_minutes:g}-min 44.1 kHz file ({mb:.0f} MiB PCM-16, {n_stream} frames), peak RSS:")
        print(f"  imports only {floor:.0f} MiB; streamed (10-s blocks) {stream:.0f} MiB; whole file {whole:.0f} MiB")
        print(
            f"  streaming adds {stream - floor:.0f} MiB over the imports; the whole-file path {whole - floor:.0f} MiB"
        )


if __name__ == "__main__":
    main()
