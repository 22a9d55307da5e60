"""`dfdet featurize` files/s on 16 kHz FLAC, start-up included: the command a user types, timed from its start.

Usage: .venv/bin/python benchmarks/files_per_second.py [--n-files 2000] [--seconds 4] [--jobs 1,2] [--dir DIR]

Each run is a fresh process (`python -m dfdet featurize ...`, this checkout first on PYTHONPATH), timed from the
moment it is started until it exits, so interpreter start-up, imports, the directory walk or stdin, forking the
workers and writing the HDF5 store all count. Two input forms per -j: a directory argument, and the `find DIR -name
'*.flac' | dfdet featurize - ...` pipeline (the `find` included). benchmarks/featurize.py times the library call
after warm-up instead (no start-up). The corpus (seeded speech-like 16-bit FLAC clips from benchmarks/featurize.py)
is generated into a temporary directory unless --dir names one. Absolute files/s depend on the machine and on what
else runs on it: the load average is printed next to every figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def run_featurize(corpus: Path, out: Path, jobs: int, stdin: bool, root: Path = ROOT) -> tuple[float, float, str]:
    """Wall seconds from start to exit, CPU seconds of every process it ran, and its stderr's last line; `root`: the
    dfdet source tree that runs (first on PYTHONPATH)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "dfdet", "featurize", "-" if stdin else str(corpus), "-j", str(jobs), "-o", str(out)]
    if stdin:  # the shell pipeline a user would type, find included
        line = f"find {corpus} -name '*.flac' | " + " ".join(f"'{c}'" for c in cmd)
        cmd = ["/bin/sh", "-c", line]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=False)  # -m: cwd first
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"featurize failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall, cpu, (proc.stderr.strip().splitlines() or [""])[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-files", type=int, default=2000, help="corpus size (generated)")
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length (generated)")
    ap.add_argument("--jobs", default="1,2", help="comma-separated -j values")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each configuration (the fastest is printed)")
    ap.add_argument("--dir", type=Path, help="featurize this directory of .flac files instead of generating one")
    ap.add_argument("--baseline-src", type=Path, help="another dfdet source tree to run first (the 'before')")
    args = ap.parse_args()

    import numpy as np
    from featurize import machine_line, make_corpus  # benchmarks/featurize.py

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="dfdet-fps-") as tmp:
        tmp = Path(tmp)
        corpus = args.dir
        if corpus is None:
            t0 = time.perf_counter()
            corpus = tmp / "corpus"
            make_corpus(corpus, args.n_files, args.seconds)
            print(
                f"corpus: {args.n_files} FLAC clips, 16 kHz, {args.seconds:g} s (generated in "
                f"{time.perf_counter() - t0:.0f} s)"
            )
        n = sum(1 for _ in corpus.rglob("*.flac"))
        print(f"featurizing {n} files of {corpus}, wall clock from process start to exit:")
        trees = [("before", args.baseline_src.resolve())] if args.baseline_src else []
        trees.append(("this tree" if trees else "", ROOT))
        stores = []
        for label, root in trees:
            if label:
                print(f" {label}: {root}")
            for jobs in (int(j) for j in args.jobs.split(",")):
                for stdin in (False, True):
                    best = None
                    for r in range(args.repeat):
                        load = os.getloadavg()[0]
                        out = tmp / f"{len(stores)}-{r}.h5"
                        wall, cpu, last = run_featurize(corpus, out, jobs, stdin, root)
                        if best is None or wall < best[0]:
                            best = (wall, cpu, load, last, out)
                    wall, cpu, load, last, out = best
                    stores.append(out)
                    form = f"find | featurize - -j {jobs}" if stdin else f"featurize DIR -j {jobs}"
                    print(
                        f"  {form:<26} {n / wall:6.0f} files/s  ({wall:.2f} s; CPU {cpu / n * 1e3:.2f} ms/file, all "
                        f"processes; load average {load:.1f} before)  [{last}]"
                    )
        from dfdet.store import load_features

        sets = [load_features(s) for s in stores]
        per_tree = len(sets) // len(trees)
        for i, (label, _) in enumerate(trees):
            mine = sets[i * per_tree : (i + 1) * per_tree]
            same = all(np.array_equal(mine[0].X, o.X) and mine[0].utt_id == o.utt_id for o in mine[1:])
            print(f"stores identical across the -j and input forms{' of ' + label if label else ''}: {same}")
        if len(trees) > 1:
            print(f"max |this tree - before| over the stores: {np.abs(sets[-1].X - sets[0].X).max():.2e}")


if __name__ == "__main__":
    main()
