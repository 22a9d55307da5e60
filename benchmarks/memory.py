"""Peak memory of `dfdet featurize` and `dfdet score` on one long file and on many short files, parent and workers.

Usage: .venv/bin/python benchmarks/memory.py [--n-files 10000] [--n-small 1000] [--hours 1.0] [--jobs 2] [--no-score]
       [--torch-free]
Quick: .venv/bin/python benchmarks/memory.py --n-files 1000 --n-small 100 --hours 0.25

Memory must be flat in corpus size (the worker pool keeps a bounded window of files in flight, rows stream into the
store) and in file length (a recipe reads what it needs). Each run is a fresh `dfdet` process that reports, at exit,
its own peak RSS (VmHWM); its worker processes are sampled from /proc every 50 ms (peak RSS, which counts the pages
a forked worker shares with the parent, and PSS, which splits them). The ratio lines compare runs of this same
invocation: many files at two corpus sizes (flat: ~1.0), and the long file against one short clip (a single input
runs in the parent at any -j: no pool for one file). The audio (seeded 16 kHz FLAC) is generated into a temporary
directory and deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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
from featurize import machine_line  # noqa: E402  (benchmarks/featurize.py)

SR = 16000
# Runs `dfdet ARGS...` and prints its peak RSS and its workers' at exit (SystemExit included).
# VmHWM, not ru_maxrss: a process started by fork + exec inherits the forking process's maxrss (this benchmark's).
PROBE = """
import atexit, resource, sys
def report():
    hwm = [ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    me = hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"PEAK_RSS_KB {me} {kids}", file=sys.stderr)
atexit.register(report)
sys.argv = ["dfdet", *sys.argv[1:]]
from dfdet.cli import main
main()
"""


def speechlike(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Harmonics with a moving pitch, an envelope and noise (like benchmarks/featurize.py's clips)."""
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = rng.uniform(90, 220)
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))) / SR
    y = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12))
    y = y * (0.5 - 0.5 * np.cos(2 * np.pi * np.minimum(t * rng.uniform(1, 4), 1))) + 0.01 * rng.standard_normal(len(t))
    return 0.5 * y / np.max(np.abs(y))


def make_long(path: Path, hours: float, seed: int = 0) -> None:
    """One FLAC of `hours`, written a minute at a time (the generator itself stays small)."""
    rng = np.random.default_rng(seed)
    minute = np.concatenate([speechlike(rng.uniform(1.5, 4.0), rng) for _ in range(30)])[: 60 * SR]
    minute = np.pad(minute, (0, 60 * SR - len(minute)))
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16", format="FLAC") as f:
        for _ in range(max(1, int(round(hours * 60)))):
            f.write(minute * rng.uniform(0.5, 1.0))


def make_many(root: Path, n: int, seed: int = 1) -> list[Path]:
    """n FLAC clips of 0.5-1 s: 64 generated variants written round-robin (fast to make, each file distinct in name)."""
    rng = np.random.default_rng(seed)
    variants = [speechlike(rng.uniform(0.5, 1.0), rng) for _ in range(64)]
    paths = []
    for i in range(n):
        p = root / f"d{i // 1000:02d}" / f"clip{i:06d}.flac"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, variants[i % len(variants)], SR, subtype="PCM_16", format="FLAC")
        paths.append(p)
    return paths


def train_model(tmp: Path, clips: list[Path]) -> Path:
    """A linear seed154 model on 128 of the clips with alternating labels (scoring cost, not accuracy, matters)."""
    from dfdet.artifact import save_result
    from dfdet.featurize import featurize
    from dfdet.inputs import Utterance
    from dfdet.store import load_features
    from dfdet.training import make_config, train_model

    utts = [Utterance(f"u{i:04d}", str(p), i % 2) for i, p in enumerate(clips[:128])]
    featurize(utts, tmp / "train.h5", jobs=1, show_progress=False)
    cfg = make_config(model="linear", epochs=1, batch_size=32, val_split=0.0, patience=None)
    save_result(tmp / "model.pt", train_model(load_features(tmp / "train.h5"), config=cfg))
    return tmp / "model.pt"


def _kb(path: str, field: str) -> int:
    try:
        with open(path) as fh:
            return next((int(ln.split()[1]) for ln in fh if ln.startswith(field)), 0)
    except OSError:
        return 0


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                continue
    return out


