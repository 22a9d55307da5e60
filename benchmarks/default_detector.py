"""The shipped default detector (models/default): size on disk, load time, single-file latency, and files/s of
`find DIR -name '*.wav' | dfdet score -` with -j 1 and -j 2 on 4-s clips, start-up included.

Usage: .venv/bin/python benchmarks/default_detector.py [--n-files 1000] [--seconds 4] [--runs 3]

Load time and latency are measured in this process (best and median of --runs); files/s are whole fresh `dfdet`
processes, wall clock from before the process starts until it exits, median of --runs. The same in-process figures
for the torch path of the same model (its .pt without the `dfdet export` copy) are printed beside, as the baseline.
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

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def med_best(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1e3:.1f} ms, best {min(xs) * 1e3:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-files", type=int, default=1000, help="clips for the files/s runs")
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length")
    ap.add_argument("--runs", type=int, default=3, help="repeats per figure")
    args = ap.parse_args()

    import soundfile as sf
    from featurize import machine_line, make_corpus

    from dfdet.scoring import load_detector, score_audio_stream
    from dfdet.shipped import find

    print(machine_line())
    shipped = find("default")
    if shipped is None:
        raise SystemExit("no shipped default detector (models/default)")
    folder = shipped.detector.parent
    print(f"models/default: {folder_bytes(folder) / 1e6:.2f} MB on disk ({len(list(folder.iterdir()))} files)")
    dfdet = str(Path(sys.executable).with_name("dfdet"))
    with tempfile.TemporaryDirectory(prefix="dfdet-bench-") as tmp:
        tmp = Path(tmp)
        clips = []
        for flac in make_corpus(tmp / "flac", args.n_files, args.seconds, sr=16000, seed=1):
            wav = tmp / "wav" / flac.parent.name / (flac.stem + ".wav")
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, sf.read(flac)[0], 16000, subtype="PCM_16")
            clips.append(wav)
        shutil.rmtree(tmp / "flac")
        torch_copy = tmp / "torch"
        shutil.copytree(folder, torch_copy)
        (torch_copy / "model.portable.npz").unlink()
        for name, det_path in (
            ("default (torch-free copy)", shipped.detector),
            ("same model via torch", torch_copy / shipped.detector.name),
        ):
            loads, lat = [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                det = load_detector(det_path)
                loads.append(time.perf_counter() - t0)
            list(score_audio_stream(det, [str(clips[0])]))  # warm: recipe tables, imports
            for i in range(max(args.runs, 5)):
                t0 = time.perf_counter()
                (row,) = list(score_audio_stream(det, [str(clips[i + 1])]))
                lat.append(time.perf_counter() - t0)
            print(
                f"{name}: load {med_best(loads)} (first load includes imports); "
                f"one {args.seconds:g}-s file {med_best(lat)}"
            )
        listing = "\n".join(str(c) for c in clips) + "\n"
        for jobs in (1, 2):
            walls = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                r = subprocess.run(
                    [dfdet, "-q", "score", "-", "-j", str(jobs)],
                    input=listing,
                    env=ENV,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                )
                walls.append(time.perf_counter() - t0)
                if r.returncode != 0:
                    raise SystemExit(r.stderr)
                assert len(r.stdout.splitlines()) == len(clips) + 1
            w = statistics.median(walls)
            print(
                f"find DIR -name '*.wav' | dfdet score - -j {jobs}: {len(clips)} files in {w:.2f} s = "
                f"{len(clips) / w:.0f} files/s (median of {args.runs}, start-up included)"
            )


if __name__ == "__main__":
    main()
