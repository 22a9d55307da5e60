"""`dfdet attack --method degrade` throughput: files/s with -j 1 and -j N on the same files, and the ratio.

Usage: .venv/bin/python benchmarks/degrade.py [--n-files 40] [--seconds 2.0] [--jobs 2] [--conditions all]

Everything is measured in one run on this machine, so the printed `ratio` line compares like with like; absolute
numbers depend on the machine and its load (the load average is printed at start). Each file is decoded, put through
every condition (16 by default), featurized (seed154) and scored; the -j runs must give the same report, which is
checked. The corpus (seeded 16 kHz FLAC clips, the featurize benchmark's generator) lives in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
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


def _cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    from featurize import add_corpus_args, machine_line, make_corpus  # benchmarks/featurize.py: shared corpus

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_args(ap, 40)
    ap.add_argument("--conditions", default=None, help="comma-separated subset (default: all)")
    args = ap.parse_args()

    from score import make_model  # benchmarks/score.py: a seed154 model file with random weights

    from dfdet.attacks import load_diff_detector
    from dfdet.degrade import available, resolve_conditions
    from dfdet.features import get_recipe
    from dfdet.inputs import list_audio_paths, utterances_from_paths
    from dfdet.robustness import degradation_report

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-degrade-") as tmp:
        tmp = Path(tmp)
        make_corpus(tmp / "corpus", args.n_files, args.seconds)
        utts = utterances_from_paths(list_audio_paths([tmp / "corpus"]))
        dim = len(get_recipe("seed154").feature_names)
        make_model(tmp / "linear.pt", "linear", np.zeros(dim), np.ones(dim))
        det = load_diff_detector(str(tmp / "linear.pt"))
        conds = [d for d in resolve_conditions(args.conditions) if available(d)]
        print(f"corpus: {len(utts)} FLAC clips, 16 kHz, {args.seconds:g} s; {len(conds)} conditions per file")
        degradation_report(det, utts[:2], conds, jobs=1)  # lazy imports and the recipe's tables, not timed

        rates, reports = {}, {}
        for jobs in dict.fromkeys((1, args.jobs)):
            t0, cpu0 = time.perf_counter(), _cpu_seconds()
            reports[jobs] = degradation_report(det, utts, conds, jobs=jobs)
            dt, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            rates[jobs] = len(utts) / dt
            print(
                f"degrade -j {jobs}: {len(utts)} files in {dt:.2f} s = {rates[jobs]:.2f} files/s "
                f"(CPU {1e3 * cpu / len(utts):.0f} ms/file, {cpu / dt:.2f} cores busy on average)"
                + (" (baseline)" if jobs == 1 else "")
            )
        if args.jobs != 1:
            same = json.dumps(reports[1], sort_keys=True) == json.dumps(reports[args.jobs], sort_keys=True)
            print(f"ratio -j {args.jobs} / -j 1 {rates[args.jobs] / rates[1]:.2f}x; reports identical: {same}")


if __name__ == "__main__":
    main()
