"""Full-batch training with dfdet's raised malloc thresholds (dfdet.heap) vs glibc's defaults, on the same data.

Usage: .venv/bin/python benchmarks/heap.py [--data features_robust.npz] [--epochs 5] [--repeats 2]

Each run is `dfdet -q train DATA --protocol seed` (full batch, the study's protocol) in a fresh process with one
torch thread, since malloc settings belong to a process. The baseline sets GLIBC_TUNABLES to the empty string, which
leaves glibc's defaults and makes dfdet.heap keep its hands off. Runs alternate and the best of each is kept; system
time (page faults of large tensors) is the quantity dfdet.heap changes, so it is reported beside wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "seed154-asvspoof2019la" / "features_robust.npz"


def make_data(path: Path, rows: int = 3000) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    y = (np.arange(rows) % 2).astype(np.int64)
    X = (rng.standard_normal((rows, 154)) + y[:, None] * 0.3).astype(np.float32)
    np.savez(path, X=X, y=y, feature_names=np.array([f"f{i}" for i in range(154)]))


def run(data: Path, epochs: int, out: Path, tuned: bool) -> tuple[float, float]:
    """(wall s, system s) of one training process."""
    import time

    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    if not tuned:
        env["GLIBC_TUNABLES"] = ""
    cmd = [sys.executable, "-m", "dfdet", "-q", "train", str(data), "--protocol", "seed", "--epochs", str(epochs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--optimizer", "adam", "-o", str(out)], env=env, check=True)
    wall = time.perf_counter() - t0
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED if SHARED.exists() else None)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is not None and not data.exists():
            print(f"{data} not found: using a synthetic 3000 x 154 matrix")
            data = None
        if data is None:
            data = Path(tmp) / "synthetic.npz"
            make_data(data)
        print(f"data: {data} ({'shared' if data == SHARED else 'given or synthetic'}), epochs {a.epochs}")
        best: dict[bool, tuple[float, float]] = {}
        for _ in range(a.repeats):
            for tuned in (False, True):
                w, s = run(data, a.epochs, Path(tmp) / "m.pt", tuned)
                print(f"  {'dfdet.heap' if tuned else 'glibc default'}: wall {w:.1f} s, system {s:.1f} s")
                best[tuned] = min(best.get(tuned, (w, s)), (w, s))
        (w0, s0), (w1, s1) = best[False], best[True]
        print(f"glibc default : wall {w0:.1f} s  system {s0:.1f} s")
        print(f"dfdet.heap    : wall {w1:.1f} s  system {s1:.1f} s")
        print(f"ratio (default / heap): wall {w0 / w1:.2f}x  system {s0 / max(s1, 1e-3):.1f}x")


if __name__ == "__main__":
    main()
