"""ASVspoof 5 scale: featurize a generated N-file tree in the ASVspoof 5 layout by shards; files/s and peak RSS.

Usage: .venv/bin/python benchmarks/asvspoof5_scale.py [--n 100000] [--shards 16] [--run-shards 2] [--jobs 2]
       (quick: --n 2000 --shards 4)

Generates `ASVspoof5_protocols/ASVspoof5.train.tsv` (the ten-column track-1/train protocol) and `flac_T/` with N
tiny FLACs (--seconds long; a few distinct seeded clips, so writing 100,000 takes seconds), then runs
`dfdet featurize --labels PROTOCOL --shard K/S` for the first --run-shards shards, each as its own process (as a
Slurm array task would), and prints per shard: files, wall time, files/s, the featurize process's peak RSS and the
largest worker's. A shard of a larger tree must not need more memory per file: compare the peak RSS of a --n 2000
and a --n 100000 run, or of --shards 4 vs --shards 16 (4x the rows per shard).

It also featurizes (in this process, start-up excluded) --model-n tiny clips and --long-n clips of --long-seconds
to split the per-file cost into a fixed part and a part per second of audio, and projects the wall time of
--project-files files of --project-mean-seconds on --jobs cores and on an --array-tasks Slurm array (each task like
this machine's --jobs cores). Everything runs on this machine, in one run; the tree is deleted afterwards unless
--keep. Other processes on the machine skew the timings: quote ratios and RSS, rerun for stable rates.
(The seed154 recipe keeps the first 2 s of each file, zero-padding shorter ones, so extraction costs the same for a
tiny clip as for a real utterance; only decoding grows with the duration.)
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

N_CLIPS = 16  # distinct clips per class; files reuse their bytes


def _clip(seconds: float, seed: int, spoof: bool, sr: int = 16000) -> bytes:
    """One FLAC clip (speech-like harmonics; spoofs smoothed with a faint high tone), encoded once."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = rng.uniform(90, 220)
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 4 * t))) / sr
    y = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12)) + 0.01 * rng.standard_normal(len(t))
    if spoof:
        y = np.convolve(y, np.full(4, 0.25), mode="same") + 0.05 * np.sin(2 * np.pi * 6000 * t)
    buf = io.BytesIO()
    sf.write(buf, (0.5 * y / np.max(np.abs(y))).astype(np.float32), sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def make_tree(root: Path, n: int, seconds: float, name: str = "ASVspoof5.train.tsv") -> Path:
    """`root/ASVspoof5_protocols/NAME` and `root/flac_T/T_NNNNNNNNNN.flac` x n (half bona fide); the protocol path."""
    clips = {(s, i): _clip(seconds, 1000 * s + i, bool(s)) for s in (0, 1) for i in range(N_CLIPS)}
    flac = root / "flac_T"
    flac.mkdir(parents=True, exist_ok=True)
    proto = root / "ASVspoof5_protocols" / name
    proto.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        spoof = i % 2
        file_id = f"T_{i:010d}"
        (flac / f"{file_id}.flac").write_bytes(clips[(spoof, i % N_CLIPS)])
        attack, tag = (f"A{1 + i % 8:02d}", f"AC{1 + i % 3}") if spoof else ("bonafide", "-")
        key = "spoof" if spoof else "bonafide"
        lines.append(f"T_{4000 + i % 400:04d} {file_id} {'MF'[i % 2]} - - - {tag} {attack} {key} -")
    proto.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return proto


def run_featurize(proto: Path, out: Path, jobs: int, shard: str | None) -> dict[str, float]:
    """`dfdet featurize` in its own process: wall time and that process's peak RSS (MB; workers not included)."""
    cmd = [sys.executable, "-m", "dfdet", "-q", "featurize", "--labels", str(proto), "-j", str(jobs), "-o", str(out)]
    if shard:
        cmd += ["--shard", shard]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"featurize failed (exit {proc.returncode}): {' '.join(cmd)}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024}


def parse_cost(proto: Path) -> tuple[float, float]:
    """Seconds and traced peak bytes to read the protocol into utterances in this process (what every task does
    before its shard: this part grows with the protocol's length, not with the shard)."""
    import tracemalloc

    from dfdet.inputs import resolve_utterances

    resolve_utterances([], labels=proto)  # imports and caches out of the way
    tracemalloc.start()
    t0 = time.perf_counter()
    utts = resolve_utterances([], labels=proto)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del utts
    return seconds, float(peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="files in the generated tree")
    ap.add_argument("--seconds", type=float, default=0.1, help="duration of each tiny clip")
    ap.add_argument("--shards", type=int, default=16, help="S of --shard K/S")
    ap.add_argument("--run-shards", type=int, default=1, help="how many of the S shards to featurize here")
    ap.add_argument("--jobs", type=int, default=2, help="-j of each featurize process")
    ap.add_argument("--model-n", type=int, default=1000, help="tiny clips timed in-process for the cost model")
    ap.add_argument("--long-n", type=int, default=100, help="clips of --long-seconds for the per-second cost")
    ap.add_argument("--long-seconds", type=float, default=4.0)
    ap.add_argument("--project-files", type=int, default=1_000_000, help="corpus size to project (ASVspoof 5: ~1 M)")
    ap.add_argument("--project-mean-seconds", type=float, default=4.0, help="mean duration assumed for the projection")
    ap.add_argument("--array-tasks", type=int, default=64)
    ap.add_argument("--dir", type=Path, default=None, help="where to build the tree (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the tree and stores")
    a = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="asvspoof5_scale_", dir=a.dir))
    try:
        t0 = time.perf_counter()
        proto = make_tree(base / "ASVspoof5", a.n, a.seconds)
        gen = time.perf_counter() - t0
        print(f"tree: {a.n} FLACs of {a.seconds} s + protocol in {gen:.1f} s ({a.n / gen:.0f} files/s written)")
        print(f"featurize --labels {proto.name} --shard K/{a.shards} -j {a.jobs} (one process per shard):")
        rates, rss = [], []
        for k in range(1, a.run_shards + 1):
            rows = len(range(k - 1, a.n, a.shards))
            r = run_featurize(proto, base / f"shard.{k}.h5", a.jobs, f"{k}/{a.shards}")
            rates.append(rows / r["wall"])
            rss.append(r["rss_mb"])
            print(
                f"  shard {k}/{a.shards}: {rows} files in {r['wall']:.1f} s = {rows / r['wall']:.1f} files/s; "
                f"peak RSS {r['rss_mb']:.0f} MB"
            )
        one = run_featurize(proto, base / "one.h5", 1, f"1/{a.n}")
        print(
            f"  fixed cost per task (start-up, imports, {a.n}-line protocol, 1 file): {one['wall']:.1f} s, "
            f"peak RSS {one['rss_mb']:.0f} MB"
        )
        parse_s, parse_bytes = parse_cost(proto)
        per_line = parse_bytes / a.n
        print(
            f"  reading the {a.n}-line protocol: {parse_s:.2f} s, {parse_bytes / 2**20:.1f} MB traced peak "
            f"({per_line:.0f} B/line; {a.project_files} lines: ~{per_line * a.project_files / 2**20:.0f} MB per task)"
        )
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"  largest process incl. pool workers: {workers:.0f} MB")

        # Per-file cost model, in this process (start-up excluded): tiny clips vs --long-seconds clips, same -j.
        from dfdet.featurize import featurize, warm_up
        from dfdet.inputs import resolve_utterances

        warm_up("seed154")
        tiny = resolve_utterances([], labels=proto)[: a.model_n]
        long_utts = resolve_utterances([], labels=make_tree(base / "long", a.long_n, a.long_seconds))
        rt = featurize(tiny, base / "model_tiny.h5", jobs=a.jobs, show_progress=False)
        rl = featurize(long_utts, base / "model_long.h5", jobs=a.jobs, show_progress=False)
        t_tiny, t_long = rt.seconds / rt.done, rl.seconds / rl.done
        per_s = max(t_long - t_tiny, 0.0) / (a.long_seconds - a.seconds)
        fixed = max(t_tiny - per_s * a.seconds, 0.0)
        print(
            f"in-process featurize -j {a.jobs}: {rt.done} x {a.seconds} s clips at {1 / t_tiny:.0f} files/s; "
            f"{rl.done} x {a.long_seconds} s clips at {1 / t_long:.1f} files/s "
            f"({a.long_seconds / t_long:.0f} audio-s/s)"
        )
        print(
            f"per-file cost on {a.jobs} core(s): {1000 * fixed:.2f} ms fixed + {1000 * per_s:.2f} ms per audio second"
        )
        t_mean = fixed + per_s * a.project_mean_seconds
        total = a.project_files * t_mean
        startup = one["wall"] + parse_s * (a.project_files / a.n - 1)  # protocol parsing grows with its lines
        per_task = a.project_files / a.array_tasks * t_mean + startup
        print(
            f"projection, {a.project_files} files of {a.project_mean_seconds} s mean: "
            f"{total / 3600:.1f} h on {a.jobs} core(s); {per_task / 60:.1f} min on a {a.array_tasks}-task array "
            f"({a.jobs} core(s) per task, start-up + protocol parse {startup:.0f} s per task, merge not included)"
        )
    finally:
        if a.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
