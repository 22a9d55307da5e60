"""Start-up: `dfdet --help`, `--version`, and the first featurized / scored row of one file at 16 and 24 kHz.

Usage: .venv/bin/python benchmarks/startup.py [--runs 7] [--seconds 5] [--per-rate 8]

Each figure is the median (and best) wall time of fresh `dfdet` processes, from before the process is started to the
moment it exits (featurize: the store is written when the process ends) or prints its first data row (score). The
score model is a tiny linear one trained here on a generated corpus, scored through torch and then through its
`dfdet export` copy; then the shipped default detector with the file named on stdin. `python -c "import numpy"` and
`python -c "import torch"` are timed the same way, as the floors that no dfdet change removes. Then ms/file per
sample rate of the in-process fast path (benchmarks/mixed_rate.py), one thread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def dfdet_cmd() -> list[str]:
    """The `dfdet` script beside this interpreter (what a user runs), else `python -m dfdet`."""
    script = Path(sys.executable).with_name("dfdet")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dfdet"]


def time_exit(cmd: list[str], cwd: Path) -> float:
    """Seconds from start to exit; fails loudly if the command fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return dt


def time_first_row(cmd: list[str], cwd: Path) -> float:
    """Seconds from start to the first stdout line that is a data row (not the TSV header)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    dt = None
    for line in proc.stdout:
        if line.strip() and not line.startswith(("utt_id", "#")):
            dt = time.perf_counter() - t0
            break
    rest, err = proc.communicate()
    if proc.returncode != 0 or dt is None:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()}")
    return dt


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f} s, best {min(times):.3f} s ({len(times)} runs)"


def tiny_model(tmp: Path) -> Path:
    """A 1-epoch linear model on a small generated corpus (dfdet demo-corpus -> featurize -> train)."""
    dfdet = [*dfdet_cmd(), "-q"]
    labels = subprocess.run(
        [*dfdet, "demo-corpus", "--n-per-class", "8", "--seconds", "1", str(tmp / "corpus")],
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run([*dfdet, "featurize", "--labels", labels, "-o", str(tmp / "train.h5")], env=ENV, check=True)
    model = tmp / "model.pt"
    subprocess.run(
        [*dfdet, "train", str(tmp / "train.h5"), "--model", "linear", "--epochs", "1", "-o", str(model)],
        env=ENV,
        check=True,
        capture_output=True,
    )
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per figure")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the generated test files")
    ap.add_argument("--per-rate", type=int, default=8, help="files per sample rate for ms/file")
    args = ap.parse_args()

    import soundfile as sf
    from featurize import machine_line, make_corpus
    from mixed_rate import RATES, generated_set, time_fast

    from dfdet.heap import keep_large_buffers

    print(machine_line())
    dfdet = dfdet_cmd()
    print(f"command: {' '.join(dfdet)} (PYTHONPATH={ROOT})")
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-") as tmp:
        tmp = Path(tmp)
        files = {}
        for sr in (16000, 24000):
            (flac,) = make_corpus(tmp / f"f{sr}", 1, args.seconds, sr=sr, seed=sr)
            files[sr] = tmp / f"speech{sr // 1000}k.wav"
            sf.write(files[sr], sf.read(flac)[0], sr, subtype="PCM_16")
        model = tiny_model(tmp / "model")
        floors = {
            "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        }
        for name, cmd in floors.items():
            print(f"{name}: {summary([time_exit(cmd, tmp) for _ in range(args.runs)])}")
        for flag in ("--help", "--version"):
            print(f"dfdet {flag}: {summary([time_exit([*dfdet, flag], tmp) for _ in range(args.runs)])}")
        for sr, path in files.items():
            out = tmp / "out.h5"
            times = []
            for _ in range(args.runs):
                out.unlink(missing_ok=True)
                times.append(time_exit([*dfdet, "-q", "featurize", str(path), "-o", str(out)], tmp))
            print(f"dfdet featurize, one {sr / 1000:g} kHz {args.seconds:g}-s WAV, to exit: {summary(times)}")
        for sr, path in files.items():
            cmd = [*dfdet, "-q", "score", str(model), str(path)]
            times = [time_first_row(cmd, tmp) for _ in range(args.runs)]
            print(f"dfdet score (linear .pt, torch), one {sr / 1000:g} kHz WAV, to first row: {summary(times)}")
        subprocess.run([*dfdet, "-q", "export", str(model)], env=ENV, check=True)  # the torch-free copy
        for sr, path in files.items():
            cmd = [*dfdet, "-q", "score", str(model), str(path)]
            times = [time_first_row(cmd, tmp) for _ in range(args.runs)]
            print(
                f"dfdet score (linear .pt + dfdet export copy), one {sr / 1000:g} kHz WAV, to first row: "
                f"{summary(times)}"
            )
        for sr, path in files.items():  # the shipped default detector, the file named on stdin
            times = [
                time_first_row(["sh", "-c", f"echo {path} | {' '.join(dfdet)} -q score -"], tmp)
                for _ in range(args.runs)
            ]
            print(
                f"echo FILE | dfdet score - (shipped default), one {sr / 1000:g} kHz WAV, to first row: "
                f"{summary(times)}"
            )
        shutil.rmtree(tmp / "model", ignore_errors=True)

        keep_large_buffers()  # as `dfdet featurize` and `dfdet score` run
        sets = generated_set(tmp / "rates", args.per_rate, args.seconds)
        paths = [p for sr in RATES for p in sets[sr]]
        wall, cpu, _ = time_fast(paths)
        print(f"fast path per file ({args.seconds:g}-s FLAC, head decode + soxr + extractor, one thread, best of 3):")
        for i, sr in enumerate(RATES):
            sel = slice(i * args.per_rate, (i + 1) * args.per_rate)
            print(f"  {sr / 1000:>5g} kHz: {wall[sel].mean() * 1e3:6.2f} ms wall, {cpu[sel].mean() * 1e3:6.2f} ms CPU")


if __name__ == "__main__":
    main()