def run(args: list[str]) -> tuple[float, float, float, float]:
    """(wall s, parent peak RSS MB, worker peak RSS MB, worker peak PSS MB) of one `dfdet -q ARGS` process.

    Workers are sampled every 50 ms from /proc (RSS counts pages a forked worker shares with the parent; PSS splits
    them among the sharers); without /proc the kernel's RUSAGE_CHILDREN peak is given for both.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    cmd = [sys.executable, "-c", PROBE, "-q", *args]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss = pss = 0
    sampling = os.path.isdir("/proc/self")
    while p.poll() is None:
        if sampling:
            for c in _children(p.pid):
                rss = max(rss, _kb(f"/proc/{c}/status", "VmRSS:"))
                pss = max(pss, _kb(f"/proc/{c}/smaps_rollup", "Pss:"))
        time.sleep(0.05)
    err = p.stderr.read() if p.stderr else ""
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"dfdet {' '.join(args)} failed ({p.returncode}):\n{err}")
    line = next(ln for ln in err.splitlines() if ln.startswith("PEAK_RSS_KB"))
    me, kids = (int(x) for x in line.split()[1:])
    if not sampling:
        rss = pss = kids
    return wall, me / 1024, rss / 1024, pss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-files", type=int, default=10000, help="many short files (the issue asks for 10,000)")
    ap.add_argument("--n-small", type=int, default=1000, help="the smaller corpus the flatness ratio compares with")
    ap.add_argument("--hours", type=float, default=1.0, help="length of the long file")
    ap.add_argument("--jobs", type=int, default=2, help="-j of the many-files runs (a single input runs in the parent)")
    ap.add_argument("--no-score", action="store_true", help="featurize only")
    ap.add_argument(
        "--torch-free", action="store_true", help="score through the model's `dfdet export` copy (no torch import)"
    )
    a = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="dfdet-mem-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        long = tmp / "long" / "long.flac"
        long.parent.mkdir()
        make_long(long, a.hours)
        t1 = time.perf_counter()
        clips = make_many(tmp / "many", a.n_files)
        t2 = time.perf_counter()
        print(
            f"generated: 1 file of {a.hours:g} h ({long.stat().st_size / 2**20:.0f} MB FLAC) in {t1 - t0:.1f} s; "
            f"{a.n_files} files of 0.5-1 s in {t2 - t1:.1f} s"
        )
        (tmp / "small.lst").write_text("".join(f"{p}\n" for p in clips[: a.n_small]))
        (tmp / "one.lst").write_text(f"{clips[0]}\n")
        inputs = {
            "one short file": str(tmp / "one.lst"),
            f"{a.hours:g} h file": str(long),
            f"{a.n_small} files": str(tmp / "small.lst"),
            f"{a.n_files} files": str(tmp / "many"),
        }
        model = None if a.no_score else train_model(tmp, clips)
        if model is not None and a.torch_free:
            from dfdet.portable import export_portable

            export_portable(model)
            print("score: through the torch-free copy (dfdet export)")
        peaks: dict[tuple[str, str], tuple[float, float]] = {}
        for cmd in ("featurize", "score") if model else ("featurize",):
            for what, src in inputs.items():
                for jobs in [1] if what.endswith("file") else [a.jobs]:  # one input: no pool at any -j
                    out = tmp / f"out.{'h5' if cmd == 'featurize' else 'tsv'}"
                    args = [cmd, src, "-o", str(out), "-j", str(jobs)]
                    if cmd == "score":
                        args = ["score", str(model), src, "-o", str(out), "-j", str(jobs)]
                    wall, me, rss, pss = run(args)
                    peaks[(cmd, what)] = (me, rss)
                    workers = f"RSS {rss:5.0f} MB (PSS {pss:4.0f} MB)" if jobs > 1 else "none (one input)"
                    head = f"{cmd:9s} {what:>16s} -j {jobs}: wall {wall:6.1f} s"
                    print(f"{head}  peak parent {me:5.0f} MB  workers {workers}", flush=True)
        for cmd in ("featurize", "score") if model else ("featurize",):
            small, big = peaks[(cmd, f"{a.n_small} files")], peaks[(cmd, f"{a.n_files} files")]
            one, long_ = peaks[(cmd, "one short file")], peaks[(cmd, f"{a.hours:g} h file")]
            print(
                f"ratio {cmd}: peak RSS {a.n_files} / {a.n_small} files: parent {big[0] / small[0]:.2f}, "
                f"workers {big[1] / small[1]:.2f}; {a.hours:g} h file / one short file: {long_[0] / one[0]:.2f}"
            )


if __name__ == "__main__":
    main()
